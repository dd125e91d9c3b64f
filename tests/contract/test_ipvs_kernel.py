"""One contract for every IpvsKernel: the strict fake and the real kernel behave alike.

Every test runs twice: against ``FakeIpvsKernel`` (anywhere) and against
``NetlinkIpvsKernel`` in a fresh network namespace of the lab kernel (``lab`` marker; run with
``.venv/bin/haipvs lab run -- .venv/bin/pytest -m lab tests/contract/test_ipvs_kernel.py``).
What the real kernel does is the truth; this suite is what keeps the fake honest: every
op, every errno the kernel's IPVS netlink interface returns, every feature of the model, and
pyroute2's 'update'-deletes bug (an UpdateService / UpdateDest must leave the object there).
No packet is sent: programming a table needs none.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import AsyncIterator, Iterator

import pytest

from haipvs.ipvs.errors import EEXIST, EINVAL, ENOENT, ESRCH, KernelError
from haipvs.ipvs.fake import FakeIpvsKernel
from haipvs.ipvs.kernel import BatchIpvsKernel, IpvsKernel
from haipvs.ipvs.model import (
    SCHEDULERS,
    AddDest,
    AddService,
    DeleteDest,
    DeleteService,
    Dest,
    DestKey,
    DestStats,
    Family,
    Forwarding,
    IpvsTable,
    Op,
    SchedFlags,
    Service,
    ServiceKey,
    TunFlags,
    TunType,
    UpdateDest,
    UpdateService,
)

VS = ServiceKey.tcp("198.51.100.10", 80)
VS6 = ServiceKey.tcp("2001:db8::10", 443)
RS1 = DestKey("10.0.0.11", 80)
RS2 = DestKey("10.0.0.12", 80)
RS3 = DestKey("10.0.0.13", 80)
RS6 = DestKey("2001:db8:1::11", 443)

_names = itertools.count()


def _sh(*args: str) -> None:
    done = subprocess.run(list(args), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(args)}: {done.stderr.strip()}")


@pytest.fixture
def namespace() -> Iterator[str]:
    """A fresh network namespace whose real-server ranges are routable (IPVS refuses a
    dest it cannot route); deleted afterwards with everything in it."""
    name = f"haipvs-contract-{os.getpid()}-{next(_names)}"
    _sh("ip", "netns", "add", name)
    try:
        ns = ("ip", "netns", "exec", name)
        _sh(*ns, "ip", "link", "set", "lo", "up")
        _sh(*ns, "ip", "link", "add", "rs0", "type", "dummy")
        _sh(*ns, "ip", "link", "set", "rs0", "up")
        _sh(*ns, "ip", "addr", "add", "10.0.0.1/24", "dev", "rs0")
        _sh(*ns, "ip", "-6", "addr", "add", "2001:db8:1::1/64", "dev", "rs0", "nodad")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


@pytest.fixture(params=["fake", pytest.param("real", marks=pytest.mark.lab)])
async def kernel(request: pytest.FixtureRequest) -> AsyncIterator[IpvsKernel]:
    if request.param == "fake":
        yield FakeIpvsKernel()
        return
    netlink = pytest.importorskip("haipvs.ipvs.netlink")
    name = request.getfixturevalue("namespace")
    real = netlink.NetlinkIpvsKernel(netns=name)
    await real.open()
    try:
        yield real
    finally:
        await real.close()


async def apply_all(kernel: IpvsKernel, ops: list[Op]) -> None:
    for op in ops:
        await kernel.apply(op)


async def build(kernel: IpvsKernel, table: IpvsTable) -> None:
    ops: list[Op] = []
    for entry in table.values():
        ops.append(AddService(entry.service))
        ops.extend(AddDest(entry.key, dest) for dest in entry.dests.values())
    await apply_all(kernel, ops)


async def refused(kernel: IpvsKernel, op: Op) -> int:
    """Apply an op that must fail; return its errno and check the table did not change."""
    before = (await kernel.dump()).table
    with pytest.raises(KernelError) as caught:
        await kernel.apply(op)
    assert (await kernel.dump()).table == before
    return caught.value.errno


# --------------------------------------------------------------------------- ops


async def test_a_fresh_table_is_empty(kernel: IpvsKernel) -> None:
    actual = await kernel.dump()
    assert actual.table == IpvsTable()


async def test_add_service_and_dests_reads_back_equal(kernel: IpvsKernel) -> None:
    table = IpvsTable.build([(Service(VS, "wlc"), [Dest(RS1), Dest(RS2, weight=3)])])
    await build(kernel, table)
    actual = await kernel.dump()
    assert actual.table == table
    assert actual.stats_of(VS, RS1) == DestStats()


async def test_update_service_changes_it_in_place_with_its_dests(kernel: IpvsKernel) -> None:
    await build(kernel, IpvsTable.build([(Service(VS, "wlc"), [Dest(RS1)])]))
    changed = Service(VS, "rr", persistence_timeout=120, persistence_netmask=24)
    await kernel.apply(UpdateService(changed))
    # pyroute2's 'update' would have deleted the service: the set must keep it and its dest.
    assert (await kernel.dump()).table == IpvsTable.build([(changed, [Dest(RS1)])])
    await kernel.apply(UpdateService(Service(VS, "rr")))
    assert (await kernel.dump()).table[VS].service == Service(VS, "rr")


async def test_update_dest_changes_weight_forwarding_and_thresholds(kernel: IpvsKernel) -> None:
    await build(kernel, IpvsTable.build([(Service(VS), [Dest(RS1), Dest(RS2)])]))
    drained = Dest(RS1, weight=0)
    await kernel.apply(UpdateDest(VS, drained))
    changed = Dest(RS2, weight=7, forwarding=Forwarding.DROUTE, u_thresh=100, l_thresh=10)
    await kernel.apply(UpdateDest(VS, changed))
    assert (await kernel.dump()).table == IpvsTable.build([(Service(VS), [drained, changed])])


async def test_dests_dump_in_the_kernels_list_order_newest_first(kernel: IpvsKernel) -> None:
    # mh builds its lookup table walking this list (ip_vs_mh.c), so two directors hash
    # alike only if their lists are in the same order: a new dest goes to the head
    # (list_add_rcu), an edit keeps its place, a delete and re-add moves it to the head.
    rs4 = DestKey("10.0.0.14", 80)
    await apply_all(kernel, [AddService(Service(VS, "mh", flags=SchedFlags(mh_port=True))),
                             *(AddDest(VS, Dest(key)) for key in (RS1, RS2, RS3))])

    async def order() -> list[DestKey]:
        return list((await kernel.dump()).table[VS].dests)

    assert await order() == [RS3, RS2, RS1]
    await kernel.apply(AddDest(VS, Dest(rs4)))
    assert await order() == [rs4, RS3, RS2, RS1]
    await kernel.apply(UpdateDest(VS, Dest(RS3, weight=0)))
    assert await order() == [rs4, RS3, RS2, RS1]
    await kernel.apply(DeleteDest(VS, RS2))
    await kernel.apply(AddDest(VS, Dest(RS2)))
    assert await order() == [RS2, rs4, RS3, RS1]


async def test_delete_dest_and_delete_service(kernel: IpvsKernel) -> None:
    other = ServiceKey.udp("198.51.100.10", 53)
    await build(kernel, IpvsTable.build([(Service(VS), [Dest(RS1), Dest(RS2)]),
                                         (Service(other, "rr"), [Dest(RS3)])]))
    await kernel.apply(DeleteDest(VS, RS1))
    await kernel.apply(DeleteService(other))  # takes its dest with it
    assert (await kernel.dump()).table == IpvsTable.build([(Service(VS), [Dest(RS2)])])
    await kernel.apply(DeleteService(VS))
    assert (await kernel.dump()).table == IpvsTable()


async def test_dump_does_not_depend_on_insertion_order(kernel: IpvsKernel) -> None:
    await kernel.apply(AddService(Service(VS)))
    for key in (RS3, RS1, RS2):
        await kernel.apply(AddDest(VS, Dest(key)))
    entry = (await kernel.dump()).table[VS]
    assert set(entry.dests) == {RS1, RS2, RS3}
    assert entry == IpvsTable.build([(Service(VS), [Dest(RS1), Dest(RS2), Dest(RS3)])])[VS]


# --------------------------------------------------------------------------- errors


async def test_add_existing_service_is_eexist(kernel: IpvsKernel) -> None:
    await kernel.apply(AddService(Service(VS)))
    assert await refused(kernel, AddService(Service(VS, "rr"))) == EEXIST


async def test_missing_service_is_esrch_for_every_service_and_dest_op(kernel: IpvsKernel) -> None:
    assert await refused(kernel, DeleteService(VS)) == ESRCH
    assert await refused(kernel, UpdateService(Service(VS, "rr"))) == ESRCH
    assert await refused(kernel, AddDest(VS, Dest(RS1))) == ESRCH
    assert await refused(kernel, UpdateDest(VS, Dest(RS1))) == ESRCH
    assert await refused(kernel, DeleteDest(VS, RS1)) == ESRCH


async def test_add_existing_dest_is_eexist(kernel: IpvsKernel) -> None:
    await build(kernel, IpvsTable.build([(Service(VS), [Dest(RS1)])]))
    assert await refused(kernel, AddDest(VS, Dest(RS1, weight=5))) == EEXIST


async def test_missing_dest_is_enoent(kernel: IpvsKernel) -> None:
    await build(kernel, IpvsTable.build([(Service(VS), [Dest(RS1)])]))
    assert await refused(kernel, DeleteDest(VS, RS2)) == ENOENT
    assert await refused(kernel, UpdateDest(VS, Dest(RS2))) == ENOENT


async def test_unknown_scheduler_is_enoent(kernel: IpvsKernel) -> None:
    assert await refused(kernel, AddService(Service(VS, "nosuch"))) == ENOENT
    await kernel.apply(AddService(Service(VS)))
    assert await refused(kernel, UpdateService(Service(VS, "nosuch"))) == ENOENT


async def test_mixed_family_dest_without_tunnel_is_einval(kernel: IpvsKernel) -> None:
    await kernel.apply(AddService(Service(VS6)))
    assert await refused(kernel, AddDest(VS6, Dest(RS1, forwarding=Forwarding.MASQ))) == EINVAL
    await kernel.apply(AddDest(VS6, Dest(RS1, forwarding=Forwarding.TUNNEL)))
    assert (await kernel.dump()).table.dest(VS6, RS1) == Dest(RS1, forwarding=Forwarding.TUNNEL)


async def test_batch_reports_each_failure_and_applies_the_rest(kernel: IpvsKernel) -> None:
    if not isinstance(kernel, BatchIpvsKernel):
        pytest.skip("kernel has no apply_many")
    results = await kernel.apply_many([
        AddService(Service(VS)),
        AddDest(VS, Dest(RS1)),
        AddDest(VS, Dest(RS1)),  # EEXIST
        AddDest(ServiceKey.tcp("198.51.100.99", 80), Dest(RS2)),  # ESRCH
        AddDest(VS, Dest(RS2)),
    ])
    assert [None if r is None else r.errno for r in results] == [None, None, EEXIST, ESRCH, None]
    assert (await kernel.dump()).table == IpvsTable.build([(Service(VS), [Dest(RS1), Dest(RS2)])])


# --------------------------------------------------------------------------- features


async def test_every_scheduler(kernel: IpvsKernel) -> None:
    table = IpvsTable.build(
        (Service(ServiceKey.tcp("198.51.100.20", 1000 + i), name), [Dest(RS1)])
        for i, name in enumerate(sorted(SCHEDULERS))
    )
    await build(kernel, table)
    assert (await kernel.dump()).table == table


async def test_scheduler_flags_and_one_packet(kernel: IpvsKernel) -> None:
    table = IpvsTable.build([
        (Service(ServiceKey.tcp("198.51.100.30", 80), "sh",
                 SchedFlags(sh_fallback=True, sh_port=True)), [Dest(RS1)]),
        (Service(ServiceKey.tcp("198.51.100.31", 80), "mh", SchedFlags(mh_fallback=True)),
         [Dest(RS1)]),
        (Service(ServiceKey.udp("198.51.100.32", 53), "rr", SchedFlags(one_packet=True)), []),
    ])
    await build(kernel, table)
    assert (await kernel.dump()).table == table


async def test_persistence_v4_v6_and_fwmark_services(kernel: IpvsKernel) -> None:
    table = IpvsTable.build([
        (Service(VS, "rr", persistence_timeout=300, persistence_netmask="255.255.255.0"),
         [Dest(RS1)]),
        (Service(VS6, "wrr", persistence_timeout=600, persistence_netmask=64), [Dest(RS6)]),
        (Service(ServiceKey.for_fwmark(10), "wlc"), [Dest(RS2, forwarding=Forwarding.DROUTE)]),
        (Service(ServiceKey.for_fwmark(11, Family.INET6), "rr", persistence_timeout=60),
         [Dest(DestKey("2001:db8:1::12", 0), forwarding=Forwarding.DROUTE)]),
        (Service(ServiceKey.sctp("198.51.100.10", 9), "rr"), [Dest(DestKey("10.0.0.11", 9))]),
    ])
    await build(kernel, table)
    assert (await kernel.dump()).table == table


async def test_forwarding_methods_and_tunnels(kernel: IpvsKernel) -> None:
    table = IpvsTable.build([
        (Service(VS, "rr"), [
            Dest(RS1, forwarding=Forwarding.MASQ, weight=2),
            Dest(RS2, forwarding=Forwarding.DROUTE, u_thresh=50, l_thresh=5),
            Dest(RS3, forwarding=Forwarding.TUNNEL),
            Dest(DestKey("10.0.0.14", 80), forwarding=Forwarding.TUNNEL, tun_type=TunType.GUE,
                 tun_port=6080, tun_flags=TunFlags.CSUM),
            Dest(DestKey("10.0.0.15", 80), forwarding=Forwarding.TUNNEL, tun_type=TunType.GRE,
                 tun_flags=TunFlags.REMCSUM),
        ]),
    ])
    await build(kernel, table)
    assert (await kernel.dump()).table == table


async def test_timeouts_default_set_and_zero_means_unchanged(kernel: IpvsKernel) -> None:
    defaults = await kernel.get_timeouts()
    assert (defaults.tcp, defaults.tcp_fin, defaults.udp) == (900, 120, 300)
    await kernel.set_timeouts(7200, 60, 0)
    after = await kernel.get_timeouts()
    assert (after.tcp, after.tcp_fin, after.udp) == (7200, 60, 300)
