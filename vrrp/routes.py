"""Virtual routes and policy rules of one instance (keepalived ``virtual_routes`` /
``virtual_rules``): frozen values, validated at construction, and the one rule for what a
reload changes.

They follow mastership like the VIPs: installed when the instance becomes MASTER, removed
when it leaves MASTER (to BACKUP, FAULT, or at a graceful stop), and removed at start-up in
case a crashed run left them behind. The IO is ``vrrp.ports.VirtualRouting``.

Names follow keepalived and iproute2 (``ip route`` / ``ip rule``): ``to``, ``via``,
``dev``, ``src``, ``table``, ``metric``, ``scope``, the route types ``blackhole``,
``unreachable``, ``prohibit`` and ``throw``, multipath next hops (keepalived ``nexthop``
and its older ``via A or B``), and for rules ``from``, ``to``, ``table``, ``priority``,
``iif``, ``oif``, ``fwmark``, ``not`` and the rule actions.

Pure module: no IO, no clock, no logging.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import TypeVar

__all__ = [
    "MAIN_TABLE",
    "Nexthop",
    "RouteScope",
    "RouteType",
    "RuleAction",
    "VirtualRoute",
    "VirtualRule",
    "changes",
    "default_metric",
]

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

#: rtnetlink's RT_TABLE_MAIN, keepalived's default table for a virtual route.
MAIN_TABLE = 254
_MAX_U32 = 4294967295


class RouteType(enum.Enum):
    """rtnetlink route types keepalived accepts in ``virtual_routes`` (``rt_types``)."""

    unicast = "unicast"
    blackhole = "blackhole"
    unreachable = "unreachable"
    prohibit = "prohibit"
    throw = "throw"


class RouteScope(enum.Enum):
    """``scope`` of a route (rtnetlink RT_SCOPE_*; keepalived's default is universe)."""

    universe = "universe"
    site = "site"
    link = "link"
    host = "host"


class RuleAction(enum.Enum):
    """What a matching rule does (FR_ACT_*): look up ``table`` or end the lookup."""

    table = "table"
    blackhole = "blackhole"
    unreachable = "unreachable"
    prohibit = "prohibit"


def default_metric(family: int) -> int:
    """The metric the kernel gives a route added without one: 0 for IPv4, 1024 for
    IPv6 (IP6_RT_PRIO_USER). Two routes to one prefix in one table collide only when
    their effective metrics are equal."""
    return 1024 if family == 6 else 0


def _check_ifname(field: str, name: str | None) -> None:
    if name is not None and (not name or len(name) > 15 or "/" in name or " " in name):
        raise ValueError(f"{field}: {name!r} is not an interface name")


@dataclass(frozen=True, slots=True)
class Nexthop:
    """One path of a multipath route (``nexthop via A dev D weight W``)."""

    via: IPAddress | None = None
    dev: str | None = None
    weight: int = 1

    def __post_init__(self) -> None:
        if self.via is None and self.dev is None:
            raise ValueError("nexthop: needs via or dev")
        _check_ifname("nexthop dev", self.dev)
        if not 1 <= self.weight <= 256:
            raise ValueError(f"nexthop weight: {self.weight} outside 1..256")

    def describe(self) -> str:
        words = ["nexthop"]
        if self.via is not None:
            words += ["via", str(self.via)]
        if self.dev is not None:
            words += ["dev", self.dev]
        if self.weight != 1:
            words += ["weight", str(self.weight)]
        return " ".join(words)


@dataclass(frozen=True, slots=True)
class VirtualRoute:
    """One keepalived ``virtual_routes`` entry.

    Invariants (``ValueError`` naming the field): every address of one family (the
    prefix's); a ``unicast`` route goes somewhere (``via``, ``dev`` or ``nexthops``),
    ``via`` and ``nexthops`` exclusive, at least two next hops when given (one is a
    plain ``via``); the other types go nowhere (no via, dev or next hops); ``table``
    1..2^32-1 (0 is "unspecified" in rtnetlink), ``metric`` 0..2^32-1.
    """

    to: IPNetwork
    type: RouteType = RouteType.unicast
    via: IPAddress | None = None
    dev: str | None = None
    src: IPAddress | None = None
    table: int = MAIN_TABLE
    metric: int | None = None
    scope: RouteScope | None = None
    nexthops: tuple[Nexthop, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.to, IPv4Network | IPv6Network):
            raise ValueError(f"to: expected a network, got {self.to!r}")
        family = self.to.version
        for field, address in (("via", self.via), ("src", self.src)):
            if address is not None and address.version != family:
                raise ValueError(f"{field}: {address} is not IPv{family} like {self.to}")
        for hop in self.nexthops:
            if hop.via is not None and hop.via.version != family:
                raise ValueError(f"nexthops: {hop.via} is not IPv{family} like {self.to}")
        _check_ifname("dev", self.dev)
        if not 1 <= self.table <= _MAX_U32:
            raise ValueError(f"table: {self.table} outside 1..4294967295")
        if self.metric is not None and not 0 <= self.metric <= _MAX_U32:
            raise ValueError(f"metric: {self.metric} outside 0..4294967295")
        if self.type is RouteType.unicast:
            if self.via is None and self.dev is None and not self.nexthops:
                raise ValueError(f"{self.to}: a unicast route needs via, dev or nexthops")
            if self.via is not None and self.nexthops:
                raise ValueError(f"{self.to}: via and nexthops are exclusive")
            if len(self.nexthops) == 1:
                raise ValueError(f"{self.to}: one nexthop is a plain via/dev route")
        elif self.via is not None or self.dev is not None or self.nexthops:
            raise ValueError(f"{self.to}: a {self.type.value} route takes no via, dev or nexthops")

    @property
    def family(self) -> int:
        return self.to.version

    @property
    def effective_metric(self) -> int:
        return self.metric if self.metric is not None else default_metric(self.family)

    @property
    def key(self) -> tuple[IPNetwork, int, int]:
        """What the kernel keys a route on in one table (tos aside): two routes with
        the same key cannot both be added with ``ip route add``."""
        return (self.to, self.table, self.effective_metric)

    def describe(self) -> str:
        """The route as ``ip route`` would print it, for log lines and errors."""
        words = [] if self.type is RouteType.unicast else [self.type.value]
        words.append(str(self.to))
        if self.via is not None:
            words += ["via", str(self.via)]
        if self.dev is not None:
            words += ["dev", self.dev]
        words += [hop.describe() for hop in self.nexthops]
        if self.src is not None:
            words += ["src", str(self.src)]
        if self.table != MAIN_TABLE:
            words += ["table", str(self.table)]
        if self.metric is not None:
            words += ["metric", str(self.metric)]
        if self.scope is not None:
            words += ["scope", self.scope.value]
        return " ".join(words)


@dataclass(frozen=True, slots=True)
class VirtualRule:
    """One keepalived ``virtual_rules`` entry (``ip rule``).

    ``family`` is the prefixes' family, and must be given when neither ``from_`` nor
    ``to`` is (keepalived's ``inet6`` keyword). ``action`` ``table`` needs ``table``;
    the other actions take none. ``priority`` None lets the kernel choose (just above
    the first rule, as ``ip rule add`` without ``priority``).
    """

    family: int
    from_: IPNetwork | None = None
    to: IPNetwork | None = None
    table: int | None = None
    action: RuleAction = RuleAction.table
    priority: int | None = None
    iif: str | None = None
    oif: str | None = None
    fwmark: int | None = None
    fwmask: int | None = None
    invert: bool = False

    def __post_init__(self) -> None:
        if self.family not in (4, 6):
            raise ValueError(f"family: {self.family} must be 4 or 6")
        for field, network in (("from", self.from_), ("to", self.to)):
            if network is not None and network.version != self.family:
                raise ValueError(f"{field}: {network} is not IPv{self.family}")
        if self.action is RuleAction.table:
            if self.table is None:
                raise ValueError("table: a rule that looks up a table needs its number")
            if not 1 <= self.table <= _MAX_U32:
                raise ValueError(f"table: {self.table} outside 1..4294967295")
        elif self.table is not None:
            raise ValueError(f"table: a {self.action.value} rule looks up no table")
        if self.priority is not None and not 0 <= self.priority <= _MAX_U32:
            raise ValueError(f"priority: {self.priority} outside 0..4294967295")
        _check_ifname("iif", self.iif)
        _check_ifname("oif", self.oif)
        for field, value in (("fwmark", self.fwmark), ("fwmask", self.fwmask)):
            if value is not None and not 0 <= value <= _MAX_U32:
                raise ValueError(f"{field}: {value} outside 0..4294967295")
        if self.fwmask is not None and self.fwmark is None:
            raise ValueError("fwmask: needs fwmark")

    def describe(self) -> str:
        """The rule as ``ip rule`` would print it, for log lines and errors."""
        words = ["not"] if self.invert else []
        if self.priority is not None:
            words += ["priority", str(self.priority)]
        words += ["from", str(self.from_) if self.from_ is not None else "all"]
        if self.to is not None:
            words += ["to", str(self.to)]
        if self.iif is not None:
            words += ["iif", self.iif]
        if self.oif is not None:
            words += ["oif", self.oif]
        if self.fwmark is not None:
            mark = hex(self.fwmark)
            words += ["fwmark", mark if self.fwmask is None else f"{mark}/{hex(self.fwmask)}"]
        if self.action is RuleAction.table:
            words += ["lookup", str(self.table)]
        else:
            words.append(self.action.value)
        return " ".join(words)


T = TypeVar("T", VirtualRoute, VirtualRule)


def changes(old: Sequence[T], new: Sequence[T]) -> tuple[tuple[T, ...], tuple[T, ...]]:
    """(added, removed) between two lists of routes or rules, each in its list's order.

    What a reload does on a master: the routes and rules in both lists stay untouched
    (no flap of a route the traffic uses), the others are added and removed."""
    added = tuple(item for item in new if item not in old)
    removed = tuple(item for item in old if item not in new)
    return added, removed
