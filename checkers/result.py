"""ProbeResult: what one probe says about one real server.

The value lives in its own module so that the probe modules (tcp, http, dns, udp,
exec_probe) and the dispatcher that calls them (probe.py) import it without importing
each other: the dependency runs one way, dispatcher -> probes -> result.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ProbeResult"]


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """The outcome of one probe.

    ok:      the real server passed this check.
    detail:  why, in a few words ("connect refused", "status 503 not in 200-299").
    latency: seconds from the start of the probe to its result.
    weight:  a weight the check itself reported (exec checks with keepalived's
             misc_dynamic: exit 2..255 -> weight exit-2); None otherwise.
    """

    ok: bool
    detail: str
    latency: float
    weight: int | None = None
