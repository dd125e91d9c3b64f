"""use_vmac in the lab: the daemon pair of haipvs.lab.pair with `vmac: {}` on the instance.

The VIP lives on a macvlan vrrp.51 with the RFC 5798 §7.3 MAC 00:00:5e:00:01:33 on both
directors; the master's answers ARP for the VIP with that MAC, and after a failover the
client reaches the VIP through the same neighbour entry (same MAC), the new master's
gratuitous ARPs having moved it on the switch. A graceful stop removes the macvlan.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from haipvs.lab.pair import (
    VIP,
    DirectorPair,
    PairSettings,
    haipvs_config,
    running_pair,
    wait_until,
)

pytestmark = pytest.mark.lab

VMAC = "vrrp.51"
MAC = "00:00:5e:00:01:33"


def vmac_config(name: str, settings: PairSettings, vmac: str) -> str:
    return haipvs_config(name, settings).replace(
        "    preempt: true\n", f"    preempt: true\n    vmac: {vmac}\n", 1
    )


def sent_frames(pair: DirectorPair, name: str) -> int:
    out = pair.net.run(name, ["ip", "-j", "-s", "link", "show", VMAC]).stdout
    return int(json.loads(out)[0]["stats64"]["tx"]["packets"])


def link(pair: DirectorPair, name: str) -> str:
    """`ip -o link show vrrp.51` on the director ('' when it does not exist)."""
    return pair.net.run(name, ["ip", "-o", "link", "show", VMAC], check=False).stdout


def holds_vip_on_vmac(pair: DirectorPair, name: str) -> bool:
    out = pair.net.run(name, ["ip", "-4", "-o", "addr", "show"], check=False).stdout
    return any(line.split()[1] == VMAC and f" {VIP}/" in line for line in out.splitlines())


def http_status(pair: DirectorPair) -> str:
    return pair.net.run(
        "client",
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "3", f"http://{VIP}/"],
        check=False,
    ).stdout


@pytest.fixture(params=["{}", "{xmit_base: true}"], ids=["adverts-from-vmac", "xmit-base"])
def pair(request: pytest.FixtureRequest) -> Iterator[DirectorPair]:
    with running_pair(PairSettings(), prefix="vmac-") as built:
        for name in ("dir1", "dir2"):
            path = built.config_path(name)
            path.write_text(vmac_config(name, built.settings, request.param))
            path.chmod(0o644)
        built.start_real_servers()
        yield built


def test_the_vip_answers_with_the_virtual_mac_and_keeps_it_across_failover(
    pair: DirectorPair,
) -> None:
    pair.start_director("dir1")
    pair.start_director("dir2")
    wait_until(lambda: pair.vrrp_state("dir1") == "MASTER", 90)
    wait_until(lambda: pair.vrrp_state("dir2") == "BACKUP", 60)
    wait_until(lambda: holds_vip_on_vmac(pair, "dir1"), 10)
    for name in ("dir1", "dir2"):
        # Both directors have the macvlan, in private mode, with the virtual MAC.
        assert MAC in link(pair, name)
        details = pair.net.run(name, ["ip", "-d", "-o", "link", "show", VMAC]).stdout
        assert "macvlan mode private" in details
        conf = f"/proc/sys/net/ipv4/conf/{VMAC}/"
        values = [
            pair.net.run(name, ["cat", conf + key]).stdout.strip()
            for key in ("arp_ignore", "accept_local", "rp_filter")
        ]
        assert values == ["1", "1", "0"]
        base = [
            pair.net.run(name, ["cat", f"/proc/sys/net/ipv4/conf/eth0/{key}"]).stdout.strip()
            for key in ("arp_ignore", "arp_filter", "arp_announce")
        ]
        assert base == ["1", "1", "2"]
    assert not holds_vip_on_vmac(pair, "dir2")
    # The backup's macvlan carries the master's MAC: while backup it sends no frame (no
    # IGMP report for 224.0.0.18, no IPv6), so no switch learns the MAC on the wrong
    # port. (It may have been master for a moment if its daemon started first.)
    before = sent_frames(pair, "dir2")
    time.sleep(3)
    assert sent_frames(pair, "dir2") == before
    assert pair.vrrp_state("dir2") == "BACKUP"

    # The client learns the VIP's MAC by ARP: the virtual one, from dir1's macvlan.
    pair.net.run("client", ["ip", "neigh", "flush", "dev", "eth0"])
    wait_until(pair.client_reaches_vip, 20)
    assert MAC in pair.client_neighbour()
    wait_until(lambda: http_status(pair) == "200", 30)

    # Failover: dir1 stops (its VIP and then its macvlan go), dir2 takes the VIP on its
    # own macvlan with the same MAC. The client's neighbour entry stays as it was.
    pair.stop_director("dir1")
    assert link(pair, "dir1") == ""
    wait_until(lambda: pair.vrrp_state("dir2") == "MASTER", 30)
    wait_until(lambda: holds_vip_on_vmac(pair, "dir2"), 10)
    wait_until(pair.client_reaches_vip, 20)
    assert MAC in pair.client_neighbour()
    wait_until(lambda: http_status(pair) == "200", 30)
    # And a fresh ARP gets the same MAC, now from dir2.
    pair.net.run("client", ["ip", "neigh", "flush", "dev", "eth0"])
    wait_until(pair.client_reaches_vip, 20)
    assert MAC in pair.client_neighbour()
    ready = [e for e in pair.log_events("dir2") if e["event"] == "vrrp.vmac.ready"]
    assert ready and (ready[0]["iface"], ready[0]["mac"]) == (VMAC, MAC)
