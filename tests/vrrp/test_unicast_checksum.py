"""keepalived's VRRPv3 unicast checksum compatibility (``old_unicast_checksum``).

keepalived before 1.3.7 put the multicast group 224.0.0.18 in the VRRPv3 IPv4
pseudo-header even when it sent unicast. keepalived built with
``_WITH_UNICAST_CHKSUM_COMPAT_`` accepts such adverts from a unicast peer and
then sends that form itself (AUTO), or does so from the start (``old_unicast_checksum``),
or never (``old_unicast_checksum never``). The adverts here are literal bytes;
the old checksum is also what :func:`encode_advert` gives with 224.0.0.18 as
destination, and the RFC one what it gives with the peer's address.
"""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Address, IPv6Address, ip_interface

import pytest
from structlog.testing import capture_logs

from vrrp.errors import DropReason, MalformedAdvert, VrrpUsageError
from vrrp.fake import FakeSegment, FakeVipAddresses, RecordingAnnouncer
from vrrp.machine import (
    AdvertDropped,
    OldUnicastChecksum,
    State,
    TransitionReason,
    VrrpMachine,
)
from vrrp.packet import VRRP_MULTICAST_V4, Advertisement, decode_advert, encode_advert
from vrrp.runner import InstanceRunner
from vrrp.settings import InstanceSettings, UnicastChecksum, VipSpec

VIP = ip_interface("198.51.100.10/24")
A_ADDR = IPv4Address("198.51.100.1")
B_ADDR = IPv4Address("198.51.100.2")
STRANGER = IPv4Address("198.51.100.66")

# B (198.51.100.2) -> A (198.51.100.1), VRRPv3, vrid 51, interval 1 s (100 cs), one
# address 198.51.100.10. Checksum 0xd163 covers 224.0.0.18 (keepalived < 1.3.7),
# 0x8741 covers 198.51.100.1 (RFC 5798 §5.2.8). Only the priority and checksum differ.
OLD_PRIO_200 = bytes.fromhex("31 33 c8 01 00 64 d1 63 c6 33 64 0a")
NEW_PRIO_200 = bytes.fromhex("31 33 c8 01 00 64 87 41 c6 33 64 0a")
OLD_PRIO_100 = bytes.fromhex("31 33 64 01 00 64 35 64 c6 33 64 0a")
# Neither form: the checksum field is just wrong.
CORRUPT_PRIO_200 = bytes.fromhex("31 33 c8 01 00 64 12 34 c6 33 64 0a")


def advert(priority: int) -> Advertisement:
    return Advertisement(3, 51, priority, 1.0, (VIP.ip,))


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
        "unicast_peers": (B_ADDR,),
    }
    values.update(overrides)
    return InstanceSettings(**values)  # type: ignore[arg-type]


# --- the literal bytes ----------------------------------------------------------------------


def test_literal_adverts_are_the_two_checksum_forms() -> None:
    assert encode_advert(advert(200), B_ADDR, VRRP_MULTICAST_V4) == OLD_PRIO_200
    assert encode_advert(advert(200), B_ADDR, A_ADDR) == NEW_PRIO_200
    assert encode_advert(advert(100), B_ADDR, VRRP_MULTICAST_V4) == OLD_PRIO_100
    # The codec alone knows one form per call: the old one is a bad checksum to A...
    with pytest.raises(MalformedAdvert) as caught:
        decode_advert(OLD_PRIO_200, B_ADDR, A_ADDR)
    assert caught.value.reason is DropReason.bad_checksum
    # ...and passes with 224.0.0.18 in the pseudo-header.
    assert decode_advert(OLD_PRIO_200, B_ADDR, VRRP_MULTICAST_V4) == advert(200)
    for destination in (A_ADDR, VRRP_MULTICAST_V4):
        with pytest.raises(MalformedAdvert):
            decode_advert(CORRUPT_PRIO_200, B_ADDR, destination)


# --- settings ---------------------------------------------------------------------------------


def test_default_is_auto() -> None:
    assert instance(100).unicast_checksum is UnicastChecksum.auto
    # auto is valid everywhere: it only acts where the forms differ.
    assert instance(100, unicast_peers=()).unicast_checksum is UnicastChecksum.auto
    assert instance(100, version=2).unicast_checksum is UnicastChecksum.auto


