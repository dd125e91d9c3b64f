"""desired_table: health, inhibit_on_failure, slow start, quorum and sorry server, drains."""

from __future__ import annotations

import pytest

from haipvs.ipvs.desired import (
    AdminState,
    AdminView,
    HealthView,
    Note,
    ServiceSpec,
    build_desired,
    desired_table,
    with_drains,
)
from haipvs.ipvs.model import Dest, DestKey, IpvsTable, OpReason, Service, ServiceKey

VS = ServiceKey.tcp("198.51.100.10", 80)
RS1 = DestKey("10.0.0.11", 80)
RS2 = DestKey("10.0.0.12", 80)
RS3 = DestKey("10.0.0.13", 80)
SORRY = Dest(DestKey("10.0.0.250", 80))
DOWN = HealthView(up=False, reason="3 failures: connect refused")


def spec(**overrides: object) -> ServiceSpec:
    fields: dict[str, object] = {
        "service": Service(VS, "wlc"),
        "real_servers": (Dest(RS1, weight=1), Dest(RS2, weight=2), Dest(RS3, weight=4)),
    }
    fields.update(overrides)
    return ServiceSpec(**fields)  # type: ignore[arg-type]


def dests(table: IpvsTable) -> dict[DestKey, int]:
    return {key: d.weight for key, d in table[VS].dests.items()}


def test_without_health_reports_every_real_server_is_up() -> None:
    assert dests(desired_table([spec()], {})) == {RS1: 1, RS2: 2, RS3: 4}


def test_a_down_real_server_leaves_the_table_with_the_checkers_reason() -> None:
    result = build_desired([spec()], {(VS, RS2): DOWN})
    assert dests(result.table) == {RS1: 1, RS3: 4}
    assert result.notes[(VS, RS2)] == Note(OpReason.HEALTH_DOWN, "3 failures: connect refused")


def test_inhibit_on_failure_keeps_it_at_weight_zero() -> None:
    table = desired_table([spec(inhibit_on_failure=True)], {(VS, RS2): DOWN})
    assert dests(table) == {RS1: 1, RS2: 0, RS3: 4}


def test_slow_start_scales_the_weight_never_below_one() -> None:
    health = {(VS, RS3): HealthView(True, weight_factor=0.5),
              (VS, RS1): HealthView(True, weight_factor=0.1)}
    result = build_desired([spec()], health)
    assert dests(result.table) == {RS1: 1, RS2: 2, RS3: 2}
    assert result.notes[(VS, RS3)].reason is OpReason.SLOW_START


def test_a_weight_the_check_reported_replaces_the_configured_one() -> None:
    # keepalived misc_dynamic / FILE_CHECK: the check sets the weight; slow start still
    # scales it. (The supervisor used to drop it: the kernel kept the configured weight.)
    health = {(VS, RS2): HealthView(True, reason="rs2: value 3: weight 5", weight=5),
              (VS, RS3): HealthView(True, weight_factor=0.5, weight=10)}
    result = build_desired([spec()], health)
    assert dests(result.table) == {RS1: 1, RS2: 5, RS3: 5}
    assert result.notes[(VS, RS2)] == Note(OpReason.CHECK_WEIGHT,
                                           "check weight 5: rs2: value 3: weight 5")
    with pytest.raises(ValueError, match="weight must be >= 0"):
        HealthView(True, weight=-1)


def test_below_quorum_only_the_sorry_server_serves() -> None:
    health = {(VS, RS1): DOWN, (VS, RS2): DOWN}
    result = build_desired([spec(min_up=2, sorry_server=SORRY)], health)
    assert dests(result.table) == {SORRY.key: 1}
    assert result.notes[(VS, SORRY.key)] == Note(OpReason.QUORUM_LOST, "1 up < min_up 2")
    # The server still up leaves because of the quorum, the others because they are down.
    assert result.notes[(VS, RS3)].reason is OpReason.QUORUM_LOST
    assert result.notes[(VS, RS1)].reason is OpReason.HEALTH_DOWN


def test_below_quorum_without_sorry_server_the_service_stays_empty() -> None:
    table = desired_table([spec(min_up=3)], {(VS, RS1): DOWN})
    assert VS in table
    assert dests(table) == {}


