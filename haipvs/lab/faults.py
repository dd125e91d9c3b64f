"""Fault injection and observation for a lab director pair (haipvs.lab.pair).

Shared by the chaos scenarios (haipvs/lab/chaos.py) and the nemesis
(bench/nemesis.py). Faults use what the lab kernel has: ``tc`` (netem, ingress u32
drops standing in for nftables), ``ip link``, ``ipvsadm``, signals, ``date -s``, and
two small helpers run inside a lab namespace (``python -m haipvs.lab.faults``):

    flood --dst 224.0.0.18 --seconds 3 --pps 2000   # VRRP garbage, spoofed sources
    idle --port 9797 --count 600                    # idle API connections until EOF

Every packet stays inside the guest's own namespaces: the flooder sends on the lab's
front segment (from the client namespace) and nowhere else.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from haipvs.lab.pair import DIRECTORS, GATEWAY_VIP, VIP

if TYPE_CHECKING:
    from haipvs.lab.pair import DirectorPair

__all__ = [
    "ProcessView",
    "drop_vrrp_ingress",
    "heal_tc",
    "holds",
    "holds_both",
    "in_lab_guest",
    "ipvs_line_weights",
    "ipvs_weights",
    "netem",
    "process_view",
    "step_realtime_clock",
    "tc",
    "vip_holders",
    "vrrp_child_pid",
    "write_config",
]

VRRP_GROUP = "224.0.0.18"
VRRP_PROTOCOL = 112


# --------------------------------------------------------------------- observing

def holds(pair: DirectorPair, name: str) -> bool:
    """The front VIP (eth0) or the inside gateway VIP (eth1)."""
    out = pair.net.run(name, ["ip", "-4", "-o", "addr", "show"]).stdout
    return f" {VIP}/" in out or f" {GATEWAY_VIP}/" in out


def holds_both(pair: DirectorPair, name: str) -> bool:
    out = pair.net.run(name, ["ip", "-4", "-o", "addr", "show"]).stdout
    return f" {VIP}/" in out and f" {GATEWAY_VIP}/" in out


def vip_holders(pair: DirectorPair) -> list[str]:
    return [name for name in DIRECTORS if holds(pair, name)]


def ipvs_weights(pair: DirectorPair, name: str) -> dict[str, int]:
    """rs address -> weight in the director's kernel table."""
    return ipvs_line_weights(pair.net.run(name, ["ipvsadm", "-Ln"], check=False).stdout)


def ipvs_line_weights(listing: str) -> dict[str, int]:
    """rs address -> weight, from `ipvsadm -Ln` output (NAT rows)."""
    weights: dict[str, int] = {}
    for line in listing.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] == "->" and parts[2] == "Masq":
            weights[parts[1].rsplit(":", 1)[0]] = int(parts[3])
    return weights


@dataclass(frozen=True, slots=True)
class ProcessView:
    """A daemon as /proc shows it: its own descriptors and memory, its descendants."""

    pid: int
    fds: int
    rss_kib: int
    zombies: int
    vrrp_child: int | None
    scripts: frozenset[int]  # descendants other than the VRRP child (hooks, scripts)
    # CPU seconds (user + system) the daemon and its VRRP child have used so far
    cpu_s: float = 0.0


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                found += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children")
                          .read_text().split()]
    return found


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "?"
    return stat.rpartition(")")[2].split()[0]


def vrrp_child_pid(pid: int) -> int | None:
    """The daemon's VRRP process (haipvs.daemon.vrrp_process), if one runs: it names
    itself haipvs-vrrp, whether forked from the daemon or exec'd."""
    for child in _children(pid):
        if _comm(child) == "haipvs-vrrp" and _state(child) != "Z":
            return child
    return None


def _cpu_seconds(pid: int) -> float:
    """utime + stime of one process (proc(5) fields 14 and 15), 0.0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def process_view(pid: int) -> ProcessView | None:
    """None when the process is gone."""
    try:
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    rss = 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    descendants: list[int] = []
    pending = _children(pid)
    while pending:
        child = pending.pop()
        descendants.append(child)
        pending += _children(child)
    states = {child: _state(child) for child in descendants}
    vrrp = vrrp_child_pid(pid)
    scripts = frozenset(c for c, s in states.items() if c != vrrp and s not in ("Z", "?"))
    cpu = _cpu_seconds(pid) + (_cpu_seconds(vrrp) if vrrp is not None else 0.0)
    return ProcessView(pid, fds, rss, sum(1 for s in states.values() if s == "Z"), vrrp,
                       scripts, cpu)


# --------------------------------------------------------------------- faults

def tc(pair: DirectorPair, host: str, *args: str, check: bool = True) -> None:
    pair.net.run(host, ["tc", *args], check=check)


def drop_vrrp_ingress(pair: DirectorPair, host: str) -> None:
    """Drop every VRRP packet (IP protocol 112) arriving on the host's eth0."""
    tc(pair, host, "qdisc", "add", "dev", "eth0", "ingress")
    tc(pair, host, "filter", "add", "dev", "eth0", "parent", "ffff:", "protocol", "ip",
       "prio", "1", "u32", "match", "ip", "protocol", str(VRRP_PROTOCOL), "0xff",
       "action", "drop")


