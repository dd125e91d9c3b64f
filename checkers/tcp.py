"""TCP connect probe: keepalived's TCP_CHECK, HAProxy's plain `check`.

This module owns the probes' TCP connections: opening one to a real server before
a deadline, waiting for it to become readable, and closing it at once.
`ProbeConnection` is also the transport of the HTTP probe (checkers/http.py).

Rules kept here:
- The peer's behaviour (refusal, reset, silence, unreachable route) is never an
  exception for the caller of `check_tcp`: it is a ProbeResult(ok=False) whose
  detail an operator can read ("connect refused", "connect timeout after 1.0s").
  Cancellation propagates, and the socket is closed on every path.
- Cheap on purpose: thousands of checks per second, and system calls are what a
  check costs (in the lab guest above all). No StreamReader/StreamWriter, no
  transport, no name resolution (real servers are literal addresses). Each
  connection is registered ONCE, edge-triggered for both directions, in one
  epoll set per event loop that the loop watches as a single reader; closing
  the socket removes it from the set. A TCP check is then socket, setsockopt,
  connect, epoll_ctl, close (plus the shared epoll_wait): no getsockopt when
  the connect succeeded, no epoll_ctl to modify or remove. One future per wait
  and one timer handle per connection.
- Close with RST (SO_LINGER 0): the checker is the side that closes first, so a
  FIN close would leave a TIME_WAIT on the director for every check (60 s each,
  300,000 sockets at 5,000 checks/s). HAProxy closes its health-check
  connections the same way for the same reason.
"""

from __future__ import annotations

import asyncio
import errno
import os
import select
import socket
import struct
import threading
import weakref
from collections.abc import Callable

from checkers.result import ProbeResult
from checkers.spec import Target, TcpCheck, probe_port

__all__ = [
    "ConnectError",
    "ProbeConnection",
    "check_tcp",
    "describe_errno",
    "describe_timeout",
    "family_of",
    "running_loop",
]

# struct linger {int l_onoff; int l_linger;} = {1, 0}: close(2) sends RST.
_LINGER_RST = struct.pack("ii", 1, 0)
_STREAM_NONBLOCK = socket.SOCK_STREAM | socket.SOCK_NONBLOCK

# Edge-triggered, both directions: EPOLLOUT marks the end of the connect,
# EPOLLIN/EPOLLRDHUP data or the peer's close, EPOLLERR/EPOLLHUP a failure.
_WATCH = select.EPOLLIN | select.EPOLLOUT | select.EPOLLRDHUP | select.EPOLLET
_FAILED = select.EPOLLERR | select.EPOLLHUP
_READABLE = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLERR | select.EPOLLHUP
# What wait() returns when the deadline passed first.
TIMED_OUT = -1

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


# Thread id -> the event loop last seen running in that thread.
_loops: dict[int, asyncio.AbstractEventLoop] = {}


def running_loop() -> asyncio.AbstractEventLoop:
    """asyncio.get_running_loop() without its getpid(2).

    Python 3.11 checks the process id on every get_running_loop() call: one
    system call per check, and system calls are what a check costs in the lab
    guest. A loop that is running in this very thread is this thread's running
    loop, so the last one seen is reused while that holds (BaseEventLoop
    records its thread in `_thread_id`; any other loop takes the slow path).
    """
    thread = threading.get_ident()
    loop = _loops.get(thread)
    if loop is None or getattr(loop, "_thread_id", None) != thread:
        loop = asyncio.get_running_loop()
        _loops[thread] = loop
    return loop


def family_of(address: str) -> socket.AddressFamily:
    """Literal addresses only: a colon means IPv6."""
    return socket.AF_INET6 if ":" in address else socket.AF_INET


class _Readiness:
    """One epoll set for the probe sockets of one event loop, read as one loop reader."""

    __slots__ = ("__weakref__", "_epoll", "_waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._epoll = select.epoll()
        self._waiters: dict[int, Callable[[int], None]] = {}
        loop.add_reader(self._epoll.fileno(), self._dispatch)
        # The set lives as long as the loop: closed when the loop is collected.
        weakref.finalize(loop, self._epoll.close)

    def watch(self, fd: int, on_events: Callable[[int], None]) -> None:
        self._waiters[fd] = on_events
        self._epoll.register(fd, _WATCH)

    def forget(self, fd: int, *, unregister: bool) -> None:
        """Stop dispatching for `fd`; close(2) of the socket removes it from the set,
        so `unregister` is only needed when the socket lives on (handed to TLS)."""
        del self._waiters[fd]
        if unregister:
            self._epoll.unregister(fd)

    def _dispatch(self) -> None:
        waiters = self._waiters
        for fd, events in self._epoll.poll(0):
            on_events = waiters.get(fd)
            if on_events is not None:
                on_events(events)


_readiness: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Readiness] = (
    weakref.WeakKeyDictionary()
)


def _readiness_of(loop: asyncio.AbstractEventLoop) -> _Readiness:
    readiness = _readiness.get(loop)
    if readiness is None:
        readiness = _readiness[loop] = _Readiness(loop)
    return readiness


