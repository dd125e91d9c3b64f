"""keepalived's quorum: a sum of live weights (or a count) with hysteresis (desired.py)."""

from __future__ import annotations

import pytest

from haipvs.ipvs.desired import HealthView, Note, ServiceSpec, build_desired, quorum_held
from haipvs.ipvs.model import Dest, DestKey, OpReason, Service, ServiceKey

VS = ServiceKey.tcp("198.51.100.10", 80)
RS1 = DestKey("10.0.0.11", 80)
RS2 = DestKey("10.0.0.12", 80)
RS3 = DestKey("10.0.0.13", 80)
SORRY = Dest(DestKey("10.0.0.250", 80))
DOWN = HealthView(up=False, reason="down")


def spec(**overrides: object) -> ServiceSpec:
    fields: dict[str, object] = {
        "service": Service(VS, "wlc"),
        "real_servers": (Dest(RS1, weight=1), Dest(RS2, weight=2), Dest(RS3, weight=4)),
        "sorry_server": SORRY,
    }
    fields.update(overrides)
    return ServiceSpec(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "was_held", "expected"),
    [
        # threshold 5, hysteresis 2: lost below 3, regained at 7 (keepalived's band).
        (5, None, True),
        (4, None, False),
        (3, True, True),
        (2, True, False),
        (6, False, False),
        (7, False, True),
        (0, True, False),
    ],
)
def test_quorum_held_keeps_keepalived_hysteresis_band(
    value: int, was_held: bool | None, expected: bool
) -> None:
    assert quorum_held(value, 5, 2, was_held) is expected


def test_nothing_up_loses_quorum_even_inside_the_band() -> None:
    # keepalived: `!weight_sum || weight_sum < quorum - hysteresis`.
    assert quorum_held(0, 1, 5, True) is False
    assert quorum_held(0, 0, 0, True) is True  # a quorum of 0 is never lost


def test_min_weight_sums_the_configured_weights_of_up_servers() -> None:
    # RS3 (weight 4) alone meets a quorum of 4; RS1+RS2 (1+2) do not.
    alone = build_desired([spec(min_weight=4)], {(VS, RS1): DOWN, (VS, RS2): DOWN})
    assert set(alone.table[VS].dests) == {RS3}
    assert alone.quorum == {VS: True}
    pair = build_desired([spec(min_weight=4)], {(VS, RS3): DOWN})
    assert set(pair.table[VS].dests) == {SORRY.key}
    assert pair.quorum == {VS: False}
    assert pair.notes[(VS, SORRY.key)] == Note(OpReason.QUORUM_LOST, "3 weight up < min_weight 4")


def test_slow_start_does_not_shrink_the_weight_sum() -> None:
    warming = {(VS, RS1): DOWN, (VS, RS2): DOWN, (VS, RS3): HealthView(True, weight_factor=0.25)}
    assert build_desired([spec(min_weight=4)], warming).quorum == {VS: True}


def test_hysteresis_follows_the_previous_decision() -> None:
    s = spec(min_weight=4, hysteresis=1)
    only_rs3 = {(VS, RS1): DOWN, (VS, RS2): DOWN}  # sum 4
    rs2_rs1 = {(VS, RS3): DOWN}  # sum 3
    # Held: 3 is not below 4 - 1, quorum stays.
    assert build_desired([s], rs2_rs1, held={VS: True}).quorum == {VS: True}
    # Lost: 4 is not 4 + 1, quorum stays lost; 5 (RS1 + RS3) regains it.
    lost = build_desired([s], only_rs3, held={VS: False})
    assert lost.quorum == {VS: False}
    assert set(lost.table[VS].dests) == {SORRY.key}
    assert lost.notes[(VS, SORRY.key)].detail == "4 weight up < min_weight 4 (hysteresis 1)"
    regained = build_desired([s], {(VS, RS2): DOWN}, held={VS: False})
    assert regained.quorum == {VS: True}
    assert set(regained.table[VS].dests) == {RS1, RS3}


def test_count_mode_with_hysteresis() -> None:
    s = spec(min_up=2, hysteresis=1)
    one_down = {(VS, RS1): DOWN}
    assert build_desired([s], one_down, held={VS: False}).quorum == {VS: False}  # 2 < 2 + 1
    assert build_desired([s], {}, held={VS: False}).quorum == {VS: True}  # 3 >= 3
    two_down = {(VS, RS1): DOWN, (VS, RS2): DOWN}
    assert build_desired([s], two_down, held={VS: True}).quorum == {VS: True}  # 1 >= 2 - 1


def test_negative_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="min_weight"):
        spec(min_weight=-1)
    with pytest.raises(ValueError, match="hysteresis"):
        spec(hysteresis=-1)


async def test_programmer_keeps_the_decision_and_reports_each_change() -> None:
    from structlog.testing import capture_logs

    from haipvs.ipvs.fake import FakeIpvsKernel
    from haipvs.ipvs.programmer import IpvsProgrammer

    changes: list[tuple[ServiceKey, bool, str]] = []
    p = IpvsProgrammer(FakeIpvsKernel(), on_quorum=lambda *args: changes.append(args))
    s = spec(min_weight=4, hysteresis=1)
    p.set_specs([s])
    with capture_logs() as logs:
        await p.sync()  # sum 7: held from the start, nothing to report
        p.update_health(VS, RS3, DOWN)  # sum 3, not below 4 - 1: still held
        await p.sync()
        assert changes == []
        p.update_health(VS, RS1, DOWN)  # sum 2 < 3: lost
        await p.sync()
        p.update_health(VS, RS3, HealthView(True))  # sum 6 >= 4 + 1: regained
        await p.sync()
    assert changes == [
        (VS, False, "2 weight up < min_weight 4 (hysteresis 1)"),
        (VS, True, "6 weight up >= min_weight 4 (hysteresis 1)"),
    ]
    assert [(e["event"], e["log_level"]) for e in logs if e["event"].startswith("ipvs.quorum")] == [
        ("ipvs.quorum.lost", "warning"),
        ("ipvs.quorum.regained", "info"),
    ]


async def test_a_service_that_starts_below_quorum_reports_the_loss() -> None:
    from haipvs.ipvs.fake import FakeIpvsKernel
    from haipvs.ipvs.programmer import IpvsProgrammer

    changes: list[tuple[ServiceKey, bool, str]] = []
    p = IpvsProgrammer(FakeIpvsKernel(), on_quorum=lambda *args: changes.append(args))
    p.set_specs([spec(min_weight=4)])
    p.set_health({(VS, RS3): DOWN})
    await p.sync()
    assert changes == [(VS, False, "3 weight up < min_weight 4")]


def test_inhibited_down_servers_do_not_count_in_the_regained_detail() -> None:
    # RS1 down but kept at weight 0 (inhibit_on_failure): 2 + 4 are up, not 1 + 2 + 4.
    result = build_desired([spec(min_weight=4, inhibit_on_failure=True)], {(VS, RS1): DOWN})
    assert result.table[VS].dests[RS1].weight == 0
    assert result.notes[(VS, SORRY.key)] == Note(
        OpReason.QUORUM_REGAINED, "6 weight up >= min_weight 4"
    )
    assert result.quorum_detail == {VS: "6 weight up >= min_weight 4"}
