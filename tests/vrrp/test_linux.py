"""The Linux ports on a real kernel (lab): raw VRRP sockets between two network
namespaces joined by a veth pair, VIPs through rtnetlink, GARP and unsolicited
NA captured on the wire, link events from netlink.

Each test builds and tears down its own namespaces (haipvs.lab.topology).
Sockets belong to the namespace they were created in, so each one is opened
inside ``in_netns`` and then used from the test's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import struct
import time
from collections.abc import Callable, Coroutine, Iterator
from ipaddress import IPv4Address, IPv6Address, ip_interface
from typing import Any, TypeVar

import pytest

from vrrp.packet import (
    VRRP_MULTICAST_V4,
    VRRP_MULTICAST_V6,
    Advertisement,
    decode_advert,
    encode_advert,
)
from vrrp.ports import VrrpIoError

pytestmark = pytest.mark.lab

A4 = IPv4Address("192.0.2.1")
B4 = IPv4Address("192.0.2.2")
VIP4 = ip_interface("192.0.2.100/24")
VIP6 = ip_interface("2001:db8::100/64")
T = TypeVar("T")


@contextlib.contextmanager
def in_netns(name: str) -> Iterator[None]:
    from pyroute2 import netns

    netns.pushns(name)
    try:
        yield
    finally:
        netns.popns()


def run_in(name: str, coro: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine with the thread inside namespace ``name``."""
    with in_netns(name):
        return asyncio.run(coro())


@pytest.fixture
def pair() -> Iterator[Any]:
    from haipvs.lab.topology import Endpoint, Host, Topology, Veth, build

    topology = Topology(
        hosts=(Host("a"), Host("b")),
        links=(
            Veth(
                Endpoint("a", "eth0", (f"{A4}/24", "2001:db8::1/64")),
                Endpoint("b", "eth0", (f"{B4}/24", "2001:db8::2/64")),
            ),
        ),
    )
    with build(topology, prefix="vrrpio-") as net:
        yield net


def link_local(net: Any, host: str, within: float = 10.0) -> IPv6Address:
    """The veth's link-local address once DAD has finished with it."""
    end = time.monotonic() + within
    while time.monotonic() < end:
        argv = ["ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link"]
        out = net.run(host, argv).stdout
        if out and "tentative" not in out:
            return IPv6Address(out.split()[3].split("/")[0])
        time.sleep(0.1)
    raise AssertionError(f"no usable link-local address on {host}")


def advert(version: int, addresses: tuple[Any, ...], priority: int = 150) -> Advertisement:
    return Advertisement(version, 51, priority, 1.0, addresses)


def test_ipv4_multicast_advert_crosses_the_veth(pair: Any) -> None:
    from vrrp.linux import open_advert_link

    a = run_in(pair.ns("a"), lambda: open_advert_link("eth0", 4))
    b = run_in(pair.ns("b"), lambda: open_advert_link("eth0", 4))
    assert (a.local_address, b.local_address) == (A4, B4)
    payload = encode_advert(advert(3, (VIP4.ip,)), A4, VRRP_MULTICAST_V4)

    async def exchange() -> Any:
        await a.send(payload, VRRP_MULTICAST_V4)
        async with asyncio.timeout(5):
            return await b.receive()

    try:
        received = asyncio.run(exchange())
        assert (received.source, received.destination) == (A4, VRRP_MULTICAST_V4)
        assert received.ttl == 255 and received.payload == payload
        decoded = decode_advert(received.payload, received.source, received.destination)
        assert decoded.priority == 150
        # Multicast loop is off and our own source is filtered: A hears nothing.
        assert a.pending(64) == []
    finally:
        a.close()
        b.close()


def test_ipv4_unicast_and_ttl_reported(pair: Any) -> None:
    from vrrp.linux import open_advert_link

    a = run_in(pair.ns("a"), lambda: open_advert_link("eth0", 4, unicast_peers=(B4,)))
    b = run_in(pair.ns("b"), lambda: open_advert_link("eth0", 4, unicast_peers=(A4,)))
    with in_netns(pair.ns("a")):
        stray = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
    stray.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 64)
    payload = encode_advert(advert(2, (VIP4.ip,)), A4, B4)

    async def exchange() -> list[Any]:
        await a.send(payload, B4)
        stray.sendto(payload, (str(B4), 0))
        got = []
        async with asyncio.timeout(5):
            while len(got) < 2:
                got.append(await b.receive())
        return got

    try:
        first, second = asyncio.run(exchange())
        assert (first.source, first.destination, first.ttl) == (A4, B4, 255)
        # The link reports the TTL as it came; the runner decides (TTL != 255 is
        # dropped on multicast, accepted on unicast from a configured peer, as keepalived).
        assert (second.source, second.ttl) == (A4, 64)
    finally:
        a.close()
        b.close()
        stray.close()


