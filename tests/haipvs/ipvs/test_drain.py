"""DrainTracker: weight 0 first, delete at zero connections or deadline, UDP at once, restore."""

from __future__ import annotations

from collections.abc import Mapping

from haipvs.ipvs.desired import HealthView, Note, ServiceSpec, build_desired, with_drains
from haipvs.ipvs.drain import DrainEventKind, DrainTracker
from haipvs.ipvs.model import (
    ActualTable,
    DeleteDest,
    Dest,
    DestKey,
    DestStats,
    IpvsTable,
    OpReason,
    Service,
    ServiceKey,
    UpdateDest,
)
from haipvs.ipvs.plan import apply_ops, plan_changes

VS = ServiceKey.tcp("198.51.100.10", 80)
UDP = ServiceKey.udp("198.51.100.10", 53)
RS1 = DestKey("10.0.0.11", 80)
RS2 = DestKey("10.0.0.12", 80)


def specs(timeout: float = 30.0) -> list[ServiceSpec]:
    return [
        ServiceSpec(Service(VS), (Dest(RS1), Dest(RS2, weight=3)), drain_timeout=timeout),
        ServiceSpec(Service(UDP), (Dest(RS1), Dest(RS2)), drain_timeout=timeout),
    ]


FULL = build_desired(specs(), {}).table


def actual(table: IpvsTable, conns: Mapping[tuple[ServiceKey, DestKey], int]) -> ActualTable:
    stats = {
        key: {dk: DestStats(active_conns=conns.get((key, dk), 0)) for dk in entry.dests}
        for key, entry in table.items()
    }
    return ActualTable(table, stats)


