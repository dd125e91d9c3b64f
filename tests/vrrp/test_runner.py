"""InstanceRunner against the fakes, in virtual loop time (looptime).

Every test builds a FakeSegment with two or more nodes; the times asserted are
the RFC 5798 formulas, exact, because the loop clock is virtual.
"""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, ip_interface
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from vrrp.errors import DropReason, MalformedAdvert, VrrpUsageError
from vrrp.fake import (
    FakeAdvertLink,
    FakeLinkMonitor,
    FakePorts,
    FakeSegment,
    FakeVipAddresses,
    RecordingAnnouncer,
)
from vrrp.machine import State, Transition, TransitionReason, VrrpMachine, build_advert
from vrrp.packet import VRRP_MULTICAST_V4, VRRP_MULTICAST_V6, decode_advert, encode_advert
from vrrp.ports import ReceivedAdvert, VrrpIoError
from vrrp.runner import InstanceRunner
from vrrp.service import SyncGroup, VrrpService
from vrrp.settings import InstanceSettings, NotifySettings, TrackInterface, VipSpec
from vrrp.status import FaultSource, InstanceStatus
from vrrp.timing import master_down_interval, skew_time
from vrrp.track import InstanceTracker

pytestmark = pytest.mark.looptime

VIP = ip_interface("198.51.100.10/24")
A_ADDR = IPv4Address("198.51.100.1")
B_ADDR = IPv4Address("198.51.100.2")


def instance(priority: int, **overrides: object) -> InstanceSettings:
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
        "garp_repeat": 3,
        "garp_interval": 0.5,
    }
    values.update(overrides)
    return InstanceSettings(**values)  # type: ignore[arg-type]


