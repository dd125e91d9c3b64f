"""Fail-open: a broken check must not empty a service.

When most of a service's real servers fail *at the same moment*, the likely
cause is the check (a bad deploy of the health endpoint, a firewall rule on
the director) rather than the servers. Removing them all turns a monitoring
problem into an outage. Envoy's panic threshold routes to all hosts below
50 % healthy; we do it with memory and with time:

1. Only up->down transitions count, and only within the last ``window``
   seconds: failures spread over hours are real failures.
2. If more than ``fail_open_ratio`` of the service's real servers went down
   within the window (and the service has at least ``min_real_servers``), the
   guard ENTERS fail-open: the last known-good set (servers up now, plus those
   that went down within the window) is *held* in the service.
3. While open, held servers stay in whatever their checks say; servers that
   rise join as usual; servers not held follow their checks.
4. The guard CLEARS when the share of servers whose checks say down is back
   at or below ``fail_open_ratio``; held servers that are still down then
   leave the service. The downs of the window are not forgotten: if the
   failure is still spreading, the next down within the window enters again.
5. Every entry and clearing is returned as a step with its reason, for the
   adapter to log loudly and export.

Pure: time arrives as ``now``. Generic over the backend key.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from checkers.spec import FailOpenSettings

__all__ = ["FailOpenEvent", "FailOpenGuard", "FailOpenStep"]

K = TypeVar("K", bound=Hashable)


class FailOpenEvent(enum.Enum):
    ENTERED = "entered"
    CLEARED = "cleared"


@dataclass(frozen=True, slots=True)
class FailOpenStep(Generic[K]):
    """What one input changed.

    ``changes``: backends whose *effective* membership changed, with the new
    value (True = in the service), in a deterministic order.
    ``event``/``reason``: set when the guard entered or cleared fail-open.
    """

    changes: tuple[tuple[K, bool], ...] = ()
    event: FailOpenEvent | None = None
    reason: str = ""


class FailOpenGuard(Generic[K]):
    """Fail-open state of one service (mutable state, not a value)."""

    __slots__ = ("_active", "_checked_up", "_held", "_recent_downs", "_settings", "_since")

    def __init__(self, settings: FailOpenSettings | None) -> None:
        self._settings = settings
        self._checked_up: dict[K, bool] = {}
        self._recent_downs: deque[tuple[float, K]] = deque()
        self._held: set[K] = set()
        self._active = False
        self._since: float | None = None

    @property
    def settings(self) -> FailOpenSettings | None:
        return self._settings

    @property
    def active(self) -> bool:
        return self._active

    @property
    def since(self) -> float | None:
        """When fail-open was entered; None when not active."""
        return self._since

    @property
    def held(self) -> frozenset[K]:
        return frozenset(self._held)

    @property
    def members(self) -> Mapping[K, bool]:
        """Every real server with what its checks say."""
        return dict(self._checked_up)

    def is_up(self, backend: K) -> bool:
        """Effective membership: the checks say up, or fail-open holds it (rule 3)."""
        if self._checked_up.get(backend, False):
            return True
        return self._active and backend in self._held

    def is_held(self, backend: K) -> bool:
        """In the service only because fail-open holds it."""
        return self.is_up(backend) and not self._checked_up.get(backend, False)

    def add(self, backend: K, checked_up: bool) -> FailOpenStep[K]:
        """A real server joins the service (config load or reload)."""
        if backend in self._checked_up:
            raise ValueError(f"{backend!r} is already a member")
        self._checked_up[backend] = checked_up
        return FailOpenStep(changes=((backend, checked_up),))

    def remove(self, backend: K) -> FailOpenStep[K]:
        """A real server leaves the service (reload); may clear fail-open (rule 4)."""
        if backend not in self._checked_up:
            raise ValueError(f"{backend!r} is not a member")
        del self._checked_up[backend]
        self._held.discard(backend)
        return self._maybe_clear()

    def retune(self, settings: FailOpenSettings | None) -> FailOpenStep[K]:
        """New settings on reload; disabling the guard clears it."""
        self._settings = settings
        if settings is None and self._active:
            return self._clear("fail-open disabled by configuration")
        return self._maybe_clear()

    def record(self, backend: K, checked_up: bool, now: float) -> FailOpenStep[K]:
        """The checks' verdict on ``backend`` changed at ``now``."""
        if backend not in self._checked_up:
            raise ValueError(f"{backend!r} is not a member")
        before = self.is_up(backend)
        if self._checked_up[backend] == checked_up:
            return FailOpenStep()
        self._checked_up[backend] = checked_up
        if checked_up:
            step = self._maybe_clear()
            if self.is_up(backend) != before and (backend, True) not in step.changes:
                return FailOpenStep(
                    changes=((backend, True), *step.changes), event=step.event, reason=step.reason
                )
            return step
        self._recent_downs.append((now, backend))
        self._prune(now)
        if not self._active:
            entered = self._maybe_enter(backend, now)
            if entered is not None:
                return entered
        after = self.is_up(backend)
        return FailOpenStep(changes=((backend, after),)) if after != before else FailOpenStep()

    def _prune(self, now: float) -> None:
        window = self._settings.window if self._settings is not None else 0.0
        while self._recent_downs and self._recent_downs[0][0] < now - window:
            self._recent_downs.popleft()

    def _maybe_enter(self, trigger: K, now: float) -> FailOpenStep[K] | None:
        settings = self._settings
        total = len(self._checked_up)
        if settings is None or total < settings.min_real_servers:
            return None
        went_down = {b for _, b in self._recent_downs if b in self._checked_up}
        # Rule 2: "more than" the ratio, so 0.5 of 10 needs 6.
        if len(went_down) <= settings.fail_open_ratio * total:
            return None
        self._active = True
        self._since = now
        self._held = {b for b, up in self._checked_up.items() if up} | went_down
        # The trigger was up before this input and stays up: not a change.
        restored = tuple(
            (b, True)
            for b in sorted(went_down, key=repr)
            if not self._checked_up[b] and b != trigger
        )
        reason = (
            f"{len(went_down)} of {total} real servers went down within "
            f"{settings.window:g}s (more than {settings.fail_open_ratio:.0%}): "
            f"keeping the last known-good set of {len(self._held)}"
        )
        return FailOpenStep(changes=restored, event=FailOpenEvent.ENTERED, reason=reason)

    def _maybe_clear(self) -> FailOpenStep[K]:
        if not self._active:
            return FailOpenStep()
        total = len(self._checked_up)
        down = sum(1 for up in self._checked_up.values() if not up)
        ratio = self._settings.fail_open_ratio if self._settings is not None else 0.0
        if total and down > ratio * total:
            return FailOpenStep()
        return self._clear(f"{down} of {total} real servers down: the checks decide again")

    def _clear(self, reason: str) -> FailOpenStep[K]:
        released = tuple(
            (b, False) for b in sorted(self._held, key=repr) if not self._checked_up.get(b, False)
        )
        self._active = False
        self._since = None
        self._held = set()
        # The recent downs are kept: if the mass failure is still going on
        # (a server that just recovered fails again within the window), the
        # guard enters again instead of letting the service empty.
        return FailOpenStep(changes=released, event=FailOpenEvent.CLEARED, reason=reason)