class ProbeConnection:
    """One probe's non-blocking TCP socket, its readiness edges and its deadline.

    `open()` connects or raises ConnectError; `wait()` returns the readiness
    edges seen since the last wait (waiting for the next one if none), or
    TIMED_OUT once the deadline passed; `close()` always, exactly once.
    """

    __slots__ = (
        "_fut",
        "_pending",
        "_readiness",
        "_timer",
        "_watched",
        "fd",
        "loop",
        "sock",
        "timed_out",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, deadline: float):
        self.loop = loop
        self.sock = sock
        self.fd = sock.fileno()
        self.timed_out = False
        self._pending = 0
        self._fut: asyncio.Future[int] | None = None
        self._readiness = _readiness_of(loop)
        self._readiness.watch(self.fd, self._on_events)
        self._watched = True
        self._timer = loop.call_at(deadline, self._on_deadline)

    @classmethod
    async def open(
        cls,
        address: str,
        port: int,
        *,
        loop: asyncio.AbstractEventLoop,
        started: float,
        timeout: float,  # noqa: ASYNC109 - the probe enforces its own deadline (see header)
        bind_address: str | None = None,
    ) -> ProbeConnection:
        """Connect to address:port by `started + timeout`, or raise ConnectError.

        `bind_address` is keepalived's `bindto`: the source address of the check.
        `loop` is the running loop (see running_loop()).
        """
        # SOCK_NONBLOCK at creation: one system call less than setblocking(False).
        sock = socket.socket(family_of(address), _STREAM_NONBLOCK)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
            if bind_address is not None:
                try:
                    sock.bind((bind_address, 0))
                except OSError as exc:
                    reason = os.strerror(exc.errno or 0).lower()
                    raise ConnectError(f"bind {bind_address} failed: {reason}") from None
            err = sock.connect_ex((address, port))
        except BaseException:
            sock.close()
            raise
        if err not in (0, errno.EINPROGRESS):
            sock.close()
            raise ConnectError(describe_errno(err))
        try:
            connection = cls(loop, sock, started + timeout)
        except BaseException:
            sock.close()
            raise
        try:
            if err == errno.EINPROGRESS:
                events = await connection.wait()
                if events == TIMED_OUT:
                    raise ConnectError(f"connect timeout after {describe_timeout(timeout)}")
                if events & _FAILED or not events & select.EPOLLOUT:
                    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    raise ConnectError(describe_errno(err or errno.ECONNRESET))
                # A server that speaks first (a banner) may have arrived with
                # the connect's edge: keep it for the next wait.
                connection._pending |= events & _READABLE
        except BaseException:
            connection.close()
            raise
        return connection

    def _on_events(self, events: int) -> None:
        fut = self._fut
        if fut is not None and not fut.done():
            fut.set_result(self._pending | events)
            self._pending = 0
            self._fut = None
        else:
            self._pending |= events

    def _on_deadline(self) -> None:
        self.timed_out = True
        fut = self._fut
        if fut is not None and not fut.done():
            fut.set_result(TIMED_OUT)
            self._fut = None

    async def wait(self) -> int:
        """The readiness edges since the last call, or TIMED_OUT."""
        if self.timed_out:
            return TIMED_OUT
        if self._pending:
            events, self._pending = self._pending, 0
            return events
        fut: asyncio.Future[int] = self.loop.create_future()
        self._fut = fut
        try:
            return await fut
        finally:
            self._fut = None

    async def wait_readable(self) -> bool:
        """Wait for data, the peer's close or an error; False when the deadline passed."""
        while True:
            events = await self.wait()
            if events == TIMED_OUT:
                return False
            if events & _READABLE:
                return True

    def detach(self) -> socket.socket:
        """Hand the socket over (to a TLS transport): no more edges, no deadline here.

        close() still closes it if the new owner never took it.
        """
        self._unwatch(unregister=True)
        return self.sock

    def _unwatch(self, *, unregister: bool) -> None:
        if self._watched:
            self._watched = False
            self._readiness.forget(self.fd, unregister=unregister)
            self._timer.cancel()

    def close(self) -> None:
        self._unwatch(unregister=False)
        self.sock.close()  # a no-op when closed already (by a TLS transport)


async def check_tcp(
    address: str,
    port: int,
    timeout: float,  # noqa: ASYNC109 - the probe enforces its own deadline (see header)
    *,
    bind_address: str | None = None,
) -> ProbeResult:
    """Up when a TCP connection to address:port is accepted within `timeout`."""
    loop = running_loop()
    started = loop.time()
    try:
        connection = await ProbeConnection.open(
            address, port, loop=loop, started=started, timeout=timeout, bind_address=bind_address
        )
    except ConnectError as exc:
        return ProbeResult(ok=False, detail=exc.detail, latency=loop.time() - started)
    connection.close()
    return ProbeResult(ok=True, detail="connected", latency=loop.time() - started)


async def probe(spec: TcpCheck, target: Target) -> ProbeResult:
    """The TCP_CHECK of ``spec`` against ``target`` (run_probe's entry point)."""
    return await check_tcp(
        str(target.address),
        probe_port(spec, target),
        spec.timing.timeout,
        bind_address=None if spec.bind_address is None else str(spec.bind_address),
    )
