"""The VRRP election machine: single machines driven by hand, and pairs on a fake segment.

Times are literals. At 1 s VRRPv3 adverts the RFC 5798 §6.1 numbers are
multiples of 1/256, exact in floating point:
Master_Down_Interval(150) = 3 + 106/256 = 3.4140625, (100) = 3.609375,
(90) = 3.6484375; Skew_Time(100) = 0.609375.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pair import Node, Segment, make_node, make_settings
from pyroute2 import netns
from support import wait_for

from vrrp.errors import DropReason, VrrpUsageError
from vrrp.machine import (
    TRANSITIONS,
    AdvertDropped,
    AdvertMismatch,
    Announce,
    InstallVips,
    PriorityChanged,
    RemoveVips,
    SendAdvert,
    State,
    Transition,
    TransitionReason,
    VrrpMachine,
    build_advert,
)
from vrrp.packet import (
    VRRP_MULTICAST_V4,
    Advertisement,
    check_ttl,
    decode_advert,
    encode_advert,
    parse_ipv4_packet,
)
from vrrp.settings import InstanceSettings, NotifySettings, TrackInterface, TrackScript, VipSpec

A = "192.0.2.1"
B = "192.0.2.2"
C = IPv4Address("192.0.2.3")
VIP = IPv4Address("198.51.100.10")
R = TransitionReason


def advert(priority: int, *, version: int = 3, interval: float = 1.0, vrid: int = 51,
           addresses: tuple[IPv4Address | IPv6Address, ...] = (VIP,), auth_type: int = 0,
           auth_data: bytes = b"") -> Advertisement:
    return Advertisement(version, vrid, priority, interval, addresses, auth_type, auth_data)


def started(node: Node, now: float = 0.0) -> Node:
    node.machine.start(now)
    return node


def transitions(actions: tuple[object, ...]) -> list[Transition]:
    return [a for a in actions if isinstance(a, Transition)]


# --- one machine, driven by hand ------------------------------------------------------------


def test_backup_start_then_master_down_timer() -> None:
    machine = make_node("b", B).machine
    assert machine.start(0.0) == (
        Transition(State.INIT, State.BACKUP, R.startup_backup, "priority=100"),
        RemoveVips(),  # a crashed earlier run may have left them
    )
    assert machine.next_deadline() == 3.609375
    assert machine.on_timer(3.6) == ()
    assert machine.state is State.BACKUP
    actions = machine.on_timer(3.609375)
    assert [type(a) for a in actions] == [Transition, SendAdvert, InstallVips, Announce]
    transition = actions[0]
    assert isinstance(transition, Transition)
    assert (transition.old, transition.new, transition.reason) == (
        State.BACKUP,
        State.MASTER,
        R.master_down_timer,
    )
    assert actions[1] == SendAdvert(100)
    assert machine.state.value == "MASTER"
    assert machine.master_source == IPv4Address(B)
    assert machine.next_deadline() == 4.609375
    assert machine.last_transition == transition


def test_repr_reads_like_a_status_line() -> None:
    machine = make_node("b", B).machine
    assert repr(machine) == "<VrrpMachine VI_1 vrid=51 state=INIT priority=100 master=->"
    machine.start(0.0)
    machine.on_advert(advert(150), C, 1.0)
    machine.set_fault(True, "eth1 down", 2.0)
    assert repr(machine) == "<VrrpMachine VI_1 vrid=51 state=FAULT priority=100 master=- fault>"
    machine.set_fault(False, "eth1 up", 3.0)
    machine.on_advert(advert(150), C, 4.0)
    assert repr(machine) == (
        "<VrrpMachine VI_1 vrid=51 state=BACKUP priority=100 master=192.0.2.3/150>"
    )


def test_priority_owner_is_master_at_once() -> None:
    machine = make_node("a", A, priority=255).machine
    actions = machine.start(7.0)
    assert actions == (
        Transition(State.INIT, State.MASTER, R.startup_priority_owner, "priority=255"),
        SendAdvert(255),
        InstallVips(),
        Announce(),
    )
    assert machine.next_deadline() == 8.0
    assert machine.on_timer(8.0) == (SendAdvert(255),)
    assert machine.next_deadline() == 9.0


def test_master_adverts_do_not_drift_and_recover_from_a_stall() -> None:
    machine = make_node("a", A, priority=255).machine
    machine.start(0.0)
    assert machine.on_timer(1.25) == (SendAdvert(255),)
    assert machine.next_deadline() == 2.0  # from the deadline, not from the late call
    assert machine.on_timer(10.5) == (SendAdvert(255),)  # one advert, not eight
    assert machine.next_deadline() == 11.5


def test_garp_refresh_while_master() -> None:
    machine = make_node("a", A, priority=255, garp_master_refresh=5.0).machine
    announced = [0.0 for a in machine.start(0.0) if isinstance(a, Announce)]
    adverts = 0
    while (deadline := machine.next_deadline()) is not None and deadline <= 12.0:
        for action in machine.on_timer(deadline):
            if isinstance(action, Announce):
                announced.append(deadline)
            elif isinstance(action, SendAdvert):
                adverts += 1
    assert announced == [0.0, 5.0, 10.0]
    assert adverts == 12


def test_second_announce_burst_after_garp_master_delay() -> None:
    machine = make_node("b", B, garp_master_delay=5.0, garp_master_refresh=5.0).machine
    machine.start(0.0)
    assert machine.on_timer(3.609375)[-1] == Announce()
    assert machine.next_deadline() == 4.609375
    announced = []
    while (deadline := machine.next_deadline()) is not None and deadline <= 20.0:
        if Announce() in machine.on_timer(deadline):
            announced.append(deadline)
    # delay and refresh fall due together at 8.609375: one burst, not two
    assert announced == [8.609375, 13.609375, 18.609375]
    machine.on_advert(advert(200), C, 20.5)
    assert machine.state is State.BACKUP
    assert machine.next_deadline() == 20.5 + 3.609375  # no MASTER timer survives


def test_no_second_burst_without_garp_master_delay() -> None:
    machine = make_node("b", B, garp_master_delay=0.0).machine
    machine.start(0.0)
    machine.on_timer(3.609375)
    actions = [a for t in (4.609375, 5.609375, 6.609375, 7.609375, 8.609375, 9.609375)
               for a in machine.on_timer(t)]
    assert actions == [SendAdvert(100)] * 6


def test_start_twice_is_our_bug() -> None:
    machine = started(make_node("b", B)).machine
    with pytest.raises(VrrpUsageError):
        machine.start(1.0)
    assert machine.state is State.BACKUP


def test_inputs_before_start_do_nothing() -> None:
    machine = make_node("b", B).machine
    assert machine.on_advert(advert(150), IPv4Address(A), 0.0) == ()
    assert machine.on_timer(100.0) == ()
    assert machine.next_deadline() is None
    assert machine.shutdown(0.0) == ()
    assert machine.state is State.INIT


def test_primary_address_family_must_match() -> None:
    with pytest.raises(ValueError, match="primary_address"):
        VrrpMachine(make_settings(), primary_address=IPv6Address("fe80::1"))


# --- receiver checks (RFC 5798 §7.1 / RFC 3768 §7.1) ---------------------------------------


def test_own_packets_are_ignored() -> None:
    machine = started(make_node("b", B)).machine
    (drop,) = machine.on_advert(advert(200), IPv4Address(B), 1.0)
    assert drop == AdvertDropped(
        DropReason.own_packet, IPv4Address(B), "source=192.0.2.2 is our own address"
    )
    assert machine.next_deadline() == 3.609375  # the timer was not reset


def test_own_unicast_source_packets_are_ignored() -> None:
    machine = started(make_node("b", B, unicast_source=IPv4Address("192.0.2.20"))).machine
    (drop,) = machine.on_advert(advert(200), IPv4Address("192.0.2.20"), 1.0)
    assert isinstance(drop, AdvertDropped)
    assert drop.reason is DropReason.own_packet


@pytest.mark.parametrize(
    ("received", "reason"),
    [
        (advert(200, vrid=52), DropReason.wrong_vrid),
        (advert(200, version=2), DropReason.bad_version),
        (advert(200, addresses=(IPv6Address("2001:db8::1"),)), DropReason.family_mismatch),
        (advert(200, interval=0.0), DropReason.interval_mismatch),
    ],
)
def test_drops_leave_state_and_timer_alone(received: Advertisement, reason: DropReason) -> None:
    machine = started(make_node("b", B)).machine
    (drop,) = machine.on_advert(received, C, 1.0)
    assert isinstance(drop, AdvertDropped)
    assert (drop.reason, drop.source) == (reason, C)
    assert drop.detail
    assert machine.state is State.BACKUP
    assert machine.next_deadline() == 3.609375
    assert machine.master_source is None


def test_v2_interval_mismatch_is_dropped() -> None:
    # RFC 3768 §7.1: the Adver Interval must be the locally configured one.
    machine = started(make_node("b", B, version=2)).machine
    (drop,) = machine.on_advert(advert(200, version=2, interval=2.0), C, 1.0)
    assert isinstance(drop, AdvertDropped)
    assert drop.reason is DropReason.interval_mismatch
    assert drop.detail == "advert_interval=2 instance_interval=1"
    assert machine.next_deadline() == 3.609375
    assert machine.on_advert(advert(200, version=2, interval=1.0), C, 1.0) == ()
    assert machine.next_deadline() == 1.0 + 3.609375


def test_v2_password_authentication() -> None:
    machine = started(make_node("b", B, version=2, auth_pass="secret")).machine
    for wrong in (
        advert(200, version=2),  # no authentication
        advert(200, version=2, auth_type=1, auth_data=b"guess"),
        advert(200, version=2, auth_type=2, auth_data=b"secret"),  # IP AH: not supported
    ):
        (drop,) = machine.on_advert(wrong, C, 1.0)
        assert isinstance(drop, AdvertDropped)
        assert drop.reason is DropReason.auth_mismatch
    assert machine.on_advert(advert(200, version=2, auth_type=1, auth_data=b"secret"), C, 1.0) == ()
    assert machine.master_source == C
    assert build_advert(machine.settings, 100).auth_data == b"secret"


def test_unicast_accepts_only_configured_peers() -> None:
    machine = started(make_node("b", B, unicast_peers=(IPv4Address(A),))).machine
    (drop,) = machine.on_advert(advert(200), C, 1.0)
    assert isinstance(drop, AdvertDropped)
    assert drop.reason is DropReason.not_a_peer
    assert machine.on_advert(advert(200), IPv4Address(A), 1.0) == ()
    assert machine.master_source == IPv4Address(A)


def test_vip_mismatch_is_accepted_and_reported_once_per_change() -> None:
    machine = started(make_node("b", B)).machine
    other = (IPv4Address("198.51.100.99"),)
    first = machine.on_advert(advert(200, addresses=other), C, 1.0)
    assert len(first) == 1 and isinstance(first[0], AdvertMismatch)
    assert first[0].detail == "addresses=198.51.100.99 instance_vips=198.51.100.10"
    assert machine.master_source == C  # accepted: keepalived logs and carries on
    assert machine.next_deadline() == 1.0 + 3.609375
    assert machine.on_advert(advert(200, addresses=other), C, 2.0) == ()
    assert machine.on_advert(advert(200), C, 3.0) == ()
    again = machine.on_advert(advert(200, addresses=other), C, 4.0)
    assert len(again) == 1 and isinstance(again[0], AdvertMismatch)


def test_adverts_are_ignored_in_fault() -> None:
    node = started(make_node("b", B))
    node.machine.set_fault(True, "eth1 down", 1.0)
    assert node.machine.on_advert(advert(200), C, 2.0) == ()
    assert node.machine.next_deadline() is None
    assert node.machine.master_source is None


# --- master receive rules (RFC 5798 §6.4.3) ---------------------------------------------------


def master_at_zero(**overrides: object) -> VrrpMachine:
    machine = make_node("b", B, **{"priority": 255, **overrides}).machine
    machine.start(0.0)
    return machine


def test_master_answers_a_resigning_router_at_once_and_reannounces() -> None:
    machine = master_at_zero()
    # Only a master resigns: it was master beside us (a sync group member following
    # another after a partition healed), and the neighbours may point at it.
    assert machine.on_advert(advert(0), C, 0.5) == (SendAdvert(255), Announce())
    assert machine.next_deadline() == 1.5  # Adver_Timer reset
    assert machine.state is State.MASTER
    # At most once per advert interval, as for a lower priority.
    assert machine.on_advert(advert(0), C, 0.7) == (SendAdvert(255),)
    strict = master_at_zero(strict=True, priority=254)
    assert strict.on_advert(advert(0), C, 0.5) == ()  # not master yet: 254 waits
    strict.on_timer(strict.next_deadline() or 0.0)
    assert strict.state is State.MASTER
    assert strict.on_advert(advert(0), C, 5.0) == (SendAdvert(254),)


def test_master_answers_a_lower_priority_advert_at_once_and_reannounces() -> None:
    machine = make_node("b", B, priority=150).machine
    machine.start(0.0)
    machine.on_timer(3.4140625)
    # The other side thought it was master (a healed partition): neighbours' caches
    # point at it, so the VIPs are announced again (keepalived garp_lower_prio_repeat).
    assert machine.on_advert(advert(100), C, 4.0) == (SendAdvert(150), Announce())
    assert machine.state is State.MASTER
    # ...at most once per advert interval (1 s here), however many adverts arrive.
    assert machine.on_advert(advert(100), C, 4.5) == (SendAdvert(150),)
    assert machine.on_advert(advert(100), C, 5.0) == (SendAdvert(150), Announce())


@pytest.mark.parametrize("delay", [5.0, None])
def test_a_reannounce_is_repeated_after_garp_master_delay(delay: float | None) -> None:
    # The lower-priority router announced before it heard us, and its last gratuitous
    # ARPs may land after ours: keepalived's garp_lower_prio_delay sends a second burst.
    machine = make_node("b", B, priority=150, garp_master_delay=delay).machine
    machine.start(0.0)
    machine.on_timer(3.4140625)  # master; its own second burst (if any) at 8.4140625
    machine.on_timer(8.4140625)
    assert machine.on_advert(advert(100), C, 20.0) == (SendAdvert(150), Announce())
    assert (Announce() in machine.on_timer(25.0)) is (delay is not None)
    assert Announce() not in machine.on_timer(30.0)


def test_master_steps_down_for_a_higher_priority_and_learns_its_interval() -> None:
    machine = make_node("b", B, priority=150).machine
    machine.start(0.0)
    machine.on_timer(3.4140625)
    actions = machine.on_advert(advert(200, interval=0.5), C, 4.0)
    assert actions == (
        Transition(
            State.MASTER,
            State.BACKUP,
            R.higher_priority_advert,
            "peer=192.0.2.3 peer_priority=200 priority=150",
        ),
        # Our last advert as master, so the winner hears a lower priority and
        # re-announces the VIPs our gratuitous ARPs took (see the partition test).
        SendAdvert(150),
        RemoveVips(),
    )
    assert machine.master_source == C
    assert machine.master_priority == 200
    assert machine.master_adver_interval == 0.5
    assert machine.next_deadline() == 4.0 + 1.5 + 106 * 0.5 / 256


def test_equal_priority_tie_break_by_address() -> None:
    lower = make_node("b", B, priority=100).machine
    lower.start(0.0)
    lower.on_timer(3.609375)
    # 192.0.2.3 > 192.0.2.2: we step down.
    (transition, last_word, remove) = lower.on_advert(advert(100), C, 4.0)
    assert isinstance(transition, Transition)
    assert transition.reason is R.equal_priority_higher_address
    assert last_word == SendAdvert(100)
    assert remove == RemoveVips()
    higher = make_node("b", "192.0.2.9", priority=100).machine
    higher.start(0.0)
    higher.on_timer(3.609375)
    # The loser also believed it was master: announce again (see the test above).
    assert higher.on_advert(advert(100), C, 4.0) == (SendAdvert(100), Announce())
    assert higher.state is State.MASTER


# --- tracking: effective priority -----------------------------------------------------------


def test_effective_priority_clamps_like_keepalived() -> None:
    machine = started(make_node("b", B)).machine
    assert machine.set_priority(300, "script up", 1.0) == (PriorityChanged(100, 254, "script up"),)
    assert machine.set_priority(-20, "eth1 down", 1.0) == (PriorityChanged(254, 1, "eth1 down"),)
    assert machine.set_priority(0, "again", 1.0) == ()  # still 1: no change, no line
    assert machine.effective_priority == 1


def test_priority_reason_is_what_set_the_effective_priority_last() -> None:
    machine = started(make_node("b", B)).machine
    assert machine.priority_reason == "configured"
    machine.set_priority(40, "process chk_haproxy not running (0) -60", 1.0)
    assert machine.priority_reason == "process chk_haproxy not running (0) -60"
    # The number stays, what holds it there changed: status must name the new item.
    machine.set_priority(40, "interface eth1 down -60", 2.0)
    assert (machine.effective_priority, machine.priority_reason) == (
        40, "interface eth1 down -60"
    )
    machine.set_priority(100, "all tracked items nominal", 3.0)
    assert machine.priority_reason == "all tracked items nominal"


def test_owner_priority_never_moves() -> None:
    machine = master_at_zero()
    assert machine.set_priority(100, "eth1 down", 1.0) == ()
    assert machine.effective_priority == 255


def test_rising_priority_shortens_the_running_master_down_timer() -> None:
    machine = started(make_node("b", B)).machine
    assert machine.next_deadline() == 3.609375
    machine.set_priority(150, "script up", 1.0)
    assert machine.next_deadline() == 3.4140625
    machine.set_priority(90, "script down", 1.0)
    assert machine.next_deadline() == 3.4140625  # lowering never postpones a takeover


def test_master_adverts_carry_the_effective_priority() -> None:
    machine = make_node("b", B, priority=200).machine
    machine.start(0.0)
    machine.on_timer(3.21875)  # 3 + 56/256: master
    machine.set_priority(120, "eth1 down", 3.5)
    assert machine.on_timer(4.21875) == (SendAdvert(120),)
    assert machine.master_priority == 120


# --- faults ---------------------------------------------------------------------------------


def test_fault_before_start_starts_in_fault() -> None:
    machine = make_node("b", B).machine
    assert machine.set_fault(True, "eth1 down", 0.0) == ()
    assert machine.start(0.0) == (
        Transition(State.INIT, State.FAULT, R.fault_entered, "eth1 down"),
        RemoveVips(),
    )
    assert machine.next_deadline() is None
    assert machine.set_fault(False, "eth1 up", 5.0) == (
        Transition(State.FAULT, State.BACKUP, R.fault_cleared, "eth1 up"),
    )
    assert machine.next_deadline() == 5.0 + 3.609375


def test_backup_fault_sends_nothing() -> None:
    machine = started(make_node("b", B)).machine
    assert machine.set_fault(True, "eth1 down", 1.0) == (
        Transition(State.BACKUP, State.FAULT, R.fault_entered, "eth1 down"),
    )
    assert machine.set_fault(True, "still down", 2.0) == ()


def test_master_fault_resigns_with_priority_zero() -> None:
    machine = master_at_zero()
    assert machine.set_fault(True, "check-uplink failed", 2.0) == (
        Transition(State.MASTER, State.FAULT, R.fault_entered, "check-uplink failed"),
        SendAdvert(0),
        RemoveVips(),
    )
    assert machine.master_source is None


# --- shutdown -------------------------------------------------------------------------------


def test_master_shutdown_resigns_then_releases() -> None:
    machine = master_at_zero()
    assert machine.shutdown(3.0) == (
        SendAdvert(0),
        RemoveVips(),
        Transition(State.MASTER, State.INIT, R.shutdown, "priority=255"),
    )
    assert machine.next_deadline() is None
    # A stopped instance can start again (reload).
    assert transitions(machine.start(4.0))[0].new is State.MASTER


def test_backup_shutdown_only_transitions() -> None:
    machine = started(make_node("b", B)).machine
    assert machine.shutdown(1.0) == (
        Transition(State.BACKUP, State.INIT, R.shutdown, "priority=100"),
    )


# --- reload in place --------------------------------------------------------------------------


def test_reconfigure_keeps_mastership_and_applies_new_tunables() -> None:
    machine = make_node("b", B, priority=200).machine
    machine.start(0.0)
    machine.on_timer(3.21875)
    new = make_settings(priority=180, advert_interval=0.5, garp_master_refresh=10.0)
    assert machine.reconfigure(new, 3.5) == (PriorityChanged(200, 180, "reconfigured"),)
    assert machine.state is State.MASTER
    assert machine.settings is new
    assert machine.next_deadline() == 4.0  # the new cadence, not 4.21875
    assert machine.on_timer(4.0) == (SendAdvert(180),)
    assert machine.next_deadline() == 4.5
    times = []
    while (deadline := machine.next_deadline()) is not None and deadline <= 14.0:
        if Announce() in machine.on_timer(deadline):
            times.append(deadline)
    assert times == [13.5]


def test_reconfigure_backup_adopts_a_new_v2_interval() -> None:
    machine = started(make_node("b", B, version=2)).machine
    assert machine.reconfigure(make_settings(version=2, advert_interval=3), 1.0) == ()
    assert machine.master_adver_interval == 3
    (drop,) = machine.on_advert(advert(200, version=2, interval=1.0), C, 2.0)
    assert isinstance(drop, AdvertDropped) and drop.reason is DropReason.interval_mismatch
    assert machine.on_advert(advert(200, version=2, interval=3.0), C, 2.0) == ()
    assert machine.next_deadline() == 2.0 + 9 + 0.609375


def test_reconfigure_v3_backup_keeps_the_interval_it_learnt() -> None:
    machine = started(make_node("b", B)).machine
    machine.on_advert(advert(200, interval=0.5), C, 1.0)
    machine.reconfigure(make_settings(advert_interval=2.0), 1.5)
    assert machine.master_adver_interval == 0.5


def test_reconfigure_new_unicast_source_is_our_own_address() -> None:
    machine = started(make_node("b", B)).machine
    machine.reconfigure(make_settings(unicast_source=IPv4Address("192.0.2.20")), 1.0)
    assert machine.source_address == IPv4Address("192.0.2.20")
    (drop,) = machine.on_advert(advert(200), IPv4Address("192.0.2.20"), 2.0)
    assert isinstance(drop, AdvertDropped) and drop.reason is DropReason.own_packet


@pytest.mark.parametrize(
    "overrides",
    [
        {"vrid": 52},
        {"interface": "eth1"},
        {"version": 2},
        {"sync_group": "g"},
    ],
)
def test_reconfigure_refuses_what_needs_a_restart(overrides: dict[str, object]) -> None:
    machine = started(make_node("b", B)).machine
    with pytest.raises(VrrpUsageError, match="identity, version or sync group changed"):
        machine.reconfigure(make_settings(**overrides), 1.0)  # type: ignore[arg-type]
    assert machine.settings.vrid == 51
    assert machine.state is State.BACKUP


# --- sync groups ------------------------------------------------------------------------------


def test_resign_leaves_master_as_backup_not_fault() -> None:
    machine = master_at_zero(priority=200)
    machine.on_timer(3.21875)  # 3 + 56/256: master
    assert machine.resign("VG1: VI_2 entered BACKUP", 5.0) == (
        Transition(State.MASTER, State.BACKUP, R.sync_group, "VG1: VI_2 entered BACKUP"),
        SendAdvert(0),
        RemoveVips(),
    )
    assert machine.next_deadline() == 5.0 + 3.21875
    assert machine.master_source is None
    assert machine.resign("again", 6.0) == ()  # not master: nothing to do


def test_silent_resign_like_keepalived() -> None:
    machine = master_at_zero(priority=200)
    machine.on_timer(3.21875)
    actions = machine.resign("VG1", 5.0, send_stop=False)
    assert actions[1:] == (RemoveVips(),)


def test_resigned_member_hands_over_to_its_peer_in_skew_time() -> None:
    segment, a, b = pair()
    segment.start_all(0.0)
    segment.run_until(10.0)
    segment.resign(a, "VG1: VI_2 entered BACKUP")
    segment.set_priority(a, 1, "VG1 hold")  # the group keeps it from preempting back
    segment.run_until(30.0)
    assert segment.masters() == [b]
    assert b.last_transition_at() == 10.0 + 0.609375
    assert segment.vip_holders() == [b]


# --- pairs on a fake segment ------------------------------------------------------------------


def pair(**common: object) -> tuple[Segment, Node, Node]:
    a = make_node("a", A, priority=150, **common)
    b = make_node("b", B, priority=100, **common)
    return Segment(a, b), a, b


@pytest.mark.parametrize("version", [2, 3])
def test_election_the_higher_priority_wins(version: int) -> None:
    segment, a, b = pair(version=version)
    segment.start_all(0.0)
    segment.run_until(60.0)
    assert segment.masters() == [a]
    assert segment.vip_holders() == [a]
    assert [(t, tr.reason) for t, tr in a.transitions()] == [
        (0.0, R.startup_backup),
        (3.4140625, R.master_down_timer),
    ]
    assert [tr.new for _t, tr in b.transitions()] == [State.BACKUP]
    assert b.machine.master_source == IPv4Address(A)
    assert b.machine.master_priority == 150
    assert len(a.sent) == 57  # 3.41, 4.41, ... 59.41


@pytest.mark.parametrize("version", [2, 3])
def test_master_crash_backup_takes_over_after_master_down_interval(version: int) -> None:
    segment, a, b = pair(version=version)
    segment.start_all(0.0)
    segment.run_until(10.0)
    segment.crash(a)  # last advert went out at 9.4140625
    segment.run_until(20.0)
    assert segment.masters() == [b]
    assert segment.vip_holders() == [b]
    at, transition = b.transitions()[-1]
    assert at == 9.4140625 + 3.609375
    assert transition.reason is R.master_down_timer
    assert transition.detail.startswith("peer=192.0.2.1 peer_priority=150")


@pytest.mark.parametrize("winner_heard_first", [False, True])
def test_a_healed_partition_moves_the_neighbours_back_whoever_hears_first(
    winner_heard_first: bool,
) -> None:
    # Both were master while split, and b's gratuitous ARPs moved the neighbours to it.
    # When the split heals, the winner re-announces on hearing b's lower priority. If the
    # winner's advert reaches b first, b used to step down silently: the winner never
    # heard a lower priority and the neighbours kept b's MAC (the lab's partition case).
    segment, a, b = pair()
    segment.start_all(0.0)
    segment.run_until(10.0)  # a: master since 3.4140625, adverts at x.4140625
    b.connected = False
    segment.run_until(20.0)
    assert segment.masters() == [a, b]
    b_announced = b.announcements[-1]
    assert 13.0 < b_announced < 20.0
    # b: master at 9.4140625 + 3.609375 = 13.0234375, adverts at x.0234375. Healing at
    # 20.3 puts a's 20.4140625 first; healing at 20.0 puts b's 20.0234375 first.
    heal_at = 20.0 if winner_heard_first else 20.3
    segment.run_until(heal_at)
    b.connected = True
    segment.run_until(30.0)
    assert segment.masters() == [a]
    assert segment.vip_holders() == [a]
    assert b.transitions()[-1][1].reason is R.higher_priority_advert
    after_heal = [at for at in a.announcements if at > heal_at]
    assert after_heal and after_heal[0] < heal_at + 1.0, a.announcements
    assert all(at < after_heal[0] for at in b.announcements)


def test_v2_skew_does_not_scale_with_a_longer_interval() -> None:
    segment, a, b = pair(version=2, advert_interval=3.0)
    segment.start_all(0.0)
    segment.run_until(20.0)  # a: master at 9.4140625, adverts at 12.41, 15.41, 18.41
    segment.crash(a)
    segment.run_until(40.0)
    assert b.last_transition_at() == 18.4140625 + 9 + 0.609375


def test_graceful_stop_backup_waits_only_skew_time() -> None:
    segment, a, b = pair()
    segment.start_all(0.0)
    segment.run_until(10.0)
    segment.shutdown(a)
    assert a.actions[-3:] == [
        (10.0, SendAdvert(0)),
        (10.0, RemoveVips()),
        (10.0, Transition(State.MASTER, State.INIT, R.shutdown, "priority=150")),
    ]
    segment.run_until(20.0)
    at, transition = b.transitions()[-1]
    assert at == 10.0 + 0.609375
    assert transition.reason is R.priority_zero_advert
    assert transition.detail.startswith("peer=192.0.2.1 peer_priority=0")
    assert segment.vip_holders() == [b]


def test_preemption_by_a_later_higher_priority_backup() -> None:
    segment, a, b = pair()
    segment.start(b, 0.0)  # b alone: master at 3.609375, adverts at 4.61, 5.61, ...
    segment.start(a, 5.0)
    segment.run_until(30.0)
    assert segment.masters() == [a]
    assert segment.vip_holders() == [a]
    at, transition = a.transitions()[-1]
    assert at == 5.0 + 3.4140625  # b's adverts were discarded, the timer ran out
    assert transition == Transition(
        State.BACKUP,
        State.MASTER,
        R.preempt_lower_priority_master,
        "peer=192.0.2.2 peer_priority=100 priority=150",
    )
    at, transition = b.transitions()[-1]
    assert at == 8.4140625
    assert transition.reason is R.higher_priority_advert


def test_nopreempt_keeps_the_lower_priority_master() -> None:
    a = make_node("a", A, priority=150, preempt=False)
    b = make_node("b", B, priority=100)
    segment = Segment(a, b)
    segment.start(b, 0.0)
    segment.start(a, 5.0)
    segment.run_until(60.0)
    assert segment.masters() == [b]
    assert segment.vip_holders() == [b]
    assert [tr.new for _t, tr in a.transitions()] == [State.BACKUP]


def test_preempt_delay_after_startup() -> None:
    a = make_node("a", A, priority=150, preempt_delay=10.0)
    b = make_node("b", B, priority=100)
    segment = Segment(a, b)
    segment.start(b, 0.0)
    segment.start(a, 5.0)  # delay ends at 15.0
    segment.run_until(18.0)
    assert segment.masters() == [b]  # b's adverts up to 14.609375 were still accepted
    segment.run_until(30.0)
    assert segment.masters() == [a]
    at, transition = a.transitions()[-1]
    assert at == 14.609375 + 3.4140625
    assert transition.reason is R.preempt_delay_elapsed


def test_preempt_delay_restarts_when_a_lower_priority_master_is_first_seen() -> None:
    a = make_node("a", A, priority=150, preempt_delay=4.0)
    b = make_node("b", B, priority=200)
    segment = Segment(a, b)
    segment.start_all(0.0)  # b master at 3.21875, adverts at 4.21875, ...
    segment.run_until(20.5)
    assert segment.masters() == [b]
    segment.set_priority(b, 100, "eth1 down")
    # 21.21875: first lower advert, delay starts (ends 25.21875), accepted;
    # 22..24.21875 accepted; 25.21875 on discarded; master down from 24.21875.
    segment.run_until(40.0)
    assert segment.masters() == [a]
    at, transition = a.transitions()[-1]
    assert at == 24.21875 + 3.4140625
    assert transition.reason is R.preempt_delay_elapsed


@pytest.mark.parametrize(("first", "second", "winner"), [(A, B, "b"), (B, A, "a")])
def test_equal_priority_both_masters_the_higher_address_stays(
    first: str, second: str, winner: str
) -> None:
    a = make_node("a", first, priority=100)
    b = make_node("b", second, priority=100)
    segment = Segment(a, b, latency=0.05)  # both time out before either hears the other
    segment.start_all(0.0)
    segment.run_until(3.609375)
    assert len(segment.masters()) == 2
    segment.run_until(30.0)
    (master,) = segment.masters()
    assert master.name == winner
    assert segment.vip_holders() == [master]
    loser = a if master is b else b
    at, transition = loser.transitions()[-1]
    assert at == 3.609375 + 0.05
    assert transition.reason is R.equal_priority_higher_address


def test_tracking_lowers_the_master_below_the_backup_and_back() -> None:
    segment, a, b = pair()
    segment.start_all(0.0)
    segment.run_until(10.0)
    segment.set_priority(a, 90, "eth1 down")
    assert a.actions[-1] == (10.0, PriorityChanged(150, 90, "eth1 down"))
    segment.run_until(20.0)
    assert segment.masters() == [b]
    at, transition = b.transitions()[-1]
    assert at == 9.4140625 + 3.609375  # last advert b accepted, then lower ones discarded
    assert transition.reason is R.preempt_lower_priority_master
    assert transition.detail == "peer=192.0.2.1 peer_priority=90 priority=100"
    assert a.transitions()[-1][1].reason is R.higher_priority_advert
    segment.set_priority(a, 150, "eth1 up")
    segment.run_until(40.0)
    assert segment.masters() == [a]
    # a accepted b's advert at 19.0234375 with priority 90 (down 3.6484375), then the
    # rise to 150 at 20.0 pulled its timer in by (166 - 106) / 256 = 0.234375.
    assert a.last_transition_at() == 19.0234375 + 3.6484375 - 0.234375
    assert segment.vip_holders() == [a]


def test_fault_hands_over_in_skew_time_and_recovery_preempts_back() -> None:
    segment, a, b = pair()
    segment.start_all(0.0)
    segment.run_until(10.0)
    segment.set_fault(a, True, "eth1 down")
    assert a.actions[-3:] == [
        (10.0, Transition(State.MASTER, State.FAULT, R.fault_entered, "eth1 down")),
        (10.0, SendAdvert(0)),
        (10.0, RemoveVips()),
    ]
    segment.run_until(20.0)
    assert segment.masters() == [b]
    assert b.last_transition_at() == 10.609375
    assert a.state is State.FAULT
    assert segment.vip_holders() == [b]
    segment.set_fault(a, False, "eth1 up")
    segment.run_until(40.0)
    assert segment.masters() == [a]
    assert [(t, tr.reason) for t, tr in a.transitions()[-2:]] == [
        (20.0, R.fault_cleared),
        (23.4140625, R.preempt_lower_priority_master),
    ]
    assert segment.vip_holders() == [a]


def test_v3_backup_learns_the_master_interval() -> None:
    a = make_node("a", A, priority=150, advert_interval=0.5)
    b = make_node("b", B, priority=100, advert_interval=2.0)
    segment = Segment(a, b)
    segment.start_all(0.0)  # a master at 1.5 + 106*0.5/256 = 1.70703125
    segment.run_until(10.0)  # a's last advert: 9.70703125
    assert b.machine.master_adver_interval == 0.5
    segment.crash(a)
    segment.run_until(20.0)
    assert b.last_transition_at() == 9.70703125 + 1.5 + 156 * 0.5 / 256
    assert b.machine.master_adver_interval == 2.0  # as master it uses its own
    assert b.sent[-1][1].advert_interval == 2.0


def test_v3_priority_zero_skew_uses_the_learnt_interval() -> None:
    a = make_node("a", A, priority=150, advert_interval=0.5)
    b = make_node("b", B, priority=100, advert_interval=2.0)
    segment = Segment(a, b)
    segment.start_all(0.0)
    segment.run_until(10.0)
    segment.shutdown(a)
    segment.run_until(20.0)
    assert b.last_transition_at() == 10.0 + 156 * 0.5 / 256


def test_v2_interval_mismatch_between_peers_is_a_split_brain_keepalived_also_has() -> None:
    a = make_node("a", A, priority=150, version=2, advert_interval=2.0)
    b = make_node("b", B, priority=100, version=2, advert_interval=1.0)
    segment = Segment(a, b)
    segment.start_all(0.0)
    segment.run_until(20.0)
    assert {DropReason.interval_mismatch} == {d.reason for d in a.drops() + b.drops()}
    assert len(segment.masters()) == 2


def test_unicast_pair() -> None:
    a = make_node("a", A, priority=150, unicast_peers=(IPv4Address(B),))
    b = make_node("b", B, priority=100, unicast_peers=(IPv4Address(A),))
    segment = Segment(a, b)
    segment.start_all(0.0)
    segment.run_until(10.0)
    assert segment.masters() == [a]
    assert b.received  # really delivered to b's address
    segment.crash(a)
    segment.run_until(20.0)
    assert b.last_transition_at() == 9.4140625 + 3.609375


def test_ipv6_pair() -> None:
    vips = (VipSpec(IPv6Interface("2001:db8::10/64")),)
    a = make_node("a", "fe80::1", priority=150, vips=vips)
    b = make_node("b", "fe80::2", priority=100, vips=vips)
    segment = Segment(a, b)
    segment.start_all(0.0)
    segment.run_until(10.0)
    assert segment.masters() == [a]
    assert b.received[-1][1].addresses == (IPv6Address("2001:db8::10"),)
    segment.shutdown(a)
    segment.run_until(20.0)
    assert b.last_transition_at() == 10.609375


def test_v2_password_pair() -> None:
    a = make_node("a", A, priority=150, version=2, auth_pass="s3cret")
    b = make_node("b", B, priority=100, version=2, auth_pass="s3cret")
    segment = Segment(a, b)
    segment.start_all(0.0)
    segment.run_until(10.0)
    assert segment.masters() == [a]
    assert not b.drops()


# --- the table is the specification --------------------------------------------------------


def test_every_reason_has_a_transition_and_every_state_is_reachable() -> None:
    assert {reason for _state, reason in TRANSITIONS} == set(TransitionReason)
    assert set(TRANSITIONS.values()) == set(State)


def test_illegal_transition_raises_and_keeps_state() -> None:
    machine = started(make_node("b", B)).machine
    with pytest.raises(VrrpUsageError):
        machine._move(R.startup_priority_owner, "")
    assert machine.state is State.BACKUP


# --- properties over random pairs and trios -----------------------------------------------

ADDRESSES = [f"192.0.2.{i}" for i in range(1, 10)]


@st.composite
def segments(draw: st.DrawFn, mixed_preempt: bool = False) -> tuple[Segment, list[float]]:
    count = draw(st.integers(2, 3))
    addresses = draw(st.lists(st.sampled_from(ADDRESSES), min_size=count, max_size=count,
                              unique=True))
    version = draw(st.sampled_from([2, 3]))
    interval = 1.0 if version == 2 else draw(st.sampled_from([0.1, 0.5, 1.0]))
    nodes = [
        make_node(
            f"n{i}",
            address,
            priority=draw(st.integers(1, 255)),
            version=version,
            advert_interval=interval,
            preempt=draw(st.booleans()) if mixed_preempt else True,
            preempt_delay=draw(st.sampled_from([0.0, 2.0, 5.0])) if mixed_preempt else 0.0,
        )
        for i, address in enumerate(addresses)
    ]
    latency = draw(st.sampled_from([0.0, 0.001, 0.05]))
    starts = [draw(st.integers(0, 40)) / 8 for _ in nodes]
    return Segment(*nodes, latency=latency), starts


def check_invariants(segment: Segment) -> None:
    for node in segment.nodes:
        if node.alive:
            assert node.vips_installed == (node.state is State.MASTER)
        for _t, transition in node.transitions():
            assert TRANSITIONS[(transition.old, transition.reason)] is transition.new


@settings(max_examples=150, deadline=None)
@given(segments())
def test_converges_to_exactly_one_master_the_highest_priority(
    case: tuple[Segment, list[float]],
) -> None:
    segment, starts = case
    for at, node in sorted(zip(starts, segment.nodes, strict=True), key=lambda p: p[0]):
        segment.start(node, at)
    segment.run_until(30.0)
    check_invariants(segment)
    (master,) = segment.masters()
    assert segment.vip_holders() == [master]
    top = max(n.machine.effective_priority for n in segment.nodes)
    assert master.machine.effective_priority == top
    # Crash the master: the best of the rest takes over, once, within its
    # Master_Down_Interval of the last advert it heard.
    segment.crash(master)
    segment.run_until(60.0)
    check_invariants(segment)
    (successor,) = segment.masters()
    rest = [n for n in segment.nodes if n is not master]
    assert successor.machine.effective_priority == max(n.machine.effective_priority for n in rest)
    assert segment.vip_holders() == [successor]


@settings(max_examples=100, deadline=None)
@given(segments(mixed_preempt=True), st.lists(st.tuples(st.integers(0, 2), st.sampled_from(
    ["fault", "clear", "priority", "stop", "start", "resign"]), st.integers(1, 254)),
    max_size=8))
def test_random_operations_keep_vips_with_masters_only(
    case: tuple[Segment, list[float]], operations: list[tuple[int, str, int]]
) -> None:
    segment, _starts = case
    segment.start_all(0.0)
    now = 0.0
    for index, operation, value in operations:
        now += 2.5
        segment.run_until(now)
        node = segment.nodes[index % len(segment.nodes)]
        if operation == "fault":
            segment.set_fault(node, True)
        elif operation == "clear":
            segment.set_fault(node, False)
        elif operation == "priority":
            segment.set_priority(node, value)
        elif operation == "stop":
            segment.shutdown(node)
        elif operation == "resign":
            segment.resign(node)
        elif node.state is State.INIT:
            segment.start(node)
        check_invariants(segment)
    # Whatever happened, once things settle there is at most one master, and one
    # exactly when some node is running and not in fault.
    segment.run_until(now + 30.0)
    check_invariants(segment)
    running = [n for n in segment.nodes if n.state in (State.BACKUP, State.MASTER)]
    assert len(segment.masters()) == (1 if running else 0)


# --- settings invariants (the machine relies on them) --------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"vrid": 0}, "vrid"),
        ({"vrid": 256}, "vrid"),
        ({"priority": 0}, "priority"),
        ({"priority": 256}, "priority"),
        ({"version": 4}, "version"),
        ({"version": 2, "advert_interval": 0.5}, "advert_interval"),
        ({"version": 2, "advert_interval": 256}, "advert_interval"),
        ({"version": 3, "advert_interval": 0.005}, "advert_interval"),
        ({"version": 3, "advert_interval": 41.0}, "advert_interval"),
        ({"version": 3, "advert_interval": 0.015}, "advert_interval"),
        ({"vips": ()}, "vips"),
        ({"vips": (VipSpec(IPv4Interface("198.51.100.10/24")),
                   VipSpec(IPv6Interface("2001:db8::1/64")))}, "vips"),
        ({"version": 2, "vips": (VipSpec(IPv6Interface("2001:db8::1/64")),)}, "vips"),
        ({"vips": (VipSpec(IPv4Interface("198.51.100.10/24")),) * 2}, "vips"),
        ({"unicast_peers": (IPv6Address("fe80::2"),)}, "unicast_peers"),
        ({"unicast_source": IPv6Address("fe80::2")}, "unicast_source"),
        ({"preempt_delay": -1.0}, "preempt_delay"),
        ({"preempt_delay": 1001.0}, "preempt_delay"),
        ({"garp_repeat": -1}, "garp_repeat"),
        ({"garp_master_refresh": 0.0}, "garp_master_refresh"),
        ({"garp_master_delay": -1.0}, "garp_master_delay"),
        ({"auth_pass": "secret"}, "auth_pass"),  # version 3
        ({"version": 2, "auth_pass": "123456789"}, "auth_pass"),
        ({"name": ""}, "name"),
        ({"interface": ""}, "interface"),
    ],
)
def test_settings_reject_what_the_rfcs_forbid(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}:"):
        make_settings(**overrides)  # type: ignore[arg-type]


def test_settings_accept_the_boundaries() -> None:
    for overrides in (
        {"version": 2, "advert_interval": 255},
        {"version": 2, "advert_interval": 1.0},
        {"version": 3, "advert_interval": 0.01},
        {"version": 3, "advert_interval": 40.95},
        {"version": 3, "advert_interval": 0.29},
        {"vrid": 255, "priority": 255},
    ):
        make_settings(**overrides)


def test_settings_family_and_key() -> None:
    v6 = make_settings(vips=(VipSpec(IPv6Interface("2001:db8::1/64"), "eth1"),))
    assert (v6.family, v6.key) == (6, ("eth0", 51, 6))
    v4: InstanceSettings = make_settings()
    assert (v4.family, v4.key) == (4, ("eth0", 51, 4))
    assert v4.vip_addresses == (VIP,)


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (lambda: TrackInterface("", -10), r"^name: must not be empty"),
        (lambda: TrackInterface("eth1", 254), r"^weight: 254 outside -253\.\.253"),
        (lambda: TrackScript((), 1.0, 1.0, 1, 1, 0), r"^command: must be a non-empty argv"),
        (lambda: TrackScript(("/bin/true",), 0.0, 1.0, 1, 1, 0), r"^interval: 0\.0 must be > 0"),
        (lambda: TrackScript(("/bin/true",), 1.0, 0.0, 1, 1, 0), r"^timeout: 0\.0 must be > 0"),
        (lambda: TrackScript(("/bin/true",), 1.0, 1.0, 0, 1, 0), r"^rise: 0 must be >= 1"),
        (lambda: TrackScript(("/bin/true",), 1.0, 1.0, 1, 0, 0), r"^fall: 0 must be >= 1"),
        (lambda: TrackScript(("/bin/true",), 1.0, 1.0, 1, 1, -254), r"^weight: -254 outside"),
        (lambda: NotifySettings(master=()), r"^master: must be None or a non-empty argv"),
        (lambda: NotifySettings(timeout=0.0), r"^timeout: 0\.0 must be > 0"),
        (lambda: VipSpec(IPv4Interface("198.51.100.10/24"), ""), r"^interface: must be"),
    ],
)
def test_track_notify_and_vip_settings_validate(build: object, reason: str) -> None:
    assert callable(build)
    with pytest.raises(ValueError, match=reason):
        build()


# --- lab: the machine elects against a live keepalived --------------------------------------
#
# The smallest possible runner (select on a raw socket, read before acting on the
# timer, `ip addr` for VIPs) drives one VrrpMachine in a namespace next to a real
# keepalived 2.2.7, so the election rules meet an implementation nobody here wrote:
# we preempt keepalived, hand over to it with priority 0, follow it as backup and
# learn its interval, and take over when it dies.

LAB_VIP = "198.51.100.10"
KA = IPv4Address("192.0.2.1")
US = IPv4Address("192.0.2.2")


class RawDriver:
    """One machine on raw IPv4 sockets inside the namespace `ns` (test-only runner)."""

    def __init__(self, net: Any, machine: VrrpMachine) -> None:
        self.net = net
        self.machine = machine
        self.log: list[tuple[float, object]] = []
        netns.pushns(net.ns("us"))
        try:
            ifindex = socket.if_nametoindex("eth0")
            self.send = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
            self.send.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, US.packed)
            self.send.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
            self.send.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
            self.recv = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
            self.recv.setsockopt(
                socket.IPPROTO_IP,
                socket.IP_ADD_MEMBERSHIP,
                struct.pack("4s4si", VRRP_MULTICAST_V4.packed, bytes(4), ifindex),
            )
            self.recv.setblocking(False)
        finally:
            netns.popns()

    def close(self) -> None:
        self.send.close()
        self.recv.close()

    def discard_queued(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while True:
                self.recv.recv(4096)

    def execute(self, actions: tuple[object, ...]) -> None:
        for action in actions:
            self.log.append((time.monotonic(), action))
            if isinstance(action, SendAdvert):
                advert = self.machine.build_advert(action.priority)
                payload = encode_advert(advert, US, VRRP_MULTICAST_V4)
                self.send.sendto(payload, (str(VRRP_MULTICAST_V4), 0))
            elif isinstance(action, InstallVips | RemoveVips):
                verb = "add" if isinstance(action, InstallVips) else "del"
                self.net.run("us", ["ip", "addr", verb, f"{LAB_VIP}/32", "dev", "eth0"],
                             check=False)

    def run(self, seconds: float, until: Callable[[], bool] = lambda: False) -> None:
        end = time.monotonic() + seconds
        while not until() and (now := time.monotonic()) < end:
            deadline = self.machine.next_deadline()
            wake = end if deadline is None else min(end, deadline)
            select.select([self.recv], [], [], max(0.0, wake - now))
            # Read before acting on the timer: a queued advert proves the master alive.
            with contextlib.suppress(BlockingIOError):
                while True:
                    datagram = self.recv.recv(4096)
                    source, destination, ttl, payload = parse_ipv4_packet(datagram)
                    check_ttl(ttl)
                    advert = decode_advert(payload, source, destination)
                    self.execute(self.machine.on_advert(advert, source, time.monotonic()))
            deadline = self.machine.next_deadline()
            if deadline is not None and (now := time.monotonic()) >= deadline:
                self.execute(self.machine.on_timer(max(deadline, now)))

    def transitions(self) -> list[Transition]:
        return [a for _t, a in self.log if isinstance(a, Transition)]

    def drops(self) -> list[AdvertDropped]:
        return [a for _t, a in self.log if isinstance(a, AdvertDropped)]


def ka_has_vip(net: Any) -> bool:
    return LAB_VIP in net.run("ka", ["ip", "-o", "addr", "show", "dev", "eth0"]).stdout


@pytest.mark.lab
@pytest.mark.parametrize(("version", "interval"), [(3, 0.2), (2, 1.0)])
def test_election_against_keepalived(tmp_path: Path, version: int, interval: float) -> None:
    from haipvs.lab.topology import Endpoint, Host, Topology, Veth, build

    topology = Topology(
        hosts=(Host("ka"), Host("us")),
        links=(Veth(Endpoint("ka", "eth0", (f"{KA}/24",)), Endpoint("us", "eth0", (f"{US}/24",))),),
    )
    states = tmp_path / "states"
    notify_script = tmp_path / "notify.sh"
    notify_script.write_text(f'#!/bin/sh\necho "$3" >> {states}\n')
    notify_script.chmod(0o755)
    conf = tmp_path / "keepalived.conf"
    conf.write_text(
        "global_defs {\n    router_id ka\n    script_user root\n}\n"
        "vrrp_instance VI {\n    state BACKUP\n    interface eth0\n    virtual_router_id 51\n"
        f"    priority 100\n    advert_int {interval:g}\n    version {version}\n"
        f"    virtual_ipaddress {{\n        {LAB_VIP}/32\n    }}\n"
        f"    notify {notify_script}\n}}\n"
    )

    def ka_state() -> str:
        lines = states.read_text().split() if states.exists() else []
        return lines[-1] if lines else "NONE"

    def machine(priority: int) -> VrrpMachine:
        settings = make_settings(
            priority=priority, version=version, advert_interval=interval,
            vips=(VipSpec(IPv4Interface(f"{LAB_VIP}/32")),),
        )
        return VrrpMachine(settings, primary_address=US)

    with build(topology, prefix=f"vrrp-elect{version}-") as net:
        log = (tmp_path / "keepalived.log").open("wb")
        keepalived = net.popen(
            "ka",
            ["keepalived", "-n", "-l", "-D", "-P", "-f", str(conf),
             "-p", str(tmp_path / "ka.pid"), "-r", str(tmp_path / "ka-vrrp.pid")],
            stdout=log, stderr=subprocess.STDOUT,
        )
        driver = RawDriver(net, machine(150))
        try:
            assert wait_for(lambda: ka_state() == "MASTER", 30.0), "keepalived never master"
            # 1. We start at 150 beside keepalived's 100: we preempt it (RFC 5798 §6.4.2).
            driver.discard_queued()
            driver.execute(driver.machine.start(time.monotonic()))
            driver.run(20.0, until=lambda: driver.machine.state is State.MASTER)
            (_startup, takeover) = driver.transitions()
            assert takeover.reason is R.preempt_lower_priority_master
            assert takeover.detail == "peer=192.0.2.1 peer_priority=100 priority=150"
            driver.run(3 * interval + 1.0)
            assert driver.machine.state is State.MASTER
            assert wait_for(lambda: ka_state() == "BACKUP" and not ka_has_vip(net), 5.0)
            # 2. Graceful stop: priority 0, keepalived takes over (RFC 5798 §6.4.2).
            driver.execute(driver.machine.shutdown(time.monotonic()))
            assert wait_for(lambda: ka_state() == "MASTER" and ka_has_vip(net), 5.0)
            # 3. We come back at 50: backup, following keepalived and its interval.
            driver.machine = machine(50)
            driver.log.clear()
            driver.discard_queued()
            driver.execute(driver.machine.start(time.monotonic()))
            driver.run(3 * interval + 2.0)
            assert driver.machine.state is State.BACKUP
            assert driver.machine.master_source == KA
            assert driver.machine.master_priority == 100
            assert driver.machine.master_adver_interval == interval
            # 4. keepalived dies with its VIP: we take over on the master-down timer.
            # SIGKILL the VRRP child first: killing only the parent lets the child
            # shut down gracefully (priority 0), which is not a crash.
            vrrp_child = int((tmp_path / "ka-vrrp.pid").read_text().split()[0])
            os.kill(vrrp_child, signal.SIGKILL)
            keepalived.kill()
            keepalived.wait(timeout=10)
            net.run("ka", ["ip", "addr", "del", f"{LAB_VIP}/32", "dev", "eth0"], check=False)
            driver.run(20.0, until=lambda: driver.machine.state is State.MASTER)
            last = driver.transitions()[-1]
            assert (last.new, last.reason) == (State.MASTER, R.master_down_timer)
            assert last.detail.startswith("peer=192.0.2.1 peer_priority=100")
            assert LAB_VIP in net.run("us", ["ip", "-o", "addr", "show", "dev", "eth0"]).stdout
            assert driver.drops() == []
        finally:
            if keepalived.poll() is None:
                keepalived.terminate()
                keepalived.wait(timeout=20)
            log.close()
            driver.close()
