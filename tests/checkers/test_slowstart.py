"""Slow start with literal times: the weight ramps in steps after a recovery."""

from __future__ import annotations

import pytest

from checkers.health import BackendHealth
from checkers.hysteresis import Reason
from checkers.slowstart import SlowStart, effective_weight
from checkers.spec import Timing


def test_ramp_in_one_second_steps_rounded_up() -> None:
    ramp = SlowStart(duration=5.0)
    assert ramp.factor(0.0) == 1.0  # not ramping
    ramp.begin(now=100.0)
    assert ramp.step == 1.0
    assert ramp.factor(100.0) == pytest.approx(0.2)
    assert ramp.factor(100.99) == pytest.approx(0.2)
    assert ramp.factor(101.0) == pytest.approx(0.4)
    assert ramp.factor(103.5) == pytest.approx(0.8)
    assert ramp.factor(104.0) == 1.0
    assert ramp.factor(500.0) == 1.0
    assert ramp.next_step_at(100.0) == pytest.approx(101.0)
    assert ramp.next_step_at(103.5) == pytest.approx(104.0)
    assert ramp.next_step_at(104.0) is None


def test_long_ramp_has_twenty_steps() -> None:
    ramp = SlowStart(duration=60.0)
    ramp.begin(now=0.0)
    assert ramp.step == 3.0
    factors = set()
    t = 0.0
    while (next_at := ramp.next_step_at(t)) is not None:
        factors.add(ramp.factor(t))
        t = next_at
    factors.add(ramp.factor(t))
    assert len(factors) == 20
    assert t == pytest.approx(57.0)


def test_off_and_stop() -> None:
    off = SlowStart(duration=0.0)
    off.begin(now=0.0)
    assert off.factor(0.0) == 1.0
    assert off.next_step_at(0.0) is None
    ramp = SlowStart(duration=10.0)
    ramp.begin(now=0.0)
    ramp.stop()
    assert ramp.factor(1.0) == 1.0
    assert ramp.next_step_at(1.0) is None


def test_effective_weight_never_below_one_while_serving() -> None:
    assert effective_weight(100, 0.05) == 5
    assert effective_weight(3, 0.05) == 1
    assert effective_weight(10, 1.0) == 10
    assert effective_weight(10, 0.0) == 1  # a serving server keeps some traffic
    assert effective_weight(0, 0.5) == 0  # the operator's own weight 0 stays 0
    # Halves round up, whoever calls (the desired table used to round 2.5 to 2).
    assert effective_weight(5, 0.5) == 3
    assert effective_weight(10, 0.25) == 3
    with pytest.raises(ValueError):
        effective_weight(10, 1.5)


def test_backend_ramps_after_recovery_with_an_event_per_step() -> None:
    timing = Timing(interval=1.0, timeout=1.0, rise=1, fall=1, slow_start=4.0)
    health = BackendHealth(timing, now=0.0)
    (up,) = health.observe(True, "ok", 0.001, now=10.0)
    assert up.flipped and up.weight_factor == pytest.approx(0.25)
    steps = []
    while (deadline := health.next_deadline()) is not None:
        (event,) = health.on_timer(deadline)
        assert event.reweighted and event.reason is Reason.SLOW_START
        steps.append((deadline, event.weight_factor, event.text))
    assert [(round(at, 6), round(f, 6), text) for at, f, text in steps] == [
        (11.0, 0.5, "slow start 50%"),
        (12.0, 0.75, "slow start 75%"),
        (13.0, 1.0, "slow start 100%"),
    ]
    # the reason for being up is still the rise
    assert health.reason is Reason.RISE
    assert health.weight_factor(20.0) == 1.0


def test_a_fall_during_the_ramp_stops_it() -> None:
    timing = Timing(interval=1.0, timeout=1.0, rise=1, fall=1, slow_start=4.0)
    health = BackendHealth(timing, now=0.0)
    health.observe(True, "ok", 0.001, now=10.0)
    (down,) = health.observe(False, "refused", 0.001, now=11.5)
    assert down.weight_factor == 0.0
    assert health.next_deadline() is None
    (up,) = health.observe(True, "ok", 0.001, now=20.0)
    assert up.weight_factor == pytest.approx(0.25)  # the ramp starts over


def test_adopted_server_does_not_ramp() -> None:
    timing = Timing(interval=1.0, timeout=1.0, rise=1, fall=1, slow_start=30.0)
    health = BackendHealth(timing, now=0.0, adopted=True)
    assert health.weight_factor(0.0) == 1.0
    assert health.next_deadline() is None
    assert health.on_timer(1.0) == ()
