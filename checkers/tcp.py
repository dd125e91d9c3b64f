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
  the connect succeeded, no epoll_ctl to modify or remove. The pool's checks
  (TCP, plain HTTP) run as callback state machines (ConnectAttempt: no task,
  no future) whose deadlines share one loop timer (FIFOs per timeout);
  ProbeConnection (TLS, SMTP) keeps one future per wait and one timer handle.
- Close with RST (SO_LINGER 0) whenever the checker is the side that closes
  first: a FIN close would leave a TIME_WAIT on the director for every check
  (60 s each, 300,000 sockets at 5,000 checks/s). HAProxy closes its
  health-check connections the same way for the same reason. An attempt whose
  peer may close first (HTTP: the server answers `Connection: close` and hangs
  up) sets SO_LINGER only when it closes first after all (`RST_AT_OPEN`
  False): when the peer's FIN came with the answer the checker is the passive
  closer, a plain close leaves no TIME_WAIT on the director, and the check
  costs one system call less (the server keeps the TIME_WAIT, as with any
  HTTP/1.0 client and keepalived's HTTP_GET).
"""

from __future__ import annotations

import _socket
import asyncio
import contextlib
import errno
import os
import select
import socket
import struct
import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import ClassVar

from checkers.result import ProbeResult
from checkers.spec import Target, TcpCheck, probe_port

__all__ = [
    "READABLE",
    "ConnectAttempt",
    "ConnectError",
    "ProbeConnection",
    "ProbeDone",
    "TcpAttempt",
    "TcpPlan",
    "await_attempt",
    "check_tcp",
    "describe_errno",
    "describe_timeout",
    "family_of",
    "plan",
    "running_loop",
]

# struct linger {int l_onoff; int l_linger;} = {1, 0}: close(2) sends RST.
_LINGER_RST = struct.pack("ii", 1, 0)
_STREAM_NONBLOCK = socket.SOCK_STREAM | socket.SOCK_NONBLOCK

# Edge-triggered, both directions: EPOLLOUT marks the end of the connect,
# EPOLLIN/EPOLLRDHUP data or the peer's close, EPOLLERR/EPOLLHUP a failure.
_WATCH = select.EPOLLIN | select.EPOLLOUT | select.EPOLLRDHUP | select.EPOLLET
# Reading only: for a connection already up with nothing left to write, whose
# writable edge would wake the loop for nothing.
_WATCH_READ = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLET
_FAILED = select.EPOLLERR | select.EPOLLHUP
_READABLE = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLERR | select.EPOLLHUP
READABLE = _READABLE
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
    """One epoll set for the probe sockets of one event loop, read as one loop reader,
    and the deadlines of the callback attempts behind one loop timer.

    Deadlines: an attempt's deadline is its start (the loop's monotonic time)
    plus its timeout, so the attempts of one timeout expire in the order they
    started: one FIFO per timeout value, and ONE loop timer at the earliest
    head, instead of a timer handle made and cancelled per check. A finished
    attempt stays in its FIFO until the timer fires (dropped then, and the timer
    re-armed for the oldest attempt still running); when no attempt is live the
    FIFOs are dropped and the timer cancelled, so an idle or closed loop holds
    nothing.
    """

    __slots__ = (
        "__weakref__",
        "_deadlines",
        "_epoll",
        "_live",
        "_time",
        "_timer",
        "_timer_at",
        "_waiters",
        "now",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._epoll = select.epoll()
        # The loop's time, read once per wake-up (a poll batch or the deadline
        # timer) and shared by every attempt that ends in it: a clock read is a
        # system call where there is no vDSO (the lab guest: about 11 us each).
        self._time = loop.time
        self.now = loop.time()
        self._waiters: dict[int, Callable[[int], None]] = {}
        self._deadlines: dict[float, deque[tuple[float, ConnectAttempt]]] = {}
        self._live = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        loop.add_reader(self._epoll.fileno(), self._dispatch)
        # The set lives as long as the loop: closed when the loop is collected.
        weakref.finalize(loop, self._epoll.close)

    def watch(self, fd: int, on_events: Callable[[int], None], mask: int = _WATCH) -> None:
        self._waiters[fd] = on_events
        self._epoll.register(fd, mask)

    def forget(self, fd: int, *, unregister: bool) -> None:
        """Stop dispatching for `fd`; close(2) of the socket removes it from the set,
        so `unregister` is only needed when the socket lives on (handed to TLS)."""
        del self._waiters[fd]
        if unregister:
            self._epoll.unregister(fd)

    def expire(
        self,
        loop: asyncio.AbstractEventLoop,
        timeout: float,
        deadline: float,
        attempt: ConnectAttempt,
    ) -> None:
        """Call attempt.expired() at `deadline` = loop.time() + `timeout`, unless it ends first."""
        self._live += 1
        queue = self._deadlines.get(timeout)
        if queue is None:
            queue = self._deadlines[timeout] = deque()
        queue.append((deadline, attempt))
        if self._timer is None or deadline < self._timer_at:
            self._arm(loop, deadline)

    def ended(self) -> None:
        """One attempt that expire() was asked for has ended (either way)."""
        self._live -= 1
        if not self._live and self._deadlines:
            self._deadlines.clear()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = loop.call_at(when, self._on_timer, loop)

    def _on_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        # Never earlier than the deadline the timer was armed for (call_at may
        # fire up to the clock resolution early).
        now = max(loop.time(), self._timer_at)
        self.now = now
        self._timer = None
        earliest: float | None = None
        for queue in list(self._deadlines.values()):
            while queue and queue[0][0] <= now:
                attempt = queue.popleft()[1]
                if attempt.sock is not None:
                    attempt.expired()
            # Attempts that ended already need no wake-up at their deadline: the
            # next one is for the oldest attempt still running (with healthy
            # servers about one a timeout, instead of one per batch of starts).
            while queue and queue[0][1].sock is None:
                queue.popleft()
            if queue and (earliest is None or queue[0][0] < earliest):
                earliest = queue[0][0]
        # (an expired attempt's callback may have started others and armed the timer)
        if earliest is not None and (self._timer is None or earliest < self._timer_at):
            self._arm(loop, earliest)

    def _dispatch(self) -> None:
        waiters = self._waiters
        self.now = self._time()
        for fd, events in self._epoll.poll(0):
            on_events = waiters.get(fd)
            if on_events is not None:
                on_events(events)


_readiness: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Readiness] = (
    weakref.WeakKeyDictionary()
)
# The last loop asked for and its set: a WeakKeyDictionary lookup makes a weak
# reference per call, and every check asks. Weak, so the loop can still be collected.
_last_loop: weakref.ReferenceType[asyncio.AbstractEventLoop] | None = None
_last_readiness: _Readiness | None = None


def _readiness_of(loop: asyncio.AbstractEventLoop) -> _Readiness:
    global _last_loop, _last_readiness
    if _last_loop is not None and _last_loop() is loop and _last_readiness is not None:
        return _last_readiness
    readiness = _readiness.get(loop)
    if readiness is None:
        readiness = _readiness[loop] = _Readiness(loop)
    _last_loop, _last_readiness = weakref.ref(loop), readiness
    return readiness


ProbeDone = Callable[[ProbeResult], None]


class ConnectAttempt:
    """One probe's connection as a callback state machine: no task, no future.

    The pool runs thousands of checks per second; a task and a coroutine chain
    per check cost about as much CPU as the check's own system calls. Here the
    socket's readiness edges (the shared epoll set) and one deadline timer drive
    the probe, and `on_done` receives exactly one ProbeResult, unless
    `cancel()` came first (then nothing, and the socket is closed).

    Subclasses say what a connected socket does (`_connected`, `_readable`)
    and what a passed deadline means (`_timed_out`). A failure known before
    any waiting (bind error, refusal reported by connect itself) is reported
    from the loop (call_soon), never from inside the constructor: the caller
    has not stored the attempt yet.
    """

    __slots__ = (
        "_connecting",
        "_on_done",
        "_readiness",
        "_soon",
        "early_errno",
        "fd",
        "loop",
        "peer_closed",
        "sock",
        "started",
        "timeout",
    )

    #: SO_LINGER 0 right after socket(): the checker always closes first (TCP_CHECK).
    #: False: set at close, unless the peer closed first (`peer_closed`).
    RST_AT_OPEN: ClassVar[bool] = True

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_done: ProbeDone,
        address: str,
        port: int,
        *,
        timeout: float,
        bind_address: str | None = None,
        started: float | None = None,
    ) -> None:
        # The connect's error when a subclass's early send already took it from
        # the socket (SO_ERROR is read once): the failed edge reports this one.
        self.early_errno = 0
        self.loop = loop
        self._on_done = on_done
        self.timeout = timeout
        # `started`: the loop time the caller read for this start (the pool's, for
        # a batch of starts), so that the clock is not read again per check.
        if started is None:
            started = loop.time()
        self.started = started
        self.sock: _socket.socket | None = None
        self.fd = -1
        self._soon: asyncio.Handle | None = None
        self._connecting = True
        self.peer_closed = False
        # SOCK_NONBLOCK at creation: one system call less than setblocking(False).
        # The C socket type: the socket module's subclass adds a Python __init__
        # and close() per check, for makefile() and context managers unused here.
        sock = _socket.socket(family_of(address), _STREAM_NONBLOCK)
        try:
            if self.RST_AT_OPEN:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
            if bind_address is not None:
                try:
                    sock.bind((bind_address, 0))
                except OSError as exc:
                    reason = os.strerror(exc.errno or 0).lower()
                    sock.close()
                    self._fail_soon(f"bind {bind_address} failed: {reason}")
                    return
            err = sock.connect_ex((address, port))
        except BaseException:
            sock.close()
            raise
        if err not in (0, errno.EINPROGRESS):
            sock.close()
            self._fail_soon(describe_errno(err))
            return
        # Connected at once (err 0) or not: the edge-triggered registration
        # reports the socket writable on the next poll either way.
        self.sock = sock
        self.fd = fd = sock.fileno()
        readiness = self._readiness = _readiness_of(loop)
        if self._early(sock):
            self._connecting = False
            readiness.watch(fd, self._on_events, _WATCH_READ)
        else:
            readiness.watch(fd, self._on_events)
        readiness.expire(loop, timeout, started + timeout, self)

    def _early(self, sock: _socket.socket) -> bool:
        """Work done right after connect(), before the socket is watched; True when
        the connection is up and only reading is left (watched for reading only)."""
        return False

    def _fail_soon(self, detail: str) -> None:
        self._soon = self.loop.call_soon(self._deliver, detail)

    def _deliver(self, detail: str) -> None:
        self._soon = None
        self._on_done(ProbeResult(ok=False, detail=detail, latency=self.loop.time() - self.started))

    def _on_events(self, events: int) -> None:
        if self._connecting:
            sock = self.sock
            assert sock is not None
            if events & _FAILED or not events & select.EPOLLOUT:
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                self.finish(False, describe_errno(err or self.early_errno or errno.ECONNRESET))
                return
            self._connecting = False
            self._connected(events)
        else:
            self._readable(events)

    def expired(self) -> None:
        """The deadline passed (called by the loop's deadline FIFOs)."""
        if self._connecting:
            self.finish(False, f"connect timeout after {describe_timeout(self.timeout)}")
        else:
            self.finish(False, self._timed_out())

    def _connected(self, events: int) -> None:
        """The connect completed; `events` may already say the peer spoke."""
        raise NotImplementedError

    def _readable(self, events: int) -> None:
        """A readiness edge after the connect."""

    def _timed_out(self) -> str:
        """The failure detail when the deadline passes after the connect."""
        return f"timeout after {describe_timeout(self.timeout)}"

    def _close(self) -> None:
        sock = self.sock
        if sock is not None:
            self.sock = None
            readiness = self._readiness
            readiness.forget(self.fd, unregister=False)
            readiness.ended()
            if not self.RST_AT_OPEN and not self.peer_closed:
                # Closing first (a timeout, an answer complete before the
                # server's FIN): RST, no TIME_WAIT (see the header).
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
            sock.close()
        if self._soon is not None:
            self._soon.cancel()
            self._soon = None

    def finish(self, ok: bool, detail: str) -> None:
        """Close the socket, then report (exactly once)."""
        self._close()
        self._on_done(ProbeResult(ok=ok, detail=detail, latency=self.elapsed()))

    def elapsed(self) -> float:
        """Seconds since the start, at the current wake-up (edge or deadline)."""
        return self._readiness.now - self.started

    def finish_with(self, result: ProbeResult) -> None:
        self._close()
        self._on_done(result)

    def cancel(self) -> None:
        """Stop without a result; the socket is closed."""
        self._close()


class TcpAttempt(ConnectAttempt):
    """TCP_CHECK: up once the connection is accepted."""

    __slots__ = ()

    def _connected(self, events: int) -> None:
        self.finish(True, "connected")


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


async def await_attempt(start: Callable[[ProbeDone], ConnectAttempt]) -> ProbeResult:
    """Run one callback attempt as a coroutine; cancellation closes its socket."""
    loop = running_loop()
    fut: asyncio.Future[ProbeResult] = loop.create_future()
    attempt = start(fut.set_result)
    try:
        return await fut
    finally:
        attempt.cancel()  # a no-op once it finished


async def check_tcp(
    address: str,
    port: int,
    timeout: float,  # noqa: ASYNC109 - the probe enforces its own deadline (see header)
    *,
    bind_address: str | None = None,
) -> ProbeResult:
    """Up when a TCP connection to address:port is accepted within `timeout`."""
    loop = running_loop()
    return await await_attempt(
        lambda done: TcpAttempt(
            loop, done, address, port, timeout=timeout, bind_address=bind_address
        )
    )


class TcpPlan:
    """A TCP_CHECK with everything per check worked out once (see checkers/probe.py)."""

    __slots__ = ("address", "bind_address", "port", "timeout")

    def __init__(self, spec: TcpCheck, target: Target) -> None:
        self.address = str(target.address)
        self.port = probe_port(spec, target)
        self.timeout = spec.timing.timeout
        self.bind_address = None if spec.bind_address is None else str(spec.bind_address)

    def start(
        self, loop: asyncio.AbstractEventLoop, on_done: ProbeDone, started: float | None = None
    ) -> ConnectAttempt:
        return TcpAttempt(
            loop,
            on_done,
            self.address,
            self.port,
            timeout=self.timeout,
            bind_address=self.bind_address,
            started=started,
        )


def plan(spec: TcpCheck, target: Target) -> TcpPlan:
    return TcpPlan(spec, target)


async def probe(spec: TcpCheck, target: Target) -> ProbeResult:
    """The TCP_CHECK of ``spec`` against ``target`` (run_probe's entry point)."""
    tcp_plan = TcpPlan(spec, target)
    loop = running_loop()
    return await await_attempt(lambda done: tcp_plan.start(loop, done))
