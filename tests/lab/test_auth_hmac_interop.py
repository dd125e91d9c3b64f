"""auth_hmac on the wire (lab): haipvs with haipvs, and haipvs with keepalived 2.4.3.

Two directors on one segment, VRRPv3 multicast, both with ``auth_hmac`` and the same
key. For each pairing and each role (master / backup swapped):

1. the higher priority becomes master and the other stays backup: each accepts the
   other's signed adverts (a backup refusing them would become master too);
2. adverts forged in the master's name reach the backup: signed with a wrong key
   (same key id), with a key id it does not hold, with a correct key but a timestamp
   far outside the window, and a replay of one of the master's own adverts. All
   carry priority 0, so one accepted would hand mastership to the backup at once.
   The backup stays backup and counts each by its reason: haipvs in its status
   (``auth_verdicts``), keepalived in its JSON stats (``auth_ext_*``);
3. the master stops (SIGTERM: a signed priority-0 advert) and the backup takes over.

With keepalived only: the same election over IPv6 and over unicast, the rollout steps
(receive-only, permissive, enforce; one director a step ahead) and the one wrong order
(signing before the peer verifies splits the pair).

keepalived 2.4.3 is not in Debian (2.2.7 has no auth_hmac): it is built into the lab
cache by ``python -m haipvs.lab.keepalived_build``; without it the keepalived cases
skip and name that command. The haipvs-with-haipvs cases always run.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address, ip_interface
from pathlib import Path
from typing import Any

import pytest
from pyroute2 import netns
from support import wait_for

from haipvs.lab.keepalived_build import BUILD_COMMAND, built_keepalived
from vrrp.auth_hmac import build_trailer, decode_key, sequence_at
from vrrp.packet import Advertisement, encode_advert, parse_ipv4_packet

pytestmark = pytest.mark.lab

ADDRESSES = {"a": "192.0.2.1", "b": "192.0.2.2"}
VIP = "198.51.100.10/24"
VRID = 51
GROUP = IPv4Address("224.0.0.18")
KEY = "hex:" + "5a" * 32
WRONG_KEY = "hex:" + "a5" * 32
PEER_SCRIPT = Path(__file__).with_name("vrrp_peer.py")
#: The verdicts each forged advert must produce, in haipvs's and keepalived's names.
EXPECTED = {
    "invalid_hmac": "auth_ext_invalid_hmac",
    "unknown_key": "auth_ext_unknown_key",
    "stale": "auth_ext_stale",
    "replay": "auth_ext_replay",
}


def children_of(pid: int) -> list[int]:
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
class Peer:
    kind: str  # "haipvs" or "keepalived"
    host: str
    tmp: Path
    proc: subprocess.Popen[bytes]
    log: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def state(self) -> str:
        if self.kind == "haipvs":
            path = self.tmp / "events"
            lines = path.read_text().splitlines() if path.exists() else []
            states = [json.loads(line).get("to") for line in lines if line.strip()]
            states = [state for state in states if state]
            return states[-1] if states else "NONE"
        states_file = self.tmp / "states"
        words = states_file.read_text().split() if states_file.exists() else []
        return words[-1] if words else "NONE"

    def verdicts(self) -> dict[str, int]:
        """Refusals by haipvs verdict name, from either implementation's own counters."""
        if self.kind == "haipvs":
            path = self.tmp / "status"
            if not path.exists():
                return {}
            (entry,) = json.loads(path.read_text())
            return dict(entry["auth_verdicts"])
        # keepalived writes $TMPDIR/keepalived.json on its JSON signal.
        target = self.tmp / "keepalived.json"
        target.unlink(missing_ok=True)
        os.kill(self.proc.pid, self.extra["json_signal"])
        if not wait_for(lambda: target.exists() and target.stat().st_size > 0, 10):
            return {}
        time.sleep(0.2)  # let the writer finish
        stats = _find_stats(json.loads(target.read_text()))
        return {ours: int(stats.get(theirs, 0)) for ours, theirs in EXPECTED.items()}

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def _find_stats(tree: Any) -> dict[str, Any]:
    if isinstance(tree, dict):
        if "auth_ext_replay" in tree:
            return tree
        for value in tree.values():
            found = _find_stats(value)
            if found:
                return found
    if isinstance(tree, list):
        for value in tree:
            found = _find_stats(value)
            if found:
                return found
    return {}


