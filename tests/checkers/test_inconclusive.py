"""checkers/inconclusive.py: the late-deadline rule, with literal times."""

from __future__ import annotations

import pytest

from checkers.inconclusive import EPISODE_GAP, LATE_BOUND, LateDeadlines, Verdict, late_beyond_bound

TIMEOUT = 0.4


def judge(rule: LateDeadlines, *, ok: bool = False, latency: float, rerun: bool = False,
          now: float = 100.0) -> Verdict:
    return rule.judge(ok=ok, latency=latency, timeout=TIMEOUT, rerun=rerun, now=now)


def test_the_bound_sits_between_ordinary_lateness_and_a_stopped_daemon() -> None:
    assert 0.05 < LATE_BOUND < 1.0


@pytest.mark.parametrize(
    ("due", "fired", "late"),
    [
        (10.0, 10.0, False),
        (10.0, 10.2, False),  # exactly the bound: still on time
        (10.0, 10.21, True),
        (10.0, 15.0, True),
        (10.0, 9.99, False),  # a timer may fire up to the clock resolution early
    ],
)
def test_late_beyond_bound(due: float, fired: float, late: bool) -> None:
    assert late_beyond_bound(due, fired) is late


def test_a_timeout_that_fired_on_time_is_evidence() -> None:
    rule = LateDeadlines()
    assert judge(rule, latency=0.4) == Verdict(rerun=False)
    assert judge(rule, latency=0.6) == Verdict(rerun=False)  # 0.2 s late: within the bound
    assert rule.inconclusive == 0


def test_a_timeout_whose_deadline_fired_seconds_late_is_re_run() -> None:
    rule = LateDeadlines()
    verdict = judge(rule, latency=5.4)
    assert verdict == Verdict(rerun=True, new_episode=True, late_by=pytest.approx(5.0))
    assert rule.inconclusive == 1


def test_a_success_is_evidence_however_late_it_is_seen() -> None:
    rule = LateDeadlines()
    assert judge(rule, ok=True, latency=5.4) == Verdict(rerun=False)
    assert rule.inconclusive == 0


def test_a_refusal_seen_late_is_re_run_too() -> None:
    # The rule reads the latency, not the detail: any failure that ended that far past
    # its timeout was judged by a loop that was not running on time.
    rule = LateDeadlines()
    assert judge(rule, latency=3.0).rerun


def test_the_second_inconclusive_attempt_in_a_row_counts() -> None:
    rule = LateDeadlines()
    first = judge(rule, latency=5.4, now=100.0)
    second = judge(rule, latency=0.9, rerun=True, now=100.9)
    assert first.rerun and not second.rerun
    assert second.late_by == pytest.approx(0.5)
    assert not second.new_episode  # same episode: one log line
    assert rule.inconclusive == 2


def test_a_re_run_that_comes_back_on_time_is_judged_normally() -> None:
    rule = LateDeadlines()
    assert judge(rule, latency=5.4).rerun
    assert judge(rule, latency=0.4, rerun=True, now=100.4) == Verdict(rerun=False)


def test_one_episode_per_pause_not_one_line_per_probe() -> None:
    rule = LateDeadlines()
    flags = [judge(rule, latency=6.0, now=now).new_episode
             for now in (100.0, 100.0, 100.01, 101.0, 101.0 + EPISODE_GAP)]
    assert flags == [True, False, False, False, False]
    # quiet for longer than the gap: the next pause is a new episode
    assert judge(rule, latency=6.0, now=101.0 + 2 * EPISODE_GAP + 0.01).new_episode
    assert rule.inconclusive == 6
