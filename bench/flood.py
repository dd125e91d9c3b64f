"""VRRP garbage flood against a running pair, haipvs and keepalived (lab).

    python bench/flood.py [--rate 4000] [--duration 30]   # enters the lab itself

The lab director pair (haipvs.lab.pair: dir1 priority 150 MASTER, dir2 100, VRRPv3
at --advert-interval) runs; from the client namespace on the front segment a raw
IP_HDRINCL socket sends --rate protocol-112 packets per second for --duration
seconds, half to the VRRP group 224.0.0.18 and half to the VIP, each from a random
spoofed source (outside the front subnet), TTL 255, shaped like a winning VRRPv3
advert (VRID 51, priority 254, the pair's VIPs) with a random checksum: the
attack of the hostile-segment review, where 1 packet in 65,536 has a valid
checksum by chance. Every packet stays inside the guest's namespaces.

Measured, for haipvs and then keepalived 2.2.7 under the same flood in the same run:

- flood_pps: packets per second the flooder really sent (the target is --rate);
- transitions: VRRP state changes on either director from the flood start to 3 s
  after its end (haipvs ``vrrp.transition`` lines, keepalived "Entering ... STATE");
- dual_holder_ms: time both directors held the VIP (``ip -ts monitor address`` in
  each director's namespace: exact add/delete times);
- vrrp_lag_p99_ms: how late the master's adverts were, seen on the wire (a kernel-
  filtered sniffer in the client namespace, kernel receive timestamps): p99 of
  (gap between adverts - interval); ``_without_flood``: the same outside the flood;
- drop_log_lines_per_reason_per_10s (haipvs): the most ``vrrp.advert.dropped`` lines
  of one reason in any 10 s window;
- healthz_p99_ms (haipvs): GET /healthz latency on dir1, every 0.1 s during the
  flood, with --idle-connections idle TCP connections open to the status API.

The last line is ``RESULT flood_pps=... flood_transitions=... dual_holder_ms=...
vrrp_lag_p99_ms=... drop_log_lines_per_reason_per_10s=... healthz_p99_ms=...
keepalived_transitions=... keepalived_dual_holder_ms=... ...``.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from haipvs.lab.pair import DIRECTORS, VIP, DirectorPair, PairSettings, running_pair, wait_until
from haipvs.lab.runner import rerun_in_lab_unless_ipvs

FLOODER = r"""
import random, socket, struct, sys, time
rate, duration, group, vip = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
vips = b"".join(socket.inet_aton(a) for a in sys.argv[5:])
rng = random.Random(1312)

def source():
    while True:
        address = rng.getrandbits(32)
        first = address >> 24
        # Off the front subnet (198.51.100.0/24), not multicast / reserved / loopback.
        if 1 <= first < 224 and first != 127 and (address >> 8) != 0xC63364:
            return struct.pack("!I", address)

packets = []
for index in range(4096):
    destination = socket.inet_aton(group if index % 2 == 0 else vip)
    payload = struct.pack("!BBBBH", 0x31, 51, 254, len(vips) // 4, 100)
    payload += struct.pack("!H", rng.getrandbits(16)) + vips
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0xC0, 20 + len(payload), index, 0, 255, 112,
                         0, source(), destination)
    packets.append((header + payload, (socket.inet_ntoa(destination), 0)))
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
start = time.monotonic()
sent = errors = 0
index = 0
while True:
    now = time.monotonic()
    if now - start >= duration:
        break
    due = int((now - start) * rate)
    while sent + errors < due:
        packet, address = packets[index]
        index = (index + 1) % len(packets)
        try:
            sock.sendto(packet, address)
            sent += 1
        except OSError:
            errors += 1
    time.sleep(0.002)
