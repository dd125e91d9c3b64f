"""IpvsProgrammer against the strict FakeIpvsKernel: ops, reasons, log lines, drift, errors.

Loop tests run on looptime's virtual clock; log lines are asserted with capture_logs, as the
operator reads them (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterator, MutableMapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from haipvs.ipvs.desired import AdminState, AdminView, HealthView, ServiceSpec, desired_table
from haipvs.ipvs.errors import EBUSY, ENOENT
from haipvs.ipvs.fake import FakeIpvsKernel
from haipvs.ipvs.kernel import BatchIpvsKernel, IpvsKernel
from haipvs.ipvs.model import (
    ActualTable,
    AddDest,
    AddService,
    DeleteDest,
    DeleteService,
    Dest,
    DestKey,
    DestStats,
    IpvsTable,
    IpvsTimeouts,
    Op,
    OpReason,
    Service,
    ServiceKey,
    UpdateDest,
    UpdateService,
)
from haipvs.ipvs.plan import plan_changes
from haipvs.ipvs.programmer import IpvsProgrammer, ProgrammerEvent

VS = ServiceKey.tcp("198.51.100.10", 80)
VS2 = ServiceKey.tcp("198.51.100.11", 443)
FOREIGN = ServiceKey.tcp("203.0.113.5", 443)
RS1 = DestKey("10.0.0.11", 80)
RS2 = DestKey("10.0.0.12", 80)
DOWN = HealthView(False, reason="3 failures: connect refused")
Logs = list[MutableMapping[str, Any]]


def web(weight2: int = 2, drain: float = 30.0) -> ServiceSpec:
    return ServiceSpec(Service(VS, "wlc"), (Dest(RS1), Dest(RS2, weight=weight2)),
                       drain_timeout=drain)


def web_table(weight2: int = 2) -> IpvsTable:
    return IpvsTable.build([(Service(VS, "wlc"), [Dest(RS1), Dest(RS2, weight=weight2)])])


@pytest.fixture
def logs() -> Iterator[Logs]:
    with capture_logs() as captured:
        yield captured


def events(logs: Logs, name: str) -> Logs:
    return [entry for entry in logs if entry["event"] == name]


async def test_first_sync_builds_the_table_with_one_line_per_op(
    logs: Logs,
) -> None:
    kernel = FakeIpvsKernel()
    p = IpvsProgrammer(kernel)
    p.set_specs([web()])
    ops = await p.sync()
    assert kernel.table == web_table()
    assert [type(op) for op in ops] == [AddService, AddDest, AddDest]
    assert events(logs, "ipvs.service.added") == [
        {"event": "ipvs.service.added", "log_level": "info", "vs": "tcp/198.51.100.10:80",
         "reason": "config_added"}
    ]
    added = events(logs, "ipvs.dest.added")
    assert [(e["rs"], e["weight"], e["reason"]) for e in added] == [
        ("10.0.0.11:80", 1, "config_added"),
        ("10.0.0.12:80", 2, "config_added"),
    ]
    assert events(logs, "ipvs.table.adopted")[0]["ops"] == 3


async def test_start_up_adopts_a_matching_table_with_zero_ops(
    logs: Logs,
) -> None:
    kernel = FakeIpvsKernel(web_table())
    p = IpvsProgrammer(kernel)
    p.set_specs([web()])
    assert await p.sync() == ()
    assert kernel.op_log == []
    assert events(logs, "ipvs.table.adopted")[0] == {
        "event": "ipvs.table.adopted", "log_level": "info", "services": 1, "dests": 2, "ops": 0
    }
    assert p.status().in_sync


async def test_one_weight_change_is_one_kernel_op(logs: Logs) -> None:
    kernel = FakeIpvsKernel(web_table())
    p = IpvsProgrammer(kernel)
    p.set_specs([web()])
    await p.sync()
    p.set_specs([web(weight2=5)])
    await p.sync()
    assert kernel.op_log == [UpdateDest(VS, Dest(RS2, weight=5), OpReason.WEIGHT_CHANGED,
                                        "weight 2->5")]
    (line,) = events(logs, "ipvs.dest.updated")
    assert line["rs"] == "10.0.0.12:80" and line["weight"] == 5
    assert line["reason"] == "weight_changed" and line["detail"] == "weight 2->5"


async def test_health_down_then_up(logs: Logs) -> None:
    kernel = FakeIpvsKernel(web_table())
    p = IpvsProgrammer(kernel)
    p.set_specs([web(drain=0.0)])
    await p.sync()
    p.update_health(VS, RS2, DOWN)
    await p.sync()
    assert kernel.op_log == [DeleteDest(VS, RS2, OpReason.HEALTH_DOWN,
                                        "3 failures: connect refused")]
    (line,) = events(logs, "ipvs.dest.deleted")
    assert line["reason"] == "health_down" and line["detail"] == "3 failures: connect refused"
    p.update_health(VS, RS2, HealthView(True, reason="2 successes"))
    await p.sync()
    (line,) = events(logs, "ipvs.dest.added")
    assert (line["rs"], line["weight"], line["reason"]) == ("10.0.0.12:80", 2, "health_up")
    assert kernel.table == web_table()


async def test_drift_is_repaired_and_logged_as_such(logs: Logs) -> None:
    kernel = FakeIpvsKernel()
    p = IpvsProgrammer(kernel)
    p.set_specs([web()])
    await p.sync()
    kernel.tamper_delete_dest(VS, RS1)  # ipvsadm -d behind our back
    kernel.tamper_set_weight(VS, RS2, 9)  # ipvsadm -e -w 9
    kernel.clear_log()
    await p.sync()
    assert kernel.table == web_table()
    assert len(kernel.op_log) == 2
    repaired = events(logs, "ipvs.drift.repaired")
    assert [(e["op"], e["rs"], e["reason"], e.get("detail")) for e in repaired] == [
        ("add_dest", "10.0.0.11:80", "drift_missing", "real server missing from kernel"),
        ("update_dest", "10.0.0.12:80", "drift_changed", "weight 9->2"),
    ]
    assert p.status().drift_repairs == 2


async def test_flush_behind_our_back_is_rebuilt(logs: Logs) -> None:
    kernel = FakeIpvsKernel()
    p = IpvsProgrammer(kernel)
    p.set_specs([web()])
    await p.sync()
    kernel.tamper_clear()  # ipvsadm -C
    await p.sync()
    assert kernel.table == web_table()
    assert [e["op"] for e in events(logs, "ipvs.drift.repaired")] == [
        "add_service", "add_dest", "add_dest"]


async def test_foreign_services_are_never_touched() -> None:
    foreign = IpvsTable.build([(Service(FOREIGN, "rr"), [Dest(DestKey("10.9.9.9", 443))])])
    kernel = FakeIpvsKernel(foreign)
    p = IpvsProgrammer(kernel)
    p.set_specs([web()])
    await p.sync()
    assert kernel.table[FOREIGN] == foreign[FOREIGN]
    assert all(op.service_key == VS for op in kernel.op_log)


async def test_reload_deletes_removed_services_once_then_stops_owning_them() -> None:
    kernel = FakeIpvsKernel()
    p = IpvsProgrammer(kernel)
    p.set_specs([web(), ServiceSpec(Service(VS2, "rr"), (Dest(RS1),))])
    await p.sync()
    p.set_specs([web()])
    assert VS2 in p.owned
    await p.sync()
    assert VS2 not in kernel.table
    assert kernel.op_log[-1] == DeleteService(VS2)
    assert VS2 not in p.owned
    # Someone else adds that service later: no longer ours, left alone.
    kernel.tamper(AddService(Service(VS2, "rr")))
    assert await p.sync() == ()


async def test_kernel_errors_are_logged_counted_and_retried(logs: Logs) -> None:
    kernel = FakeIpvsKernel(web_table())
    p = IpvsProgrammer(kernel)
    p.set_specs([web()])
    await p.sync()
    kernel.fail_next(EBUSY)
    p.set_specs([web(weight2=7)])
    assert await p.sync() == ()
    (line,) = events(logs, "ipvs.op.failed")
    assert (line["op"], line["vs"], line["rs"], line["errno"], line["error"]) == (
        "update_dest", "tcp/198.51.100.10:80", "10.0.0.12:80", EBUSY, "EBUSY")
    status = p.status()
    assert (status.ops_failed, status.last_errno, status.in_sync) == (1, EBUSY, False)
    assert status.last_error is not None and "update_dest" in status.last_error
    (op,) = await p.sync()
    assert op.reason is OpReason.WEIGHT_CHANGED  # the retry is not mistaken for drift
    assert p.status().in_sync
    assert kernel.table == web_table(weight2=7)


async def test_failed_service_add_skips_its_dest_ops(logs: Logs) -> None:
    kernel = FakeIpvsKernel()
    p = IpvsProgrammer(kernel)
    p.set_specs([ServiceSpec(Service(VS, "nosuch"), (Dest(RS1),))])
    assert await p.sync() == ()
    (line,) = events(logs, "ipvs.op.failed")
    assert line["op"] == "add_service" and line["errno"] == ENOENT
    assert len(kernel.failed) == 1  # no ESRCH noise for its dests


async def test_dump_failure_is_logged_and_the_sync_skipped(logs: Logs) -> None:
    kernel = FakeIpvsKernel()
    p = IpvsProgrammer(kernel)
    p.set_specs([web()])
    kernel.fail_dumps(EBUSY)
    assert await p.sync() == ()
    (line,) = events(logs, "ipvs.sync.failed")
    assert line["op"] == "dump" and line["errno"] == EBUSY
    assert p.status().sync_failures == 1
    await p.sync()
    assert kernel.table == web_table()


async def test_drain_through_the_programmer(logs: Logs) -> None:
    kernel = FakeIpvsKernel(web_table())
    p = IpvsProgrammer(kernel)
    p.set_specs([web()])
    await p.sync()
    kernel.set_stats(VS, RS2, DestStats(active_conns=3))
    p.update_health(VS, RS2, DOWN)
    await p.sync()
    assert kernel.table.dest(VS, RS2) == Dest(RS2, weight=0)
    (line,) = events(logs, "ipvs.dest.drain.started")
    assert (line["rs"], line["weight"], line["reason"]) == ("10.0.0.12:80", 0, "drain_started")
    assert line["detail"].startswith("health_down: 3 failures")
    assert [d.rs for d in p.status().draining] == ["10.0.0.12:80"]
    kernel.set_stats(VS, RS2, DestStats())
    await p.sync()
    assert kernel.table.dest(VS, RS2) is None
    (line,) = events(logs, "ipvs.dest.drain.finished")
    assert (line["rs"], line["reason"], line["detail"]) == (
        "10.0.0.12:80", "drain_finished", "connections 0")
    assert p.status().draining == ()


async def test_a_draining_server_that_recovers_is_restored_not_re_added() -> None:
    kernel = FakeIpvsKernel(web_table())
    p = IpvsProgrammer(kernel)
    p.set_specs([web()])
    await p.sync()
    kernel.set_stats(VS, RS2, DestStats(active_conns=3))
    p.update_health(VS, RS2, DOWN)
    await p.sync()
    kernel.clear_log()
    p.update_health(VS, RS2, HealthView(True))
    await p.sync()
    assert kernel.op_log == [UpdateDest(VS, Dest(RS2, weight=2), OpReason.HEALTH_UP,
                                        "weight 0->2")]
    assert kernel.snapshot().stats_of(VS, RS2).active_conns == 3  # connections kept


async def test_stop_leaves_the_table_unless_asked_to_remove_owned_services() -> None:
    foreign = IpvsTable.build([(Service(FOREIGN, "rr"), [])])
    kernel = FakeIpvsKernel(foreign)
    p = IpvsProgrammer(kernel)
    p.set_specs([web()])
    await p.sync()
    await p.stop()
    assert VS in kernel.table
    await p.stop(remove=True)
    assert VS not in kernel.table and FOREIGN in kernel.table
    assert kernel.op_log[-1] == DeleteService(VS, OpReason.SHUTDOWN, "stop(remove=True)")


async def test_timeouts_are_applied_once(logs: Logs) -> None:
    kernel = FakeIpvsKernel()
    p = IpvsProgrammer(kernel)
    p.set_timeouts(7200, 0, 180)
    await p.sync()
    await p.sync()
    t = await kernel.get_timeouts()
    assert (t.tcp, t.tcp_fin, t.udp) == (7200, 120, 180)
    assert len(events(logs, "ipvs.timeouts.set")) == 1


async def test_on_event_receives_every_change() -> None:
    seen: list[ProgrammerEvent] = []
    kernel = FakeIpvsKernel()
    p = IpvsProgrammer(kernel, on_event=seen.append)
    p.set_specs([web()])
    await p.sync()
    assert [e.event for e in seen] == ["ipvs.service.added", "ipvs.dest.added",
                                       "ipvs.dest.added"]


# ------------------------------------------------------------------------ the loop itself


@pytest.mark.looptime
async def test_loop_repairs_drift_at_max_interval_and_survives_errors(
    logs: Logs,
) -> None:
    kernel = FakeIpvsKernel()
    p = IpvsProgrammer(kernel, min_interval=0.05, max_interval=10.0, retry_interval=1.0)
    p.set_specs([web()])
    task = asyncio.create_task(p.run())
    await asyncio.sleep(1.0)
    assert kernel.table == web_table()
    kernel.tamper_delete_dest(VS, RS1)
    await asyncio.sleep(5.0)  # t=6: nothing asked, nothing repaired yet
    assert kernel.table.dest(VS, RS1) is None
    await asyncio.sleep(5.0)  # t=11: the periodic compare ran at t=10
    assert kernel.table == web_table()
    assert len(events(logs, "ipvs.drift.repaired")) == 1

    kernel.fail_dumps(EBUSY, times=3)
    kernel.fail_next(EBUSY, times=2)
    p.set_specs([web(weight2=4)])
    await asyncio.sleep(8.0)  # dumps fail three times, the update twice, all retried
    assert kernel.table == web_table(weight2=4)
    assert not task.done()
    assert len(events(logs, "ipvs.sync.failed")) == 3
    assert len(events(logs, "ipvs.op.failed")) == 2
    await p.stop()
    await task


@pytest.mark.looptime
async def test_loop_coalesces_a_burst_of_health_changes_into_one_sync() -> None:
    kernel = FakeIpvsKernel()
    p = IpvsProgrammer(kernel, min_interval=0.05, max_interval=100.0)
    p.set_specs([web(drain=0.0)])
    task = asyncio.create_task(p.run())
    await asyncio.sleep(1.0)
    syncs = p.status().syncs
    for _ in range(10):
        p.update_health(VS, RS2, DOWN)
        p.update_health(VS, RS2, HealthView(True))
    p.update_health(VS, RS2, DOWN)
    await asyncio.sleep(1.0)
    assert p.status().syncs == syncs + 1
    assert kernel.table.dest(VS, RS2) is None
    await p.stop()
    await task


@pytest.mark.looptime
async def test_a_health_change_is_one_op_without_a_dump_at_once() -> None:
    """The fast path: the change is compared with our record of the table, not a dump."""
    kernel = FakeIpvsKernel()
    big = [ServiceSpec(Service(ServiceKey.tcp(f"198.51.100.{i}", 80), "wlc"),
                       tuple(Dest(DestKey(f"10.0.{i}.{d}", 80)) for d in range(1, 11)))
           for i in range(1, 51)]
    applied: list[tuple[float, ProgrammerEvent]] = []
    loop = asyncio.get_running_loop()
    p = IpvsProgrammer(kernel, min_interval=0.05, max_interval=100.0,
                       on_event=lambda e: applied.append((loop.time(), e)))
    p.set_specs(big)
    task = asyncio.create_task(p.run())
    await asyncio.sleep(1.0)
    dumps, ops = kernel.dump_count, len(kernel.op_log)
    asked = loop.time()
    p.update_health(big[7].key, DestKey("10.0.8.3", 80), DOWN)
    await asyncio.sleep(1.0)
    assert kernel.dump_count == dumps
    assert kernel.op_log[ops:] == [DeleteDest(big[7].key, DestKey("10.0.8.3", 80),
                                              OpReason.HEALTH_DOWN, DOWN.reason)]
    when, event = applied[-1]
    assert event.event == "ipvs.dest.deleted"
    assert when == asked  # at once: the last sync was long enough ago (virtual loop time)
    await p.stop()
    await task


@pytest.mark.looptime
async def test_fast_path_drains_first_and_a_dump_finishes_the_drain() -> None:
    kernel = FakeIpvsKernel(web_table())
    p = IpvsProgrammer(kernel, min_interval=0.05, max_interval=100.0,
                       drain_check_interval=2.0)
    p.set_specs([web(drain=30.0)])
    task = asyncio.create_task(p.run())
    await asyncio.sleep(1.0)
    dumps = kernel.dump_count
    p.update_health(VS, RS2, DOWN)  # no connections, but the fast path cannot know that
    await asyncio.sleep(0.5)
    assert kernel.dump_count == dumps
    assert kernel.table.dest(VS, RS2) == Dest(RS2, weight=0)
    await asyncio.sleep(2.0)  # the drain check dumped, saw 0 connections, deleted it
    assert kernel.dump_count == dumps + 1
    assert kernel.table.dest(VS, RS2) is None
    await p.stop()
    await task


@pytest.mark.looptime
async def test_fast_path_failure_falls_back_to_a_full_sync() -> None:
    kernel = FakeIpvsKernel()
    p = IpvsProgrammer(kernel, min_interval=0.05, max_interval=100.0, retry_interval=1.0)
    p.set_specs([web(drain=0.0)])
    task = asyncio.create_task(p.run())
    await asyncio.sleep(1.0)
    kernel.tamper_delete_dest(VS, RS2)  # our record is now wrong
    p.update_health(VS, RS2, DOWN)  # fast path: DeleteDest -> ENOENT
    await asyncio.sleep(0.5)
    assert [e.errno for _, e in kernel.failed] == [ENOENT]
    dumps = kernel.dump_count
    p.update_health(VS, RS2, HealthView(True))
    await asyncio.sleep(2.0)
    assert kernel.dump_count > dumps  # the retry compared with a dump
    assert kernel.table == web_table()
    await p.stop()
    await task


@pytest.mark.looptime
async def test_loop_deletes_a_draining_server_at_its_deadline() -> None:
    kernel = FakeIpvsKernel(web_table())
    p = IpvsProgrammer(kernel, min_interval=0.05, max_interval=100.0)
    p.set_specs([web(drain=30.0)])
    task = asyncio.create_task(p.run())
    await asyncio.sleep(1.0)
    kernel.set_stats(VS, RS2, DestStats(active_conns=1))
    p.update_health(VS, RS2, DOWN)
    await asyncio.sleep(1.0)
    assert kernel.table.dest(VS, RS2) == Dest(RS2, weight=0)
    await asyncio.sleep(25.0)  # t=27 < deadline 31
    assert kernel.table.dest(VS, RS2) is not None
    await asyncio.sleep(5.0)  # t=32: the drain deadline woke the loop (max_interval is 100)
    assert kernel.table.dest(VS, RS2) is None
    await p.stop()
    await task


# ------------------------------------------------------------ batching and one-by-one kernels


class OneByOne:
    """A kernel with only the base port (no apply_many): the programmer applies op by op."""

    def __init__(self, fake: FakeIpvsKernel) -> None:
        self.fake = fake

    async def dump(self) -> ActualTable:
        return await self.fake.dump()

    async def apply(self, op: Op) -> None:
        await self.fake.apply(op)

    async def set_timeouts(self, tcp: int, tcpfin: int, udp: int) -> None:
        await self.fake.set_timeouts(tcp, tcpfin, udp)

    async def get_timeouts(self) -> IpvsTimeouts:
        return await self.fake.get_timeouts()


async def test_batching_kernel_gets_service_adds_then_the_rest() -> None:
    kernel = FakeIpvsKernel()
    p = IpvsProgrammer(kernel)
    p.set_specs([web(), ServiceSpec(Service(VS2, "rr"), (Dest(RS1),))])
    await p.sync()
    assert kernel.batches == [2, 3]
    assert [type(op) for op in kernel.op_log] == [AddService, AddService, AddDest, AddDest,
                                                  AddDest]


@pytest.mark.parametrize("batching", [True, False])
async def test_failed_service_add_skips_its_dests_in_both_modes(batching: bool) -> None:
    fake = FakeIpvsKernel()
    kernel: IpvsKernel = fake if batching else OneByOne(fake)
    assert isinstance(kernel, BatchIpvsKernel) is batching
    p = IpvsProgrammer(kernel)
    p.set_specs([ServiceSpec(Service(VS, "nosuch"), (Dest(RS1),)),
                 ServiceSpec(Service(VS2, "rr"), (Dest(RS2),))])
    applied = await p.sync()
    assert [type(op) for op in applied] == [AddService, AddDest]
    assert [e.op for _, e in fake.failed] == ["add_service"]
    assert fake.table == IpvsTable.build([(Service(VS2, "rr"), [Dest(RS2)])])
    status = p.status()
    assert (status.ops_failed, status.last_errno, status.in_sync) == (1, ENOENT, False)


async def test_one_by_one_kernel_reaches_the_same_table() -> None:
    fake = FakeIpvsKernel()
    p = IpvsProgrammer(OneByOne(fake))
    p.set_specs([web()])
    await p.sync()
    assert fake.table == web_table()
    assert fake.batches == []


async def test_reload_fast_path_touches_only_changed_services_without_a_dump() -> None:
    kernel = FakeIpvsKernel()
    p = IpvsProgrammer(kernel)
    other = ServiceSpec(Service(VS2, "rr"), (Dest(RS1),))
    p.set_specs([web(), other])
    await p.sync()
    dumps, ops = kernel.dump_count, len(kernel.op_log)
    p.set_specs([web(weight2=6), other])
    assert await p.sync(full=False) == (
        UpdateDest(VS, Dest(RS2, weight=6), OpReason.WEIGHT_CHANGED, "weight 2->6"),)
    p.set_specs([web(weight2=6)])
    assert await p.sync(full=False) == (DeleteService(VS2),)
    assert kernel.dump_count == dumps and len(kernel.op_log) == ops + 2
    assert VS2 not in p.owned
    assert kernel.table == web_table(weight2=6)
    assert await p.sync(full=False) == ()
    assert await p.sync() == ()  # and a full compare agrees


async def test_fast_path_before_any_full_sync_does_a_full_one() -> None:
    kernel = FakeIpvsKernel(web_table())
    p = IpvsProgrammer(kernel)
    p.set_specs([web()])
    assert await p.sync(full=False) == ()
    assert kernel.dump_count == 1


# ------------------------------------------------------------------ against the real kernel


def _run(*args: str) -> str:
    return subprocess.run(list(args), capture_output=True, text=True, check=True).stdout


@pytest.fixture
def lab_namespace() -> Iterator[str]:
    """A fresh network namespace with the real servers' range routable; removed after."""
    name = f"haipvs-prog-{os.getpid()}"
    _run("ip", "netns", "add", name)
    try:
        ns = ("ip", "netns", "exec", name)
        _run(*ns, "ip", "link", "set", "lo", "up")
        _run(*ns, "ip", "link", "add", "rs0", "type", "dummy")
        _run(*ns, "ip", "link", "set", "rs0", "up")
        _run(*ns, "ip", "addr", "add", "10.0.0.1/24", "dev", "rs0")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


