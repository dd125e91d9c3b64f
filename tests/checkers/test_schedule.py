"""Probe scheduling with literal times: interval, fastinter, downinter, warm-up spread."""

from __future__ import annotations

import random

import pytest

from checkers.health import BackendHealth
from checkers.schedule import (
    PROBE_BATCH,
    PROBE_BATCH_MAX,
    batch_end,
    first_probe_at,
    next_probe_at,
    probe_early,
    probe_interval,
    shared_interval,
)
from checkers.spec import Timing

TIMING = Timing(interval=2.0, timeout=1.0, rise=2, fall=3, fast_interval=0.5, down_interval=10.0)


def test_settled_up_uses_interval() -> None:
    assert probe_interval(TIMING, up=True, in_doubt=False) == 2.0


def test_in_doubt_uses_fast_interval_both_ways() -> None:
    assert probe_interval(TIMING, up=True, in_doubt=True) == 0.5
    assert probe_interval(TIMING, up=False, in_doubt=True) == 0.5


def test_settled_down_uses_down_interval() -> None:
    assert probe_interval(TIMING, up=False, in_doubt=False) == 10.0


def test_unset_intervals_fall_back_to_interval() -> None:
    plain = Timing(interval=3.0, timeout=1.0, rise=1, fall=1)
    assert probe_interval(plain, up=False, in_doubt=False) == 3.0
    assert probe_interval(plain, up=True, in_doubt=True) == 3.0


def test_backend_health_walks_through_the_intervals() -> None:
    health = BackendHealth(TIMING, now=0.0)
    assert health.probe_interval() == 10.0  # new, settled down
    health.observe(True, "ok", 0.001, now=1.0)
    assert health.probe_interval() == 0.5  # rising: in doubt
    health.observe(True, "ok", 0.001, now=1.5)
    assert health.probe_interval() == 2.0  # up
    health.observe(False, "connect refused", 0.001, now=3.5)
    assert health.probe_interval() == 0.5  # falling: in doubt
    health.observe(False, "connect refused", 0.001, now=4.0)
    health.observe(False, "connect refused", 0.001, now=4.5)
    assert not health.healthy
    assert health.probe_interval() == 10.0


def test_warmup_spreads_first_probes_uniformly() -> None:
    timing = Timing(interval=1.0, timeout=1.0, rise=1, fall=1, warmup=5.0)
    rng = random.Random(7)
    firsts = [first_probe_at(timing, 100.0, rng) for _ in range(2000)]
    assert all(100.0 <= t <= 105.0 for t in firsts)
    # no burst: each 0.5 s bucket of the warm-up holds about a tenth of the checks
    buckets = [0] * 10
    for t in firsts:
        buckets[min(9, int((t - 100.0) / 0.5))] += 1
    assert min(buckets) > 150
    assert max(buckets) < 250
    assert len(set(firsts)) == len(firsts)


def test_no_warmup_spreads_over_one_interval() -> None:
    timing = Timing(interval=2.0, timeout=1.0, rise=1, fall=1)
    rng = random.Random(1)
    firsts = [first_probe_at(timing, 10.0, rng) for _ in range(1000)]
    assert all(10.0 <= t < 12.0 for t in firsts)
    assert max(firsts) - min(firsts) > 1.9


def test_zero_warmup_probes_at_once() -> None:
    timing = Timing(interval=2.0, timeout=1.0, rise=1, fall=1, warmup=0.0)
    assert first_probe_at(timing, 10.0, random.Random(1)) == 10.0


def test_same_seed_same_schedule() -> None:
    timing = Timing(interval=2.0, timeout=1.0, rise=1, fall=1, warmup=3.0)
    a = [first_probe_at(timing, 0.0, random.Random(42)) for _ in range(3)]
    b = [first_probe_at(timing, 0.0, random.Random(42)) for _ in range(3)]
    assert a == b


def test_shared_probe_runs_at_the_shortest_interval() -> None:
    assert shared_interval([2.0, 0.5, 10.0]) == 0.5
    with pytest.raises(ValueError):
        shared_interval([])


def test_next_probe_keeps_the_grid_of_deadlines() -> None:
    # due at 10.0, started late at 10.3 (a stalled loop), ended at 10.35
    assert next_probe_at(10.0, 10.35, 2.0) == 12.0


def test_a_probe_slower_than_its_interval_counts_from_its_end() -> None:
    # due at 10.0, timed out at 13.0 with a 2 s interval: never two at once
    assert next_probe_at(10.0, 13.0, 2.0) == 15.0


def test_a_batch_ends_its_length_after_the_start_it_fired_for() -> None:
    assert batch_end(12.0) == pytest.approx(12.0 + PROBE_BATCH)
    assert batch_end(12.0, 0.0) == 12.0
    assert PROBE_BATCH <= 0.01  # the shortest interval the config allows (CheckSeconds)


def test_a_start_may_come_one_percent_of_its_interval_early_within_bounds() -> None:
    assert probe_early(2.0) == pytest.approx(0.02)
    assert probe_early(10.0) == pytest.approx(0.05)
    assert probe_early(60.0) == PROBE_BATCH_MAX == 0.05  # at most 50 ms
    assert probe_early(0.5) == PROBE_BATCH  # at least 10 ms
    assert probe_early(2.0, most=0.01) == 0.01  # the pool's own bound
    assert probe_early(2.0, most=0.0) == 0.0  # no batching
