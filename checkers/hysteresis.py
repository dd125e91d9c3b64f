"""Rise/fall hysteresis: from single probe results to an up/down verdict.

Rules kept here (h11 style, everything that changes the verdict is in this file):

1. A settled UP real server goes DOWN after ``fall`` consecutive failures; a
   settled DOWN one goes UP after ``rise`` consecutive successes (HAProxy
   ``rise``/``fall``; keepalived ``retry`` is our ``fall``). One result of the
   other kind resets the count.
2. A NEW real server starts DOWN and must rise (keepalived ``alpha``): we
   never send traffic to a server nobody has checked.
3. A real server ADOPTED from an existing kernel table (the daemon restarted,
   the kernel kept serving) starts UP, provisionally: its first result
   decides. A success confirms it, a failure takes it down at once, because
   nothing we know says it was healthy. This is how a restart avoids a flap
   without trusting a dead server for ``fall`` more intervals.

The module knows nothing of time, scheduling or IO: it counts.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Reason", "RiseFall", "State", "Verdict"]


class State(enum.Enum):
    UP = "up"
    DOWN = "down"


class Reason(enum.Enum):
    """Why a backend's health is what it is (rendered snake_case in logs)."""

    NEW_REAL_SERVER = "new_real_server"  # keepalived alpha: down until it rises
    ADOPTED = "adopted"  # found in the kernel table: up until its first result
    RISE = "rise"  # rise consecutive successes
    FALL = "fall"  # fall consecutive failures
    ADOPTED_FAILED = "adopted_failed"  # an adopted server failed its first check
    DAMPED = "damped"  # the checks say up, flap damping holds it down
    DAMPING_RELEASED = "damping_released"  # penalty decayed below reuse: up again
    SLOW_START = "slow_start"  # weight ramp step after a recovery
    DYNAMIC_WEIGHT = "dynamic_weight"  # misc_dynamic reported a new weight
    FAIL_OPEN = "fail_open"  # held in the service by the fail-open guard
    FAIL_OPEN_CLEARED = "fail_open_cleared"  # the guard let go; the checks decide again


def _plural(count: int, word: str, plural: str) -> str:
    return f"{count} {word if count == 1 else plural}"


@dataclass(frozen=True, slots=True)
class Verdict:
    """A change of the rise/fall verdict, with the count and the last probe's detail."""

    state: State
    reason: Reason
    count: int
    detail: str

    def text(self) -> str:
        """Operator text: ``3 failures: connect refused``, ``2 successes: status 200``."""
        if self.reason is Reason.FALL:
            return f"{_plural(self.count, 'failure', 'failures')}: {self.detail}"
        if self.reason is Reason.RISE:
            return f"{_plural(self.count, 'success', 'successes')}: {self.detail}"
        if self.reason is Reason.ADOPTED_FAILED:
            return f"adopted real server failed its first check: {self.detail}"
        return f"{self.reason.value}: {self.detail}"


class RiseFall:
    """Consecutive-result counter of one backend (mutable state machine, not a value)."""

    __slots__ = ("_failures", "_fall", "_provisional", "_rise", "_state", "_successes")

    def __init__(self, rise: int, fall: int, *, adopted: bool = False) -> None:
        self._rise = 0
        self._fall = 0
        self.retune(rise, fall)
        self._state = State.UP if adopted else State.DOWN
        self._provisional = adopted
        self._successes = 0
        self._failures = 0

    @property
    def state(self) -> State:
        return self._state

    @property
    def is_up(self) -> bool:
        return self._state is State.UP

    @property
    def in_doubt(self) -> bool:
        """A rise or fall count has started and not completed (HAProxy's fastinter window)."""
        if self._state is State.UP:
            return self._failures > 0
        return self._successes > 0

    @property
    def successes(self) -> int:
        return self._successes

    @property
    def failures(self) -> int:
        return self._failures

    @property
    def rise(self) -> int:
        return self._rise

    @property
    def fall(self) -> int:
        return self._fall

    def retune(self, rise: int, fall: int) -> None:
        """New rise/fall on reload. Counts are kept; the next result compares against them."""
        if rise < 1 or fall < 1:
            raise ValueError(f"rise and fall must be >= 1, got rise={rise} fall={fall}")
        self._rise = rise
        self._fall = fall

    def initial_text(self) -> str:
        """Why the backend is in its initial state, before any result."""
        if self._state is State.UP:
            return "adopted from the kernel table: up until its first check"
        return f"new real server: down until {_plural(self._rise, 'success', 'successes')}"

    def observe(self, ok: bool, detail: str) -> Verdict | None:
        """Count one probe result; return the Verdict when the state changes."""
        if self._provisional:
            # Rule 3: the first result of an adopted server decides.
            self._provisional = False
            if not ok:
                self._state = State.DOWN
                self._successes = 0
                self._failures = 0
                return Verdict(State.DOWN, Reason.ADOPTED_FAILED, 1, detail)
            return None
        if ok:
            self._failures = 0
            if self._state is State.UP:
                return None
            self._successes += 1
            if self._successes >= self._rise:
                count = self._successes
                self._state = State.UP
                self._successes = 0
                return Verdict(State.UP, Reason.RISE, count, detail)
            return None
        self._successes = 0
        if self._state is State.DOWN:
            return None
        self._failures += 1
        if self._failures >= self._fall:
            count = self._failures
            self._state = State.DOWN
            self._failures = 0
            return Verdict(State.DOWN, Reason.FALL, count, detail)
        return None
