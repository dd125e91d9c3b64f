"""Slow start: after a recovery, the weight ramps up instead of jumping.

A real server that just came back (cold caches, JIT, pools) would get a full
share at once, and with least-connection schedulers (lc, wlc) *all* new
connections until it catches up. HAProxy ``slowstart`` ramps the weight
linearly over N seconds; we do the same, in steps:

1. The ramp starts at the DOWN->UP transition and lasts ``duration`` seconds.
2. The weight factor rises in steps of ``max(1 s, duration / 20)`` (HAProxy's
   ``server_warmup`` task re-runs every ``max(1000 ms, slowstart / 20)``), so
   the IPVS table is rewritten at most ~20 times per recovery.
3. Within a step the factor is the elapsed share rounded *up* to the step
   (HAProxy's eweight rounds up too), so the first step is already above 0
   and the last step reaches 1.0: factor = min(1, (k + 1) * step / duration)
   during step k.
4. The checker does not know the configured weight; consumers compute the
   kernel weight with :func:`effective_weight`, which never goes below 1 for a
   healthy server with a positive weight.

Pure: time arrives as ``now``.
"""

from __future__ import annotations

import math

__all__ = ["SlowStart", "effective_weight"]

_MIN_STEP = 1.0
_STEPS = 20
# Slack so that a timer firing exactly at a step boundary lands in the new step.
_EPSILON = 1e-9


def effective_weight(weight: int, factor: float) -> int:
    """Kernel weight for a configured ``weight`` scaled by ``factor`` (rule 4).

    The one home of this rule (the IPVS desired table calls it): a configured weight 0
    is the operator's own quiesce and stays 0; any other weight stays at least 1, so a
    warming server still receives some traffic; halves round up (weight 5 at factor
    0.5 is 3), as HAProxy's eweight does.
    """
    if weight < 0 or not 0.0 <= factor <= 1.0:
        raise ValueError(f"bad weight {weight} or factor {factor}")
    if weight == 0 or factor == 1.0:
        return weight
    return max(1, math.floor(weight * factor + 0.5))


class SlowStart:
    """The weight ramp of one backend (mutable state, not a value)."""

    __slots__ = ("_duration", "_started_at")

    def __init__(self, duration: float) -> None:
        if duration < 0:
            raise ValueError(f"slow start duration must be >= 0, got {duration}")
        self._duration = duration
        self._started_at: float | None = None

    @property
    def duration(self) -> float:
        return self._duration

    @property
    def step(self) -> float:
        return max(_MIN_STEP, self._duration / _STEPS)

    def begin(self, now: float) -> None:
        """Start the ramp at a recovery (rule 1); no-op when slow start is off."""
        self._started_at = now if self._duration > 0 else None

    def stop(self) -> None:
        """The backend went down: no ramp until the next recovery."""
        self._started_at = None

    def retune(self, duration: float) -> None:
        """New duration on reload; a running ramp continues from its start time."""
        if duration < 0:
            raise ValueError(f"slow start duration must be >= 0, got {duration}")
        self._duration = duration
        if duration == 0:
            self._started_at = None

    def _step_index(self, now: float) -> int:
        assert self._started_at is not None
        elapsed = max(0.0, now - self._started_at)
        return math.floor(elapsed / self.step + _EPSILON)

    def factor(self, now: float) -> float:
        """Weight factor at ``now`` (rule 3); 1.0 when no ramp is running."""
        if self._started_at is None:
            return 1.0
        value = (self._step_index(now) + 1) * self.step / self._duration
        return 1.0 if value >= 1.0 else value

    def ramping(self, now: float) -> bool:
        """True while the factor is below 1.0."""
        return self.factor(now) < 1.0

    def next_step_at(self, now: float) -> float | None:
        """When the factor next changes; None once the ramp is complete or off."""
        if self._started_at is None or not self.ramping(now):
            return None
        return self._started_at + (self._step_index(now) + 1) * self.step
