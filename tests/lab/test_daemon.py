"""The daemon end to end in the lab: a real haipvs pair, real VRRP, real IPVS.

What on-call relies on: a reload touches only what changed, a bad file changes
nothing, SIGTERM hands the VIP over at once, a restart does not churn the table.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from haipvs.lab.pair import VIP, DirectorPair, PairSettings, running_pair, wait_until
from vrrp import skew_time

pytestmark = pytest.mark.lab

SETTINGS = PairSettings(version=3, advert_interval=1.0, check_interval=0.5, check_timeout=0.4)
IPVS_OPS = ("ipvs.service.added", "ipvs.service.updated", "ipvs.service.deleted",
            "ipvs.dest.added", "ipvs.dest.updated", "ipvs.dest.deleted",
            "ipvs.dest.drain.started", "ipvs.dest.drain.finished", "ipvs.drift.repaired")


@pytest.fixture(scope="module")
def pair() -> Iterator[DirectorPair]:
    with running_pair(SETTINGS, prefix="dmn-") as built:
        built.start_real_servers()
        built.start_director("dir1")
        built.start_director("dir2")
        wait_until(lambda: built.holds_vip("dir1") and built.vrrp_state("dir2") == "BACKUP", 90)
        wait_until(lambda: ipvs_dests(built, "dir1") == 3 and ipvs_dests(built, "dir2") == 3, 60)
        yield built


def ipvs_dests(pair: DirectorPair, name: str) -> int:
    return pair.net.run(name, ["ipvsadm", "-Ln"]).stdout.count("Masq")


def events_after(pair: DirectorPair, name: str, count: int) -> list[dict[str, Any]]:
    return pair.log_events(name)[count:]


def test_reload_of_one_weight_is_one_ipvs_op_and_no_vrrp_transition(pair: DirectorPair) -> None:
    before = len(pair.log_events("dir1"))
    path = pair.config_path("dir1")
    path.write_text(path.read_text().replace(
        "- {address: 10.0.0.12, port: 80}", "- {address: 10.0.0.12, port: 80, weight: 3}"))
    pair.directors["dir1"].send_signal(signal.SIGHUP)
    wait_until(lambda: any(e["event"] == "config.reload.applied"
                           for e in events_after(pair, "dir1", before)), 30)
    wait_until(lambda: "10.0.0.12:80                 Masq    3" in pair.net.run(
        "dir1", ["ipvsadm", "-Ln"]).stdout, 10)
    time.sleep(1.0)  # room for any op or transition that should not happen
    new = events_after(pair, "dir1", before)
    ops = [e for e in new if e["event"] in IPVS_OPS]
    assert [(e["event"], e["rs"], e["weight"]) for e in ops] == [
        ("ipvs.dest.updated", "10.0.0.12:80", 3)]
    assert not [e for e in new if e["event"] == "vrrp.transition"]
    assert pair.holds_vip("dir1")


def test_invalid_reload_changes_nothing(pair: DirectorPair) -> None:
    before = len(pair.log_events("dir1"))
    table = pair.net.run("dir1", ["ipvsadm", "-Ln"]).stdout
    path = pair.config_path("dir1")
    good = path.read_text()
    path.write_text(good.replace("scheduler: rr", "scheduler: fastest"))
    try:
        pair.directors["dir1"].send_signal(signal.SIGHUP)
        wait_until(lambda: any(e["event"] == "config.reload.rejected"
                               for e in events_after(pair, "dir1", before)), 30)
        rejected = next(e for e in events_after(pair, "dir1", before)
                        if e["event"] == "config.reload.rejected")
        assert any("virtual_servers[0].scheduler" in error for error in rejected["errors"])
        time.sleep(1.0)
        assert pair.net.run("dir1", ["ipvsadm", "-Ln"]).stdout == table
        new = events_after(pair, "dir1", before)
        assert not [e for e in new if e["event"] in IPVS_OPS or e["event"] == "vrrp.transition"]
    finally:
        path.write_text(good)


def test_sigterm_on_the_master_moves_the_vip_within_skew_time(pair: DirectorPair) -> None:
    before = len(pair.log_events("dir2"))
    sent = time.time()
    pair.stop_director("dir1")
    wait_until(lambda: pair.holds_vip("dir2"), 10)
    took = next(
        datetime.fromisoformat(e["timestamp"]).timestamp() - sent
        for e in events_after(pair, "dir2", before)
        if e["event"] == "vrrp.transition" and e["to_state"] == "master"
    )
    skew = skew_time(100, SETTINGS.advert_interval, 3)
    assert took <= skew + 0.1, f"takeover after {took:.3f} s, skew {skew:.3f} s"
    assert not pair.holds_vip("dir1")


def test_restart_adopts_the_table_with_zero_ops(pair: DirectorPair) -> None:
    # dir1 was stopped by the previous test; its table stayed (the default).
    if "dir1" in pair.directors:
        pair.stop_director("dir1")
    assert ipvs_dests(pair, "dir1") == 3
    before = len(pair.log_events("dir1"))
    pair.start_director("dir1")
    wait_until(lambda: pair.holds_vip("dir1"), 60)  # preempts: priority 150
    time.sleep(2.0)  # every check has reported at least once (interval 0.5 s)
    new = events_after(pair, "dir1", before)
    adopted = next(e for e in new if e["event"] == "ipvs.table.adopted")
    assert adopted["ops"] == 0
    assert not [e for e in new if e["event"] in IPVS_OPS]


def test_a_killed_vrrp_process_leaves_no_vip_behind(pair: DirectorPair) -> None:
    # Nothing defends the VIPs of a VRRP process that died: the daemon removes them the
    # moment it notices, not when the next process has started (a fresh interpreter,
    # seconds later in the lab; meanwhile the peer's Master_Down_Timer has fired and both
    # directors answered ARP for the VIP, as the nemesis found).
    from haipvs.lab.faults import vrrp_child_pid

    if "dir1" not in pair.directors:  # an earlier test stopped it
        pair.start_director("dir1")
    wait_until(lambda: pair.holds_vip("dir1") and pair.vrrp_state("dir2") == "BACKUP", 90)
    before = len(pair.log_events("dir1"))
    child = vrrp_child_pid(pair.directors["dir1"].pid)
    assert child is not None
    with pair.net.iproute("dir1") as ipr:
        index = ipr.link_lookup(ifname="eth0")[0]

        def held() -> bool:
            return any(m.get_attr("IFA_ADDRESS") == VIP for m in ipr.get_addr(index=index))

        assert held()
        os.kill(child, signal.SIGKILL)
        killed = time.time()
        while held():
            assert time.time() - killed < 10, "the VIP is still on dir1 10 s after the kill"
            time.sleep(0.005)
        gone = time.time()
    wait_until(lambda: any(e["event"] == "vrrp.process.died"
                           for e in events_after(pair, "dir1", before)), 10)
    died = next(e for e in events_after(pair, "dir1", before)
                if e["event"] == "vrrp.process.died")
    assert f"{VIP}/24 dev eth0" in died["vips_released"], died
    logged = datetime.fromisoformat(died["timestamp"]).timestamp()
    # Removed before the death was logged (a respawn waits 1 s after it, at least).
    assert gone <= logged + 0.2, f"VIP gone {gone - logged:.3f} s after the death was logged"
    # The new process takes it back: dir1 has the higher priority.
    wait_until(lambda: pair.holds_vip("dir1") and pair.vrrp_state("dir2") == "BACKUP", 60)
