"""Process tracking (keepalived ``vrrp_track_process`` / ``track_process``): the pure core.

keepalived's answer to racy ``killall -0 haproxy`` / ``pidof nginx`` track scripts: the
director itself watches the process table. What is kept from keepalived.conf(5):

- a process matches by its *name* (the ``Name:`` of /proc/PID/status, the kernel's
  15-character comm) unless parameters are given or ``full_command`` is set; then the
  command line (/proc/PID/cmdline) is compared: argv[0] with ``process``, the rest with
  ``args`` exactly, or with ``param_match`` ``partial`` (the first N arguments match,
  more may follow) or ``initial`` (as partial, and the last configured argument need
  only be a prefix). ``param_match`` without arguments means "no arguments at all".
  No regular expressions: ``ssh`` does not match ``sshd`` (unlike ``pgrep ssh``).
- the tracked item is *up* while the number of matching processes is within
  ``quorum`` .. ``quorum_max``;
- ``fork_delay``: a gained quorum counts only after it held that long (a fork/exec
  bounce does not move the priority); ``terminate_delay``: likewise for a lost one (a
  parent that re-forks its worker); keepalived's ``delay`` sets both;
- ``weight`` as for scripts: 0 means FAULT while down, a positive weight is added while
  up, a negative one while down.

Pure: no IO, no clock (``now`` is passed in). The /proc reader and the poll loop are in
``vrrp.track_watch``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "COMM_LENGTH",
    "ParamMatch",
    "ProcessQuorum",
    "ProcessView",
    "TrackProcess",
    "count_matching",
    "process_matches",
]

#: The kernel keeps TASK_COMM_LEN - 1 = 15 characters of a process name.
COMM_LENGTH = 15

_MAX_WEIGHT = 253


class ParamMatch(enum.Enum):
    EXACT = "exact"  # keepalived without param_match: the arguments, all of them
    PARTIAL = "partial"
    INITIAL = "initial"


@dataclass(frozen=True, slots=True)
class TrackProcess:
    """One tracked process (keepalived ``vrrp_track_process NAME { ... }``)."""

    name: str
    process: str
    args: tuple[str, ...] | None = None  # None: match the name only (unless full_command)
    param_match: ParamMatch = ParamMatch.EXACT
    full_command: bool = False
    weight: int = 0
    quorum: int = 1
    quorum_max: int | None = None
    fork_delay: float = 0.0
    terminate_delay: float = 0.0
    interval: float = 1.0  # how often /proc is read (the kernel here has no proc connector)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("name: must not be empty")
        if not self.process:
            raise ValueError("process: must not be empty")
        if not -_MAX_WEIGHT <= self.weight <= _MAX_WEIGHT:
            raise ValueError(f"weight: {self.weight} outside -253..253")
        if self.quorum < 0:
            raise ValueError(f"quorum: {self.quorum} must be >= 0")
        if self.quorum_max is not None and self.quorum_max < self.quorum:
            raise ValueError(f"quorum_max: {self.quorum_max} is below quorum {self.quorum}")
        if self.fork_delay < 0 or self.terminate_delay < 0:
            raise ValueError("fork_delay and terminate_delay must be >= 0")
        if not self.interval > 0:
            raise ValueError(f"interval: {self.interval} must be > 0")

    @property
    def by_command_line(self) -> bool:
        return self.full_command or self.args is not None

    def in_quorum(self, count: int) -> bool:
        return count >= self.quorum and (self.quorum_max is None or count <= self.quorum_max)


@dataclass(frozen=True, slots=True)
class ProcessView:
    """One process as /proc shows it: its name (comm) and its argv (empty: a kernel thread)."""

    pid: int
    comm: str
    argv: tuple[str, ...]


def _args_match(want: Sequence[str], have: Sequence[str], mode: ParamMatch) -> bool:
    if mode is ParamMatch.EXACT:
        return tuple(want) == tuple(have)
    if len(have) < len(want):
        return False
    if mode is ParamMatch.PARTIAL or not want:
        return tuple(have[: len(want)]) == tuple(want)
    head, last = want[:-1], want[-1]
    return tuple(have[: len(head)]) == tuple(head) and have[len(head)].startswith(last)


def process_matches(spec: TrackProcess, proc: ProcessView) -> bool:
    """Whether `proc` is one of the processes `spec` counts (keepalived's exact match)."""
    if not spec.by_command_line:
        return proc.comm == spec.process[:COMM_LENGTH]
    if not proc.argv or proc.argv[0] != spec.process:
        return False
    if spec.args is None:
        return True  # full_command without parameters: argv[0] alone
    return _args_match(spec.args, proc.argv[1:], spec.param_match)


def count_matching(spec: TrackProcess, processes: Iterable[ProcessView]) -> int:
    return sum(1 for proc in processes if process_matches(spec, proc))


class ProcessQuorum:
    """Up/down of one tracked process from successive counts, with keepalived's delays.

    The first count decides at once (keepalived reads the process table at start-up).
    After that a change counts only once it has lasted ``fork_delay`` (gained) or
    ``terminate_delay`` (lost); a change that reverts within its delay is forgotten.
    """

    __slots__ = ("_pending", "count", "spec", "up")

    def __init__(self, spec: TrackProcess) -> None:
        self.spec = spec
        self.up: bool | None = None
        self.count = 0
        self._pending: tuple[bool, float] | None = None  # (new state, when it counts)

    def observe(self, count: int, now: float) -> bool:
        """Feed one count of matching processes; True when ``up`` changed."""
        self.count = count
        wanted = self.spec.in_quorum(count)
        if self.up is None:
            self.up = wanted
            return True
        if wanted == self.up:
            self._pending = None
            return False
        if self._pending is None or self._pending[0] != wanted:
            delay = self.spec.fork_delay if wanted else self.spec.terminate_delay
            self._pending = (wanted, now + delay)
        if now >= self._pending[1]:
            self.up = wanted
            self._pending = None
            return True
        return False

    @property
    def deadline(self) -> float | None:
        """When a pending change would count (the poller looks again then)."""
        return None if self._pending is None else self._pending[1]

    def label(self) -> str:
        state = "running" if self.up else "not running"
        return f"process {self.spec.name} {state} ({self.count})"
