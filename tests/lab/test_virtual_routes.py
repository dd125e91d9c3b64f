"""Virtual routes and rules (keepalived virtual_routes / virtual_rules) follow mastership in
the lab: the daemon pair of haipvs.lab.pair, each director with the same routes and rules;
only the MASTER has them in its kernel, across a graceful failover and a preemption back.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from haipvs.lab.pair import DirectorPair, PairSettings, haipvs_config, running_pair, wait_until

pytestmark = pytest.mark.lab

# A return route in table 100 whose source is the VIP (it needs the VIP in place first),
# a blackhole in main, and a rule sending the VIP's traffic to table 100.
ROUTING = """    routes:
      - {to: 203.0.113.0/24, via: 198.51.100.2, src: 198.51.100.10, table: 100}
      - {to: 192.0.2.0/24, type: blackhole}
    rules:
      - {source: 198.51.100.10/32, table: 100, priority: 1000}
"""


def routed_config(name: str, settings: PairSettings) -> str:
    return haipvs_config(name, settings).replace(
        "    preempt: true\n", "    preempt: true\n" + ROUTING, 1
    )


def installed(pair: DirectorPair, name: str) -> tuple[bool, bool, bool]:
    """(return route in table 100, blackhole in main, rule) present on the director."""
    # A table the director never held a route in does not exist in the kernel yet:
    # `ip route show table 100` then fails ("FIB table does not exist"), meaning empty.
    table = pair.net.run(
        name, ["ip", "-4", "route", "show", "table", "100"], check=False
    ).stdout
    main = pair.net.run(name, ["ip", "-4", "route", "show", "type", "blackhole"]).stdout
    rules = pair.net.run(name, ["ip", "-4", "rule", "show"]).stdout
    route = next((line for line in table.splitlines() if line.startswith("203.0.113.0/24")), "")
    return (
        # keepalived's protocol number, as keepalived marks its virtual routes
        "via 198.51.100.2 dev eth0" in route
        and "src 198.51.100.10" in route
        and "proto keepalived" in route,
        "blackhole 192.0.2.0/24" in main,
        "1000:\tfrom 198.51.100.10 lookup 100" in rules,
    )


NOTHING = (False, False, False)
EVERYTHING = (True, True, True)


@pytest.fixture
def pair() -> Iterator[DirectorPair]:
    with running_pair(PairSettings(), prefix="vrt-") as built:
        for name in ("dir1", "dir2"):
            path = built.config_path(name)
            path.write_text(routed_config(name, built.settings))
            path.chmod(0o644)
        built.start_real_servers()
        yield built


def test_routes_and_rules_follow_mastership_across_a_failover(pair: DirectorPair) -> None:
    pair.start_director("dir1")
    pair.start_director("dir2")
    wait_until(lambda: pair.vrrp_state("dir1") == "MASTER", 90)
    wait_until(lambda: pair.vrrp_state("dir2") == "BACKUP", 60)
    try:
        wait_until(lambda: installed(pair, "dir1") == EVERYTHING, 10)
    except TimeoutError:
        for command in (["ip", "route", "show", "table", "all"], ["ip", "rule"]):
            print(pair.net.run("dir1", command).stdout)
        print([e for e in pair.log_events("dir1") if e["event"].startswith("vrrp.route")])
        raise
    assert installed(pair, "dir2") == NOTHING
    # The kernel uses them: the VIP's traffic to 203.0.113.0/24 goes through table 100.
    lookup = pair.net.run(
        "dir1", ["ip", "-4", "route", "get", "203.0.113.5", "from", "198.51.100.10"]
    ).stdout
    assert "via 198.51.100.2" in lookup and "table 100" in lookup

    # Graceful stop of the master: its routes go with its VIPs, the backup takes all.
    pair.stop_director("dir1")
    assert installed(pair, "dir1") == NOTHING
    wait_until(lambda: pair.vrrp_state("dir2") == "MASTER", 30)
    wait_until(lambda: installed(pair, "dir2") == EVERYTHING, 10)
    assert pair.holds_vip("dir2")

    # dir1 returns with the higher priority and preempts: dir2 leaves MASTER for
    # BACKUP and removes them, dir1 installs them again.
    pair.start_director("dir1")
    wait_until(lambda: pair.vrrp_state("dir1") == "MASTER", 60)
    wait_until(lambda: installed(pair, "dir1") == EVERYTHING, 10)
    wait_until(lambda: installed(pair, "dir2") == NOTHING, 10)
    assert pair.vrrp_state("dir2") == "BACKUP"
    failed = [
        e
        for name in ("dir1", "dir2")
        for e in pair.log_events(name)
        if e["event"] == "vrrp.route.failed"
    ]
    assert failed == []
