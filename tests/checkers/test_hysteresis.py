"""Rise/fall with literal times: new servers start down, adopted ones up, reasons say why."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from checkers.health import BackendHealth
from checkers.hysteresis import Reason, RiseFall, State, Verdict
from checkers.spec import Timing

TIMING = Timing(interval=1.0, timeout=1.0, rise=2, fall=3)


def test_new_real_server_is_down_until_it_rises() -> None:
    rise_fall = RiseFall(rise=2, fall=3)
    assert rise_fall.state is State.DOWN
    assert rise_fall.initial_text() == "new real server: down until 2 successes"
    assert rise_fall.observe(True, "connected") is None
    assert rise_fall.in_doubt
    verdict = rise_fall.observe(True, "connected")
    assert verdict == Verdict(State.UP, Reason.RISE, 2, "connected")
    assert verdict.text() == "2 successes: connected"
    assert rise_fall.is_up
    assert not rise_fall.in_doubt


def test_a_failure_resets_the_rise_count() -> None:
    rise_fall = RiseFall(rise=2, fall=3)
    assert rise_fall.observe(True, "ok") is None
    assert rise_fall.observe(False, "connect refused") is None
    assert not rise_fall.in_doubt
    assert rise_fall.observe(True, "ok") is None
    assert rise_fall.observe(True, "ok") is not None


def test_fall_needs_consecutive_failures_and_names_the_last_cause() -> None:
    rise_fall = RiseFall(rise=1, fall=3)
    assert rise_fall.observe(True, "ok") is not None
    assert rise_fall.observe(False, "connect refused") is None
    assert rise_fall.observe(False, "connect refused") is None
    assert rise_fall.in_doubt
    assert rise_fall.observe(True, "ok") is None  # resets the fall count
    assert not rise_fall.in_doubt
    assert rise_fall.observe(False, "status 503") is None
    assert rise_fall.observe(False, "status 503") is None
    verdict = rise_fall.observe(False, "connect refused")
    assert verdict is not None
    assert verdict.state is State.DOWN
    assert verdict.text() == "3 failures: connect refused"


def test_singular_counts_read_well() -> None:
    rise_fall = RiseFall(rise=1, fall=1)
    up = rise_fall.observe(True, "status 200")
    assert up is not None and up.text() == "1 success: status 200"
    down = rise_fall.observe(False, "timeout after 1.0s")
    assert down is not None and down.text() == "1 failure: timeout after 1.0s"


def test_adopted_server_stays_up_when_its_first_result_is_good() -> None:
    rise_fall = RiseFall(rise=2, fall=3, adopted=True)
    assert rise_fall.is_up
    assert rise_fall.observe(True, "ok") is None
    assert rise_fall.is_up
    # after the first result it behaves like any up server: fall=3 failures
    assert rise_fall.observe(False, "connect refused") is None
    assert rise_fall.observe(False, "connect refused") is None
    assert rise_fall.observe(False, "connect refused") is not None


def test_adopted_server_goes_down_at_once_if_its_first_result_fails() -> None:
    rise_fall = RiseFall(rise=2, fall=3, adopted=True)
    verdict = rise_fall.observe(False, "connect refused")
    assert verdict == Verdict(State.DOWN, Reason.ADOPTED_FAILED, 1, "connect refused")
    assert verdict.text() == "adopted real server failed its first check: connect refused"


def test_retune_keeps_the_counts() -> None:
    rise_fall = RiseFall(rise=3, fall=3)
    rise_fall.observe(True, "ok")
    rise_fall.observe(True, "ok")
    rise_fall.retune(rise=2, fall=3)
    # 2 successes counted already; the next result compares against rise=2
    verdict = rise_fall.observe(True, "ok")
    assert verdict is not None and verdict.count == 3


def test_backend_health_records_reason_since_and_history() -> None:
    health = BackendHealth(TIMING, now=100.0, history=3)
    assert not health.healthy
    assert health.reason is Reason.NEW_REAL_SERVER
    assert health.since == 100.0
    assert health.observe(True, "status 200", 0.004, now=100.5) == ()
    (event,) = health.observe(True, "status 200", 0.003, now=101.5)
    assert event.healthy and event.flipped and event.reason is Reason.RISE
    assert event.text == "2 successes: status 200"
    assert event.weight_factor == 1.0
    assert health.since == 101.5
    assert health.observe(False, "status 503", 0.002, now=102.5) == ()
    assert health.observe(False, "status 503", 0.002, now=103.5) == ()
    (down,) = health.observe(False, "connect refused", 0.001, now=104.5)
    assert not down.healthy and down.flipped and down.reason is Reason.FALL
    assert down.text == "3 failures: connect refused"
    assert down.weight_factor == 0.0
    assert health.reason_text == "3 failures: connect refused"
    assert health.last_latency == 0.001
    # bounded history: only the last 3 results, oldest first
    assert [(h.at, h.ok, h.detail) for h in health.history] == [
        (102.5, False, "status 503"),
        (103.5, False, "status 503"),
        (104.5, False, "connect refused"),
    ]


def test_adopted_backend_is_healthy_without_any_result() -> None:
    health = BackendHealth(TIMING, now=0.0, adopted=True)
    assert health.healthy
    assert health.reason is Reason.ADOPTED
    assert health.weight_factor(0.0) == 1.0
    assert health.observe(True, "ok", 0.001, now=1.0) == ()
    assert health.healthy


def test_dynamic_weight_from_misc_dynamic() -> None:
    health = BackendHealth(Timing(interval=1.0, timeout=1.0, rise=1, fall=1), now=0.0)
    (up,) = health.observe(True, "exit 7", 0.01, now=1.0, weight=5)
    assert up.flipped and up.weight == 5
    assert health.observe(True, "exit 7", 0.01, now=2.0, weight=5) == ()
    (change,) = health.observe(True, "exit 12", 0.01, now=3.0, weight=10)
    assert change.reweighted and not change.flipped
    assert change.reason is Reason.DYNAMIC_WEIGHT
    assert change.weight == 10
    assert change.text == "check reported weight 10"


@given(
    rise=st.integers(1, 4),
    fall=st.integers(1, 4),
    adopted=st.booleans(),
    results=st.lists(st.booleans(), max_size=60),
)
def test_rise_fall_invariants(rise: int, fall: int, adopted: bool, results: list[bool]) -> None:
    rise_fall = RiseFall(rise, fall, adopted=adopted)
    state = rise_fall.state
    for i, ok in enumerate(results):
        verdict = rise_fall.observe(ok, "x")
        if verdict is None:
            assert rise_fall.state is state
            continue
        # a verdict is always a change, in the direction of the result
        assert verdict.state is not state
        assert verdict.state is (State.UP if ok else State.DOWN)
        if verdict.reason is Reason.RISE:
            assert verdict.count == rise
            assert all(results[i - rise + 1 : i + 1])
        elif verdict.reason is Reason.FALL:
            assert verdict.count == fall
            assert not any(results[i - fall + 1 : i + 1])
        else:
            # only an adopted server's first result can skip the count
            assert verdict.reason is Reason.ADOPTED_FAILED and adopted and i == 0
        state = verdict.state
    # settled: the last `rise` results ok -> up, the last `fall` failed -> down
    tail_ok = len(results) >= rise and all(results[-rise:])
    tail_fail = len(results) >= fall and not any(results[-fall:])
    if tail_ok and len(results) > rise:
        assert rise_fall.state is State.UP
    if tail_fail and len(results) > fall:
        assert rise_fall.state is State.DOWN
