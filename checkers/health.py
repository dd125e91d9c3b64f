"""The health of one backend: rise/fall, damping, slow start, history, next probe.

This module composes the single-subject cores into the one object the pool
feeds per backend:

* :class:`~checkers.hysteresis.RiseFall` turns results into a verdict;
* :class:`~checkers.damping.FlapDamping` may hold a rising backend down;
* :class:`~checkers.slowstart.SlowStart` ramps the weight after a recovery;
* :mod:`checkers.schedule` says when the next probe is wanted;
* a bounded history keeps the last results with their reasons.

Rules kept here:

1. *Healthy* means: the verdict is UP and damping does not hold it. Only a
   change of healthy, or of the weight factor/dynamic weight while healthy,
   is a :class:`HealthEvent` with ``flipped``/``reweighted`` set; a damping
   hold is an event too (for the log), with neither set.
2. Every verdict change is a flap for damping (RFC 2439: withdrawals and
   re-advertisements both count).
3. Slow start begins at every DOWN->UP of *healthy* (rise or damping
   release), never for an adopted server, which was serving already.
4. Inputs are ``observe`` (a probe result) and ``on_timer`` (the deadline of
   :meth:`BackendHealth.next_deadline` passed); each returns the events in
   order. The owner re-reads ``next_deadline`` after each call (aioquic's
   ``get_timer``).

Pure: time arrives as ``now``; no IO, no clock, no logging.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from checkers.damping import FlapDamping
from checkers.hysteresis import Reason, RiseFall, State
from checkers.schedule import probe_interval
from checkers.slowstart import SlowStart
from checkers.spec import BackendId, FailOpenSettings, Target, Timing

__all__ = [
    "DEFAULT_HISTORY",
    "BackendHealth",
    "BackendStatus",
    "HealthChanged",
    "HealthEvent",
    "HistoryEntry",
    "PoolSnapshot",
    "ServiceStatus",
]

DEFAULT_HISTORY = 10


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One probe result as the backend saw it (``at`` is monotonic loop time)."""

    at: float
    ok: bool
    detail: str
    latency: float


@dataclass(frozen=True, slots=True)
class HealthEvent:
    """Something an operator or the IPVS programmer should know about one backend.

    ``healthy``/``weight_factor``/``weight`` are the values *after* the event.
    ``flipped``: healthy changed. ``reweighted``: healthy stayed True and the
    weight factor or the dynamic weight changed.
    """

    healthy: bool
    reason: Reason
    text: str
    weight_factor: float
    weight: int | None
    flipped: bool
    reweighted: bool


