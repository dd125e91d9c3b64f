"""Virtual routes, policy rules and ``use_vmac`` macvlans through rtnetlink (pyroute2).

Split from ``vrrp.linux`` so that the VRRP process loads pyroute2 only when an instance
uses routes, rules or a VMAC (``vrrp.linux.LinuxPorts`` imports this module on first
use): the common instance, VIPs only, reaches BACKUP and takes over with the stdlib
rtnetlink of ``vrrp.rtnl``. The same error rules as ``vrrp.linux``: every ``OSError`` /
``NetlinkError`` leaves as ``VrrpIoError``.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError

from vrrp.linux_errors import IFF_UP as _IFF_UP
from vrrp.linux_errors import ifindex as _ifindex
from vrrp.linux_errors import io_error as _io_error
from vrrp.ports import VrrpIoError
from vrrp.routes import RouteScope, RouteType, RuleAction, VirtualRoute, VirtualRule
from vrrp.vmac import BASE_SYSCTLS, IGMP_LINK_LOCAL_REPORTS, VMAC_SYSCTLS, VmacSpec

__all__ = ["LinuxRouting", "LinuxVirtualMacs"]

# rtnetlink numbers (include/uapi/linux/rtnetlink.h, fib_rules.h).
_RTN = {
    RouteType.unicast: 1,
    RouteType.blackhole: 6,
    RouteType.unreachable: 7,
    RouteType.prohibit: 8,
    RouteType.throw: 9,
}
_SCOPE = {RouteScope.universe: 0, RouteScope.site: 200, RouteScope.link: 253, RouteScope.host: 254}
_FR_ACT = {
    RuleAction.table: 1,
    RuleAction.blackhole: 6,
    RuleAction.unreachable: 7,
    RuleAction.prohibit: 8,
}
_SCOPE_ANY = 255
_RTPROT_KEEPALIVED = 18
_FIB_RULE_INVERT = 0x2
#: The rule priority pyroute2 sends when none is given (the kernel would pick one).
_DEFAULT_RULE_PRIORITY = 32000
_ABSENT = (errno.ESRCH, errno.ENOENT)


def _family_of(version: int) -> int:
    return socket.AF_INET6 if version == 6 else socket.AF_INET


def _route_request(route: VirtualRoute) -> dict[str, object]:
    """pyroute2 keywords for one route, as ``ip route`` would send it."""
    request: dict[str, object] = {
        "family": _family_of(route.family),
        "dst_len": route.to.prefixlen,
        "table": route.table,
        "type": _RTN[route.type],
        "priority": route.effective_metric,
    }
    if route.to.prefixlen:
        request["dst"] = str(route.to.network_address)
    if route.via is not None:
        request["gateway"] = str(route.via)
    if route.dev is not None:
        request["oif"] = _ifindex(route.dev)
    if route.src is not None:
        request["prefsrc"] = str(route.src)
    if route.scope is not None:
        request["scope"] = _SCOPE[route.scope]
    if route.nexthops:
        hops: list[dict[str, object]] = []
        for hop in route.nexthops:
            entry: dict[str, object] = {"hops": hop.weight - 1}
            if hop.via is not None:
                entry["gateway"] = str(hop.via)
            if hop.dev is not None:
                entry["oif"] = _ifindex(hop.dev)
            hops.append(entry)
        request["multipath"] = hops
    return request


def _rule_request(rule: VirtualRule) -> dict[str, object]:
    """pyroute2 keywords for one rule, as ``ip rule`` would send it."""
    request: dict[str, object] = {
        "family": _family_of(rule.family),
        "action": _FR_ACT[rule.action],
        "priority": rule.priority if rule.priority is not None else _DEFAULT_RULE_PRIORITY,
    }
    if rule.table is not None:
        request["table"] = rule.table
    if rule.from_ is not None:
        request["src"] = str(rule.from_.network_address)
        request["src_len"] = rule.from_.prefixlen
    if rule.to is not None:
        request["dst"] = str(rule.to.network_address)
        request["dst_len"] = rule.to.prefixlen
    if rule.iif is not None:
        request["iifname"] = rule.iif
    if rule.oif is not None:
        request["oifname"] = rule.oif
    if rule.fwmark is not None:
        request["fwmark"] = rule.fwmark
    if rule.fwmask is not None:
        request["fwmask"] = rule.fwmask
    if rule.invert:
        request["flags"] = _FIB_RULE_INVERT
    return request


def _matches(msg: Any, wanted: dict[str, object], names: dict[str, str]) -> bool:
    """Whether a dumped message carries every requested field (``names`` maps a request
    keyword to its NLA; header fields are read directly)."""
    get_attr = msg.get_attr
    for key, value in wanted.items():
        if key == "multipath":
            continue
        nla = names.get(key)
        found = get_attr(nla) if nla is not None else msg[key]
        if key == "table" and found is None:
            found = msg["table"]
        if found is None and key in ("priority", "flags"):
            found = 0
        if found != value:
            return False
    return True


_ROUTE_NLAS = {
    "dst": "RTA_DST",
    "table": "RTA_TABLE",
    "priority": "RTA_PRIORITY",
    "gateway": "RTA_GATEWAY",
    "oif": "RTA_OIF",
    "prefsrc": "RTA_PREFSRC",
}
_RULE_NLAS = {
    "table": "FRA_TABLE",
    "priority": "FRA_PRIORITY",
    "src": "FRA_SRC",
    "dst": "FRA_DST",
    "iifname": "FRA_IIFNAME",
    "oifname": "FRA_OIFNAME",
    "fwmark": "FRA_FWMARK",
    "fwmask": "FRA_FWMASK",
}


def _multipath(msg: Any, with_dev: bool) -> set[tuple[str | None, int | None]]:
    """The (gateway, ifindex) of each path of a dumped multipath route; the ifindex
    only when the wanted route names a device for every path."""
    hops = msg.get_attr("RTA_MULTIPATH") or ()
    return {(hop.get_attr("RTA_GATEWAY"), int(hop["oif"]) if with_dev else None) for hop in hops}


class LinuxRouting:
    """Virtual routes and rules through rtnetlink (pyroute2 ``AsyncIPRoute``), one
    socket reused; ``vrrp.ports.VirtualRouting``'s idempotence, with the kernel's
    errors: EEXIST on add is success only when the identical route is the one present,
    ESRCH / ENOENT on delete is success (keepalived ignores ENOENT on rule removal
    the same way, ``netlink_rulelist``)."""

    def __init__(self) -> None:
        self._ipr: AsyncIPRoute | None = None

    def _route(self) -> AsyncIPRoute:
        if self._ipr is None:
            self._ipr = AsyncIPRoute()
        return self._ipr

    async def add_route(self, route: VirtualRoute) -> None:
        op = f"route add {route.describe()}"
        # RTPROT_KEEPALIVED, the protocol keepalived marks its virtual routes with
        # (vrrp_iproute.c), so tools filtering on `proto keepalived` keep working.
        request = {**_route_request(route), "proto": _RTPROT_KEEPALIVED}
        try:
            await self._route().route("add", **request)
        except NetlinkError as exc:
            if exc.code == errno.EEXIST and await self.present(route):
                return
            detail = "another route has this prefix, table and metric"
            if exc.code != errno.EEXIST:
                detail = str(exc)
            raise VrrpIoError(op, int(exc.code), detail) from exc
        except OSError as exc:
            raise _io_error(op, exc) from exc

    async def remove_route(self, route: VirtualRoute) -> None:
        op = f"route del {route.describe()}"
        try:
            request = _route_request(route)
        except VrrpIoError as exc:
            if exc.errno == errno.ENODEV:
                return  # the device is gone, and the kernel flushed its routes with it
            raise
        # RT_SCOPE_NOWHERE matches any scope on delete (as `ip route del` sends it);
        # any other value must equal the route's own scope.
        request["scope"] = _SCOPE_ANY
        try:
            await self._route().route("del", **request)
        except NetlinkError as exc:
            if exc.code in _ABSENT:
                return
            raise _io_error(op, exc) from exc
        except OSError as exc:
            raise _io_error(op, exc) from exc

    async def add_rule(self, rule: VirtualRule) -> None:
        op = f"rule add {rule.describe()}"
        try:
            await self._route().rule("add", **_rule_request(rule))
        except NetlinkError as exc:
            if exc.code == errno.EEXIST:
                return  # the kernel compared every attribute: this very rule is present
            raise _io_error(op, exc) from exc
        except OSError as exc:
            raise _io_error(op, exc) from exc

    async def remove_rule(self, rule: VirtualRule) -> None:
        op = f"rule del {rule.describe()}"
        try:
            await self._route().rule("del", **_rule_request(rule))
        except NetlinkError as exc:
            if exc.code in _ABSENT:
                return
            raise _io_error(op, exc) from exc
        except OSError as exc:
            raise _io_error(op, exc) from exc

    async def present(self, item: VirtualRoute | VirtualRule) -> bool:
        try:
            if isinstance(item, VirtualRoute):
                return await self._route_present(item)
            return await self._rule_present(item)
        except NetlinkError as exc:
            raise _io_error(f"dump for {item.describe()}", exc) from exc
        except OSError as exc:
            raise _io_error(f"dump for {item.describe()}", exc) from exc

    async def _route_present(self, route: VirtualRoute) -> bool:
        try:
            wanted = _route_request(route)
        except VrrpIoError as exc:
            if exc.errno == errno.ENODEV:
                return False
            raise
        with_dev = all(hop.dev is not None for hop in route.nexthops)
        hops = {
            (
                str(hop.via) if hop.via is not None else None,
                _ifindex(hop.dev) if with_dev and hop.dev is not None else None,
            )
            for hop in route.nexthops
        }
        wanted.pop("family")
        async for msg in await self._route().route("dump", family=_family_of(route.family)):
            if not _matches(msg, wanted, _ROUTE_NLAS):
                continue
            if hops and _multipath(msg, with_dev) != hops:
                continue
            return True
        return False

    async def _rule_present(self, rule: VirtualRule) -> bool:
        wanted = _rule_request(rule)
        wanted.pop("family")
        async for msg in await self._route().rule("dump", family=_family_of(rule.family)):
            if _matches(msg, wanted, _RULE_NLAS):
                return True
        return False

    def close(self) -> None:
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None


def _write_sysctl(path: str, value: int) -> int | None:
    """Write one /proc/sys value; the old one back (None: the file does not exist)."""
    try:
        with open(path, "r+") as handle:
            old = int(handle.read().strip() or 0)
            handle.seek(0)
            handle.write(str(value))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _io_error(f"sysctl {path}={value}", exc) from exc
    return old


def _ipv4_conf(interface: str, key: str) -> str:
    return f"/proc/sys/net/ipv4/conf/{interface}/{key}"


class LinuxVirtualMacs:
    """``use_vmac`` macvlans through rtnetlink, and the sysctls keepalived sets for
    them (``vrrp.vmac``). Remembers the base interfaces' old values to put back."""

    def __init__(self) -> None:
        self._ipr: AsyncIPRoute | None = None
        self._saved: dict[str, dict[str, int]] = {}
        self._made: dict[str, VmacSpec] = {}

    def _route(self) -> AsyncIPRoute:
        if self._ipr is None:
            self._ipr = AsyncIPRoute()
        return self._ipr

    async def _link(self, name: str) -> Any | None:
        try:
            for msg in await self._route().link("get", ifname=name):
                return msg
        except NetlinkError as exc:
            if exc.code == errno.ENODEV:
                return None
            raise _io_error(f"link get {name}", exc) from exc
        return None

    async def _same(self, spec: VmacSpec, msg: Any) -> bool:
        info = msg.get_attr("IFLA_LINKINFO")
        kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
        return (
            kind == spec.kind
            and msg.get_attr("IFLA_LINK") == _ifindex(spec.parent)
            and (spec.mac is None or str(msg.get_attr("IFLA_ADDRESS")).lower() == spec.mac)
        )

    async def ensure(self, spec: VmacSpec) -> None:
        op = f"vmac add {spec.describe()}"
        parent = _ifindex(spec.parent)
        kind: dict[str, Any]
        if spec.mac is None:
            # keepalived use_ipvlan: L2 mode (adverts and ARP are L2), bridge flags (0).
            kind = {"kind": "ipvlan", "ipvlan_mode": 0}
        else:
            kind = {"kind": "macvlan", "macvlan_mode": "private", "address": spec.mac}
        try:
            await self._route().link("add", ifname=spec.name, link=parent, **kind)
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise _io_error(op, exc) from exc
            msg = await self._link(spec.name)
            if msg is None or not await self._same(spec, msg):
                raise VrrpIoError(op, errno.EEXIST, "another link has this name") from exc
        except OSError as exc:
            raise _io_error(op, exc) from exc
        # Before it is up: no router solicitation, DAD or IGMP report ever leaves a
        # backup's macvlan (vrrp.vmac).
        _write_sysctl(f"/proc/sys/net/ipv6/conf/{spec.name}/disable_ipv6", 1)
        key, value = IGMP_LINK_LOCAL_REPORTS
        old = _write_sysctl(f"/proc/sys/net/ipv4/{key}", value)
        if old is not None:
            self._saved.setdefault("", {}).setdefault(key, old)
        for key, value in VMAC_SYSCTLS:
            _write_sysctl(_ipv4_conf(spec.name, key), value)
        saved = self._saved.setdefault(spec.parent, {})
        for key, value in BASE_SYSCTLS:
            old = _write_sysctl(_ipv4_conf(spec.parent, key), value)
            if old is not None:
                saved.setdefault(key, old)
        try:
            await self._route().link("set", index=_ifindex(spec.name), state="up")
        except (NetlinkError, OSError) as exc:
            raise _io_error(f"link set {spec.name} up", exc) from exc
        self._made[spec.name] = spec

    async def remove(self, spec: VmacSpec) -> None:
        msg = await self._link(spec.name)
        if msg is not None and await self._same(spec, msg):
            try:
                await self._route().link("del", index=msg["index"])
            except NetlinkError as exc:
                if exc.code != errno.ENODEV:
                    raise _io_error(f"vmac del {spec.describe()}", exc) from exc
        self._made.pop(spec.name, None)
        if not any(made.parent == spec.parent for made in self._made.values()):
            for key, old in self._saved.pop(spec.parent, {}).items():
                _write_sysctl(_ipv4_conf(spec.parent, key), old)
        if not self._made:
            for key, old in self._saved.pop("", {}).items():
                _write_sysctl(f"/proc/sys/net/ipv4/{key}", old)

    async def present(self, spec: VmacSpec) -> bool:
        msg = await self._link(spec.name)
        return msg is not None and await self._same(spec, msg) and bool(msg["flags"] & _IFF_UP)

    @property
    def made(self) -> tuple[VmacSpec, ...]:
        return tuple(self._made.values())

    def close(self) -> None:
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None
