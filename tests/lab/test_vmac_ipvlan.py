"""use_ipvlan in the lab: the daemon pair of haipvs.lab.pair with `vmac: {ipvlan: true}`.

The VIP lives on an L2 ipvlan vrrp.51 (bridge mode) on each director; it answers ARP
with its director's own MAC (an ipvlan has its base's MAC), the client reaches the VIP
across a failover once the new master's gratuitous ARPs moved its neighbour entry, and
a graceful stop removes the ipvlan.
"""

from __future__ import annotations

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

IPVLAN = "vrrp.51"


def ipvlan_config(name: str, settings: PairSettings) -> str:
    return haipvs_config(name, settings).replace(
        "    preempt: true\n", "    preempt: true\n    vmac: {ipvlan: true}\n", 1
    )


def holds_vip_on_ipvlan(pair: DirectorPair, name: str) -> bool:
    out = pair.net.run(name, ["ip", "-4", "-o", "addr", "show"], check=False).stdout
    return any(line.split()[1] == IPVLAN and f" {VIP}/" in line for line in out.splitlines())


def mac_of(pair: DirectorPair, name: str, ifname: str) -> str:
    out = pair.net.run(name, ["cat", f"/sys/class/net/{ifname}/address"]).stdout
    return out.strip()


@pytest.fixture
def pair() -> Iterator[DirectorPair]:
    with running_pair(PairSettings(), prefix="ipvl-") as built:
        for name in ("dir1", "dir2"):
            path = built.config_path(name)
            path.write_text(ipvlan_config(name, built.settings))
            path.chmod(0o644)
        built.start_real_servers()
        yield built


def test_the_vip_lives_on_an_ipvlan_with_the_directors_own_mac(pair: DirectorPair) -> None:
    pair.start_director("dir1")
    pair.start_director("dir2")
    wait_until(lambda: pair.vrrp_state("dir1") == "MASTER", 90)
    wait_until(lambda: pair.vrrp_state("dir2") == "BACKUP", 60)
    wait_until(lambda: holds_vip_on_ipvlan(pair, "dir1"), 10)
    for name in ("dir1", "dir2"):
        details = pair.net.run(name, ["ip", "-d", "-o", "link", "show", IPVLAN]).stdout
        assert "ipvlan" in details and "mode l2 bridge" in details
        assert mac_of(pair, name, IPVLAN) == mac_of(pair, name, "eth0")
    assert not holds_vip_on_ipvlan(pair, "dir2")

    pair.net.run("client", ["ip", "neigh", "flush", "dev", "eth0"])
    wait_until(pair.client_reaches_vip, 20)
    assert mac_of(pair, "dir1", "eth0") in pair.client_neighbour()

    pair.stop_director("dir1")
    gone = pair.net.run("dir1", ["ip", "-o", "link", "show", IPVLAN], check=False)
    assert gone.returncode != 0
    wait_until(lambda: pair.vrrp_state("dir2") == "MASTER", 30)
    wait_until(lambda: holds_vip_on_ipvlan(pair, "dir2"), 10)
    # The new master's gratuitous ARPs move the client's entry to its MAC.
    wait_until(lambda: mac_of(pair, "dir2", "eth0") in pair.client_neighbour(), 20)
    wait_until(pair.client_reaches_vip, 20)
