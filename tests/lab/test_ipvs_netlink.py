"""NetlinkIpvsKernel against the real kernel, with ipvsadm as the independent oracle.

Lab only (``@pytest.mark.lab``): run with
``.venv/bin/haipvs lab run -- .venv/bin/pytest -m lab tests/lab/test_ipvs_netlink.py``.
Each test creates its own network namespace (IPVS state is per namespace), programs it
through ``NetlinkIpvsKernel(netns=...)``, reads it back twice, once through our own dump and
once through ``ipvsadm -Sn`` / ``-Ln`` (C, libnl: not our code), and deletes the namespace.
No packet leaves the namespace; the tests send none.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import os
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator

import pytest

from haipvs.ipvs.errors import KernelError
from haipvs.ipvs.model import (
    SCHEDULERS,
    AddDest,
    AddService,
    DeleteDest,
    DeleteService,
    Dest,
    DestKey,
    Family,
    Forwarding,
    IpvsTable,
    IpvsTimeouts,
    Op,
    Protocol,
    SchedFlags,
    Service,
    ServiceKey,
    TunFlags,
    TunType,
    UpdateDest,
    UpdateService,
    op_name,
    op_target,
)
from haipvs.ipvs.netlink import NetlinkIpvsKernel, SyncState

pytestmark = pytest.mark.lab

_names = itertools.count()

WEB = ServiceKey.tcp("198.51.100.10", 80)
RS1 = DestKey("10.0.0.11", 80)
RS2 = DestKey("10.0.0.12", 80)
RS3 = DestKey("10.0.0.13", 80)


def sh(*args: str) -> str:
    done = subprocess.run(list(args), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} -> {done.returncode}: {done.stderr.strip()}")
    return done.stdout


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh namespace with lo up and the real-server ranges routable (IPVS refuses a
    masq dest it cannot route)."""
    name = f"haipvs-nl-{os.getpid()}-{next(_names)}"
    sh("ip", "netns", "add", name)
    try:
        ns = ("ip", "netns", "exec", name)
        sh(*ns, "ip", "link", "set", "lo", "up")
        sh(*ns, "ip", "link", "add", "rs0", "type", "dummy")
        sh(*ns, "ip", "link", "set", "rs0", "up")
        sh(*ns, "ip", "addr", "add", "10.0.0.1/24", "dev", "rs0")
        sh(*ns, "ip", "-6", "addr", "add", "2001:db8:1::1/64", "dev", "rs0", "nodad")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


@pytest.fixture
async def kernel(netns: str) -> AsyncIterator[NetlinkIpvsKernel]:
    async with NetlinkIpvsKernel(netns=netns) as k:
        yield k
        assert k.malformed_replies == 0


def ipvsadm(netns: str, *args: str) -> str:
    return sh("ip", "netns", "exec", netns, "ipvsadm", *args)


def saved(netns: str) -> set[str]:
    """``ipvsadm -Sn`` as a set of whitespace-normalised rule lines."""
    return {" ".join(line.split()) for line in ipvsadm(netns, "-Sn").splitlines() if line}


async def apply_all(kernel: NetlinkIpvsKernel, ops: list[Op]) -> None:
    results = await kernel.apply_many(ops)
    assert results == [None] * len(ops)


async def build(kernel: NetlinkIpvsKernel, table: IpvsTable) -> None:
    ops: list[Op] = []
    for entry in table.services.values():
        ops.append(AddService(entry.service))
        ops.extend(AddDest(entry.key, d) for d in entry.dests.values())
    await apply_all(kernel, ops)


# --------------------------------------------------------------------------


async def test_service_with_nat_dr_and_tun_dests(kernel: NetlinkIpvsKernel, netns: str) -> None:
    table = IpvsTable.build(
        [
            (
                Service(WEB, scheduler="wlc"),
                [
                    Dest(RS1, weight=1, forwarding=Forwarding.MASQ),
                    Dest(RS2, weight=2, forwarding=Forwarding.DROUTE),
                    Dest(RS3, weight=3, forwarding=Forwarding.TUNNEL),
                ],
            )
        ]
    )
    await build(kernel, table)
    assert saved(netns) == {
        "-A -t 198.51.100.10:80 -s wlc",
        "-a -t 198.51.100.10:80 -r 10.0.0.11:80 -m -w 1",
        "-a -t 198.51.100.10:80 -r 10.0.0.12:80 -g -w 2",
        "-a -t 198.51.100.10:80 -r 10.0.0.13:80 -i -w 3 --tun-type ipip",
    }
    actual = await kernel.dump()
    assert actual.table == table
    assert actual.stats_of(WEB, RS1).connections == 0


