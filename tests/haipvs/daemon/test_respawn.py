"""RespawnBackoff: the VRRP child's restart delays, with literal times."""

from __future__ import annotations

import pytest

from haipvs.respawn import RespawnBackoff


def test_a_child_that_keeps_dying_waits_1_2_4_8_16_then_30_seconds() -> None:
    backoff = RespawnBackoff(first=1.0, maximum=30.0, stable_after=60.0)
    delays = []
    now = 0.0
    for _ in range(7):
        backoff.started(now)
        now += 0.5  # dies half a second after each start: never stable
        delay = backoff.died(now)
        delays.append(delay)
        now += delay
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_a_child_that_reported_status_but_died_soon_still_doubles() -> None:
    # The old policy reset the delay on the child's first status report (0.5 s after
    # start), so a child that crashed a second after each start never backed off.
    backoff = RespawnBackoff()
    backoff.started(100.0)
    assert backoff.died(101.0) == 1.0
    backoff.started(102.0)
    assert backoff.died(103.0) == 2.0


def test_a_stable_period_starts_the_sequence_again() -> None:
    backoff = RespawnBackoff(first=1.0, maximum=30.0, stable_after=60.0)
    backoff.started(0.0)
    assert backoff.died(1.0) == 1.0
    backoff.started(2.0)
    assert backoff.died(3.0) == 2.0
    backoff.started(7.0)
    assert backoff.died(66.9) == 4.0  # 59.9 s up: not yet stable
    backoff.started(71.0)
    assert backoff.died(131.0) == 1.0  # 60 s up: healthy, the sequence restarts
    backoff.started(132.0)
    assert backoff.died(133.0) == 2.0


def test_failed_starts_double_too() -> None:
    backoff = RespawnBackoff(first=1.0, maximum=4.0)
    backoff.started(0.0)
    assert backoff.died(0.1) == 1.0
    assert [backoff.failed(), backoff.failed(), backoff.failed()] == [2.0, 4.0, 4.0]


def test_nonsense_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="first <= maximum"):
        RespawnBackoff(first=5.0, maximum=1.0)
