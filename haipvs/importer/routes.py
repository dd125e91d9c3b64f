"""keepalived ``virtual_routes`` / ``virtual_rules`` entries -> haipvs ``routes`` / ``rules``.

Pure: one entry's words in, the YAML item and what could not be carried out. The words
are read as keepalived's ``alloc_route`` / ``alloc_rule`` read them (vrrp_iproute.c,
vrrp_iprule.c), so an entry keepalived itself rejects with a config error (and then
runs without) is *dropped* with that reason, an option keepalived applies that haipvs
does not offer is *unsupported*, and a spelling haipvs takes differently is a *note*.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Translated", "route_item", "rule_item"]

Kind = Literal["note", "dropped", "unsupported"]

#: iproute2's /etc/iproute2/rt_tables names every host has.
_TABLES = {"main": 254, "local": 255, "default": 253}
_ROUTE_TYPES = {"unicast", "blackhole", "unreachable", "prohibit", "throw"}
#: Route types keepalived takes that a director has no use for here.
_OTHER_ROUTE_TYPES = {"local", "broadcast", "anycast", "multicast", "nat", "xresolve"}
_SCOPES = {
    "global": "universe",
    "universe": "universe",
    "site": "site",
    "link": "link",
    "host": "host",
}
#: `ip route` options keepalived passes to the kernel that haipvs does not set.
_ROUTE_UNOFFERED_VALUE = {
    "tos",
    "dsfield",
    "from",
    "as",
    "realms",
    "mtu",
    "advmss",
    "rtt",
    "rttvar",
    "reordering",
    "window",
    "cwnd",
    "ssthresh",
    "initcwnd",
    "initrwnd",
    "rto_min",
    "features",
    "congctl",
    "pref",
    "ttl-propagate",
    "expires",
    "encap",
    "vrf",
    "track_group",
    "hoplimit",
    "lock",
}
_ROUTE_UNOFFERED_FLAG = {"onlink", "quickack", "fastopen_no_cookie"}
_RULE_UNOFFERED_VALUE = {
    "tos",
    "dsfield",
    "realms",
    "suppress_prefixlength",
    "sup_pl",
    "suppress_ifgroup",
    "sup_group",
    "tunnel-id",
    "uidrange",
    "protocol",
    "ipproto",
    "sport",
    "dport",
    "track_group",
    "goto",
}
_RULE_UNOFFERED_FLAG = {"l3mdev", "nop"}


@dataclass(slots=True)
class Translated:
    """One entry's item (None: not carried over) and the findings about it."""

    item: dict[str, Any] | None = None
    findings: list[tuple[Kind, str]] = field(default_factory=list)

    def add(self, kind: Kind, message: str) -> None:
        self.findings.append((kind, message))

    def refuse(self, kind: Kind, message: str) -> Translated:
        self.item = None
        self.add(kind, message)
        return self


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _prefix(text: str, family: int | None) -> str | None:
    """keepalived's parse_route: an address/prefix, a bare address (a host route), or
    default / any / all. None: not a prefix keepalived reads."""
    if text in {"default", "any", "all"}:
        return "::/0" if family == 6 else "0.0.0.0/0"
    try:
        return str(ipaddress.ip_network(text, strict=True))
    except ValueError:
        return None


def _table(text: str) -> int | None:
    if text in _TABLES:
        return _TABLES[text]
    if text.isdigit() and 1 <= int(text) <= 4294967295:
        return int(text)
    return None


def _number(text: str) -> int | None:
    return int(text) if text.isdigit() and int(text) <= 4294967295 else None


