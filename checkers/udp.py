"""UDP request/response probe: keepalived's UDP_CHECK (payload, require_reply).

This module owns one datagram exchange with a real server: send a payload from
a connected UDP socket and wait, until the deadline, for a reply the caller
accepts. `exchange_datagram()` is also the transport of the DNS probe
(checkers/dns.py).

Rules kept here:
- The peer's behaviour is never an exception for the caller of `check_udp`:
  silence is "no reply after 1.0s", an ICMP port unreachable is
  "port unreachable", a reply without the expected bytes says so.
- A connected socket is what makes ICMP errors visible: Linux reports the
  port unreachable for a connected UDP socket as ECONNREFUSED on the next
  recv(2) (udp(7), IP_RECVERR off), and only accepts datagrams from the peer
  it is connected to, so stray datagrams from elsewhere never count.
- Replies the caller rejects (a DNS answer to another query id, garbage) are
  dropped and the wait goes on; the last rejection becomes the failure
  detail if nothing better arrives before the deadline.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Callable
from typing import TypeVar

from checkers.result import ProbeResult
from checkers.spec import Target, UdpCheck, probe_port
from checkers.tcp import describe_errno, describe_timeout, family_of

__all__ = ["DatagramError", "RejectedReplyError", "check_udp", "exchange_datagram"]

_T = TypeVar("_T")
_MAX_DATAGRAM = 65535


class DatagramError(Exception):
    """The exchange failed (no reply, ICMP error); `detail` says why."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class RejectedReplyError(Exception):
    """Raised by an `accept` callback: this datagram is not the answer (dropped)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _describe_socket_error(err: int) -> str:
    if err == errno.ECONNREFUSED:
        return "port unreachable"
    return describe_errno(err, "exchange")


async def exchange_datagram(
    address: str,
    port: int,
    payload: bytes,
    *,
    started: float,
    timeout: float,  # noqa: ASYNC109 - the probe enforces its own deadline (see header)
    accept: Callable[[bytes], _T],
) -> _T:
    """Send `payload` to address:port and return accept(reply) for the first
    reply `accept` does not reject; raise DatagramError on ICMP errors or at
    `started + timeout`.
    """
    loop = asyncio.get_running_loop()
    sock = socket.socket(family_of(address), socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        try:
            sock.connect((address, port))
            sock.send(payload)
        except OSError as exc:
            raise DatagramError(_describe_socket_error(exc.errno or 0)) from None

        fut: asyncio.Future[_T] = loop.create_future()
        rejected: list[str] = []

        def on_readable() -> None:
            if fut.done():
                return
            try:
                data = sock.recv(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                fut.set_exception(DatagramError(_describe_socket_error(exc.errno or 0)))
                return
            try:
                fut.set_result(accept(data))
            except RejectedReplyError as exc:
                rejected.append(exc.detail)

        def on_deadline() -> None:
            if fut.done():
                return
            if rejected:
                fut.set_exception(DatagramError(rejected[-1]))
            else:
                fut.set_exception(DatagramError(f"no reply after {describe_timeout(timeout)}"))

        fd = sock.fileno()
        loop.add_reader(fd, on_readable)
        timer = loop.call_at(started + timeout, on_deadline)
        try:
            return await fut
        finally:
            loop.remove_reader(fd)
            timer.cancel()
    finally:
        sock.close()


def _any_reply(data: bytes) -> bytes:
    return data


async def check_udp(
    address: str,
    port: int,
    timeout: float,  # noqa: ASYNC109 - the probe enforces its own deadline (see header)
    *,
    payload: bytes,
    expect: bytes | None = None,
) -> ProbeResult:
    """Up when a reply arrives within `timeout` and, if `expect` is set, contains it.

    keepalived's UDP_CHECK with `require_reply`: any reply counts; with
    `expect`, the reply must contain those bytes.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        reply = await exchange_datagram(
            address, port, payload, started=started, timeout=timeout, accept=_any_reply
        )
    except DatagramError as exc:
        return ProbeResult(ok=False, detail=exc.detail, latency=loop.time() - started)
    latency = loop.time() - started
    if expect is not None and expect not in reply:
        return ProbeResult(
            ok=False,
            detail=f"reply {reply[:32]!r} does not contain {expect[:32]!r}",
            latency=latency,
        )
    return ProbeResult(ok=True, detail=f"reply of {len(reply)} bytes", latency=latency)


async def probe(spec: UdpCheck, target: Target) -> ProbeResult:
    """The UDP_CHECK of ``spec`` against ``target`` (run_probe's entry point)."""
    return await check_udp(
        str(target.address),
        probe_port(spec, target),
        spec.timing.timeout,
        payload=spec.payload,
        expect=spec.expect,
    )
