"""The cross-field rules of a config file: the checks that relate several keys.

The models (:mod:`haipvs.config.model`) own the *shape* of each item: its keys, types, ranges
and defaults. The rules here relate items and keys to each other (vrid unique per interface,
dr cannot map ports, a VIP no VRRP instance carries...). They take the items that validated
on their own, with their original list indices, so a file with a typo in one virtual server
still gets every rule checked in the others, and every finding carries the exact key path it
is about.

Messages are written for the operator reading ``haipvs check-config`` at night: short, they
say what is allowed, and the names are the YAML keys.

Pure: no IO, no clock, no logging.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from typing import Any, TypeVar

import vrrp
from haipvs.config.model import (
    MESH_REFRESH_PERIOD,
    AuthHmacMode,
    BgpSettings,
    Check,
    Director,
    Family,
    Finding,
    Forwarding,
    HttpCheck,
    HttpsCheck,
    IpvsSettings,
    KeyPath,
    ParamMatch,
    Protocol,
    RealServer,
    RouteType,
    RuleAction,
    Scheduler,
    SchedulerFlag,
    Severity,
    SmtpCheck,
    SyncGroup,
    TcpCheck,
    TunnelChecksum,
    TunnelType,
    UdpCheck,
    UnicastChecksum,
    VirtualRoute,
    VirtualRule,
    VirtualServer,
    VrrpInstance,
    address_family,
)

__all__ = ["find_rule_violations", "scheduler_flags_in_use"]

T = TypeVar("T")

Indexed = Sequence[tuple[int, T]]


def find_rule_violations(
    *,
    director: Director | None,
    vrrp: Indexed[VrrpInstance],
    sync_groups: Indexed[SyncGroup],
    virtual_servers: Indexed[VirtualServer],
    ipvs: IpvsSettings | None,
    all_vrrp_valid: bool = True,
    bgp: BgpSettings | None = None,
    scale_out: bool = False,
) -> list[Finding]:
    """Every cross-field rule, over the items that validated, with their file indices.

    ``all_vrrp_valid`` is False when some VRRP instance failed validation on its own: rules
    that would otherwise report a missing instance (sync groups, the VIP warning) stay quiet
    rather than blame the wrong key.
    """
    findings: list[Finding] = []
    if director is not None:
        findings += _director_rules(director)
    findings += _vrrp_rules(vrrp)
    findings += _sync_group_rules(sync_groups, vrrp, all_vrrp_valid)
    for index, virtual_server in virtual_servers:
        findings += _virtual_server_rules(
            index, virtual_server, scale_out=bgp is not None or scale_out
        )
    findings += _service_uniqueness_rules(virtual_servers)
    if all_vrrp_valid and bgp is None and not scale_out:
        # In scale-out mode the routers fail over, not VRRP.
        findings += _vip_coverage_rules(virtual_servers, vrrp)
    if ipvs is not None:
        findings += _ipvs_rules(ipvs, vrrp, virtual_servers, all_vrrp_valid)
    if bgp is not None:
        findings += _scale_out_rules(bgp, vrrp, virtual_servers)
        if ipvs is not None:
            findings += _learn_rules(bgp, ipvs)
    return findings


#: The hash schedulers keep a weight-0 real server's share of the hash: without the
#: fallback flag the kernel answers "no destination" for it (ip_vs_sh.c, ip_vs_mh.c
#: is_unavailable), and haipvs sets weight 0 itself (drain on removal,
#: inhibit_on_failure, a dynamic weight of 0). So the fallback is always on.
_HASH_FALLBACK = {Scheduler.SH: SchedulerFlag.SH_FALLBACK, Scheduler.MH: SchedulerFlag.MH_FALLBACK}


def scheduler_flags_in_use(vs: VirtualServer) -> frozenset[SchedulerFlag]:
    """The flags the service gets in the kernel: the configured ones, and the hash
    scheduler's fallback (see ``_HASH_FALLBACK``)."""
    fallback = _HASH_FALLBACK.get(vs.scheduler)
    return frozenset(vs.scheduler_flags) | ({fallback} if fallback is not None else set())


def _error(path: KeyPath, message: str) -> Finding:
    return Finding(path, message, Severity.ERROR)


def _warning(path: KeyPath, message: str) -> Finding:
    return Finding(path, message, Severity.WARNING)


def _director_rules(director: Director) -> Iterable[Finding]:
    if director.api_token is None and not ipaddress.ip_address(director.api_host).is_loopback:
        # The status API serves POST /reload: beyond loopback it needs a token, and the
        # daemon refuses to bind without one, so the file is refused here, where
        # check-config sees it too.
        yield _error(
            ("director", "api"),
            f"{director.api} is reachable beyond this host: set director.api_token",
        )


def _is_whole(value: float, step: float) -> bool:
    units = value / step
    return abs(units - round(units)) < 1e-6


