"""The keyed diff a reload acts on, and the dump/load round trip (hypothesis)."""

from __future__ import annotations

import textwrap
from ipaddress import ip_address
from typing import Any

import yaml
from config_strategies import configs
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from haipvs.config import Config, dump_config, load_config_text
from haipvs.config.diff import (
    CheckKey,
    InstanceKey,
    RealServerKey,
    ServiceKey,
    diff_configs,
    real_server_key,
    service_key,
)
from haipvs.config.model import Family, Protocol

BASE = """\
vrrp:
  - name: VI_1
    interface: eth0
    vrid: 51
    vips: [198.51.100.10/24]
virtual_servers:
  - name: web
    vip: 198.51.100.10
    port: 80
    check: {type: http, path: /healthz, interval: 2.0, timeout: 1.0}
    real_servers:
      - {address: 10.0.0.11, port: 8080}
      - {address: 10.0.0.12, port: 8080}
  - name: dns
    vip: 198.51.100.10
    port: 53
    protocol: udp
    real_servers: [{address: 10.0.0.21}]
"""


def load(text: str) -> Config:
    return load_config_text(textwrap.dedent(text)).config


def edit(text: str, old: str, new: str) -> Config:
    assert old in text
    return load(text.replace(old, new))


WEB = ServiceKey(Family.IPV4, Protocol.TCP, ip_address("198.51.100.10"), 80)
DNS = ServiceKey(Family.IPV4, Protocol.UDP, ip_address("198.51.100.10"), 53)
RS11 = RealServerKey(WEB, ip_address("10.0.0.11"), 8080)
RS12 = RealServerKey(WEB, ip_address("10.0.0.12"), 8080)


def test_a_config_against_itself_is_empty() -> None:
    config = load(BASE)
    delta = diff_configs(config, config)
    assert delta.is_empty
    assert list(delta.virtual_services.unchanged) == [WEB, DNS]
    assert list(delta.real_servers.unchanged) == [
        RS11,
        RS12,
        RealServerKey(DNS, ip_address("10.0.0.21"), 53),
    ]
    assert [str(key) for key in delta.checks.unchanged] == [
        "tcp/198.51.100.10:80/10.0.0.11:8080/http",
        "tcp/198.51.100.10:80/10.0.0.12:8080/http",
    ]


def test_a_weight_change_is_one_changed_real_server_only() -> None:
    old = load(BASE)
    new = edit(
        BASE, "{address: 10.0.0.12, port: 8080}", "{address: 10.0.0.12, port: 8080, weight: 5}"
    )
    delta = diff_configs(old, new)
    assert list(delta.real_servers.changed) == [RS12]
    change = delta.real_servers.changed[RS12]
    assert (change.old.weight, change.new.weight) == (1, 5)
    assert delta.virtual_services.is_empty
    assert delta.checks.is_empty
    assert delta.vrrp_instances.is_empty


def test_new_check_settings_replace_the_checks_and_leave_the_servers_alone() -> None:
    old = load(BASE)
    new = edit(BASE, "interval: 2.0, timeout: 1.0", "interval: 3.0, timeout: 1.0")
    delta = diff_configs(old, new)
    assert [key.real_server for key in delta.checks.removed] == [RS11, RS12]
    assert [key.real_server for key in delta.checks.added] == [RS11, RS12]
    assert all(key.check.interval == 3.0 for key in delta.checks.added)
    assert delta.checks.changed == {}
    assert delta.real_servers.is_empty
    assert delta.virtual_services.is_empty


def test_order_and_spelled_out_defaults_do_not_count_as_changes() -> None:
    old = load(BASE)
    reordered = BASE.replace(
        "      - {address: 10.0.0.11, port: 8080}\n      - {address: 10.0.0.12, port: 8080}\n",
        "      - {address: 10.0.0.12, port: 8080, weight: 1}\n"
        "      - {address: 10.0.0.11, port: 8080}\n",
    ).replace(
        "real_servers: [{address: 10.0.0.21}]", "real_servers: [{address: 10.0.0.21, port: 53}]"
    )
    assert diff_configs(old, load(reordered)).is_empty


def test_renaming_an_instance_changes_it_and_a_new_vrid_replaces_it() -> None:
    old = load(BASE)
    renamed = diff_configs(old, edit(BASE, "name: VI_1", "name: VI_WEB"))
    key = InstanceKey("eth0", 51, Family.IPV4)
    assert list(renamed.vrrp_instances.changed) == [key]
    assert renamed.vrrp_instances.changed[key].new.name == "VI_WEB"

    assert renamed.vrrp_instances.changed[key].fields == ("name",)

    reprioritised = diff_configs(old, edit(BASE, "vrid: 51\n", "vrid: 51\n    priority: 120\n"))
    assert reprioritised.vrrp_instances.changed[key].fields == ("priority",)

    moved = diff_configs(old, edit(BASE, "vrid: 51", "vrid: 52"))
    assert list(moved.vrrp_instances.removed) == [key]
    assert list(moved.vrrp_instances.added) == [InstanceKey("eth0", 52, Family.IPV4)]