@pytest.mark.parametrize("mode", [UnicastChecksum.old, UnicastChecksum.never])
@pytest.mark.parametrize(
    "overrides",
    [
        {"unicast_peers": ()},
        {"version": 2},
        {
            "vips": (VipSpec(ip_interface("2001:db8::10/64")),),
            "unicast_peers": (IPv6Address("fe80::2"),),
        },
    ],
    ids=["multicast", "vrrpv2", "ipv6"],
)
def test_old_and_never_need_vrrpv3_ipv4_unicast(
    mode: UnicastChecksum, overrides: dict[str, object]
) -> None:
    with pytest.raises(ValueError, match=r"unicast_checksum: .* VRRPv3 IPv4 instances"):
        instance(100, unicast_checksum=mode, **overrides)


def test_unicast_checksum_must_be_the_enum() -> None:
    with pytest.raises(ValueError, match="unicast_checksum"):
        instance(100, unicast_checksum="old")


# --- the machine ------------------------------------------------------------------------------


def machine(mode: UnicastChecksum = UnicastChecksum.auto, **overrides: object) -> VrrpMachine:
    m = VrrpMachine(instance(150, unicast_checksum=mode, **overrides), primary_address=A_ADDR)
    m.start(0.0)
    return m


def test_machine_auto_switches_on_an_accepted_old_form_advert() -> None:
    m = machine()
    assert not m.old_unicast_checksum
    assert m.checksum_destination(B_ADDR) == B_ADDR
    assert m.old_checksum_may_pass(B_ADDR, A_ADDR)
    actions = m.on_advert(advert(200), B_ADDR, 1.0, old_checksum=True)
    assert actions[0] == OldUnicastChecksum(B_ADDR)
    assert m.old_unicast_checksum
    assert m.checksum_destination(B_ADDR) == VRRP_MULTICAST_V4
    # Switched for good: no second retry, no second report.
    assert not m.old_checksum_may_pass(B_ADDR, A_ADDR)
    assert not any(isinstance(a, OldUnicastChecksum) for a in m.on_advert(advert(200), B_ADDR, 2.0))
    with pytest.raises(VrrpUsageError):
        m.on_advert(advert(200), B_ADDR, 3.0, old_checksum=True)


def test_machine_retry_conditions() -> None:
    auto = machine()
    # Adverts to the group never differ in form; strangers are never retried.
    assert not auto.old_checksum_may_pass(B_ADDR, VRRP_MULTICAST_V4)
    assert not auto.old_checksum_may_pass(STRANGER, A_ADDR)
    assert not machine(UnicastChecksum.never).old_checksum_may_pass(B_ADDR, A_ADDR)
    old = machine(UnicastChecksum.old)
    assert old.old_unicast_checksum
    assert not old.old_checksum_may_pass(B_ADDR, A_ADDR)
    multicast = machine(unicast_peers=())
    assert not multicast.old_checksum_may_pass(B_ADDR, A_ADDR)
    assert multicast.checksum_destination(A_ADDR) == A_ADDR
    with pytest.raises(VrrpUsageError):
        machine(UnicastChecksum.never).on_advert(advert(200), B_ADDR, 1.0, old_checksum=True)


def test_machine_does_not_switch_for_an_advert_it_drops() -> None:
    m = machine()
    other_vrid = Advertisement(3, 52, 200, 1.0, (VIP.ip,))
    actions = m.on_advert(other_vrid, B_ADDR, 1.0, old_checksum=True)
    assert len(actions) == 1 and isinstance(actions[0], AdvertDropped)
    assert actions[0].reason is DropReason.wrong_vrid
    assert not m.old_unicast_checksum


def test_machine_reconfigure_keeps_detection_unless_the_setting_changes() -> None:
    m = machine()
    m.on_advert(advert(100), B_ADDR, 1.0, old_checksum=True)
    m.reconfigure(instance(140), 2.0)
    assert m.old_unicast_checksum
    m.reconfigure(instance(140, unicast_checksum=UnicastChecksum.never), 3.0)
    assert not m.old_unicast_checksum
    m.reconfigure(instance(140, unicast_checksum=UnicastChecksum.old), 4.0)
    assert m.old_unicast_checksum
    m.reconfigure(instance(140), 5.0)
    assert not m.old_unicast_checksum


def test_machine_old_mode_checksums_with_the_group() -> None:
    m = machine(UnicastChecksum.old)
    assert m.checksum_destination(B_ADDR) == VRRP_MULTICAST_V4
    assert m.checksum_destination(VRRP_MULTICAST_V4) == VRRP_MULTICAST_V4


# --- the runner on a fake segment ---------------------------------------------------------------