def _vrrp_rules(instances: Indexed[VrrpInstance]) -> Iterable[Finding]:
    yield from _vmac_rules(instances)
    names: dict[str, int] = {}
    vrids: dict[tuple[str, int, Family], int] = {}
    vip_owner: dict[IPv4Address | IPv6Address, tuple[int, int]] = {}
    for index, inst in instances:
        base: KeyPath = ("vrrp", index)
        if inst.name in names:
            yield _error(
                (*base, "name"),
                f"instance name {inst.name!r} is already used by vrrp[{names[inst.name]}]",
            )
        else:
            names[inst.name] = index

        if not inst.vips:
            yield _error((*base, "vips"), "must list at least one address")
        family = inst.family
        key = (inst.interface, inst.vrid, family)
        if key in vrids:
            yield _error(
                (*base, "vrid"),
                f"vrid {inst.vrid} is already used on {inst.interface} ({family.value}) "
                f"by vrrp[{vrids[key]}]",
            )
        else:
            vrids[key] = index

        # RFC 5798 §5.2.4: 255 is reserved for the owner of the addresses, and the owner must
        # use it; keepalived treats 255 as "owner" implicitly, we ask the operator to say so.
        if inst.address_owner and inst.priority != 255:
            yield _error(
                (*base, "priority"),
                "must be 255 for an address owner (RFC 5798 §5.2.4)",
            )
        elif inst.priority == 255 and not inst.address_owner:
            yield _error(
                (*base, "priority"),
                "255 is reserved for the address owner: set address_owner: true "
                "or use 1..254 (RFC 5798 §5.2.4)",
            )

        # RFC 3768 §5.3.7: v2 Adver Int is whole seconds in 8 bits; RFC 5798 §5.2.7: v3 is
        # 12 bits of centiseconds, so 0.01..40.95.
        interval = inst.advert_interval
        if inst.version == 2:
            if not (1 <= interval <= 255 and _is_whole(interval, 1.0)):
                yield _error(
                    (*base, "advert_interval"),
                    "VRRPv2 needs whole seconds 1..255 (RFC 3768 §5.3.7)",
                )
        elif not (0.01 <= interval <= 40.95 and _is_whole(interval, 0.01)):
            yield _error(
                (*base, "advert_interval"),
                "VRRPv3 needs 0.01..40.95 seconds in 0.01 steps (RFC 5798 §5.2.7)",
            )

        if inst.auth_pass is not None:
            # RFC 5798 §9 removed authentication; RFC 3768 §5.3.10: 8 octets at most.
            if inst.version != 2:
                yield _error((*base, "auth_pass"), "authentication exists only in VRRPv2")
            elif len(inst.auth_pass.encode()) > 8:
                yield _error((*base, "auth_pass"), "must be 1..8 octets (RFC 3768 §5.3.10)")

        if inst.auth_hmac is not None:
            yield from _auth_hmac_rules((*base, "auth_hmac"), inst)

        seen_vips: dict[IPv4Interface | IPv6Interface, int] = {}
        for vip_index, vip in enumerate(inst.vips):
            path: KeyPath = (*base, "vips", vip_index, "address")
            if inst.version == 2 and vip.address.version == 6:
                yield _error(path, "VRRPv2 carries IPv4 only (RFC 3768); use version: 3 for IPv6")
            elif address_family(vip.address) is not family:
                yield _error(
                    path,
                    f"must be {family.value} like the instance's first vip: an instance is "
                    "either IPv4 or IPv6 (RFC 5798 §1)",
                )
            if vip.address in seen_vips:
                yield _error(path, f"duplicate vip (also vips[{seen_vips[vip.address]}])")
                continue
            seen_vips[vip.address] = vip_index
            owner = vip_owner.get(vip.address.ip)
            if owner is not None and owner[0] != index:
                yield _error(
                    path,
                    f"{vip.address.ip} is already a vip of vrrp[{owner[0]}] (vips[{owner[1]}])",
                )
            else:
                vip_owner[vip.address.ip] = (index, vip_index)

        seen_peers: set[IPv4Address | IPv6Address] = set()
        for peer_index, peer in enumerate(inst.unicast_peers):
            path = (*base, "unicast_peers", peer_index)
            if address_family(peer) is not family:
                yield _error(path, f"must be {family.value} like the instance's vips")
            if peer in seen_peers:
                yield _error(path, f"duplicate peer {peer}")
            seen_peers.add(peer)
        if inst.unicast_source is not None:
            path = (*base, "unicast_source")
            if address_family(inst.unicast_source) is not family:
                yield _error(path, f"must be {family.value} like the instance's vips")
            elif not inst.unicast_peers:
                yield _error(path, "needs unicast_peers (without peers adverts are multicast)")
            elif inst.unicast_source in seen_peers:
                yield _error(path, "must not also be a unicast peer")
        if inst.unicast_checksum is not UnicastChecksum.AUTO and (
            inst.version != 3 or family is not Family.IPV4 or not inst.unicast_peers
        ):
            # The old form differs only in the VRRPv3 IPv4 pseudo-header of unicast adverts.
            yield _error(
                (*base, "unicast_checksum"),
                f"{inst.unicast_checksum.value} needs version 3, IPv4 vips and unicast_peers "
                "(the old checksum differs only there)",
            )

        seen_tracked: dict[str, int] = {}
        for track_index, tracked in enumerate(inst.track.interfaces):
            if tracked.name in seen_tracked:
                yield _error(
                    (*base, "track", "interfaces", track_index, "name"),
                    f"{tracked.name} is already tracked "
                    f"(track.interfaces[{seen_tracked[tracked.name]}])",
                )
            seen_tracked.setdefault(tracked.name, track_index)
        for script_index, script in enumerate(inst.track.scripts):
            if script.timeout is not None and script.timeout > script.interval:
                yield _error(
                    (*base, "track", "scripts", script_index, "timeout"),
                    f"must not exceed interval ({script.interval:g} s)",
                )
        for process_index, process in enumerate(inst.track.processes):
            if process.quorum_max is not None and process.quorum_max < process.quorum:
                yield _error(
                    (*base, "track", "processes", process_index, "quorum_max"),
                    f"{process.quorum_max} is below quorum {process.quorum}: never satisfied",
                )
            if process.param_match is not ParamMatch.EXACT and process.args is None:
                yield _error(
                    (*base, "track", "processes", process_index, "param_match"),
                    "needs args (param_match compares the process's arguments)",
                )
        yield from _accept_rules(base, inst)
        yield from _route_rules(base, inst.routes)
        yield from _policy_rule_rules(base, inst.rules)


