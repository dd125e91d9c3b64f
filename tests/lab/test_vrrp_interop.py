"""haipvs VRRP against a real keepalived 2.2.7, as a pair on one segment (lab).

For v2 and v3, multicast and unicast, and with haipvs in each role: the higher
priority becomes master and the other backup; killing the master (SIGKILL, its
VIP removed, as a dead machine) makes the other master; at every settled point
exactly one namespace holds the VIP.

haipvs runs as tests/lab/vrrp_peer.py (VrrpService on the real Linux ports);
keepalived as ``keepalived -n -l -D -f CONF -p PID -r VRRPPID -c CHECKPID``.
Each case builds and tears down its own namespaces.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support import wait_for

pytestmark = pytest.mark.lab

KA = "192.0.2.1"
US = "192.0.2.2"
VIP = "198.51.100.10/24"
PEER_SCRIPT = Path(__file__).with_name("vrrp_peer.py")


def children_of(pid: int) -> list[int]:
    """Every descendant of ``pid`` (``ip netns exec`` execs keepalived in place)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        kids = [child for child, parent in parents.items() if parent == current]
        found += kids
        frontier += kids
    return found


@dataclass
class Pair:
    net: Any
    tmp: Path
    keepalived: subprocess.Popen[bytes]
    ours: subprocess.Popen[bytes]

    def ka_state(self) -> str:
        states = self.tmp / "ka-states"
        words = states.read_text().split() if states.exists() else []
        return words[-1] if words else "NONE"

    def our_events(self) -> list[dict[str, Any]]:
        path = self.tmp / "events"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def our_state(self) -> str:
        states = [event["to"] for event in self.our_events() if "to" in event]
        return states[-1] if states else "NONE"

    def holds_vip(self, host: str) -> bool:
        shown = self.net.run(host, ["ip", "-o", "addr", "show", "dev", "eth0"]).stdout
        return VIP.split("/", maxsplit=1)[0] + "/" in shown

    def holders(self) -> list[str]:
        return [host for host in ("ka", "us") if self.holds_vip(host)]

    def settled(self, ka: str, us: str) -> bool:
        expected = ["ka"] if ka == "MASTER" else ["us"] if us == "MASTER" else []
        return self.ka_state() == ka and self.our_state() == us and self.holders() == expected

    def kill_keepalived(self) -> None:
        # Freeze the parent so it cannot respawn a child, SIGKILL the children
        # (the VRRP process), then the parent: killing the parent first lets a
        # child resign gracefully (priority 0), which is not a crash.
        self.keepalived.send_signal(signal.SIGSTOP)
        for child in children_of(self.keepalived.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        self.keepalived.kill()
        self.keepalived.wait(timeout=10)
        # A dead machine's addresses are gone with it (lab notes).
        self.net.run("ka", ["ip", "addr", "del", VIP, "dev", "eth0"], check=False)

    def kill_ours(self) -> None:
        self.ours.kill()
        self.ours.wait(timeout=10)
        self.net.run("us", ["ip", "addr", "del", VIP, "dev", "eth0"], check=False)


def keepalived_conf(
    tmp: Path, *, version: int, interval: float, priority: int, unicast: bool,
    old_checksum: bool = False,
) -> Path:
    notify = tmp / "ka-notify.sh"
    notify.write_text(f'#!/bin/sh\necho "$3" >> {tmp / "ka-states"}\n')
    notify.chmod(0o755)
    unicast_block = (
        f"    unicast_src_ip {KA}\n    unicast_peer {{\n        {US}\n    }}\n" if unicast else ""
    )
    if old_checksum:  # keepalived < 1.3.6's VRRPv3 unicast checksum (over 224.0.0.18)
        unicast_block += "    old_unicast_checksum\n"
    conf = tmp / "keepalived.conf"
    conf.write_text(
        # The lab guest's CPU is emulated and slow: keepalived's default 10 ms
        # RLIMIT_RTTIME gets its realtime VRRP child SIGKILLed by the kernel
        # (and respawned), which is not the crash under test. keepalived.conf(5):
        # "These values may need to be increased for slower processors."
        "global_defs {\n    router_id ka\n    script_user root\n"
        "    vrrp_rlimit_rttime 5000000\n}\n"
        "vrrp_instance VI_1 {\n    state BACKUP\n    interface eth0\n"
        f"    virtual_router_id 51\n    priority {priority}\n    advert_int {interval:g}\n"
        f"    version {version}\n{unicast_block}"
        f"    virtual_ipaddress {{\n        {VIP}\n    }}\n"
        f"    notify {notify}\n}}\n"
    )
    return conf


@pytest.fixture
def start_pair(tmp_path: Path) -> Iterator[Callable[..., Pair]]:
    from haipvs.lab.topology import Endpoint, Host, Topology, Veth, build

    topology = Topology(
        hosts=(Host("ka"), Host("us")),
        links=(Veth(Endpoint("ka", "eth0", (f"{KA}/24",)), Endpoint("us", "eth0", (f"{US}/24",))),),
    )
    procs: list[subprocess.Popen[bytes]] = []
    with build(topology, prefix="vrrp-iop-") as net:

        def start(*, version: int, interval: float, ka_priority: int, us_priority: int,
                  unicast: bool, old_checksum: bool = False) -> Pair:
            conf = keepalived_conf(
                tmp_path, version=version, interval=interval, priority=ka_priority,
                unicast=unicast, old_checksum=old_checksum,
            )
            ka_log = (tmp_path / "keepalived.log").open("wb")
            keepalived = net.popen(
                "ka",
                ["keepalived", "-n", "-l", "-D", "-f", str(conf),
                 "-p", str(tmp_path / "ka.pid"), "-r", str(tmp_path / "ka-vrrp.pid"),
                 "-c", str(tmp_path / "ka-check.pid")],
                stdout=ka_log, stderr=subprocess.STDOUT,
            )
            procs.append(keepalived)
            argv = [sys.executable, str(PEER_SCRIPT), "--priority", str(us_priority),
                    "--version", str(version), "--advert-interval", f"{interval:g}",
                    "--vip", VIP, "--events", str(tmp_path / "events")]
            if unicast:
                argv += ["--unicast-peer", KA]
            ours_log = (tmp_path / "ours.log").open("wb")
            ours = net.popen("us", argv, stdout=ours_log, stderr=subprocess.STDOUT)
            procs.append(ours)
            pair = Pair(net, tmp_path, keepalived, ours)
            assert wait_for(lambda: any(e.get("ready") for e in pair.our_events()), 30), (
                (tmp_path / "ours.log").read_text()
            )
            return pair

        try:
            yield start
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        proc.kill()


CASES = [
    pytest.param(version, interval, unicast, role, id=f"v{version}-{mode}-haipvs-{role}")
    for version, interval in ((2, 1.0), (3, 0.2))
    for unicast, mode in ((False, "multicast"), (True, "unicast"))
    for role in ("master", "backup")
]


@pytest.mark.parametrize(("version", "interval", "unicast", "role"), CASES)
def test_pair_with_keepalived(
    start_pair: Callable[..., Pair], version: int, interval: float, unicast: bool, role: str
) -> None:
    ours_high = role == "master"
    pair = start_pair(
        version=version,
        interval=interval,
        ka_priority=100 if ours_high else 150,
        us_priority=150 if ours_high else 100,
        unicast=unicast,
    )
    settle = 3 * interval + 10
    # 1. The higher priority is master, the other backup, one VIP holder.
    if ours_high:
        assert wait_for(lambda: pair.settled(ka="BACKUP", us="MASTER"), settle), pair.holders()
    else:
        assert wait_for(lambda: pair.settled(ka="MASTER", us="BACKUP"), settle), pair.holders()
    # Stable: no flapping over several advert intervals.
    time.sleep(5 * interval)
    transitions_before = len(pair.our_events())
    time.sleep(5 * interval)
    assert len(pair.our_events()) == transitions_before
    # 2. Kill the master: the other takes over, still one VIP holder.
    if ours_high:
        pair.kill_ours()
        assert wait_for(lambda: pair.ka_state() == "MASTER" and pair.holders() == ["ka"], settle)
    else:
        pair.kill_keepalived()
        assert wait_for(lambda: pair.our_state() == "MASTER" and pair.holders() == ["us"], settle)
        last = [e for e in pair.our_events() if "to" in e][-1]
        assert last["reason"] == "master_down_timer"
        assert last["detail"].startswith(f"peer={KA} peer_priority=150")
    # Our instance never saw anything it had to drop (checksums, TTL, VRID, auth).
    assert "vrrp.advert.dropped" not in (pair.tmp / "ours.log").read_text()


def test_graceful_stop_hands_over_to_keepalived(start_pair: Callable[..., Pair]) -> None:
    pair = start_pair(version=3, interval=0.2, ka_priority=100, us_priority=150, unicast=False)
    assert wait_for(lambda: pair.settled(ka="BACKUP", us="MASTER"), 15)
    pair.ours.send_signal(signal.SIGTERM)
    assert pair.ours.wait(timeout=20) == 0
    # Priority 0 and VIPs removed by us; keepalived takes over after its skew time.
    assert wait_for(lambda: pair.ka_state() == "MASTER" and pair.holders() == ["ka"], 5)
    assert any(event.get("stopped") for event in pair.our_events())


def test_keepalived_with_the_old_unicast_checksum_is_followed(
    start_pair: Callable[..., Pair],
) -> None:
    # keepalived's old_unicast_checksum: its VRRPv3 unicast adverts carry the checksum
    # over 224.0.0.18. We detect it (as keepalived does), follow it as backup, and
    # send the same form once we are master.
    pair = start_pair(version=3, interval=0.2, ka_priority=150, us_priority=100,
                      unicast=True, old_checksum=True)
    assert wait_for(lambda: pair.settled(ka="MASTER", us="BACKUP"), 15), pair.holders()
    time.sleep(2)
    assert pair.settled(ka="MASTER", us="BACKUP"), pair.holders()
    log = (pair.tmp / "ours.log").read_text()
    assert log.count("vrrp.checksum.compat") == 1, log
    assert "vrrp.advert.dropped" not in log


def test_keepalived_with_the_old_unicast_checksum_yields_to_our_higher_priority(
    start_pair: Callable[..., Pair],
) -> None:
    # keepalived (backup, old_unicast_checksum) refuses our RFC checksums at first and
    # becomes master too; its first old-form advert switches us to that form, and it
    # then hears our higher priority and steps down.
    pair = start_pair(version=3, interval=0.2, ka_priority=100, us_priority=150,
                      unicast=True, old_checksum=True)
    assert wait_for(lambda: pair.settled(ka="BACKUP", us="MASTER"), 15), pair.holders()
    time.sleep(2)
    assert pair.settled(ka="BACKUP", us="MASTER"), pair.holders()
    assert (pair.tmp / "ours.log").read_text().count("vrrp.checksum.compat") == 1
