"""keepalived virtual_routes / virtual_rules lines -> haipvs routes / rules items, read as
keepalived's alloc_route / alloc_rule read them; and SMTP_CHECK's older `host {}` blocks."""

from __future__ import annotations

from typing import Any

import pytest

from haipvs.config import load_config_text
from haipvs.importer import Severity, parse_text, render_yaml, translate
from haipvs.importer.routes import route_item, rule_item


@pytest.mark.parametrize(
    ("line", "item"),
    [
        (
            "src 192.168.100.1 192.168.109.0/24 via 192.168.200.254 dev eth1",
            {
                "to": "192.168.109.0/24",
                "via": "192.168.200.254",
                "dev": "eth1",
                "src": "192.168.100.1",
            },
        ),
        ("192.168.111.0/24 dev eth2", {"to": "192.168.111.0/24", "dev": "eth2"}),
        (
            "192.168.113.0/24 via 192.168.100.252 or 192.168.100.253",
            {
                "to": "192.168.113.0/24",
                "nexthops": [{"via": "192.168.100.252"}, {"via": "192.168.100.253"}],
            },
        ),
        ("blackhole 192.168.113.1/32", {"to": "192.168.113.1/32", "type": "blackhole"}),
        (
            "to unreachable 10.0.0.0/8 table 7",
            {"to": "10.0.0.0/8", "type": "unreachable", "table": 7},
        ),
        (
            "0.0.0.0/0 gw 192.168.0.1 table 100",
            {"to": "0.0.0.0/0", "via": "192.168.0.1", "table": 100},
        ),
        (
            "default via 192.0.2.1 table main metric 5",
            {"to": "0.0.0.0/0", "via": "192.0.2.1", "table": 254, "metric": 5},
        ),
        ("inet6 default via 2001:db8::1", {"to": "::/0", "via": "2001:db8::1"}),
        (
            "192.168.212.0/24 dev eth3 scope site",
            {"to": "192.168.212.0/24", "dev": "eth3", "scope": "site"},
        ),
        ("192.0.2.7 dev eth0 scope global", {"to": "192.0.2.7/32", "dev": "eth0"}),
        (
            "10.0.0.0/8 nexthop via 192.0.2.1 dev eth0 weight 2 nexthop via 192.0.2.2",
            {
                "to": "10.0.0.0/8",
                "nexthops": [
                    {"via": "192.0.2.1", "dev": "eth0", "weight": 2},
                    {"via": "192.0.2.2"},
                ],
            },
        ),
    ],
)
def test_routes_translate_as_keepalived_reads_them(line: str, item: dict[str, Any]) -> None:
    translated = route_item(line.split())
    assert translated.item == item
    assert all(kind == "note" for kind, _ in translated.findings)


@pytest.mark.parametrize(
    ("line", "kind", "message"),
    [
        (
            "192.0.2.0/24 via 192.0.2.1 onlink",
            "unsupported",
            "route option 'onlink' is not offered",
        ),
        ("192.0.2.0/24 via 192.0.2.1 mtu 1400", "unsupported", "route option 'mtu'"),
        ("local 192.0.2.1 dev eth0", "unsupported", "route type 'local' is not offered"),
        ("192.0.2.0/24 dev eth0 table vrf_blue", "unsupported", "table 'vrf_blue'"),
        ("192.0.2./24 dev eth0", "dropped", "unknown route keyword '192.0.2./24'"),
        ("192.0.2.1/24 dev eth0", "dropped", "unknown route keyword '192.0.2.1/24'"),
        ("192.0.2.0/24 via 2001:db8::1", "dropped", "Cannot mix IPv4 and IPv6"),
        ("via 192.0.2.1", "dropped", "has no destination"),
    ],
)
def test_routes_keepalived_skips_are_dropped_and_unoffered_ones_refused(
    line: str, kind: str, message: str
) -> None:
    translated = route_item(line.split())
    assert translated.item is None
    assert [k for k, _ in translated.findings] == [kind]
    assert message in translated.findings[0][1]