def test_moving_a_service_to_another_port_replaces_it_and_its_real_servers() -> None:
    old = load(BASE)
    new = edit(BASE, "port: 80\n", "port: 8000\n")
    delta = diff_configs(old, new)
    moved = ServiceKey(Family.IPV4, Protocol.TCP, ip_address("198.51.100.10"), 8000)
    assert list(delta.virtual_services.removed) == [WEB]
    assert list(delta.virtual_services.added) == [moved]
    assert list(delta.real_servers.removed) == [RS11, RS12]
    assert [key.service for key in delta.real_servers.added] == [moved, moved]
    assert list(delta.virtual_services.unchanged) == [DNS]


def test_a_service_setting_changes_the_service_not_its_real_servers() -> None:
    old = load(BASE)
    delta = diff_configs(old, edit(BASE, "    port: 80\n", "    port: 80\n    scheduler: rr\n"))
    assert list(delta.virtual_services.changed) == [WEB]
    assert delta.real_servers.is_empty and delta.checks.is_empty


def test_forwarding_of_the_service_reaches_the_real_servers_that_inherit_it() -> None:
    old = load(BASE)
    # nat -> tun on the dns service: the kernel's dests change their forwarding too.
    new = edit(BASE, "    protocol: udp\n", "    protocol: udp\n    forwarding: tun\n")
    delta = diff_configs(old, new)
    assert list(delta.virtual_services.changed) == [DNS]
    assert list(delta.real_servers.changed) == [RealServerKey(DNS, ip_address("10.0.0.21"), 53)]


def test_director_and_ipvs_blocks_are_compared_whole() -> None:
    old = load(BASE)
    new = load("director: {log_level: debug}\nipvs: {timeouts: {tcp: 900}}\n" + BASE)
    delta = diff_configs(old, new)
    assert delta.director is not None and delta.director.new.log_level.value == "debug"
    assert delta.ipvs is not None and delta.ipvs.new.timeouts.tcp == 900
    assert not delta.is_empty


def test_keys_render_as_the_log_keys() -> None:
    config = load(BASE)
    web = config.virtual_servers[0]
    assert str(service_key(web)) == "tcp/198.51.100.10:80"
    assert real_server_key(web, web.real_servers[0]).rs == "10.0.0.11:8080"
    six = load(
        "virtual_servers: [{vip: '2001:db8::1', port: 443,"
        " real_servers: [{address: '2001:db8::2'}]}]"
    )
    vs = six.virtual_servers[0]
    assert str(real_server_key(vs, vs.real_servers[0])) == "tcp/[2001:db8::1]:443/[2001:db8::2]:443"
    mark = load("virtual_servers: [{fwmark: 7, family: ipv6}]").virtual_servers[0]
    assert str(service_key(mark)) == "fwmark6/7"
    assert isinstance(next(iter(diff_configs(config, config).checks.unchanged)), CheckKey)


# --------------------------------------------------------------------------------------------
# Property: any valid config round-trips through dump/load unchanged, and diff(c, c) is empty.


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
def test_any_valid_config_round_trips_and_diffs_empty_against_itself(data: dict[str, Any]) -> None:
    config = load_config_text(yaml.safe_dump(data)).config
    text = dump_config(config)
    again = load_config_text(text).config
    assert again == config
    assert dump_config(again) == text
    assert diff_configs(config, config).is_empty
    assert diff_configs(config, again).is_empty


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs(), st.data())
def test_one_edit_is_exactly_one_change(data: dict[str, Any], pick: st.DataObject) -> None:
    config = load_config_text(yaml.safe_dump(data)).config
    located = [
        (vs_index, rs_index)
        for vs_index, vs in enumerate(config.virtual_servers)
        for rs_index in range(len(vs.real_servers))
    ]
    assume(located)
    vs_index, rs_index = pick.draw(st.sampled_from(located))
    vs = config.virtual_servers[vs_index]
    rs = vs.real_servers[rs_index]
    data["virtual_servers"][vs_index]["real_servers"][rs_index]["weight"] = rs.weight + 1
    delta = diff_configs(config, load_config_text(yaml.safe_dump(data)).config)
    assert list(delta.real_servers.changed) == [real_server_key(vs, rs)]
    assert delta.real_servers.changed[real_server_key(vs, rs)].new.weight == rs.weight + 1
    assert delta.virtual_services.is_empty and delta.checks.is_empty
    assert delta.vrrp_instances.is_empty and delta.sync_groups.is_empty

    # Removing that service removes it, all its real servers and all their checks.
    del data["virtual_servers"][vs_index]
    delta = diff_configs(config, load_config_text(yaml.safe_dump(data)).config)
    assert list(delta.virtual_services.removed) == [service_key(vs)]
    assert set(delta.real_servers.removed) == {real_server_key(vs, r) for r in vs.real_servers}
    assert {key.real_server for key in delta.checks.removed} == {
        real_server_key(vs, r) for r in vs.real_servers if vs.real_server_check(r) is not None
    }
    assert not (delta.real_servers.added or delta.checks.added or delta.virtual_services.changed)