def _accept_rules(base: KeyPath, inst: VrrpInstance) -> Iterable[Finding]:
    """Accept mode and keepalived's strict mode: what haipvs does, or a refusal naming
    what differs. keepalived keeps a master without accept mode from taking traffic for
    its VIPs with nftables/iptables drop rules (vrrp_nftables.c: `ip daddr @vips drop`
    in an input chain); haipvs installs no such rules, so it offers accept mode only."""
    if not inst.accept:
        yield _error(
            (*base, "accept"),
            "only true is offered: a master without accept mode needs firewall rules "
            "dropping traffic to its vips (keepalived's no_accept nftables rules), which "
            "haipvs does not install",
        )
    if not inst.strict:
        return
    path: KeyPath = (*base, "strict")
    if inst.unicast_peers:
        yield _error((*base, "unicast_peers"), "not allowed with strict (multicast only)")
    if inst.auth_pass is not None:
        yield _error((*base, "auth_pass"), "not allowed with strict (no authentication)")
    if inst.auth_hmac is not None and inst.auth_hmac.mode is not AuthHmacMode.ENFORCE:
        # keepalived: "strict mode requires auth_hmac mode enforce" (it forces it).
        yield _error((*base, "auth_hmac", "mode"), "must be enforce with strict")
    if inst.preempt_delay:
        yield _error((*base, "preempt_delay"), "not allowed with strict")
    if inst.vmac is not None and inst.vmac.xmit_base:
        yield _error((*base, "vmac", "xmit_base"), "not allowed with strict")
    if inst.address_owner:
        return  # keepalived runs the address owner in accept mode, strict or not
    if inst.version == 2:
        yield _error(
            path,
            "keepalived runs a strict VRRPv2 non-owner without accept mode (RFC 3768), "
            "whose drop rules haipvs does not install: use version 3 with accept: true",
        )
    elif "accept" not in inst.model_fields_set:
        yield _error(
            path,
            "keepalived runs a strict non-owner without accept mode, whose drop rules "
            "haipvs does not install: write accept: true to run strict in accept mode",
        )


def _vmac_rules(instances: Indexed[VrrpInstance]) -> Iterable[Finding]:
    """use_vmac: one macvlan per instance, IPv4 only (an IPv6 instance would need a
    link-local address of its own on the macvlan, which haipvs does not make)."""
    interfaces = {inst.interface for _, inst in instances}
    made: dict[str, int] = {}
    for index, inst in instances:
        name = inst.vmac_name
        if name is None:
            continue
        path: KeyPath = ("vrrp", index, "vmac")
        if inst.vips and inst.family is Family.IPV6:
            yield _error(path, "offered for IPv4 instances only")
        if inst.vmac is not None and inst.vmac.ipvlan and inst.vmac.xmit_base:
            yield _error(
                (*path, "xmit_base"), "a macvlan's option: an ipvlan has the base's MAC already"
            )
        if name in interfaces:
            yield _error(path, f"{name} is an instance's own interface: name the macvlan")
        elif name in made:
            yield _error(
                path, f"{name} is already the macvlan of vrrp[{made[name]}]: name this one"
            )
        made.setdefault(name, index)