class Scenario:
    """One director: live table from health, tracker, planner, a table standing for the kernel."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.specs = specs(timeout)
        self.timeouts = {s.key: s.drain_timeout for s in self.specs}
        self.kernel = FULL
        self.tracker = DrainTracker()

    def sync(self, health: dict[tuple[ServiceKey, DestKey], HealthView],
             conns: dict[tuple[ServiceKey, DestKey], int], now: float) -> tuple[object, ...]:
        live = build_desired(self.specs, health)
        events = self.tracker.update(
            live.table, actual(self.kernel, conns), self.timeouts, now, live.notes
        )
        notes = dict(live.notes)
        for event in events:
            notes[event.drain.key] = event.note
        desired = with_drains(live.table, self.tracker.draining_dests())
        ops = plan_changes(desired, self.kernel, set(desired), notes=notes)
        self.kernel = apply_ops(self.kernel, ops)
        self.events = events
        return ops


DOWN = HealthView(False, reason="connect refused")


def test_leaving_server_with_connections_goes_to_weight_zero_then_is_deleted_at_zero() -> None:
    s = Scenario()
    ops = s.sync({(VS, RS2): DOWN}, {(VS, RS2): 5}, now=100.0)
    assert [type(op) for op in ops] == [UpdateDest]
    (op,) = ops
    assert isinstance(op, UpdateDest) and op.dest.weight == 0
    assert op.reason is OpReason.DRAIN_STARTED
    assert op.detail.startswith("health_down: connect refused; connections 5")
    assert s.tracker.is_draining(VS, RS2)
    assert s.tracker.next_deadline() == 130.0

    assert s.sync({(VS, RS2): DOWN}, {(VS, RS2): 2}, now=110.0) == ()
    ops = s.sync({(VS, RS2): DOWN}, {(VS, RS2): 0}, now=120.0)
    assert ops == (DeleteDest(VS, RS2, OpReason.DRAIN_FINISHED, "connections 0"),)
    assert not s.tracker.is_draining(VS, RS2)
    assert s.tracker.next_deadline() is None


def test_deadline_deletes_even_with_open_connections() -> None:
    s = Scenario(timeout=30.0)
    s.sync({(VS, RS2): DOWN}, {(VS, RS2): 5}, now=100.0)
    assert s.sync({(VS, RS2): DOWN}, {(VS, RS2): 5}, now=129.9) == ()
    (op,) = s.sync({(VS, RS2): DOWN}, {(VS, RS2): 5}, now=130.0)
    assert isinstance(op, DeleteDest)
    assert op.reason is OpReason.DRAIN_FINISHED
    assert op.detail == "drain timeout 30s, connections 5"


def test_without_connections_the_server_is_deleted_at_once() -> None:
    s = Scenario()
    ops = s.sync({(VS, RS2): DOWN}, {}, now=100.0)
    assert ops == (DeleteDest(VS, RS2, OpReason.HEALTH_DOWN, "connect refused"),)
    assert s.events == ()


def test_udp_is_deleted_at_once_even_with_connections() -> None:
    s = Scenario()
    ops = s.sync({(UDP, RS2): DOWN}, {(UDP, RS2): 9}, now=100.0)
    assert ops == (DeleteDest(UDP, RS2, OpReason.HEALTH_DOWN, "connect refused"),)


def test_zero_drain_timeout_means_immediate_removal() -> None:
    s = Scenario(timeout=0.0)
    (op,) = s.sync({(VS, RS2): DOWN}, {(VS, RS2): 9}, now=100.0)
    assert isinstance(op, DeleteDest)


def test_a_server_that_comes_back_is_restored_in_place() -> None:
    s = Scenario()
    s.sync({(VS, RS2): DOWN}, {(VS, RS2): 5}, now=100.0)
    ops = s.sync({}, {(VS, RS2): 5}, now=105.0)
    assert ops == (
        UpdateDest(VS, Dest(RS2, weight=3), OpReason.DRAIN_CANCELLED,
                   "back in service; weight 0->3"),
    )
    assert [e.kind for e in s.events] == [DrainEventKind.CANCELLED]
    assert s.kernel == FULL


def test_removed_from_config_drains_too() -> None:
    s = Scenario()
    s.specs = [ServiceSpec(Service(VS), (Dest(RS1),), drain_timeout=30.0), s.specs[1]]
    (op,) = s.sync({}, {(VS, RS2): 1}, now=100.0)
    assert isinstance(op, UpdateDest) and op.reason is OpReason.DRAIN_STARTED
    assert op.detail.startswith("config_removed")


def test_a_drain_whose_dest_vanished_is_abandoned() -> None:
    s = Scenario()
    s.sync({(VS, RS2): DOWN}, {(VS, RS2): 5}, now=100.0)
    s.kernel = apply_ops(s.kernel, (DeleteDest(VS, RS2),))  # ipvsadm -d by hand
    assert s.sync({(VS, RS2): DOWN}, {}, now=101.0) == ()
    assert [e.kind for e in s.events] == [DrainEventKind.ABANDONED]


def test_drain_note_for_start_names_cause() -> None:
    s = Scenario()
    s.sync({(VS, RS2): DOWN}, {(VS, RS2): 5}, now=100.0)
    (event,) = s.events
    assert event.note == Note(OpReason.DRAIN_STARTED,
                              "health_down: connect refused; connections 5")


def test_without_fresh_counts_a_leaving_server_always_drains_first() -> None:
    tracker = DrainTracker()
    live = build_desired(specs(), {(VS, RS2): DOWN})
    timeouts = {VS: 30.0, UDP: 30.0}
    # Our own record of the table (no dump): counts are unknown, never guessed as zero.
    (event,) = tracker.update(live.table, ActualTable(FULL), timeouts, 100.0, live.notes,
                              stats_known=False)
    assert event.kind is DrainEventKind.STARTED
    assert event.detail == "connections not yet counted"
    assert tracker.update(live.table, ActualTable(FULL), timeouts, 110.0,
                          stats_known=False) == ()
    # The next real dump shows no connections: finished.
    (event,) = tracker.update(live.table, actual(FULL, {}), timeouts, 111.0)
    assert (event.kind, event.detail) == (DrainEventKind.FINISHED, "connections 0")


def test_without_fresh_counts_a_drain_ends_only_at_its_deadline() -> None:
    tracker = DrainTracker()
    live = build_desired(specs(), {(VS, RS2): DOWN})
    timeouts = {VS: 30.0}
    tracker.update(live.table, ActualTable(FULL), timeouts, 100.0, stats_known=False)
    (event,) = tracker.update(live.table, ActualTable(FULL), timeouts, 130.0,
                              stats_known=False)
    assert (event.kind, event.detail) == (
        DrainEventKind.FINISHED, "drain timeout 30s, connections unknown")


def test_search_for_leaving_servers_can_be_limited_to_changed_services() -> None:
    tracker = DrainTracker()
    live = build_desired(specs(), {(VS, RS2): DOWN})
    kernel = actual(FULL, {(VS, RS2): 4})
    assert tracker.update(live.table, kernel, {VS: 30.0}, 100.0, services=[UDP]) == ()
    (event,) = tracker.update(live.table, kernel, {VS: 30.0}, 100.0, services=[VS])
    assert event.kind is DrainEventKind.STARTED
