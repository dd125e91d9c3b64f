"""One contract for the VRRP ports: the strict fakes and the Linux ports behave alike.

Every test runs twice: against the fakes of ``vrrp/fake.py`` (anywhere) and against the
Linux ports of ``vrrp/linux.py`` in two fresh network namespaces of the lab kernel joined
by a veth pair (``lab`` marker). What the kernel does is the truth; this suite keeps the
fakes that the runner's tests stand on honest, as ``test_ipvs_kernel.py`` does for IPVS:

- ``VipAddresses`` is idempotent like ``ip addr replace`` / ``del`` and reports a missing
  interface as ENODEV;
- ``LinkMonitor`` reports oper state, calls an unknown interface down and streams each
  change once, in order;
- ``VirtualRouting`` is idempotent too (an identical route or rule added twice, an absent
  one removed), refuses a different route with the same prefix, table and metric (EEXIST)
  and a route through a missing device (ENODEV), and installs every route type and rule
  form keepalived's virtual_routes / virtual_rules take;
- ``VirtualMacs`` creates the use_vmac macvlan, takes over an identical one, refuses a
  name another link holds (EEXIST) or a missing base (ENODEV), and removes it idempotently;
- ``AdvertLink`` carries a payload to the other node with TTL 255, source and destination
  as sent, never echoes our own advert, and fails with EBADF once closed.

A real port is bound to the namespace it is used in (sockets at creation, interface names
at each call), so each real test body runs with the thread inside node A's namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_interface
from typing import Any, TypeVar

import pytest

from vrrp.fake import (
    FakeLinkMonitor,
    FakeRouting,
    FakeSegment,
    FakeVipAddresses,
    FakeVirtualMacs,
)
from vrrp.packet import VRRP_MULTICAST_V4, Advertisement, encode_advert
from vrrp.ports import (
    AdvertLink,
    LinkEvent,
    LinkMonitor,
    VipAddresses,
    VirtualMacs,
    VirtualRouting,
    VrrpIoError,
)
from vrrp.routes import Nexthop, RouteScope, RouteType, RuleAction, VirtualRoute, VirtualRule
from vrrp.vmac import VmacSpec

A4 = IPv4Address("192.0.2.1")
B4 = IPv4Address("192.0.2.2")
VIP4 = ip_interface("192.0.2.100/24")
VIP6 = ip_interface("2001:db8::100/64")
T = TypeVar("T")


@dataclass
class Ports:
    """Node A's VIP addresses and link monitor, made inside the test's event loop."""

    addresses: VipAddresses
    monitor: LinkMonitor
    close: Callable[[], None]
    routing: VirtualRouting
    vmacs: VirtualMacs


@dataclass
class World:
    """Node A's ports and a way to open one link on A and one on B, on one segment."""

    make_ports: Callable[[], Ports]
    open_links: Callable[[], Awaitable[tuple[AdvertLink, AdvertLink]]]
    set_link_up: Callable[[bool], None]
    enter: Callable[[], contextlib.AbstractContextManager[None]]

    def run(self, body: Callable[[Ports], Awaitable[T]]) -> T:
        async def main() -> T:
            ports = self.make_ports()
            try:
                return await body(ports)
            finally:
                ports.close()

        with self.enter():
            return asyncio.run(main())


def _fake_world() -> World:
    segment = FakeSegment()
    monitor = FakeLinkMonitor({"eth0": True})

    async def open_links() -> tuple[AdvertLink, AdvertLink]:
        return segment.attach(A4), segment.attach(B4)

    def make_ports() -> Ports:
        addresses = FakeVipAddresses(["eth0"])
        vmacs = FakeVirtualMacs(["eth0"], addresses=addresses)  # one node's links
        return Ports(addresses, monitor, monitor.close, FakeRouting(["eth0"]), vmacs)

    return World(
        make_ports=make_ports,
        open_links=open_links,
        set_link_up=lambda up: monitor.set_link("eth0", up),
        enter=contextlib.nullcontext,
    )


@contextlib.contextmanager
def _in_netns(name: str) -> Iterator[None]:
    from pyroute2 import netns

    netns.pushns(name)
    try:
        yield
    finally:
        netns.popns()