def _ip_header(source: IPv4Address, destination: IPv4Address, length: int, ttl: int) -> bytes:
    return struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0xC0, 20 + length, 0, 0, ttl, 112, 0,
        source.packed, destination.packed,
    )


def test_kernel_filter_drops_garbage_before_the_socket(pair: Any) -> None:
    """The BPF program of vrrp.bpf, attached by LinuxPorts: what can never be a
    valid advert for VRID 51 (spoofed off-link source, TTL 64, another VRID,
    addressed to our own unicast address while multicast) never reaches the
    socket; the valid advert does."""
    from vrrp.linux import open_advert_link

    a = run_in(pair.ns("a"), lambda: open_advert_link("eth0", 4, vrid=51, vrrp_version=3))
    with in_netns(pair.ns("b")):
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
    foreign = IPv4Address("159.112.6.161")

    def packet(source: IPv4Address, destination: IPv4Address, *, ttl: int = 255,
               vrid: int = 51) -> tuple[bytes, IPv4Address]:
        payload = encode_advert(
            Advertisement(3, vrid, 254, 1.0, (VIP4.ip,)), source, destination
        )
        return _ip_header(source, destination, len(payload), ttl) + payload, destination

    garbage = [
        packet(foreign, VRRP_MULTICAST_V4),
        packet(B4, VRRP_MULTICAST_V4, ttl=64),
        packet(B4, VRRP_MULTICAST_V4, vrid=52),
        packet(B4, A4),
    ]
    valid = packet(B4, VRRP_MULTICAST_V4)

    async def exchange() -> Any:
        for data, destination in [*garbage, valid]:
            raw.sendto(data, (str(destination), 0))
        async with asyncio.timeout(5):
            first = await a.receive()
        await asyncio.sleep(0.2)
        return first, a.pending(64)

    try:
        first, rest = asyncio.run(exchange())
        assert (first.source, first.destination, first.ttl) == (B4, VRRP_MULTICAST_V4, 255)
        assert rest == []
        assert a.connected_networks == (ip_interface(f"{A4}/24").network,)
    finally:
        a.close()
        raw.close()


def test_ipv6_multicast_hop_limit_and_destination(pair: Any) -> None:
    from vrrp.linux import open_advert_link

    ll_a, ll_b = link_local(pair, "a"), link_local(pair, "b")
    a = run_in(pair.ns("a"), lambda: open_advert_link("eth0", 6))
    b = run_in(pair.ns("b"), lambda: open_advert_link("eth0", 6))
    assert (a.local_address, b.local_address) == (ll_a, ll_b)
    payload = encode_advert(advert(3, (VIP6.ip,)), ll_a, VRRP_MULTICAST_V6)

    async def exchange() -> Any:
        await a.send(payload, VRRP_MULTICAST_V6)
        async with asyncio.timeout(5):
            return await b.receive()

    try:
        received = asyncio.run(exchange())
        assert (received.source, received.destination) == (ll_a, VRRP_MULTICAST_V6)
        assert received.ttl == 255
        # The checksum we computed (RFC 5798 §5.2.8 pseudo-header) survived untouched.
        decoded = decode_advert(received.payload, received.source, received.destination)
        assert decoded.addresses == (VIP6.ip,)
    finally:
        a.close()
        b.close()


def test_vip_addresses_are_idempotent(pair: Any) -> None:
    from vrrp.linux import LinuxVipAddresses

    async def scenario() -> tuple[Any, ...]:
        vips = LinuxVipAddresses()
        try:
            await vips.add("eth0", VIP4)
            await vips.add("eth0", VIP4)  # EEXIST is success
            await vips.add("eth0", VIP6)
            held = await vips.list("eth0")
            await vips.remove("eth0", VIP4)
            await vips.remove("eth0", VIP4)  # EADDRNOTAVAIL is success
            await vips.remove("eth0", VIP6)
            after = await vips.list("eth0")
            with pytest.raises(VrrpIoError) as missing:
                await vips.add("nosuch0", VIP4)
            return held, after, missing.value.errno
        finally:
            vips.close()

    held, after, missing_errno = run_in(pair.ns("a"), scenario)
    assert VIP4 in held and VIP6 in held
    assert VIP4 not in after and VIP6 not in after
    assert ip_interface(f"{A4}/24") in after
    assert missing_errno == errno.ENODEV