async def test_every_scheduler_is_programmed_and_read_back(
    kernel: NetlinkIpvsKernel, netns: str
) -> None:
    rows = [
        (Service(ServiceKey.tcp("198.51.100.20", 1000 + i), scheduler=name), [Dest(RS1)])
        for i, name in enumerate(sorted(SCHEDULERS))
    ]
    table = IpvsTable.build(rows)
    await build(kernel, table)
    lines = saved(netns)
    for i, name in enumerate(sorted(SCHEDULERS)):
        assert f"-A -t 198.51.100.20:{1000 + i} -s {name}" in lines
    assert (await kernel.dump()).table == table


async def test_unknown_scheduler_is_enoent(kernel: NetlinkIpvsKernel) -> None:
    with pytest.raises(KernelError) as caught:
        await kernel.apply(AddService(Service(WEB, scheduler="nosuch")))
    assert (caught.value.op, caught.value.key, caught.value.errno) == (
        "add_service",
        "tcp/198.51.100.10:80",
        errno.ENOENT,
    )


async def test_scheduler_flags_and_one_packet(kernel: NetlinkIpvsKernel, netns: str) -> None:
    sh_svc = Service(
        ServiceKey.tcp("198.51.100.30", 80),
        scheduler="sh",
        flags=SchedFlags(sh_fallback=True, sh_port=True),
    )
    mh_svc = Service(
        ServiceKey.tcp("198.51.100.31", 80), scheduler="mh", flags=SchedFlags(mh_port=True)
    )
    ops_svc = Service(
        ServiceKey.udp("198.51.100.32", 53), scheduler="rr", flags=SchedFlags(one_packet=True)
    )
    table = IpvsTable.build([(sh_svc, [Dest(RS1)]), (mh_svc, [Dest(RS1)]), (ops_svc, [])])
    await build(kernel, table)
    listing = ipvsadm(netns, "-Ln")
    assert "sh (sh-fallback,sh-port)" in " ".join(listing.split()).replace(", ", ",")
    assert "mh (mh-port)" in listing
    assert any("198.51.100.32:53 rr ops" in " ".join(line.split()) for line in listing.splitlines())
    assert (await kernel.dump()).table == table
    # Clearing one flag with SET_SERVICE leaves the service (and its dest) in place.
    cleared = Service(sh_svc.key, scheduler="sh", flags=SchedFlags(sh_port=True))
    await kernel.apply(UpdateService(cleared))
    after = (await kernel.dump()).table
    assert after[sh_svc.key].service == cleared
    assert RS1 in after[sh_svc.key].dests


async def test_persistence_v4_and_v6(kernel: NetlinkIpvsKernel, netns: str) -> None:
    v4 = Service(WEB, scheduler="rr", persistence_timeout=300, persistence_netmask=24)
    v6 = Service(
        ServiceKey.tcp("2001:db8::10", 443),
        scheduler="wrr",
        persistence_timeout=600,
        persistence_netmask=64,
    )
    table = IpvsTable.build([(v4, []), (v6, [])])
    await build(kernel, table)
    lines = saved(netns)
    assert "-A -t 198.51.100.10:80 -s rr -p 300 -M 255.255.255.0" in lines
    assert "-A -t [2001:db8::10]:443 -s wrr -p 600 -M 64" in lines
    assert (await kernel.dump()).table == table
    # Persistence off again: the flag goes, the service stays.
    await kernel.apply(UpdateService(Service(WEB, scheduler="rr")))
    assert "-A -t 198.51.100.10:80 -s rr" in saved(netns)