@pytest.mark.lab
async def test_programmer_on_the_real_kernel_adopts_repairs_and_drains(
    logs: Logs, lab_namespace: str
) -> None:
    """In a fresh namespace of the lab kernel: build, adopt with zero ops after a restart,
    repair `ipvsadm -d` / `-e` drift, take a health change through the fast path."""
    netlink = pytest.importorskip("haipvs.ipvs.netlink")
    name = lab_namespace
    ns = ("ip", "netns", "exec", name)
    specs = [web(drain=0.0),
             ServiceSpec(Service(VS2, "sh", persistence_timeout=300, persistence_netmask=24),
                         (Dest(RS1, weight=3), Dest(RS2, u_thresh=10, l_thresh=2)))]
    async with netlink.NetlinkIpvsKernel(netns=name) as kernel:
        p = IpvsProgrammer(kernel)
        p.set_specs(specs)
        assert len(await p.sync()) == 6
        assert await p.sync() == ()
    async with netlink.NetlinkIpvsKernel(netns=name) as kernel:
        restarted = IpvsProgrammer(kernel)
        restarted.set_specs(specs)
        assert await restarted.sync() == ()  # adoption: zero ops on a matching table
        _run(*ns, "ipvsadm", "-d", "-t", "198.51.100.10:80", "-r", "10.0.0.11:80")
        _run(*ns, "ipvsadm", "-e", "-t", "198.51.100.11:443", "-r", "10.0.0.11:80",
             "-m", "-w", "9")
        repaired = await restarted.sync()
        assert {op.reason for op in repaired} == {OpReason.DRIFT_MISSING,
                                                   OpReason.DRIFT_CHANGED}
        assert len(events(logs, "ipvs.drift.repaired")) == 2
        restarted.update_health(VS, RS2, DOWN)
        assert await restarted.sync(full=False) == (
            DeleteDest(VS, RS2, OpReason.HEALTH_DOWN, DOWN.reason),)
        rules = {" ".join(line.split()) for line in _run(*ns, "ipvsadm", "-Sn").splitlines()}
        assert "-a -t 198.51.100.10:80 -r 10.0.0.11:80 -m -w 1" in rules
        assert not any(rule.startswith("-a -t 198.51.100.10:80 -r 10.0.0.12:80")
                       for rule in rules)
        assert await restarted.sync() == ()


