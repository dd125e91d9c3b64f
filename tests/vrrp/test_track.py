"""Tracking: weights, fault, rise/fall, interfaces from the LinkMonitor, scripts."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from ipaddress import IPv4Address, ip_interface

import pytest

from vrrp.fake import FakeLinkMonitor
from vrrp.machine import VrrpMachine
from vrrp.notify import RunOutcome
from vrrp.settings import InstanceSettings, TrackInterface, TrackScript, VipSpec
from vrrp.track import InstanceTracker
from vrrp.track_verdict import RiseFall, TrackVerdict, clamp_priority, tracking_verdict

ETH1 = TrackInterface("eth1", -60)
ETH2_FAULT = TrackInterface("eth2", 0)
UPLINK = TrackScript(
    ("/usr/local/bin/check-uplink",), interval=2, timeout=1, rise=2, fall=3, weight=-30
)
BONUS = TrackScript(("/usr/local/bin/bonus",), interval=1, timeout=1, rise=1, fall=1, weight=10)


def settings(**overrides: object) -> InstanceSettings:
    values: dict[str, object] = {
        "name": "VI_1",
        "interface": "eth0",
        "vrid": 51,
        "priority": 150,
        "version": 3,
        "advert_interval": 1.0,
        "preempt": True,
        "preempt_delay": 0.0,
        "vips": (VipSpec(ip_interface("198.51.100.10/24")),),
    }
    values.update(overrides)
    return InstanceSettings(**values)  # type: ignore[arg-type]


class Recorder:
    def __init__(self) -> None:
        self.verdicts: list[TrackVerdict] = []
        self.changed = asyncio.Event()

    async def apply_tracking(self, verdict: TrackVerdict) -> None:
        self.verdicts.append(verdict)
        self.changed.set()

    async def next(self) -> TrackVerdict:
        await self.changed.wait()
        self.changed.clear()
        return self.verdicts[-1]


def test_negative_weight_counts_while_down() -> None:
    assert tracking_verdict(150, {ETH1: True}, {}).priority == 150
    down = tracking_verdict(150, {ETH1: False}, {})
    assert (down.priority, down.fault) == (90, False)
    assert down.reason == "interface eth1 down -60"


def test_positive_weight_counts_while_succeeding() -> None:
    assert tracking_verdict(100, {}, {BONUS: True}).priority == 110
    assert tracking_verdict(100, {}, {BONUS: False}).priority == 100


def test_weight_zero_means_fault() -> None:
    verdict = tracking_verdict(150, {ETH1: True, ETH2_FAULT: False}, {})
    assert verdict.fault and verdict.reason == "interface eth2 down"
    assert not tracking_verdict(150, {ETH2_FAULT: True}, {}).fault


def test_priority_is_clamped_and_owner_untouched() -> None:
    assert tracking_verdict(50, {ETH1: False}, {UPLINK: False}).priority == 1
    assert tracking_verdict(250, {}, {BONUS: True}).priority == 254
    assert tracking_verdict(255, {ETH1: False}, {}).priority == 255


@pytest.mark.parametrize(
    ("priority", "clamped"),
    [(-300, 1), (0, 1), (1, 1), (2, 2), (253, 253), (254, 254), (255, 254), (400, 254)],
)
def test_one_clamp_for_tracking_and_the_machine(priority: int, clamped: int) -> None:
    assert clamp_priority(priority) == clamped
    assert clamp_priority(priority, owner=True) == 255
    # tracking_verdict and the machine's set_priority both clamp with it.
    base = 100
    weight = priority - base
    counted = [("file f", weight, weight > 0)] if weight else []
    assert tracking_verdict(base, {}, {}, counted).priority == clamped
    machine = VrrpMachine(settings(priority=base), primary_address=IPv4Address("198.51.100.1"))
    machine.set_priority(priority, "tracking", 0.0)
    assert machine.effective_priority == clamped


def test_the_owner_never_moves_in_tracking_nor_in_the_machine() -> None:
    assert tracking_verdict(255, {}, {BONUS: False, UPLINK: False}).priority == 255
    machine = VrrpMachine(settings(priority=255), primary_address=IPv4Address("198.51.100.1"))
    assert machine.set_priority(1, "tracking", 0.0) == ()
    assert machine.effective_priority == 255


def test_rise_fall_needs_consecutive_results() -> None:
    state = RiseFall(rise=2, fall=3)
    assert [state.observe(ok) for ok in (False, False, True, False, False)] == [False] * 5
    assert state.healthy
    assert state.observe(False) is True and not state.healthy
    assert state.observe(True) is False and not state.healthy
    assert state.observe(True) is True and state.healthy


@pytest.mark.looptime
async def test_interface_down_and_up_move_priority_and_fault() -> None:
    monitor = FakeLinkMonitor({"eth1": True, "eth2": True})
    target = Recorder()
    tracker = InstanceTracker(
        settings(track_interfaces=(ETH1, ETH2_FAULT)), target, monitor=monitor
    )
    task = asyncio.create_task(tracker.run())
    assert await target.next() == TrackVerdict(150, False, "all tracked items nominal")
    monitor.set_link("eth1", False)
    assert (await target.next()).priority == 90
    monitor.set_link("eth2", False)
    verdict = await target.next()
    assert verdict.fault and verdict.priority == 90
    monitor.set_link("eth2", True)
    monitor.set_link("eth1", True)
    await target.next()
    while target.verdicts[-1].priority != 150:
        await target.next()
    assert not target.verdicts[-1].fault
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.looptime
async def test_interface_already_down_at_start_counts() -> None:
    target = Recorder()
    tracker = InstanceTracker(
        settings(track_interfaces=(ETH1,)), target, monitor=FakeLinkMonitor({"eth1": False})
    )
    task = asyncio.create_task(tracker.run())
    assert (await target.next()).priority == 90
    task.cancel()


@pytest.mark.looptime
async def test_script_rise_fall_on_its_interval() -> None:
    # Results in order: ok, fail, fail, fail (-> failing at t=6), ok, ok (-> ok at t=10).
    results = iter([0, 1, 1, 1, 0, 0, 0, 0, 0])
    calls: list[tuple[float, tuple[str, ...]]] = []

    async def run_script(argv: Sequence[str], kill_after: float) -> RunOutcome:
        calls.append((asyncio.get_running_loop().time(), tuple(argv)))
        assert kill_after == UPLINK.timeout
        return RunOutcome(next(results), False, "")

    target = Recorder()
    tracker = InstanceTracker(settings(track_scripts=(UPLINK,)), target, run_script=run_script)
    task = asyncio.create_task(tracker.run())
    assert (await target.next()).priority == 150
    failing = await target.next()
    assert failing.priority == 120
    assert "script /usr/local/bin/check-uplink failing" in failing.reason
    assert calls[-1][0] == 6.0
    assert (await target.next()).priority == 150
    assert calls[-1][0] == 10.0
    assert [at for at, _ in calls] == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    task.cancel()


@pytest.mark.looptime
async def test_script_timeout_counts_as_failure() -> None:
    async def run_script(argv: Sequence[str], kill_after: float) -> RunOutcome:
        return RunOutcome(None, True, "")

    script = TrackScript(("/bin/hang",), interval=1, timeout=0.5, rise=1, fall=1, weight=0)
    target = Recorder()
    tracker = InstanceTracker(settings(track_scripts=(script,)), target, run_script=run_script)
    task = asyncio.create_task(tracker.run())
    await target.next()
    verdict = await target.next()
    assert verdict.fault and verdict.reason == "script /bin/hang failing"
    task.cancel()


async def test_real_script_runs_without_shell() -> None:
    # Exit status 0 then a real failure: the default runner uses vrrp.notify.run_argv.
    script = TrackScript((sys.executable, "-c", "raise SystemExit(1)"), 1, 5, 1, 1, -20)
    target = Recorder()
    tracker = InstanceTracker(settings(track_scripts=(script,)), target)
    task = asyncio.create_task(tracker.run())
    assert (await target.next()).priority == 150
    assert (await target.next()).priority == 130
    task.cancel()


def test_tracking_interfaces_needs_a_monitor() -> None:
    with pytest.raises(ValueError, match="LinkMonitor"):
        InstanceTracker(settings(track_interfaces=(ETH1,)), Recorder())


async def test_nothing_tracked_returns_at_once() -> None:
    target = Recorder()
    await InstanceTracker(settings(), target).run()
    assert target.verdicts == []