def _route_rules(base: KeyPath, routes: Sequence[VirtualRoute]) -> Iterable[Finding]:
    """keepalived virtual_routes as the kernel takes them (``ip route add``)."""
    keys: dict[tuple[Any, int, int], int] = {}
    for index, route in enumerate(routes):
        path: KeyPath = (*base, "routes", index)
        version = route.to.version
        for field, address in (("via", route.via), ("src", route.src)):
            if address is not None and address.version != version:
                yield _error((*path, field), f"must be IPv{version} like `to` ({route.to})")
        for hop_index, hop in enumerate(route.nexthops):
            hop_path: KeyPath = (*path, "nexthops", hop_index)
            if hop.via is None and hop.dev is None:
                yield _error(hop_path, "needs via or dev")
            elif hop.via is not None and hop.via.version != version:
                yield _error((*hop_path, "via"), f"must be IPv{version} like `to` ({route.to})")
        if route.type is RouteType.UNICAST:
            if route.via is None and route.dev is None and not route.nexthops:
                yield _error((*path, "to"), "a unicast route needs via, dev or nexthops")
            elif route.via is not None and route.nexthops:
                yield _error((*path, "nexthops"), "via and nexthops are exclusive")
            elif len(route.nexthops) == 1:
                yield _error((*path, "nexthops"), "one nexthop is a plain route: use via/dev")
        elif route.via is not None or route.dev is not None or route.nexthops:
            yield _error(
                (*path, "type"),
                f"a {route.type.value} route goes nowhere: no via, dev or nexthops",
            )
        # The kernel keys a route on prefix, table and metric (IPv6 routes default to 1024).
        metric = route.metric if route.metric is not None else (1024 if version == 6 else 0)
        key = (route.to, route.table, metric)
        if key in keys:
            yield _error(
                (*path, "to"),
                f"{route.to} in table {route.table} with metric {metric} is already "
                f"routes[{keys[key]}]: the kernel holds one of them",
            )
        keys.setdefault(key, index)


def _policy_rule_rules(base: KeyPath, rules: Sequence[VirtualRule]) -> Iterable[Finding]:
    """keepalived virtual_rules as the kernel takes them (``ip rule add``)."""
    seen: dict[VirtualRule, int] = {}
    for index, rule in enumerate(rules):
        path: KeyPath = (*base, "rules", index)
        families = {
            Family.IPV4 if network.version == 4 else Family.IPV6
            for network in (rule.source, rule.destination)
            if network is not None
        }
        if len(families) > 1:
            yield _error((*path, "destination"), "must be of the source's family")
        elif rule.family is not None and families and rule.family not in families:
            yield _error((*path, "family"), "does not match the prefixes' family")
        if rule.action is RuleAction.TABLE and rule.table is None:
            yield _error((*path, "table"), "required: the rule looks up this table")
        elif rule.action is not RuleAction.TABLE and rule.table is not None:
            yield _error((*path, "table"), f"a {rule.action.value} rule looks up no table")
        if rule.fwmask is not None and rule.fwmark is None:
            yield _error((*path, "fwmask"), "needs fwmark")
        if rule in seen:
            yield _error(path, f"the same rule as rules[{seen[rule]}]")
        seen.setdefault(rule, index)


def _auth_hmac_rules(base: KeyPath, inst: VrrpInstance) -> Iterable[Finding]:
    # keepalived's auth_hmac parser and vrrp_complete_instance, as errors: keepalived
    # drops a bad key or disables the extension with a log line, which would leave a
    # pair unauthenticated without anyone noticing.
    auth = inst.auth_hmac
    assert auth is not None
    if inst.auth_pass is not None:
        yield _error((*base,), "cannot be combined with auth_pass (keepalived refuses both)")
    if not auth.keys:
        yield _error((*base, "keys"), "must list at least one key")
    seen: dict[int, int] = {}
    for key_index, key in enumerate(auth.keys):
        path: KeyPath = (*base, "keys", key_index)
        if key.id in seen:
            yield _error((*path, "id"), f"key id {key.id} is already used by keys[{seen[key.id]}]")
        else:
            seen[key.id] = key_index
        if key.key.startswith("file:"):
            if not key.key[5:].startswith("/"):
                yield _error((*path, "key"), "file: needs an absolute path")
            continue  # read and measured when the config is compiled
        try:
            octets = vrrp.decode_key(key.key)
        except ValueError as exc:
            yield _error((*path, "key"), str(exc))
            continue
        if not 32 <= len(octets) <= 64:
            yield _error((*path, "key"), f"{len(octets)} octets; a key has 32..64 octets")
    if auth.active_key is None:
        if len(auth.keys) > 1:
            yield _error((*base, "active_key"), "required when there are several keys")
    elif auth.keys and auth.active_key not in seen:
        yield _error((*base, "active_key"), f"{auth.active_key} is not the id of a key")