async def test_extra_owned_services_without_specs_are_removed() -> None:
    stale = ServiceKey.tcp("198.51.100.99", 80)
    kernel = FakeIpvsKernel(IpvsTable.build([(Service(stale), [Dest(RS1)])]))
    p = IpvsProgrammer(kernel)
    p.set_specs([web()])
    await p.sync()
    assert stale in kernel.table  # not ours: left alone
    p.set_specs([web()], owned={stale})  # e.g. a VIP the config says haipvs manages
    assert await p.sync(full=False) == ()  # our record cannot know: a full compare does
    await p.sync()
    assert stale not in kernel.table


_HOLDER = r"""
import socket, struct, sys
s = socket.create_connection((sys.argv[1], 80), timeout=30)
s.sendall(b"GET /hold HTTP/1.1\r\nHost: vip\r\n\r\n")
f = s.makefile("rb")
while f.readline() not in (b"\r\n", b""):
    pass
print(f.readline().decode().strip(), flush=True)
for command in sys.stdin:
    if command.strip() == "close":
        break
    print(f.readline().decode().strip(), flush=True)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
print("closed", flush=True)
"""

_FETCH = (
    "import sys, urllib.request;"
    "sys.stdout.write(urllib.request.urlopen('http://198.51.100.10/', timeout=5).read().decode())"
)


