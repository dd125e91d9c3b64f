"""Why haipvs has its own IPVS netlink codec: the same cold build through pyroute2's IPVS
class, through haipvs's codec (haipvs/ipvs/genl.py) and through ``ipvsadm -R``.

    python bench/netlink_codec.py [--services 1000] [--dests 10] [--runs 3]

Runs where the kernel has IPVS; on a host without it, re-executes itself inside
``haipvs lab run``. Everything happens in a network namespace this script creates
(``haipvs-codec-bench``), entered by re-executing itself there with ``ip netns exec``,
with the real servers' range routable (IPVS refuses a masq destination it cannot
route). No packet is sent anywhere.

Each run flushes the table and builds SERVICES x DESTS (wlc, masq, weight 1) three ways,
checking the counts with ``ipvsadm -Sn`` after each:

* ``pyroute2``: ``pyroute2.IPVS`` (its documented API), ``service("add")`` and
  ``dest("add")`` one message at a time, as an application using it would;
* ``haipvs``: ``plan_changes`` + ``NetlinkIpvsKernel.apply_many`` (batched sends);
* ``ipvsadm``: ``ipvsadm -R`` fed the equivalent rules (C, libnl).

The last line is ``RESULT pyroute2_ratio=R haipvs_ratio=R pyroute2_s=S haipvs_s=S
ipvsadm_s=S ...``: medians over the runs, the ratios against ``ipvsadm -R``.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from haipvs.ipvs.model import Dest, DestKey, Forwarding, IpvsTable, Service, ServiceKey
from haipvs.ipvs.netlink import NetlinkIpvsKernel
from haipvs.ipvs.plan import plan_changes
from haipvs.lab.runner import rerun_in_lab_unless_ipvs

NETNS = "haipvs-codec-bench"
REPO = Path(__file__).resolve().parent.parent
IP_VS_CONN_F_MASQ = 0


def _sh(*args: str, stdin: str | None = None) -> str:
    done = subprocess.run(list(args), input=stdin, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def _counts() -> tuple[int, int]:
    lines = _sh("ipvsadm", "-Sn").splitlines()
    return (
        sum(1 for line in lines if line.startswith("-A ")),
        sum(1 for line in lines if line.startswith("-a ")),
    )


def _table(services: int, dests: int) -> tuple[list[tuple[str, list[str]]], str]:
    rows: list[tuple[str, list[str]]] = []
    rules: list[str] = []
    for i in range(services):
        vip = f"198.18.{i >> 8}.{i & 255}"
        rules.append(f"-A -t {vip}:80 -s wlc")
        servers = []
        for j in range(dests):
            n = i * dests + j
            rs = f"10.{200 + (n >> 16)}.{(n >> 8) & 255}.{n & 255}"
            servers.append(rs)
            rules.append(f"-a -t {vip}:80 -r {rs}:8080 -m -w 1")
        rows.append((vip, servers))
    return rows, "\n".join(rules) + "\n"


def _build_pyroute2(rows: list[tuple[str, list[str]]]) -> float:
    from pyroute2 import IPVS, IPVSDest, IPVSService

    started = time.perf_counter()
    with IPVS() as ipvs:
        for vip, servers in rows:
            service = IPVSService(addr=vip, port=80, protocol=socket.IPPROTO_TCP,
                                  sched_name="wlc")
            ipvs.service("add", service=service)
            for rs in servers:
                ipvs.dest("add", service=service, dest=IPVSDest(
                    addr=rs, port=8080, fwd_method=IP_VS_CONN_F_MASQ, weight=1))
    return time.perf_counter() - started


async def _build_haipvs(rows: list[tuple[str, list[str]]]) -> float:
    desired = IpvsTable.build([
        (Service(ServiceKey.tcp(vip, 80), scheduler="wlc"),
         [Dest(DestKey(rs, 8080), weight=1, forwarding=Forwarding.MASQ) for rs in servers])
        for vip, servers in rows
    ])
    started = time.perf_counter()
    async with NetlinkIpvsKernel() as kernel:
        ops = plan_changes(desired, IpvsTable(), frozenset(desired.services))
        results = await kernel.apply_many(ops)
    elapsed = time.perf_counter() - started
    failures = [result for result in results if result is not None]
    if failures:
        raise RuntimeError(f"haipvs build failed: {failures[:3]}")
    return elapsed


def _inside(services: int, dests: int, runs: int) -> int:
    rows, restore = _table(services, dests)
    expected = (services, services * dests)
    times: dict[str, list[float]] = {"pyroute2": [], "haipvs": [], "ipvsadm": []}
    for run in range(runs):
        for name, values in times.items():
            _sh("ipvsadm", "-C")
            if name == "pyroute2":
                elapsed = _build_pyroute2(rows)
            elif name == "haipvs":
                elapsed = asyncio.run(_build_haipvs(rows))
            else:
                started = time.perf_counter()
                _sh("ipvsadm", "-R", stdin=restore)
                elapsed = time.perf_counter() - started
            if _counts() != expected:
                raise RuntimeError(f"{name}: the build is incomplete: {_counts()} != {expected}")
            values.append(elapsed)
        print(f"# run {run + 1}: " + " ".join(f"{k} {v[-1]:.3f}s" for k, v in times.items()),
              flush=True)
    _sh("ipvsadm", "-C")
    median = {name: statistics.median(values) for name, values in times.items()}
    print(
        "RESULT"
        f" pyroute2_ratio={median['pyroute2'] / median['ipvsadm']:.2f}"
        f" haipvs_ratio={median['haipvs'] / median['ipvsadm']:.2f}"
        f" pyroute2_s={median['pyroute2']:.3f} haipvs_s={median['haipvs']:.3f}"
        f" ipvsadm_s={median['ipvsadm']:.3f} services={services}"
        f" dests={services * dests} runs={runs}",
        flush=True,
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--dests", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        return _inside(args.services, args.dests, args.runs)
    rerun = rerun_in_lab_unless_ipvs(__file__, sys.argv[1:], timeout=1500, cwd=str(REPO))
    if rerun is not None:
        return rerun
    subprocess.run(["ip", "netns", "del", NETNS], capture_output=True, check=False)
    _sh("ip", "netns", "add", NETNS)
    try:
        for command in (["ip", "link", "set", "lo", "up"],
                        ["ip", "link", "add", "rs0", "type", "dummy"],
                        ["ip", "link", "set", "rs0", "up"],
                        # one connected route makes every real server routable
                        ["ip", "addr", "add", "10.255.255.254/8", "dev", "rs0"]):
            _sh("ip", "netns", "exec", NETNS, *command)
        inside = [sys.executable, __file__, "--inside", "--services", str(args.services),
                  "--dests", str(args.dests), "--runs", str(args.runs)]
        return subprocess.run(["ip", "netns", "exec", NETNS, *inside], check=False).returncode
    finally:
        subprocess.run(["ip", "netns", "del", NETNS], capture_output=True, check=False)


if __name__ == "__main__":
    sys.exit(main())