def keepalived_conf(
    tmp: Path,
    priority: int,
    vip: str = VIP,
    unicast: tuple[str, str] | None = None,
    mode: str | None = "enforce",
) -> Path:
    notify = tmp / "notify.sh"
    notify.write_text(f'#!/bin/sh\necho "$3" >> {tmp / "states"}\n')
    notify.chmod(0o755)
    conf = tmp / "keepalived.conf"
    conf.write_text(
        # vrrp_rlimit_rttime: the guest's one CPU is shared; keepalived's default
        # 10 ms realtime limit would get its VRRP child killed (keepalived.conf(5)).
        "global_defs {\n    router_id ka\n    script_user root\n"
        "    vrrp_rlimit_rttime 5000000\n}\n"
        "vrrp_instance VI_1 {\n    state BACKUP\n    interface eth0\n"
        f"    virtual_router_id {VRID}\n    priority {priority}\n    advert_int 1\n"
        "    version 3\n"
        + (
            f"    auth_hmac {{\n        key 1 {KEY}\n        active_key 1\n"
            f"        mode {mode}\n    }}\n"
            if mode
            else ""
        )
        + (
            f"    unicast_src_ip {unicast[0]}\n    unicast_peer {{\n        {unicast[1]}\n    }}\n"
            if unicast
            else ""
        )
        + f"    virtual_ipaddress {{\n        {vip}\n    }}\n"
        f"    notify {notify}\n}}\n"
    )
    return conf


@pytest.fixture
def start_peer(tmp_path: Path) -> Iterator[Callable[..., Peer]]:
    from haipvs.lab.topology import Endpoint, Host, Topology, Veth, build

    topology = Topology(
        hosts=(Host("a"), Host("b")),
        links=(
            Veth(
                Endpoint("a", "eth0", (f"{ADDRESSES['a']}/24",)),
                Endpoint("b", "eth0", (f"{ADDRESSES['b']}/24",)),
            ),
        ),
    )
    peers: list[Peer] = []
    with build(topology, prefix="authhmac-") as net:

        def start(
            kind: str,
            host: str,
            priority: int,
            *,
            vip: str = VIP,
            unicast: bool = False,
            mode: str | None = "enforce",
        ) -> Peer:
            other = "b" if host == "a" else "a"
            tmp = tmp_path / host
            tmp.mkdir(exist_ok=True)
            log = tmp / "log"
            if kind == "haipvs":
                argv = [
                    sys.executable,
                    str(PEER_SCRIPT),
                    "--priority",
                    str(priority),
                    "--vrid",
                    str(VRID),
                    "--vip",
                    VIP,
                    "--events",
                    str(tmp / "events"),
                    "--status",
                    str(tmp / "status"),
                ]
                if mode:
                    argv += ["--auth-key", f"1:{KEY}", "--auth-mode", mode]
                if unicast:
                    argv += ["--unicast-peer", ADDRESSES[other]]
                argv[argv.index("--vip") + 1] = vip
                proc = net.popen(host, argv, stdout=log.open("wb"), stderr=subprocess.STDOUT)
                peer = Peer(kind, host, tmp, proc, log)
                assert wait_for((tmp / "status").exists, 30), log.read_text()
            else:
                binary = built_keepalived()
                assert binary is not None
                conf = keepalived_conf(
                    tmp,
                    priority,
                    vip,
                    (ADDRESSES[host], ADDRESSES[other]) if unicast else None,
                    mode,
                )
                signum = int(
                    subprocess.run(
                        [str(binary), "--signum=JSON"], capture_output=True, text=True, check=True
                    ).stdout
                )
                proc = net.popen(
                    host,
                    [
                        "env",
                        f"TMPDIR={tmp}",
                        str(binary),
                        "-n",
                        "-l",
                        "-D",
                        "-f",
                        str(conf),
                        "-p",
                        str(tmp / "ka.pid"),
                        "-r",
                        str(tmp / "ka-vrrp.pid"),
                    ],
                    stdout=log.open("wb"),
                    stderr=subprocess.STDOUT,
                )
                peer = Peer(kind, host, tmp, proc, log, {"json_signal": signum})
                # `ip netns exec` then `env` exec in place: proc.pid is keepalived's parent.
                assert wait_for((tmp / "ka-vrrp.pid").exists, 30), log.read_text()
            peers.append(peer)
            return peer

        start.net = net  # type: ignore[attr-defined]
        try:
            yield start
        finally:
            for peer in peers:
                if peer.proc.poll() is None:
                    peer.proc.terminate()
                    try:
                        peer.proc.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        for child in children_of(peer.proc.pid):
                            with contextlib.suppress(ProcessLookupError):
                                os.kill(child, signal.SIGKILL)
                        peer.proc.kill()


