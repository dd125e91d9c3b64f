"""A real server that stops answering leaves the kernel table in time, and comes back.

The checkers' promise, end to end on a kernel with IPVS: CheckerPool (real HTTP probes)
-> IpvsProgrammer -> NetlinkIpvsKernel. The real server is frozen with SIGSTOP: the
kernel still completes its TCP handshakes (the listen queue), but no HTTP answer
comes, the way a hung application behaves. Removal must happen within
fall x interval + timeout + 100 ms (p95 over 20 trials); after SIGCONT the server
is back once `rise` checks passed.

Lab only: `.venv/bin/haipvs lab run -- .venv/bin/pytest -m lab tests/lab/test_checker_removal.py`
Everything lives in namespaces this test builds and tears down; probes go only to
addresses inside them.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from ipaddress import IPv4Address

import pytest
from pyroute2 import netns

from checkers import BackendId, CheckerPool, HealthChanged, HttpCheck, Target, Timing
from haipvs.ipvs import (
    AddDest,
    DeleteDest,
    Dest,
    DestKey,
    HealthView,
    IpvsProgrammer,
    ProgrammerEvent,
    Service,
    ServiceKey,
    ServiceSpec,
    op_dest_key,
)
from haipvs.ipvs.netlink import NetlinkIpvsKernel
from haipvs.lab.servers import start_real_server
from haipvs.lab.topology import BuiltTopology, Endpoint, Host, Topology, Veth, build

pytestmark = pytest.mark.lab

TRIALS = 20
INTERVAL = 0.5
TIMEOUT = 0.3
RISE = 2
FALL = 2
# The bound: the failing checks, the last one's timeout, and 100 ms for
# the programmer's sync and the netlink op.
REMOVAL_BOUND = FALL * INTERVAL + TIMEOUT + 0.100

VS = ServiceKey.tcp("198.51.100.10", 80)
RS1 = DestKey("10.0.0.11", 80)
RS2 = DestKey("10.0.0.12", 80)


@pytest.fixture
def network() -> Iterator[BuiltTopology]:
    topology = Topology(
        hosts=(Host("dir"), Host("rs")),
        links=(
            Veth(
                Endpoint("dir", "eth0", ("10.0.0.1/24",)),
                Endpoint("rs", "eth0", ("10.0.0.11/24", "10.0.0.12/24")),
            ),
        ),
    )
    with build(topology, prefix=f"ckr{os.getpid() % 1000}-") as net:
        yield net


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, int(0.95 * len(ordered) + 0.5) - 1)]


async def test_frozen_real_server_leaves_the_table_in_time(network: BuiltTopology) -> None:
    rs1 = start_real_server(network, "rs", "rs1", http=["10.0.0.11:80"])
    rs2 = start_real_server(network, "rs", "rs2", http=["10.0.0.12:80"])
    loop = asyncio.get_running_loop()
    applied: asyncio.Queue[tuple[float, ProgrammerEvent]] = asyncio.Queue()

    def on_event(event: ProgrammerEvent) -> None:
        applied.put_nowait((loop.time(), event))

    kernel = NetlinkIpvsKernel(netns=network.ns("dir"))
    programmer = IpvsProgrammer(kernel, on_event=on_event)
    programmer.set_specs(
        [
            ServiceSpec(
                Service(VS, scheduler="rr"),
                (Dest(RS1, weight=1), Dest(RS2, weight=1)),
                min_up=1,
            )
        ]
    )

    def on_change(change: HealthChanged) -> None:
        dest = DestKey(str(change.backend.address), change.backend.port)
        programmer.update_health(
            VS, dest, HealthView(change.healthy, change.weight_factor, change.reason)
        )

    timing = Timing(interval=INTERVAL, timeout=TIMEOUT, rise=RISE, fall=FALL, warmup=0.0)
    check = HttpCheck(timing, tls=False, path="/")
    pool = CheckerPool(on_change=on_change, fail_open=None)

    async def next_op_on_rs1(kind: type[AddDest] | type[DeleteDest]) -> float:
        async with asyncio.timeout(30):
            while True:
                when, event = await applied.get()
                if isinstance(event.op, kind) and op_dest_key(event.op) == RS1:
                    return when

    # The probes' sockets must live in the director's namespace: switch this
    # thread into it while the pool runs (pyroute2 keeps the way back).
    netns.pushns(network.ns("dir"))
    runner = asyncio.create_task(programmer.run())
    removals: list[float] = []
    returns: list[float] = []
    try:
        pool.update(
            {
                BackendId("web", IPv4Address(rs.address), rs.port): (
                    Target(IPv4Address(rs.address), rs.port),
                    check,
                )
                for rs in (RS1, RS2)
            }
        )
        pool.start()
        await next_op_on_rs1(AddDest)  # alpha: added once it rose
        for trial in range(TRIALS):
            # Spread the moment of failure over the probe grid.
            await asyncio.sleep((trial * 0.173) % INTERVAL + INTERVAL)
            frozen_at = loop.time()
            os.kill(rs1.pid, signal.SIGSTOP)
            removals.append(await next_op_on_rs1(DeleteDest) - frozen_at)
            table = await kernel.dump()
            assert RS1 not in table.table[VS].dests, table
            thawed_at = loop.time()
            os.kill(rs1.pid, signal.SIGCONT)
            returns.append(await next_op_on_rs1(AddDest) - thawed_at)
    finally:
        os.kill(rs1.pid, signal.SIGCONT)
        await pool.stop()
        await programmer.stop(remove=True)
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        netns.popns()
        for server in (rs1, rs2):
            server.terminate()
            server.wait(timeout=30)

    report = (
        f"removal p95 {p95(removals):.3f}s max {max(removals):.3f}s"
        f" (bound {REMOVAL_BOUND:.3f}s); back p95 {p95(returns):.3f}s"
    )
    print(report)
    assert len(removals) == TRIALS
    assert p95(removals) <= REMOVAL_BOUND, report
    # Back after `rise` passing checks: never sooner than rise-1 intervals, and
    # within rise intervals plus one interval of grid phase plus the sync.
    assert min(returns) >= (RISE - 1) * INTERVAL - 0.05, report
    assert p95(returns) <= (RISE + 1) * INTERVAL + TIMEOUT + 0.100, report