def route_item(words: list[str]) -> Translated:
    """One ``virtual_routes`` line (its words, keyword first) -> a ``routes`` item."""
    out = Translated()
    item: dict[str, Any] = {}
    family: int | None = None
    hops: list[dict[str, Any]] = []
    i = 0
    while i < len(words):
        word = words[i]
        value = words[i + 1] if i + 1 < len(words) else None
        if word in {"inet", "inet6"}:
            family = 6 if word == "inet6" else 4
            i += 1
            continue
        if word in {"src", "via", "gw", "or"} and value is not None:
            address = _address(value)
            if address is None:
                return out.refuse(
                    "dropped",
                    f"`{word} {value}` is not an address: keepalived reports a "
                    "config error and skips this route",
                )
            if word == "gw":
                out.add("note", "`gw` is keepalived's old spelling of `via`")
            if word == "or":
                # keepalived's older multipath form: `via A or B` is two next hops.
                if not hops and "via" in item:
                    hops.append({"via": item.pop("via")})
                hops.append({"via": str(address)})
            else:
                item["src" if word == "src" else "via"] = str(address)
            i += 2
            continue
        if word in {"dev", "oif"} and value is not None:
            item["dev"] = value
        elif word == "table" and value is not None:
            table = _table(value)
            if table is None:
                return out.refuse(
                    "unsupported",
                    f"table {value!r}: haipvs takes table numbers (and main, "
                    "local, default); use the number rt_tables gives it",
                )
            item["table"] = table
        elif word in {"metric", "priority", "preference"} and value is not None:
            metric = _number(value)
            if metric is None:
                return out.refuse(
                    "dropped",
                    f"`{word} {value}` is not a number: keepalived "
                    "reports a config error and skips this route",
                )
            item["metric"] = metric
        elif word == "scope" and value is not None:
            if value not in _SCOPES:
                return out.refuse("unsupported", f"scope {value!r} is not offered")
            if _SCOPES[value] != "universe":
                item["scope"] = _SCOPES[value]
        elif word in {"protocol", "proto"} and value is not None:
            out.add(
                "dropped",
                f"`{word} {value}`: haipvs installs its routes as `proto keepalived` (18), "
                "keepalived's default",
            )
        elif word == "nexthop":
            parsed = _nexthops(words[i:], out)
            if parsed is None:
                return out
            hops.extend(parsed)
            break
        elif word == "no_track":
            out.add("note", "haipvs never watches its routes, so `no_track` is how it runs")
            i += 1
            continue
        elif word in {"add", "prepend", "append"}:
            out.add(
                "note",
                f"`{word}`: haipvs adds routes like `ip route add` and leaves "
                "another route with the same prefix, table and metric alone",
            )
            i += 1
            continue
        elif word in _ROUTE_UNOFFERED_VALUE or word in _ROUTE_UNOFFERED_FLAG:
            return out.refuse("unsupported", f"route option {word!r} is not offered")
        else:
            consumed = _destination(words, i, family, item, out)
            if consumed is None:
                return out
            i += consumed
            continue
        i += 2
    if "to" not in item:
        return out.refuse(
            "dropped", "has no destination: keepalived reports a config error and skips this route"
        )
    version = ipaddress.ip_network(item["to"]).version
    addresses = [item.get("via"), item.get("src"), *(hop.get("via") for hop in hops)]
    if any(
        text is not None and ipaddress.ip_address(text).version != version for text in addresses
    ):
        return out.refuse(
            "dropped",
            "mixes IPv4 and IPv6 addresses: keepalived reports "
            '"Cannot mix IPv4 and IPv6 addresses for route" and skips it',
        )
    if hops:
        if len(hops) == 1:
            item.update(hops[0])
        else:
            item["nexthops"] = hops
    out.item = _ordered(
        item, ("to", "type", "via", "dev", "nexthops", "src", "table", "metric", "scope")
    )
    return out


def _destination(
    words: list[str], i: int, family: int | None, item: dict[str, Any], out: Translated
) -> int | None:
    """`[to] [TYPE] PREFIX`: how many words it took, or None (refused in ``out``)."""
    start = i
    if words[i] == "to":
        i += 1
    if i < len(words) and words[i] in _OTHER_ROUTE_TYPES:
        out.refuse("unsupported", f"route type {words[i]!r} is not offered")
        return None
    if i < len(words) and words[i] in _ROUTE_TYPES:
        if words[i] != "unicast":
            item["type"] = words[i]
        i += 1
    if i >= len(words):
        out.refuse(
            "dropped", "has no destination: keepalived reports a config error and skips this route"
        )
        return None
    prefix = _prefix(words[i], family)
    if prefix is None:
        out.refuse(
            "dropped",
            f"unknown route keyword {words[i]!r} (not a prefix): keepalived "
            "reports a config error and skips this route",
        )
        return None
    item["to"] = prefix
    return i + 1 - start