@pytest.fixture
def nat_lab() -> Iterator[Any]:
    """The lab's NAT network (client, director, two real servers answering with their
    name), built and torn down outside the event loop (pyroute2's sync IPRoute needs that)."""
    from haipvs.lab.servers import start_real_server
    from haipvs.lab.topology import Bridge, Endpoint, Host, Route, Topology, Veth, build

    topology = Topology(
        hosts=(
            Host("client", routes=(Route("default", via="198.51.100.1"),)),
            Host("dir", sysctls={"net.ipv4.ip_forward": "1"},
                 loopback_addresses=("198.51.100.10/32",)),
            Host("rs1", routes=(Route("default", via="10.0.0.1"),)),
            Host("rs2", routes=(Route("default", via="10.0.0.1"),)),
        ),
        links=(
            Veth(Endpoint("client", "eth0", ("198.51.100.2/24",)),
                 Endpoint("dir", "eth0", ("198.51.100.1/24",))),
            Veth(Endpoint("rs1", "eth0", ("10.0.0.11/24",)), Endpoint("dir", "rs1")),
            Veth(Endpoint("rs2", "eth0", ("10.0.0.12/24",)), Endpoint("dir", "rs2")),
        ),
        bridges=(Bridge("dir", "br0", ports=("rs1", "rs2"), addresses=("10.0.0.1/24",)),),
    )
    with build(topology, prefix=f"drn{os.getpid() % 10000}-") as net:
        servers = [start_real_server(net, "rs1", "rs1", http=["0.0.0.0:80"]),
                   start_real_server(net, "rs2", "rs2", http=["0.0.0.0:80"])]
        try:
            yield net
        finally:
            for server in servers:
                server.terminate()
                server.wait(timeout=10)


