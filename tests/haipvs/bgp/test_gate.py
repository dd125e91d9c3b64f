"""The announce gate with literal inputs: each gate blocks alone, and flips are edges."""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address, IPv6Address

import pytest

from haipvs.bgp.gate import AnnounceGates, GateChange, GateInputs, VipInputs, verdict

VIP = IPv4Address("198.51.100.10")
VIP6 = IPv6Address("2001:db8::10")
HEALTHY = VipInputs({"tcp/198.51.100.10:80": 3, "tcp/198.51.100.10:443": 2}, need=2)
READY = GateInputs(
    now=100.0, started_at=0.0, learn=30.0, table_in_sync=True, loop_lag=0.01, max_loop_lag=1.0
)


def test_all_gates_hold() -> None:
    result = verdict(HEALTHY, READY)
    assert result.announce and result.blockers == ()
    assert result.reason == "all gates hold"


@pytest.mark.parametrize(
    ("vip", "director", "blocker"),
    [
        (
            VipInputs({"tcp/198.51.100.10:80": 3, "tcp/198.51.100.10:443": 1}, need=2),
            READY,
            "need 2 real servers up on tcp/198.51.100.10:443, 1 up",
        ),
        (VipInputs({}, need=1), READY, "no virtual service on this VIP"),
        (
            HEALTHY,
            dataclasses.replace(READY, table_in_sync=False),
            "IPVS table not yet equal to the desired one",
        ),
        (
            HEALTHY,
            dataclasses.replace(READY, loop_lag=1.5),
            "control loop stalled (1.50 s > 1 s)",
        ),
        (
            HEALTHY,
            dataclasses.replace(READY, sloppy_tcp="cannot set it: Permission denied"),
            "net.ipv4.vs.sloppy_tcp is not 1 (cannot set it: Permission denied): a flow the "
            "routers move here would arrive as a bare ACK and be reset",
        ),
        (HEALTHY, dataclasses.replace(READY, drained=True), "director drained by the operator"),
        (
            HEALTHY,
            dataclasses.replace(READY, now=12.0),
            "learning connection state (12.0 s of 30 s)",
        ),
        (HEALTHY, dataclasses.replace(READY, stopping=True), "shutting down"),
    ],
)
def test_each_gate_blocks_alone(vip: VipInputs, director: GateInputs, blocker: str) -> None:
    result = verdict(vip, director)
    assert not result.announce
    assert result.blockers == (blocker,)


def test_need_zero_announces_an_empty_service() -> None:
    assert verdict(VipInputs({"tcp/198.51.100.10:80": 0}, need=0), READY).announce


def test_learn_ends_exactly_at_learn_seconds() -> None:
    assert not verdict(HEALTHY, dataclasses.replace(READY, now=29.999)).announce
    assert verdict(HEALTHY, dataclasses.replace(READY, now=30.0)).announce


def test_gates_report_flips_once_and_withdraw_a_removed_vip() -> None:
    gates = AnnounceGates()
    vips = {VIP: HEALTHY, VIP6: VipInputs({"tcp/[2001:db8::10]:80": 0}, need=1)}
    starting = dataclasses.replace(READY, now=5.0)
    assert gates.evaluate(vips, starting) == []  # nothing announced yet, nothing to withdraw
    # ... but why each VIP is held back is there, for /status.
    assert gates.withheld() == {
        VIP: "learning connection state (5.0 s of 30 s)",
        VIP6: "need 1 real servers up on tcp/[2001:db8::10]:80, 0 up; "
              "learning connection state (5.0 s of 30 s)",
    }
    assert gates.evaluate(vips, READY) == [GateChange(VIP, True, "all gates hold")]
    assert gates.evaluate(vips, READY) == []  # no flip, no call, no log line
    vips[VIP6] = VipInputs({"tcp/[2001:db8::10]:80": 1}, need=1)
    assert gates.evaluate(vips, READY) == [GateChange(VIP6, True, "all gates hold")]
    stopping = dataclasses.replace(READY, stopping=True)
    assert gates.evaluate(vips, stopping) == [
        GateChange(VIP, False, "shutting down"),
        GateChange(VIP6, False, "shutting down"),
    ]
    assert gates.evaluate(vips, READY) == [
        GateChange(VIP, True, "all gates hold"),
        GateChange(VIP6, True, "all gates hold"),
    ]
    del vips[VIP6]
    assert gates.evaluate(vips, READY) == [GateChange(VIP6, False, "VIP removed from the config")]
    assert gates.announced() == frozenset({VIP})
    assert gates.withheld() == {}


def test_forget_makes_a_failed_change_come_again() -> None:
    gates = AnnounceGates()
    assert gates.evaluate({VIP: HEALTHY}, READY) == [GateChange(VIP, True, "all gates hold")]
    gates.forget(VIP)  # the speaker refused: try again on the next evaluation
    assert gates.evaluate({VIP: HEALTHY}, READY) == [GateChange(VIP, True, "all gates hold")]


def test_learn_is_a_warm_up_once_announced_a_vip_stays_even_when_the_count_restarts() -> None:
    # A reload that starts the sync mesh on a serving director moves its learning start
    # to now; the gate used to withdraw every VIP for `learn` seconds, on every director
    # the reload reached (the CI walk: 21 of 150 connections never opened).
    gates = AnnounceGates()
    assert gates.evaluate({VIP: HEALTHY}, READY) == [GateChange(VIP, True, "all gates hold")]
    restarted = dataclasses.replace(READY, started_at=95.0)
    assert gates.evaluate({VIP: HEALTHY}, restarted) == []
    # ... but a VIP never announced yet still waits out its warm-up, and so does a
    # director whose gates were built afresh (BIRD reconfigured) only for VIPs not warm.
    assert gates.evaluate({VIP: HEALTHY, VIP6: HEALTHY}, restarted) == []
    assert gates.withheld() == {VIP6: "learning connection state (5.0 s of 30 s)"}
    again = gates.afresh()
    assert again.evaluate({VIP: HEALTHY, VIP6: HEALTHY}, restarted) == [
        GateChange(VIP, True, "all gates hold")]
    assert not verdict(HEALTHY, restarted).announce
    assert verdict(HEALTHY, restarted, warmed_up=True).announce
