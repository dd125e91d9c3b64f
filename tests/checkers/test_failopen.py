"""Fail-open with literal times: a mass failure keeps the last known-good set."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from checkers.failopen import FailOpenEvent, FailOpenGuard
from checkers.spec import FailOpenSettings

SETTINGS = FailOpenSettings(fail_open_ratio=0.5, window=10.0, min_real_servers=2)


def guard_with(n: int, settings: FailOpenSettings | None = SETTINGS) -> FailOpenGuard[str]:
    guard: FailOpenGuard[str] = FailOpenGuard(settings)
    for i in range(n):
        guard.add(f"rs{i}", checked_up=True)
    return guard


def test_half_down_is_not_fail_open() -> None:
    guard = guard_with(10)
    for i in range(5):
        step = guard.record(f"rs{i}", False, now=100.0 + i)
        assert step.changes == ((f"rs{i}", False),)
        assert step.event is None
    assert not guard.active


def test_more_than_half_down_within_the_window_enters_and_restores() -> None:
    guard = guard_with(10)
    for i in range(5):
        guard.record(f"rs{i}", False, now=100.0 + i)
    step = guard.record("rs5", False, now=105.0)
    assert step.event is FailOpenEvent.ENTERED
    assert guard.active and guard.since == 105.0
    # the servers removed earlier in the window come back; rs5 never leaves
    assert step.changes == tuple((f"rs{i}", True) for i in range(5))
    assert step.reason == (
        "6 of 10 real servers went down within 10s (more than 50%): "
        "keeping the last known-good set of 10"
    )
    assert all(guard.is_up(f"rs{i}") for i in range(10))
    assert guard.is_held("rs0") and not guard.is_held("rs9")
    # more failures while open change nothing for held servers
    assert guard.record("rs9", False, now=106.0).changes == ()
    assert guard.is_up("rs9")


def test_failures_spread_beyond_the_window_are_real_failures() -> None:
    guard = guard_with(10)
    for i in range(8):
        step = guard.record(f"rs{i}", False, now=100.0 + i * 20.0)
        assert step.event is None
        assert step.changes == ((f"rs{i}", False),)
    assert not guard.active
    assert [guard.is_up(f"rs{i}") for i in range(10)] == [False] * 8 + [True] * 2


def test_clears_when_the_checks_recover() -> None:
    guard = guard_with(6)
    for i in range(3):
        guard.record(f"rs{i}", False, now=0.1 * i)
    step = guard.record("rs3", False, now=0.3)  # 4 of 6 within the window
    assert step.event is FailOpenEvent.ENTERED
    assert guard.record("rs4", False, now=1.0).changes == ()  # held
    assert guard.record("rs0", True, now=5.0).changes == ()  # 4 of 6 still down
    assert guard.active
    step = guard.record("rs1", True, now=6.0)
    # 3 of 6 down: at or below the ratio, the checks decide again
    assert step.event is FailOpenEvent.CLEARED
    assert step.changes == (("rs2", False), ("rs3", False), ("rs4", False))
    assert step.reason == "3 of 6 real servers down: the checks decide again"
    assert not guard.active
    assert [guard.is_up(f"rs{i}") for i in range(6)] == [True, True, False, False, False, True]


def test_a_mass_failure_still_spreading_after_clearing_enters_again() -> None:
    guard = guard_with(2)
    guard.record("rs0", False, now=0.0)
    assert guard.record("rs1", False, now=1.0).event is FailOpenEvent.ENTERED
    step = guard.record("rs0", True, now=2.0)
    assert step.event is FailOpenEvent.CLEARED
    assert step.changes == (("rs1", False),)
    # rs0 fails again within the window: both went down within 10 s
    step = guard.record("rs0", False, now=3.0)
    assert step.event is FailOpenEvent.ENTERED
    assert step.changes == (("rs1", True),)
    assert guard.is_up("rs0") and guard.is_up("rs1")
    # well after the window, a lone failure is just a failure
    guard.record("rs0", True, now=4.0)
    guard.record("rs1", True, now=5.0)
    assert not guard.active
    step = guard.record("rs0", False, now=60.0)
    assert step.event is None and step.changes == (("rs0", False),)


def test_a_server_not_held_follows_its_checks_while_open() -> None:
    guard = guard_with(3)
    guard.add("new", checked_up=False)
    guard.record("rs0", False, now=0.0)
    guard.record("rs1", False, now=0.0)
    step = guard.record("rs2", False, now=0.0)
    assert step.event is FailOpenEvent.ENTERED
    assert not guard.is_up("new")
    assert guard.record("new", True, now=1.0).changes == (("new", True),)
    assert guard.record("new", False, now=2.0).changes == (("new", False),)


def test_single_server_service_is_never_held() -> None:
    guard = guard_with(1)
    step = guard.record("rs0", False, now=0.0)
    assert step.event is None
    assert step.changes == (("rs0", False),)


def test_disabled_guard_never_enters() -> None:
    guard = guard_with(3, settings=None)
    for i in range(3):
        assert guard.record(f"rs{i}", False, now=0.0).changes == ((f"rs{i}", False),)
    assert not guard.active


def test_removing_dead_servers_on_reload_can_clear() -> None:
    guard = guard_with(3)
    for i in range(3):
        guard.record(f"rs{i}", False, now=0.0)
    assert guard.active
    guard.add("rs3", checked_up=True)
    guard.remove("rs0")
    step = guard.remove("rs1")
    # rs2 down, rs3 up: 1 of 2 down is not more than half
    assert step.event is FailOpenEvent.CLEARED
    assert step.changes == (("rs2", False),)


def test_misuse_raises() -> None:
    guard = guard_with(1)
    with pytest.raises(ValueError):
        guard.add("rs0", checked_up=True)
    with pytest.raises(ValueError):
        guard.record("ghost", False, now=0.0)
    with pytest.raises(ValueError):
        guard.remove("ghost")


@given(
    size=st.integers(2, 8),
    steps=st.lists(st.tuples(st.integers(0, 7), st.booleans(), st.floats(0.0, 8.0)), max_size=60),
)
def test_fail_open_never_empties_a_service_all_at_once(
    size: int, steps: list[tuple[int, bool, float]]
) -> None:
    guard = guard_with(size)
    effective = {f"rs{i}": True for i in range(size)}
    now = 0.0
    downs: list[tuple[float, str]] = []
    for index, up, dt in steps:
        now += dt
        name = f"rs{index % size}"
        was_up = guard.members[name]
        step = guard.record(name, up, now)
        if was_up and not up:
            downs.append((now, name))
        # the returned changes are exactly the effective differences
        for backend, value in step.changes:
            assert effective[backend] != value
            effective[backend] = value
        assert effective == {b: guard.is_up(b) for b in effective}
        checked = guard.members
        if not guard.active:
            assert effective == dict(checked)
        else:
            # a held server is one the checks call down
            assert all(not checked[b] for b in effective if guard.is_held(b))
        # more than half went down within the window -> something is still in service
        recent = {b for t, b in downs if t >= now - SETTINGS.window}
        if len(recent) > size / 2 and not any(checked.values()):
            assert any(effective.values())
