"""A hostile segment and parts that fail: floods, spoofed and misaddressed adverts,
transient send errors, a lost netlink monitor, a dying VRRP thread, a broken log
sink. Each test fails on the code before the fix (see the docstrings)."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import IPv4Address, IPv4Network
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs
from test_runner import A_ADDR, B_ADDR, VIP, instance, make_node, now

from vrrp.errors import DropReason
from vrrp.fake import FakeLinkMonitor, FakePorts, FakeSegment, FakeVipAddresses
from vrrp.machine import AdvertDropped, State, VrrpMachine, build_advert
from vrrp.packet import VRRP_MULTICAST_V4, encode_advert
from vrrp.ports import ReceivedAdvert
from vrrp.retry import SendFailures
from vrrp.runner import _PENDING_LIMIT, _RECEIVE_BUDGET
from vrrp.service import VrrpService
from vrrp.settings import TrackInterface
from vrrp.track import InstanceTracker
from vrrp.track_verdict import TrackVerdict

pytestmark = pytest.mark.looptime

SUBNET = IPv4Network("198.51.100.0/24")
FOREIGN = IPv4Address("159.112.6.161")


@pytest.fixture
def segment() -> FakeSegment:
    return FakeSegment(clock=now)


def winning(source: IPv4Address, destination: IPv4Address, priority: int = 254) -> bytes:
    """A valid advert (checksum included) that would win any election."""
    return encode_advert(build_advert(instance(priority), priority), source, destination)


# --- flood: adverts before garbage -----------------------------------------------------------


async def test_a_flood_in_the_socket_cannot_keep_the_loop_from_other_work(
    segment: FakeSegment,
) -> None:
    """Old code: the receive loop fed every waiting datagram without ever
    suspending, so nothing else (the advert timer) ran until the socket was empty."""
    a = make_node(segment, A_ADDR, instance(150))
    a.start()
    await a.wait_for(State.MASTER)
    stranger = IPv4Address("198.51.100.66")
    for _ in range(2000):
        segment.inject(b"\x31\x33garbage", stranger, VRRP_MULTICAST_V4)
    seen: list[int] = []
    asyncio.get_running_loop().call_soon(lambda: seen.append(a.runner.counters.adverts_received))
    await asyncio.sleep(0.5)
    assert seen and seen[0] <= 2 * _RECEIVE_BUDGET
    assert a.runner.counters.adverts_received == 2000
    assert a.state is State.MASTER
    await a.runner.stop()


async def test_the_timer_reads_a_bounded_number_of_waiting_datagrams_before_the_advert(
    segment: FakeSegment,
) -> None:
    """Old code: pending() drained the whole socket before the timer acted."""
    a = make_node(segment, A_ADDR, instance(150))
    a.start()
    await a.wait_for(State.MASTER)
    read_at_send: list[int] = []
    send = a.link.send

    async def recording_send(payload: bytes, destination: Any) -> None:
        read_at_send.append(a.link.received)
        await send(payload, destination)

    a.link.send = recording_send  # type: ignore[method-assign]
    a.link.stall(True)
    before = a.link.received
    for _ in range(1000):
        segment.inject(b"\x31\x33garbage", IPv4Address("198.51.100.66"), VRRP_MULTICAST_V4)
    await asyncio.sleep(1.5)
    assert read_at_send and read_at_send[0] - before <= _PENDING_LIMIT
    a.link.stall(False)
    await a.runner.stop()


async def test_spoofed_sources_make_one_drop_line_per_reason_and_a_bounded_table(
    segment: FakeSegment,
) -> None:
    """Old code: one line and one never-freed table entry per (source, reason)."""
    a = make_node(segment, A_ADDR, instance(150))
    a.start()
    await a.wait_for(State.MASTER)
    with capture_logs() as logs:
        for index in range(500):
            source = IPv4Address(int(IPv4Address("198.51.100.0")) + 3 + index % 250)
            segment.inject(b"\x31\x33", source, VRRP_MULTICAST_V4)
            segment.inject(winning(source, VRRP_MULTICAST_V4), source, VRRP_MULTICAST_V4, ttl=1)
        await asyncio.sleep(0.1)
    lines = [entry for entry in logs if entry["event"] == "vrrp.advert.dropped"]
    assert sorted(line["reason"] for line in lines) == ["bad_ttl", "truncated"]
    assert len(a.runner._drop_logged) <= len(DropReason)
    assert a.runner.counters.dropped[DropReason.bad_ttl] == 500
    assert a.runner.counters.dropped[DropReason.truncated] == 500
    await a.runner.stop()


# --- adverts must fit the instance's mode and come from the link ------------------------------


def test_machine_drops_a_multicast_instances_advert_sent_to_a_unicast_address() -> None:
    machine = VrrpMachine(instance(150), primary_address=A_ADDR, connected=[SUBNET])
    machine.start(0.0)
    machine.on_timer(10.0)
    assert machine.state is State.MASTER
    advert = build_advert(instance(254), 254)
    (dropped,) = machine.on_advert(advert, B_ADDR, 10.5, destination=VIP.ip)
    assert isinstance(dropped, AdvertDropped)
    assert dropped.reason is DropReason.wrong_destination
    (dropped,) = machine.on_advert(advert, FOREIGN, 10.6, destination=VRRP_MULTICAST_V4)
    assert isinstance(dropped, AdvertDropped)
    assert dropped.reason is DropReason.foreign_source
    assert machine.state is State.MASTER
    # The same advert to the group from the subnet wins.
    machine.on_advert(advert, B_ADDR, 10.7, destination=VRRP_MULTICAST_V4)
    assert machine.state is State.BACKUP


def test_machine_accepts_a_foreign_source_when_configured() -> None:
    settings = instance(150, accept_foreign_source=True)
    machine = VrrpMachine(settings, primary_address=A_ADDR, connected=[SUBNET])
    machine.start(0.0)
    machine.on_timer(10.0)
    machine.on_advert(build_advert(instance(254), 254), FOREIGN, 10.5,
                      destination=VRRP_MULTICAST_V4)
    assert machine.state is State.BACKUP


def test_unicast_instance_takes_only_adverts_to_its_own_address() -> None:
    settings = instance(150, unicast_peers=(B_ADDR,))
    machine = VrrpMachine(settings, primary_address=A_ADDR, connected=[SUBNET])
    machine.start(0.0)
    machine.on_timer(10.0)
    advert = build_advert(instance(254, unicast_peers=(A_ADDR,)), 254)
    for destination in (VRRP_MULTICAST_V4, VIP.ip):
        (dropped,) = machine.on_advert(advert, B_ADDR, 10.5, destination=destination)
        assert isinstance(dropped, AdvertDropped)
        assert dropped.reason is DropReason.wrong_destination
    assert machine.state is State.MASTER
    machine.on_advert(advert, B_ADDR, 10.6, destination=A_ADDR)
    assert machine.state is State.BACKUP


async def test_a_winning_advert_sent_to_the_vip_does_not_move_the_master(
    segment: FakeSegment,
) -> None:
    """Old code: the runner never gave the destination to the machine, and the
    priority-254 advert to the VIP took mastership away."""
    a = make_node(segment, A_ADDR, instance(150))
    a.start()
    await a.wait_for(State.MASTER)
    a.link.deliver(ReceivedAdvert(winning(B_ADDR, VIP.ip), B_ADDR, VIP.ip, 255))
    await asyncio.sleep(0.1)
    assert a.state is State.MASTER
    assert dict(a.runner.counters.dropped) == {DropReason.wrong_destination: 1}
    await a.runner.stop()


async def test_a_spoofed_off_link_source_does_not_move_the_master(segment: FakeSegment) -> None:
    a = make_node(segment, A_ADDR, instance(150), connected=(SUBNET,))
    a.start()
    await a.wait_for(State.MASTER)
    segment.inject(winning(FOREIGN, VRRP_MULTICAST_V4), FOREIGN, VRRP_MULTICAST_V4)
    await asyncio.sleep(0.1)
    assert a.state is State.MASTER
    assert dict(a.runner.counters.dropped) == {DropReason.foreign_source: 1}
    await a.runner.stop()


# --- transient send failures --------------------------------------------------------------------


def test_send_failures_policy_with_literal_time() -> None:
    failures = SendFailures(grace=2.0)
    assert failures.failed(errno.ENOBUFS, 10.0) is False
    assert failures.failed(errno.EAGAIN, 11.0) is False
    assert failures.failed(errno.ENOBUFS, 11.999) is False
    assert failures.failed(errno.ENOBUFS, 12.0) is True
    failures.sent()
    assert failures.failed(errno.ENOBUFS, 20.0) is False
    assert failures.consecutive == 1
    # Not transient: a fault at once.
    assert SendFailures(grace=2.0).failed(errno.ENETDOWN, 0.0) is True
    assert SendFailures.retry_at_once(errno.ENOBUFS)
    assert not SendFailures.retry_at_once(errno.EPERM)


async def test_one_transient_send_failure_does_not_fault_a_master(segment: FakeSegment) -> None:
    """Old code: one ENOBUFS on an advert put the master in FAULT."""
    a = make_node(segment, A_ADDR, instance(150))
    a.start()
    await a.wait_for(State.MASTER)
    sent = a.runner.counters.adverts_sent
    # The advert and its immediate retry both fail: the next one goes out.
    a.link.fail_sends(errno.ENOBUFS, errno.ENOBUFS)
    with capture_logs() as logs:
        await asyncio.sleep(2.5)
    assert a.state is State.MASTER
    assert a.addresses.held("eth0") == (VIP,)
    assert a.runner.counters.adverts_sent == sent + 1
    assert [e["errno"] for e in logs if e["event"] == "vrrp.advert.send_failed"] == [
        errno.ENOBUFS
    ]
    # A single failure that the immediate retry absorbs is not even missed.
    a.link.fail_sends(errno.EAGAIN)
    await asyncio.sleep(1.0)
    assert a.runner.counters.adverts_sent == sent + 2
    await a.runner.stop()


async def test_persistent_send_failure_faults_before_the_peer_takes_over(
    segment: FakeSegment,
) -> None:
    a = make_node(segment, A_ADDR, instance(150))
    a.start()
    at = await a.wait_for(State.MASTER)
    a.link.fail_sends(*[errno.ENOBUFS] * 20)
    fault_at = await a.wait_for(State.FAULT)
    # Adverts fail at at+1, at+2, at+3: the third is a fault, before a peer's
    # Master_Down_Interval (3 intervals + skew) from the last advert at at+0.
    assert fault_at - at == pytest.approx(3.0)
    await asyncio.sleep(0.1)
    assert a.addresses.held() == ()
    await a.runner.stop()


# --- the rtnetlink link monitor overflows -------------------------------------------------------


class Verdicts:
    def __init__(self) -> None:
        self.seen: list[TrackVerdict] = []
        self.changed = asyncio.Event()

    async def apply_tracking(self, verdict: TrackVerdict) -> None:
        self.seen.append(verdict)
        self.changed.set()


async def test_link_monitor_overflow_resynchronises_instead_of_going_down() -> None:
    """Old code: ENOBUFS on the monitor marked every tracked interface down for good."""
    monitor = FakeLinkMonitor({"eth1": True, "eth2": True})
    settings = instance(
        150, track_interfaces=(TrackInterface("eth1", 0), TrackInterface("eth2", -20))
    )
    target = Verdicts()
    tracker = InstanceTracker(settings, target, monitor=monitor)
    task = asyncio.create_task(tracker.run())
    await asyncio.sleep(0.1)
    assert target.seen[-1] == TrackVerdict(150, False, target.seen[-1].reason)
    with capture_logs() as logs:
        monitor.overflow()
        await asyncio.sleep(0.1)
        assert not target.seen[-1].fault and target.seen[-1].priority == 150
        # A change lost in the overflow is found by the resync's dump...
        monitor.overflow({"eth2": False})
        await asyncio.sleep(0.1)
        assert target.seen[-1].priority == 130 and not target.seen[-1].fault
        # ...and events keep flowing on the new subscription.
        monitor.set_link("eth2", True)
        await asyncio.sleep(0.1)
        assert target.seen[-1].priority == 150
    assert [e["event"] for e in logs].count("vrrp.track.monitor.resync") == 2
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_link_monitor_that_cannot_resubscribe_fails_safe_then_recovers() -> None:
    monitor = FakeLinkMonitor({"eth1": True})
    settings = instance(150, track_interfaces=(TrackInterface("eth1", 0),))
    target = Verdicts()
    tracker = InstanceTracker(settings, target, monitor=monitor)
    task = asyncio.create_task(tracker.run())
    await asyncio.sleep(0.1)
    monitor.subscribe_failures.extend([errno.ENOBUFS, errno.ENOBUFS])
    monitor.overflow()
    await asyncio.sleep(0.5)
    assert target.seen[-1].fault
    await asyncio.sleep(2 * tracker.resync_retry)
    assert not target.seen[-1].fault
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# --- a VRRP thread that dies --------------------------------------------------------------------


@pytest.mark.looptime(False)
async def test_a_dying_vrrp_thread_is_reported_to_its_owner() -> None:
    """Old code: the thread logged and ended; nobody was told, VIPs stayed up."""
    segment = FakeSegment()
    addresses = FakeVipAddresses(["eth0"])
    ports = FakePorts(segment, A_ADDR, addresses=addresses)
    failures: list[BaseException] = []
    died = asyncio.Event()

    def on_failure(exc: BaseException) -> None:
        failures.append(exc)
        died.set()

    service = VrrpService(
        [instance(150, advert_interval=0.05, garp_repeat=1)],
        ports=lambda: ports,
        on_failure=on_failure,
        realtime_priority=None,
    )
    await service.start_async()
    try:
        async with asyncio.timeout(10):
            while addresses.held("eth0") != (VIP,):
                await asyncio.sleep(0.05)
        # A datagram the receive path cannot handle: a bug in the VRRP thread.
        link = ports.links["VI_WEB"]
        loop = service._loop
        assert loop is not None
        bad = ReceivedAdvert(None, B_ADDR, VRRP_MULTICAST_V4, 255)  # type: ignore[arg-type]
        loop.call_soon_threadsafe(link.deliver, bad)
        async with asyncio.timeout(10):
            await died.wait()
        assert service.failure is failures[0]
        async with asyncio.timeout(10):
            while service.running:
                await asyncio.sleep(0.05)
    finally:
        await service.stop_async()


async def test_service_stopped_normally_reports_no_failure(segment: FakeSegment) -> None:
    assert VrrpService([instance(150)]).failure is None


# --- a log sink that fails ------------------------------------------------------------------------


@contextmanager
def broken_log_sink() -> Iterator[None]:
    def broken(_logger: object, _method: str, _event: object) -> object:
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    old = structlog.get_config()
    structlog.configure(processors=[broken])
    try:
        yield
    finally:
        structlog.configure(**old)


async def test_a_failing_log_write_cannot_abort_a_takeover(segment: FakeSegment) -> None:
    """Old code: the transition's log line raised, the VIPs were never added and
    no timer was armed: MASTER with no VIPs and no adverts."""
    a = make_node(segment, A_ADDR, instance(150))
    with broken_log_sink():
        a.start()
        await a.wait_for(State.MASTER)
        await asyncio.sleep(2.5)
        assert a.addresses.held("eth0") == (VIP,)
        assert len(segment.sent_by(A_ADDR)) >= 3
        assert a.runner.machine.next_deadline() is not None
        await a.runner.stop()
    assert a.addresses.held() == ()
