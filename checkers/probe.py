"""The one entry point the checker pool calls: run_probe, dispatching on the spec's type.

Each probe module (tcp.py, http.py, exec_probe.py, dns.py, udp.py, smtp.py, ping.py,
file_check.py) exposes ``probe(spec, target)``; this module maps spec types onto them.
Rules every probe keeps:

- A probe never raises for anything the real server does: every failure is a
  ProbeResult(ok=False, detail=...) with a short operator-readable detail,
  which the hysteresis core puts into its reasons ("3 failures: connect refused").
- Every probe enforces spec.timing.timeout itself; the pool does not need to
  wrap probes in its own timeout.
- Cancellation (pool stop, reload removing the check) propagates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from checkers import exec_probe, file_check, http, ping, smtp, tcp, udp
from checkers.result import ProbeResult
from checkers.spec import (
    CheckSpec,
    DnsCheck,
    ExecCheck,
    FileCheck,
    HttpCheck,
    PingCheck,
    SmtpCheck,
    Target,
    TcpCheck,
    UdpCheck,
)

__all__ = ["ProbePlan", "plan_probe", "run_probe"]

_Probe = Callable[[Any, Target], Coroutine[Any, Any, ProbeResult]]


async def _dns_probe(spec: DnsCheck, target: Target) -> ProbeResult:
    # dnspython is most of this package's import time (~0.3 s in the lab guest, where
    # the daemon imports this module before its first IPVS sync): loaded at the first
    # DNS check, never by a director without one.
    from checkers import dns

    return await dns.probe(spec, target)


_PROBES: dict[type, _Probe] = {
    TcpCheck: tcp.probe,
    HttpCheck: http.probe,
    ExecCheck: exec_probe.probe,
    DnsCheck: _dns_probe,
    UdpCheck: udp.probe,
    SmtpCheck: smtp.probe,
    PingCheck: ping.probe,
    FileCheck: file_check.probe,
}


async def run_probe(spec: CheckSpec, target: Target) -> ProbeResult:
    """Run the probe `spec` describes against `target`; never raises but CancelledError."""
    probe = _PROBES.get(type(spec))
    if probe is None:
        # A spec type nobody taught us is our own bug, not the real server's.
        raise TypeError(f"no probe for check spec {type(spec).__name__}")
    return await probe(spec, target)


class ProbeAttempt(Protocol):
    def cancel(self) -> None: ...


class ProbePlan(Protocol):
    """A check prepared once (address text, request bytes): `start` runs one probe
    as a callback state machine that calls `on_done` once, unless cancelled first."""

    def start(
        self,
        loop: asyncio.AbstractEventLoop,
        on_done: Callable[[ProbeResult], None],
        started: float | None = None,
    ) -> ProbeAttempt: ...


_PLANS: dict[type, Callable[[Any, Target], ProbePlan | None]] = {
    TcpCheck: tcp.plan,
    HttpCheck: http.plan,
}


def plan_probe(spec: CheckSpec, target: Target) -> ProbePlan | None:
    """The callback form of run_probe(spec, target), for the probe kinds that have one.

    Same checks, same results, same details: run_probe of these kinds runs the
    very same state machines. None: this kind runs as a coroutine (run_probe).
    """
    planner = _PLANS.get(type(spec))
    return None if planner is None else planner(spec, target)
