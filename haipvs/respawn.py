"""When to start a dead child again: keepalived's respawn back-off, as a pure policy.

A child that dies at once after each start (a bad interface, a crash on start-up)
must not be restarted in a tight loop: the delay starts at ``first`` and doubles
at each death, up to ``maximum``. A child that ran for ``stable_after`` seconds
before dying was healthy: its death starts the sequence again from ``first``.
Time is injected (monotonic seconds), so the policy is tested with literal times.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["RespawnBackoff"]


@dataclass(slots=True)
class RespawnBackoff:
    first: float = 1.0
    maximum: float = 30.0
    stable_after: float = 60.0
    _next: float = field(init=False)
    _started_at: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if not 0 < self.first <= self.maximum:
            raise ValueError(f"back-off needs 0 < first <= maximum, got {self.first}, "
                             f"{self.maximum}")
        self._next = self.first

    def started(self, now: float) -> None:
        """A child is up (its start was acknowledged) at ``now``."""
        self._started_at = now

    def died(self, now: float) -> float:
        """A child died at ``now``: how long to wait before starting the next one."""
        if self._started_at is not None and now - self._started_at >= self.stable_after:
            self._next = self.first
        return self.failed()

    def failed(self) -> float:
        """A start attempt failed (the child never came up): the wait before the next."""
        self._started_at = None
        delay = self._next
        self._next = min(self._next * 2, self.maximum)
        return delay