elapsed = time.monotonic() - start
print(f"{sent} {errors} {elapsed:.3f}", flush=True)
"""

SNIFFER = r"""
import socket, struct, sys, time, signal
source = socket.inet_aton(sys.argv[1])
(src,) = struct.unpack("!I", source)
# Classic BPF on Ethernet frames: IPv4, protocol 112, source = the master.
program = [
    (0x28, 0, 0, 12), (0x15, 0, 5, 0x0800),
    (0x30, 0, 0, 23), (0x15, 0, 3, 112),
    (0x20, 0, 0, 26), (0x15, 0, 1, src),
    (0x06, 0, 0, 0xFFFF), (0x06, 0, 0, 0),
]
import ctypes
code = b"".join(struct.pack("=HBBI", *ins) for ins in program)
buf = ctypes.create_string_buffer(code, len(code))
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
sock.setsockopt(socket.SOL_SOCKET, 26, struct.pack("@HP", len(program), ctypes.addressof(buf)))
sock.bind(("eth0", 0))
# SO_TIMESTAMPNS: the kernel's receive time, not when this process got the CPU.
sock.setsockopt(socket.SOL_SOCKET, 35, 1)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    frame, ancdata, _flags, _addr = sock.recvmsg(2048, socket.CMSG_SPACE(16))
    stamp = time.time()
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == 35 and len(data) >= 16:
            seconds, nanoseconds = struct.unpack("=qq", data[:16])
            stamp = seconds + nanoseconds / 1e9
    print(f"{stamp:.6f} {frame[34 + 2]}", flush=True)
"""

PROBER = r"""
import json, resource, socket, sys, time
port, idle, duration = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, idle + 256), hard))
held, refused = [], 0
budget = time.monotonic() + 30
for _ in range(idle):
    if time.monotonic() > budget:
        break
    try:
        held.append(socket.create_connection(("127.0.0.1", port), timeout=0.5))
    except OSError:
        refused += 1
print("ready", len(held), refused, flush=True)
# The Host header a local monitor sends: the API refuses any other on a loopback bind
# (DNS rebinding), so a probe naming some other host measures the refusal, not healthz.
request = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
latencies, failures, why = [], 0, {}
end = time.monotonic() + duration
while time.monotonic() < end:
    started = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
            conn.sendall(request.encode())
            data = b""
            while chunk := conn.recv(4096):
                data += chunk
        latencies.append((time.monotonic() - started) * 1000)
        if not data.startswith(b"HTTP/1.1 200"):
            failures += 1
            status = data.split(b"\r\n", 1)[0].decode(errors="replace") or "empty answer"
            why[status] = why.get(status, 0) + 1
    except OSError as error:
        failures += 1
        why[type(error).__name__] = why.get(type(error).__name__, 0) + 1
    time.sleep(0.1)
print(json.dumps({"latencies": latencies, "failures": failures, "why": why,
                  "probes": len(latencies) + sum(v for k, v in why.items()
                                                 if not k.startswith("HTTP")),
                  "idle_open": len(held), "idle_refused": refused}), flush=True)
