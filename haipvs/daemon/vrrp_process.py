"""VRRP in its own process: keepalived's VRRP child, for the same reason.

A thread of the daemon is not enough. The checkers of a thousand real servers keep
the interpreter busy, and a VRRP thread, even in SCHED_RR, still waits for the GIL
before it can send its advert or read the master's: measured in bench/vrrp_soak.py,
146 false takeovers in 17 minutes at 0.05 s adverts. In a process of its own
(which runs `haipvs.daemon.vrrp_part.LinuxVrrpPart`, whose VRRP thread is in SCHED_RR)
VRRP shares no lock with the checkers and only the kernel's scheduler stands
between a timer and its advert.

The supervisor talks to the child through `VrrpProcessPart`, which has the same
interface as `LinuxVrrpPart`. They share a socketpair and exchange length-prefixed
pickled messages: both ends are the same installed haipvs, started by the same root.

- **Parent to child:** start (instances, logging, optional ports factory), update,
  stop.
- **Child to parent:** each transition as it happens, the instances' status every
  half second and after each transition, and the replies.

Start-up: the daemon's first VRRP process is forked from the daemon itself, early in
its start-up (before the IPVS table, the checkers or the status API open a socket), so it
begins with every module already imported: no second interpreter start, no second import
of the VRRP stack (about 0.7 s of CPU in the lab guest, and it ran while the checkers
started). A process started again after a death is a fresh interpreter (exec), as before.

Lifetime:

- **Child dies unexpectedly:** the parent notices it by whichever comes first: the
  end of the stream, any read error (a child that dies with a message unread leaves
  ECONNRESET, not a clean end), a garbled message, or the process's own exit (a
  pidfd: a script the child started may still hold the socket open). It reaps it,
  forgets its status (no MASTER from a dead child), removes the VIPs the dead child
  may have left on the interfaces, logs `vrrp.process.died` (with the VIPs it
  removed) and starts a new one, as keepalived respawns its VRRP child. The VIPs go
  at once because nothing defends them any more: the peer takes over when its
  Master_Down_Timer fires (RFC 5798 §6.4.2), and a new child clears them only once it
  has started (§6.4.1), a fresh interpreter seconds later; until then both directors
  would answer ARP for the VIP. The wait before the
  restart starts at 1 s and doubles up to 30 s; a child that ran for a minute
  starts the sequence again (`haipvs.respawn.RespawnBackoff`).
- **Import path:** the child runs ``python -P`` in ``/``: the working directory the
  daemon was started from is never on its ``sys.path`` (a ``vrrp/`` folder there
  would otherwise be imported, as root).
- **Parent dies:** the kernel sends the child SIGTERM (PR_SET_PDEATHSIG), and the
  child resigns as a graceful stop does: priority-0 adverts, VIPs removed.
- **SIGINT and SIGHUP:** the child ignores both. They are the parent's to act on.
- **The lab's crash:** it kills the whole process group.
- **systemd:** the unit's KillMode=mixed signals only the parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import importlib
import os
import pickle
import resource
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Interface, IPv6Interface

import structlog

import vrrp
from haipvs.logs import LoggingSettings, configure_logging, current_logging
from haipvs.respawn import RespawnBackoff
from haipvs.status.snapshot import InstanceView

__all__ = ["VrrpProcessError", "VrrpProcessPart", "child_main"]

log = structlog.get_logger()

TransitionCallback = Callable[[str, str, str, str, str], None]

#: The child pushes its instances' status this often (counters, lag) and after every
#: transition; the status API shows at most this much staleness for counters.
STATUS_INTERVAL = 0.5
#: How long the parent waits for the child to start its instances or apply a reload.
REPLY_TIMEOUT = 30.0
#: A graceful stop: every instance resigns and its stop hooks run (each bounded). With
#: the kill and the reap after it, this fits under the unit's TimeoutStopSec=20s.
STOP_TIMEOUT = 10.0
#: Without pidfd_open (Linux < 5.3), how often the parent polls for the child's exit.
_POLL_EXIT = 0.5
#: After the child's exit, how long its last messages may take to arrive.
_DRAIN_AFTER_EXIT = 0.5
_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15
#: The VRRP process's name in ps, top and /proc/PID/comm, forked or exec'd alike.
PROCESS_NAME = b"haipvs-vrrp"
#: keepalived ``vrrp_rlimit_rttime``: CPU time (µs) the real-time VRRP thread may use
#: without blocking. VRRP sleeps between adverts; a thread that spins in SCHED_RR would
#: starve the machine. Past the soft limit the kernel sends SIGXCPU (the process dies,
#: the daemon starts a new one), past the hard limit SIGKILL.
RT_CPU_LIMIT_US = (2_000_000, 3_000_000)
_FRAME = struct.Struct("!I")


class VrrpProcessError(RuntimeError):
    """The VRRP process refused a request, or could not be started."""


# --- messages --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Start:
    instances: tuple[vrrp.InstanceSettings, ...]
    logging: LoggingSettings | None
    ports: str | None  # "module:callable" building a vrrp.PortsProvider (tests), else Linux


@dataclass(frozen=True, slots=True)
class _Update:
    instances: tuple[vrrp.InstanceSettings, ...]
    logging: LoggingSettings | None


@dataclass(frozen=True, slots=True)
class _Stop:
    pass


@dataclass(frozen=True, slots=True)
class _Holds:
    holds: tuple[tuple[str, str], ...]  # haipvs failover: instance -> reason


@dataclass(frozen=True, slots=True)
class _Reply:
    error: str | None  # None: done


@dataclass(frozen=True, slots=True)
class _Transitioned:
    instance: str
    from_state: str
    to_state: str
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class _Status:
    views: tuple[InstanceView, ...]
    loop_lag: float


async def _send(writer: asyncio.StreamWriter, message: object) -> None:
    _write(writer, message)
    await writer.drain()


def _write(writer: asyncio.StreamWriter, message: object) -> None:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    writer.write(_FRAME.pack(len(body)) + body)


class _StreamLostError(Exception):
    """The other end is gone: why, for the log."""


async def _receive(reader: asyncio.StreamReader) -> object | None:
    """The next message, or None at a clean end of stream; `_StreamLostError` otherwise."""
    try:
        header = await reader.readexactly(_FRAME.size)
        (length,) = _FRAME.unpack(header)
        body = await reader.readexactly(length)
    except asyncio.IncompleteReadError as error:
        if error.partial:
            raise _StreamLostError("end of stream inside a message") from error
        return None
    except OSError as error:  # ECONNRESET: the peer died with our message unread
        raise _StreamLostError(f"read failed: {error}") from error
    try:
        message: object = pickle.loads(body)
    except Exception as error:
        raise _StreamLostError(f"garbled message: {error!r}") from error
    return message


async def _exit_of(process: _Child) -> int:
    """Wait for ``process`` to exit without blocking the loop, and reap it."""
    loop = asyncio.get_running_loop()
    try:
        pidfd = os.pidfd_open(process.pid)
    except OSError:  # no pidfd (Linux < 5.3), or already reaped
        while (code := process.poll()) is None:  # noqa: ASYNC110 - nothing to wait on
            await asyncio.sleep(_POLL_EXIT)
        return code
    exited: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(pidfd, readable)
    try:
        await exited
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
    code = process.poll()  # readable pidfd: exited, so this reaps without blocking
    return code if code is not None else await asyncio.to_thread(process.wait)


# --- parent side -----------------------------------------------------------------------------


class _ForkedChild:
    """A VRRP process forked from the daemon: the part of ``subprocess.Popen`` we use."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._lock = threading.Lock()

    @classmethod
    def fork(cls, child_end: socket.socket, parent_end: socket.socket,
             start: _Start) -> _ForkedChild:
        """Fork the VRRP process; it starts ``start`` at once (it has it in memory: no
        round trip through the socket, no wait for this process's loop to send it)."""
        parent = os.getpid()
        # The objects this process built so far live as long as it does: out of the
        # collector's reach, the child's collections do not touch (and copy, page by
        # page: costly where a fork is costly, as under user-mode Linux) every one of
        # them (gc.freeze's documented use before a fork).
        gc.freeze()
        # Signals stay blocked across the fork: until the child has let go of the
        # daemon's signal handlers and wake-up fd, a signal sent to it must not reach
        # the daemon's event loop (it would read as the daemon's own SIGTERM).
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        try:
            pid = os.fork()
            if pid == 0:  # the VRRP process
                code = 1
                try:
                    parent_end.close()
                    _forked_child_main(child_end.fileno(), parent, mask, start)
                    code = 0
                finally:
                    os._exit(code)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        return cls(pid)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                if self.returncode is not None:
                    return self.returncode
                try:
                    pid, status = os.waitpid(self.pid, os.WNOHANG)
                except ChildProcessError:  # reaped elsewhere: should not happen
                    self.returncode = -signal.SIGKILL
                    return self.returncode
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
                    return self.returncode
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"VRRP process {self.pid}", timeout or 0.0)
            time.sleep(0.01)

    def poll(self) -> int | None:
        """Its exit code once it exited (reaping it), else None: ``Popen.poll``."""
        with self._lock:
            if self.returncode is None:
                try:
                    pid, status = os.waitpid(self.pid, os.WNOHANG)
                except ChildProcessError:  # reaped elsewhere: should not happen
                    self.returncode = -signal.SIGKILL
                else:
                    if pid:
                        self.returncode = os.waitstatus_to_exitcode(status)
            return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


