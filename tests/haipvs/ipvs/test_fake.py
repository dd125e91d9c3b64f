"""FakeIpvsKernel's own features: op log, fault switches, tampering, stats, sorted dumps.

(The kernel rules it shares with the real kernel are in tests/contract/test_ipvs_kernel.py.)
"""

from __future__ import annotations

import pytest

from haipvs.ipvs.errors import EBUSY, EEXIST, EINVAL, ENOENT, ESRCH, KernelError
from haipvs.ipvs.fake import FakeIpvsKernel
from haipvs.ipvs.kernel import IpvsKernel
from haipvs.ipvs.model import (
    AddDest,
    AddService,
    DeleteDest,
    Dest,
    DestKey,
    DestStats,
    Forwarding,
    IpvsTable,
    Service,
    ServiceKey,
    UpdateDest,
)

VS = ServiceKey.tcp("198.51.100.10", 80)
RS1 = DestKey("10.0.0.11", 80)
RS2 = DestKey("10.0.0.12", 80)
RS3 = DestKey("10.0.0.9", 80)


def test_fake_implements_the_port() -> None:
    assert isinstance(FakeIpvsKernel(), IpvsKernel)


async def test_op_log_records_applied_ops_and_failed_ones_separately() -> None:
    kernel = FakeIpvsKernel()
    add = AddService(Service(VS))
    await kernel.apply(add)
    with pytest.raises(KernelError) as info:
        await kernel.apply(add)
    assert info.value == KernelError("add_service", "tcp/198.51.100.10:80", EEXIST)
    assert kernel.op_log == [add]
    assert kernel.failed == [(add, info.value)]


async def test_dump_lists_dests_sorted_whatever_the_insertion_order() -> None:
    kernel = FakeIpvsKernel()
    await kernel.apply(AddService(Service(VS)))
    for key in (RS2, RS1, RS3):
        await kernel.apply(AddDest(VS, Dest(key)))
    actual = await kernel.dump()
    assert list(actual.table[VS].dests) == [RS3, RS1, RS2]
    assert kernel.dump_count == 1


async def test_fail_next_refuses_then_recovers() -> None:
    kernel = FakeIpvsKernel()
    kernel.fail_next(EBUSY, times=2)
    for _ in range(2):
        with pytest.raises(KernelError) as info:
            await kernel.apply(AddService(Service(VS)))
        assert info.value.errno == EBUSY
    await kernel.apply(AddService(Service(VS)))
    assert VS in kernel.table


async def test_fail_when_targets_matching_ops_until_cleared() -> None:
    kernel = FakeIpvsKernel(IpvsTable.build([(Service(VS), [])]))
    kernel.fail_when(lambda op: isinstance(op, AddDest) and op.dest.key == RS2, EINVAL, None)
    await kernel.apply(AddDest(VS, Dest(RS1)))
    for _ in range(3):
        with pytest.raises(KernelError):
            await kernel.apply(AddDest(VS, Dest(RS2)))
    kernel.clear_faults()
    await kernel.apply(AddDest(VS, Dest(RS2)))
    assert set(kernel.table[VS].dests) == {RS1, RS2}


async def test_failed_dump_raises_kernel_error() -> None:
    kernel = FakeIpvsKernel()
    kernel.fail_dumps(EBUSY)
    with pytest.raises(KernelError) as info:
        await kernel.dump()
    assert info.value.op == "dump"
    await kernel.dump()


async def test_tampering_changes_the_table_without_logging() -> None:
    kernel = FakeIpvsKernel(IpvsTable.build([(Service(VS), [Dest(RS1), Dest(RS2)])]))
    kernel.tamper_delete_dest(VS, RS1)
    kernel.tamper_set_weight(VS, RS2, 7)
    assert kernel.table == IpvsTable.build([(Service(VS), [Dest(RS2, weight=7)])])
    kernel.tamper(AddDest(VS, Dest(RS3)))
    kernel.tamper_delete_service(VS)
    assert kernel.table == IpvsTable()
    kernel.load(IpvsTable.build([(Service(VS), [Dest(RS1)])]))
    kernel.tamper_clear()
    assert kernel.table == IpvsTable()
    assert kernel.op_log == []
    with pytest.raises(KernelError) as info:
        kernel.tamper_delete_service(VS)
    assert info.value.errno == ESRCH


async def test_stats_follow_the_dest_and_vanish_with_it() -> None:
    kernel = FakeIpvsKernel(IpvsTable.build([(Service(VS), [Dest(RS1)])]))
    kernel.set_stats(VS, RS1, DestStats(active_conns=2, inactive_conns=1))
    await kernel.apply(UpdateDest(VS, Dest(RS1, weight=0)))
    assert (await kernel.dump()).stats_of(VS, RS1).connections == 3
    await kernel.apply(DeleteDest(VS, RS1))
    await kernel.apply(AddDest(VS, Dest(RS1)))
    assert (await kernel.dump()).stats_of(VS, RS1) == DestStats()
    with pytest.raises(KeyError):
        kernel.set_stats(VS, RS2, DestStats(1, 0, 0))


async def test_mixed_family_dest_needs_tunnel_forwarding() -> None:
    v6 = ServiceKey.tcp("2001:db8::10", 80)
    kernel = FakeIpvsKernel(IpvsTable.build([(Service(v6), [])]))
    with pytest.raises(KernelError) as info:
        await kernel.apply(AddDest(v6, Dest(RS1, forwarding=Forwarding.MASQ)))
    assert info.value.errno == EINVAL
    await kernel.apply(AddDest(v6, Dest(RS1, forwarding=Forwarding.TUNNEL)))


async def test_unknown_scheduler_is_enoent_even_when_configured_narrower() -> None:
    kernel = FakeIpvsKernel(schedulers={"rr"})
    with pytest.raises(KernelError) as info:
        await kernel.apply(AddService(Service(VS, "wlc")))
    assert info.value.errno == ENOENT
    await kernel.apply(AddService(Service(VS, "rr")))


async def test_timeouts_zero_means_unchanged() -> None:
    kernel = FakeIpvsKernel()
    before = await kernel.get_timeouts()
    assert (before.tcp, before.tcp_fin, before.udp) == (900, 120, 300)
    await kernel.set_timeouts(7200, 0, 180)
    after = await kernel.get_timeouts()
    assert (after.tcp, after.tcp_fin, after.udp) == (7200, 120, 180)
