"""Virtual routes and rules (keepalived virtual_routes / virtual_rules): the pure values of
vrrp.routes with literal inputs, and the runner installing them with mastership against the
strict fake (FakeRouting), in virtual loop time."""

from __future__ import annotations

import asyncio
import errno
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_interface

import pytest
from structlog.testing import capture_logs

from vrrp.fake import FakeAdvertLink, FakeRouting, FakeSegment, FakeVipAddresses, RecordingAnnouncer
from vrrp.machine import State, Transition, VrrpMachine
from vrrp.ports import VrrpIoError
from vrrp.routes import (
    Nexthop,
    RouteScope,
    RouteType,
    RuleAction,
    VirtualRoute,
    VirtualRule,
    changes,
)
from vrrp.runner import InstanceRunner
from vrrp.settings import InstanceSettings, VipSpec
from vrrp.status import FaultSource, InstanceStatus

VIP = ip_interface("198.51.100.10/24")
A_ADDR = IPv4Address("198.51.100.1")
B_ADDR = IPv4Address("198.51.100.2")
NET = IPv4Network("192.0.2.0/24")
GW = IPv4Address("198.51.100.254")

ROUTE = VirtualRoute(NET, via=GW, dev="eth0", src=VIP.ip, table=100)
BLACKHOLE = VirtualRoute(IPv4Network("192.0.2.1/32"), type=RouteType.blackhole)
RULE = VirtualRule(4, from_=IPv4Network("198.51.100.0/24"), table=100)


# ----------------------------------------------------------------------- pure values


def test_route_describe_reads_like_ip_route() -> None:
    assert (
        ROUTE.describe() == "192.0.2.0/24 via 198.51.100.254 dev eth0 src 198.51.100.10 table 100"
    )
    assert BLACKHOLE.describe() == "blackhole 192.0.2.1/32"
    multipath = VirtualRoute(
        NET,
        nexthops=(Nexthop(IPv4Address("10.0.0.1")), Nexthop(IPv4Address("10.0.0.2"), "eth1", 2)),
    )
    assert multipath.describe() == (
        "192.0.2.0/24 nexthop via 10.0.0.1 nexthop via 10.0.0.2 dev eth1 weight 2"
    )
    scoped = VirtualRoute(NET, dev="eth3", scope=RouteScope.link, metric=5)
    assert scoped.describe() == "192.0.2.0/24 dev eth3 metric 5 scope link"


def test_rule_describe_reads_like_ip_rule() -> None:
    assert RULE.describe() == "from 198.51.100.0/24 lookup 100"
    marked = VirtualRule(
        6,
        to=IPv6Network("2001:db8::/64"),
        action=RuleAction.prohibit,
        fwmark=16,
        fwmask=255,
        priority=100,
        iif="eth0",
        invert=True,
    )
    assert marked.describe() == (
        "not priority 100 from all to 2001:db8::/64 iif eth0 fwmark 0x10/0xff prohibit"
    )