async def test_fwmark_services_v4_and_v6(kernel: NetlinkIpvsKernel, netns: str) -> None:
    mark4 = ServiceKey.for_fwmark(100)
    mark6 = ServiceKey.for_fwmark(101, Family.INET6)
    table = IpvsTable.build(
        [
            (Service(mark4, scheduler="rr"), [Dest(DestKey("10.0.0.11", 0), weight=4)]),
            (
                Service(mark6, scheduler="lc"),
                [Dest(DestKey("2001:db8:1::11", 0), forwarding=Forwarding.DROUTE)],
            ),
        ]
    )
    await build(kernel, table)
    lines = saved(netns)
    assert "-A -f 100 -s rr" in lines
    assert "-a -f 100 -r 10.0.0.11:0 -m -w 4" in lines
    assert "-A -f 101 -6 -s lc" in lines
    assert "-a -f 101 -6 -r [2001:db8:1::11]:0 -g -w 1" in lines
    assert (await kernel.dump()).table == table


async def test_ipv6_udp_and_sctp_services(kernel: NetlinkIpvsKernel, netns: str) -> None:
    dns6 = ServiceKey.udp("2001:db8::53", 53)
    sctp = ServiceKey(Protocol.SCTP, "198.51.100.40", 3868)
    table = IpvsTable.build(
        [
            (Service(dns6, scheduler="sed"), [Dest(DestKey("2001:db8:1::21", 53))]),
            (Service(sctp, scheduler="nq"), [Dest(DestKey("10.0.0.21", 3868), weight=9)]),
        ]
    )
    await build(kernel, table)
    lines = saved(netns)
    assert "-A -u [2001:db8::53]:53 -s sed" in lines
    assert "-a -u [2001:db8::53]:53 -r [2001:db8:1::21]:53 -m -w 1" in lines
    assert "-A --sctp-service 198.51.100.40:3868 -s nq" in lines
    assert "-a --sctp-service 198.51.100.40:3868 -r 10.0.0.21:3868 -m -w 9" in lines
    assert (await kernel.dump()).table == table


async def test_tunnel_types_and_flags(kernel: NetlinkIpvsKernel, netns: str) -> None:
    dests = [
        Dest(DestKey("10.0.0.31", 80), forwarding=Forwarding.TUNNEL, tun_type=TunType.IPIP),
        Dest(
            DestKey("10.0.0.32", 80),
            forwarding=Forwarding.TUNNEL,
            tun_type=TunType.GUE,
            tun_port=6080,
            tun_flags=TunFlags.CSUM,
        ),
        Dest(
            DestKey("10.0.0.33", 80),
            forwarding=Forwarding.TUNNEL,
            tun_type=TunType.GRE,
            tun_flags=TunFlags.REMCSUM,
        ),
    ]
    table = IpvsTable.build([(Service(WEB, scheduler="rr"), dests)])
    await build(kernel, table)
    info = " ".join(ipvsadm(netns, "-Ln", "--tun-info").split())
    assert "10.0.0.31:80 Tunnel ipip" in info
    # The GUE port is big-endian on the wire: ipvsadm must read 6080, not 49175 (notes Q3).
    assert "10.0.0.32:80 Tunnel gue:6080" in info
    assert "10.0.0.33:80 Tunnel gre" in info
    assert (await kernel.dump()).table == table


async def test_thresholds(kernel: NetlinkIpvsKernel, netns: str) -> None:
    table = IpvsTable.build([(Service(WEB), [Dest(RS1, weight=5, u_thresh=100, l_thresh=10)])])
    await build(kernel, table)
    # ipvsadm -S does not save thresholds; -L --thresholds shows them.
    listing = " ".join(ipvsadm(netns, "-Ln", "--thresholds").split())
    assert "-> 10.0.0.11:80 100 10 0 0" in listing  # Uthreshold Lthreshold Active InAct
    assert (await kernel.dump()).table == table


async def test_updates_are_set_commands_never_deletes(
    kernel: NetlinkIpvsKernel, netns: str
) -> None:
    # pyroute2's 'update' maps to DEL_* and silently deletes: this test
    # fails if UpdateService/UpdateDest ever remove what they should change.
    await build(kernel, IpvsTable.build([(Service(WEB), [Dest(RS1), Dest(RS2)])]))
    await apply_all(
        kernel,
        [
            UpdateService(Service(WEB, scheduler="lc")),
            UpdateDest(WEB, Dest(RS1, weight=0)),  # drain
            UpdateDest(WEB, Dest(RS2, weight=3, forwarding=Forwarding.DROUTE)),
        ],
    )
    assert saved(netns) == {
        "-A -t 198.51.100.10:80 -s lc",
        "-a -t 198.51.100.10:80 -r 10.0.0.11:80 -m -w 0",
        "-a -t 198.51.100.10:80 -r 10.0.0.12:80 -g -w 3",
    }