@pytest.mark.lab
async def test_drain_on_the_real_kernel_keeps_the_established_connection(
    logs: Logs, nat_lab: Any
) -> None:
    """NAT in the lab: a real server goes down while a client holds a connection to it. It
    drops to weight 0 (new connections go to the other one), the held connection keeps
    flowing, and once the client closes it the kernel's counters reach 0 and the next sync
    deletes the real server: ``ipvs.dest.drain.started`` then ``.finished``."""
    netlink = pytest.importorskip("haipvs.ipvs.netlink")
    net = nat_lab
    holder: subprocess.Popen[bytes] | None = None
    try:
        async with netlink.NetlinkIpvsKernel(netns=net.ns("dir")) as kernel:
            p = IpvsProgrammer(kernel)
            p.set_specs([ServiceSpec(Service(VS, "rr"), (Dest(RS1), Dest(RS2)),
                                     drain_timeout=120.0)])
            await p.sync()
            holder = net.popen("client", [sys.executable, "-c", _HOLDER, "198.51.100.10"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            assert holder.stdout is not None and holder.stdin is not None
            first = (await asyncio.to_thread(holder.stdout.readline)).decode().strip()
            held, other = (RS1, "rs2") if first == "rs1" else (RS2, "rs1")
            p.update_health(VS, held, DOWN)
            await p.sync()
            actual = await kernel.dump()
            assert actual.table.dest(VS, held) == Dest(held, weight=0)
            assert actual.stats_of(VS, held).active_conns == 1
            (started,) = events(logs, "ipvs.dest.drain.started")
            assert started["rs"] == str(held) and "connections 1" in started["detail"]

            holder.stdin.write(b"more\n")
            holder.stdin.flush()
            again = (await asyncio.to_thread(holder.stdout.readline)).decode().strip()
            assert again == first  # the established connection still flows
            for _ in range(3):  # new connections avoid the draining server
                fetched = await asyncio.to_thread(
                    net.run, "client", [sys.executable, "-c", _FETCH])
                assert fetched.stdout.strip() == other
            assert await p.sync() == ()  # still one connection: still draining

            holder.stdin.write(b"close\n")
            holder.stdin.flush()
            assert (await asyncio.to_thread(holder.stdout.readline)).strip() == b"closed"
            # The kernel keeps the reset connection (state CLOSE) for ~10 s, then drops it.
            for _ in range(60):
                ops = await p.sync()
                if ops:
                    break
                await asyncio.sleep(1.0)
            assert ops == (DeleteDest(VS, held, OpReason.DRAIN_FINISHED, "connections 0"),)
            assert (await kernel.dump()).table.dest(VS, held) is None
            (finished,) = events(logs, "ipvs.dest.drain.finished")
            assert finished["rs"] == str(held)
    finally:
        if holder is not None:
            holder.kill()


# ------------------------------------------------------------------ property: fast == full

_SVCS = [ServiceKey.tcp("198.51.100.10", 80), ServiceKey.udp("198.51.100.10", 53),
         ServiceKey.tcp("198.51.100.11", 443)]
_RSS = [DestKey(f"10.0.0.{i}", 80) for i in range(11, 15)]

_step = st.one_of(
    st.tuples(st.just("health"), st.sampled_from(_SVCS), st.sampled_from(_RSS),
              st.booleans(), st.sampled_from([1.0, 0.5, 0.1])),
    st.tuples(st.just("weight"), st.sampled_from(_SVCS), st.sampled_from(_RSS),
              st.integers(0, 4)),
    st.tuples(st.just("remove"), st.sampled_from(_SVCS)),
    st.tuples(st.just("restore"), st.sampled_from(_SVCS)),
    st.tuples(st.just("quorum"), st.sampled_from(_SVCS), st.integers(0, 4)),
)


def _initial_specs(drain: float) -> dict[ServiceKey, ServiceSpec]:
    return {
        key: ServiceSpec(Service(key, "wlc"), tuple(Dest(rs, weight=2) for rs in _RSS),
                         drain_timeout=drain, sorry_server=Dest(DestKey("10.0.0.250", 80)))
        for key in _SVCS
    }


@settings(max_examples=100, deadline=None)
@given(steps=st.lists(_step, max_size=12), drain=st.sampled_from([0.0, 30.0]))
def test_fast_syncs_keep_the_kernel_equal_to_what_a_full_sync_computes(
    steps: list[tuple[Any, ...]], drain: float
) -> None:
    """Whatever the sequence of health flips, weight changes, removals and quorum changes,
    fast syncs (no dump) leave the kernel exactly as a from-scratch full sync would want it
    (draining dests at weight 0 aside), and a full sync then has nothing to do but finish
    drains."""

    async def scenario() -> None:
        kernel = FakeIpvsKernel()
        p = IpvsProgrammer(kernel)
        all_specs = _initial_specs(drain)
        active = dict(all_specs)
        health: dict[tuple[ServiceKey, DestKey], HealthView] = {}
        p.set_specs(active.values())
        await p.sync()
        for step in steps:
            if step[0] == "health":
                _, svc, rs, up, factor = step
                view = HealthView(up, weight_factor=factor if up else 1.0)
                health[(svc, rs)] = view
                p.update_health(svc, rs, view)
            elif step[0] == "weight":
                _, svc, rs, weight = step
                if svc in active:
                    spec = active[svc]
                    active[svc] = dataclasses.replace(spec, real_servers=tuple(
                        dataclasses.replace(d, weight=weight) if d.key == rs else d
                        for d in spec.real_servers))
                    p.set_specs(active.values())
            elif step[0] == "remove":
                active.pop(step[1], None)
                p.set_specs(active.values())
            elif step[0] == "restore":
                active.setdefault(step[1], all_specs[step[1]])
                p.set_specs(active.values())
            else:
                _, svc, min_up = step
                if svc in active:
                    active[svc] = dataclasses.replace(active[svc], min_up=min_up)
                    p.set_specs(active.values())
            await p.sync(full=False)
            live_health = {k: v for k, v in health.items() if k[0] in active}
            want = desired_table(list(active.values()), live_health)
            have = kernel.table
            assert set(have) == set(want)
            for key, entry in want.items():
                extra = {k: d for k, d in have[key].dests.items() if k not in entry.dests}
                assert all(d.weight == 0 for d in extra.values())  # draining only
                assert {k: d for k, d in have[key].dests.items() if k in entry.dests} == dict(
                    entry.dests)
        await p.sync()  # counts are 0 in the fake: every drain ends
        live_health = {k: v for k, v in health.items() if k[0] in active}
        assert kernel.table == desired_table(list(active.values()), live_health)
        assert await p.sync() == ()
        assert not any(op.reason.is_drift for op in kernel.op_log)

    asyncio.run(scenario())


_tamper = st.one_of(
    st.tuples(st.just("delete_dest"), st.sampled_from(_SVCS), st.sampled_from(_RSS)),
    st.tuples(st.just("weight"), st.sampled_from(_SVCS), st.sampled_from(_RSS),
              st.integers(0, 9)),
    st.tuples(st.just("delete_service"), st.sampled_from(_SVCS)),
    st.tuples(st.just("add_dest"), st.sampled_from(_SVCS)),
    st.tuples(st.just("scheduler"), st.sampled_from(_SVCS)),
    st.tuples(st.just("clear"),),
)


@settings(max_examples=100, deadline=None)
@given(tampering=st.lists(_tamper, min_size=1, max_size=6))
def test_every_difference_made_behind_our_back_is_repaired_as_drift(
    tampering: list[tuple[Any, ...]],
) -> None:
    async def scenario() -> None:
        kernel = FakeIpvsKernel()
        p = IpvsProgrammer(kernel)
        specs = _initial_specs(0.0)
        p.set_specs(specs.values())
        await p.sync()
        ours = kernel.table
        for step in tampering:
            table = kernel.table
            if step[0] == "delete_dest" and table.dest(step[1], step[2]) is not None:
                kernel.tamper_delete_dest(step[1], step[2])
            elif step[0] == "weight" and table.dest(step[1], step[2]) is not None:
                kernel.tamper_set_weight(step[1], step[2], step[3])
            elif step[0] == "delete_service" and step[1] in table:
                kernel.tamper_delete_service(step[1])
            elif step[0] == "add_dest" and step[1] in table:
                stranger = DestKey("10.0.0.99", 80)
                if table.dest(step[1], stranger) is None:
                    kernel.tamper(AddDest(step[1], Dest(stranger)))
            elif step[0] == "scheduler" and step[1] in table:
                kernel.tamper(UpdateService(Service(step[1], "rr")))
            elif step[0] == "clear":
                kernel.tamper_clear()
        tampered = kernel.table
        kernel.clear_log()
        repaired = await p.sync()
        assert kernel.table == ours
        assert all(op.reason.is_drift for op in repaired)
        assert len(repaired) == len(plan_changes(ours, tampered, set(ours)))
        assert p.status().drift_repairs == len(repaired)

    asyncio.run(scenario())


async def test_an_operator_drain_survives_drift_repair_and_a_manual_weight_does_not(
    logs: Logs,
) -> None:
    kernel = FakeIpvsKernel(web_table())
    p = IpvsProgrammer(kernel)
    p.set_specs([web()])
    await p.sync()
    kernel.set_stats(VS, RS2, DestStats(active_conns=3))
    p.set_admin({(VS, RS2): AdminView(AdminState.DRAIN, "haipvs drain by uid 0")})
    await p.sync()
    assert kernel.table.dest(VS, RS2) == Dest(RS2, weight=0)
    (line,) = events(logs, "ipvs.dest.updated")
    assert (line["rs"], line["reason"]) == ("10.0.0.12:80", "operator_drain")
    # Connections do not end the operator's drain: the server stays, at weight 0.
    kernel.set_stats(VS, RS2, DestStats())
    await p.sync()
    assert kernel.table.dest(VS, RS2) == Dest(RS2, weight=0)
    # ipvsadm -e -w 5 by hand is drift: reverted to the drained weight 0.
    kernel.tamper_set_weight(VS, RS2, 5)
    await p.sync()
    assert kernel.table.dest(VS, RS2) == Dest(RS2, weight=0)
    kernel.clear_log()
    p.set_admin({})
    await p.sync()
    assert kernel.op_log == [UpdateDest(VS, Dest(RS2, weight=2), OpReason.WEIGHT_CHANGED,
                                        "weight 0->2")]


async def test_maintenance_drains_then_deletes_the_real_server(logs: Logs) -> None:
    kernel = FakeIpvsKernel(web_table())
    p = IpvsProgrammer(kernel)
    p.set_specs([web()])
    await p.sync()
    kernel.set_stats(VS, RS2, DestStats(active_conns=1))
    p.set_admin({(VS, RS2): AdminView(AdminState.MAINTENANCE, "haipvs maintenance by uid 0")})
    await p.sync()
    assert kernel.table.dest(VS, RS2) == Dest(RS2, weight=0)
    (line,) = events(logs, "ipvs.dest.drain.started")
    assert line["detail"].startswith("operator_maintenance: haipvs maintenance by uid 0")
    kernel.set_stats(VS, RS2, DestStats())
    await p.sync()
    assert kernel.table.dest(VS, RS2) is None