def now() -> float:
    return asyncio.get_running_loop().time()


def start_a(segment: FakeSegment, settings: InstanceSettings) -> InstanceRunner:
    runner = InstanceRunner(
        settings,
        link=segment.attach(A_ADDR),
        addresses=FakeVipAddresses(["eth0"]),
        announcer=RecordingAnnouncer(clock=now),
    )
    asyncio.get_running_loop().create_task(runner.run())
    return runner


def sent_by_a_since(segment: FakeSegment, since: float) -> list[bytes]:
    return [s.payload for s in segment.sent_by(A_ADDR) if s.at is not None and s.at >= since]


def is_old_form(payload: bytes) -> bool:
    """True for the old form to B, False for the RFC form; anything else fails the test."""
    try:
        decode_advert(payload, A_ADDR, B_ADDR)
    except MalformedAdvert as exc:
        assert exc.reason is DropReason.bad_checksum
        decode_advert(payload, A_ADDR, VRRP_MULTICAST_V4)
        return True
    return False


async def until_master(runner: InstanceRunner) -> None:
    async with asyncio.timeout(10):
        while runner.state is not State.MASTER:
            await asyncio.sleep(0.05)


@pytest.fixture
def segment() -> FakeSegment:
    return FakeSegment(clock=now)


@pytest.mark.looptime
async def test_auto_accepts_old_form_from_a_peer_then_sends_it(segment: FakeSegment) -> None:
    a = start_a(segment, instance(150))
    await until_master(a)
    await asyncio.sleep(1.5)
    before = sent_by_a_since(segment, 0.0)
    assert before and not any(is_old_form(p) for p in before)
    with capture_logs() as logs:
        # An old keepalived peer with priority 100: accepted; A stays master and
        # answers a lower priority at once (keepalived), already in the old form.
        switched_at = now()
        segment.inject(OLD_PRIO_100, B_ADDR, A_ADDR)
        await asyncio.sleep(2.5)
        segment.inject(OLD_PRIO_100, B_ADDR, A_ADDR)
        await asyncio.sleep(0.1)
    after = sent_by_a_since(segment, switched_at)
    assert len(after) >= 3 and all(is_old_form(p) for p in after)
    assert a.counters.adverts_dropped == 0
    assert a.machine.old_unicast_checksum
    compat = [entry for entry in logs if entry["event"] == "vrrp.checksum.compat"]
    assert len(compat) == 1
    assert compat[0]["instance"] == "VI_WEB" and compat[0]["peer"] == str(B_ADDR)
    assert compat[0]["vrid"] == 51 and compat[0]["checksum"] == "old"
    # From now on the old form is what A expects: the higher priority peer wins.
    segment.inject(OLD_PRIO_200, B_ADDR, A_ADDR)
    await asyncio.sleep(0.1)
    assert a.state is State.BACKUP
    await a.stop()


@pytest.mark.looptime
async def test_auto_takes_the_old_form_in_backup_too(segment: FakeSegment) -> None:
    a = start_a(segment, instance(150))
    await until_master(a)
    segment.inject(OLD_PRIO_200, B_ADDR, A_ADDR)
    await asyncio.sleep(0.1)
    assert a.state is State.BACKUP
    assert a.machine.last_transition is not None
    assert a.machine.last_transition.reason is TransitionReason.higher_priority_advert
    assert a.machine.old_unicast_checksum
    await a.stop()


@pytest.mark.looptime
async def test_never_drops_the_old_form_as_bad_checksum(segment: FakeSegment) -> None:
    a = start_a(segment, instance(150, unicast_checksum=UnicastChecksum.never))
    await until_master(a)
    with capture_logs() as logs:
        segment.inject(OLD_PRIO_200, B_ADDR, A_ADDR)
        await asyncio.sleep(1.5)
    assert dict(a.counters.dropped) == {DropReason.bad_checksum: 1}
    assert a.state is State.MASTER
    assert not a.machine.old_unicast_checksum
    assert not any(entry["event"] == "vrrp.checksum.compat" for entry in logs)
    assert not any(is_old_form(s.payload) for s in segment.sent_by(A_ADDR))
    await a.stop()


