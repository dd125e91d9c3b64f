"""Per-instance VRRP reload: the rule (vrrp.machine.instance_reload / plan_instances),
the machine's in-place VIP change, the runner and its tracking weights, and the
service applying a plan to one instance while the others see nothing.

The machine is driven with literal times; runners run on looptime's virtual clock;
the service (its own thread) on the real clock, waiting on conditions only.
"""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Address, IPv4Network, ip_interface

import pytest

from vrrp.fake import FakeLinkMonitor, FakePorts, FakeSegment, FakeVipAddresses, RecordingAnnouncer
from vrrp.machine import (
    Announce,
    InstanceReload,
    SendAdvert,
    State,
    Transition,
    VipsChanged,
    VrrpMachine,
    instance_reload,
    plan_instances,
)
from vrrp.routes import RouteType, VirtualRoute
from vrrp.runner import InstanceRunner
from vrrp.service import VrrpService
from vrrp.settings import InstanceSettings, TrackInterface, VipSpec
from vrrp.status import InstanceStatus
from vrrp.track import InstanceTracker
from vrrp.vmac import VmacSettings

VIP = ip_interface("198.51.100.10/24")
VIP2 = ip_interface("198.51.100.11/24")
A_ADDR = IPv4Address("198.51.100.1")
B_ADDR = IPv4Address("198.51.100.2")


def settings(priority: int = 150, **overrides: object) -> InstanceSettings:
    values: dict[str, object] = {
        "name": "VI_WEB",
        "interface": "eth0",
        "vrid": 51,
        "priority": priority,
        "version": 3,
        "advert_interval": 1.0,
        "preempt": True,
        "preempt_delay": 0.0,
        "vips": (VipSpec(VIP),),
        "garp_repeat": 1,
        "garp_interval": 0.0,
    }
    values.update(overrides)
    return InstanceSettings(**values)  # type: ignore[arg-type]


# --- the rule ---------------------------------------------------------------------------------


def test_the_reload_rule_keeps_reconfigures_or_replaces() -> None:
    base = settings()
    assert instance_reload(base, settings()) is InstanceReload.keep
    assert instance_reload(base, settings(180)) is InstanceReload.reconfigure
    vips = (VipSpec(VIP), VipSpec(VIP2))
    assert instance_reload(base, settings(vips=vips)) is InstanceReload.reconfigure
    tracked = settings(track_interfaces=(TrackInterface("eth1", -60),))
    assert instance_reload(base, tracked) is InstanceReload.reconfigure
    assert instance_reload(base, settings(vrid=52)) is InstanceReload.replace
    assert instance_reload(base, settings(version=2)) is InstanceReload.replace
    assert instance_reload(base, settings(sync_group="g")) is InstanceReload.replace
    # use_vmac moves the VIPs and the advert socket: a new instance.
    assert instance_reload(base, settings(vmac=VmacSettings())) is InstanceReload.replace
    # Routes and rules change in place (the runner adds and removes the difference).
    route = VirtualRoute(IPv4Network("192.0.2.0/24"), type=RouteType.blackhole)
    assert instance_reload(base, settings(routes=(route,))) is InstanceReload.reconfigure


def test_plan_instances_touches_only_what_changed() -> None:
    a, b, c = settings(name="A", vrid=1), settings(name="B", vrid=2), settings(name="C", vrid=3)
    d = settings(name="D", vrid=4)
    new = (settings(name="A", vrid=1, vips=(VipSpec(VIP), VipSpec(VIP2))),
           settings(120, name="B", vrid=2), c, d)
    plan = plan_instances((a, b, c), new)
    assert not plan.restart
    assert [(step.name, step.action) for step in plan.changed] == [
        ("A", "reconfigure"), ("B", "reconfigure"), ("D", "add")
    ]
    assert [(step.name, step.action) for step in plan.steps if step.action == "keep"] == [
        ("C", "keep")
    ]
    removal = plan_instances((a, b, c), (a, c))
    assert [(step.name, step.action) for step in removal.changed] == [("B", "remove")]


def test_a_sync_group_membership_change_restarts_the_service() -> None:
    a = settings(name="A", vrid=1, sync_group="G")
    b = settings(name="B", vrid=2, sync_group="G")
    assert plan_instances((a,), (a, b)).restart
    assert not plan_instances((a, b), (a, settings(120, name="B", vrid=2, sync_group="G"))).restart


# --- the machine: VIPs in place ---------------------------------------------------------------


def master(initial: InstanceSettings) -> VrrpMachine:
    machine = VrrpMachine(initial, primary_address=A_ADDR)
    machine.start(0.0)
    machine.on_timer(10.0)  # master-down timer: no peer, MASTER
    assert machine.state is State.MASTER
    return machine


def test_a_master_adds_and_announces_a_new_vip_at_once() -> None:
    machine = master(settings())
    actions = machine.reconfigure(settings(vips=(VipSpec(VIP), VipSpec(VIP2))), 10.5)
    assert actions == (VipsChanged((VipSpec(VIP2),), ()), Announce(), SendAdvert(150))
    assert machine.state is State.MASTER


def test_a_master_drops_a_removed_vip_at_once_without_a_transition() -> None:
    machine = master(settings(vips=(VipSpec(VIP), VipSpec(VIP2))))
    actions = machine.reconfigure(settings(), 10.5)
    assert actions == (VipsChanged((), (VipSpec(VIP2),)), SendAdvert(150))
    assert not any(isinstance(action, Transition) for action in actions)


