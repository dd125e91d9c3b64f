"""Flap damping with literal times (RFC 2439 §4.2 figures of merit)."""

from __future__ import annotations

import dataclasses

import pytest

from checkers.damping import FlapDamping
from checkers.health import BackendHealth
from checkers.hysteresis import Reason
from checkers.spec import DampingSettings, Timing

SETTINGS = DampingSettings(
    penalty_per_flap=1000.0,
    half_life=10.0,
    suppress_threshold=2000.0,
    reuse_threshold=750.0,
    max_suppress=60.0,
)


def test_penalty_halves_every_half_life() -> None:
    damping = FlapDamping(SETTINGS)
    assert damping.record_flap(now=0.0) is False
    assert damping.penalty(0.0) == pytest.approx(1000.0)
    assert damping.penalty(10.0) == pytest.approx(500.0)
    assert damping.penalty(20.0) == pytest.approx(250.0)


def test_third_quick_flap_suppresses_and_reuse_time_is_exact() -> None:
    damping = FlapDamping(SETTINGS)
    assert not damping.record_flap(now=0.0)
    assert not damping.record_flap(now=1.0)  # 1000 * 2**-0.1 + 1000 ~ 1933
    assert damping.record_flap(now=2.0)  # ~ 2804 > 2000
    assert damping.suppressed
    reuse_at = damping.reuse_at()
    assert reuse_at is not None
    # penalty(reuse_at) == 750 exactly by construction
    assert damping.penalty(reuse_at) == pytest.approx(750.0)
    assert damping.update(reuse_at - 0.01) is False
    assert damping.suppressed
    assert damping.update(reuse_at) is True
    assert not damping.suppressed
    assert damping.reuse_at() is None


def test_slow_flaps_never_suppress() -> None:
    damping = FlapDamping(SETTINGS)
    for flap in range(20):
        # one flap every half-life: penalty converges to 2000 from below
        assert not damping.record_flap(now=flap * 10.0)
    assert damping.penalty(190.0) < 2000.0


def test_ceiling_bounds_the_hold_time() -> None:
    damping = FlapDamping(SETTINGS)
    for flap in range(100):
        damping.record_flap(now=flap * 0.01)
    assert damping.penalty(0.99) <= SETTINGS.ceiling
    reuse_at = damping.reuse_at()
    assert reuse_at is not None
    # never held longer than max_suppress after the last flap
    assert reuse_at - 0.99 <= SETTINGS.max_suppress + 1e-6


def test_backend_is_held_down_while_damped_and_released_by_the_timer() -> None:
    timing = Timing(interval=1.0, timeout=1.0, rise=1, fall=1, flap_damping=SETTINGS)
    health = BackendHealth(timing, now=0.0)
    (up,) = health.observe(True, "ok", 0.001, now=1.0)  # flap 1
    assert up.flipped and up.healthy
    (down,) = health.observe(False, "connect refused", 0.001, now=2.0)  # flap 2
    assert down.flipped and not down.healthy
    (held,) = health.observe(True, "ok", 0.001, now=3.0)  # flap 3: suppressed
    assert held.reason is Reason.DAMPED
    assert not held.flipped and not held.healthy
    assert held.text.startswith("flap damping: penalty 2")
    assert "after 1 success: ok" in held.text
    assert health.checked_up and not health.healthy and health.damped
    assert health.reason is Reason.DAMPED
    release_at = health.next_deadline()
    assert release_at is not None and release_at > 3.0
    # the checks keep saying up; still held until the penalty decays
    assert health.observe(True, "ok", 0.001, now=release_at - 1.0) == ()
    assert not health.healthy
    assert health.on_timer(release_at - 0.5) == ()
    (released,) = health.on_timer(release_at)
    assert released.flipped and released.healthy
    assert released.reason is Reason.DAMPING_RELEASED
    assert health.next_deadline() is None


def test_fall_that_starts_suppression_reports_both() -> None:
    timing = Timing(interval=1.0, timeout=1.0, rise=1, fall=1, flap_damping=SETTINGS)
    health = BackendHealth(timing, now=0.0, adopted=True)
    health.observe(True, "ok", 0.001, now=0.5)
    health.observe(False, "refused", 0.001, now=1.0)  # flap 1
    health.observe(True, "ok", 0.001, now=2.0)  # flap 2
    fall, damped = health.observe(False, "refused", 0.001, now=3.0)  # flap 3
    assert fall.flipped and fall.reason is Reason.FALL
    assert damped.reason is Reason.DAMPED and not damped.flipped
    # the reason stays the fall: the checks say down too
    assert health.reason is Reason.FALL
    # a later rise is held
    (held,) = health.observe(True, "ok", 0.001, now=4.0)
    assert held.reason is Reason.DAMPED


def test_release_while_checks_say_down_does_not_bring_it_up() -> None:
    timing = Timing(interval=1.0, timeout=1.0, rise=1, fall=1, flap_damping=SETTINGS)
    health = BackendHealth(timing, now=0.0)
    health.observe(True, "ok", 0.001, now=1.0)
    health.observe(False, "refused", 0.001, now=2.0)
    health.observe(True, "ok", 0.001, now=3.0)
    health.observe(False, "refused", 0.001, now=4.0)
    release_at = health.next_deadline()
    assert release_at is not None
    assert health.on_timer(release_at) == ()
    assert not health.healthy and not health.damped


def test_reload_disabling_damping_releases_a_held_backend() -> None:
    timing = Timing(interval=1.0, timeout=1.0, rise=1, fall=1, flap_damping=SETTINGS)
    health = BackendHealth(timing, now=0.0)
    health.observe(True, "ok", 0.001, now=1.0)
    health.observe(False, "refused", 0.001, now=2.0)
    health.observe(True, "ok", 0.001, now=3.0)
    assert health.damped
    (released,) = health.retune(dataclasses.replace(timing, flap_damping=None), now=4.0)
    assert released.healthy and released.flipped
