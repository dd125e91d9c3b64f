"""IpvsProgrammer: keeps the kernel IPVS table equal to the config and the health checks.

The adapter around the pure cores (level-triggered, as kube-proxy's sync):
a sync builds the desired table (desired.py) with the drains (drain.py), plans the minimal
ordered ops against the kernel's table (plan.py) and applies them (batched when the kernel
offers ``apply_many``), logging each op as one line with its reason.

Two kinds of sync, both run by one Coalescer (at most one every ``min_interval``):

* full: dump the whole kernel table and compare every owned service. At start-up, at least
  every ``max_interval`` (the periodic compare that repairs drift, logged
  ``ipvs.drift.repaired``), every ``drain_check_interval`` while drains run (only a dump
  shows connection counts), and after any failure;
* fast: after a health change or a reload, compare only the services that changed against
  the table as the last sync left it (``expected_table``), with no dump. The cost follows the
  change, not the table: one flipped real server in 10,000 is one op within milliseconds
  (bench/ipvs_apply.py: one_change_ops, one_change_ms). Without fresh counts a leaving real
  server always starts a drain (never deleted on a guess) and the next full sync ends it.

Rules kept:

* a kernel error never stops the loop: the op is logged ``ipvs.op.failed`` with its errno,
  counted, shown in ``status()``, and retried by the next sync (scheduled ``retry_interval``
  later); dest ops of a service whose add just failed are skipped in that sync;
* start-up adopts what the kernel has (no flush): a table that already matches costs zero ops;
* ``stop()`` leaves the table as it is unless ``remove=True`` (keepalived removes its virtual
  servers on exit; haipvs defaults to hot-standby friendliness: traffic keeps flowing while the
  daemon restarts);
* services outside ``owned`` are never touched (another tool may share the table). Owned are
  the services of the current specs, those of previous specs until their deletion succeeded,
  and any key passed in ``owned``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field

import structlog

from haipvs.ipvs.coalescer import Coalescer
from haipvs.ipvs.desired import (
    AdminView,
    Desired,
    HealthKey,
    HealthView,
    Note,
    NoteKey,
    ServiceSpec,
    build_desired,
    with_drains,
)
from haipvs.ipvs.drain import DrainEvent, DrainEventKind, DrainTracker
from haipvs.ipvs.errors import KernelError
from haipvs.ipvs.kernel import BatchIpvsKernel, IpvsKernel
from haipvs.ipvs.model import (
    ActualTable,
    AddDest,
    AddService,
    DeleteDest,
    DeleteService,
    Dest,
    DestKey,
    IpvsTable,
    IpvsTimeouts,
    Op,
    OpReason,
    ServiceEntry,
    ServiceKey,
    UpdateDest,
    UpdateService,
    op_dest_key,
    op_name,
)
from haipvs.ipvs.plan import apply_ops, plan_changes

__all__ = ["DrainStatus", "IpvsProgrammer", "ProgrammerEvent", "ProgrammerStatus", "event_name"]

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class DrainStatus:
    """One dest in drain, for status: since/deadline are loop-clock seconds."""

    vs: str
    rs: str
    since: float
    deadline: float
    cause: str


@dataclass(frozen=True, slots=True)
class ProgrammerStatus:
    """What ``haipvs status`` and /status show about the IPVS programmer."""

    syncs: int = 0
    sync_failures: int = 0
    last_sync_at: float | None = None  # wall clock (time.time()) of the last completed sync
    last_sync_seconds: float | None = None  # how long it took
    last_sync_ops: int = 0
    in_sync: bool = False  # the last sync applied its whole plan
    last_error: str | None = None
    last_errno: int | None = None
    ops_applied: Mapping[str, int] = field(default_factory=dict)  # by op name
    ops_failed: int = 0
    drift_repairs: int = 0
    draining: tuple[DrainStatus, ...] = ()
    owned_services: int = 0


@dataclass(frozen=True, slots=True)
class ProgrammerEvent:
    """One logged change, for subscribers (metrics, status): the log event name and its op."""

    event: str
    op: Op | None = None
    error: KernelError | None = None
    reason: OpReason | None = None


_OP_EVENTS: Mapping[type[object], str] = {
    AddService: "ipvs.service.added",
    UpdateService: "ipvs.service.updated",
    DeleteService: "ipvs.service.deleted",
    AddDest: "ipvs.dest.added",
    UpdateDest: "ipvs.dest.updated",
    DeleteDest: "ipvs.dest.deleted",
}


def event_name(op: Op) -> str:
    """The log event of an applied op (named as in docs/operations.md)."""
    if op.reason.is_drift:
        return "ipvs.drift.repaired"
    if isinstance(op, UpdateDest) and op.reason is OpReason.DRAIN_STARTED:
        return "ipvs.dest.drain.started"
    if isinstance(op, DeleteDest) and op.reason is OpReason.DRAIN_FINISHED:
        return "ipvs.dest.drain.finished"
    return _OP_EVENTS[type(op)]


def _op_fields(op: Op) -> dict[str, object]:
    fields: dict[str, object] = {"vs": str(op.service_key)}
    dest = op_dest_key(op)
    if dest is not None:
        fields["rs"] = str(dest)
    if isinstance(op, AddDest | UpdateDest):
        fields["weight"] = op.dest.weight
    fields["reason"] = op.reason.value
    if op.detail:
        fields["detail"] = op.detail
    return fields


class IpvsProgrammer:
    """See the module docstring. Drive it with ``run()`` in a task; feed it with ``set_*``."""

    def __init__(
        self,
        kernel: IpvsKernel,
        *,
        clock: Callable[[], float] | None = None,
        min_interval: float = 0.05,
        max_interval: float = 10.0,
        retry_interval: float = 1.0,
        drain_check_interval: float = 2.0,
        on_event: Callable[[ProgrammerEvent], None] | None = None,
        wall_clock: Callable[[], float] = time.time,
        on_quorum: Callable[[ServiceKey, bool, str], None] | None = None,
    ) -> None:
        self._kernel = kernel
        self._max_interval = max_interval
        self._drain_check_interval = drain_check_interval
        self._wall_clock = wall_clock
        self._on_event = on_event
        self._retry_interval = retry_interval
        self._coalescer = Coalescer(
            self._sync_job,
            min_interval=min_interval,
            max_interval=max_interval,
            clock=clock,
            on_error=self._job_crashed,
        )
        self._specs: dict[ServiceKey, ServiceSpec] = {}
        self._extra_owned: frozenset[ServiceKey] = frozenset()
        self._retiring: set[ServiceKey] = set()
        self._health: dict[HealthKey, HealthView] = {}
        self._admin: dict[HealthKey, AdminView] = {}
        # Each service's quorum as last decided: hysteresis decides from it (desired.py).
        self._quorum: dict[ServiceKey, bool] = {}
        # Told of every quorum change (keepalived quorum_up / quorum_down commands).
        self._on_quorum = on_quorum
        self._pending_notes: dict[NoteKey, Note] = {}
        # The live desired rows (no drains), kept between syncs and rebuilt per service when
        # its specs or health change: a health flip costs O(that service), not O(table).
        self._live: dict[ServiceKey, ServiceEntry] = {}
        self._live_notes: dict[ServiceKey, dict[NoteKey, Note]] = {}
        self._live_valid = False
        self._dirty: set[ServiceKey] = set()
        self._requested = 0  # request_sync calls so far
        self._settled_upto = -1  # the request count the last clean sync covered
        self._drain_timeouts: dict[ServiceKey, float] = {}
        self._full_requested = True
        self._last_full = -math.inf
        self._drains = DrainTracker()
        self._expected: IpvsTable | None = None
        self._timeouts: IpvsTimeouts | None = None
        self._timeouts_applied = False
        self._lock = asyncio.Lock()
        # status counters
        self._syncs = 0
        self._sync_failures = 0
        self._last_sync_at: float | None = None
        self._last_sync_seconds: float | None = None
        self._last_sync_ops = 0
        self._in_sync = False
        self._last_error: str | None = None
        self._last_errno: int | None = None
        self._ops_applied: dict[str, int] = {}
        self._ops_failed = 0
        self._drift_repairs = 0

    # ------------------------------------------------------------------------ inputs

    def set_specs(
        self, specs: Iterable[ServiceSpec], owned: Collection[ServiceKey] | None = None
    ) -> None:
        """Replace the service specs (start-up or reload) and request a sync.

        Services of the previous specs that are gone stay owned until their deletion
        succeeded (during a reload, owned = old + new for the reload's sync).
        """
        new = {}
        for spec in specs:
            if spec.key in new:
                raise ValueError(f"service {spec.key} specified twice")
            new[spec.key] = spec
        old = self._specs
        self._retiring |= set(old) - set(new)
        self._retiring -= set(new)
        # Only the services whose spec changed are recompared (keepalived's compare of old
        # and new virtual servers); the periodic full compare still covers everything.
        self._dirty |= {key for key in old.keys() | new.keys() if old.get(key) != new.get(key)}
        self._specs = new
        self._drain_timeouts = {key: spec.drain_timeout for key, spec in new.items()}
        if owned is not None and frozenset(owned) != self._extra_owned:
            self._extra_owned = frozenset(owned)
            self._full_requested = True  # services owned but not specified: compare all
        # Health is the checkers' word and is kept as given: entries of real servers that are
        # not (or no longer) configured are simply not consulted; set_health replaces them.
        self.request_sync("config")

    def set_health(self, health: Mapping[HealthKey, HealthView]) -> None:
        """Replace the whole health map and request a sync."""
        for key, view in health.items():
            if self._health.get(key) != view:
                self._note_health(key, self._health.get(key), view)
                self._dirty.add(key[0])
        for key in self._health.keys() - health.keys():
            self._note_health(key, self._health[key], None)
            self._dirty.add(key[0])
        self._health = dict(health)
        self.request_sync("health")

    def update_health(self, service: ServiceKey, dest: DestKey, view: HealthView) -> None:
        """Set one real server's health (a checker's HealthChanged) and request a sync."""
        key = (service, dest)
        if self._health.get(key) == view:
            return
        self._note_health(key, self._health.get(key), view)
        self._health[key] = view
        self._dirty.add(service)
        self.request_sync("health")

    def set_admin(self, admin: Mapping[HealthKey, AdminView]) -> None:
        """Replace the operator's overrides (drain, maintenance) and request a sync."""
        if admin == self._admin:
            return
        for key in self._admin.keys() ^ admin.keys():
            self._dirty.add(key[0])
        for key in self._admin.keys() & admin.keys():
            if self._admin[key] != admin[key]:
                self._dirty.add(key[0])
        self._admin = dict(admin)
        self.request_sync("operator")

    def set_timeouts(self, tcp: int, tcpfin: int, udp: int) -> None:
        """Wanted connection timeouts (ipvsadm --set); applied by the next sync."""
        self._timeouts = IpvsTimeouts(tcp, tcpfin, udp)
        self._timeouts_applied = False
        self.request_sync("timeouts")

    def request_sync(self, reason: str = "request", *, full: bool = False) -> None:
        """Ask for a sync; coalesced with others, no sooner than min_interval after the last.

        ``full=True`` asks for a compare against a fresh dump (what the periodic sync does).
        """
        del reason  # kept in the signature for callers' readability; syncs log their ops
        self._requested += 1
        if full:
            self._full_requested = True
        self._coalescer.request()

    def _note_health(self, key: HealthKey, old: HealthView | None, new: HealthView | None) -> None:
        was_up = old is None or old.up
        is_up = new is None or new.up
        if is_up and not was_up:
            detail = new.reason if new is not None else ""
            self._pending_notes[key] = Note(OpReason.HEALTH_UP, detail)
        elif was_up and not is_up:
            self._pending_notes.pop(key, None)  # desired.py notes the down with its reason

    # ------------------------------------------------------------------------ running

    @property
    def owned(self) -> frozenset[ServiceKey]:
        return frozenset(self._specs) | self._retiring | self._extra_owned

    async def run(self) -> None:
        """Sync now, then on requests, deadlines and every max_interval, until ``stop()``."""
        await self._coalescer.serve()

    async def stop(self, remove: bool = False) -> None:
        """Stop the loop; the table stays unless ``remove`` (then owned services are deleted)."""
        self._coalescer.stop()
        if not remove:
            return
        async with self._lock:
            try:
                actual = await self._kernel.dump()
            except KernelError as error:
                self._failed(None, error)
                return
            for key in actual.table.sorted_keys():
                if key in self.owned:
                    await self._apply(DeleteService(key, OpReason.SHUTDOWN, "stop(remove=True)"))

    async def adopt(self, actual: ActualTable) -> tuple[Op, ...]:
        """Start-up's first sync, against ``actual``: the dump the caller took just now to
        adopt the table (a restart over a hot table is one dump and a compare, no op). The
        loop (``run()``) counts its intervals from this sync instead of repeating it."""
        started = self._coalescer.now()
        try:
            return await self.sync(actual=actual)
        finally:
            self._coalescer.ran(started)

    async def sync(self, *, full: bool = True, actual: ActualTable | None = None,
                   ) -> tuple[Op, ...]:
        """One sync now; returns the ops applied.

        Full (the default; start-up, periodic, drain checks, after errors): dump the kernel,
        compare every owned service, repair drift, read connection counts for drains. Fast
        (what the loop runs after health changes and reloads): compare only the services that
        changed against the table as the last sync left it, no dump; drift waits for the next
        full sync.
        """
        async with self._lock:
            covers = self._requested
            ops = await (self._sync_full(actual) if full or self._expected is None
                         else self._sync_fast())
            if self._in_sync:
                self._settled_upto = covers
            return ops

    @property
    def settled(self) -> bool:
        """The table equals the desired one as of every change asked for so far: the last
        sync was clean and began after the last request. ``in_sync`` alone is stale between
        a change and the sync that applies it (scale-out's announce gate reads this)."""
        return self._in_sync and self._settled_upto == self._requested

    async def _sync_job(self) -> None:
        now = self._now()
        full = self._full_requested or now >= self._next_full_at()
        await self.sync(full=full)

    def _next_full_at(self) -> float:
        due = self._last_full + self._max_interval
        if self._drains.drains:
            # Drains end when their connections do: only a dump shows that.
            due = min(due, self._last_full + self._drain_check_interval)
        return due

    def _job_crashed(self, error: BaseException) -> None:
        # A bug in a sync must not end the programmer: log it, count it, retry later.
        self._sync_failures += 1
        self._last_error = f"{type(error).__name__}: {error}"
        self._last_errno = None
        self._in_sync = False
        self._full_requested = True
        self._live_valid = False
        log.error("ipvs.sync.crashed", error=self._last_error, exc_info=error)
        self._coalescer.request_at(self._now() + self._retry_interval)

    def _now(self) -> float:
        return self._coalescer.now()

    def _refresh_live(self) -> set[ServiceKey] | None:
        """Bring the live rows up to date; returns the services rebuilt (None: all)."""
        if not self._live_valid:
            built = build_desired(
                self._specs, self._health, admin=self._admin, held=self._quorum
            )
            self._quorum_changes(built)
            self._quorum = dict(built.quorum)
            self._live = dict(built.table.services)
            self._live_notes = {}
            for note_key, note in built.notes.items():
                self._live_notes.setdefault(note_key[0], {})[note_key] = note
            self._live_valid = True
            self._dirty.clear()
            return None
        dirty = set(self._dirty)
        self._dirty.clear()
        if dirty:
            built = build_desired(
                [self._specs[key] for key in dirty if key in self._specs],
                self._health,
                admin=self._admin,
                held=self._quorum,
            )
            self._quorum_changes(built)
            for key in dirty:
                self._live_notes.pop(key, None)
                if key not in built.quorum:
                    self._quorum.pop(key, None)  # removed from the config
                entry = built.table.services.get(key)
                if entry is None:
                    self._live.pop(key, None)  # removed from the config
                else:
                    self._live[key] = entry
            self._quorum.update(built.quorum)
            for note_key, note in built.notes.items():
                self._live_notes.setdefault(note_key[0], {})[note_key] = note
        return dirty

    def _quorum_changes(self, built: Desired) -> None:
        """Log each service whose quorum changed and tell ``on_quorum``.

        A new service counts as holding quorum before its first decision, as keepalived
        starts a virtual server: one that starts below it is a loss (its quorum_down runs).
        """
        for key, held in built.quorum.items():
            if self._quorum.get(key, True) == held:
                continue
            detail = built.quorum_detail.get(key, "")
            if held:
                log.info("ipvs.quorum.regained", vs=str(key), detail=detail)
            else:
                log.warning("ipvs.quorum.lost", vs=str(key), detail=detail)
            if self._on_quorum is not None:
                self._on_quorum(key, held, detail)

    def _flat_notes(self, services: Iterable[ServiceKey] | None) -> dict[NoteKey, Note]:
        notes: dict[NoteKey, Note] = {}
        if services is None:
            for per_service in self._live_notes.values():
                notes.update(per_service)
        else:
            for key in services:
                notes.update(self._live_notes.get(key, {}))
        return notes

    async def _sync_full(self, dumped: ActualTable | None = None) -> tuple[Op, ...]:
        started = self._now()
        first = self._expected is None
        try:
            actual = dumped if dumped is not None else await self._kernel.dump()
        except KernelError as error:
            self._sync_failures += 1
            self._in_sync = False
            self._full_requested = True
            self._failed(None, error)
            self._coalescer.request_at(started + self._retry_interval)
            return ()
        await self._sync_timeouts()

        owned = self.owned
        self._live_valid = False
        self._refresh_live()
        live = IpvsTable(dict(self._live))
        live_notes = self._flat_notes(None)
        events = self._drains.update(live, actual, self._drain_timeouts, started, live_notes)
        notes = self._notes(live_notes, events)
        desired = with_drains(live, self._drains.draining_dests())
        ops = plan_changes(desired, actual.table, owned, expected=self._expected, notes=notes)

        applied, failures = await self._apply_plan(ops)
        self._log_silent_drain_starts(events, applied)
        self._expected = apply_ops(actual.table, applied)
        present = self._expected.services
        self._retiring = {key for key in self._retiring if key in present}
        if first:
            mine = actual.table.restricted_to(owned)
            log.info("ipvs.table.adopted", services=len(mine), dests=mine.dest_count(),
                     ops=len(applied))
        self._last_full = started
        self._full_requested = failures > 0
        self._finish_sync(started, applied, failures)
        return tuple(applied)

    async def _sync_fast(self) -> tuple[Op, ...]:
        started = self._now()
        base = self._expected
        assert base is not None
        rebuilt = self._refresh_live()
        live = IpvsTable(dict(self._live))
        changed = set(live.services) if rebuilt is None else rebuilt
        live_notes = self._flat_notes(changed)
        events = self._drains.update(
            live, ActualTable(base), self._drain_timeouts, started, live_notes,
            stats_known=False, services=changed,
        )
        touched = changed | {event.drain.service for event in events}
        notes = self._notes(live_notes, events)
        desired = with_drains(live, self._drains.draining_dests())
        ops = plan_changes(desired, base, self.owned, notes=notes, only=touched)

        applied, failures = await self._apply_plan(ops)
        self._log_silent_drain_starts(events, applied)
        self._expected = apply_ops(base, applied)
        present = self._expected.services
        self._retiring = {key for key in self._retiring if key in present}
        if failures:
            # Our record may be wrong (someone changed the kernel): compare with a dump.
            self._full_requested = True
        self._finish_sync(started, applied, failures)
        return tuple(applied)

    def _finish_sync(self, started: float, applied: list[Op], failures: int) -> None:
        if failures == 0:
            self._pending_notes.clear()
        self._syncs += 1
        self._in_sync = failures == 0
        self._last_sync_ops = len(applied)
        self._last_sync_at = self._wall_clock()
        self._last_sync_seconds = self._now() - started
        if failures:
            self._sync_failures += 1
            self._coalescer.request_at(started + self._retry_interval)
        self._coalescer.request_at(self._next_full_at())
        deadline = self._drains.next_deadline()
        if deadline is not None:
            self._coalescer.request_at(deadline)

    def _notes(
        self, desired_notes: Mapping[NoteKey, Note], events: tuple[DrainEvent, ...]
    ) -> dict[NoteKey, Note]:
        notes = dict(desired_notes)
        notes.update(self._pending_notes)
        for event in events:
            if event.kind is DrainEventKind.CANCELLED and event.drain.key in notes:
                continue  # "health_up" says more than "drain cancelled"
            notes[event.drain.key] = event.note
        return notes

    def _log_silent_drain_starts(self, events: tuple[DrainEvent, ...], applied: list[Op]) -> None:
        # A drain of a dest already at weight 0 needs no op; say it started all the same.
        touched = {(op.service_key, op_dest_key(op)) for op in applied}
        for event in events:
            if event.kind is DrainEventKind.STARTED and event.drain.key not in touched:
                note = event.note
                log.info(
                    "ipvs.dest.drain.started",
                    vs=str(event.drain.service),
                    rs=str(event.drain.dest.key),
                    weight=0,
                    reason=note.reason.value,
                    detail=note.detail,
                )
                self._emit(ProgrammerEvent("ipvs.dest.drain.started", None, None, note.reason))

    async def _sync_timeouts(self) -> None:
        if self._timeouts is None or self._timeouts_applied:
            return
        wanted = self._timeouts
        try:
            current = await self._kernel.get_timeouts()
            if (wanted.tcp or current.tcp, wanted.tcp_fin or current.tcp_fin,
                    wanted.udp or current.udp) != (current.tcp, current.tcp_fin, current.udp):
                await self._kernel.set_timeouts(wanted.tcp, wanted.tcp_fin, wanted.udp)
                log.info("ipvs.timeouts.set", tcp=wanted.tcp, tcpfin=wanted.tcp_fin,
                         udp=wanted.udp, reason="config")
            self._timeouts_applied = True
        except KernelError as error:
            self._failed(None, error)

    async def _apply_plan(self, ops: tuple[Op, ...]) -> tuple[list[Op], int]:
        """Apply the plan in order; returns the applied ops and the number of failures.

        Dest ops of a service whose AddService failed are skipped (they could only fail with
        ESRCH). With a batching kernel the service adds go in one batch and the rest in a
        second one, so a cold build of thousands of dests costs a few round trips.
        """
        applied: list[Op] = []
        failures = 0
        kernel = self._kernel
        if len(ops) > 1 and isinstance(kernel, BatchIpvsKernel):
            adds = [op for op in ops if isinstance(op, AddService)]
            failed_services: set[ServiceKey] = set()
            if adds:
                for add, error in zip(adds, await kernel.apply_many(adds), strict=True):
                    if self._record(add, error):
                        applied.append(add)
                    else:
                        failures += 1
                        failed_services.add(add.service_key)
            rest = [
                other for other in ops
                if not isinstance(other, AddService) and other.service_key not in failed_services
            ]
            if rest:
                for other, error in zip(rest, await kernel.apply_many(rest), strict=True):
                    if self._record(other, error):
                        applied.append(other)
                    else:
                        failures += 1
            return applied, failures
        failed: set[ServiceKey] = set()
        for op in ops:
            if op.service_key in failed and not isinstance(op, AddService):
                continue
            if await self._apply(op):
                applied.append(op)
            else:
                failures += 1
                if isinstance(op, AddService):
                    failed.add(op.service_key)
        return applied, failures

    async def _apply(self, op: Op) -> bool:
        try:
            await self._kernel.apply(op)
        except KernelError as error:
            return self._record(op, error)
        return self._record(op, None)

    def _record(self, op: Op, error: KernelError | None) -> bool:
        """Log and count one op's outcome; True when it was applied."""
        if error is not None:
            self._failed(op, error)
            return False
        name = op_name(op)
        self._ops_applied[name] = self._ops_applied.get(name, 0) + 1
        event = event_name(op)
        if op.reason.is_drift:
            self._drift_repairs += 1
            log.info(event, op=name, **_op_fields(op))
        else:
            log.info(event, **_op_fields(op))
        self._emit(ProgrammerEvent(event, op, None, op.reason))
        return True

    def _failed(self, op: Op | None, error: KernelError) -> None:
        self._last_error = str(error)
        self._last_errno = error.errno
        if op is None:
            log.warning("ipvs.sync.failed", op=error.op, errno=error.errno,
                        error=error.errno_name, detail=error.message)
            self._emit(ProgrammerEvent("ipvs.sync.failed", None, error, None))
            return
        self._ops_failed += 1
        fields = _op_fields(op)
        log.warning("ipvs.op.failed", op=op_name(op), errno=error.errno,
                    error=error.errno_name, **fields)
        self._emit(ProgrammerEvent("ipvs.op.failed", op, error, op.reason))

    def _emit(self, event: ProgrammerEvent) -> None:
        if self._on_event is not None:
            self._on_event(event)

    # ------------------------------------------------------------------------ queries

    def status(self) -> ProgrammerStatus:
        draining = tuple(
            DrainStatus(
                vs=str(d.service),
                rs=str(d.dest.key),
                since=d.started,
                deadline=d.deadline,
                cause=d.cause.value,
            )
            for d in self._drains.drains.values()
        )
        return ProgrammerStatus(
            syncs=self._syncs,
            sync_failures=self._sync_failures,
            last_sync_at=self._last_sync_at,
            last_sync_seconds=self._last_sync_seconds,
            last_sync_ops=self._last_sync_ops,
            in_sync=self._in_sync,
            last_error=self._last_error,
            last_errno=self._last_errno,
            ops_applied=dict(self._ops_applied),
            ops_failed=self._ops_failed,
            drift_repairs=self._drift_repairs,
            draining=draining,
            owned_services=len(self.owned),
        )

    @property
    def health(self) -> Mapping[HealthKey, HealthView]:
        """The real servers' health the table is built under (set_health, health changes)."""
        return self._health

    def draining_dests(self) -> dict[HealthKey, Dest]:
        """The dests in a graceful drain now, at weight 0 (what a sync overlays)."""
        return self._drains.draining_dests()

    @property
    def admin(self) -> Mapping[HealthKey, AdminView]:
        """The operator's overrides in force (set_admin)."""
        return self._admin

    @property
    def expected_table(self) -> IpvsTable | None:
        """The table as the last sync left it (None before the first sync)."""
        return self._expected

    def is_draining(self, service: ServiceKey, dest: DestKey) -> bool:
        return self._drains.is_draining(service, dest)