_Child = subprocess.Popen[bytes] | _ForkedChild


class VrrpProcessPart:
    """The supervisor's VRRP part, run in a child process (see the module docstring)."""

    def __init__(
        self,
        instances: Sequence[vrrp.InstanceSettings],
        on_transition: TransitionCallback,
        *,
        ports: str | None = None,
        python: str = sys.executable,
        clock: Callable[[], float] = time.monotonic,
        fork_first: bool = False,
        addresses: vrrp.VipAddresses | None = None,
    ) -> None:
        """``addresses``: where the parent removes a dead child's VIPs; by default this
        host's (rtnetlink) when the child runs the real ports, none with test ports (a
        child on fake ports left nothing in the kernel)."""
        self._instances = tuple(instances)
        self._on_transition = on_transition
        self._ports = ports
        self._python = python
        self._fork_first = fork_first  # the first process forked (see the module docstring)
        self._process: _Child | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._respawn_task: asyncio.Task[None] | None = None
        self._reply: asyncio.Future[_Reply] | None = None
        self._request_lock = asyncio.Lock()
        self._stopping = False
        self._views: tuple[InstanceView, ...] = ()
        self._loop_lag = 0.0
        self._clock = clock
        self._up = False
        self._backoff = RespawnBackoff()
        self._restarts = 0
        self._holds: tuple[tuple[str, str], ...] = ()
        if addresses is None and ports is None:
            addresses = vrrp.LinuxVipAddresses()
        self._addresses = addresses

    @property
    def pid(self) -> int | None:
        """The VRRP process, while one runs."""
        return self._process.pid if self._process is not None else None

    async def start(self) -> None:
        self._stopping = False
        await self._spawn()

    async def update(self, instances: Sequence[vrrp.InstanceSettings]) -> None:
        new = tuple(instances)
        # Adopted only once the child applied it: after a failure the supervisor updates
        # back to the running config, and a respawn must start what the child ran.
        await self._request(_Update(new, current_logging()), REPLY_TIMEOUT)
        self._instances = new

    async def set_holds(self, holds: Mapping[str, str]) -> None:
        """``haipvs failover`` holds (instance -> reason); a new VRRP process gets them too."""
        self._holds = tuple(sorted(holds.items()))
        await self._request(_Holds(self._holds), REPLY_TIMEOUT)

    async def stop(self) -> None:
        self._stopping = True
        if self._respawn_task is not None:
            self._respawn_task.cancel()
        process = self._process
        if process is None:
            await self._close()
            return
        # One budget for the request and the exit together (it used to be 30 s each).
        deadline = time.monotonic() + STOP_TIMEOUT
        with contextlib.suppress(VrrpProcessError, ConnectionError):
            await self._request(_Stop(), STOP_TIMEOUT)
        try:
            await asyncio.to_thread(process.wait, max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.error("vrrp.process.killed", pid=process.pid,
                      reason=f"no exit {STOP_TIMEOUT:g} s after stop")
            process.kill()
            await asyncio.to_thread(process.wait)
        await self._close()
        self._views = ()

    def views(self) -> tuple[InstanceView, ...]:
        return self._views

    def loop_lag(self) -> float:
        return self._loop_lag

    def restarts(self) -> int:
        return self._restarts

    # --- internals -------------------------------------------------------------------------

    async def _spawn(self) -> None:
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        process: _Child
        start = _Start(self._instances, current_logging(), self._ports)
        start_sent = False
        try:
            # Started from the loop's thread: PR_SET_PDEATHSIG follows the thread that
            # forked, and this one lives as long as the daemon.
            if self._fork_first and self._restarts == 0:
                self._fork_first = False
                process = _ForkedChild.fork(child_end, parent_end, start)
                start_sent = True
            else:
                process = subprocess.Popen(  # noqa: ASYNC220 - must fork from this thread
                    # -P and cwd "/": the daemon's working directory is never on the
                    # child's import path (python -c would put it first).
                    [self._python, "-P", "-c",
                     "import haipvs.daemon.vrrp_process as m; m.child_main()",
                     str(child_end.fileno()), str(os.getpid())],
                    pass_fds=(child_end.fileno(),),
                    stdin=subprocess.DEVNULL,
                    cwd="/",
                )
        except OSError as error:
            parent_end.close()
            raise VrrpProcessError(f"cannot start the VRRP process: {error}") from error
        finally:
            child_end.close()
        self._process = process
        self._up = False  # until it acknowledges Start: a death before is _spawn's to report
        reader, writer = await asyncio.open_unix_connection(sock=parent_end)
        self._writer = writer
        self._reader_task = asyncio.create_task(self._watch(reader, process), name="vrrp-ipc")
        try:
            await self._request(start, REPLY_TIMEOUT, sent=start_sent)
            if self._holds:  # a respawned process keeps the operator's holds
                await self._request(_Holds(self._holds), REPLY_TIMEOUT)
        except BaseException:
            self._process = None  # its end of stream is no death to respawn from
            process.kill()
            await asyncio.to_thread(process.wait)
            await self._close()
            raise
        self._up = True
        self._backoff.started(self._clock())
        log.info("vrrp.process.started", pid=process.pid, instances=len(self._instances))

    async def _request(self, message: object, wait_up_to: float, *, sent: bool = False) -> None:
        """Send ``message`` (unless the child has it already: ``sent``) and wait for the
        reply."""
        async with self._request_lock:
            writer = self._writer
            if writer is None:
                raise VrrpProcessError("the VRRP process is not running")
            reply: asyncio.Future[_Reply] = asyncio.get_running_loop().create_future()
            self._reply = reply
            try:
                if not sent:
                    await _send(writer, message)
                async with asyncio.timeout(wait_up_to):
                    answer = await reply
            except TimeoutError as error:
                raise VrrpProcessError(
                    f"the VRRP process did not answer {type(message).__name__.lstrip('_')} "
                    f"within {wait_up_to:g} s"
                ) from error
            finally:
                self._reply = None
        if answer.error is not None:
            raise VrrpProcessError(answer.error)

    async def _watch(self, reader: asyncio.StreamReader,
                     process: _Child) -> None:
        """Read the child's messages until it is gone, however it goes; then respawn it."""
        reading = asyncio.create_task(self._read(reader), name="vrrp-ipc-read")
        exited = asyncio.create_task(_exit_of(process), name="vrrp-exit")
        try:
            await asyncio.wait([reading, exited], return_when=asyncio.FIRST_COMPLETED)
            if not reading.done():
                # Exited: read what it sent before dying (its last transitions), unless
                # a process it started holds the socket open and the end never comes.
                await asyncio.wait([reading], timeout=_DRAIN_AFTER_EXIT)
            noticed = reading.result() if reading.done() else "process exit"
            # Whatever we noticed first, the child is dead to us: no more MASTER from it.
            self._views = ()
            if self._reply is not None and not self._reply.done():
                self._reply.set_exception(VrrpProcessError(f"the VRRP process ended: {noticed}"))
            if self._stopping or self._process is not process or not self._up:
                return
            if not exited.done():  # its stream is broken but it runs: it cannot be told
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            code = await exited
        finally:
            reading.cancel()
            exited.cancel()
        self._views = ()  # again: nothing read while it was being killed counts
        released, release_errors = await self._release_vips()
        self._restarts += 1
        delay = self._backoff.died(self._clock())
        log.error("vrrp.process.died", pid=process.pid, exit=_describe_exit(code),
                  noticed=noticed, restart_in_s=delay, restarts=self._restarts,
                  vips_released=released,
                  **({"release_errors": release_errors} if release_errors else {}))
        self._respawn_task = asyncio.create_task(self._respawn(delay), name="vrrp-respawn")

    async def _read(self, reader: asyncio.StreamReader) -> str:
        """Dispatch the child's messages; why the stream ended."""
        while True:
            try:
                message = await _receive(reader)
            except _StreamLostError as lost:
                return str(lost)
            if message is None:
                return "end of stream"
            if isinstance(message, _Transitioned):
                try:
                    self._on_transition(message.instance, message.from_state,
                                        message.to_state, message.reason, message.detail)
                except Exception:  # the reader must outlive a bug in one follower
                    log.exception("vrrp.process.callback_failed", instance=message.instance)
            elif isinstance(message, _Status):
                self._views, self._loop_lag = message.views, message.loop_lag
            elif isinstance(message, _Reply) and self._reply and not self._reply.done():
                self._reply.set_result(message)

    async def _release_vips(self) -> tuple[list[str], list[str]]:
        """Remove every VIP of the dead child's instances that an interface still holds
        (see the module docstring); which were removed, and what failed. A failure is
        reported, never raised: the respawn must happen whatever the kernel says."""
        if self._addresses is None:
            return [], []
        released: list[str] = []
        errors: list[str] = []
        by_interface: dict[str, list[IPv4Interface | IPv6Interface]] = {}
        for settings in self._instances:
            for interface, address in settings.vip_placements():
                by_interface.setdefault(interface, []).append(address)
        for interface, addresses in by_interface.items():
            try:
                held = set(await self._addresses.list(interface))
                for address in addresses:
                    if address in held:
                        await self._addresses.remove(interface, address)
                        released.append(f"{address} dev {interface}")
            except vrrp.VrrpIoError as error:  # e.g. a VMAC interface gone with the child
                errors.append(str(error))
        return released, errors

    async def _respawn(self, delay: float) -> None:
        await self._close()
        while not self._stopping:
            await asyncio.sleep(delay)
            try:
                await self._spawn()
                return
            except VrrpProcessError as error:
                delay = self._backoff.failed()
                log.error("vrrp.process.restart_failed", error=str(error), restart_in_s=delay)

    async def _close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        task = self._reader_task
        if task is not None and task is not asyncio.current_task() and not task.done():
            # Its last act (seeing the end of the stream) is moot once we close.
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._process = None


def _describe_exit(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"


# --- child side ------------------------------------------------------------------------------


def child_main() -> None:
    """Entry point of the VRRP process: ``argv`` is the socket's fd and the parent's pid."""
    _child_run(int(sys.argv[1]), int(sys.argv[2]))


#: The daemon's event loop as a forked child inherited it: kept referenced, never closed or
#: collected (closing it would act on the daemon's signal handlers and wake-up socket).
_inherited: list[object] = []


def _forked_child_main(
    fd: int, parent: int, mask: set[int | signal.Signals], start: _Start,
) -> None:
    """Entry point of a VRRP process forked from the daemon (signals blocked on entry)."""
    # Let go of the daemon's event loop: its signal wake-up fd, its handlers, its
    # running-loop mark (asyncio.run refuses to start inside a running loop).
    signal.set_wakeup_fd(-1)
    for signum in (signal.SIGTERM, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)
    _inherited.append(asyncio.events._get_running_loop())
    asyncio.events._set_running_loop(None)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    # The daemon starts with the collector off (haipvs.cli) and turns it on once started;
    # this process runs for as long as the daemon and turns it on now.
    gc.enable()
    _child_run(fd, parent, start)


def _child_run(fd: int, parent: int, start: _Start | None = None) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    # One name for the VRRP process whether it was forked (it would show the daemon's
    # name) or exec'd (python3): `ps -C haipvs-vrrp`, and tools that tell it from scripts.
    libc.prctl(_PR_SET_NAME, ctypes.c_char_p(PROCESS_NAME), 0, 0, 0)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        sys.exit(0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # the parent's state dump, not ours
    with contextlib.suppress(ValueError, OSError):  # a hard limit set lower by the admin
        resource.setrlimit(resource.RLIMIT_RTTIME, RT_CPU_LIMIT_US)
    sys.exit(asyncio.run(_serve(socket.socket(fileno=fd), start)))


def _resolve_ports(reference: str | None) -> Callable[[], vrrp.PortsProvider] | None:
    if reference is None:
        return None
    module, _, name = reference.partition(":")
    factory: Callable[[], vrrp.PortsProvider] = getattr(importlib.import_module(module), name)
    return factory


#: Exit status of a VRRP process whose VRRP thread died: non-zero, so the parent
#: respawns it (sysexits EX_SOFTWARE).
THREAD_DIED_EXIT = 70


async def _serve(sock: socket.socket, inherited: _Start | None = None) -> int:
    """Run the VRRP part: ``inherited`` is the start request a forked child was born
    with; an exec'd one reads it from the socket first."""
    from haipvs.daemon.vrrp_part import LinuxVrrpPart

    reader, writer = await asyncio.open_unix_connection(sock=sock)
    start: object = inherited
    if start is None:
        try:
            start = await _receive(reader)
        except _StreamLostError:
            return 0
    if not isinstance(start, _Start):
        return 0
    if start.logging is not None:
        _configure(start.logging)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

    status_wanted = asyncio.Event()

    def transitioned(instance: str, old: str, new: str, reason: str, detail: str) -> None:
        _write(writer, _Transitioned(instance, old, new, reason, detail))
        status_wanted.set()

    # The VRRP thread died (a bug, not a stop): VIPs may be up with no adverts
    # behind them. Exit non-zero at once; the parent respawns the process and
    # the new one starts every instance in BACKUP, removing stale VIPs.
    died = asyncio.Event()
    try:
        part = LinuxVrrpPart(
            start.instances,
            transitioned,
            ports=_resolve_ports(start.ports),
            on_failure=lambda _exc: died.set(),
        )
        await part.start()
    except Exception as error:  # reported to the parent, which names it in its error
        await _send(writer, _Reply(f"VRRP start failed: {error!r}"))
        return 0
    await _send(writer, _Reply(None))

    async def report() -> None:
        while True:
            status_wanted.clear()
            # views() waits for the VRRP thread's answer: never in this loop's thread.
            views = await asyncio.to_thread(part.views)
            await _send(writer, _Status(views, part.loop_lag()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STATUS_INTERVAL):
                    await status_wanted.wait()

    async def requests() -> None:
        while (message := await _receive_or_end(reader)) is not None:
            if isinstance(message, _Stop):
                break
            if isinstance(message, _Holds):
                try:
                    await part.set_holds(dict(message.holds))
                except Exception as error:  # the operator's command reports it
                    await _send(writer, _Reply(f"VRRP failover failed: {error!r}"))
                else:
                    await _send(writer, _Reply(None))
                    status_wanted.set()
            if isinstance(message, _Update):
                if message.logging is not None:
                    _configure(message.logging)
                try:
                    await part.update(message.instances)
                except Exception as error:  # the parent's reload reports it
                    await _send(writer, _Reply(f"VRRP update failed: {error!r}"))
                else:
                    await _send(writer, _Reply(None))
                    status_wanted.set()

    tasks = [asyncio.create_task(report()), asyncio.create_task(requests())]
    stopper = asyncio.create_task(stop.wait())
    dead = asyncio.create_task(died.wait())
    # A stop request, the parent's end closing, or SIGTERM: resign gracefully.
    await asyncio.wait([tasks[1], stopper, dead], return_when=asyncio.FIRST_COMPLETED)
    for task in (*tasks, stopper, dead):
        task.cancel()
    if died.is_set():
        log.error("vrrp.process.thread_died", exit_status=THREAD_DIED_EXIT)
        # At once, socket still open: the parent learns the exit status from the
        # exit itself, not from an end of stream that would come first otherwise.
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(THREAD_DIED_EXIT)
    started = time.monotonic()
    await part.stop()
    log.info("vrrp.process.stopped", took_ms=round((time.monotonic() - started) * 1000, 1))
    with contextlib.suppress(ConnectionError):
        await _send(writer, _Reply(None))
        writer.close()
    return 0


async def _receive_or_end(reader: asyncio.StreamReader) -> object | None:
    """The child's view: a broken stream from the parent is its end, a graceful stop."""
    try:
        return await _receive(reader)
    except _StreamLostError:
        return None


def _configure(settings: LoggingSettings) -> None:
    configure_logging(director=settings.director, log_format=settings.log_format,
                      level=settings.level)