@pytest.mark.parametrize(
    ("line", "item"),
    [
        ("from 192.168.200.0/24 table 2", {"source": "192.168.200.0/24", "table": 2}),
        (
            "from all to 10.0.0.0/8 lookup 100 priority 50",
            {"destination": "10.0.0.0/8", "priority": 50, "table": 100},
        ),
        (
            "not from 192.0.2.0/24 iif eth0 oif eth1 fwmark 0x10/0xff pref 7 table main",
            {
                "source": "192.0.2.0/24",
                "iif": "eth0",
                "oif": "eth1",
                "fwmark": 16,
                "fwmask": 255,
                "invert": True,
                "priority": 7,
                "table": 254,
            },
        ),
        ("inet6 fwmark 3 table 9", {"family": "ipv6", "fwmark": 3, "table": 9}),
        ("from 2001:db8::/64 prohibit", {"source": "2001:db8::/64", "action": "prohibit"}),
        ("to 10.0.0.0/8 type blackhole", {"destination": "10.0.0.0/8", "action": "blackhole"}),
    ],
)
def test_rules_translate_as_keepalived_reads_them(line: str, item: dict[str, Any]) -> None:
    translated = rule_item(line.split())
    assert translated.item == item
    assert translated.findings == []


@pytest.mark.parametrize(
    ("line", "kind", "message"),
    [
        ("to 192.168.200./24 table 2", "dropped", 'keepalived reports "Invalid rule to address"'),
        ("from 192.0.2.0/24", "dropped", "has no table and no action"),
        ("from 192.0.2.0/24 to 2001:db8::/64 table 2", "dropped", "mixed IPv4 and IPv6"),
        ("from 192.0.2.0/24 goto 100", "unsupported", "rule option 'goto' is not offered"),
        ("from 192.0.2.0/24 uidrange 1-2 table 2", "unsupported", "rule option 'uidrange'"),
        ("from 192.0.2.0/24 frob table 2", "dropped", "unknown rule option 'frob'"),
    ],
)
def test_rules_keepalived_skips_are_dropped_and_unoffered_ones_refused(
    line: str, kind: str, message: str
) -> None:
    translated = rule_item(line.split())
    assert translated.item is None
    assert [k for k, _ in translated.findings] == [kind]
    assert message in translated.findings[0][1]


ROUTED = """\
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    virtual_ipaddress {
        192.0.2.10/24
    }
    virtual_routes {
        192.0.2.0/25 via 192.0.2.254 table 100   # the return path
        192.0.2.128/25 via 192.0.2.254 onlink
    }
    virtual_rules {
        from 192.0.2.10 table 100
        to 192.168.200./24 table 2
    }
}
"""


def test_each_routing_line_is_reported_at_its_own_line_and_the_rest_validates() -> None:
    t = translate(parse_text(ROUTED, "k.conf"), "k.conf")
    located = [(f.severity, f.location.line) for f in t.findings if f.severity is not Severity.NOTE]
    assert located == [(Severity.UNSUPPORTED, 9), (Severity.DROPPED, 13)]
    (instance,) = t.config["vrrp"]
    assert instance["routes"] == [{"to": "192.0.2.0/25", "via": "192.0.2.254", "table": 100}]
    assert instance["rules"] == [{"source": "192.0.2.10/32", "table": 100}]
    text = render_yaml(t)
    assert "the return path" in text  # the line's comment is carried over
    config = load_config_text(text, "out.yaml").config
    assert config.vrrp[0].routes[0].table == 100


SMTP = """\
virtual_server 192.0.2.1 25 {
    real_server 10.0.0.1 25 {
        SMTP_CHECK {
            host {
                connect_ip 10.0.0.1
                connect_port 587
                bindto 10.0.0.250
            }
            host {
                connect_ip 10.9.9.9
            }
        }
    }
}
"""


def test_smtp_host_blocks_check_the_real_server_and_drop_the_other_hosts() -> None:
    t = translate(parse_text(SMTP, "k.conf"), "k.conf")
    check = t.config["virtual_servers"][0]["check"]
    assert (check["type"], check["port"]) == ("smtp", 587)
    dropped = [(f.location.line, f.message) for f in t.findings if f.severity is Severity.DROPPED]
    assert dropped[0][0] == 7 and "routing table picks" in dropped[0][1]
    assert dropped[1] == (
        9,
        "only the real server's own address is checked; keepalived also wanted 10.9.9.9:25 "
        "to answer: the check is weaker",
    )
    assert t.unsupported == ()
    load_config_text(render_yaml(t), "out.yaml")


VMAC = """\
vrrp_instance VI_1 {{
    interface eth0
    virtual_router_id 51
    {vmac}
    virtual_ipaddress {{
        {vip}
    }}
}}
"""


