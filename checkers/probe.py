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

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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


_Runner = Callable[[Any, "Target"], Coroutine[Any, Any, ProbeResult]]
# Spec type -> probe adapter, filled on first use: the probe modules import
# ProbeResult from here, so they cannot be imported at this module's top.
_RUNNERS: dict[type, _Runner] = {}


async def run_probe(spec: CheckSpec, target: Target) -> ProbeResult:
    """Run the probe `spec` describes against `target`; never raises but CancelledError."""
    runner = _RUNNERS.get(type(spec))
    if runner is None:
        _load_runners()
        runner = _RUNNERS.get(type(spec))
        if runner is None:
            # A spec type nobody taught us is our own bug, not the real server's.
            raise TypeError(f"no probe for check spec {type(spec).__name__}")
    return await runner(spec, target)


def _load_runners() -> None:
    from checkers import dns, exec_probe, http, tcp, udp
    from checkers.spec import DnsCheck, ExecCheck, HttpCheck, TcpCheck, UdpCheck

    def port_of(spec: TcpCheck | HttpCheck | DnsCheck | UdpCheck, target: Target) -> int:
        # keepalived connect_port: probe another port than the one traffic goes to.
        return spec.connect_port if spec.connect_port is not None else target.port

    def run_tcp(spec: TcpCheck, target: Target) -> Coroutine[Any, Any, ProbeResult]:
        return tcp.check_tcp(
            str(target.address),
            port_of(spec, target),
            spec.timing.timeout,
            bind_address=None if spec.bind_address is None else str(spec.bind_address),
        )

    def run_http(spec: HttpCheck, target: Target) -> Coroutine[Any, Any, ProbeResult]:
        return http.check_http(
            str(target.address),
            port_of(spec, target),
            spec.timing.timeout,
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

    def run_exec(spec: ExecCheck, target: Target) -> Coroutine[Any, Any, ProbeResult]:
        return exec_probe.check_exec(
            spec.command,
            spec.timing.timeout,
            dynamic_weight=spec.dynamic_weight,
            address=str(target.address),
            port=target.port,
        )

    def run_dns(spec: DnsCheck, target: Target) -> Coroutine[Any, Any, ProbeResult]:
        return dns.check_dns(
            str(target.address),
            port_of(spec, target),
            spec.timing.timeout,
            query_name=spec.query_name,
            query_type=spec.query_type,
            expect_rcode=spec.expect_rcode,
            expect_answer=spec.expect_answer,
        )

    def run_udp(spec: UdpCheck, target: Target) -> Coroutine[Any, Any, ProbeResult]:
        return udp.check_udp(
            str(target.address),
            port_of(spec, target),
            spec.timing.timeout,
            payload=spec.payload,
            expect=spec.expect,
        )

    _RUNNERS.update(
        {
            TcpCheck: run_tcp,
            HttpCheck: run_http,
            ExecCheck: run_exec,
            DnsCheck: run_dns,
            UdpCheck: run_udp,
        }
    )