def capture(net: Any, host: str, ethertype: int) -> socket.socket:
    with in_netns(net.ns(host)):
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ethertype))
    sock.bind(("eth0", ethertype))
    sock.settimeout(5)
    return sock


def mac_of(net: Any, host: str) -> bytes:
    out = net.run(host, ["cat", "/sys/class/net/eth0/address"]).stdout.strip()
    return bytes.fromhex(out.replace(":", ""))


def test_gratuitous_arp_is_seen_on_the_wire(pair: Any) -> None:
    from vrrp.linux import LinuxAnnouncer

    sniffer = capture(pair, "b", 0x0806)
    try:
        run_in(pair.ns("a"), lambda: LinuxAnnouncer().announce("eth0", [VIP4]))
        frame = sniffer.recv(2048)
    finally:
        sniffer.close()
    mac = mac_of(pair, "a")
    assert frame[0:6] == b"\xff" * 6 and frame[6:12] == mac
    htype, ptype, hlen, plen, op = struct.unpack("!HHBBH", frame[14:22])
    assert (htype, ptype, hlen, plen, op) == (1, 0x0800, 6, 4, 1)
    sha, spa, tpa = frame[22:28], frame[28:32], frame[38:42]
    assert sha == mac and spa == tpa == VIP4.ip.packed


def test_unsolicited_neighbour_advertisement_is_seen_on_the_wire(pair: Any) -> None:
    from vrrp.linux import LinuxAnnouncer

    link_local(pair, "a")
    sniffer = capture(pair, "b", 0x86DD)
    try:
        run_in(pair.ns("a"), lambda: LinuxAnnouncer().announce("eth0", [VIP6]))
        deadline = time.monotonic() + 5
        while True:
            frame = sniffer.recv(2048)
            ip6 = frame[14:]
            if ip6[6] == 58 and ip6[40] == 136:  # ICMPv6 neighbour advertisement
                break
            assert time.monotonic() < deadline, "no NA seen"
    finally:
        sniffer.close()
    assert IPv6Address(ip6[24:40]) == IPv6Address("ff02::1")
    assert ip6[7] == 255  # RFC 4861 §7.1.2: hop limit 255
    icmp = ip6[40:]
    flags = struct.unpack("!I", icmp[4:8])[0]
    assert flags & 0x20000000 and not flags & 0x40000000  # override, not solicited
    assert IPv6Address(icmp[8:24]) == VIP6.ip
    assert icmp[24:26] == b"\x02\x01" and icmp[26:32] == mac_of(pair, "a")


def test_link_monitor_sees_carrier_changes(pair: Any) -> None:
    from vrrp.linux import NetlinkLinkMonitor

    async def scenario() -> tuple[bool, list[tuple[str, bool]], bool]:
        monitor = NetlinkLinkMonitor()
        try:
            initially = await monitor.is_up("eth0")
            events = await monitor.subscribe()
            # Taking the far end down drops our carrier (IFF_RUNNING).
            await asyncio.to_thread(pair.run, "b", ["ip", "link", "set", "eth0", "down"])
            seen = []
            async with asyncio.timeout(5):
                async for event in events:
                    if event.interface == "eth0":
                        seen.append((event.interface, event.up))
                        if not event.up:
                            break
            await asyncio.to_thread(pair.run, "b", ["ip", "link", "set", "eth0", "up"])
            async with asyncio.timeout(5):
                async for event in events:
                    if event.interface == "eth0" and event.up:
                        seen.append((event.interface, event.up))
                        break
            missing = await monitor.is_up("nosuch0")
            return initially, seen, missing
        finally:
            monitor.close()

    initially, seen, missing = run_in(pair.ns("a"), scenario)
    assert initially is True
    assert seen[-2:] == [("eth0", False), ("eth0", True)]
    assert missing is False