class Injector:
    """Raw VRRP sockets: send in the master's name from its namespace, and capture the
    master's adverts in the backup's namespace (for the replay)."""

    def __init__(self, net: Any, master_host: str, backup_host: str) -> None:
        self.source = IPv4Address(ADDRESSES[master_host])
        netns.pushns(net.ns(master_host))
        try:
            self.send = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
            self.send.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, self.source.packed)
            self.send.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
            self.send.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
            self.send.bind((str(self.source), 0))
        finally:
            netns.popns()
        netns.pushns(net.ns(backup_host))
        try:
            ifindex = socket.if_nametoindex("eth0")
            self.recv = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
            self.recv.setsockopt(
                socket.IPPROTO_IP,
                socket.IP_ADD_MEMBERSHIP,
                struct.pack("4s4si", GROUP.packed, bytes(4), ifindex),
            )
        finally:
            netns.popns()

    def capture(self, timeout: float = 5.0) -> bytes:
        """One advert the master sent (the VRRP payload, trailer included)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.recv], [], [], 0.5)
            if not ready:
                continue
            source, _, _, payload = parse_ipv4_packet(self.recv.recv(2048))
            if source == self.source and payload[1] == VRID:
                return payload
        raise AssertionError("no advert from the master captured")

    def forged(self, *, key: str, key_id: int, wall: float) -> bytes:
        pdu = encode_advert(
            Advertisement(3, VRID, 0, 1.0, (ip_interface(VIP).ip,)), self.source, GROUP
        )
        trailer = build_trailer(
            pdu,
            key_id=key_id,
            key=decode_key(key),
            sequence=sequence_at(wall),
            version=3,
            vrid=VRID,
            source=self.source,
        )
        return pdu + trailer

    def inject(self, payload: bytes) -> None:
        self.send.sendto(payload, (str(GROUP), 0))

    def close(self) -> None:
        self.send.close()
        self.recv.close()


PAIRINGS = [
    pytest.param("haipvs", "haipvs", id="haipvs-master-haipvs-backup"),
    pytest.param("haipvs", "keepalived", id="haipvs-master-keepalived-backup"),
    pytest.param("keepalived", "haipvs", id="keepalived-master-haipvs-backup"),
]


@pytest.mark.parametrize(("master_kind", "backup_kind"), PAIRINGS)
def test_auth_hmac_pair(
    start_peer: Callable[..., Peer], master_kind: str, backup_kind: str
) -> None:
    if "keepalived" in (master_kind, backup_kind) and built_keepalived() is None:
        pytest.skip(
            "keepalived 2.4.3 (auth_hmac) is not built in the lab cache; build it with: "
            + BUILD_COMMAND
            + " (source: a git export of acassen/keepalived tag v2.4.3)"
        )
    master = start_peer(master_kind, "a", 150)
    backup = start_peer(backup_kind, "b", 100)
    # 1. Each accepts the other's signed adverts: one master, one backup, stable.
    assert wait_for(lambda: master.state() == "MASTER" and backup.state() == "BACKUP", 30), (
        master.state(),
        backup.state(),
        master.log.read_text()[-2000:],
        backup.log.read_text()[-2000:],
    )
    time.sleep(3)
    assert (master.state(), backup.state()) == ("MASTER", "BACKUP")
    before = backup.verdicts()
    assert all(before.get(verdict, 0) == 0 for verdict in EXPECTED), before

    # 2. Forged and replayed adverts in the master's name, each with priority 0.
    injector = Injector(start_peer.net, "a", "b")  # type: ignore[attr-defined]
    try:
        captured = injector.capture()
        assert len(captured) == 12 + 28  # header, one VIP, the trailer
        now = time.time()
        injector.inject(injector.forged(key=WRONG_KEY, key_id=1, wall=now))
        injector.inject(injector.forged(key=KEY, key_id=9, wall=now))
        injector.inject(injector.forged(key=KEY, key_id=1, wall=now - 1000))
        time.sleep(1.5)  # the master has sent newer adverts since the capture
        injector.inject(captured)
    finally:
        injector.close()

    def counted() -> bool:
        seen = backup.verdicts()
        return all(seen.get(verdict, 0) >= 1 for verdict in EXPECTED)

    assert wait_for(counted, 15), backup.verdicts()
    time.sleep(2)
    assert backup.state() == "BACKUP", backup.log.read_text()[-2000:]
    seen = backup.verdicts()
    print(
        "RESULT",
        f"pair={master_kind}-{backup_kind}",
        " ".join(f"{verdict}={seen.get(verdict, 0)}" for verdict in EXPECTED),
    )

    # 3. The master resigns (a signed priority-0 advert): the backup takes over.
    master.stop()
    assert wait_for(lambda: backup.state() == "MASTER", 15), backup.log.read_text()[-2000:]


ELECTIONS = [
    pytest.param(master, backup, vip, unicast, id=f"{master}-master-{backup}-backup-{label}")
    for vip, unicast, label in (
        ("2001:db8:10::10/64", False, "ipv6"),
        (VIP, True, "unicast"),
    )
    for master, backup in (("haipvs", "keepalived"), ("keepalived", "haipvs"))
]


@pytest.mark.parametrize(("master_kind", "backup_kind", "vip", "unicast"), ELECTIONS)
def test_auth_hmac_election_over_ipv6_and_unicast(
    start_peer: Callable[..., Peer], master_kind: str, backup_kind: str, vip: str, unicast: bool
) -> None:
    # IPv6: the trailer sits inside the kernel-style checksum (keepalived's
    # IPV6_CHECKSUM), and the HMAC binds the link-local source. Unicast: keepalived
    # keeps the anti-replay mark per configured peer. Each side must accept the
    # other's signed adverts, and a signed priority-0 advert must hand over.
    if built_keepalived() is None:
        pytest.skip(
            "keepalived 2.4.3 (auth_hmac) is not built in the lab cache; build it with: "
            + BUILD_COMMAND
        )
    master = start_peer(master_kind, "a", 150, vip=vip, unicast=unicast)
    backup = start_peer(backup_kind, "b", 100, vip=vip, unicast=unicast)
    assert wait_for(lambda: master.state() == "MASTER" and backup.state() == "BACKUP", 30), (
        master.state(),
        backup.state(),
        master.log.read_text()[-2000:],
        backup.log.read_text()[-2000:],
    )
    time.sleep(3)
    assert (master.state(), backup.state()) == ("MASTER", "BACKUP")
    ours = master if master.kind == "haipvs" else backup
    assert not any(key.startswith("auth_") for key in _dropped(ours)), _dropped(ours)
    master.stop()
    assert wait_for(lambda: backup.state() == "MASTER", 15), backup.log.read_text()[-2000:]


def _dropped(peer: Peer) -> dict[str, int]:
    (entry,) = json.loads((peer.tmp / "status").read_text())
    return dict(entry["adverts_dropped"])


ROLLOUT = [
    pytest.param(
        ka_mode, our_mode, role, id=f"keepalived-{ka_mode or 'none'}-haipvs-{our_mode}-{role}"
    )
    for ka_mode, our_mode in (
        (None, "receive-only"),
        ("receive-only", "permissive"),
        ("permissive", "enforce"),
    )
    for role in ("haipvs-master", "keepalived-master")
]


@pytest.mark.parametrize(("ka_mode", "our_mode", "role"), ROLLOUT)
def test_rollout_steps_never_split_the_pair(
    start_peer: Callable[..., Peer], ka_mode: str | None, our_mode: str, role: str
) -> None:
    # keepalived's hitless rollout, one director a step ahead of the other: nobody
    # signs before everybody verifies (receive-only), nobody enforces before everybody
    # signs (permissive). Each step keeps one master.
    if built_keepalived() is None:
        pytest.skip(
            "keepalived 2.4.3 (auth_hmac) is not built in the lab cache; build it with: "
            + BUILD_COMMAND
        )
    ours_high = role == "haipvs-master"
    ours = start_peer("haipvs", "a", 150 if ours_high else 100, mode=our_mode)
    theirs = start_peer("keepalived", "b", 100 if ours_high else 150, mode=ka_mode)
    master, backup = (ours, theirs) if ours_high else (theirs, ours)
    assert wait_for(lambda: master.state() == "MASTER" and backup.state() == "BACKUP", 30), (
        master.state(),
        backup.state(),
        theirs.log.read_text()[-2000:],
    )
    time.sleep(3)
    assert (master.state(), backup.state()) == ("MASTER", "BACKUP")
    assert not _dropped(ours), _dropped(ours)
    if not ours_high:
        # What we heard from the keepalived master: unsigned adverts accepted while it
        # does not sign yet, verified ones once it does. (A backup keepalived is silent:
        # its staying BACKUP is what shows it accepted ours.)
        verdicts = json.loads((ours.tmp / "status").read_text())[0]["auth_verdicts"]
        expected = {"unsigned"} if ka_mode in (None, "receive-only") else {"ok"}
        assert set(verdicts) == expected, verdicts


def test_signing_before_the_peer_verifies_splits_the_pair(
    start_peer: Callable[..., Peer],
) -> None:
    # The step the modes exist to prevent: a keepalived without auth_hmac takes a
    # signed advert for a malformed one (28 octets too long) and claims mastership.
    if built_keepalived() is None:
        pytest.skip(
            "keepalived 2.4.3 (auth_hmac) is not built in the lab cache; build it with: "
            + BUILD_COMMAND
        )
    ours = start_peer("haipvs", "a", 150, mode="permissive")
    theirs = start_peer("keepalived", "b", 100, mode=None)
    assert wait_for(lambda: ours.state() == "MASTER" and theirs.state() == "MASTER", 30), (
        ours.state(),
        theirs.state(),
    )
    assert "too long" in theirs.log.read_text()
