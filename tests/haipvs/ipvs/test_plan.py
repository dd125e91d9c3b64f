"""plan_changes: minimal, ordered, ownership-respecting; reasons; apply_ops."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from haipvs.ipvs.desired import Note, NoteKey
from haipvs.ipvs.fake import FakeIpvsKernel
from haipvs.ipvs.model import (
    AddDest,
    AddService,
    DeleteDest,
    DeleteService,
    Dest,
    DestKey,
    Forwarding,
    IpvsTable,
    Op,
    OpReason,
    Service,
    ServiceKey,
    UpdateDest,
    UpdateService,
)
from haipvs.ipvs.plan import apply_op, apply_ops, plan_changes

VS = ServiceKey.tcp("198.51.100.10", 80)
VS2 = ServiceKey.udp("198.51.100.10", 53)
FOREIGN = ServiceKey.tcp("203.0.113.5", 443)
RS1 = DestKey("10.0.0.11", 80)
RS2 = DestKey("10.0.0.12", 80)
RS3 = DestKey("10.0.0.13", 80)


def table(*rows: tuple[Service, list[Dest]]) -> IpvsTable:
    return IpvsTable.build(rows)


# --------------------------------------------------------------------------- hypothesis

SERVICE_KEYS = [
    ServiceKey.tcp("198.51.100.10", 80),
    ServiceKey.tcp("198.51.100.10", 443),
    ServiceKey.udp("198.51.100.10", 53),
    ServiceKey.tcp("2001:db8::10", 80),
    ServiceKey.for_fwmark(7),
]
DEST_KEYS = [DestKey(f"10.0.0.{i}", 80) for i in range(1, 6)]

services_st = st.builds(
    Service,
    key=st.sampled_from(SERVICE_KEYS),
    scheduler=st.sampled_from(["rr", "wlc", "wrr"]),
    persistence_timeout=st.sampled_from([0, 300]),
)
dest_st = st.builds(
    Dest,
    key=st.sampled_from(DEST_KEYS),
    weight=st.integers(0, 3),
    forwarding=st.sampled_from([Forwarding.MASQ, Forwarding.DROUTE, Forwarding.TUNNEL]),
)


def _tunnel_only_for_v6(service: Service, dests: list[Dest]) -> list[Dest]:
    # Keep tables kernel-valid: IPv4 real servers in an IPv6 service need tunnelling.
    if service.key.address is not None and ":" in service.key.address:
        return [d for d in dests if d.forwarding is Forwarding.TUNNEL]
    return dests


@st.composite
def tables(draw: st.DrawFn) -> IpvsTable:
    services = draw(st.lists(services_st, unique_by=lambda s: s.key, max_size=4))
    rows = []
    for service in services:
        dests = draw(st.lists(dest_st, unique_by=lambda d: d.key, max_size=4))
        rows.append((service, _tunnel_only_for_v6(service, dests)))
    return IpvsTable.build(rows)


GROUP = {AddService: 0, AddDest: 1, UpdateService: 2, UpdateDest: 3, DeleteDest: 4,
         DeleteService: 5}


@settings(max_examples=300, deadline=None)
@given(desired=tables(), actual=tables())
def test_plan_applied_to_actual_yields_desired(desired: IpvsTable, actual: IpvsTable) -> None:
    owned = set(desired) | set(actual)
    ops = plan_changes(desired, actual, owned)
    assert apply_ops(actual, ops) == desired
    # Ordered: adds, dest adds, service sets, dest sets, dest deletes, service deletes.
    groups = [GROUP[type(op)] for op in ops]
    assert groups == sorted(groups)


@settings(max_examples=200, deadline=None)
@given(desired=tables(), actual=tables())
def test_plan_is_minimal(desired: IpvsTable, actual: IpvsTable) -> None:
    ops = plan_changes(desired, actual, set(desired) | set(actual))
    expected = 0
    for key, want in desired.items():
        have = actual.get(key)
        if have is None:
            expected += 1 + len(want.dests)
            continue
        expected += have.service != want.service
        expected += sum(1 for k, d in want.dests.items() if have.dests.get(k) != d)
        expected += sum(1 for k in have.dests if k not in want.dests)
    expected += sum(1 for key in actual if key not in desired)
    assert len(ops) == expected
    # No dest op ever targets a service that is deleted in the same plan.
    deleted = {op.key for op in ops if isinstance(op, DeleteService)}
    assert not any(isinstance(op, AddDest | UpdateDest | DeleteDest) and op.service_key in deleted
                   for op in ops)


@settings(max_examples=200, deadline=None)
@given(desired=tables())
def test_plan_of_equal_tables_is_empty(desired: IpvsTable) -> None:
    assert plan_changes(desired, desired, set(desired)) == ()
    # Equal by value, not by identity: a table rebuilt from copies plans nothing either.
    rebuilt = IpvsTable.build((e.service, list(e.dests.values())) for e in desired.values())
    assert plan_changes(desired, rebuilt, set(desired)) == ()


@settings(max_examples=200, deadline=None)
@given(desired=tables(), actual=tables(), data=st.data())
def test_services_outside_owned_are_never_touched(
    desired: IpvsTable, actual: IpvsTable, data: st.DataObject
) -> None:
    extra = data.draw(st.sets(st.sampled_from(SERVICE_KEYS)))
    owned = set(desired) | extra
    ops = plan_changes(desired, actual, owned)
    assert all(op.service_key in owned for op in ops)
    result = apply_ops(actual, ops)
    for key, entry in actual.items():
        if key not in owned:
            assert result[key] == entry


@settings(max_examples=100, deadline=None)
@given(desired=tables(), actual=tables())
def test_plans_are_accepted_by_the_strict_fake_kernel(
    desired: IpvsTable, actual: IpvsTable
) -> None:
    kernel = FakeIpvsKernel(actual)

    async def run(ops: tuple[Op, ...]) -> None:
        for op in ops:
            await kernel.apply(op)

    asyncio.run(run(plan_changes(desired, actual, set(desired) | set(actual))))
    assert kernel.table == desired


# --------------------------------------------------------------------------- scenarios


def test_one_changed_weight_is_exactly_one_update() -> None:
    actual = table((Service(VS), [Dest(RS1, weight=1), Dest(RS2, weight=1)]))
    desired = table((Service(VS), [Dest(RS1, weight=1), Dest(RS2, weight=3)]))
    assert plan_changes(desired, actual, {VS}) == (
        UpdateDest(VS, Dest(RS2, weight=3), OpReason.WEIGHT_CHANGED, "weight 1->3"),
    )


def test_changed_forwarding_is_an_update_in_place_not_a_re_add() -> None:
    actual = table((Service(VS), [Dest(RS1)]))
    desired = table((Service(VS), [Dest(RS1, forwarding=Forwarding.DROUTE)]))
    (op,) = plan_changes(desired, actual, {VS})
    assert op == UpdateDest(VS, Dest(RS1, forwarding=Forwarding.DROUTE),
                            OpReason.CONFIG_CHANGED, "forwarding masq->droute")


def test_new_service_is_added_before_its_dests_and_removed_in_one_op() -> None:
    desired = table((Service(VS2, "rr"), [Dest(RS2), Dest(RS1)]))
    actual = table((Service(VS), [Dest(RS1), Dest(RS2)]))
    assert plan_changes(desired, actual, {VS, VS2}) == (
        AddService(Service(VS2, "rr")),
        AddDest(VS2, Dest(RS1), OpReason.CONFIG_ADDED, "weight 1"),
        AddDest(VS2, Dest(RS2), OpReason.CONFIG_ADDED, "weight 1"),
        DeleteService(VS),
    )


def test_scheduler_change_is_one_update_service() -> None:
    actual = table((Service(VS, "wlc"), [Dest(RS1)]))
    desired = table((Service(VS, "rr"), [Dest(RS1)]))
    assert plan_changes(desired, actual, {VS}) == (
        UpdateService(Service(VS, "rr"), OpReason.CONFIG_CHANGED, "scheduler wlc->rr"),
    )


def test_foreign_services_are_left_alone() -> None:
    foreign = (Service(FOREIGN, "rr"), [Dest(RS3)])
    actual = table((Service(VS), [Dest(RS1)]), foreign)
    assert plan_changes(table(), actual, {VS}) == (DeleteService(VS),)
    assert plan_changes(table((Service(VS), [Dest(RS1)])), actual, {VS}) == ()


def test_planning_a_service_we_do_not_own_is_our_bug() -> None:
    with pytest.raises(ValueError, match="not owned"):
        plan_changes(table((Service(VS), [])), table(), owned=set())


def test_notes_give_the_reason() -> None:
    actual = table((Service(VS), [Dest(RS1), Dest(RS2)]))
    desired = table((Service(VS), [Dest(RS2)]))
    notes: dict[NoteKey, Note] = {
        (VS, RS1): Note(OpReason.HEALTH_DOWN, "3 failures: connect refused")
    }
    assert plan_changes(desired, actual, {VS}, notes=notes) == (
        DeleteDest(VS, RS1, OpReason.HEALTH_DOWN, "3 failures: connect refused"),
    )


def test_differences_from_expected_are_drift() -> None:
    ours = table((Service(VS), [Dest(RS1), Dest(RS2, weight=2)]))
    # Someone ran ipvsadm -d on RS1, -e -w 5 on RS2 and -a RS3.
    tampered = table((Service(VS), [Dest(RS2, weight=5), Dest(RS3)]))
    ops = plan_changes(ours, tampered, {VS}, expected=ours)
    assert ops == (
        AddDest(VS, Dest(RS1), OpReason.DRIFT_MISSING, "real server missing from kernel"),
        UpdateDest(VS, Dest(RS2, weight=2), OpReason.DRIFT_CHANGED, "weight 5->2"),
        DeleteDest(VS, RS3, OpReason.DRIFT_UNEXPECTED, "real server not ours"),
    )
    assert all(op.reason.is_drift for op in ops)


def test_flushed_table_is_drift_missing_everywhere() -> None:
    ours = table((Service(VS), [Dest(RS1)]))
    ops = plan_changes(ours, table(), {VS}, expected=ours)
    assert [op.reason for op in ops] == [OpReason.DRIFT_MISSING, OpReason.DRIFT_MISSING]


def test_intended_changes_are_not_drift_even_with_expected() -> None:
    ours = table((Service(VS), [Dest(RS1)]))
    desired = table((Service(VS), [Dest(RS1, weight=4)]))
    (op,) = plan_changes(desired, ours, {VS}, expected=ours)
    assert op.reason is OpReason.WEIGHT_CHANGED


def test_apply_ops_refuses_what_the_kernel_refuses() -> None:
    base = table((Service(VS), [Dest(RS1)]))
    with pytest.raises(ValueError):
        apply_op(base, AddService(Service(VS)))
    with pytest.raises(ValueError):
        apply_op(base, AddDest(VS, Dest(RS1)))
    with pytest.raises(ValueError):
        apply_op(base, DeleteDest(VS, RS2))
    with pytest.raises(ValueError):
        apply_op(base, UpdateDest(VS2, Dest(RS1)))
    with pytest.raises(ValueError):
        apply_op(base, DeleteService(VS2))
    # The input table is never mutated.
    apply_op(base, DeleteDest(VS, RS1))
    assert base == table((Service(VS), [Dest(RS1)]))


@settings(max_examples=200, deadline=None)
@given(desired=tables(), actual=tables(), data=st.data())
def test_plan_restricted_to_some_services_is_the_full_plan_filtered(
    desired: IpvsTable, actual: IpvsTable, data: st.DataObject
) -> None:
    only = data.draw(st.sets(st.sampled_from(SERVICE_KEYS)))
    owned = set(desired) | set(actual)
    full = plan_changes(desired, actual, owned)
    assert plan_changes(desired, actual, owned, only=only) == tuple(
        op for op in full if op.service_key in only
    )