"""

_TS = re.compile(r"^\[(?P<ts>[0-9T:.+\-]+)\]\s*(?P<rest>.*)$")


def parse_monitor(text: str) -> list[tuple[float, bool]]:
    """(time, added) of VIP address events from ``ip -ts -o monitor address``."""
    events: list[tuple[float, bool]] = []
    for line in text.splitlines():
        match = _TS.match(line.strip())
        if match is None or f" {VIP}/" not in match["rest"]:
            continue
        stamp = datetime.fromisoformat(match["ts"]).timestamp()
        events.append((stamp, not match["rest"].startswith("Deleted")))
    return events


def holding_intervals(
    initially: bool, events: list[tuple[float, bool]], start: float, end: float
) -> list[tuple[float, float]]:
    intervals: list[tuple[float, float]] = []
    since = start if initially else None
    for stamp, added in events:
        if added and since is None:
            since = stamp
        elif not added and since is not None:
            intervals.append((since, stamp))
            since = None
    if since is not None:
        intervals.append((since, end))
    return intervals


def overlap_ms(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    total = 0.0
    for start_a, end_a in a:
        for start_b, end_b in b:
            total += max(0.0, min(end_a, end_b) - max(start_a, start_b))
    return total * 1000


def percentile(values: Sequence[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def flood_window_transitions(pair: DirectorPair, since: float, until: float) -> int:
    count = 0
    for name in DIRECTORS:
        path = pair.workdir / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        if pair.settings.implementation == "keepalived":
            # keepalived -l writes to stdout without timestamps: count lines
            # written after the mark (the log's size at the flood start).
            count += len(re.findall(r"Entering \w+ STATE", text[pair_marks[name]:]))
            continue
        for event in pair.log_events(name):
            if event.get("event") != "vrrp.transition":
                continue
            stamp = event.get("timestamp")
            if isinstance(stamp, str):
                at = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
                if since <= at <= until:
                    count += 1
    return count


pair_marks: dict[str, int] = {}


def drop_lines_per_reason_per_10s(pair: DirectorPair, since: float, until: float) -> int:
    worst = 0
    for name in DIRECTORS:
        stamps: dict[str, list[float]] = {}
        for event in pair.log_events(name):
            if event.get("event") != "vrrp.advert.dropped":
                continue
            stamp = event.get("timestamp")
            if not isinstance(stamp, str):
                continue
            at = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
            if since <= at <= until:
                stamps.setdefault(str(event.get("reason")), []).append(at)
        for times in stamps.values():
            for index, first in enumerate(times):
                worst = max(worst, sum(1 for t in times[index:] if t - first < 10.0))
    return worst


def vip_held(pair: DirectorPair, name: str) -> bool:
    return pair.holds_vip(name)


def run_one(args: argparse.Namespace, implementation: str) -> dict[str, Any]:
    settings = PairSettings(version=3, advert_interval=args.advert_interval,
                            implementation=implementation, real_servers=1)
    with running_pair(settings, prefix="flood-") as pair:
        pair.start_real_servers()
        for name in DIRECTORS:
            pair.start_director(name)
        wait_until(lambda: vip_held(pair, "dir1"), timeout=120, step=0.5)
        time.sleep(3 * args.advert_interval + 3)
        if vip_held(pair, "dir2"):
            raise SystemExit(f"{implementation}: both directors hold the VIP before the flood")
        monitors = {
            name: pair.net.popen(name, ["ip", "-ts", "-o", "monitor", "address"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            for name in DIRECTORS
        }
        sniffer = pair.net.popen("client", [sys.executable, "-c", SNIFFER, DIRECTORS["dir1"][0]],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        initially = {name: vip_held(pair, name) for name in DIRECTORS}
        prober = None
        if implementation == "haipvs":
            prober = pair.net.popen(
                "dir1",
                [sys.executable, "-c", PROBER, "9797", str(args.idle_connections),
                 str(args.duration + 6)],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            )
            assert prober.stdout is not None
            print(f"idle connections: {prober.stdout.readline().decode().strip()}", flush=True)
        time.sleep(3)
        for name in DIRECTORS:
            path = pair.workdir / f"{name}.log"
            pair_marks[name] = len(path.read_text(errors="replace")) if path.exists() else 0
        start = time.time()
        flooder = pair.net.popen(
            "client",
            [sys.executable, "-c", FLOODER, str(args.rate), str(args.duration), "224.0.0.18",
             VIP, VIP, "10.0.0.1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        out, err = flooder.communicate(timeout=args.duration + 120)
        flood_end = time.time()
        if flooder.returncode != 0:
            raise SystemExit(f"flooder failed: {err.decode(errors='replace')}")
        sent, errors, elapsed = out.split()
        time.sleep(3)
        end = time.time()
        results: dict[str, Any] = {
            "flood_pps": round(int(sent) / float(elapsed)),
            "flood_send_errors": int(errors),
            "transitions": flood_window_transitions(pair, start, end),
        }
        for process in (*monitors.values(), sniffer):
            process.terminate()
        held = {}
        for name, process in monitors.items():
            text = process.communicate(timeout=30)[0].decode(errors="replace")
            held[name] = holding_intervals(initially[name], parse_monitor(text), start - 3, end)
        results["dual_holder_ms"] = round(overlap_ms(held["dir1"], held["dir2"]))
        wire = sniffer.communicate(timeout=30)[0].decode(errors="replace").split("\n")
        stamps = [float(line.split()[0]) for line in wire if line.strip()]
        during = [t for t in stamps if start <= t <= flood_end]
        gaps = [(b - a - args.advert_interval) * 1000 for a, b in itertools.pairwise(during)]
        results["vrrp_lag_p99_ms"] = round(percentile(gaps, 0.99), 1)
        quiet = [t for t in stamps if not start - 1 <= t <= flood_end + 1]
        idle_gaps = [(b - a - args.advert_interval) * 1000 for a, b in itertools.pairwise(quiet)
                     if b - a < 3 * args.advert_interval]
        results["vrrp_lag_p99_ms_without_flood"] = round(percentile(idle_gaps, 0.99), 1)
        results["vrrp_gap_max_ms"] = round(max(gaps) + args.advert_interval * 1000, 1) if gaps \
            else float("nan")
        if implementation == "haipvs":
            results["drop_log_lines_per_reason_per_10s"] = drop_lines_per_reason_per_10s(
                pair, start, end)
            if prober is not None:
                probe = json.loads(prober.communicate(timeout=300)[0] or b"{}")
                results["healthz_p99_ms"] = round(percentile(probe.get("latencies", []), 0.99), 1)
                results["healthz_failures"] = probe.get("failures")
                results["healthz_probes"] = probe.get("probes")
                results["healthz_failure_reasons"] = probe.get("why")
                results["idle_connections_open"] = probe.get("idle_open")
            dropped: Counter[str] = Counter()
            for name in DIRECTORS:
                status = pair.status(name) or {}
                for instance in status.get("instances", []):
                    for reason, count in (instance.get("adverts_dropped") or {}).items():
                        dropped[reason] += int(count)
            results["python_drops"] = dict(dropped)
        for process in (*monitors.values(), sniffer):
            with contextlib.suppress(Exception):
                process.kill()
        if args.keep_logs is not None:
            target = Path(args.keep_logs)
            target.mkdir(parents=True, exist_ok=True)
            for log in pair.workdir.glob("*.log"):
                (target / f"{implementation}-{log.name}").write_bytes(log.read_bytes())
        print(f"{implementation}: {json.dumps(results)}", flush=True)
        return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=4000.0)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--advert-interval", type=float, default=0.5)
    parser.add_argument("--idle-connections", type=int, default=2000)
    parser.add_argument("--skip-keepalived", action="store_true")
    parser.add_argument("--keep-logs", help="copy the directors' logs into this directory")
    args = parser.parse_args(argv)
    rerun = rerun_in_lab_unless_ipvs(__file__, sys.argv[1:] if argv is None else argv,
                                     timeout=1800.0)
    if rerun is not None:
        return rerun
    ours = run_one(args, "haipvs")
    line = (
        f"RESULT flood_pps={ours['flood_pps']} flood_transitions={ours['transitions']} "
        f"dual_holder_ms={ours['dual_holder_ms']} vrrp_lag_p99_ms={ours['vrrp_lag_p99_ms']} "
        f"vrrp_lag_p99_ms_without_flood={ours['vrrp_lag_p99_ms_without_flood']} "
        f"drop_log_lines_per_reason_per_10s={ours['drop_log_lines_per_reason_per_10s']} "
        f"healthz_p99_ms={ours.get('healthz_p99_ms')} "
        f"healthz_failures={ours.get('healthz_failures')} "
        f"healthz_probes={ours.get('healthz_probes')} "
        f"idle_connections={ours.get('idle_connections_open')}"
    )
    if not args.skip_keepalived:
        theirs = run_one(args, "keepalived")
        line += (
            f" keepalived_flood_pps={theirs['flood_pps']}"
            f" keepalived_transitions={theirs['transitions']}"
            f" keepalived_dual_holder_ms={theirs['dual_holder_ms']}"
            f" keepalived_vrrp_lag_p99_ms={theirs['vrrp_lag_p99_ms']}"
            f" keepalived_vrrp_gap_max_ms={theirs['vrrp_gap_max_ms']}"
        )
    print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
