"""Traffic through the VIP to real servers, programmed by NetlinkIpvsKernel, in NAT, DR and TUN.

Lab only: ``.venv/bin/haipvs lab run -- .venv/bin/pytest -m lab tests/lab/test_ipvs_forwarding.py``.
Each test builds its own namespaces with haipvs/lab/topology.py (a client, a director, real
servers running haipvs/lab/servers.py), sends requests from the client namespace to the VIP
only, and tears everything down. Which real server answered is in the response body.

* NAT (masq): the real servers route back through the director, which un-NATs the replies.
* DR (gatewaying): one L2 segment; the real servers hold the VIP on lo and do not answer ARP
  for it (arp_ignore=1, arp_announce=2), so only the director does; replies go straight to the
  client.
* TUN (ipip): the director encapsulates; real servers decapsulate on tunl0 (rp_filter off,
  since the inner source arrives on an interface it is not routed through) and reply from the
  VIP. Their replies pass the director as a plain router, which must accept a source address
  it owns itself (accept_local) on the real servers' side.
* Drain: a weight-0 dest keeps its established TCP connection until the client closes it; new
  connections go to the others; then the dest is deleted.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import os
import select
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest

from haipvs.ipvs.model import (
    AddDest,
    AddService,
    DeleteDest,
    Dest,
    DestKey,
    Forwarding,
    Op,
    SchedFlags,
    Service,
    ServiceKey,
    TunType,
    UpdateDest,
    UpdateService,
)
from haipvs.ipvs.netlink import NetlinkIpvsKernel, SyncState
from haipvs.lab.servers import start_real_server
from haipvs.lab.topology import (
    Bridge,
    BuiltTopology,
    Endpoint,
    Host,
    Route,
    Topology,
    Veth,
    build,
)

pytestmark = pytest.mark.lab

_runs = itertools.count()

VIP = "198.51.100.10"
WEB = ServiceKey.tcp(VIP, 80)
RS1 = DestKey("10.0.0.11", 80)
RS2 = DestKey("10.0.0.12", 80)

ROUTED_REAL_SERVERS = (
    Host("client", routes=(Route("default", via="198.51.100.1"),)),
    Host(
        "dir",
        sysctls={"net.ipv4.ip_forward": "1"},
        loopback_addresses=(f"{VIP}/32",),
    ),
)
ROUTED_LINKS = (
    Veth(
        Endpoint("client", "eth0", ("198.51.100.2/24",)),
        Endpoint("dir", "eth0", ("198.51.100.1/24",)),
    ),
    Veth(Endpoint("rs1", "eth0", ("10.0.0.11/24",)), Endpoint("dir", "rs1")),
    Veth(Endpoint("rs2", "eth0", ("10.0.0.12/24",)), Endpoint("dir", "rs2")),
)

NAT = Topology(
    hosts=(
        *ROUTED_REAL_SERVERS,
        Host("rs1", routes=(Route("default", via="10.0.0.1"),)),
        Host("rs2", routes=(Route("default", via="10.0.0.1"),)),
    ),
    links=ROUTED_LINKS,
    bridges=(Bridge("dir", "br0", ports=("rs1", "rs2"), addresses=("10.0.0.1/24",)),),
)

# Real servers of DR and TUN hold the VIP on lo and must not answer ARP for it.
_ARP_SUPPRESSION = {
    "net.ipv4.conf.all.arp_ignore": "1",
    "net.ipv4.conf.all.arp_announce": "2",
}

TUN = Topology(
    hosts=(
        Host("client", routes=(Route("default", via="198.51.100.1"),)),
        Host(
            "dir",
            sysctls={
                "net.ipv4.ip_forward": "1",
                "net.ipv4.conf.all.rp_filter": "0",
                "net.ipv4.conf.default.rp_filter": "0",
            },
            loopback_addresses=(f"{VIP}/32",),
        ),
        *(
            Host(
                name,
                sysctls={
                    **_ARP_SUPPRESSION,
                    "net.ipv4.conf.all.rp_filter": "0",
                    "net.ipv4.conf.default.rp_filter": "0",
                },
                routes=(Route("default", via="10.0.0.1"),),
                loopback_addresses=(f"{VIP}/32",),
                tunnels=("ipip",),
            )
            for name in ("rs1", "rs2")
        ),
    ),
    links=ROUTED_LINKS,
    bridges=(Bridge("dir", "br0", ports=("rs1", "rs2"), addresses=("10.0.0.1/24",)),),
)

# DR: client, director and real servers on one segment (a bridge in a "switch" namespace).
DR_VIP = "10.1.0.100"
DR_WEB = ServiceKey.tcp(DR_VIP, 80)
DR = Topology(
    hosts=(
        Host("sw"),
        Host("client"),
        Host("dir"),
        *(
            Host(name, sysctls=_ARP_SUPPRESSION, loopback_addresses=(f"{DR_VIP}/32",))
            for name in ("rs1", "rs2")
        ),
    ),
    links=(
        Veth(Endpoint("client", "eth0", ("10.1.0.2/24",)), Endpoint("sw", "p-client")),
        Veth(Endpoint("dir", "eth0", ("10.1.0.1/24", f"{DR_VIP}/32")), Endpoint("sw", "p-dir")),
        Veth(Endpoint("rs1", "eth0", ("10.1.0.11/24",)), Endpoint("sw", "p-rs1")),
        Veth(Endpoint("rs2", "eth0", ("10.1.0.12/24",)), Endpoint("sw", "p-rs2")),
    ),
    bridges=(Bridge("sw", "br0", ports=("p-client", "p-dir", "p-rs1", "p-rs2")),),
)


@pytest.fixture
def prefix() -> str:
    return f"fw{os.getpid() % 1000}{next(_runs)}-"


@contextlib.asynccontextmanager
async def lab_network(
    topology: Topology, prefix: str, real_servers: tuple[str, ...] = ("rs1", "rs2")
) -> AsyncIterator[BuiltTopology]:
    """Build ``topology``, start an HTTP real server named after each of ``real_servers``,
    and always stop them and tear the namespaces down.

    The topology helper drives pyroute2's synchronous sockets, which run an event loop of
    their own: building and tearing down happen in a worker thread, off the test's loop.
    """
    manager = build(topology, prefix=prefix)
    net = await asyncio.to_thread(manager.__enter__)
    started: list[subprocess.Popen[bytes]] = []
    try:
        for host in real_servers:
            started.append(start_real_server(net, host, host, http=["0.0.0.0:80"]))
        yield net
    finally:
        for process in started:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        await asyncio.to_thread(manager.__exit__, None, None, None)


def fetch(net: BuiltTopology, vip: str, path: str = "/") -> str:
    result = net.run("client", ["curl", "-s", "-m", "10", f"http://{vip}{path}"], check=False)
    assert result.returncode == 0, f"curl to {vip} failed: {result.returncode} {result.stderr}"
    return result.stdout.strip()


async def program(net: BuiltTopology, ops: list[Op]) -> NetlinkIpvsKernel:
    kernel = NetlinkIpvsKernel(netns=net.ns("dir"))
    await kernel.open()
    assert await kernel.apply_many(ops) == [None] * len(ops)
    return kernel


def service_ops(key: ServiceKey, dests: list[Dest], scheduler: str = "rr") -> list[Op]:
    return [AddService(Service(key, scheduler=scheduler)), *(AddDest(key, d) for d in dests)]


async def test_nat_balances_and_counts(prefix: str) -> None:
    async with lab_network(NAT, prefix) as net:
        kernel = await program(
            net,
            service_ops(
                WEB,
                [Dest(RS1, forwarding=Forwarding.MASQ), Dest(RS2, forwarding=Forwarding.MASQ)],
            ),
        )
        try:
            answers = [fetch(net, VIP) for _ in range(6)]
            assert sorted(collections.Counter(answers).items()) == [("rs1", 3), ("rs2", 3)]
            assert answers[0] != answers[1]  # round robin alternates
            # Our dump's counters agree with ipvsadm's (closed connections: InActConn).
            actual = await kernel.dump()
            listing = net.run("dir", ["ipvsadm", "-Ln"]).stdout
            for dest in (RS1, RS2):
                stats = actual.stats_of(WEB, dest)
                assert stats.active_conns + stats.inactive_conns == 3
                row = next(line.split() for line in listing.splitlines() if str(dest) in line)
                assert (int(row[-2]), int(row[-1])) == (stats.active_conns, stats.inactive_conns)
            # Byte and packet counters (STATS64): the kernel folds its per-CPU counters in
            # every 2 s (the rate estimator), so wait for all six connections to show.
            for _ in range(50):
                counters = await kernel.counters()
                if counters[WEB].service.conns == 6:
                    break
                await asyncio.sleep(0.1)
            assert [counters[WEB].dests[d].conns for d in (RS1, RS2)] == [3, 3]
            exact = net.run("dir", ["ipvsadm", "-Ln", "--stats", "--exact"]).stdout
            for dest in (RS1, RS2):
                got = counters[WEB].dests[dest]
                row = next(line.split() for line in exact.splitlines() if str(dest) in line)
                # -> RemoteAddress:Port Conns InPkts OutPkts InBytes OutBytes
                assert [int(v) for v in row[2:7]] == [
                    got.conns,
                    got.inpkts,
                    got.outpkts,
                    got.inbytes,
                    got.outbytes,
                ]
                assert got.inbytes > 0 and got.outbytes > 0
        finally:
            await kernel.close()


async def test_direct_routing_with_vip_on_loopback(prefix: str) -> None:
    async with lab_network(DR, prefix) as net:
        dests = [
            Dest(DestKey("10.1.0.11", 80), forwarding=Forwarding.DROUTE),
            Dest(DestKey("10.1.0.12", 80), forwarding=Forwarding.DROUTE),
        ]
        kernel = await program(net, service_ops(DR_WEB, dests))
        try:
            answers = [fetch(net, DR_VIP) for _ in range(4)]
            assert sorted(answers) == ["rs1", "rs1", "rs2", "rs2"]
            # Only the director answered ARP for the VIP: the client's neighbour entry for
            # the VIP is the director's MAC.
            neigh = net.run("client", ["ip", "neigh", "show", DR_VIP]).stdout.split()
            director_mac = net.run("dir", ["cat", "/sys/class/net/eth0/address"]).stdout.strip()
            assert director_mac in neigh
            assert "Route" in net.run("dir", ["ipvsadm", "-Ln"]).stdout
        finally:
            await kernel.close()


async def test_ipip_tunnel(prefix: str) -> None:
    async with lab_network(TUN, prefix) as net:
        # The director forwards the real servers' replies (source: the VIP it also owns).
        for host, key, value in (
            ("dir", "net.ipv4.conf.br0.accept_local", "1"),
            ("dir", "net.ipv4.conf.br0.rp_filter", "0"),
            ("rs1", "net.ipv4.conf.tunl0.rp_filter", "0"),
            ("rs2", "net.ipv4.conf.tunl0.rp_filter", "0"),
        ):
            await asyncio.to_thread(net.set_sysctl, host, key, value)
        dests = [Dest(RS1, forwarding=Forwarding.TUNNEL), Dest(RS2, forwarding=Forwarding.TUNNEL)]
        kernel = await program(net, service_ops(WEB, dests))
        try:
            answers = [fetch(net, VIP) for _ in range(4)]
            assert sorted(answers) == ["rs1", "rs1", "rs2", "rs2"]
            # The packets really came through tunl0 on the real servers.
            for host in ("rs1", "rs2"):
                assert _rx_packets(net, host, "tunl0") > 0
        finally:
            await kernel.close()


def _rx_packets(net: BuiltTopology, host: str, ifname: str) -> int:
    lines = net.run(host, ["ip", "-s", "link", "show", ifname]).stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.split()[:1] == ["RX:"])
    headers = lines[at].split()[1:]
    return int(lines[at + 1].split()[headers.index("packets")])


def _hold(net: BuiltTopology) -> subprocess.Popen[bytes]:
    """A client holding one HTTP connection to the VIP open (/hold streams a line per second)."""
    code = (
        "import socket,sys\n"
        f"s=socket.create_connection(('{VIP}',80),timeout=20)\n"
        "s.sendall(b'GET /hold HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n')\n"
        "f=s.makefile('rb')\n"
        "while True:\n"
        "    line=f.readline()\n"
        "    if not line: break\n"
        "    sys.stdout.write(line.decode()); sys.stdout.flush()\n"
    )
    return net.popen("client", [sys.executable, "-c", code], stdout=subprocess.PIPE)


def _next_body_line(process: subprocess.Popen[bytes], timeout: float = 15.0) -> str:
    assert process.stdout is not None
    while True:
        ready = select.select([process.stdout], [], [], timeout)[0]
        assert ready, "the held connection went silent"
        raw = process.stdout.readline()
        assert raw, "the held connection was closed"
        line = raw.decode().strip()
        if line in ("rs1", "rs2"):  # skip the status line and headers
            return line


async def test_drained_dest_keeps_its_connection_until_it_closes(prefix: str) -> None:
    async with lab_network(NAT, prefix) as net:
        kernel = await program(net, service_ops(WEB, [Dest(RS1), Dest(RS2)], scheduler="wlc"))
        holder = _hold(net)
        try:
            held_by = _next_body_line(holder)
            drained = RS1 if held_by == "rs1" else RS2
            other = "rs2" if held_by == "rs1" else "rs1"
            # Drain: weight 0 (what the programmer does first), one SET_DEST.
            await kernel.apply(UpdateDest(WEB, Dest(drained, weight=0)))
            stats = (await kernel.dump()).stats_of(WEB, drained)
            assert stats.active_conns == 1
            # New connections avoid the drained server...
            assert {fetch(net, VIP) for _ in range(4)} == {other}
            # ...while the established one keeps flowing from it.
            assert _next_body_line(holder) == held_by
            assert _next_body_line(holder) == held_by
            holder.terminate()
            holder.wait(timeout=10)
            # The client's FIN crosses the director right away; allow it a moment.
            for _ in range(50):
                after = (await kernel.dump()).stats_of(WEB, drained)
                if after.active_conns == 0:
                    break
                await asyncio.sleep(0.1)
            assert after.active_conns == 0
            # Connections over: the dest goes; traffic is unaffected.
            await kernel.apply(DeleteDest(WEB, drained))
            assert drained not in (await kernel.dump()).table[WEB].dests
            assert fetch(net, VIP) == other
        finally:
            if holder.poll() is None:
                holder.kill()
                holder.wait()
            await kernel.close()


async def test_persistence_keeps_a_client_on_one_real_server(prefix: str) -> None:
    async with lab_network(NAT, prefix) as net:
        kernel = NetlinkIpvsKernel(netns=net.ns("dir"))
        await kernel.open()
        try:
            ops: list[Op] = [
                AddService(Service(WEB, scheduler="rr", persistence_timeout=60)),
                AddDest(WEB, Dest(RS1)),
                AddDest(WEB, Dest(RS2)),
            ]
            assert await kernel.apply_many(ops) == [None, None, None]
            # rr alone would alternate; the persistence template pins the client.
            answers = {fetch(net, VIP) for _ in range(4)}
            assert len(answers) == 1
            pinned = RS1 if answers == {"rs1"} else RS2
            actual = await kernel.dump()
            assert actual.stats_of(WEB, pinned).persist_conns == 1
            listing = net.run("dir", ["ipvsadm", "-Ln", "--persistent-conn"]).stdout
            row = next(line.split() for line in listing.splitlines() if str(pinned) in line)
            assert row[-3] == "1"  # PersistConn column
        finally:
            await kernel.close()


def _udp_names(net: BuiltTopology, count: int) -> list[str]:
    """``count`` datagrams from one client socket to VIP:53; the names that answered."""
    code = (
        "import socket\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.settimeout(5)\n"
        f"for _ in range({count}):\n"
        f"    s.sendto(b'q',('{VIP}',53)); print(s.recvfrom(100)[0].decode().strip())\n"
    )
    result = net.run("client", [sys.executable, "-c", code], check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def _udp_responder(net: BuiltTopology, host: str) -> subprocess.Popen[bytes]:
    """Answers every datagram on port 53 with the host's name.

    (haipvs/lab/servers.py's UDP listener asserts its transport is an
    asyncio.DatagramTransport, which CPython 3.11's selector transport is not, so it never
    answers; this plain-socket loop stands in for it.)
    """
    code = (
        "import socket,sys\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('0.0.0.0',53))\n"
        "print('ready',flush=True)\n"
        "while True:\n"
        "    data,peer=s.recvfrom(100); s.sendto(sys.argv[1].encode(),peer)\n"
    )
    process = net.popen(host, [sys.executable, "-c", code, host], stdout=subprocess.PIPE)
    assert process.stdout is not None
    assert select.select([process.stdout], [], [], 30)[0], f"no UDP responder in {host}"
    assert process.stdout.readline().strip() == b"ready"
    return process


async def test_udp_with_and_without_one_packet_scheduling(prefix: str) -> None:
    dns = ServiceKey.udp(VIP, 53)
    dests = [Dest(DestKey("10.0.0.11", 53)), Dest(DestKey("10.0.0.12", 53))]
    async with lab_network(NAT, prefix) as net:
        responders = [_udp_responder(net, host) for host in ("rs1", "rs2")]
        kernel = await program(net, service_ops(dns, dests))
        try:
            # One client socket is one IPVS connection: every datagram goes to one server.
            assert len(set(_udp_names(net, 4))) == 1
            # One-packet scheduling (ipvsadm -o) schedules each datagram on its own.
            await kernel.apply(
                UpdateService(Service(dns, scheduler="rr", flags=SchedFlags(one_packet=True)))
            )
            names = _udp_names(net, 4)
            assert sorted(names) == ["rs1", "rs1", "rs2", "rs2"]
        finally:
            await kernel.close()
            for responder in responders:
                responder.kill()
                responder.wait()


async def test_connection_sync_reaches_the_backup_director(prefix: str) -> None:
    # Two directors joined by a sync link: the master's sync daemon multicasts its
    # connection table, the backup's daemon installs the entries (what lets a backup take
    # over established connections after a VRRP failover).
    topology = Topology(
        hosts=(*NAT.hosts, Host("dir2")),
        links=(
            *NAT.links,
            Veth(
                Endpoint("dir", "sync0", ("192.0.2.1/24",)),
                Endpoint("dir2", "sync0", ("192.0.2.2/24",)),
            ),
        ),
        bridges=NAT.bridges,
    )
    async with lab_network(topology, prefix) as net:
        # The backup holds the same service; its real servers must be routable there.
        net.run("dir2", ["ip", "link", "add", "rs0", "type", "dummy"])
        net.run("dir2", ["ip", "link", "set", "rs0", "up"])
        net.run("dir2", ["ip", "addr", "add", "10.0.0.1/24", "dev", "rs0"])
        ops = service_ops(WEB, [Dest(RS1), Dest(RS2)])
        master = await program(net, ops)
        backup = NetlinkIpvsKernel(netns=net.ns("dir2"))
        await backup.open()
        holder: subprocess.Popen[bytes] | None = None
        try:
            assert await backup.apply_many(ops) == [None] * len(ops)
            await master.set_sync_daemon(SyncState.MASTER, "sync0", 51)
            await backup.set_sync_daemon(SyncState.BACKUP, "sync0", 51)
            assert [d.state for d in await backup.sync_daemons()] == [SyncState.BACKUP.value]
            holder = _hold(net)
            held_by = _next_body_line(holder)
            synced = ""
            for _ in range(100):  # synced after a few packets, flushed about every second
                synced = net.run("dir2", ["ipvsadm", "-Lnc"]).stdout
                if "198.51.100.2:" in synced:
                    break
                await asyncio.sleep(0.2)
            row = next(line.split() for line in synced.splitlines() if "198.51.100.2:" in line)
            # pro expire state source virtual destination
            assert row[0] == "TCP" and row[2] == "ESTABLISHED"
            assert row[4] == f"{VIP}:80"
            assert row[5] == ("10.0.0.11:80" if held_by == "rs1" else "10.0.0.12:80")
            await master.stop_sync_daemon(SyncState.MASTER)
            await backup.stop_sync_daemon(SyncState.BACKUP)
            assert await master.sync_daemons() == []
        finally:
            if holder is not None:
                holder.kill()
                holder.wait()
            await backup.close()
            await master.close()


VIP6 = "2001:db8:f::10"
NAT6 = Topology(
    hosts=(
        Host("client", routes=(Route("default", via="2001:db8:c::1"),)),
        Host(
            "dir",
            sysctls={"net.ipv6.conf.all.forwarding": "1"},
            loopback_addresses=(f"{VIP6}/128",),
        ),
        Host("rs1", routes=(Route("default", via="2001:db8:1::1"),)),
        Host("rs2", routes=(Route("default", via="2001:db8:1::1"),)),
    ),
    links=(
        Veth(
            Endpoint("client", "eth0", ("2001:db8:c::2/64",)),
            Endpoint("dir", "eth0", ("2001:db8:c::1/64",)),
        ),
        Veth(Endpoint("rs1", "eth0", ("2001:db8:1::11/64",)), Endpoint("dir", "rs1")),
        Veth(Endpoint("rs2", "eth0", ("2001:db8:1::12/64",)), Endpoint("dir", "rs2")),
    ),
    bridges=(Bridge("dir", "br0", ports=("rs1", "rs2"), addresses=("2001:db8:1::1/64",)),),
)


async def _ipv6_addresses_usable(net: BuiltTopology, hosts: tuple[str, ...]) -> None:
    """Wait until no address is tentative: an address stays tentative until its link has
    carrier, and meanwhile the client would pick its link-local address as the source of a
    connection to the VIP (seen: SYN_RECV from fe80::..., never answered)."""
    for _ in range(100):
        pending = [h for h in hosts if net.run(h, ["ip", "-6", "addr", "show", "tentative"]).stdout]
        if not pending:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"IPv6 addresses still tentative in {pending}")


async def test_ipv6_nat(prefix: str) -> None:
    web6 = ServiceKey.tcp(VIP6, 80)
    dests = [Dest(DestKey("2001:db8:1::11", 80)), Dest(DestKey("2001:db8:1::12", 80))]
    manager = build(NAT6, prefix=prefix)
    net = await asyncio.to_thread(manager.__enter__)
    servers: list[subprocess.Popen[bytes]] = []
    try:
        await _ipv6_addresses_usable(net, ("client", "dir", "rs1", "rs2"))
        servers = [start_real_server(net, h, h, http=["[::]:80"]) for h in ("rs1", "rs2")]
        kernel = await program(net, service_ops(web6, dests))
        try:
            answers = []
            for _ in range(4):
                result = net.run(
                    "client", ["curl", "-s", "-g", "-m", "10", f"http://[{VIP6}]/"], check=False
                )
                assert result.returncode == 0, result.stderr
                answers.append(result.stdout.strip())
            assert sorted(answers) == ["rs1", "rs1", "rs2", "rs2"]
            actual = await kernel.dump()
            assert set(actual.table[web6].dests) == {d.key for d in dests}
            assert (
                sum(actual.stats_of(web6, d.key).inactive_conns for d in dests)
                + sum(actual.stats_of(web6, d.key).active_conns for d in dests)
                == 4
            )
        finally:
            await kernel.close()
    finally:
        for process in servers:
            process.terminate()
            process.wait(timeout=10)
        await asyncio.to_thread(manager.__exit__, None, None, None)


async def test_gue_and_gre_tunnels(prefix: str) -> None:
    # rs1 decapsulates GUE on UDP 6080 (fou, then tunl0); rs2 decapsulates GRE on gre0.
    # A GUE port sent in the wrong byte order (pyroute2's, notes Q3) reaches port 49175,
    # where nothing listens, and rs1 would never answer.
    async with lab_network(TUN, prefix) as net:
        for host, key, value in (
            ("dir", "net.ipv4.conf.br0.accept_local", "1"),
            ("dir", "net.ipv4.conf.br0.rp_filter", "0"),
            ("rs1", "net.ipv4.conf.tunl0.rp_filter", "0"),
        ):
            await asyncio.to_thread(net.set_sysctl, host, key, value)
        net.run("rs1", ["ip", "fou", "add", "port", "6080", "gue"])
        net.run("rs2", ["ip", "link", "set", "gre0", "up"])
        await asyncio.to_thread(net.set_sysctl, "rs2", "net.ipv4.conf.gre0.rp_filter", "0")
        dests = [
            Dest(RS1, forwarding=Forwarding.TUNNEL, tun_type=TunType.GUE, tun_port=6080),
            Dest(RS2, forwarding=Forwarding.TUNNEL, tun_type=TunType.GRE),
        ]
        kernel = await program(net, service_ops(WEB, dests))
        try:
            answers = [fetch(net, VIP) for _ in range(4)]
            assert sorted(answers) == ["rs1", "rs1", "rs2", "rs2"]
            assert _rx_packets(net, "rs1", "tunl0") > 0
            assert _rx_packets(net, "rs2", "gre0") > 0
            assert (await kernel.dump()).table[WEB].dests == {d.key: d for d in dests}
        finally:
            await kernel.close()