def test_a_backup_only_remembers_its_new_vips() -> None:
    machine = VrrpMachine(settings(), primary_address=A_ADDR)
    machine.start(0.0)
    assert machine.reconfigure(settings(vips=(VipSpec(VIP), VipSpec(VIP2))), 0.5) == ()
    assert machine.state is State.BACKUP


# --- the runner: VIPs and tracking weights ------------------------------------------------------


def now() -> float:
    return asyncio.get_running_loop().time()


@pytest.mark.looptime
async def test_a_runner_puts_a_new_vip_up_and_announces_it() -> None:
    segment = FakeSegment()
    addresses = FakeVipAddresses(["eth0"])
    announcer = RecordingAnnouncer(clock=now)
    runner = InstanceRunner(settings(), link=segment.attach(A_ADDR), addresses=addresses,
                            announcer=announcer)
    seen: list[Transition] = []
    runner.add_transition_callback(lambda _n, transition, _m: seen.append(transition))
    task = asyncio.create_task(runner.run())
    while runner.state is not State.MASTER:
        await asyncio.sleep(0.1)
    transitions = len(seen)
    await runner.reconfigure(settings(vips=(VipSpec(VIP), VipSpec(VIP2))))
    assert addresses.held("eth0") == (VIP, VIP2)
    await asyncio.sleep(0)  # the announce burst runs beside the runner
    assert announcer.announcements[-1].vips == (VIP, VIP2)
    await runner.reconfigure(settings())
    assert addresses.held("eth0") == (VIP,)
    assert len(seen) == transitions
    await runner.stop()
    await task


@pytest.mark.looptime
async def test_a_priority_reload_of_a_tracked_instance_keeps_its_tracking_weights() -> None:
    # eth1 down costs 60: the instance runs at 150 - 60 = 90. Reloaded with priority
    # 160, it must run at 100, not at the bare 160 the old reload left it with.
    tracked = settings(150, track_interfaces=(TrackInterface("eth1", -60),))
    segment = FakeSegment()
    runner = InstanceRunner(tracked, link=segment.attach(A_ADDR),
                            addresses=FakeVipAddresses(["eth0"]),
                            announcer=RecordingAnnouncer(clock=now))
    monitor = FakeLinkMonitor({"eth1": False})
    tracker = InstanceTracker(tracked, runner, monitor=monitor)
    tracking = asyncio.create_task(tracker.run())
    task = asyncio.create_task(runner.run())
    while runner.machine.effective_priority != 90:
        await asyncio.sleep(0.1)
    new = settings(160, track_interfaces=(TrackInterface("eth1", -60),))
    await runner.reconfigure(new, tracker.rebase(new))
    assert runner.machine.effective_priority == 100
    monitor.set_link("eth1", True)
    while runner.machine.effective_priority != 160:
        await asyncio.sleep(0.1)
    tracking.cancel()
    await runner.stop()
    await task


# --- the service: one instance touched, the others not ------------------------------------------


def fast(name: str, vrid: int, priority: int = 100, **overrides: object) -> InstanceSettings:
    vip = ip_interface(f"198.51.100.{vrid + 100}/24")
    values: dict[str, object] = {"vips": (VipSpec(vip),), "advert_interval": 0.05}
    values.update(overrides)
    return settings(priority, name=name, vrid=vrid, **values)


async def until(condition: object, within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def test_the_service_applies_a_plan_to_the_named_instances_only() -> None:
    segment = FakeSegment()
    addresses = FakeVipAddresses(["eth0"])
    seen: list[tuple[str, State]] = []

    def on_transition(name: str, transition: Transition, _status: InstanceStatus) -> None:
        seen.append((name, transition.new))

    old = (fast("A", 1), fast("B", 2), fast("C", 3))
    service = VrrpService(old, ports=lambda: FakePorts(segment, A_ADDR, addresses=addresses),
                          on_transition=on_transition, realtime_priority=None)
    await service.start_async()
    try:
        await until(lambda: sum(1 for _n, s in seen if s is State.MASTER) == 3)
        before = list(seen)
        extra = ip_interface("198.51.100.201/24")
        new = (fast("A", 1, vips=(old[0].vips[0], VipSpec(extra))), fast("B", 2, 120),
               old[2], fast("D", 4))
        plan = plan_instances(old, new)
        await asyncio.wrap_future(service.call(service.apply(plan)))
        assert extra in addresses.held("eth0")  # at once, on the master
        assert service.instances == new
        await until(lambda: ("D", State.MASTER) in seen)
        # A, B and C made no transition; D started as a new instance does.
        assert [entry for entry in seen[len(before):] if entry[0] != "D"] == []
        (b_status,) = [s for s in await asyncio.to_thread(service.status) if s.name == "B"]
        assert b_status.effective_priority == 120
        removal = plan_instances(new, new[:3])
        await asyncio.wrap_future(service.call(service.apply(removal)))
        assert ip_interface("198.51.100.104/24") not in addresses.held("eth0")
        assert [s.name for s in await asyncio.to_thread(service.status)] == ["A", "B", "C"]
    finally:
        await service.stop_async()