class BackendHealth:
    """Per-backend health state (mutable state machine, not a value)."""

    __slots__ = (
        "_damping",
        "_factor",
        "_healthy",
        "_history",
        "_last_latency",
        "_now",
        "_reason",
        "_rise_fall",
        "_since",
        "_slow_start",
        "_text",
        "_timing",
        "_weight",
    )

    def __init__(
        self,
        timing: Timing,
        *,
        now: float,
        adopted: bool = False,
        history: int = DEFAULT_HISTORY,
    ) -> None:
        if history < 1:
            raise ValueError(f"history must be >= 1, got {history}")
        self._timing = timing
        self._rise_fall = RiseFall(timing.rise, timing.fall, adopted=adopted)
        self._damping = FlapDamping(timing.flap_damping) if timing.flap_damping else None
        self._slow_start = SlowStart(timing.slow_start)
        # Plain tuples of atoms, not HistoryEntry objects: CPython's GC stops
        # tracking such tuples, so 10 results x 10,000 backends do not
        # lengthen every full collection (a stall of the one event loop).
        self._history: deque[tuple[float, bool, str, float]] = deque(maxlen=history)
        self._healthy = adopted
        self._reason = Reason.ADOPTED if adopted else Reason.NEW_REAL_SERVER
        self._text = self._rise_fall.initial_text()
        self._since = now
        self._weight: int | None = None
        self._last_latency: float | None = None
        # the last time given to any input, for next_deadline()
        self._now = now
        # the weight factor last reported in an event (slow-start steps)
        self._factor = 1.0 if adopted else 0.0

    # -- queries -----------------------------------------------------------

    @property
    def timing(self) -> Timing:
        return self._timing

    @property
    def healthy(self) -> bool:
        """Rule 1: the verdict is UP and damping does not hold it."""
        return self._healthy

    @property
    def checked_up(self) -> bool:
        """What the checks alone say (rise/fall verdict), before damping."""
        return self._rise_fall.is_up

    @property
    def reason(self) -> Reason:
        return self._reason

    @property
    def reason_text(self) -> str:
        return self._text

    @property
    def since(self) -> float:
        """When ``healthy`` last changed (or the backend was created)."""
        return self._since

    @property
    def damped(self) -> bool:
        return self._damping is not None and self._damping.suppressed

    @property
    def dynamic_weight(self) -> int | None:
        return self._weight

    @property
    def last_latency(self) -> float | None:
        return self._last_latency

    @property
    def history(self) -> tuple[HistoryEntry, ...]:
        return tuple(HistoryEntry(*entry) for entry in self._history)

    def penalty(self, now: float) -> float:
        return self._damping.penalty(now) if self._damping is not None else 0.0

    def weight_factor(self, now: float) -> float:
        """0.0 while unhealthy; the slow-start ramp (1.0 when done) while healthy."""
        return self._slow_start.factor(now) if self._healthy else 0.0

    def probe_interval(self) -> float:
        """Seconds from the end of the last probe to the next one this backend wants."""
        return probe_interval(
            self._timing, up=self._rise_fall.is_up, in_doubt=self._rise_fall.in_doubt
        )

    def next_deadline(self) -> float | None:
        """The next time :meth:`on_timer` has work: damping release or a slow-start step."""
        release = self._damping.reuse_at() if self._damping is not None else None
        step = self._slow_start.next_step_at(self._now) if self._healthy else None
        if release is None:
            return step
        return release if step is None else min(release, step)

    # -- inputs ------------------------------------------------------------

    def observe(
        self, ok: bool, detail: str, latency: float, now: float, weight: int | None = None
    ) -> tuple[HealthEvent, ...]:
        """Feed one probe result that completed at ``now``."""
        self._now = now
        self._history.append((now, ok, detail, latency))
        self._last_latency = latency
        events: list[HealthEvent] = []
        if self._damping is not None and self._damping.update(now):
            # the release deadline passed before its timer ran: release first
            events.extend(self._release(now))
        weight_changed = ok and weight is not None and weight != self._weight
        if weight_changed:
            self._weight = weight
        verdict = self._rise_fall.observe(ok, detail)
        if verdict is not None:
            started_damping = self._damping.record_flap(now) if self._damping is not None else False
            if verdict.state is State.DOWN:
                if self._healthy:
                    events.append(self._flip(False, verdict.reason, verdict.text(), now))
                if started_damping:
                    events.append(self._damped_event(now, verdict.text(), held=False))
            elif self.damped:
                events.append(self._damped_event(now, verdict.text(), held=True))
            else:
                events.append(self._flip(True, verdict.reason, verdict.text(), now))
        if weight_changed and self._healthy and not any(e.flipped for e in events):
            events.append(
                self._reweight(Reason.DYNAMIC_WEIGHT, f"check reported weight {weight}", now)
            )
        return tuple(events)

    def on_timer(self, now: float) -> tuple[HealthEvent, ...]:
        """Handle the deadlines that passed at ``now``."""
        self._now = now
        events: list[HealthEvent] = []
        if self._damping is not None and self._damping.update(now):
            events.extend(self._release(now))
        if self._healthy and not events:
            factor = self._slow_start.factor(now)
            if factor != self._factor:
                events.append(self._reweight(Reason.SLOW_START, f"slow start {factor:.0%}", now))
        return tuple(events)

    def retune(self, timing: Timing, now: float) -> tuple[HealthEvent, ...]:
        """A reload changed the tuning of an unchanged check (keepalived migrate)."""
        self._now = now
        self._timing = timing
        self._rise_fall.retune(timing.rise, timing.fall)
        self._slow_start.retune(timing.slow_start)
        events: list[HealthEvent] = []
        if timing.flap_damping is None:
            was_damped = self.damped
            self._damping = None
            if was_damped:
                events.extend(self._release(now))
        elif self._damping is None:
            self._damping = FlapDamping(timing.flap_damping)
        elif self._damping.retune(timing.flap_damping, now):
            events.extend(self._release(now))
        return tuple(events)

    # -- helpers -----------------------------------------------------------

    def _release(self, now: float) -> list[HealthEvent]:
        if not self._rise_fall.is_up or self._healthy:
            return []
        return [self._flip(True, Reason.DAMPING_RELEASED, "flap damping penalty decayed", now)]

    def _flip(self, healthy: bool, reason: Reason, text: str, now: float) -> HealthEvent:
        self._healthy = healthy
        self._reason = reason
        self._text = text
        self._since = now
        if healthy:
            # Rule 3: an adopted server starts healthy without a flip, so it
            # never ramps; every flip to healthy is a recovery and ramps.
            self._slow_start.begin(now)
        else:
            self._slow_start.stop()
        self._factor = self.weight_factor(now)
        return HealthEvent(
            healthy=healthy,
            reason=reason,
            text=text,
            weight_factor=self.weight_factor(now),
            weight=self._weight,
            flipped=True,
            reweighted=False,
        )

    def _reweight(self, reason: Reason, text: str, now: float) -> HealthEvent:
        self._factor = self.weight_factor(now)
        return HealthEvent(
            healthy=True,
            reason=reason,
            text=text,
            weight_factor=self.weight_factor(now),
            weight=self._weight,
            flipped=False,
            reweighted=True,
        )

    def _damped_event(self, now: float, text: str, *, held: bool) -> HealthEvent:
        """Damping holds (or, on a fall, will hold) the backend down.

        ``held``: the checks say up right now; the backend's reason becomes
        DAMPED. On a fall that starts suppression the reason stays the fall.
        """
        assert self._damping is not None
        settings = self._damping.settings
        reuse_at = self._damping.reuse_at()
        hold = f", held down for ~{reuse_at - now:.0f}s" if reuse_at is not None else ""
        damped_text = (
            f"flap damping: penalty {self._damping.penalty(now):.0f} above "
            f"{settings.suppress_threshold:g} after {text}{hold}"
        )
        if held:
            self._reason = Reason.DAMPED
            self._text = damped_text
        return HealthEvent(
            healthy=self._healthy,
            reason=Reason.DAMPED,
            text=damped_text,
            weight_factor=self.weight_factor(now),
            weight=self._weight,
            flipped=False,
            reweighted=False,
        )


