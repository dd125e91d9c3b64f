"""VRRP in its own process: keepalived's VRRP child, for the same reason.

A thread of the daemon is not enough. The checkers of a thousand real servers keep
the interpreter busy, and a VRRP thread, even in SCHED_RR, still waits for the GIL
before it can send its advert or read the master's: measured in bench/vrrp_soak.py,
146 false takeovers in 17 minutes at 0.05 s adverts. In a process of its own
(which runs `haipvs.vrrp_part.LinuxVrrpPart`, whose VRRP thread is in SCHED_RR)
VRRP shares no lock with the checkers and only the kernel's scheduler stands
between a timer and its advert.

The supervisor talks to the child through `VrrpProcessPart`, which has the same
interface as `LinuxVrrpPart`. They share a socketpair and exchange length-prefixed
pickled messages: both ends are the same installed haipvs, started by the same root.

- **Parent to child:** start (instances, logging, optional ports factory), update,
  stop.
- **Child to parent:** each transition as it happens, the instances' status every
  half second and after each transition, and the replies.

Lifetime:

- **Child dies unexpectedly:** the parent logs `vrrp.process.died` and starts a new
  one, as keepalived respawns its VRRP child. The backoff starts at 1 s and doubles.
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
import importlib
import os
import pickle
import resource
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

import vrrp
from haipvs.logs import LoggingSettings, configure_logging, current_logging
from haipvs.status.snapshot import InstanceView

__all__ = ["VrrpProcessError", "VrrpProcessPart", "child_main"]

log = structlog.get_logger()

TransitionCallback = Callable[[str, str, str, str, str], None]

#: The child pushes its instances' status this often (counters, lag) and after every
#: transition; the status API shows at most this much staleness for counters.
STATUS_INTERVAL = 0.5
#: How long the parent waits for the child to start its instances or apply a reload.
REPLY_TIMEOUT = 60.0
#: A graceful stop: every instance resigns and its stop hooks run (each bounded).
STOP_TIMEOUT = 30.0
_RESPAWN_FIRST, _RESPAWN_MAX = 1.0, 30.0
_PR_SET_PDEATHSIG = 1
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


async def _receive(reader: asyncio.StreamReader) -> object | None:
    """The next message, or None at end of stream."""
    try:
        header = await reader.readexactly(_FRAME.size)
        (length,) = _FRAME.unpack(header)
        message: object = pickle.loads(await reader.readexactly(length))
    except asyncio.IncompleteReadError:
        return None
    return message


# --- parent side -----------------------------------------------------------------------------


class VrrpProcessPart:
    """The supervisor's VRRP part, run in a child process (see the module docstring)."""

    def __init__(
        self,
        instances: Sequence[vrrp.InstanceSettings],
        on_transition: TransitionCallback,
        *,
        ports: str | None = None,
        python: str = sys.executable,
    ) -> None:
        self._instances = tuple(instances)
        self._on_transition = on_transition
        self._ports = ports
        self._python = python
        self._process: subprocess.Popen[bytes] | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._respawn_task: asyncio.Task[None] | None = None
        self._reply: asyncio.Future[_Reply] | None = None
        self._request_lock = asyncio.Lock()
        self._stopping = False
        self._views: tuple[InstanceView, ...] = ()
        self._loop_lag = 0.0
        self._respawn_delay = _RESPAWN_FIRST
        self._restarts = 0

    @property
    def pid(self) -> int | None:
        """The VRRP process, while one runs."""
        return self._process.pid if self._process is not None else None

    async def start(self) -> None:
        self._stopping = False
        await self._spawn()

    async def update(self, instances: Sequence[vrrp.InstanceSettings]) -> None:
        self._instances = tuple(instances)
        await self._request(_Update(self._instances, current_logging()), REPLY_TIMEOUT)

    async def stop(self) -> None:
        self._stopping = True
        if self._respawn_task is not None:
            self._respawn_task.cancel()
        process = self._process
        if process is None:
            return
        with contextlib.suppress(VrrpProcessError, ConnectionError):
            await self._request(_Stop(), STOP_TIMEOUT)
        try:
            await asyncio.to_thread(process.wait, STOP_TIMEOUT)
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
        try:
            # Started from the loop's thread: PR_SET_PDEATHSIG follows the thread that
            # forked, and this one lives as long as the daemon.
            process = subprocess.Popen(  # noqa: ASYNC220 - must fork from this thread
                [self._python, "-c", "import haipvs.vrrp_process as m; m.child_main()",
                 str(child_end.fileno()), str(os.getpid())],
                pass_fds=(child_end.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        except OSError as error:
            parent_end.close()
            raise VrrpProcessError(f"cannot start the VRRP process: {error}") from error
        finally:
            child_end.close()
        self._process = process
        reader, writer = await asyncio.open_unix_connection(sock=parent_end)
        self._writer = writer
        self._reader_task = asyncio.create_task(self._read(reader, process), name="vrrp-ipc")
        try:
            await self._request(_Start(self._instances, current_logging(), self._ports),
                                REPLY_TIMEOUT)
        except BaseException:
            self._process = None  # its end of stream is no death to respawn from
            process.kill()
            await asyncio.to_thread(process.wait)
            await self._close()
            raise
        log.info("vrrp.process.started", pid=process.pid, instances=len(self._instances))

    async def _request(self, message: object, wait_up_to: float) -> None:
        async with self._request_lock:
            writer = self._writer
            if writer is None:
                raise VrrpProcessError("the VRRP process is not running")
            reply: asyncio.Future[_Reply] = asyncio.get_running_loop().create_future()
            self._reply = reply
            try:
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

    async def _read(self, reader: asyncio.StreamReader, process: subprocess.Popen[bytes]) -> None:
        while (message := await _receive(reader)) is not None:
            if isinstance(message, _Transitioned):
                try:
                    self._on_transition(message.instance, message.from_state,
                                        message.to_state, message.reason, message.detail)
                except Exception:  # the reader must outlive a bug in one follower
                    log.exception("vrrp.process.callback_failed", instance=message.instance)
            elif isinstance(message, _Status):
                self._views, self._loop_lag = message.views, message.loop_lag
                self._respawn_delay = _RESPAWN_FIRST  # it has been up long enough to report
            elif isinstance(message, _Reply) and self._reply and not self._reply.done():
                self._reply.set_result(message)
        # End of stream: the child exited (or closed its end).
        if self._reply is not None and not self._reply.done():
            self._reply.set_exception(VrrpProcessError("the VRRP process exited"))
        if self._stopping or self._process is not process:
            return
        code = await asyncio.to_thread(process.wait)
        self._views = ()
        self._restarts += 1
        log.error("vrrp.process.died", pid=process.pid, exit=_describe_exit(code),
                  restart_in_s=self._respawn_delay, restarts=self._restarts)
        self._respawn_task = asyncio.create_task(self._respawn(), name="vrrp-respawn")

    async def _respawn(self) -> None:
        await self._close()
        while not self._stopping:
            await asyncio.sleep(self._respawn_delay)
            self._respawn_delay = min(self._respawn_delay * 2, _RESPAWN_MAX)
            try:
                await self._spawn()
                return
            except VrrpProcessError as error:
                log.error("vrrp.process.restart_failed", error=str(error),
                          restart_in_s=self._respawn_delay)

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
    fd, parent = int(sys.argv[1]), int(sys.argv[2])
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        sys.exit(0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    with contextlib.suppress(ValueError, OSError):  # a hard limit set lower by the admin
        resource.setrlimit(resource.RLIMIT_RTTIME, RT_CPU_LIMIT_US)
    sys.exit(asyncio.run(_serve(socket.socket(fileno=fd))))


def _resolve_ports(reference: str | None) -> Callable[[], vrrp.PortsProvider] | None:
    if reference is None:
        return None
    module, _, name = reference.partition(":")
    factory: Callable[[], vrrp.PortsProvider] = getattr(importlib.import_module(module), name)
    return factory


#: Exit status of a VRRP process whose VRRP thread died: non-zero, so the parent
#: respawns it (sysexits EX_SOFTWARE).
THREAD_DIED_EXIT = 70


async def _serve(sock: socket.socket) -> int:
    from haipvs.vrrp_part import LinuxVrrpPart

    reader, writer = await asyncio.open_unix_connection(sock=sock)
    start = await _receive(reader)
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
        while (message := await _receive(reader)) is not None:
            if isinstance(message, _Stop):
                break
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
        return THREAD_DIED_EXIT
    started = time.monotonic()
    await part.stop()
    log.info("vrrp.process.stopped", took_ms=round((time.monotonic() - started) * 1000, 1))
    with contextlib.suppress(ConnectionError):
        await _send(writer, _Reply(None))
        writer.close()
    return 0


def _configure(settings: LoggingSettings) -> None:
    configure_logging(director=settings.director, log_format=settings.log_format,
                      level=settings.level)