def _sync_group_rules(
    groups: Indexed[SyncGroup], instances: Indexed[VrrpInstance], all_vrrp_valid: bool
) -> Iterable[Finding]:
    known = {inst.name for _, inst in instances}
    group_names: dict[str, int] = {}
    member_of: dict[str, int] = {}
    for index, group in groups:
        base: KeyPath = ("sync_groups", index)
        if group.name in group_names:
            yield _error(
                (*base, "name"),
                f"group name {group.name!r} is already used by "
                f"sync_groups[{group_names[group.name]}]",
            )
        group_names.setdefault(group.name, index)
        if not group.instances:
            yield _error((*base, "instances"), "must list at least one vrrp instance")
        elif len(group.instances) == 1:
            # keepalived drops a sync group of one instance with a warning, as do we (it syncs
            # nothing).
            yield _warning((*base, "instances"), "a sync group of one instance syncs nothing")
        for member_index, member in enumerate(group.instances):
            path: KeyPath = (*base, "instances", member_index)
            if all_vrrp_valid and member not in known:
                yield _error(path, f"no vrrp instance is named {member!r}")
            elif member in member_of and member_of[member] != index:
                yield _error(
                    path,
                    f"{member!r} is already in sync_groups[{member_of[member]}]: "
                    "an instance belongs to one group",
                )
            elif member in member_of:
                yield _error(path, f"{member!r} is listed twice")
            else:
                member_of[member] = index


def _virtual_server_rules(
    index: int, vs: VirtualServer, *, scale_out: bool = False
) -> Iterable[Finding]:
    base: KeyPath = ("virtual_servers", index)
    if vs.vip is None and vs.fwmark is None:
        yield _error((*base, "vip"), "a virtual server needs a vip (with port) or a fwmark")
        return
    if vs.vip is not None and vs.fwmark is not None:
        yield _error((*base, "fwmark"), "a virtual server has a vip or a fwmark, not both")
        return
    if vs.vip is not None:
        if vs.port is None:
            yield _error((*base, "port"), "required with vip")
        elif vs.port == 0 and vs.persistence.timeout == 0:
            # The kernel refuses a port-0 ("all ports") service that is not persistent.
            yield _error((*base, "port"), "port 0 (all ports) needs persistence.timeout above 0")
        if vs.family is not None and vs.family is not address_family(vs.vip):
            yield _error((*base, "family"), f"does not match the vip's family ({vs.vip})")
    elif vs.port is not None:
        yield _error((*base, "port"), "not with fwmark: a fwmark service matches every port")

    family = vs.service_family
    for flag_index, flag in enumerate(vs.scheduler_flags):
        wanted = flag.value.split("-")[0]
        if wanted != vs.scheduler.value:
            yield _error(
                (*base, "scheduler_flags", flag_index),
                f"{flag.value} applies to the {wanted} scheduler, not {vs.scheduler.value}",
            )
    if len(set(vs.scheduler_flags)) != len(vs.scheduler_flags):
        yield _error((*base, "scheduler_flags"), "a flag is listed twice")
    fallback = _HASH_FALLBACK.get(vs.scheduler)
    if fallback is not None and fallback not in vs.scheduler_flags and scale_out:
        # Every director must run the table its file says: a flow the routers move to
        # another director is scheduled by that one's flags, not by a flag added silently.
        yield _error(
            (*base, "scheduler_flags"),
            f"scale-out mode (bgp) needs {fallback.value}: without it a real server at "
            "weight 0 (draining, inhibit_on_failure) keeps its share of the hash and the "
            "new connections hashed to it are refused",
        )
    elif fallback is not None and fallback not in vs.scheduler_flags:
        yield _warning(
            (*base, "scheduler"),
            f"{vs.scheduler.value} without {fallback.value}: haipvs adds it (a real server "
            "at weight 0, draining or inhibit_on_failure, would otherwise drop the new "
            "connections hashed to it)",
        )
    if vs.one_packet and vs.protocol is not Protocol.UDP:
        yield _error((*base, "one_packet"), "one-packet scheduling is for udp services only")

    netmask = vs.persistence.netmask
    if netmask is not None:
        limit = 32 if family is Family.IPV4 else 128
        if netmask > limit:
            yield _error(
                (*base, "persistence", "netmask"), f"must be 0..{limit} for {family.value}"
            )
        elif vs.persistence.timeout == 0:
            yield _error((*base, "persistence", "netmask"), "needs persistence.timeout above 0")

    yield from _check_rules((*base, "check"), vs.check, vs.port)

    seen: dict[tuple[IPv4Address | IPv6Address, int], int] = {}
    for rs_index, rs in enumerate(vs.real_servers):
        yield from _real_server_rules(base, rs_index, rs, vs, family)
        key = (rs.address, vs.real_server_port(rs))
        if key in seen:
            yield _error(
                (*base, "real_servers", rs_index, "address"),
                f"duplicate real server {_host_port(*key)} (also real_servers[{seen[key]}])",
            )
        else:
            seen[key] = rs_index

    if vs.sorry_server is not None:
        sorry = vs.sorry_server
        sorry_port = sorry.port if sorry.port is not None else (vs.port or 0)
        path: KeyPath = (*base, "sorry_server")
        if address_family(sorry.address) is not family and vs.forwarding is not Forwarding.TUN:
            yield _error(
                path,
                f"must be {family.value} like the service "
                f"({vs.forwarding.value} cannot mix families)",
            )
        if (sorry.address, sorry_port) in seen:
            yield _error(
                path,
                f"{_host_port(sorry.address, sorry_port)} is also "
                f"real_servers[{seen[(sorry.address, sorry_port)]}]",
            )
        if (
            vs.forwarding in (Forwarding.DR, Forwarding.TUN)
            and vs.fwmark is None
            and sorry.port is not None
            and sorry.port != vs.port
        ):
            yield _error(
                (*base, "sorry_server", "port"),
                f"{vs.forwarding.value} cannot map ports: must equal the service port {vs.port}",
            )

    if "min_up" in vs.quorum.model_fields_set and vs.quorum.min_weight is not None:
        yield _error(
            (*base, "quorum", "min_weight"),
            "set either min_weight (keepalived's sum of weights) or min_up (a count), not both",
        )
    elif vs.quorum.min_weight is not None and vs.real_servers:
        total = sum(rs.weight for rs in vs.real_servers)
        if vs.quorum.min_weight > total:
            yield _warning(
                (*base, "quorum", "min_weight"),
                f"{vs.quorum.min_weight} is more than the real servers' weights add up to "
                f"({total}): the service can never reach quorum",
            )
    if vs.quorum.min_weight is None and vs.real_servers and vs.quorum.min_up > len(vs.real_servers):
        yield _warning(
            (*base, "quorum", "min_up"),
            f"{vs.quorum.min_up} is more than the {len(vs.real_servers)} real servers: "
            "the service can never reach quorum",
        )