def test_the_kernel_default_metric_decides_a_route_key() -> None:
    # IPv4 routes default to metric 0, IPv6 ones to 1024 (IP6_RT_PRIO_USER).
    assert VirtualRoute(NET, dev="eth0").key == (NET, 254, 0)
    v6 = IPv6Network("2001:db8::/64")
    assert VirtualRoute(v6, dev="eth0").key == (v6, 254, 1024)
    assert VirtualRoute(v6, dev="eth0", metric=1024).key == VirtualRoute(v6, dev="eth0").key


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: VirtualRoute(NET), "needs via, dev or nexthops"),
        (lambda: VirtualRoute(NET, via=IPv6Address("2001:db8::1")), "via: 2001:db8::1 is not IPv4"),
        (lambda: VirtualRoute(NET, dev="eth0", src=IPv6Address("::1")), "src: ::1 is not IPv4"),
        (lambda: VirtualRoute(NET, type=RouteType.blackhole, dev="eth0"), "takes no via, dev"),
        (lambda: VirtualRoute(NET, dev="eth0", table=0), r"table: 0 outside 1\.\.4294967295"),
        (lambda: VirtualRoute(NET, dev="eth0", metric=-1), "metric: -1 outside"),
        (lambda: VirtualRoute(NET, dev="this-name-is-too-long"), "dev: 'this-name-is-too-long'"),
        (
            lambda: VirtualRoute(NET, via=GW, nexthops=(Nexthop(GW), Nexthop(A_ADDR))),
            "via and nexthops are exclusive",
        ),
        (lambda: VirtualRoute(NET, nexthops=(Nexthop(GW),)), "one nexthop is a plain"),
        (Nexthop, "nexthop: needs via or dev"),
        (lambda: Nexthop(GW, weight=0), "nexthop weight: 0 outside 1..256"),
        (lambda: VirtualRule(4), "a rule that looks up a table needs its number"),
        (lambda: VirtualRule(4, table=5, action=RuleAction.blackhole), "looks up no table"),
        (lambda: VirtualRule(4, from_=IPv6Network("::/0"), table=5), "from: ::/0 is not IPv4"),
        (lambda: VirtualRule(5, table=5), "family: 5 must be 4 or 6"),
        (lambda: VirtualRule(4, table=5, fwmask=255), "fwmask: needs fwmark"),
    ],
)
def test_invalid_routes_and_rules_are_refused_naming_the_field(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()  # type: ignore[operator]


def test_changes_keep_what_both_lists_hold() -> None:
    other = VirtualRoute(IPv4Network("203.0.113.0/24"), dev="eth1")
    assert changes([ROUTE, BLACKHOLE], [BLACKHOLE, other]) == ((other,), (ROUTE,))
    assert changes([RULE], [RULE]) == ((), ())


def test_settings_refuse_two_routes_with_one_key() -> None:
    twin = VirtualRoute(NET, via=IPv4Address("198.51.100.253"), table=100)
    with pytest.raises(ValueError, match="two routes to one prefix with one table and metric"):
        settings(100, routes=(ROUTE, twin))
    with pytest.raises(ValueError, match="rules: duplicate rule"):
        settings(100, rules=(RULE, RULE))


# ------------------------------------------------------------------- the strict fake


async def test_fake_routing_fails_like_the_kernel() -> None:
    routing = FakeRouting(["eth0"])
    await routing.add_route(ROUTE)
    await routing.add_route(ROUTE)  # identical and present: EEXIST, which is success
    assert routing.routes == [ROUTE]
    twin = VirtualRoute(NET, via=IPv4Address("198.51.100.253"), table=100)
    with pytest.raises(VrrpIoError, match="another route has this key") as raised:
        await routing.add_route(twin)
    assert raised.value.errno == errno.EEXIST
    with pytest.raises(VrrpIoError, match="nosuch0") as missing:
        await routing.add_route(VirtualRoute(NET, dev="nosuch0", table=7))
    assert missing.value.errno == errno.ENODEV
    routing.remove_interface("eth0")  # the kernel flushes a vanished device's routes
    assert routing.routes == []
    await routing.remove_route(ROUTE)  # absent: ESRCH, which is success
    await routing.add_rule(VirtualRule(4, iif="nosuch0", table=7))  # rules need no device
    assert await routing.present(VirtualRule(4, iif="nosuch0", table=7))


# ------------------------------------------------------------- runner with mastership


def settings(priority: int, **overrides: object) -> InstanceSettings:
    values: dict[str, object] = {
        "name": "VI_WEB",
        "interface": "eth0",
        "vrid": 51,
        "priority": priority,
        "version": 3,
        "advert_interval": 1.0,
        "preempt": True,
        "preempt_delay": 0.0,
        "vips": (VipSpec(VIP),),
        "garp_repeat": 1,
        "routes": (ROUTE, BLACKHOLE),
        "rules": (RULE,),
    }
    values.update(overrides)
    return InstanceSettings(**values)  # type: ignore[arg-type]


@dataclass
class Node:
    runner: InstanceRunner
    link: FakeAdvertLink
    addresses: FakeVipAddresses
    routing: FakeRouting
    states: list[State] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    async def wait_for(self, state: State) -> None:
        async with asyncio.timeout(60):
            while self.runner.state is not state:
                self.changed.clear()
                await self.changed.wait()

    def start(self) -> None:
        self.task = asyncio.create_task(self.runner.run())


def node(segment: FakeSegment, address: IPv4Address, config: InstanceSettings) -> Node:
    link = segment.attach(address)
    addresses = FakeVipAddresses(["eth0", "eth1"])
    routing = FakeRouting(["eth0", "eth1"])
    runner = InstanceRunner(
        config, link=link, addresses=addresses, announcer=RecordingAnnouncer(), routing=routing
    )
    made = Node(runner, link, addresses, routing)

    def record(name: str, transition: Transition, machine: VrrpMachine) -> None:
        made.states.append(transition.new)
        made.changed.set()

    runner.add_transition_callback(record)
    return made


@pytest.mark.looptime
async def test_routes_and_rules_follow_mastership_across_a_failover() -> None:
    segment = FakeSegment()
    a = node(segment, A_ADDR, settings(150))
    b = node(segment, B_ADDR, settings(100))
    a.start()
    b.start()
    await a.wait_for(State.MASTER)
    await asyncio.sleep(3)
    assert (a.routing.routes, a.routing.rules) == ([ROUTE, BLACKHOLE], [RULE])
    assert (b.routing.routes, b.routing.rules) == ([], [])
    # VIPs first, then routes (src VIP needs the address), then the rules.
    assert [op for op, _ in a.routing.ops] == ["add_route", "add_route", "add_rule"]
    await a.runner.stop()
    await b.wait_for(State.MASTER)
    assert (a.routing.routes, a.routing.rules) == ([], [])
    # Rules are removed before the routes they may point at.
    assert [op for op, _ in a.routing.ops[3:]] == ["remove_rule", "remove_route", "remove_route"]
    assert (b.routing.routes, b.routing.rules) == ([ROUTE, BLACKHOLE], [RULE])
    await b.runner.stop()
    assert (b.routing.routes, b.routing.rules) == ([], [])


@pytest.mark.looptime
async def test_a_route_that_fails_is_logged_and_the_instance_stays_master() -> None:
    segment = FakeSegment()
    a = node(segment, A_ADDR, settings(150))
    a.routing.fail_next("add_route", errno.ENETUNREACH)
    with capture_logs() as logs:
        a.start()
        await a.wait_for(State.MASTER)
        await asyncio.sleep(3)
    # keepalived stays MASTER when a virtual route cannot be set; so do we, with the VIPs.
    assert a.runner.state is State.MASTER
    assert a.addresses.held("eth0") == (VIP,)
    assert (a.routing.routes, a.routing.rules) == ([BLACKHOLE], [RULE])
    assert a.runner.counters.route_errors == 1
    # ... and reported with the instance's status (metrics: haipvs_vrrp_route_errors_total)
    assert InstanceStatus.of(a.runner).route_errors == 1
    failed = [line for line in logs if line["event"] == "vrrp.route.failed"]
    assert len(failed) == 1
    assert failed[0]["item"] == ROUTE.describe()
    assert (failed[0]["op"], failed[0]["errno"], failed[0]["reason"]) == (
        "add",
        errno.ENETUNREACH,
        "became_master",
    )
    await a.runner.stop()


@pytest.mark.looptime
async def test_a_reload_changes_only_the_routes_that_differ_on_a_master() -> None:
    segment = FakeSegment()
    a = node(segment, A_ADDR, settings(150))
    a.start()
    await a.wait_for(State.MASTER)
    other = VirtualRoute(IPv4Network("203.0.113.0/24"), dev="eth1")
    before = len(a.routing.ops)
    with capture_logs() as logs:
        await a.runner.reconfigure(settings(150, routes=(BLACKHOLE, other), rules=()))
    assert a.routing.ops[before:] == [
        ("remove_rule", RULE),
        ("remove_route", ROUTE),
        ("add_route", other),
    ]
    assert a.routing.routes == [BLACKHOLE, other]
    (changed,) = [line for line in logs if line["event"] == "vrrp.routes.changed"]
    assert changed["added"] == ["203.0.113.0/24 dev eth1"]
    assert changed["removed"] == [ROUTE.describe(), RULE.describe()]
    await a.runner.stop()


@pytest.mark.looptime
async def test_a_backup_installs_nothing_on_reload() -> None:
    segment = FakeSegment()
    a = node(segment, A_ADDR, settings(150))
    b = node(segment, B_ADDR, settings(100))
    a.start()
    b.start()
    await a.wait_for(State.MASTER)
    await asyncio.sleep(2)
    await b.runner.reconfigure(settings(100, routes=(BLACKHOLE,), rules=()))
    assert (b.routing.routes, b.routing.rules) == ([], [])
    await a.runner.stop()
    await b.runner.stop()


@pytest.mark.looptime
async def test_start_removes_routes_a_crashed_run_left_behind() -> None:
    segment = FakeSegment()
    b = node(segment, B_ADDR, settings(100))
    await b.routing.add_route(ROUTE)
    await b.routing.add_rule(RULE)
    a = node(segment, A_ADDR, settings(150))
    a.start()
    await a.wait_for(State.MASTER)
    b.start()
    await b.wait_for(State.BACKUP)
    assert (b.routing.routes, b.routing.rules) == ([], [])
    await a.runner.stop()
    await b.runner.stop()


def test_routes_default_to_none_in_instance_ports() -> None:
    # An instance without routes keeps working with ports that have no routing.
    from vrrp.ports import InstancePorts

    segment = FakeSegment()
    ports = InstancePorts(segment.attach(A_ADDR), FakeVipAddresses(["eth0"]), RecordingAnnouncer())
    assert ports.routing is None


@pytest.mark.looptime
async def test_a_fault_removes_the_routes_and_recovery_puts_them_back() -> None:
    segment = FakeSegment()
    a = node(segment, A_ADDR, settings(150))
    a.start()
    await a.wait_for(State.MASTER)
    assert (a.routing.routes, a.routing.rules) == ([ROUTE, BLACKHOLE], [RULE])
    await a.runner.set_fault(FaultSource.track, True, "tracked interface down")
    assert a.runner.state is State.FAULT
    assert (a.routing.routes, a.routing.rules, a.addresses.held()) == ([], [], ())
    await a.runner.set_fault(FaultSource.track, False, "tracked interface up")
    await a.wait_for(State.MASTER)
    assert (a.routing.routes, a.routing.rules) == ([ROUTE, BLACKHOLE], [RULE])
    await a.runner.stop()