def _nexthops(words: list[str], out: Translated) -> list[dict[str, Any]] | None:
    """`nexthop via A dev D weight W nexthop ...` (keepalived parse_nexthops)."""
    hops: list[dict[str, Any]] = []
    i = 0
    while i < len(words):
        if words[i] != "nexthop":
            out.refuse(
                "dropped",
                f"trailing {words[i]!r} after the next hops: keepalived "
                "reports a config error and skips this route",
            )
            return None
        hop: dict[str, Any] = {}
        i += 1
        while i < len(words) and words[i] != "nexthop":
            word = words[i]
            value = words[i + 1] if i + 1 < len(words) else None
            if word == "via" and value is not None and _address(value) is not None:
                hop["via"] = value
            elif word == "dev" and value is not None:
                hop["dev"] = value
            elif (
                word == "weight"
                and value is not None
                and value.isdigit()
                and (1 <= int(value) <= 256)
            ):
                hop["weight"] = int(value)
            else:
                out.refuse("unsupported", f"next hop option {word!r} is not offered")
                return None
            i += 2
        hops.append(hop)
    return hops


def rule_item(words: list[str]) -> Translated:
    """One ``virtual_rules`` line (its words, keyword first) -> a ``rules`` item."""
    out = Translated()
    item: dict[str, Any] = {}
    family: int | None = None
    i = 0
    while i < len(words):
        word = words[i]
        value = words[i + 1] if i + 1 < len(words) else None
        if word in {"inet", "inet6"}:
            family = 6 if word == "inet6" else 4
            i += 1
            continue
        if word == "not":
            item["invert"] = True
            i += 1
            continue
        if word in {"from", "to"} and value is not None:
            if value in {"all", "any", "default"}:
                i += 2
                continue
            prefix = _prefix(value, family)
            if prefix is None:
                return out.refuse(
                    "dropped",
                    f"`{word} {value}` is not a prefix: keepalived reports "
                    f'"Invalid rule {word} address" and runs without this rule',
                )
            item["source" if word == "from" else "destination"] = prefix
        elif word in {"table", "lookup"} and value is not None:
            table = _table(value)
            if table is None:
                return out.refuse(
                    "unsupported",
                    f"table {value!r}: haipvs takes table numbers (and main, "
                    "local, default); use the number rt_tables gives it",
                )
            item["table"] = table
        elif word in {"preference", "order", "priority", "pref"} and value is not None:
            number = _number(value)
            if number is None:
                return out.refuse(
                    "dropped",
                    f"`{word} {value}` is not a number: keepalived "
                    "reports a config error and skips this rule",
                )
            item["priority"] = number
        elif word in {"dev", "iif"} and value is not None:
            item["iif"] = value
        elif word == "oif" and value is not None:
            item["oif"] = value
        elif word == "fwmark" and value is not None:
            mark, _, mask = value.partition("/")
            try:
                item["fwmark"] = int(mark, 0)
                if mask:
                    item["fwmask"] = int(mask, 0)
            except ValueError:
                return out.refuse(
                    "dropped",
                    f"fwmark {value!r} is not a number: keepalived "
                    "reports a config error and skips this rule",
                )
        elif word == "no_track":
            out.add("note", "haipvs never watches its rules, so `no_track` is how it runs")
            i += 1
            continue
        elif word == "type" and value in {"blackhole", "unreachable", "prohibit"}:
            item["action"] = value
        elif word in {"blackhole", "unreachable", "prohibit"}:
            item["action"] = word
            i += 1
            continue
        elif word in _RULE_UNOFFERED_VALUE or word in _RULE_UNOFFERED_FLAG:
            return out.refuse("unsupported", f"rule option {word!r} is not offered")
        else:
            return out.refuse(
                "dropped",
                f"unknown rule option {word!r}: keepalived reports a "
                "config error and skips this rule",
            )
        i += 2
    versions = {
        ipaddress.ip_network(item[key]).version for key in ("source", "destination") if key in item
    }
    if len(versions) > 1:
        return out.refuse(
            "dropped",
            'mixes IPv4 and IPv6: keepalived reports "rule '
            'specification has mixed IPv4 and IPv6" and skips this rule',
        )
    if "table" not in item and "action" not in item:
        return out.refuse(
            "dropped",
            'has no table and no action: keepalived ignores it ("No action specified for rule")',
        )
    if "table" in item and "action" in item:
        return out.refuse(
            "dropped",
            "has a table and a blackhole/unreachable/prohibit action: "
            "keepalived reports a config error and skips this rule",
        )
    if family == 6 and "source" not in item and "destination" not in item:
        item["family"] = "ipv6"
    out.item = _ordered(
        item,
        (
            "source",
            "destination",
            "family",
            "iif",
            "oif",
            "fwmark",
            "fwmask",
            "invert",
            "priority",
            "table",
            "action",
        ),
    )
    return out


def _ordered(item: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The item's keys in the docs' order, so the output reads like the reference."""
    return {key: item[key] for key in keys if key in item}