@contextlib.contextmanager
def _real_world() -> Iterator[World]:
    from haipvs.lab.topology import Endpoint, Host, Topology, Veth, build
    from vrrp.linux import LinuxVipAddresses, NetlinkLinkMonitor, open_advert_link
    from vrrp.linux_routing import LinuxRouting, LinuxVirtualMacs

    topology = Topology(
        hosts=(Host("a"), Host("b")),
        links=(
            Veth(
                Endpoint("a", "eth0", (f"{A4}/24",)),
                Endpoint("b", "eth0", (f"{B4}/24",)),
            ),
        ),
    )
    with build(topology, prefix="vrrpcontract-") as net:

        async def open_links() -> tuple[AdvertLink, AdvertLink]:
            # Called inside A's namespace; B's socket is created inside B's.
            a = await open_advert_link("eth0", 4)
            with _in_netns(net.ns("b")):
                b = await open_advert_link("eth0", 4)
            return a, b

        def set_link_up(up: bool) -> None:
            net.run("a", ["ip", "link", "set", "eth0", "up" if up else "down"])

        def make_ports() -> Ports:
            addresses, monitor = LinuxVipAddresses(), NetlinkLinkMonitor()
            routing = LinuxRouting()
            vmacs = LinuxVirtualMacs()

            def close() -> None:
                addresses.close()
                monitor.close()
                routing.close()
                vmacs.close()

            return Ports(addresses, monitor, close, routing, vmacs)

        yield World(
            make_ports=make_ports,
            open_links=open_links,
            set_link_up=set_link_up,
            enter=lambda: _in_netns(net.ns("a")),
        )


@pytest.fixture(params=["fake", pytest.param("real", marks=pytest.mark.lab)])
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    if request.param == "fake":
        yield _fake_world()
        return
    with _real_world() as real:
        yield real


# ------------------------------------------------------------------- VipAddresses


def test_vip_add_and_remove_are_idempotent(world: World) -> None:
    async def body(ports: Ports) -> None:
        addresses = ports.addresses
        for vip in (VIP4, VIP6):
            await addresses.add("eth0", vip)
            await addresses.add("eth0", vip)  # present already: succeeds, as `ip addr replace`
            assert vip in await addresses.list("eth0")
            await addresses.remove("eth0", vip)
            await addresses.remove("eth0", vip)  # absent already: succeeds
            assert vip not in await addresses.list("eth0")

    world.run(body)


@pytest.mark.parametrize("op", ["add", "remove", "list"])
def test_vip_ops_on_a_missing_interface_fail_with_enodev(world: World, op: str) -> None:
    async def body(ports: Ports) -> None:
        addresses = ports.addresses
        with pytest.raises(VrrpIoError, match="nosuch0") as raised:
            if op == "list":
                await addresses.list("nosuch0")
            else:
                await getattr(addresses, op)("nosuch0", VIP4)
        assert raised.value.errno == errno.ENODEV

    world.run(body)


# ----------------------------------------------------------------- VirtualRouting