@pytest.mark.parametrize(
    ("vmac", "vip", "out", "found"),
    [
        ("use_vmac", "192.0.2.10/24", {}, []),
        ("use_vmac vrrp51\n    vmac_xmit_base", "192.0.2.10/24", {"name": "vrrp51",
                                                                 "xmit_base": True}, []),
        ("vmac_xmit_base", "192.0.2.10/24", None, [(Severity.DROPPED, 4, "vmac_xmit_base")]),
        ("use_vmac", "2001:db8::10/64", None, [(Severity.UNSUPPORTED, 4, "use_vmac")]),
        ("use_ipvlan", "192.0.2.10/24", {"ipvlan": True}, []),
        ("use_ipvlan vip0 bridge", "192.0.2.10/24", {"name": "vip0", "ipvlan": True}, []),
        (
            "use_ipvlan vip0 private",
            "192.0.2.10/24",
            None,
            [(Severity.UNSUPPORTED, 4, "use_ipvlan")],
        ),
        (
            "use_ipvlan vip0 192.0.2.5/24",
            "192.0.2.10/24",
            None,
            [(Severity.UNSUPPORTED, 4, "use_ipvlan")],
        ),
    ],
)
def test_use_vmac_becomes_vmac_for_ipv4_instances(
    vmac: str, vip: str, out: dict[str, Any] | None, found: list[tuple[Severity, int, str]]
) -> None:
    t = translate(parse_text(VMAC.format(vmac=vmac, vip=vip), "k.conf"), "k.conf")
    (instance,) = t.config["vrrp"]
    assert instance.get("vmac") == out
    assert [
        (f.severity, f.location.line, f.keyword)
        for f in t.findings
        if f.severity is not Severity.NOTE
    ] == found
    load_config_text(render_yaml(t), "out.yaml")


STRICT = """\
global_defs {{
    vrrp_strict
}}
vrrp_instance VI_1 {{
    interface eth0
    virtual_router_id 51
    version {version}
{body}
    virtual_ipaddress {{
        192.0.2.10/24
    }}
}}
"""


@pytest.mark.parametrize(
    ("version", "body", "keys", "found"),
    [
        (3, "    accept", {"strict": True, "accept": True}, []),
        (3, "    priority 255", {"strict": True}, []),
        (3, "", {}, [(Severity.UNSUPPORTED, 4, "vrrp_instance")]),
        (2, "    accept", {}, [(Severity.UNSUPPORTED, 4, "vrrp_instance")]),
        (
            3,
            "    accept\n    preempt_delay 5\n    authentication {\n        auth_pass x\n    }",
            {"strict": True, "preempt_delay": 0},
            [(Severity.DROPPED, 9, "preempt_delay"), (Severity.DROPPED, 10, "authentication")],
        ),
        (
            3,
            "    accept\n    unicast_peer {\n        192.0.2.2\n    }",
            {},
            [(Severity.UNSUPPORTED, 9, "unicast_peer")],
        ),
        (3, "    strict_mode off\n    no_accept", {}, [(Severity.UNSUPPORTED, 9, "no_accept")]),
    ],
)
def test_vrrp_strict_is_carried_or_refused_as_keepalived_applies_it(
    version: int,
    body: str,
    keys: dict[str, Any],
    found: list[tuple[Severity, int, str]],
) -> None:
    t = translate(parse_text(STRICT.format(version=version, body=body), "k.conf"), "k.conf")
    (instance,) = t.config["vrrp"]
    for key, value in keys.items():
        assert instance[key] == value
    if not keys:  # refused: the rest is printed without strict, and validates
        assert "strict" not in instance
    located = [
        (f.severity, f.location.line, f.keyword)
        for f in t.findings
        if f.severity is not Severity.NOTE
    ]
    assert located == found
    load_config_text(render_yaml(t), "out.yaml")


def test_vrrp_strict_runs_auth_hmac_in_enforce_mode_as_keepalived_does() -> None:
    # keepalived (vrrp_complete_instance): "strict mode requires auth_hmac mode enforce",
    # and the instance runs enforce; the output says so and validates.
    body = (
        "    accept\n    auth_hmac {\n"
        "        key 1 hex:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"
        "        active_key 1\n        mode permissive\n    }"
    )
    t = translate(parse_text(STRICT.format(version=3, body=body), "k.conf"), "k.conf")
    (instance,) = t.config["vrrp"]
    assert instance["strict"] is True
    assert instance["auth_hmac"]["mode"] == "enforce"
    (note,) = [f for f in t.findings if f.severity is Severity.NOTE and "enforce" in f.message]
    assert note.location.line == 9
    load_config_text(render_yaml(t), "out.yaml")