def _real_server_rules(
    base: KeyPath, rs_index: int, rs: RealServer, vs: VirtualServer, family: Family
) -> Iterable[Finding]:
    path: KeyPath = (*base, "real_servers", rs_index)
    forwarding = vs.real_server_forwarding(rs)
    # Only TUN may mix families: the kernel refuses other mixed-family dests (EAFNOSUPPORT),
    # since DR and NAT rewrite within one IP header.
    if address_family(rs.address) is not family and forwarding is not Forwarding.TUN:
        yield _error(
            (*path, "address"),
            f"must be {family.value} like the service ({forwarding.value} cannot mix families)",
        )
    # DR rewrites only the MAC and TUN wraps the packet unchanged: the real server sees the
    # VIP's port, so the kernel cannot map ports (lvs-principles.md).
    if (
        forwarding in (Forwarding.DR, Forwarding.TUN)
        and vs.fwmark is None
        and rs.port is not None
        and rs.port != vs.port
    ):
        yield _error(
            (*path, "port"),
            f"{forwarding.value} cannot map ports: must equal the service port {vs.port}",
        )
    # The kernel refuses l_thresh above u_thresh with ERANGE, even when u_thresh is 0.
    if rs.l_thresh > rs.u_thresh:
        yield _error((*path, "l_thresh"), f"must not exceed u_thresh ({rs.u_thresh})")
    if rs.tun is not None:
        if forwarding is not Forwarding.TUN:
            yield _error(
                (*path, "tun"), f"only for tun forwarding (this one is {forwarding.value})"
            )
        elif rs.tun.type is TunnelType.GUE and rs.tun.port is None:
            yield _error((*path, "tun", "port"), "required for a gue tunnel")
        elif rs.tun.type is not TunnelType.GUE and rs.tun.port is not None:
            yield _error((*path, "tun", "port"), "only for a gue tunnel")
        if rs.tun.type is TunnelType.IPIP and rs.tun.csum is not TunnelChecksum.NONE:
            yield _error((*path, "tun", "csum"), "ipip tunnels have no checksum option")
    yield from _check_rules(
        (*path, "check"),
        vs.real_server_check(rs),
        vs.real_server_port(rs) or None,
        own=rs.check is not None,
        inherited_from=(*base, "check"),
    )


def _check_rules(
    path: KeyPath,
    check: Check | None,
    target_port: int | None,
    *,
    own: bool = True,
    inherited_from: KeyPath | None = None,
) -> Iterable[Finding]:
    if check is None:
        return
    if own:
        if check.timeout > check.interval:
            yield _error((*path, "timeout"), f"must not exceed interval ({check.interval:g} s)")
        if check.fast_interval is not None and check.fast_interval > check.interval:
            yield _error(
                (*path, "fast_interval"), f"must not exceed interval ({check.interval:g} s)"
            )
        damping = check.flap_damping
        if damping is not None and damping.suppress_threshold <= damping.reuse_threshold:
            yield _error(
                (*path, "flap_damping", "suppress_threshold"),
                f"must be above reuse_threshold ({damping.reuse_threshold:g})",
            )
        elif damping is not None:
            # RFC 2439 §4.2: the penalty never exceeds reuse * 2^(max_suppress / half_life);
            # below suppress_threshold a server could never be suppressed.
            ceiling = damping.reuse_threshold * 2 ** (damping.max_suppress / damping.half_life)
            if ceiling <= damping.suppress_threshold:
                yield _error(
                    (*path, "flap_damping", "max_suppress"),
                    "too short: the penalty could never reach suppress_threshold "
                    "(RFC 2439 §4.2 ceiling)",
                )
        if isinstance(check, HttpsCheck) and check.ca_file is not None and not check.verify_tls:
            yield _error((*path, "ca_file"), "needs verify_tls: true")
    # A socket check needs a port: its own, the real server's or the service's.
    needs_port = isinstance(check, TcpCheck | HttpCheck | HttpsCheck | UdpCheck | SmtpCheck)
    has_port = getattr(check, "port", None) is not None or bool(target_port)
    if needs_port and not has_port and inherited_from is not None:
        where = path if own else inherited_from
        yield _error(
            (*where, "port"),
            f"a {check.type} check needs a port: set check.port or the real server's port",
        )