GW4 = IPv4Address("192.0.2.254")
SRC4 = IPv4Address("192.0.2.1")  # node A's own address: a valid preferred source
ROUTES = (
    VirtualRoute(IPv4Network("198.51.100.0/24"), via=GW4, dev="eth0", src=SRC4, table=100),
    VirtualRoute(IPv4Network("203.0.113.0/24"), dev="eth0", metric=10),
    VirtualRoute(IPv4Network("203.0.113.7/32"), dev="eth0", scope=RouteScope.link, table=101),
    VirtualRoute(IPv4Network("0.0.0.0/0"), via=GW4, table=100),
    VirtualRoute(IPv4Network("198.51.100.1/32"), type=RouteType.blackhole),
    VirtualRoute(IPv4Network("198.51.100.2/32"), type=RouteType.unreachable, table=100),
    VirtualRoute(IPv4Network("198.51.100.3/32"), type=RouteType.prohibit, metric=7),
    VirtualRoute(IPv4Network("198.51.100.4/32"), type=RouteType.throw, table=102),
    VirtualRoute(
        IPv4Network("198.51.100.128/25"),
        nexthops=(Nexthop(IPv4Address("192.0.2.253")), Nexthop(GW4, "eth0", 2)),
    ),
    VirtualRoute(IPv6Network("2001:db8:1::/64"), type=RouteType.blackhole, table=100),
    # IPv6 routes get metric 1024 from the kernel when none is given: present() must match.
    VirtualRoute(IPv6Network("2001:db8:2::/64"), via=IPv6Address("fe80::1"), dev="eth0"),
    VirtualRoute(IPv6Network("2001:db8:3::/64"), dev="eth0", metric=5, table=101),
)
RULES = (
    VirtualRule(4, from_=IPv4Network("192.0.2.0/24"), table=100),
    VirtualRule(4, to=IPv4Network("198.51.100.0/24"), table=100, priority=100),
    VirtualRule(4, iif="nosuch0", fwmark=16, fwmask=255, table=101, priority=101),
    VirtualRule(4, from_=IPv4Network("203.0.113.0/24"), action=RuleAction.blackhole),
    VirtualRule(6, from_=IPv6Network("2001:db8::/64"), table=100, invert=True, priority=102),
)


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.describe())
def test_every_route_form_installs_idempotently_and_goes(world: World, route: VirtualRoute) -> None:
    async def body(ports: Ports) -> None:
        routing = ports.routing
        assert not await routing.present(route)
        await routing.add_route(route)
        await routing.add_route(route)  # identical and present: succeeds
        assert await routing.present(route)
        await routing.remove_route(route)
        await routing.remove_route(route)  # absent: succeeds
        assert not await routing.present(route)

    world.run(body)


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.describe())
def test_every_rule_form_installs_idempotently_and_goes(world: World, rule: VirtualRule) -> None:
    async def body(ports: Ports) -> None:
        routing = ports.routing
        assert not await routing.present(rule)
        await routing.add_rule(rule)
        await routing.add_rule(rule)
        assert await routing.present(rule)
        await routing.remove_rule(rule)
        await routing.remove_rule(rule)
        assert not await routing.present(rule)

    world.run(body)


def test_a_different_route_with_the_same_key_is_eexist_and_stays(world: World) -> None:
    async def body(ports: Ports) -> None:
        routing = ports.routing
        ours = VirtualRoute(IPv4Network("198.51.100.0/24"), via=GW4, table=100)
        theirs = VirtualRoute(IPv4Network("198.51.100.0/24"), dev="eth0", table=100)
        await routing.add_route(theirs)
        with pytest.raises(VrrpIoError, match=r"198\.51\.100\.0/24") as raised:
            await routing.add_route(ours)
        assert raised.value.errno == errno.EEXIST
        await routing.remove_route(ours)  # not ours to remove: theirs stays
        assert await routing.present(theirs)
        assert not await routing.present(ours)
        await routing.remove_route(theirs)

    world.run(body)


def test_a_route_through_a_missing_device_is_enodev(world: World) -> None:
    async def body(ports: Ports) -> None:
        route = VirtualRoute(IPv4Network("198.51.100.0/24"), dev="nosuch0", table=100)
        with pytest.raises(VrrpIoError, match="nosuch0") as raised:
            await ports.routing.add_route(route)
        assert raised.value.errno == errno.ENODEV
        await ports.routing.remove_route(route)  # gone with its device: succeeds
        assert not await ports.routing.present(route)
        v6 = VirtualRoute(IPv6Network("2001:db8::/64"), via=IPv6Address("fe80::1"), dev="nosuch0")
        with pytest.raises(VrrpIoError, match="nosuch0") as raised6:
            await ports.routing.add_route(v6)
        assert raised6.value.errno == errno.ENODEV

    world.run(body)


# -------------------------------------------------------------------- VirtualMacs

VMAC = VmacSpec("vrrp.51", "eth0", "00:00:5e:00:01:33")


def test_a_vmac_is_made_taken_over_and_removed(world: World) -> None:
    async def body(ports: Ports) -> None:
        vmacs = ports.vmacs
        assert not await vmacs.present(VMAC)
        await vmacs.ensure(VMAC)
        assert await vmacs.present(VMAC)
        await vmacs.ensure(VMAC)  # identical (a crashed run's): taken over
        # VIPs can live on it.
        await ports.addresses.add(VMAC.name, VIP4)
        assert VIP4 in await ports.addresses.list(VMAC.name)
        await vmacs.remove(VMAC)
        await vmacs.remove(VMAC)  # absent: succeeds
        assert not await vmacs.present(VMAC)

    world.run(body)