@dataclass
class Node:
    """One director on the segment: its runner, its ports, what it saw."""

    runner: InstanceRunner
    link: FakeAdvertLink
    addresses: FakeVipAddresses
    announcer: RecordingAnnouncer
    transitions: list[tuple[float, Transition]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    @property
    def state(self) -> State:
        return self.runner.state

    async def wait_for(self, state: State, within: float = 60.0) -> float:
        """Virtual time at which the node reached ``state``."""
        async with asyncio.timeout(within):
            while self.state is not state:
                self.changed.clear()
                await self.changed.wait()
        return self.transitions[-1][0]

    def start(self) -> None:
        self.task = asyncio.create_task(self.runner.run())

    async def crash(self) -> None:
        """The process dies: nothing sent, nothing removed (its VIPs stay)."""
        assert self.task is not None
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task
        self.link.close()


def now() -> float:
    return asyncio.get_running_loop().time()


def make_node(
    segment: FakeSegment,
    address: IPv4Address | IPv6Address,
    settings: InstanceSettings,
    addresses: FakeVipAddresses | None = None,
    connected: tuple[IPv4Network, ...] = (),
) -> Node:
    link = segment.attach(address)
    link.connected = connected
    addresses = addresses or FakeVipAddresses(["eth0", "eth1"])
    announcer = RecordingAnnouncer(clock=now)
    runner = InstanceRunner(settings, link=link, addresses=addresses, announcer=announcer)
    node = Node(runner, link, addresses, announcer)

    def record(name: str, transition: Transition, machine: VrrpMachine) -> None:
        node.transitions.append((now(), transition))
        node.changed.set()

    runner.add_transition_callback(record)
    return node


@pytest.fixture
def segment() -> FakeSegment:
    return FakeSegment(clock=now)


def holders(*nodes: Node) -> list[Node]:
    return [node for node in nodes if node.addresses.held("eth0")]


async def test_lone_backup_becomes_master_after_master_down_interval(segment: FakeSegment) -> None:
    node = make_node(segment, A_ADDR, instance(100))
    t0 = now()
    node.start()
    at = await node.wait_for(State.MASTER)
    assert at - t0 == master_down_interval(100, 1.0, 3) == 3.609375
    assert node.transitions[-1][1].reason is TransitionReason.master_down_timer
    assert node.addresses.held("eth0") == (VIP,)
    # The first advert leaves at the takeover, then one per advert_interval.
    await asyncio.sleep(2.5)
    sent = [advert.at for advert in segment.sent_by(A_ADDR)]
    assert [round(t - at, 9) for t in sent if t is not None] == [0.0, 1.0, 2.0]
    assert all(advert.destination == VRRP_MULTICAST_V4 for advert in segment.sent)
    decoded = decode_advert(segment.sent[0].payload, A_ADDR, VRRP_MULTICAST_V4)
    assert (decoded.vrid, decoded.priority, decoded.addresses) == (51, 100, (VIP.ip,))
    # garp_repeat=3 rounds, garp_interval=0.5 apart, from the takeover.
    announced = [(a.at, a.vips) for a in node.announcer.announcements]
    assert [(round(t - at, 9), vips) for t, vips in announced if t is not None] == [
        (0.0, (VIP,)),
        (0.5, (VIP,)),
        (1.0, (VIP,)),
    ]
    assert node.runner.counters.adverts_sent == 3
    await node.runner.stop()


async def test_transition_callbacks_run_after_the_vips_are_up_and_announced(
    segment: FakeSegment,
) -> None:
    """A notify hook (a transition callback) forks its script from the VRRP loop, which
    holds the loop on a slow host: the VIPs go up and the first gratuitous ARP leaves
    before it can run, as keepalived sends its ARPs before it runs notify scripts. In
    the lab the new master's first gratuitous ARP left 75-270 ms after its first VIP
    went up, and its second VIP (the gateway) went up as late: the hook was being forked
    in between, and the client kept sending to the old master."""
    node = make_node(segment, A_ADDR, instance(100))
    seen: list[tuple[str, tuple[object, ...], int]] = []

    def hook(name: str, transition: Transition, machine: VrrpMachine) -> None:
        if transition.new is State.MASTER:
            seen.append(("callback", node.addresses.held("eth0"),
                         len(node.announcer.announcements)))

            async def fork() -> None:  # the hook's work, in a task of the same loop
                seen.append(("hook ran", node.addresses.held("eth0"),
                             len(node.announcer.announcements)))

            asyncio.get_running_loop().create_task(fork())

    node.runner.add_transition_callback(hook)
    node.start()
    await node.wait_for(State.MASTER)
    await asyncio.sleep(0.1)
    assert seen == [("callback", (VIP,), 0), ("hook ran", (VIP,), 1)]
    await node.runner.stop()


async def test_higher_priority_wins_and_crash_fails_over_exactly(segment: FakeSegment) -> None:
    a = make_node(segment, A_ADDR, instance(150))
    b = make_node(segment, B_ADDR, instance(100))
    a.start()
    b.start()
    await a.wait_for(State.MASTER)
    await asyncio.sleep(5)
    assert (a.state, b.state) == (State.MASTER, State.BACKUP)
    assert holders(a, b) == [a]
    await a.crash()
    last_advert = segment.sent_by(A_ADDR)[-1].at
    assert last_advert is not None
    at = await b.wait_for(State.MASTER)
    # RFC 5798 §6.4.2: Master_Down_Interval after the last advert heard.
    assert at - last_advert == master_down_interval(100, 1.0, 3)
    assert b.transitions[-1][1].reason is TransitionReason.master_down_timer
    assert b.addresses.held("eth0") == (VIP,)
    await b.runner.stop()


async def test_graceful_stop_hands_over_after_skew_time(segment: FakeSegment) -> None:
    a = make_node(segment, A_ADDR, instance(150))
    b = make_node(segment, B_ADDR, instance(100))
    a.start()
    b.start()
    await a.wait_for(State.MASTER)
    await asyncio.sleep(2.3)
    stopped_at = now()
    await a.runner.stop()
    # The resigning master sends priority 0 and drops its VIPs at once.
    last = segment.sent_by(A_ADDR)[-1]
    assert decode_advert(last.payload, A_ADDR, last.destination).priority == 0
    assert a.addresses.held() == ()
    at = await b.wait_for(State.MASTER)
    assert at - stopped_at == skew_time(100, 1.0, 3)
    assert b.transitions[-1][1].reason is TransitionReason.priority_zero_advert
    assert holders(a, b) == [b]
    await b.runner.stop()


async def test_preempt_when_the_higher_priority_returns(segment: FakeSegment) -> None:
    b = make_node(segment, B_ADDR, instance(100))
    b.start()
    await b.wait_for(State.MASTER)
    a = make_node(segment, A_ADDR, instance(150))
    a.start()
    await a.wait_for(State.MASTER)
    await b.wait_for(State.BACKUP)
    assert b.transitions[-1][1].reason is TransitionReason.higher_priority_advert
    await asyncio.sleep(3)
    assert holders(a, b) == [a]
    await a.runner.stop()
    await b.runner.stop()


async def test_adverts_waiting_in_the_socket_are_read_before_the_timer(
    segment: FakeSegment,
) -> None:
    a = make_node(segment, A_ADDR, instance(150))
    b = make_node(segment, B_ADDR, instance(100))
    a.start()
    b.start()
    await a.wait_for(State.MASTER)
    await asyncio.sleep(1.5)
    received_before = b.runner.counters.adverts_received
    # B's loop is "too busy" to poll its socket: adverts queue there unread.
    b.link.stall(True)
    await asyncio.sleep(10 * master_down_interval(100, 1.0, 3))
    assert b.state is State.BACKUP
    assert [t.new for _, t in b.transitions] == [State.BACKUP]
    # They were read, by the timer path, and kept the master alive.
    assert b.runner.counters.adverts_received > received_before + 30
    b.link.stall(False)
    await a.runner.stop()
    await b.runner.stop()


async def test_partition_gives_two_masters_and_healing_one(segment: FakeSegment) -> None:
    a = make_node(segment, A_ADDR, instance(150))
    b = make_node(segment, B_ADDR, instance(100))
    a.start()
    b.start()
    await a.wait_for(State.MASTER)
    segment.partition([A_ADDR], [B_ADDR])
    await b.wait_for(State.MASTER)
    assert len(holders(a, b)) == 2
    healed_at = asyncio.get_running_loop().time()
    segment.heal()
    await b.wait_for(State.BACKUP)
    assert holders(a, b) == [a]
    # b's gratuitous ARPs moved the neighbours during the split: a announces again
    # after the heal, whichever of the two heard the other first.
    await asyncio.sleep(1.0)
    assert [x for x in a.announcer.announcements if x.at is not None and x.at > healed_at]
    await a.runner.stop()
    await b.runner.stop()


async def test_garbage_and_bad_ttl_are_counted_and_logged_once_per_interval(
    segment: FakeSegment,
) -> None:
    a = make_node(segment, A_ADDR, instance(150))
    a.start()
    stranger = IPv4Address("198.51.100.66")
    good = encode_advert(build_advert(instance(200), 200), stranger, VRRP_MULTICAST_V4)
    with capture_logs() as logs:
        for _ in range(5):
            segment.inject(b"\x31\x33", stranger, VRRP_MULTICAST_V4)
            segment.inject(good, stranger, VRRP_MULTICAST_V4, ttl=64)
            await asyncio.sleep(1)
        await asyncio.sleep(6)
        segment.inject(b"\x31\x33", stranger, VRRP_MULTICAST_V4)
        await asyncio.sleep(0.1)
    counters = a.runner.counters
    assert counters.dropped[DropReason.bad_ttl] == 5
    assert counters.adverts_dropped == 11
    lines = [entry for entry in logs if entry["event"] == "vrrp.advert.dropped"]
    assert [(line["reason"], line["suppressed"]) for line in lines] == [
        (lines[0]["reason"], 0),
        ("bad_ttl", 0),
        (lines[0]["reason"], 4),
    ]
    assert all(line["peer"] == "198.51.100.66" and line["vrid"] == 51 for line in lines)
    # The priority-200 advert with TTL 64 did not count: A took over alone.
    assert [t.new for _, t in a.transitions] == [State.BACKUP, State.MASTER]
    await a.runner.stop()


async def test_transition_log_line_says_why(segment: FakeSegment) -> None:
    with capture_logs() as logs:
        a = make_node(segment, A_ADDR, instance(150))
        a.start()
        await a.wait_for(State.MASTER)
        await a.runner.stop()
    lines = [entry for entry in logs if entry["event"] == "vrrp.transition"]
    assert [(e["from_state"], e["to_state"], e["reason"]) for e in lines] == [
        ("init", "backup", "startup_backup"),
        ("backup", "master", "master_down_timer"),
        ("master", "init", "shutdown"),
    ]
    assert all(e["vrid"] == 51 and e["iface"] == "eth0" for e in lines)


async def test_vip_add_failure_becomes_fault_then_retries(segment: FakeSegment) -> None:
    a = make_node(segment, A_ADDR, instance(150))
    a.addresses.fail_next("add", errno.EPERM)
    a.start()
    await a.wait_for(State.FAULT)
    fault_at = a.transitions[-1][0]
    assert FaultSource.io in a.runner.faults
    assert a.addresses.held() == ()
    assert a.runner.counters.io_errors == 1
    # After the hold time it listens again, and nobody else is there: master.
    at = await a.wait_for(State.MASTER)
    assert at > fault_at
    assert a.addresses.held("eth0") == (VIP,)
    assert [t.new for _, t in a.transitions] == [
        State.BACKUP,
        State.MASTER,
        State.FAULT,
        State.BACKUP,
        State.MASTER,
    ]
    await a.runner.stop()


async def test_tracked_interface_down_is_fault_and_backup_takes_over(segment: FakeSegment) -> None:
    tracked = instance(150, track_interfaces=(TrackInterface("eth1", 0),))
    a = make_node(segment, A_ADDR, tracked)
    b = make_node(segment, B_ADDR, instance(100))
    monitor = FakeLinkMonitor({"eth1": True})
    tracker = InstanceTracker(tracked, a.runner, monitor=monitor)
    track_task = asyncio.create_task(tracker.run())
    a.start()
    b.start()
    await a.wait_for(State.MASTER)
    await asyncio.sleep(1.2)
    down_at = now()
    monitor.set_link("eth1", False)
    await a.wait_for(State.FAULT)
    assert a.addresses.held() == ()
    at = await b.wait_for(State.MASTER)
    # FAULT from MASTER resigns with priority 0: the backup waits only skew time.
    assert at - down_at == skew_time(100, 1.0, 3)
    monitor.set_link("eth1", True)
    await a.wait_for(State.MASTER)
    await b.wait_for(State.BACKUP)
    assert holders(a, b) == [a]
    track_task.cancel()
    await a.runner.stop()
    await b.runner.stop()


async def test_tracking_weight_lowers_priority_and_peer_preempts(segment: FakeSegment) -> None:
    tracked = instance(150, track_interfaces=(TrackInterface("eth1", -60),))
    a = make_node(segment, A_ADDR, tracked)
    b = make_node(segment, B_ADDR, instance(100))
    monitor = FakeLinkMonitor({"eth1": True})
    track_task = asyncio.create_task(InstanceTracker(tracked, a.runner, monitor=monitor).run())
    a.start()
    b.start()
    await a.wait_for(State.MASTER)
    monitor.set_link("eth1", False)
    await b.wait_for(State.MASTER)
    await a.wait_for(State.BACKUP)
    assert a.runner.machine.effective_priority == 90
    # Status names what lowered it, as the vrrp.priority.changed line does.
    assert a.runner.status().priority_reason == "interface eth1 down -60"
    assert holders(a, b) == [b]
    track_task.cancel()
    await a.runner.stop()
    await b.runner.stop()



VIP2 = ip_interface("203.0.113.10/24")


def group_instance(
    name: str, vrid: int, vip: object, priority: int, **extra: object
) -> InstanceSettings:
    vips = (VipSpec(vip),)  # type: ignore[arg-type]
    return instance(priority, name=name, vrid=vrid, vips=vips, sync_group="G", **extra)


def start_tracker(node: Node, monitor: FakeLinkMonitor) -> asyncio.Task[None]:
    tracker = InstanceTracker(node.runner.settings, node.runner, monitor=monitor)
    return asyncio.create_task(tracker.run())


def director(
    segment: FakeSegment, address: IPv4Address, priority: int, track: TrackInterface | None
) -> tuple[Node, Node, FakeVipAddresses]:
    shared = FakeVipAddresses(["eth0", "eth1"])
    tracking = {"track_interfaces": (track,)} if track else {}
    first_settings = group_instance("VI_1", 51, VIP, priority, **tracking)
    first = make_node(segment, address, first_settings, shared)
    second = make_node(segment, address, group_instance("VI_2", 52, VIP2, priority), shared)
    SyncGroup("G", [first.runner, second.runner])
    return first, second, shared


async def test_sync_group_follows_a_member_into_fault(segment: FakeSegment) -> None:
    a1, a2, a_vips = director(segment, A_ADDR, 150, TrackInterface("eth1", 0))
    b1, b2, b_vips = director(segment, B_ADDR, 100, None)
    monitor = FakeLinkMonitor({"eth1": True})
    track = start_tracker(a1, monitor)
    for node in (a1, a2, b1, b2):
        node.start()
    await a1.wait_for(State.MASTER)
    await a2.wait_for(State.MASTER)
    assert set(a_vips.held("eth0")) == {VIP, VIP2} and b_vips.held() == ()
    monitor.set_link("eth1", False)
    await a2.wait_for(State.FAULT)
    assert a2.runner.faults == {FaultSource.sync_group: "sync_group=G member=VI_1 in fault"}
    await b1.wait_for(State.MASTER)
    await b2.wait_for(State.MASTER)
    assert a_vips.held() == () and set(b_vips.held("eth0")) == {VIP, VIP2}
    monitor.set_link("eth1", True)
    await a1.wait_for(State.MASTER)
    await a2.wait_for(State.MASTER)
    await b1.wait_for(State.BACKUP)
    await b2.wait_for(State.BACKUP)
    assert set(a_vips.held("eth0")) == {VIP, VIP2} and b_vips.held() == ()
    track.cancel()
    for node in (a1, a2, b1, b2):
        await node.runner.stop()


async def test_sync_group_stays_in_fault_until_the_last_own_fault_clears(
    segment: FakeSegment,
) -> None:
    # Both members fail, the first one recovers first: the group stays in FAULT
    # (keepalived: a sync group is FAULT while any member is), and when the second
    # recovers every member leaves FAULT. The group used to look only at
    # transitions: VI_2's own fault came while the group already held it in FAULT
    # (no transition), so VI_1 went back to work alone and VI_2 stayed in FAULT
    # for good once its own fault cleared.
    a1, a2, _ = director(segment, A_ADDR, 150, None)
    for node in (a1, a2):
        node.start()
    await a1.wait_for(State.MASTER)
    await a2.wait_for(State.MASTER)
    await a1.runner.set_fault(FaultSource.track, True, "eth1 down")
    await a2.wait_for(State.FAULT)
    await a2.runner.set_fault(FaultSource.track, True, "eth2 down")
    await a1.runner.set_fault(FaultSource.track, False, "eth1 up")
    await asyncio.sleep(5)
    assert (a1.state, a2.state) == (State.FAULT, State.FAULT)
    assert a1.runner.faults == {FaultSource.sync_group: "sync_group=G member=VI_2 in fault"}
    await a2.runner.set_fault(FaultSource.track, False, "eth2 up")
    await a1.wait_for(State.MASTER)
    await a2.wait_for(State.MASTER)
    assert a1.runner.faults == {} and a2.runner.faults == {}
    for node in (a1, a2):
        await node.runner.stop()


async def test_sync_group_follows_a_member_to_backup(segment: FakeSegment) -> None:
    a1, a2, a_vips = director(segment, A_ADDR, 150, TrackInterface("eth1", -60))
    b1, b2, b_vips = director(segment, B_ADDR, 100, None)
    monitor = FakeLinkMonitor({"eth1": True})
    track = start_tracker(a1, monitor)
    for node in (a1, a2, b1, b2):
        node.start()
    await a1.wait_for(State.MASTER)
    await a2.wait_for(State.MASTER)
    # VI_1 on A drops to 90 < 100: B preempts VI_1, and A's VI_2 follows it out.
    monitor.set_link("eth1", False)
    await a1.wait_for(State.BACKUP)
    await b2.wait_for(State.MASTER)
    await asyncio.sleep(5)
    assert (a1.state, a2.state, b1.state, b2.state) == (
        State.BACKUP,
        State.BACKUP,
        State.MASTER,
        State.MASTER,
    )
    assert a2.runner.machine.effective_priority == 1
    assert a_vips.held() == () and set(b_vips.held("eth0")) == {VIP, VIP2}
    # eth1 back: VI_1 preempts at 150, the hold lifts, VI_2 preempts too.
    monitor.set_link("eth1", True)
    await a1.wait_for(State.MASTER)
    await a2.wait_for(State.MASTER)
    await asyncio.sleep(5)
    assert set(a_vips.held("eth0")) == {VIP, VIP2} and b_vips.held() == ()
    assert a2.runner.machine.effective_priority == 150
    track.cancel()
    for node in (a1, a2, b1, b2):
        await node.runner.stop()


async def test_sync_group_follower_resigns_to_backup_without_a_fault(
    segment: FakeSegment,
) -> None:
    # keepalived vrrp_sync_backup: the other members go MASTER -> BACKUP directly
    # (their BACKUP notify runs), never through FAULT.
    a1, a2, a_vips = director(segment, A_ADDR, 150, TrackInterface("eth1", -60))
    b1, b2, b_vips = director(segment, B_ADDR, 100, None)
    monitor = FakeLinkMonitor({"eth1": True})
    track = start_tracker(a1, monitor)
    for node in (a1, a2, b1, b2):
        node.start()
    await a1.wait_for(State.MASTER)
    await a2.wait_for(State.MASTER)
    seen_a1, seen_a2 = len(a1.transitions), len(a2.transitions)
    with capture_logs() as logs:
        monitor.set_link("eth1", False)
        resigned_at = await a2.wait_for(State.BACKUP)
        taken_at = await b2.wait_for(State.MASTER)
        await b1.wait_for(State.MASTER)
        await asyncio.sleep(10)
    # The follower: one transition, MASTER -> BACKUP because of the group.
    assert [t for _at, t in a2.transitions[seen_a2:]] == [
        Transition(
            State.MASTER, State.BACKUP, TransitionReason.sync_group,
            "sync_group=G member=VI_1 backup",
        )
    ]
    assert [(t.old, t.new, t.reason) for _at, t in a1.transitions[seen_a1:]] == [
        (State.MASTER, State.BACKUP, TransitionReason.higher_priority_advert)
    ]
    assert a2.runner.faults == {} and a1.runner.faults == {}
    assert not [e for e in logs if e["event"] == "vrrp.transition" and e["to_state"] == "fault"]
    # Only the member that lost MASTER starts the follow; the follower's own
    # MASTER -> BACKUP does not start a second round (which would hold VI_1 too).
    follows = [e for e in logs if e["event"] == "vrrp.sync_group.follow"]
    assert [(e["instance"], e["to_state"]) for e in follows] == [("VI_1", "backup")]
    # It resigned with priority 0: the peer's VI_2 took over after its skew time only.
    assert b2.transitions[-1][1].reason is TransitionReason.priority_zero_advert
    assert taken_at - resigned_at == pytest.approx(skew_time(100, 1.0, 3), abs=1e-6)
    # The whole group ends at the peer director, and stays there.
    assert (a1.state, a2.state, b1.state, b2.state) == (
        State.BACKUP,
        State.BACKUP,
        State.MASTER,
        State.MASTER,
    )
    assert a_vips.held() == () and set(b_vips.held("eth0")) == {VIP, VIP2}
    assert (a1.runner.machine.effective_priority, a2.runner.machine.effective_priority) == (90, 1)
    track.cancel()
    for node in (a1, a2, b1, b2):
        await node.runner.stop()


# --- VrrpService: the instances in their own thread and event loop (real time) ---------------


def fast_instance(priority: int, notify_file: Path | None = None) -> InstanceSettings:
    notify = None
    if notify_file is not None:
        hook = ("/bin/sh", "-c", f'echo "$*" >> {notify_file}', "hook")
        notify = NotifySettings(master=hook, stop=hook, timeout=10)
    return instance(priority, advert_interval=0.05, garp_repeat=1, notify=notify)


@pytest.mark.looptime(False)
async def test_service_runs_instances_in_its_own_thread(tmp_path: Path) -> None:
    segment = FakeSegment()
    addresses = FakeVipAddresses(["eth0"])
    notify_file = tmp_path / "hooks"
    seen: list[tuple[str, State, str]] = []
    mastered = asyncio.Event()

    def on_transition(name: str, transition: Transition, status: InstanceStatus) -> None:
        seen.append((name, transition.new, threading.current_thread().name))
        if status.state is State.MASTER:
            mastered.set()

    service = VrrpService(
        [fast_instance(100, notify_file)],
        ports=lambda: FakePorts(segment, A_ADDR, addresses=addresses),
        on_transition=on_transition,
    )
    await service.start_async()
    try:
        async with asyncio.timeout(10):
            await mastered.wait()
        (status,) = await asyncio.to_thread(service.status)
        assert (status.name, status.state, status.vrid) == ("VI_WEB", State.MASTER, 51)
        assert status.adverts_sent >= 1
        assert addresses.held("eth0") == (VIP,)
        assert service.running
        (vrrp_thread,) = [t for t in threading.enumerate() if t.name == "haipvs-vrrp"]
        assert vrrp_thread.native_id is not None
        policy = os.sched_getscheduler(vrrp_thread.native_id)
        # Only the VRRP thread is boosted (SCHED_RR needs CAP_SYS_NICE: root here).
        if os.geteuid() == 0:
            assert policy == os.SCHED_RR
        assert os.sched_getscheduler(threading.get_native_id()) == os.SCHED_OTHER
    finally:
        await service.stop_async()
    assert not service.running
    # Transitions were delivered in the caller's loop, not in the VRRP thread.
    main_thread = threading.current_thread().name
    assert [(s[0], s[1], s[2]) for s in seen[:2]] == [
        ("VI_WEB", State.BACKUP, main_thread),
        ("VI_WEB", State.MASTER, main_thread),
    ]
    # Graceful stop: priority 0 last, VIPs gone, master then stop hooks in order.
    last = segment.sent[-1]
    assert decode_advert(last.payload, A_ADDR, last.destination).priority == 0
    assert addresses.held() == ()
    assert notify_file.read_text().splitlines() == [
        "INSTANCE VI_WEB MASTER 100",
        "INSTANCE VI_WEB STOP 100",
    ]
    assert service.loop_lag.samples >= 1


@pytest.mark.looptime(False)
async def test_service_sync_group_follower_runs_its_backup_hook_never_fault(
    tmp_path: Path,
) -> None:
    segment = FakeSegment()
    addresses = FakeVipAddresses(["eth0"])
    notify_file = tmp_path / "hooks"
    hook = ("/bin/sh", "-c", f'echo "$*" >> {notify_file}', "hook")
    notify = NotifySettings(master=hook, backup=hook, fault=hook, stop=hook, timeout=10)
    fast = {"advert_interval": 0.05, "garp_repeat": 1, "notify": notify, "sync_group": "G"}
    first = instance(150, name="VI_1", vrid=51, **fast)
    second = instance(150, name="VI_2", vrid=52, vips=(VipSpec(VIP2),), **fast)
    seen: list[tuple[str, Transition]] = []
    changed = asyncio.Event()

    def on_transition(name: str, transition: Transition, status: InstanceStatus) -> None:
        seen.append((name, transition))
        changed.set()

    async def until(predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(10):
            while not predicate():
                changed.clear()
                await changed.wait()

    def reached(name: str, state: State, old: State | None = None) -> bool:
        return any(
            n == name and t.new is state and (old is None or t.old is old) for n, t in seen
        )

    async def peer_masters_vi_1() -> None:
        # A peer director (not on the fake segment) masters VI_1 at priority 200.
        payload = encode_advert(build_advert(first, 200), B_ADDR, VRRP_MULTICAST_V4)
        while True:
            segment.inject(payload, B_ADDR, VRRP_MULTICAST_V4)
            await asyncio.sleep(0.05)

    service = VrrpService(
        [first, second],
        ports=lambda: FakePorts(segment, A_ADDR, addresses=addresses),
        on_transition=on_transition,
        realtime_priority=None,
    )
    await service.start_async()
    try:
        await until(lambda: reached("VI_1", State.MASTER) and reached("VI_2", State.MASTER))
        peer = service.call(peer_masters_vi_1())  # in the VRRP loop, like the links
        await until(lambda: reached("VI_2", State.BACKUP, old=State.MASTER))
        peer.cancel()
    finally:
        await service.stop_async()
    follower = [t for name, t in seen if name == "VI_2"]
    assert (State.MASTER, State.BACKUP, TransitionReason.sync_group) in [
        (t.old, t.new, t.reason) for t in follower
    ]
    assert all(t.new is not State.FAULT for _name, t in seen)
    hooks = notify_file.read_text().splitlines()
    # The follower's BACKUP hook ran with the held priority; no FAULT hook ever ran.
    vi_2 = [line for line in hooks if line.startswith("INSTANCE VI_2 ")]
    assert vi_2[:3] == [
        "INSTANCE VI_2 BACKUP 150",  # startup
        "INSTANCE VI_2 MASTER 150",
        "INSTANCE VI_2 BACKUP 1",  # followed VI_1 out, held at the lowest priority
    ]
    assert "INSTANCE VI_1 BACKUP 150" in hooks
    assert not [line for line in hooks if " FAULT " in line]


@pytest.mark.looptime(False)
def test_service_start_reports_a_failing_port() -> None:
    def broken() -> FakePorts:
        raise VrrpIoError("open vrrp socket eth0", errno.EPERM)

    service = VrrpService([fast_instance(100)], ports=broken)
    with pytest.raises(VrrpIoError) as failure:
        service.start()
    assert failure.value.errno == errno.EPERM
    assert not service.running


def test_service_refuses_two_instances_with_one_identity() -> None:
    with pytest.raises(ValueError, match="share interface, vrid and family"):
        VrrpService([fast_instance(100), instance(100, name="OTHER")])


async def test_unicast_pair_sends_to_the_peer_and_drops_strangers(segment: FakeSegment) -> None:
    stranger = IPv4Address("198.51.100.66")
    a = make_node(segment, A_ADDR, instance(150, unicast_peers=(B_ADDR,)))
    b = make_node(segment, B_ADDR, instance(100, unicast_peers=(A_ADDR,)))
    a.start()
    b.start()
    await a.wait_for(State.MASTER)
    await asyncio.sleep(2)
    assert {advert.destination for advert in segment.sent_by(A_ADDR)} == {B_ADDR}
    # A stranger speaking to B with a winning priority is not a peer: dropped.
    winning = encode_advert(build_advert(instance(200), 200), stranger, B_ADDR)
    segment.inject(winning, stranger, B_ADDR)
    await asyncio.sleep(0.1)
    assert b.runner.counters.dropped[DropReason.not_a_peer] == 1
    await a.crash()
    last = segment.sent_by(A_ADDR)[-1].at
    at = await b.wait_for(State.MASTER)
    assert last is not None and at - last == master_down_interval(100, 1.0, 3)
    assert {advert.destination for advert in segment.sent_by(B_ADDR)} == {A_ADDR}
    await b.runner.stop()


STRANGER = IPv4Address("198.51.100.66")


@pytest.mark.parametrize(
    ("peers", "source", "destination", "ttl", "dropped"),
    [
        # Unicast from a configured peer: any TTL (keepalived; the peer may be routed).
        ((B_ADDR,), B_ADDR, A_ADDR, 64, None),
        ((B_ADDR,), B_ADDR, A_ADDR, 1, None),
        ((B_ADDR,), B_ADDR, A_ADDR, 255, None),
        # Multicast keeps RFC 5798 §7.1's 255, even from a configured peer.
        ((B_ADDR,), B_ADDR, VRRP_MULTICAST_V4, 64, DropReason.bad_ttl),
        # A stranger is dropped in unicast mode whatever its TTL.
        ((B_ADDR,), STRANGER, A_ADDR, 64, DropReason.bad_ttl),
        ((B_ADDR,), STRANGER, A_ADDR, 255, DropReason.not_a_peer),
        # Without unicast peers nobody is exempt, unicast-addressed or not.
        ((), B_ADDR, A_ADDR, 64, DropReason.bad_ttl),
        ((), B_ADDR, VRRP_MULTICAST_V4, 64, DropReason.bad_ttl),
        ((), B_ADDR, VRRP_MULTICAST_V4, 255, None),
    ],
    ids=[
        "peer-unicast-ttl64", "peer-unicast-ttl1", "peer-unicast-ttl255",
        "peer-multicast-ttl64", "stranger-unicast-ttl64", "stranger-unicast-ttl255",
        "multicast-mode-unicast-ttl64", "multicast-mode-ttl64", "multicast-mode-ttl255",
    ],
)
async def test_ttl_255_is_required_except_unicast_from_a_configured_peer(
    segment: FakeSegment,
    peers: tuple[IPv4Address, ...],
    source: IPv4Address,
    destination: IPv4Address,
    ttl: int,
    dropped: DropReason | None,
) -> None:
    a = make_node(segment, A_ADDR, instance(150, unicast_peers=peers))
    a.start()
    await a.wait_for(State.MASTER)
    # A priority-200 master: accepted, it makes A step down at once (RFC 5798 §6.4.3).
    winning = encode_advert(build_advert(instance(200), 200), source, destination)
    segment.inject(winning, source, destination, ttl=ttl)
    await asyncio.sleep(0.1)
    counters = a.runner.counters
    if dropped is None:
        assert counters.adverts_dropped == 0
        assert a.state is State.BACKUP
        assert a.transitions[-1][1].reason is TransitionReason.higher_priority_advert
    else:
        assert dict(counters.dropped) == {dropped: 1}
        assert a.state is State.MASTER
    await a.runner.stop()


async def test_ipv6_unicast_peer_hop_limit_is_not_checked_multicast_is(
    segment: FakeSegment,
) -> None:
    vip6 = ip_interface("2001:db8::10/64")
    a_ll, b_ll = IPv6Address("fe80::1"), IPv6Address("fe80::2")
    settings = instance(150, vips=(VipSpec(vip6),), unicast_peers=(b_ll,))
    a = make_node(segment, a_ll, settings)
    a.start()
    await a.wait_for(State.MASTER)
    advert = build_advert(instance(200, vips=(VipSpec(vip6),)), 200)
    # Multicast with hop limit 64 (crossed a router): dropped.
    on_group = encode_advert(advert, b_ll, VRRP_MULTICAST_V6)
    segment.inject(on_group, b_ll, VRRP_MULTICAST_V6, ttl=64)
    await asyncio.sleep(0.1)
    assert dict(a.runner.counters.dropped) == {DropReason.bad_ttl: 1}
    assert a.state is State.MASTER
    # The same advert sent to us by the configured peer: accepted.
    to_us = encode_advert(advert, b_ll, a_ll)
    segment.inject(to_us, b_ll, a_ll, ttl=64)
    await asyncio.sleep(0.1)
    assert a.state is State.BACKUP
    assert a.runner.counters.adverts_dropped == 1
    await a.runner.stop()


async def test_ipv6_pair_fails_over_on_the_fake_segment(segment: FakeSegment) -> None:
    vip6 = ip_interface("2001:db8::10/64")
    a_ll, b_ll = IPv6Address("fe80::1"), IPv6Address("fe80::2")
    a = make_node(segment, a_ll, instance(150, vips=(VipSpec(vip6),), advert_interval=0.1))
    b = make_node(segment, b_ll, instance(100, vips=(VipSpec(vip6),), advert_interval=0.1))
    a.start()
    b.start()
    await a.wait_for(State.MASTER)
    await asyncio.sleep(1)
    assert {advert.destination for advert in segment.sent} == {VRRP_MULTICAST_V6}
    await a.crash()
    last = segment.sent_by(a_ll)[-1].at
    at = await b.wait_for(State.MASTER)
    assert last is not None
    # Exact to looptime's clock resolution (1 us): 0.3609375 s is not a whole number of it.
    assert at - last == pytest.approx(master_down_interval(100, 0.1, 3), abs=1e-6)
    assert b.addresses.held("eth0") == (vip6,)
    await asyncio.sleep(0.1)  # the announce burst runs beside the runner
    assert next(a.vips for a in b.announcer.announcements) == (vip6,)
    await b.runner.stop()


async def test_unreadable_ip_header_is_counted_under_its_reason(segment: FakeSegment) -> None:
    a = make_node(segment, A_ADDR, instance(150))
    a.start()
    await asyncio.sleep(0.5)
    broken = MalformedAdvert(DropReason.bad_length, "IHL 8 octets, total length 4")
    stranger = IPv4Address("198.51.100.66")
    a.link.deliver(ReceivedAdvert(b"", stranger, VRRP_MULTICAST_V4, 0, header_error=broken))
    await asyncio.sleep(0.1)
    assert dict(a.runner.counters.dropped) == {DropReason.bad_length: 1}
    await a.runner.stop()


async def test_reload_reconfigures_in_place_keeping_state_and_vips(segment: FakeSegment) -> None:
    master = make_node(segment, A_ADDR, instance(150))
    backup = make_node(segment, B_ADDR, instance(100))
    master.start()
    backup.start()
    await master.wait_for(State.MASTER)
    await backup.wait_for(State.BACKUP)
    transitions = len(master.transitions)
    # A reload that lowers the master's priority below its peer's: the peer preempts
    # (the new priority is real), but the instance was not restarted to get there.
    await master.runner.reconfigure(instance(90))
    assert master.runner.machine.effective_priority == 90
    await backup.wait_for(State.MASTER)
    await master.wait_for(State.BACKUP)
    assert len(master.transitions) == transitions + 1
    assert master.transitions[-1][1].reason is TransitionReason.higher_priority_advert
    # A new vrid cannot be applied in place: the caller replaces the instance.
    with pytest.raises(VrrpUsageError):
        await master.runner.reconfigure(instance(90, vrid=52))



async def test_operator_failover_hands_over_in_skew_time_and_holds_until_released(
    segment: FakeSegment,
) -> None:
    a = make_node(segment, A_ADDR, instance(150))
    b = make_node(segment, B_ADDR, instance(100))
    a.start()
    b.start()
    await a.wait_for(State.MASTER)
    await asyncio.sleep(2.3)
    asked_at = now()
    await a.runner.hold_for_operator("operator failover by uid 0")
    assert a.state is State.BACKUP and a.addresses.held() == ()
    assert a.transitions[-1][1] == Transition(
        State.MASTER, State.BACKUP, TransitionReason.operator_failover,
        "operator failover by uid 0")
    last = segment.sent_by(A_ADDR)[-1]
    assert decode_advert(last.payload, A_ADDR, last.destination).priority == 0
    at = await b.wait_for(State.MASTER)
    assert at - asked_at == skew_time(100, 1.0, 3)
    # Held: priority 1, so preempt (on, 150 > 100) does not take mastership back.
    await asyncio.sleep(30)
    assert holders(a, b) == [b] and a.runner.machine.effective_priority == 1
    await a.runner.hold_for_operator(None)
    await a.wait_for(State.MASTER)
    assert a.transitions[-1][1].reason is TransitionReason.preempt_lower_priority_master
    await a.runner.stop()
    await b.runner.stop()


async def test_a_held_backup_still_takes_over_when_the_peer_dies(segment: FakeSegment) -> None:
    a = make_node(segment, A_ADDR, instance(150))
    b = make_node(segment, B_ADDR, instance(100))
    a.start()
    b.start()
    await a.wait_for(State.MASTER)
    await a.runner.hold_for_operator("operator failover by uid 0")
    await b.wait_for(State.MASTER)
    await asyncio.sleep(5)
    await b.crash()
    await a.wait_for(State.MASTER)
    assert a.transitions[-1][1].reason is TransitionReason.master_down_timer
    await a.runner.stop()
