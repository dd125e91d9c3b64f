"""CheckerPool: runs the probes on time and turns results into HealthChanged.

The asyncio adapter around the pure cores (aioquic's
``asyncio/protocol.py``). It owns the only timer and the probe tasks; every
decision is made by :mod:`checkers.health` and :mod:`checkers.failopen`.

Rules kept here:

1. One scheduler: a heap of absolute deadlines (probe starts, and the
   per-backend core deadlines for damping release and slow-start steps)
   and ONE ``call_at`` timer re-armed at the earliest one (keepalived's
   ``sands`` tree, aioquic's ``get_timer``). No task sleeps per backend, and
   the probe kinds that have a callback form (checkers/probe.py plan_probe:
   TCP, plain HTTP) run without any task: their socket's readiness edges and
   deadline drive them and they call back with the result. Other kinds run in
   a task that exists only while the probe runs. When the timer fires, the cores see
   ``max(deadline, clock())``, never a time before the deadline they asked for;
   probe starts due a little later start with it, each at most its own share of
   its interval early and none more than ``probe_batch`` (checkers/schedule.py
   rule 5: one wake-up for several checks).
2. Concurrency is bounded: at most ``max_concurrency`` probes run at once;
   due probes beyond that wait in FIFO order (a counting semaphore without a
   task parked per waiter).
3. One probe per CheckKey: backends with identical checks on the same
   target share the probe and each feeds its own health core with the result.
4. ``update()`` is keepalived's reload compare/migrate: an unchanged backend
   (same BackendId and same CheckKey) keeps its state and only takes the new
   tuning; a backend whose check changed keeps its place if it was healthy
   (it is treated as adopted, so the first result of the new check decides);
   new backends start down (alpha) unless listed in ``adopted``; removed
   backends stop at once (their running probe is cancelled).
5. Fail-open is applied per service between the cores and ``on_change``.
6. A probe that outlives its own timeout by ``HUNG_GRACE`` (a probe bug,
   not the server's) is cancelled by a watchdog sweep from the same heap and
   counted as a failure (``check.probe.hung``), so no backend freezes in its
   last state.
7. Every change is one log line: ``check.up``,
   ``check.down``, ``check.damped``, ``check.failopen.entered``,
   ``check.failopen.cleared``, with ``vs``, ``rs`` and ``reason``.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Final

import structlog

from checkers.failopen import FailOpenEvent, FailOpenGuard, FailOpenStep
from checkers.health import (
    DEFAULT_HISTORY,
    BackendHealth,
    BackendStatus,
    HealthChanged,
    HealthEvent,
    PoolSnapshot,
    ServiceStatus,
)
from checkers.hysteresis import Reason
from checkers.inconclusive import LateDeadlines, late_beyond_bound
from checkers.probe import ProbeAttempt, ProbePlan, plan_probe, run_probe
from checkers.result import ProbeResult
from checkers.schedule import (
    PROBE_BATCH_MAX,
    batch_end,
    first_probe_at,
    next_probe_at,
    probe_early,
    shared_interval,
)
from checkers.spec import BackendId, CheckKey, CheckSpec, FailOpenSettings, Target, check_key

__all__ = ["DEFAULT_MAX_CONCURRENCY", "HUNG_GRACE", "WATCHDOG_PERIOD", "CheckerPool", "Prober"]

log = structlog.get_logger()

Prober = Callable[[CheckSpec, Target], Awaitable[ProbeResult]]

# Each probe holds a socket or a child process: stay well below the usual
# 1024 open-files soft limit, leaving room for the rest of the daemon.
DEFAULT_MAX_CONCURRENCY: Final = 512
# Recent schedule-lateness samples kept for the bench and the status API.
_LATENESS_SAMPLES: Final = 65536
# Every probe enforces its own timeout (checkers/probe.py). A probe still
# running HUNG_GRACE seconds past it is a bug that would freeze its backends
# in their last state: the watchdog, run every WATCHDOG_PERIOD seconds from the
# same heap, cancels it and counts a failure.
HUNG_GRACE: Final = 5.0
WATCHDOG_PERIOD: Final = 5.0

_DEFAULT_FAIL_OPEN = FailOpenSettings()


class _Probe:
    """One running check: a CheckKey and the backends that share its result."""

    __slots__ = (
        "attempt",
        "backends",
        "due",
        "early",
        "hung",
        "key",
        "launched_due",
        "on_done",
        "plan",
        "planned",
        "removed",
        "rerun",
        "spec",
        "started_at",
        "target",
        "task",
        "warmup",
    )

    def __init__(self, key: CheckKey, spec: CheckSpec, target: Target, warmup: float) -> None:
        self.key = key
        self.spec = spec
        self.target = target
        self.backends: dict[BackendId, _Backend] = {}
        # next deadline while waiting in the heap; None while due/running
        self.due: float | None = None
        # how early its next start may come to share a wake-up (schedule rule 5)
        self.early = 0.0
        # the deadline the running (or last) probe was launched for
        self.launched_due: float | None = None
        # offset of the first probe from the moment probing can start (warm-up)
        self.warmup = warmup
        self.task: asyncio.Task[None] | None = None
        # the callback form of the check (worked out at its first start) and
        # the running attempt; no task then
        self.plan: ProbePlan | None = None
        self.planned = False
        self.attempt: ProbeAttempt | None = None
        self.on_done: Callable[[ProbeResult], None] | None = None
        self.started_at: float | None = None
        # set by the watchdog when it cancels this probe (see HUNG_GRACE)
        self.hung = False
        self.removed = False
        # the running attempt re-runs one whose deadline fired late (checkers/inconclusive.py)
        self.rerun = False


class _Backend:
    """One real server of one service, with its health core."""

    __slots__ = ("health", "id", "key", "probe", "removed", "spec", "target", "timer_at")

    def __init__(
        self,
        backend: BackendId,
        target: Target,
        spec: CheckSpec,
        key: CheckKey,
        health: BackendHealth,
    ) -> None:
        self.id = backend
        self.target = target
        self.spec = spec
        self.key = key
        self.health = health
        self.probe: _Probe | None = None
        self.timer_at: float | None = None
        self.removed = False


class _Service:
    __slots__ = ("guard", "reason")

    def __init__(self, settings: FailOpenSettings | None) -> None:
        self.guard: FailOpenGuard[BackendId] = FailOpenGuard(settings)
        self.reason = ""


# (deadline, sequence number): atoms only, so CPython's GC stops tracking the
# entries; the item lives in CheckerPool._heap_items under its sequence number.
_HeapEntry = tuple[float, int]


class _Watchdog:
    """The heap item of the hung-probe sweep."""

    __slots__ = ("due",)

    def __init__(self) -> None:
        self.due: float | None = None


class CheckerPool:
    """Runs health checks for many backends; reports changes through ``on_change``.

    ``clock`` defaults to the running loop's ``time`` (monotonic); inject one
    for tests without looptime. ``rng`` spreads the first probes (warm-up).
    ``fail_open`` is the default guard for services that ``update`` does not
    configure (None: no guard). ``probe_batch``: the most seconds a probe start
    may come early to share a wake-up (checkers/schedule.py rule 5; 0 for none).
    """

    def __init__(
        self,
        prober: Prober = run_probe,
        *,
        clock: Callable[[], float] | None = None,
        rng: random.Random | None = None,
        on_change: Callable[[HealthChanged], None],
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        fail_open: FailOpenSettings | None = _DEFAULT_FAIL_OPEN,
        history: int = DEFAULT_HISTORY,
        probe_batch: float = PROBE_BATCH_MAX,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        self._prober = prober
        self._injected_clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._on_change = on_change
        self._max_concurrency = max_concurrency
        self._default_fail_open = fail_open
        self._history = history
        self._probe_batch = probe_batch

        self._backends: dict[BackendId, _Backend] = {}
        self._probes: dict[CheckKey, _Probe] = {}
        self._services: dict[str, _Service] = {}

        self._heap: list[_HeapEntry] = []
        self._heap_items: dict[int, _Probe | _Backend | _Watchdog] = {}
        self._seq = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._started = False
        self._stopping = False

        self._in_flight = 0
        self._running: set[_Probe] = set()
        self._watchdog = _Watchdog()
        self._waiting: deque[tuple[_Probe, float]] = deque()
        self._lateness: deque[float] = deque(maxlen=_LATENESS_SAMPLES)
        self.probes_started = 0
        self.probes_completed = 0
        self.late_deadlines = LateDeadlines()

    # -- clock and timer -----------------------------------------------------

    def _clock(self) -> float:
        if self._injected_clock is not None:
            return self._injected_clock()
        if self._loop is not None:
            return self._loop.time()
        return asyncio.get_running_loop().time()

    def _push(self, when: float, item: _Probe | _Backend | _Watchdog) -> None:
        seq = next(self._seq)
        self._heap_items[seq] = item
        heapq.heappush(self._heap, (when, seq))
        if self._started and (self._timer_at is None or when < self._timer_at):
            self._arm()

    def _push_quiet(self, when: float, item: _Probe | _Backend | _Watchdog) -> None:
        """Push without re-arming the timer (the caller arms once for a batch)."""
        seq = next(self._seq)
        self._heap_items[seq] = item
        heapq.heappush(self._heap, (when, seq))

    @staticmethod
    def _valid(when: float, item: _Probe | _Backend | _Watchdog) -> bool:
        if isinstance(item, _Probe):
            return not item.removed and item.due == when
        if isinstance(item, _Watchdog):
            return item.due == when
        return not item.removed and item.timer_at == when

    def _arm(self) -> None:
        """Re-arm the one timer at the earliest valid deadline (rule 1)."""
        heap = self._heap
        items = self._heap_items
        while heap and not self._valid(heap[0][0], items[heap[0][1]]):
            del items[heapq.heappop(heap)[1]]
        if not heap:
            self._cancel_timer()
            return
        when = heap[0][0]
        if self._timer is not None and self._timer_at == when:
            return
        self._cancel_timer()
        loop = self._loop
        assert loop is not None
        self._timer_at = when
        if self._injected_clock is None:
            self._timer = loop.call_at(when, self._on_timer)
        else:
            self._timer = loop.call_later(max(0.0, when - self._clock()), self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = None

    def _on_timer(self) -> None:
        deadline = self._timer_at if self._timer_at is not None else self._clock()
        self._timer = None
        self._timer_at = None
        now = max(deadline, self._clock())
        # Probe starts due a little later go now too, each at most its own `early`
        # (schedule rule 5; the heap's order stops the batch at the first one that
        # may not); the other items (core deadlines, the watchdog) never run
        # before their time.
        batch = batch_end(now, self._probe_batch)
        heap = self._heap
        items = self._heap_items
        while heap and heap[0][0] <= batch:
            when, seq = heap[0]
            if when > now:
                waiting = items[seq]
                if not isinstance(waiting, _Probe) or when > now + waiting.early:
                    break
            heapq.heappop(heap)
            item = items.pop(seq)
            if not self._valid(when, item):
                continue
            if isinstance(item, _Probe):
                item.due = None
                item.launched_due = when
                self._launch(item, when, now)
            elif isinstance(item, _Watchdog):
                item.due = None
                self._sweep_hung(now, late=late_beyond_bound(when, now))
            else:
                item.timer_at = None
                self._handle(item, item.health.on_timer(now), now)
                self._schedule_core_timer(item)
        self._arm()

    # -- probes --------------------------------------------------------------

    def _launch(self, probe: _Probe, due: float, now: float) -> None:
        if self._in_flight >= self._max_concurrency:
            self._waiting.append((probe, due))
            return
        self._start_probe(probe, due, now)

    def _start_probe(self, probe: _Probe, due: float, now: float) -> None:
        """Start one probe at ``now``, the time its caller read for this wake-up:
        one clock read per batch of starts (it is a system call in some VMs)."""
        loop = self._loop
        assert loop is not None
        self._in_flight += 1
        self.probes_started += 1
        self._lateness.append(now - due)
        probe.started_at = now
        probe.hung = False
        self._running.add(probe)
        if self._prober is run_probe:
            if not probe.planned:
                probe.planned = True
                probe.plan = plan_probe(probe.spec, probe.target)
                probe.on_done = functools.partial(self._attempt_done, probe)
            if probe.plan is not None:
                assert probe.on_done is not None
                try:
                    probe.attempt = probe.plan.start(loop, probe.on_done, now)
                except Exception as exc:
                    # As in _run: our bug (or the director out of file
                    # descriptors), never the peer's. A failed check, reported
                    # from the loop; the timer that called us must go on.
                    log.exception("check.probe.crashed", check=str(probe.key))
                    failed = ProbeResult(False, f"probe crashed: {type(exc).__name__}", 0.0)
                    loop.call_soon(self._attempt_done, probe, failed)
                return
        probe.task = loop.create_task(self._run(probe))

    def _attempt_done(self, probe: _Probe, result: ProbeResult) -> None:
        """A callback attempt's one result: the same steps as the end of _run."""
        # The attempt started at started_at and measured its latency at the
        # wake-up that ended it: that is now, without reading the clock again.
        started = probe.started_at
        now = started + result.latency if started is not None else self._clock()
        self._release(probe, now)
        self.probes_completed += 1
        if not probe.removed:
            self._on_result(probe, result, now)

    def _release(self, probe: _Probe, now: float) -> None:
        probe.attempt = None
        self._in_flight -= 1
        self._running.discard(probe)
        self._start_waiting(now)

    def _cancel_attempt(self, probe: _Probe) -> None:
        """Stop a running callback attempt without a result (removal, stop)."""
        attempt = probe.attempt
        if attempt is not None:
            attempt.cancel()
            self._release(probe, self._clock())

    def _sweep_hung(self, now: float, *, late: bool = False) -> None:
        """Cancel probes running HUNG_GRACE past their timeout; re-arm the sweep.
        A sweep that fired late judges nothing (checkers/inconclusive.py rule 4)."""
        for probe in () if late else list(self._running):
            started = probe.started_at
            limit = probe.spec.timing.timeout + HUNG_GRACE
            running = probe.task is not None or probe.attempt is not None
            if started is not None and now - started > limit and running:
                probe.hung = True
                log.error(
                    "check.probe.hung",
                    check=str(probe.key),
                    rs=str(probe.target),
                    reason=f"no result {now - started:.1f}s after start "
                    f"(timeout {probe.spec.timing.timeout:g}s)",
                )
                if probe.task is not None:
                    probe.task.cancel()
                else:
                    self._cancel_attempt(probe)
                    timeout = probe.spec.timing.timeout
                    self.probes_completed += 1
                    self._on_result(
                        probe,
                        ProbeResult(
                            False, f"probe hung past its {timeout:g}s timeout", now - started
                        ),
                        now,
                    )
        self._watchdog.due = now + WATCHDOG_PERIOD
        self._push_quiet(self._watchdog.due, self._watchdog)

    def _start_waiting(self, now: float) -> None:
        while self._waiting and self._in_flight < self._max_concurrency and not self._stopping:
            probe, due = self._waiting.popleft()
            if not probe.removed:
                self._start_probe(probe, due, now)

    async def _run(self, probe: _Probe) -> None:
        try:
            try:
                result = await self._prober(probe.spec, probe.target)
            except asyncio.CancelledError:
                if not probe.hung or probe.removed or self._stopping:
                    raise
                # our own watchdog cancelled it: a failed check, not a shutdown
                elapsed = self._clock() - (probe.started_at or 0.0)
                timeout = probe.spec.timing.timeout
                result = ProbeResult(False, f"probe hung past its {timeout:g}s timeout", elapsed)
            except Exception as exc:
                # run_probe never raises for the peer's behaviour: this is our
                # bug. Keep the pool alive and count it as a failed check.
                log.exception("check.probe.crashed", check=str(probe.key))
                result = ProbeResult(False, f"probe crashed: {type(exc).__name__}", 0.0)
        finally:
            self._in_flight -= 1
            self._running.discard(probe)
            probe.task = None
            now = self._clock()
            self._start_waiting(now)
        self.probes_completed += 1
        if not probe.removed:
            self._on_result(probe, result, now)

    def _on_result(self, probe: _Probe, result: ProbeResult, now: float) -> None:
        if not (probe.hung or self._stopping) and self._inconclusive(probe, result, now):
            self._launch(probe, now, now)
            return
        backend: _Backend | None = None
        for backend in list(probe.backends.values()):
            events = backend.health.observe(
                result.ok, result.detail, result.latency, now, result.weight
            )
            if events:
                self._handle(backend, events, now)
            self._schedule_core_timer(backend)
        if probe.backends and not probe.removed:
            if len(probe.backends) == 1 and backend is not None:
                interval = backend.health.probe_interval()
            else:
                interval = shared_interval(
                    b.health.probe_interval() for b in probe.backends.values()
                )
            previous = probe.launched_due if probe.launched_due is not None else now
            due = next_probe_at(previous, now, interval)
            probe.due = due
            probe.early = probe_early(interval, self._probe_batch)
            self._push(due, probe)

    def _inconclusive(self, probe: _Probe, result: ProbeResult, now: float) -> bool:
        """Whether to drop this result and run the probe again now (checkers/inconclusive.py)."""
        verdict = self.late_deadlines.judge(
            ok=result.ok,
            latency=result.latency,
            timeout=probe.spec.timing.timeout,
            rerun=probe.rerun,
            now=now,
        )
        probe.rerun = verdict.rerun
        if verdict.new_episode:
            log.info(
                "check.inconclusive",
                check=str(probe.key),
                rs=str(probe.target),
                reason=f"{result.detail}, but its deadline fired {verdict.late_by:.1f}s late: "
                "the checker was not running; "
                + ("re-run at once, neither rise nor fall" if verdict.rerun
                   else "its re-run was late too: counted as a failure"),
            )
        return verdict.rerun

    def _schedule_core_timer(self, backend: _Backend) -> None:
        deadline = backend.health.next_deadline()
        if deadline == backend.timer_at:
            return
        backend.timer_at = deadline
        if deadline is not None:
            self._push(deadline, backend)

    # -- events -> fail-open -> on_change --------------------------------------

    def _handle(self, backend: _Backend, events: tuple[HealthEvent, ...], now: float) -> None:
        service = self._services[backend.id.service]
        guard = service.guard
        for event in events:
            if event.flipped:
                step = guard.record(backend.id, event.healthy, now)
                held = guard.is_held(backend.id)
                log_event = "check.up" if event.healthy else "check.down"
                # reason: the operator's text; cause: the enum, for grep and alerts
                if held:
                    log.warning(
                        log_event,
                        vs=backend.id.service,
                        rs=backend.id.rs,
                        reason=event.text,
                        cause=event.reason.value,
                        fail_open_held=True,
                    )
                else:
                    log.info(
                        log_event,
                        vs=backend.id.service,
                        rs=backend.id.rs,
                        reason=event.text,
                        cause=event.reason.value,
                    )
                self._apply_step(backend.id.service, step, source=backend.id, event=event)
            elif event.reweighted:
                if guard.is_up(backend.id) and backend.health.healthy:
                    log.debug(
                        "check.weight",
                        vs=backend.id.service,
                        rs=backend.id.rs,
                        reason=event.text,
                        weight_factor=event.weight_factor,
                        weight=event.weight,
                    )
                    self._emit(
                        HealthChanged(
                            backend.id,
                            True,
                            event.text,
                            event.weight_factor,
                            event.weight,
                            event.reason,
                        )
                    )
            elif event.reason is Reason.DAMPED:
                log.warning(
                    "check.damped", vs=backend.id.service, rs=backend.id.rs, reason=event.text
                )

    def _apply_step(
        self,
        service_name: str,
        step: FailOpenStep[BackendId],
        *,
        source: BackendId | None = None,
        event: HealthEvent | None = None,
    ) -> None:
        service = self._services.get(service_name)
        if step.event is FailOpenEvent.ENTERED:
            log.warning("check.failopen.entered", vs=service_name, reason=step.reason)
            if service is not None:
                service.reason = step.reason
        elif step.event is FailOpenEvent.CLEARED:
            log.warning("check.failopen.cleared", vs=service_name, reason=step.reason)
            if service is not None:
                service.reason = step.reason
        for backend_id, up in step.changes:
            backend = self._backends.get(backend_id)
            if backend is None:
                continue
            if backend_id == source and event is not None:
                self._emit(
                    HealthChanged(
                        backend_id, up, event.text, event.weight_factor, event.weight, event.reason
                    )
                )
            elif up and not backend.health.healthy:
                # restored by fail-open: back at full weight, the last known-good state
                self._emit(
                    HealthChanged(
                        backend_id,
                        True,
                        f"fail-open: {step.reason}",
                        1.0,
                        backend.health.dynamic_weight,
                        Reason.FAIL_OPEN,
                    )
                )
            else:
                reason = (
                    f"fail-open cleared: {backend.health.reason_text}"
                    if step.event is FailOpenEvent.CLEARED
                    else backend.health.reason_text
                )
                cause = (
                    Reason.FAIL_OPEN_CLEARED
                    if step.event is FailOpenEvent.CLEARED
                    else backend.health.reason
                )
                factor = backend.health.weight_factor(self._clock()) if up else 0.0
                self._emit(
                    HealthChanged(
                        backend_id, up, reason, factor, backend.health.dynamic_weight, cause
                    )
                )

    def _emit(self, change: HealthChanged) -> None:
        try:
            self._on_change(change)
        except Exception:
            # The consumer's bug must not stop the health checks of every backend.
            log.exception("check.on_change.failed", vs=change.backend.service, rs=change.backend.rs)

    # -- configuration -------------------------------------------------------

    def update(
        self,
        assignments: Mapping[BackendId, tuple[Target, CheckSpec]],
        *,
        adopted: Collection[BackendId] = (),
        fail_open: Mapping[str, FailOpenSettings | None] | None = None,
    ) -> None:
        """Make the checked backends exactly ``assignments`` (rule 4).

        ``adopted``: backends found in the kernel table at startup; they stay
        up until their first result. ``fail_open``: per-service settings; a
        service not listed keeps its current settings (new: the pool default).

        New backends are reported to ``on_change`` at once with their initial
        state (down, or up when adopted), so the consumer's health map is
        complete before the first probe; unchanged backends report nothing.
        Call it from the event loop thread; it does not wait for any probe.
        """
        now = self._clock()
        new_probes: list[_Probe] = []
        for backend_id in [b for b in self._backends if b not in assignments]:
            self._remove_backend(backend_id)
        for backend_id, (target, spec) in assignments.items():
            existing = self._backends.get(backend_id)
            if existing is not None and existing.spec is spec and existing.target == target:
                continue  # the very same check: nothing to do (the common reload case)
            key = check_key(spec, target)
            if existing is not None and existing.key == key:
                existing.spec = spec
                if existing.health.timing != spec.timing:
                    events = existing.health.retune(spec.timing, now)
                    if events:
                        self._handle(existing, events, now)
                    self._schedule_core_timer(existing)
                continue
            was_up: bool | None = None
            if existing is not None:
                # The check changed: keep the place of a healthy server and let
                # the new check's first result decide (rule 4).
                was_up = self._services[backend_id.service].guard.is_up(backend_id)
                self._remove_backend(backend_id)
            probe = self._add_backend(
                backend_id,
                target,
                spec,
                key,
                adopted=backend_id in adopted or bool(was_up),
                previously=was_up,
                now=now,
            )
            if probe is not None:
                new_probes.append(probe)
        for name, settings in (fail_open or {}).items():
            service = self._services.get(name)
            if service is not None and service.guard.settings != settings:
                self._apply_step(name, service.guard.retune(settings))
        for name in [n for n, service in self._services.items() if not service.guard.members]:
            del self._services[name]
        # The warm-up spread counts from the end of this (possibly long)
        # update, so the first probes are not already late when it returns.
        self._schedule_first(new_probes, self._clock())

    def _schedule_first(self, probes: list[_Probe], base: float) -> None:
        for probe in probes:
            if not probe.removed:
                probe.due = base + probe.warmup
                self._push_quiet(probe.due, probe)
        if self._started:
            self._arm()

    def _add_backend(
        self,
        backend_id: BackendId,
        target: Target,
        spec: CheckSpec,
        key: CheckKey,
        *,
        adopted: bool,
        previously: bool | None,
        now: float,
    ) -> _Probe | None:
        """Add one backend; return its probe if the probe is new (to be scheduled)."""
        health = BackendHealth(spec.timing, now=now, adopted=adopted, history=self._history)
        backend = _Backend(backend_id, target, spec, key, health)
        self._backends[backend_id] = backend
        service = self._services.get(backend_id.service)
        if service is None:
            service = _Service(self._default_fail_open)
            self._services[backend_id.service] = service
        service.guard.add(backend_id, health.healthy)
        probe = self._probes.get(key)
        created = probe is None
        if probe is None:
            probe = _Probe(key, spec, target, first_probe_at(spec.timing, 0.0, self._rng))
            probe.early = probe_early(spec.timing.interval, self._probe_batch)
            self._probes[key] = probe
        probe.backends[backend_id] = backend
        backend.probe = probe
        if previously is None or previously != health.healthy:
            self._emit(
                HealthChanged(
                    backend_id,
                    health.healthy,
                    health.reason_text,
                    health.weight_factor(now),
                    None,
                    health.reason,
                )
            )
        return probe if created else None

    def _remove_backend(self, backend_id: BackendId) -> None:
        backend = self._backends.pop(backend_id)
        backend.removed = True
        probe = backend.probe
        if probe is not None:
            del probe.backends[backend_id]
            if not probe.backends:
                probe.removed = True
                del self._probes[probe.key]
                if probe.task is not None:
                    probe.task.cancel()
                self._cancel_attempt(probe)
                # on_done refers back to the probe: without this cycle broken the
                # probe, its plan, key and target outlive it until a full collection,
                # and never after the daemon's gc.freeze() (a leak per reload).
                probe.on_done = None
                probe.plan = None
        service = self._services[backend_id.service]
        step = service.guard.remove(backend_id)
        # An empty service is dropped at the end of update(), not here: a
        # backend whose check changed is removed and re-added in one update,
        # and its service keeps its fail-open settings and state meanwhile.
        if service.guard.members:
            self._apply_step(backend_id.service, step)

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        """Start probing (call from the running loop)."""
        if self._started:
            raise RuntimeError("CheckerPool already started")
        self._loop = asyncio.get_running_loop()
        self._started = True
        self._stopping = False
        now = self._clock()
        # Probes added before start() have not run: their warm-up counts from now.
        fresh = [p for p in self._probes.values() if p.launched_due is None and p.due is not None]
        for probe in fresh:
            probe.due = None
        self._watchdog.due = now + WATCHDOG_PERIOD
        self._push_quiet(self._watchdog.due, self._watchdog)
        self._schedule_first(fresh, now)

    async def stop(self) -> None:
        """Stop the timer and cancel running probes; the state is kept."""
        self._stopping = True
        self._started = False
        self._cancel_timer()
        self._watchdog.due = None
        self._waiting.clear()
        tasks = [p.task for p in self._probes.values() if p.task is not None]
        for probe in self._probes.values():
            self._cancel_attempt(probe)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        # Probes that were cancelled while due must be probed again on restart.
        now = self._clock()
        for probe in self._probes.values():
            if probe.due is None:
                probe.due = now
                self._push_quiet(now, probe)
        self._loop = None

    # -- queries -------------------------------------------------------------

    def lateness(self) -> tuple[float, ...]:
        """Recent schedule lateness samples: probe start minus its deadline, seconds."""
        return tuple(self._lateness)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def current(self) -> dict[BackendId, HealthChanged]:
        """The health of every backend now, as the last HealthChanged would say it.

        Cheap (no history copies): for a consumer that rebuilds its health map,
        e.g. the IPVS programmer after a reload.
        """
        now = self._clock()
        result: dict[BackendId, HealthChanged] = {}
        for backend_id, backend in self._backends.items():
            health = backend.health
            guard = self._services[backend_id.service].guard
            if guard.is_held(backend_id):
                reason = f"fail-open: {self._services[backend_id.service].reason}"
                change = HealthChanged(
                    backend_id, True, reason, 1.0, health.dynamic_weight, Reason.FAIL_OPEN
                )
            else:
                change = HealthChanged(
                    backend_id,
                    health.healthy,
                    health.reason_text,
                    health.weight_factor(now),
                    health.dynamic_weight,
                    health.reason,
                )
            result[backend_id] = change
        return result

    def snapshot(self) -> PoolSnapshot:
        """Per-backend health and per-service fail-open state (the status API's view)."""
        now = self._clock()
        backends: dict[BackendId, BackendStatus] = {}
        for backend_id, backend in sorted(self._backends.items()):
            health = backend.health
            guard = self._services[backend_id.service].guard
            held = guard.is_held(backend_id)
            healthy = guard.is_up(backend_id)
            # held by fail-open: the last known-good weight; else the ramp (0.0 when down)
            factor = 1.0 if held else health.weight_factor(now)
            backends[backend_id] = BackendStatus(
                backend=backend_id,
                target=backend.target,
                check=str(backend.key),
                healthy=healthy,
                checked_up=health.healthy,
                held_by_fail_open=held,
                reason=health.reason_text,
                cause=health.reason,
                since=health.since,
                last_latency=health.last_latency,
                history=health.history,
                weight_factor=factor,
                weight=health.dynamic_weight,
                damped=health.damped,
                penalty=health.penalty(now),
            )
        services: dict[str, ServiceStatus] = {}
        for name, service in sorted(self._services.items()):
            guard = service.guard
            members = guard.members
            services[name] = ServiceStatus(
                service=name,
                real_servers=len(members),
                healthy=sum(1 for b in members if guard.is_up(b)),
                fail_open=guard.active,
                fail_open_since=guard.since,
                fail_open_reason=service.reason if guard.active else "",
                held=tuple(sorted(b for b in guard.held if guard.is_held(b))),
                fail_open_settings=guard.settings,
            )
        return PoolSnapshot(
            taken_at=now,
            taken_at_wall=time.time(),
            backends=backends,
            services=services,
            probes=len(self._probes),
            in_flight=self._in_flight,
            waiting=len(self._waiting),
        )
