"""Probe results and the one entry point the checker pool calls: run_probe.

This module owns the ProbeResult value and the dispatch from a CheckSpec to the
probe that implements it (tcp.py, http.py, exec_probe.py, dns.py, udp.py).

Rules kept here:
- A probe never raises for anything the real server does: every failure is a
  ProbeResult(ok=False, detail=...) with a short operator-readable detail,
  which the hysteresis core puts into its reasons ("3 failures: connect refused").
- Every probe enforces spec.timing.timeout itself; the pool does not need to
  wrap probes in its own timeout.
- Cancellation (pool stop, reload removing the check) propagates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from checkers.spec import CheckSpec, Target

__all__ = ["ProbeResult", "run_probe"]


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


async def run_probe(spec: CheckSpec, target: Target) -> ProbeResult:
    """Run the probe `spec` describes against `target`; never raises but CancelledError."""
    # The probe modules import ProbeResult from here, so they are imported on
    # first use rather than at module top (a cached sys.modules lookup after that).
    from checkers import dns, exec_probe, http, tcp, udp
    from checkers.spec import DnsCheck, ExecCheck, HttpCheck, TcpCheck, UdpCheck

    timeout = spec.timing.timeout
    address = str(target.address)
    if isinstance(spec, TcpCheck):
        return await tcp.check_tcp(
            address,
            spec.connect_port if spec.connect_port is not None else target.port,
            timeout,
            bind_address=None if spec.bind_address is None else str(spec.bind_address),
        )
    if isinstance(spec, HttpCheck):
        return await http.check_http(
            address,
            spec.connect_port if spec.connect_port is not None else target.port,
            timeout,
            tls=spec.tls,
            method=spec.method,
            path=spec.path,
            host=spec.host,
            expect_status=spec.expect_status,
            body_regex=spec.body_regex,
            body_digest=spec.body_digest,
            sni=spec.sni,
            verify_tls=spec.verify_tls,
            ca_file=spec.ca_file,
        )
    if isinstance(spec, ExecCheck):
        return await exec_probe.check_exec(
            spec.command,
            timeout,
            dynamic_weight=spec.dynamic_weight,
            address=address,
            port=target.port,
        )
    if isinstance(spec, DnsCheck):
        return await dns.check_dns(
            address,
            spec.connect_port if spec.connect_port is not None else target.port,
            timeout,
            query_name=spec.query_name,
            query_type=spec.query_type,
            expect_rcode=spec.expect_rcode,
            expect_answer=spec.expect_answer,
        )
    if isinstance(spec, UdpCheck):
        return await udp.check_udp(
            address,
            spec.connect_port if spec.connect_port is not None else target.port,
            timeout,
            payload=spec.payload,
            expect=spec.expect,
        )
    # A spec type nobody taught us is our own bug, not the real server's.
    raise TypeError(f"no probe for check spec {type(spec).__name__}")
