"""The thin IO around process and file tracking: /proc reads, file reads, inotify.

The decisions are in ``vrrp.track_process`` and ``vrrp.track_file``; this module only
feeds them and tells the instance tracker (``vrrp.track``) when an item moved.

- Processes: /proc is read every ``interval`` (the lab kernel, like many, has no proc
  connector, so there are no fork/exit events to wait for), sooner when a pending
  ``fork_delay`` / ``terminate_delay`` ends. A process that exits while it is read, or
  that /proc hides (``ProtectProc=invisible`` hides other users' processes: see
  packaging/README.md), is simply not counted.
- Files: read at start, then whenever inotify reports a write, a rename or a removal
  in the file's directory (atomic ``mv`` replacements included); every ``interval``
  as well, as the only way where inotify is not available.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import struct
from collections.abc import Awaitable, Callable, Iterable, Sequence

import structlog

from trackfile import read_number
from vrrp.track_file import FileEffect, TrackFile, file_effect
from vrrp.track_process import ProcessQuorum, ProcessView, TrackProcess, count_matching
from vrrp.track_verdict import TrackedItem

__all__ = [
    "FileWatch",
    "ProcessWatch",
    "TrackedItem",
    "proc_hidden",
    "read_processes",
    "read_value",
]

log = structlog.get_logger()

Publish = Callable[[], Awaitable[None]]
ProcessReader = Callable[[], Sequence[ProcessView]]
Clock = Callable[[], float]


def read_processes(root: str = "/proc") -> list[ProcessView]:
    """Every process /proc lets us see: pid, comm and argv (empty for kernel threads)."""
    found: list[ProcessView] = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return found
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            with open(os.path.join(entry.path, "comm"), "rb") as handle:
                comm = handle.read().decode("utf-8", "replace").rstrip("\n")
            with open(os.path.join(entry.path, "cmdline"), "rb") as handle:
                raw = handle.read()
        except OSError:
            continue  # exited while we read, or hidden from us
        argv = tuple(part.decode("utf-8", "replace") for part in raw.split(b"\0")[:-1])
        found.append(ProcessView(int(entry.name), comm, argv))
    return found


def proc_hidden(mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """The hidepid= option of our /proc when it hides other users' processes, else None.

    systemd's ProtectProc=invisible|noaccess|ptraceable mounts /proc with it.
    """
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    for line in lines:
        head, sep, tail = line.partition(" - ")
        fields = head.split()
        after = tail.split()
        if not sep or len(fields) < 5 or len(after) < 3 or fields[4] != "/proc":
            continue
        if after[0] != "proc":
            continue
        for option in after[2].split(","):
            key, _, value = option.partition("=")
            if key == "hidepid" and value not in {"0", "off"}:
                return value
    return None


class ProcessWatch:
    """The tracked processes of one instance: one /proc read serves all of them."""

    def __init__(
        self,
        specs: Sequence[TrackProcess],
        *,
        instance: str,
        read: ProcessReader = read_processes,
        clock: Clock | None = None,
    ) -> None:
        self._states = [ProcessQuorum(spec) for spec in specs]
        self._instance = instance
        self._read = read
        self._clock = clock
        self._checked_hidden = read is not read_processes  # only the real /proc is checked

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def items(self) -> list[TrackedItem]:
        return [
            (state.label(), state.spec.weight, bool(state.up))
            for state in self._states
            if state.up is not None
        ]

    async def scan(self) -> bool:
        """Read /proc once and feed every tracked process; True when one moved."""
        if not self._checked_hidden:
            self._checked_hidden = True
            hidden = proc_hidden()
            if hidden is not None:
                log.warning(
                    "vrrp.track.process.proc_hidden",
                    instance=self._instance,
                    hidepid=hidden,
                    action="other users' processes are invisible: set ProtectProc=default",
                )
        processes = await asyncio.to_thread(self._read)
        now = self._now()
        moved = False
        for state in self._states:
            if state.observe(count_matching(state.spec, processes), now):
                moved = True
                log.info(
                    "vrrp.track.process",
                    instance=self._instance,
                    process=state.spec.name,
                    to_state="running" if state.up else "not_running",
                    count=state.count,
                    weight=state.spec.weight,
                )
        return moved

    async def run(self, publish: Publish) -> None:
        if not self._states:
            return
        interval = min(state.spec.interval for state in self._states)
        while True:
            now = self._now()
            deadlines = [s.deadline for s in self._states if s.deadline is not None]
            wake = min([now + interval, *deadlines])
            await asyncio.sleep(max(0.0, wake - now))
            if await self.scan():
                await publish()


def read_value(path: str) -> tuple[int, str]:
    """The file's number and how it was read, by keepalived's one reader (trackfile)."""
    value, note = read_number(path)
    return value, note or "ok"


# inotify(7) through libc: the flags and the event header.
_IN_MODIFY = 0x00000002
_IN_CLOSE_WRITE = 0x00000008
_IN_MOVED_FROM = 0x00000040
_IN_MOVED_TO = 0x00000080
_IN_CREATE = 0x00000100
_IN_DELETE = 0x00000200
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000
_WATCH_MASK = _IN_MODIFY | _IN_CLOSE_WRITE | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE
_EVENT_HEADER = struct.Struct("iIII")


class _Inotify:
    """A non-blocking inotify descriptor watching directories; None where unavailable."""

    def __init__(self, fd: int, libc: ctypes.CDLL) -> None:
        self.fd = fd
        self._libc = libc

    @classmethod
    def open(cls, directories: Iterable[str]) -> _Inotify | None:
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name, use_errno=True)
            fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        except (OSError, AttributeError):
            return None
        if fd < 0:
            return None
        watcher = cls(fd, libc)
        watched = 0
        for directory in set(directories):
            if libc.inotify_add_watch(fd, directory.encode(), _WATCH_MASK) >= 0:
                watched += 1
        if not watched:
            watcher.close()
            return None
        return watcher

    def drain(self) -> None:
        """Read (and discard) the pending events: the caller re-reads every file."""
        try:
            while os.read(self.fd, 4096):
                pass
        except OSError:
            pass  # BlockingIOError: drained

    def close(self) -> None:
        os.close(self.fd)


class FileWatch:
    """The tracked files of one instance, re-read on inotify events and every interval."""

    def __init__(
        self,
        specs: Sequence[TrackFile],
        *,
        instance: str,
        read: Callable[[str], tuple[int, str]] = read_value,
        use_inotify: bool = True,
    ) -> None:
        self._specs = tuple(specs)
        self._instance = instance
        self._read = read
        self._use_inotify = use_inotify
        self._effects: dict[TrackFile, FileEffect] = {}

    def items(self) -> list[TrackedItem]:
        items: list[TrackedItem] = []
        for effect in self._effects.values():
            if effect.fault:
                items.append((effect.label, 0, False))
            elif effect.delta:
                items.append((effect.label, effect.delta, effect.delta > 0))
        return items

    def scan(self) -> bool:
        """Read every file; True when one's effect on the instance changed."""
        moved = False
        for spec in self._specs:
            value, how = self._read(spec.path)
            effect = file_effect(spec, value)
            if self._effects.get(spec) == effect:
                continue
            self._effects[spec] = effect
            moved = True
            log.info(
                "vrrp.track.file",
                instance=self._instance,
                file=spec.path,
                value=value,
                read=how,
                delta=effect.delta,
                fault=effect.fault,
            )
        return moved

    async def run(self, publish: Publish) -> None:
        if not self._specs:
            return
        interval = min(spec.interval for spec in self._specs)
        notify = (
            _Inotify.open(os.path.dirname(spec.path) or "/" for spec in self._specs)
            if self._use_inotify
            else None
        )
        woken = asyncio.Event()
        loop = asyncio.get_running_loop()
        if notify is not None:
            loop.add_reader(notify.fd, woken.set)
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), interval)
                woken.clear()
                if notify is not None:
                    notify.drain()
                if self.scan():
                    await publish()
        finally:
            if notify is not None:
                loop.remove_reader(notify.fd)
                notify.close()