async def test_deletes(kernel: NetlinkIpvsKernel, netns: str) -> None:
    other = ServiceKey.tcp("198.51.100.11", 80)
    await build(
        kernel, IpvsTable.build([(Service(WEB), [Dest(RS1), Dest(RS2)]), (Service(other), [])])
    )
    await apply_all(kernel, [DeleteDest(WEB, RS1), DeleteService(other)])
    assert saved(netns) == {
        "-A -t 198.51.100.10:80 -s wlc",
        "-a -t 198.51.100.10:80 -r 10.0.0.12:80 -m -w 1",
    }
    await kernel.apply(DeleteService(WEB))  # deletes its dests with it
    assert saved(netns) == set()
    assert (await kernel.dump()).table == IpvsTable()


async def test_kernel_errors_carry_op_key_and_errno(kernel: NetlinkIpvsKernel) -> None:
    await build(kernel, IpvsTable.build([(Service(WEB), [Dest(RS1)])]))
    missing = ServiceKey.tcp("198.51.100.99", 80)
    cases: list[tuple[Op, int]] = [
        (AddService(Service(WEB)), errno.EEXIST),
        (AddDest(WEB, Dest(RS1)), errno.EEXIST),
        (DeleteService(missing), errno.ESRCH),
        (UpdateService(Service(missing)), errno.ESRCH),
        (AddDest(missing, Dest(RS1)), errno.ESRCH),
        (DeleteDest(WEB, RS2), errno.ENOENT),
        (UpdateDest(WEB, Dest(RS2)), errno.ENOENT),
    ]
    for op, code in cases:
        with pytest.raises(KernelError) as caught:
            await kernel.apply(op)
        assert caught.value.errno == code, op
        assert (caught.value.op, caught.value.key) == (op_name(op), op_target(op))
    # The failures changed nothing.
    assert (await kernel.dump()).table == IpvsTable.build([(Service(WEB), [Dest(RS1)])])


async def test_apply_many_reports_each_op_across_batches(netns: str) -> None:
    async with NetlinkIpvsKernel(netns=netns, batch_size=16) as kernel:
        ops: list[Op] = [AddService(Service(WEB))]
        ops += [AddDest(WEB, Dest(DestKey(f"10.0.0.{100 + i}", 80))) for i in range(40)]
        ops[20] = AddDest(WEB, Dest(DestKey("10.0.0.101", 80)))  # duplicate of ops[2]
        ops.append(DeleteDest(WEB, DestKey("10.0.0.250", 80)))  # never added
        results = await kernel.apply_many(ops)
        failed = {i: r.errno for i, r in enumerate(results) if r is not None}
        assert failed == {20: errno.EEXIST, 41: errno.ENOENT}
        assert results[20] == KernelError("add_dest", "tcp/198.51.100.10:80 10.0.0.101:80", 17)
        actual = await kernel.dump()
        assert len(actual.table[WEB].dests) == 39


async def test_concurrent_dumps_and_writes_share_one_socket(kernel: NetlinkIpvsKernel) -> None:
    await build(kernel, IpvsTable.build([(Service(WEB), [Dest(RS1)])]))
    # The kernel answers a second dump in flight on one socket with EBUSY; the adapter
    # serialises them, so eight concurrent dumps and writes all succeed.
    results = await asyncio.gather(
        *(kernel.dump() for _ in range(8)),
        kernel.apply(AddDest(WEB, Dest(RS2))),
        kernel.apply(UpdateDest(WEB, Dest(RS1, weight=4))),
    )
    for actual in results[:8]:
        assert actual is not None
        assert WEB in actual.table
    final = (await kernel.dump()).table[WEB].dests
    assert final == {RS1: Dest(RS1, weight=4), RS2: Dest(RS2)}