def _host_port(address: IPv4Address | IPv6Address, port: int) -> str:
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


def _service_key(vs: VirtualServer) -> tuple[Any, ...]:
    if vs.fwmark is not None:
        return ("fwmark", vs.service_family, vs.fwmark)
    return (vs.protocol, vs.vip, vs.port)


def _service_uniqueness_rules(services: Indexed[VirtualServer]) -> Iterable[Finding]:
    keys: dict[tuple[Any, ...], int] = {}
    names: dict[str, int] = {}
    for index, vs in services:
        if (vs.vip is None) == (vs.fwmark is None):
            continue  # already reported
        key = _service_key(vs)
        if key in keys:
            field_name = "fwmark" if vs.fwmark is not None else "vip"
            yield _error(
                ("virtual_servers", index, field_name),
                f"duplicate virtual server {vs.label} (also virtual_servers[{keys[key]}])",
            )
        else:
            keys[key] = index
        if vs.name is not None:
            if vs.name in names:
                yield _error(
                    ("virtual_servers", index, "name"),
                    f"name {vs.name!r} is already used by virtual_servers[{names[vs.name]}]",
                )
            else:
                names[vs.name] = index


def _vip_coverage_rules(
    services: Indexed[VirtualServer], instances: Indexed[VrrpInstance]
) -> Iterable[Finding]:
    carried = {vip.address.ip for _, inst in instances for vip in inst.vips}
    for index, vs in services:
        if vs.vip is not None and vs.fwmark is None and vs.vip not in carried:
            # A single director is legitimate, so this is a warning.
            yield _warning(
                ("virtual_servers", index, "vip"),
                f"{vs.vip} is not a vip of any vrrp instance: no failover for this service",
            )


def _ipvs_rules(
    ipvs: IpvsSettings,
    instances: Indexed[VrrpInstance],
    services: Indexed[VirtualServer],
    all_vrrp_valid: bool,
) -> Iterable[Finding]:
    programmer = ipvs.programmer
    if programmer.min_interval > programmer.max_interval:
        yield _error(
            ("ipvs", "programmer", "min_interval"),
            f"must not exceed max_interval ({programmer.max_interval:g} s)",
        )
    daemon = ipvs.sync_daemon
    if daemon is None:
        return
    if daemon.mode == "mesh" and daemon.instance is not None:
        yield _error(
            ("ipvs", "sync_daemon", "instance"),
            "not with mode mesh: the mesh runs master and backup at all times, "
            "it follows no VRRP instance",
        )
    names = {inst.name for _, inst in instances}
    if daemon.instance is not None and all_vrrp_valid and daemon.instance not in names:
        yield _error(
            ("ipvs", "sync_daemon", "instance"), f"no vrrp instance is named {daemon.instance!r}"
        )
    if daemon.group is not None and daemon.group.version == 6 and daemon.maxlen is None:
        pass  # the kernel picks the IPv6 default size; nothing to check
    # The kernel refuses to start the sync daemon while a mixed-family dest exists
    # ("sync protocol is incompatible with mixed family services", EINVAL).
    for index, vs in services:
        for rs_index, rs in enumerate(vs.real_servers):
            if address_family(rs.address) is not vs.service_family:
                yield _error(
                    ("virtual_servers", index, "real_servers", rs_index, "address"),
                    "mixed-family real servers cannot be used with ipvs.sync_daemon "
                    "(the kernel refuses to sync them)",
                )


# Scale-out mode: several directors are active at once and the routers' ECMP may move a flow
# from one to another mid-connection (a director dies, joins or is drained). The flow survives
# only if the next director picks the same real server and accepts a mid-flow packet.
# mh-fallback: the hash-fallback rule of ``_virtual_server_rules`` refuses it missing here
# (elsewhere haipvs adds it with a warning, ``scheduler_flags_in_use``).
_MH_PORT_REASON = (
    "without it mh hashes the source address only, so one client's flows all land on "
    "one real server"
)


