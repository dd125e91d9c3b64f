"""TCP connect probe: keepalived's TCP_CHECK, HAProxy's plain `check`.

This module owns one thing: opening a TCP connection to a real server before a
deadline, and closing it at once. `connect()` is also the first step of the HTTP
probe (checkers/http.py).

Rules kept here:
- The peer's behaviour (refusal, reset, silence, unreachable route) is never an
  exception for the caller of `check_tcp`: it is a ProbeResult(ok=False) whose
  detail an operator can read ("connect refused", "connect timeout after 1.0s").
  Cancellation propagates, and the socket is closed on every path.
- It is cheap on purpose: at thousands of checks per second every object counts.
  One non-blocking socket, one connect(2), one writer registration, one timer
  handle and one future per check; no StreamReader/StreamWriter, no transport,
  no name resolution (real servers are configured as literal addresses).
- Close with RST (SO_LINGER 0): the checker is the side that closes first, so a
  FIN close would leave a TIME_WAIT on the director for every check (60 s each,
  300,000 sockets at 5,000 checks/s). HAProxy closes its health-check
  connections the same way for the same reason.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import struct

from checkers.probe import ProbeResult

__all__ = ["ConnectError", "check_tcp", "connect", "describe_timeout"]

# struct linger {int l_onoff; int l_linger;} = {1, 0}: close(2) sends RST.
_LINGER_RST = struct.pack("ii", 1, 0)

_STREAM_NONBLOCK = socket.SOCK_STREAM | socket.SOCK_NONBLOCK

# Sentinel result of _wait_connected when the deadline passed first.
_TIMED_OUT = -1

_ERRNO_DETAILS = {
    errno.ECONNREFUSED: "connect refused",
    errno.ECONNRESET: "connection reset",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ETIMEDOUT: "connect timed out",
    errno.EADDRNOTAVAIL: "address not available",
}


class ConnectError(Exception):
    """The real server did not accept the connection; `detail` says why."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def describe_timeout(timeout: float) -> str:
    """Seconds as operators wrote them: 1 -> "1.0s", 0.25 -> "0.25s"."""
    return f"{float(timeout)}s"


def describe_errno(err: int, what: str = "connect") -> str:
    """Short text for a socket errno, e.g. ECONNREFUSED -> "connect refused"."""
    known = _ERRNO_DETAILS.get(err)
    if known is not None:
        return known
    return f"{what} failed: {os.strerror(err).lower()}"


def family_of(address: str) -> socket.AddressFamily:
    """Literal addresses only: a colon means IPv6."""
    return socket.AF_INET6 if ":" in address else socket.AF_INET


async def _wait_connected(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, deadline: float
) -> int:
    """Wait until the pending connect(2) finishes; return its errno or _TIMED_OUT."""
    fut: asyncio.Future[int] = loop.create_future()
    fd = sock.fileno()

    def on_writable() -> None:
        if not fut.done():
            fut.set_result(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))

    def on_deadline() -> None:
        if not fut.done():
            fut.set_result(_TIMED_OUT)

    loop.add_writer(fd, on_writable)
    timer = loop.call_at(deadline, on_deadline)
    try:
        return await fut
    finally:
        loop.remove_writer(fd)
        timer.cancel()


async def connect(
    address: str,
    port: int,
    *,
    started: float,
    timeout: float,  # noqa: ASYNC109 - the probe enforces its own deadline (see header)
    bind_address: str | None = None,
) -> socket.socket:
    """Return a connected non-blocking socket (SO_LINGER 0), or raise ConnectError.

    `started` is the loop time the probe began; the connect must finish by
    `started + timeout`. `bind_address` is keepalived's `bind_to`: the source
    address of the check.
    """
    loop = asyncio.get_running_loop()
    # SOCK_NONBLOCK at creation: one system call less than setblocking(False).
    sock = socket.socket(family_of(address), _STREAM_NONBLOCK)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
        if bind_address is not None:
            try:
                sock.bind((bind_address, 0))
            except OSError as exc:
                raise ConnectError(
                    f"bind {bind_address} failed: {os.strerror(exc.errno or 0).lower()}"
                ) from None
        err = sock.connect_ex((address, port))
        if err == errno.EINPROGRESS:
            err = await _wait_connected(loop, sock, started + timeout)
        if err == _TIMED_OUT:
            raise ConnectError(f"connect timeout after {describe_timeout(timeout)}")
        if err:
            raise ConnectError(describe_errno(err))
    except BaseException:
        sock.close()
        raise
    return sock


async def check_tcp(
    address: str,
    port: int,
    timeout: float,  # noqa: ASYNC109 - the probe enforces its own deadline (see header)
    *,
    bind_address: str | None = None,
) -> ProbeResult:
    """Up when a TCP connection to address:port is accepted within `timeout`."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        sock = await connect(
            address, port, started=started, timeout=timeout, bind_address=bind_address
        )
    except ConnectError as exc:
        return ProbeResult(ok=False, detail=exc.detail, latency=loop.time() - started)
    sock.close()
    return ProbeResult(ok=True, detail="connected", latency=loop.time() - started)