def test_below_quorum_with_inhibit_everyone_stays_at_weight_zero() -> None:
    table = desired_table([spec(min_up=3, sorry_server=SORRY, inhibit_on_failure=True)],
                          {(VS, RS1): DOWN})
    assert dests(table) == {RS1: 0, RS2: 0, RS3: 0, SORRY.key: 1}


def test_quorum_regained_drops_the_sorry_server() -> None:
    result = build_desired([spec(min_up=2, sorry_server=SORRY)], {(VS, RS1): DOWN})
    assert dests(result.table) == {RS2: 2, RS3: 4}
    assert result.notes[(VS, SORRY.key)].reason is OpReason.QUORUM_REGAINED


def test_drains_are_overlaid_at_weight_zero_only_where_the_service_remains() -> None:
    live = desired_table([spec()], {(VS, RS2): DOWN})
    other = ServiceKey.tcp("198.51.100.20", 80)
    drains = {(VS, RS2): Dest(RS2, weight=2), (other, RS1): Dest(RS1),
              (VS, RS1): Dest(RS1, weight=0)}
    table = with_drains(live, drains)
    assert dests(table) == {RS1: 1, RS2: 0, RS3: 4}  # RS1 is live again: live wins
    assert other not in table
    assert desired_table([spec()], {(VS, RS2): DOWN}, drains) == table
    assert dests(live) == {RS1: 1, RS3: 4}  # the live table is not modified


def test_spec_validation() -> None:
    with pytest.raises(ValueError):
        spec(real_servers=(Dest(RS1), Dest(RS1, weight=3)))
    with pytest.raises(ValueError):
        spec(sorry_server=Dest(RS1))
    with pytest.raises(ValueError):
        spec(drain_timeout=-1.0)
    with pytest.raises(ValueError):
        HealthView(True, weight_factor=1.5)
    with pytest.raises(ValueError):
        build_desired([spec(), spec()], {})


# --- operator overrides (haipvs drain / haipvs maintenance) -------------------------------

DRAINED = AdminView(AdminState.DRAIN, "uid 0")
MAINT = AdminView(AdminState.MAINTENANCE, "uid 0")


def test_a_drained_real_server_stays_at_weight_zero_with_the_operators_reason() -> None:
    result = build_desired([spec()], {}, admin={(VS, RS2): DRAINED})
    assert dests(result.table) == {RS1: 1, RS2: 0, RS3: 4}
    assert result.notes[(VS, RS2)] == Note(OpReason.OPERATOR_DRAIN, "uid 0")


def test_a_real_server_in_maintenance_leaves_the_live_table() -> None:
    # Leaving the live table is what makes drain.py drain then delete it.
    result = build_desired([spec(inhibit_on_failure=True)], {}, admin={(VS, RS2): MAINT})
    assert dests(result.table) == {RS1: 1, RS3: 4}
    assert result.notes[(VS, RS2)] == Note(OpReason.OPERATOR_MAINTENANCE, "uid 0")


def test_a_down_real_server_stays_out_even_when_drained() -> None:
    result = build_desired([spec()], {(VS, RS2): DOWN}, admin={(VS, RS2): DRAINED})
    assert dests(result.table) == {RS1: 1, RS3: 4}
    assert result.notes[(VS, RS2)].reason is OpReason.HEALTH_DOWN


def test_drained_and_maintenance_servers_do_not_count_for_the_quorum() -> None:
    admin = {(VS, RS1): DRAINED, (VS, RS2): MAINT}
    result = build_desired([spec(min_up=2, sorry_server=SORRY)], {}, admin=admin)
    assert dests(result.table) == {SORRY.key: 1}
    assert build_desired([spec(min_up=2)], {}, admin={(VS, RS1): DRAINED}).table[VS].dests[
        RS1].weight == 0


def test_an_override_of_another_service_changes_nothing() -> None:
    other = ServiceKey.tcp("198.51.100.99", 80)
    assert dests(desired_table([spec()], {})) == dests(
        build_desired([spec()], {}, admin={(other, RS1): MAINT}).table)