# -- values the pool publishes ---------------------------------------------


@dataclass(frozen=True, slots=True)
class HealthChanged:
    """A backend's membership or weight changed: what the IPVS programmer consumes.

    ``healthy``: the real server should be in the service (checks up, or held
    by fail-open). ``weight_factor``: scale the configured weight by it
    (slow start; 0.0 when not healthy); see
    :func:`checkers.slowstart.effective_weight`. ``weight``: a weight the
    check itself reported (keepalived ``misc_dynamic``), which replaces the
    configured weight when set. ``cause``: the reason as an enum.
    """

    backend: BackendId
    healthy: bool
    reason: str
    weight_factor: float
    weight: int | None = None
    cause: Reason | None = None


@dataclass(frozen=True, slots=True)
class BackendStatus:
    """One backend in a pool snapshot (times are monotonic loop time)."""

    backend: BackendId
    target: Target
    check: str
    healthy: bool
    checked_up: bool
    held_by_fail_open: bool
    reason: str
    cause: Reason
    since: float
    last_latency: float | None
    history: tuple[HistoryEntry, ...]
    weight_factor: float
    weight: int | None
    damped: bool
    penalty: float


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    """One service's fail-open state in a pool snapshot."""

    service: str
    real_servers: int
    healthy: int
    fail_open: bool
    fail_open_since: float | None
    fail_open_reason: str
    held: tuple[BackendId, ...]
    fail_open_settings: FailOpenSettings | None


@dataclass(frozen=True, slots=True)
class PoolSnapshot:
    """Everything the status API shows about health checks.

    ``taken_at`` is monotonic loop time and ``taken_at_wall`` the matching
    ``time.time()``, so a consumer can turn any ``since``/``at`` into wall time.
    """

    taken_at: float
    taken_at_wall: float
    backends: Mapping[BackendId, BackendStatus]
    services: Mapping[str, ServiceStatus]
    probes: int
    in_flight: int
    waiting: int