@pytest.mark.looptime
async def test_old_sends_old_form_from_the_start_and_expects_it(segment: FakeSegment) -> None:
    a = start_a(segment, instance(150, unicast_checksum=UnicastChecksum.old))
    await until_master(a)
    await asyncio.sleep(1.5)
    sent = [s.payload for s in segment.sent_by(A_ADDR)]
    assert sent and all(is_old_form(p) for p in sent)
    # keepalived CONFIG: the RFC form is not what it expects.
    segment.inject(NEW_PRIO_200, B_ADDR, A_ADDR)
    await asyncio.sleep(0.1)
    assert dict(a.counters.dropped) == {DropReason.bad_checksum: 1}
    with capture_logs() as logs:
        segment.inject(OLD_PRIO_200, B_ADDR, A_ADDR)
        await asyncio.sleep(0.1)
    assert a.state is State.BACKUP
    # Configured, not detected: nothing to report.
    assert not any(entry["event"] == "vrrp.checksum.compat" for entry in logs)
    await a.stop()


@pytest.mark.looptime
async def test_multicast_instance_never_retries(segment: FakeSegment) -> None:
    a = start_a(segment, instance(150, unicast_peers=()))
    await until_master(a)
    segment.inject(OLD_PRIO_200, B_ADDR, A_ADDR)
    await asyncio.sleep(0.1)
    assert dict(a.counters.dropped) == {DropReason.bad_checksum: 1}
    assert a.state is State.MASTER
    assert not a.machine.old_unicast_checksum
    await a.stop()


@pytest.mark.looptime
async def test_stranger_and_corrupt_checksums_are_still_bad_checksum(
    segment: FakeSegment,
) -> None:
    a = start_a(segment, instance(150))
    await until_master(a)
    # A stranger's old-form advert is not retried: a bad checksum, as before.
    stranger_old = encode_advert(advert(200), STRANGER, VRRP_MULTICAST_V4)
    segment.inject(stranger_old, STRANGER, A_ADDR)
    # The peer's advert whose checksum is neither form.
    segment.inject(CORRUPT_PRIO_200, B_ADDR, A_ADDR)
    await asyncio.sleep(0.1)
    assert dict(a.counters.dropped) == {DropReason.bad_checksum: 2}
    assert a.state is State.MASTER
    assert not a.machine.old_unicast_checksum
    # After switching, a corrupt checksum is still dropped and counted once.
    segment.inject(OLD_PRIO_100, B_ADDR, A_ADDR)
    segment.inject(CORRUPT_PRIO_200, B_ADDR, A_ADDR)
    await asyncio.sleep(0.1)
    assert a.machine.old_unicast_checksum
    assert dict(a.counters.dropped) == {DropReason.bad_checksum: 3}
    assert a.state is State.MASTER
    await a.stop()


# --- the receive filter in the machine (TTL rule, checksum form) ----------------------------


def test_receive_filter_retries_the_old_form_only_for_a_peer_and_changes_no_state() -> None:
    machine = VrrpMachine(instance(100), primary_address=A_ADDR)
    assert machine.decode_received(NEW_PRIO_200, B_ADDR, A_ADDR, 255) == (advert(200), False)
    assert machine.decode_received(OLD_PRIO_200, B_ADDR, A_ADDR, 255) == (advert(200), True)
    assert not machine.old_unicast_checksum  # deciding is not switching: on_advert switches
    with pytest.raises(MalformedAdvert, match="checksum") as caught:
        machine.decode_received(CORRUPT_PRIO_200, B_ADDR, A_ADDR, 255)
    assert caught.value.reason is DropReason.bad_checksum
    stranger = encode_advert(advert(200), STRANGER, VRRP_MULTICAST_V4)
    with pytest.raises(MalformedAdvert, match="checksum"):
        machine.decode_received(stranger, STRANGER, A_ADDR, 255)


@pytest.mark.parametrize(
    ("source", "destination", "ttl_checked"),
    [
        (B_ADDR, A_ADDR, False),  # unicast from a configured peer: may be routed
        (STRANGER, A_ADDR, True),  # unicast from a stranger: the rule holds
        (B_ADDR, VRRP_MULTICAST_V4, True),  # to the group: the rule holds
    ],
)
def test_receive_filter_waives_the_ttl_rule_only_for_unicast_from_a_peer(
    source: IPv4Address, destination: IPv4Address, ttl_checked: bool
) -> None:
    machine = VrrpMachine(instance(100), primary_address=A_ADDR)
    assert machine.ttl_rule_applies(source, destination) is ttl_checked
    payload = encode_advert(advert(200), source, destination)
    if ttl_checked:
        with pytest.raises(MalformedAdvert, match="ttl 64, must be 255"):
            machine.decode_received(payload, source, destination, 64)
    else:
        assert machine.decode_received(payload, source, destination, 64) == (advert(200), False)