async def test_timeouts(kernel: NetlinkIpvsKernel, netns: str) -> None:
    await kernel.set_timeouts(900, 120, 300)
    assert await kernel.get_timeouts() == IpvsTimeouts(tcp=900, tcp_fin=120, udp=300)
    assert "900 120 300" in ipvsadm(netns, "-L", "--timeout")
    await kernel.set_timeouts(0, 60, 0)  # 0 = unchanged
    assert await kernel.get_timeouts() == IpvsTimeouts(tcp=900, tcp_fin=60, udp=300)


async def test_sync_daemon_start_list_stop(kernel: NetlinkIpvsKernel, netns: str) -> None:
    await kernel.set_sync_daemon(
        SyncState.MASTER, "rs0", 7, mcast_group="224.0.0.81", mcast_port=8848, mcast_ttl=2
    )
    daemons = await kernel.sync_daemons()
    assert [(d.state, d.interface, d.syncid, d.mcast_port, d.mcast_ttl) for d in daemons] == [
        (1, "rs0", 7, 8848, 2)
    ]
    listing = ipvsadm(netns, "-L", "--daemon")
    assert "master sync daemon" in listing
    assert "syncid=7" in listing
    await kernel.stop_sync_daemon(SyncState.MASTER)
    assert await kernel.sync_daemons() == []
    with pytest.raises(KernelError) as caught:
        await kernel.stop_sync_daemon(SyncState.BACKUP)
    assert caught.value.op == "stop_sync_daemon"


async def test_info_flush_and_namespace_isolation(kernel: NetlinkIpvsKernel, netns: str) -> None:
    info = await kernel.info()
    assert info.version_string == "1.2.1"
    assert info.conn_tab_size > 0
    assert "IP Virtual Server version 1.2.1" in ipvsadm(netns, "-Ln")
    await build(kernel, IpvsTable.build([(Service(WEB), [Dest(RS1)])]))
    # The rule exists in our namespace only, not in the lab's root namespace.
    assert "198.51.100.10" not in sh("ipvsadm", "-Sn")
    await kernel.flush()
    assert saved(netns) == set()


async def test_missing_namespace_is_a_kernel_error() -> None:
    with pytest.raises(KernelError) as caught:
        await NetlinkIpvsKernel(netns="haipvs-no-such-ns").open()
    assert caught.value.errno == errno.ENOENT


async def test_a_cancelled_dump_leaves_the_adapter_usable(kernel: NetlinkIpvsKernel) -> None:
    rows = [
        (Service(ServiceKey.tcp("198.51.100.50", 1000 + i)), [Dest(RS1), Dest(RS2)])
        for i in range(200)
    ]
    table = IpvsTable.build(rows)
    await build(kernel, table)
    task = asyncio.create_task(kernel.dump())
    for _ in range(3):  # the dump yields to the loop every few dozen services
        await asyncio.sleep(0)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # No EBUSY from a half-read dump, no stale replies: the next dump is whole.
    assert (await kernel.dump()).table == table
    await kernel.apply(UpdateDest(rows[0][0].key, Dest(RS1, weight=9)))
    assert (await kernel.dump()).table.dest(rows[0][0].key, RS1) == Dest(RS1, weight=9)


async def test_lost_acks_fail_the_batch_and_the_adapter_recovers(netns: str) -> None:
    async with NetlinkIpvsKernel(netns=netns, batch_size=500) as kernel:
        await kernel.apply(AddService(Service(WEB)))
        ops: list[Op] = [AddDest(WEB, Dest(DestKey(f"10.0.0.{i}", 80))) for i in range(2, 202)]
        assert await kernel.apply_many(ops) == [None] * len(ops)
        # Shrink the receive buffer (private access, the only way to force it): 200 error
        # acks (EEXIST) cannot all be queued, the kernel drops some and flags ENOBUFS.
        sock = kernel._sock
        assert sock is not None
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 0)
        results = await kernel.apply_many(ops)
        codes = {r.errno for r in results if r is not None}
        assert len([r for r in results if r is not None]) == len(ops)
        assert errno.ENOBUFS in codes
        assert codes <= {errno.EEXIST, errno.ENOBUFS}
        # The outcome was unknown, not wrong: the next request runs on a fresh socket and
        # the dump tells the truth.
        assert len((await kernel.dump()).table[WEB].dests) == 200
        assert kernel._sock is not sock
