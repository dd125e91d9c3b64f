"""Benchmark: programming 1,000 services x 10 real servers through NetlinkIpvsKernel vs ipvsadm.

Runs where the kernel has IPVS; on a host without it, re-executes itself inside
``haipvs lab run`` (a guest kernel with IPVS). Everything happens in a network namespace this
script creates (``haipvs-bench``), with the real-server range routable there (IPVS refuses a
masq dest it cannot route). No packet is sent anywhere.

Figures (medians of 3, same boot, same rules):

* cold build: empty table -> 1,000 x 10 through ``plan_changes`` + ``apply_many`` (batched),
  against ``ipvsadm -R`` fed the equivalent rules; the table is flushed between runs and each
  build is checked (service and dest counts from ``ipvsadm -Sn``).
* no-op compare: ``dump()`` + ``plan_changes`` -> zero ops, against ``ipvsadm -Ln``.
  ``adopt_s`` / ``adopt_ratio``: the same with a fresh adapter (empty dump memo), as at
  start-up.
* one changed weight, through ``IpvsProgrammer`` (its ``run()`` loop on this kernel): a
  slow-start factor on one real server is one health update; the figures are the ops of that
  sync and the milliseconds from ``update_health()`` to the programmer's event for the acked
  op (the fast path: no dump, the changed service planned against the table the last sync
  left). ``one_change_dump_ms``: the same kind of change with a full dump + plan in front,
  straight on the port (what a periodic drift check costs), for comparison.

Last line: ``RESULT cold_ratio=R noop_ratio=R one_change_ops=N one_change_ms=MS ...``.
Targets: cold_ratio <= 1.0, noop_ratio <= 1.5, one_change_ops = 1, one_change_ms <= 50.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import statistics
import subprocess
import sys
import time
from pathlib import Path

from haipvs.ipvs.desired import HealthView, ServiceSpec
from haipvs.ipvs.model import (
    Dest,
    DestKey,
    Forwarding,
    IpvsTable,
    Service,
    ServiceEntry,
    ServiceKey,
)
from haipvs.ipvs.netlink import NetlinkIpvsKernel
from haipvs.ipvs.plan import plan_changes
from haipvs.ipvs.programmer import IpvsProgrammer, ProgrammerEvent
from haipvs.lab.runner import rerun_in_lab_unless_ipvs

NETNS = "haipvs-bench"
REPO = Path(__file__).resolve().parent.parent




def _sh(*args: str, stdin: str | None = None) -> str:
    done = subprocess.run(list(args), input=stdin, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def _in_ns(*args: str, stdin: str | None = None) -> str:
    return _sh("ip", "netns", "exec", NETNS, *args, stdin=stdin)


def _setup_netns() -> None:
    subprocess.run(["ip", "netns", "del", NETNS], capture_output=True, check=False)
    _sh("ip", "netns", "add", NETNS)
    _in_ns("ip", "link", "set", "lo", "up")
    _in_ns("ip", "link", "add", "rs0", "type", "dummy")
    _in_ns("ip", "link", "set", "rs0", "up")
    # The real servers live in 10.0.0.0/8: one connected route makes them all routable.
    _in_ns("ip", "addr", "add", "10.255.255.254/8", "dev", "rs0")


def _teardown_netns() -> None:
    subprocess.run(["ip", "netns", "del", NETNS], capture_output=True, check=False)


def _timed_sh(*args: str, stdin: str | None = None) -> float:
    started = time.perf_counter()
    _in_ns(*args, stdin=stdin)
    return time.perf_counter() - started


def _counts() -> tuple[int, int]:
    lines = _in_ns("ipvsadm", "-Sn").splitlines()
    return (
        sum(1 for line in lines if line.startswith("-A ")),
        sum(1 for line in lines if line.startswith("-a ")),
    )


async def _one_change_through_programmer(
    kernel: NetlinkIpvsKernel, rows: list[tuple[Service, list[Dest]]], runs: int
) -> tuple[list[float], list[int]]:
    specs = [
        ServiceSpec(service, tuple(dataclasses.replace(d, weight=10) for d in dest_list))
        for service, dest_list in rows
    ]
    applied = asyncio.Event()
    events: list[ProgrammerEvent] = []

    def on_event(event: ProgrammerEvent) -> None:
        if event.op is not None:
            events.append(event)
            applied.set()

    # max_interval: no periodic full compare falls inside the measurement.
    programmer = IpvsProgrammer(kernel, max_interval=600.0, on_event=on_event)
    programmer.set_specs(specs)
    started = time.perf_counter()
    await programmer.sync(full=True)  # adopts the table (weights 1 -> 10: 10,000 updates)
    print(
        f"# programmer start-up sync: {programmer.status().last_sync_ops} ops in "
        f"{time.perf_counter() - started:.3f}s",
        flush=True,
    )
    serving = asyncio.create_task(programmer.run())
    service_key = rows[len(rows) // 2][0].key
    dest_key = rows[len(rows) // 2][1][3].key
    change_ms: list[float] = []
    change_ops: list[int] = []
    try:
        await asyncio.sleep(0.2)  # let run()'s own start-up sync pass
        for run in range(runs):
            events.clear()
            applied.clear()
            factor = (5 + run) / 10  # weight 10 -> 5, 6, 7
            started = time.perf_counter()
            programmer.update_health(service_key, dest_key, HealthView(True, factor))
            await asyncio.wait_for(applied.wait(), 30)
            change_ms.append((time.perf_counter() - started) * 1000)
            change_ops.append(programmer.status().last_sync_ops)
            print(
                f"# one change run {run + 1}: {change_ops[-1]} op(s) "
                f"({events[0].event} {events[0].op}) in {change_ms[-1]:.1f} ms",
                flush=True,
            )
            await asyncio.sleep(0.1)
    finally:
        await programmer.stop()
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving
    return change_ms, change_ops


async def _bench(services: int, dests: int, runs: int) -> dict[str, float]:

    rows = []
    rules: list[str] = []
    for i in range(services):
        vip = f"10.100.{i >> 8}.{i & 255}"
        key = ServiceKey.tcp(vip, 80)
        rules.append(f"-A -t {vip}:80 -s wlc")
        dest_list = []
        for j in range(dests):
            n = i * dests + j
            rs = f"10.{200 + (n >> 16)}.{(n >> 8) & 255}.{n & 255}"
            dest_list.append(Dest(DestKey(rs, 8080), weight=1, forwarding=Forwarding.MASQ))
            rules.append(f"-a -t {vip}:80 -r {rs}:8080 -m -w 1")
        rows.append((Service(key, scheduler="wlc"), dest_list))
    desired = IpvsTable.build(rows)
    owned = frozenset(desired.services)
    restore_text = "\n".join(rules) + "\n"
    empty = IpvsTable()

    out: dict[str, float] = {}
    async with NetlinkIpvsKernel(netns=NETNS) as kernel:
        info = await kernel.info()
        print(
            f"# IPVS {info.version_string} conn_tab_size={info.conn_tab_size} "
            f"batch={kernel.batch_size}",
            flush=True,
        )

        ours_cold: list[float] = []
        theirs_cold: list[float] = []
        for run in range(runs):
            _in_ns("ipvsadm", "-C")
            started = time.perf_counter()
            ops = plan_changes(desired, empty, owned)
            results = await kernel.apply_many(ops)
            ours_cold.append(time.perf_counter() - started)
            failures = [r for r in results if r is not None]
            if failures or _counts() != (services, services * dests):
                raise RuntimeError(f"our cold build is incomplete: {failures[:3]} {_counts()}")
            _in_ns("ipvsadm", "-C")
            theirs_cold.append(_timed_sh("ipvsadm", "-R", stdin=restore_text))
            if _counts() != (services, services * dests):
                raise RuntimeError(f"ipvsadm -R build is incomplete: {_counts()}")
            print(
                f"# cold run {run + 1}: ours {ours_cold[-1]:.3f}s "
                f"ipvsadm -R {theirs_cold[-1]:.3f}s ({len(ops)} ops)",
                flush=True,
            )

        ours_noop: list[float] = []
        theirs_noop: list[float] = []
        for run in range(runs):
            started = time.perf_counter()
            actual = await kernel.dump()
            ops = plan_changes(desired, actual, owned)
            ours_noop.append(time.perf_counter() - started)
            if ops:
                raise RuntimeError(f"no-op compare planned {len(ops)} ops: {ops[:3]}")
            started = time.perf_counter()
            _in_ns("ipvsadm", "-Ln")
            theirs_noop.append(time.perf_counter() - started)
            print(
                f"# no-op run {run + 1}: ours {ours_noop[-1]:.3f}s "
                f"ipvsadm -Ln {theirs_noop[-1]:.3f}s",
                flush=True,
            )

        # Start-up adoption: a fresh adapter (empty dump memo) compares the same table.
        adopt: list[float] = []
        for run in range(runs):
            async with NetlinkIpvsKernel(netns=NETNS) as fresh:
                started = time.perf_counter()
                actual = await fresh.dump()
                ops = plan_changes(desired, actual, owned)
                adopt.append(time.perf_counter() - started)
            if ops:
                raise RuntimeError(f"adoption planned {len(ops)} ops")
            print(f"# adoption run {run + 1}: fresh adapter {adopt[-1]:.3f}s", flush=True)

        # For comparison: the same kind of change with a full dump + plan in front (what the
        # periodic drift check costs), straight on the kernel port.
        change_dump_ms: list[float] = []
        target_key = rows[services // 2][0].key
        entry = desired.services[target_key]
        dkey = rows[services // 2][1][3].key
        for run in range(runs):
            new_dests = dict(entry.dests)
            new_dests[dkey] = Dest(dkey, weight=20 + run, forwarding=Forwarding.MASQ)
            changed = IpvsTable(
                {**desired.services, target_key: ServiceEntry(entry.service, new_dests)}
            )
            started = time.perf_counter()
            actual = await kernel.dump()
            ops = plan_changes(changed, actual, owned)
            results = await kernel.apply_many(ops)
            change_dump_ms.append((time.perf_counter() - started) * 1000)
            if len(ops) != 1 or results != [None]:
                raise RuntimeError(f"dump+plan change: {ops} {results}")
            print(
                f"# dump+plan change run {run + 1}: {len(ops)} op in {change_dump_ms[-1]:.1f} ms",
                flush=True,
            )
        # One changed weight, through the IpvsProgrammer: a slow-start factor on one real
        # server of one service (weight 10 -> 5, 6, 7) is one health update; the time runs
        # from update_health() to the programmer's event for the acked op.
        change_ms, change_ops = await _one_change_through_programmer(kernel, rows, runs)

        if _counts() != (services, services * dests):
            raise RuntimeError(f"table damaged by the one-change runs: {_counts()}")
        _in_ns("ipvsadm", "-C")
        if kernel.malformed_replies:
            raise RuntimeError(f"{kernel.malformed_replies} malformed replies")

    out["cold_s"] = statistics.median(ours_cold)
    out["ipvsadm_restore_s"] = statistics.median(theirs_cold)
    out["noop_s"] = statistics.median(ours_noop)
    out["adopt_s"] = statistics.median(adopt)
    out["ipvsadm_list_s"] = statistics.median(theirs_noop)
    out["one_change_ops"] = statistics.median(change_ops)
    out["one_change_ms"] = statistics.median(change_ms)
    out["one_change_dump_ms"] = statistics.median(change_dump_ms)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--dests", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rerun = rerun_in_lab_unless_ipvs(__file__, sys.argv[1:], timeout=1500, cwd=str(REPO))
    if rerun is not None:
        return rerun
    _setup_netns()
    try:
        figures = asyncio.run(_bench(args.services, args.dests, args.runs))
    finally:
        _teardown_netns()
    cold_ratio = figures["cold_s"] / figures["ipvsadm_restore_s"]
    noop_ratio = figures["noop_s"] / figures["ipvsadm_list_s"]
    print(
        "RESULT"
        f" cold_ratio={cold_ratio:.2f} noop_ratio={noop_ratio:.2f}"
        f" one_change_ops={int(figures['one_change_ops'])}"
        f" one_change_ms={figures['one_change_ms']:.1f}"
        f" cold_s={figures['cold_s']:.3f} ipvsadm_restore_s={figures['ipvsadm_restore_s']:.3f}"
        f" noop_s={figures['noop_s']:.3f} ipvsadm_list_s={figures['ipvsadm_list_s']:.3f}"
        f" one_change_dump_ms={figures['one_change_dump_ms']:.1f}"
        f" adopt_ratio={figures['adopt_s'] / figures['ipvsadm_list_s']:.2f}"
        f" adopt_s={figures['adopt_s']:.3f}"
        f" services={args.services} dests={args.services * args.dests}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
