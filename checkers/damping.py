"""Flap damping: a backend that keeps flapping is held down until it calms.

The mechanism is BGP route flap damping (RFC 2439 §4.2), applied to a real
server's health verdict instead of a route:

1. Each change of the verdict (up->down or down->up, a "flap") adds
   ``penalty_per_flap`` to a figure of merit.
2. The penalty decays exponentially: it halves every ``half_life`` seconds
   (RFC 2439 §4.2 decay, computed exactly at ``now`` instead of in ticks).
3. When the penalty goes above ``suppress_threshold`` the backend is
   *suppressed*: held DOWN whatever its checks say.
4. It is released when the penalty has decayed to ``reuse_threshold``. The
   release time is known in advance (``reuse_at``), so the adapter arms a
   timer for it instead of polling.
5. The penalty never exceeds the ceiling of ``DampingSettings.ceiling``, which
   bounds the hold time to ``max_suppress`` (RFC 2439 §4.2).

Pure: time arrives as ``now``.
"""

from __future__ import annotations

import math

from checkers.spec import DampingSettings

__all__ = ["FlapDamping"]

# Relative slack when comparing a decayed penalty with the reuse threshold, so
# that waking up exactly at reuse_at() releases despite float rounding.
_EPSILON = 1e-9


class FlapDamping:
    """The decaying penalty of one backend (mutable state, not a value)."""

    __slots__ = ("_at", "_penalty", "_settings", "_suppressed")

    def __init__(self, settings: DampingSettings) -> None:
        self._settings = settings
        self._penalty = 0.0
        self._at = 0.0
        self._suppressed = False

    @property
    def settings(self) -> DampingSettings:
        return self._settings

    @property
    def suppressed(self) -> bool:
        """Held down (rule 3). Call :meth:`update` first to apply decay up to now."""
        return self._suppressed

    def penalty(self, now: float) -> float:
        """The penalty decayed to ``now`` (rule 2)."""
        elapsed = max(0.0, now - self._at)
        return self._penalty * math.pow(2.0, -elapsed / self._settings.half_life)

    def record_flap(self, now: float) -> bool:
        """Add one flap's penalty (rules 1, 3, 5); return True if this flap starts suppression."""
        settings = self._settings
        self._penalty = min(self.penalty(now) + settings.penalty_per_flap, settings.ceiling)
        self._at = now
        if not self._suppressed and self._penalty > settings.suppress_threshold:
            self._suppressed = True
            return True
        return False

    def update(self, now: float) -> bool:
        """Apply decay; return True if suppression ends now (rule 4)."""
        if self._suppressed and self._reusable(self.penalty(now)):
            self._suppressed = False
            return True
        return False

    def reuse_at(self) -> float | None:
        """When a suppressed backend's penalty reaches ``reuse_threshold``; None if not held."""
        if not self._suppressed:
            return None
        # penalty * 2**(-t/half_life) = reuse  <=>  t = half_life * log2(penalty / reuse)
        ratio = self._penalty / self._settings.reuse_threshold
        return self._at + self._settings.half_life * math.log2(max(ratio, 1.0))

    def retune(self, settings: DampingSettings, now: float) -> bool:
        """New settings on reload; keep the penalty. Return True if that releases the backend."""
        self._penalty = min(self.penalty(now), settings.ceiling)
        self._at = now
        self._settings = settings
        return self.update(now)

    def _reusable(self, penalty: float) -> bool:
        return penalty <= self._settings.reuse_threshold * (1.0 + _EPSILON)