def _scale_out_rules(
    bgp: BgpSettings, instances: Indexed[VrrpInstance], services: Indexed[VirtualServer]
) -> Iterable[Finding]:
    if not bgp.neighbours:
        yield _error(("bgp", "neighbours"), "must list at least one router to announce to")
    seen: dict[IPv4Address | IPv6Address, int] = {}
    for index, neighbour in enumerate(bgp.neighbours):
        if neighbour.address in seen:
            yield _error(
                ("bgp", "neighbours", index, "address"),
                f"{neighbour.address} is already bgp.neighbours[{seen[neighbour.address]}]",
            )
        else:
            seen[neighbour.address] = index
    if bgp.keepalive_time * 3 > bgp.hold_time:
        # RFC 4271 §10: keepalive one third of the hold time, so two lost ones are survived.
        yield _error(
            ("bgp", "keepalive_time"), f"must be at most a third of hold_time ({bgp.hold_time} s)"
        )
    if bgp.error_wait_min > bgp.error_wait_max:
        yield _error(
            ("bgp", "error_wait_min"), f"must be at most error_wait_max ({bgp.error_wait_max} s)"
        )
    vips = {vs.vip for _, vs in services if vs.vip is not None}
    listed: dict[IPv4Address | IPv6Address, int] = {}
    for index, item in enumerate(bgp.vips):
        if item.vip in listed:
            yield _error(
                ("bgp", "vips", index, "vip"),
                f"{item.vip} is already bgp.vips[{listed[item.vip]}]",
            )
        elif item.vip not in vips:
            yield _error(
                ("bgp", "vips", index, "vip"), f"{item.vip} is not the vip of any virtual server"
            )
        listed.setdefault(item.vip, index)
    for index, vs in services:
        yield from _scale_out_service_rules(index, vs)
    for index, inst in instances:
        for vip_index, vip in enumerate(inst.vips):
            if vip.address.ip in vips:
                # Both modes at once: the VRRP backup drops the VIP the routers send it.
                yield _warning(
                    ("vrrp", index, "vips", vip_index),
                    f"{vip.address.ip} is also announced over bgp: VRRP and scale-out "
                    "mode both move this VIP",
                )


def _learn_rules(bgp: BgpSettings, ipvs: IpvsSettings) -> Iterable[Finding]:
    # A learn shorter than the mesh's refresh period announces a joining director before
    # its peers have re-sent their long-lived connections (haipvs.ipvs.sysctl): the flows
    # the routers then move to it rely on its mh table alone, which differs from the
    # others' while its own checks are still rising (measured: 2 of 2,000 reset on a join
    # with learn 1 s and no refresh). A warning: an operator may accept that on purpose.
    sync = ipvs.sync_daemon
    if sync is None or sync.mode != "mesh":
        return
    refresh = MESH_REFRESH_PERIOD if sync.refresh_period is None else sync.refresh_period
    learns: list[tuple[KeyPath, float]] = []
    if bgp.learn is not None:
        learns.append((("bgp", "learn"), bgp.learn))
    learns += [(("bgp", "vips", index, "learn"), item.learn)
               for index, item in enumerate(bgp.vips) if item.learn is not None]
    for path, learn in learns:
        if learn < refresh:
            yield _warning(
                path,
                f"{learn:g} s is shorter than the sync mesh's refresh period ({refresh} s): "
                "a director that joins announces before its peers have re-sent their "
                "long-lived connections, and the flows moved to it rely on mh alone",
            )


def _scale_out_service_rules(index: int, vs: VirtualServer) -> Iterable[Finding]:
    base: KeyPath = ("virtual_servers", index)
    if vs.fwmark is not None:
        yield _error(
            (*base, "fwmark"), "scale-out mode (bgp) announces vips: a fwmark service has none"
        )
    if vs.scheduler is not Scheduler.MH:
        yield _error(
            (*base, "scheduler"),
            f"scale-out mode (bgp) needs mh, not {vs.scheduler.value}: every director must "
            "pick the same real server for a flow the routers move between them",
        )
    elif SchedulerFlag.MH_PORT not in scheduler_flags_in_use(vs):
        yield _error(
            (*base, "scheduler_flags"), f"scale-out mode (bgp) needs mh-port: {_MH_PORT_REASON}"
        )
    if vs.forwarding not in (Forwarding.DR, Forwarding.TUN):
        yield _error(
            (*base, "forwarding"),
            f"scale-out mode (bgp) needs dr or tun, not {vs.forwarding.value}: "
            "another director cannot carry on a flow whose NAT state it does not hold",
        )
    for rs_index, rs in enumerate(vs.real_servers):
        if rs.forwarding is not None and rs.forwarding not in (Forwarding.DR, Forwarding.TUN):
            yield _error(
                (*base, "real_servers", rs_index, "forwarding"),
                f"scale-out mode (bgp) needs dr or tun, not {rs.forwarding.value}: "
                "another director cannot carry on a flow whose NAT state it does not hold",
            )