def netem(pair: DirectorPair, host: str, *, loss_pct: float, delay_ms: float) -> None:
    """Loss and delay on everything the host sends on eth0 (adverts, answers)."""
    args = ["qdisc", "add", "dev", "eth0", "root", "netem", "loss", f"{loss_pct:g}%"]
    if delay_ms:
        args += ["delay", f"{delay_ms:g}ms"]
    tc(pair, host, *args)


def heal_tc(pair: DirectorPair, host: str) -> None:
    tc(pair, host, "qdisc", "del", "dev", "eth0", "ingress", check=False)
    tc(pair, host, "qdisc", "del", "dev", "eth0", "root", check=False)


def write_config(pair: DirectorPair, name: str, text: str) -> None:
    """Atomically (a reader never sees half a file), owner-writable only."""
    path = pair.config_path(name)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.chmod(0o644)
    os.replace(tmp, path)


def in_lab_guest() -> bool:
    """True inside the lab's own guest kernel (booted with the lab's init), where a
    clock step reaches only the guest."""
    with contextlib.suppress(OSError):
        return "guest/init.sh" in Path("/proc/cmdline").read_text()
    return False


@contextlib.contextmanager
def step_realtime_clock(seconds: float) -> Iterator[None]:
    """CLOCK_REALTIME stepped by `seconds` (``date -s``: every process of the guest
    sees it), and stepped back on leaving, whatever happens inside. Refused outside
    the lab guest: stepping a real host's clock is no test."""
    if not in_lab_guest():
        raise RuntimeError("realtime clock steps only inside the lab guest")
    subprocess.run(["date", "-s", f"@{time.time() + seconds:.3f}"], check=True,
                   capture_output=True)
    try:
        yield
    finally:
        subprocess.run(["date", "-s", f"@{time.time() - seconds:.3f}"], check=True,
                       capture_output=True)


def signal_process(pid: int | None, signum: signal.Signals) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return False
    return True


# --------------------------------------------------------------------- helpers run in a namespace

def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def garbage_advert(rng: random.Random, destination: str, vrid: int) -> bytes:
    """An IPv4 packet of protocol 112 from a random unicast source, TTL 255, with a
    VRRPv3-looking advert (priority 254 for `vrid`) whose checksum is random: the kind
    an attacker on the segment sends (RFC 5798 §5.1.1.3 lets a receiver drop it only
    after looking)."""
    source = struct.pack("!I", rng.randrange(0x01000000, 0xDF000000))
    body = struct.pack("!BBBBH", 0x31, vrid, 254, 1, 50) + struct.pack(
        "!H", rng.randrange(0x10000)) + socket.inet_aton(VIP)
    length = 20 + len(body)
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0xC0, length, rng.randrange(1, 0x10000), 0,
                         255, VRRP_PROTOCOL, 0, source, socket.inet_aton(destination))
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return header + body


def flood(destination: str, seconds: float, pps: float, *, interface: str = "eth0",
          local: str = "198.51.100.2", vrid: int = 51, seed: int = 0) -> int:
    """Send garbage adverts to `destination` for `seconds` at about `pps`; the count sent."""
    rng = random.Random(seed)
    packets = [garbage_advert(rng, destination, vrid) for _ in range(4096)]
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(local))
    sent = 0
    started = time.monotonic()
    batch = max(1, int(pps / 50))
    while (elapsed := time.monotonic() - started) < seconds:
        for _ in range(batch):
            with contextlib.suppress(OSError):  # a full queue drops, as a wire would
                sock.sendto(packets[sent % len(packets)], (destination, 0))
            sent += 1
        ahead = sent / pps - elapsed
        if ahead > 0:
            time.sleep(ahead)
    sock.close()
    return sent


def idle_connections(port: int, count: int, host: str = "127.0.0.1") -> list[socket.socket]:
    """`count` TCP connections that send nothing (refused ones are skipped)."""
    opened: list[socket.socket] = []
    for _ in range(count):
        sock = socket.socket()
        sock.settimeout(2.0)
        try:
            sock.connect((host, port))
        except OSError:
            sock.close()
            continue
        opened.append(sock)
    return opened


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="lab fault helpers run in a namespace")
    sub = parser.add_subparsers(dest="what", required=True)
    flood_args = sub.add_parser("flood", help="VRRP garbage with spoofed sources")
    flood_args.add_argument("--dst", default=VRRP_GROUP)
    flood_args.add_argument("--seconds", type=float, default=3.0)
    flood_args.add_argument("--pps", type=float, default=2000.0)
    flood_args.add_argument("--seed", type=int, default=0)
    idle_args = sub.add_parser("idle", help="idle TCP connections until stdin closes")
    idle_args.add_argument("--port", type=int, default=9797)
    idle_args.add_argument("--count", type=int, default=600)
    args = parser.parse_args(argv)
    if args.what == "flood":
        sent = flood(args.dst, args.seconds, args.pps, seed=args.seed)
        print(f"sent {sent}", flush=True)
        return 0
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.count + 64), hard))
    opened = idle_connections(args.port, args.count)
    print(f"ready {len(opened)}", flush=True)
    sys.stdin.read()  # held until the harness closes our stdin
    for sock in opened:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