def test_an_ipvlan_is_made_taken_over_and_removed(world: World) -> None:
    ipvlan = VmacSpec("vrrp.52", "eth0", None)

    async def body(ports: Ports) -> None:
        vmacs = ports.vmacs
        await vmacs.ensure(ipvlan)
        await vmacs.ensure(ipvlan)  # identical: taken over
        assert await vmacs.present(ipvlan)
        # A macvlan of that name is something else: the ipvlan is not it.
        assert not await vmacs.present(VmacSpec("vrrp.52", "eth0", "00:00:5e:00:01:34"))
        await ports.addresses.add(ipvlan.name, VIP4)
        assert VIP4 in await ports.addresses.list(ipvlan.name)
        await vmacs.remove(ipvlan)
        assert not await vmacs.present(ipvlan)

    world.run(body)


def test_a_vmac_name_held_by_another_link_or_a_missing_base_fails(world: World) -> None:
    async def body(ports: Ports) -> None:
        with pytest.raises(VrrpIoError, match="eth0") as taken:
            await ports.vmacs.ensure(VmacSpec("eth0", "eth0", "00:00:5e:00:01:34"))
        assert taken.value.errno == errno.EEXIST
        with pytest.raises(VrrpIoError, match="nosuch0") as missing:
            await ports.vmacs.ensure(VmacSpec("vrrp.52", "nosuch0", "00:00:5e:00:01:34"))
        assert missing.value.errno == errno.ENODEV

    world.run(body)


# -------------------------------------------------------------------- LinkMonitor


async def _next_event(events: Any, within: float = 5.0) -> LinkEvent:
    async with asyncio.timeout(within):
        event: LinkEvent = await anext(events)
        return event


def test_link_monitor_reports_state_and_streams_each_change(world: World) -> None:
    async def body(ports: Ports) -> None:
        monitor = ports.monitor
        events = await monitor.subscribe()  # subscribe first: no change falls in between
        assert await monitor.is_up("eth0") is True
        assert await monitor.is_up("nosuch0") is False
        world.set_link_up(False)
        assert await _next_event(events) == LinkEvent("eth0", False)
        assert await monitor.is_up("eth0") is False
        world.set_link_up(True)
        assert await _next_event(events) == LinkEvent("eth0", True)
        assert await monitor.is_up("eth0") is True
        await events.aclose()

    world.run(body)


# --------------------------------------------------------------------- AdvertLink


def _payload(source: IPv4Address, destination: IPv4Address) -> bytes:
    advert = Advertisement(3, 51, 150, 1.0, (VIP4.ip,))
    return encode_advert(advert, source, destination)


def test_advert_link_carries_multicast_and_unicast_with_ttl_255(world: World) -> None:
    async def body(_: Ports) -> None:
        a, b = await world.open_links()
        try:
            assert (a.local_address, b.local_address) == (A4, B4)
            for destination in (VRRP_MULTICAST_V4, B4):
                payload = _payload(A4, destination)
                await a.send(payload, destination)
                async with asyncio.timeout(5):
                    received = await b.receive()
                assert (received.source, received.destination) == (A4, destination)
                assert (received.ttl, received.payload) == (255, payload)
                assert received.header_error is None
            # Multicast loop is off and our own source is filtered: A heard nothing.
            assert a.pending(64) == []
            assert b.pending(64) == []
        finally:
            a.close()
            b.close()

    world.run(body)


def test_a_closed_link_fails_with_ebadf(world: World) -> None:
    async def body(_: Ports) -> None:
        a, b = await world.open_links()
        b.close()
        a.close()
        with pytest.raises(VrrpIoError) as sent:
            await a.send(_payload(A4, B4), B4)
        assert sent.value.errno == errno.EBADF
        with pytest.raises(VrrpIoError) as read:
            a.pending(64)
        assert read.value.errno == errno.EBADF

    world.run(body)
