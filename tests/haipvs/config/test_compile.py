"""compile: a validated Config becomes exactly the settings vrrp, checkers and ipvs take."""

from __future__ import annotations

import textwrap
from ipaddress import ip_address, ip_interface
from pathlib import Path
from typing import Any

import pytest
import yaml
from config_strategies import configs
from hypothesis import HealthCheck, given, settings

import checkers
import haipvs.config.compile as compile_module
import vrrp
from haipvs.config import ConfigInvalid, load_config, load_config_text
from haipvs.config.compile import Compiled, CompileError, compile_config, ipvs_service_key
from haipvs.config.model import Config, VrrpInstance
from haipvs.ipvs import (
    Dest,
    DestKey,
    Family,
    Forwarding,
    IpvsTimeouts,
    ServiceKey,
    TunFlags,
    TunType,
)

ROOT = Path(__file__).resolve().parents[3]


def compiled(name: str) -> Compiled:
    path = ROOT / "etc" / name
    return compile_config(load_config(path).config, hostname="testhost")


def test_the_nat_pair_becomes_two_synced_instances() -> None:
    result = compiled("haipvs.yaml")
    assert result.director == "lb1"
    public, gateway = result.instances
    assert isinstance(public, vrrp.InstanceSettings)
    assert (public.name, public.interface, public.vrid, public.priority) == (
        "VI_PUBLIC",
        "eth0",
        51,
        150,
    )
    assert public.vips == (vrrp.VipSpec(ip_interface("198.51.100.10/24")),)
    assert gateway.vips == (vrrp.VipSpec(ip_interface("10.0.0.1/24")),)
    assert public.sync_group == gateway.sync_group == "NAT_PAIR"
    assert public.preempt_delay == 30.0
    assert public.track_interfaces == (vrrp.TrackInterface("eth1", -60),)
    assert public.notify is not None
    assert public.notify.master == ("/usr/local/bin/haipvs-notify", "master", "VI_PUBLIC")
    assert gateway.notify is None


def test_the_nat_pair_services_dests_and_sorry_server() -> None:
    result = compiled("haipvs.yaml")
    web, tls, dns = result.services
    assert web.key == ServiceKey.tcp("198.51.100.10", 80)
    assert web.service.scheduler == "wlc"
    assert web.service.persistence_timeout == 0
    assert web.real_servers == (
        Dest(DestKey("10.0.0.11", 8080), weight=1, forwarding=Forwarding.MASQ),
        Dest(DestKey("10.0.0.12", 8080), weight=1, forwarding=Forwarding.MASQ),
        Dest(DestKey("10.0.0.13", 8080), weight=2, forwarding=Forwarding.MASQ),
    )
    assert web.sorry_server == Dest(DestKey("10.0.0.250", 8080), forwarding=Forwarding.MASQ)
    assert (web.min_up, web.drain_timeout, web.inhibit_on_failure) == (1, 30.0, False)
    assert tls.service.persistence_timeout == 300
    assert dns.key == ServiceKey.udp("198.51.100.10", 53)
    assert dns.service.flags.one_packet is True
    assert dns.real_servers[0].key == DestKey("10.0.0.21", 53)
    assert result.owned == {web.key, tls.key, dns.key}
    assert result.service_names[web.key] == "web"
    assert result.timeouts == IpvsTimeouts(tcp=900, tcp_fin=120, udp=300)
    assert result.sync_daemon is not None
    assert (result.sync_daemon.interface, result.sync_daemon.instance) == ("eth1", "VI_GATEWAY")
    assert result.sync_daemon.syncid == 51


def test_the_nat_pair_checks_and_how_health_reaches_the_table() -> None:
    result = compiled("haipvs.yaml")
    backend = checkers.BackendId("tcp/198.51.100.10:80", ip_address("10.0.0.11"), 8080)
    target, spec = result.checks[backend]
    assert target == checkers.Target(ip_address("10.0.0.11"), 8080)
    assert isinstance(spec, checkers.HttpCheck)
    assert (spec.tls, spec.path, spec.expect_status) == (False, "/healthz", ((200, 200),))
    assert spec.timing == checkers.Timing(interval=2.0, timeout=1.0, rise=2, fall=3)
    assert result.backends[backend] == (
        ServiceKey.tcp("198.51.100.10", 80),
        DestKey("10.0.0.11", 8080),
    )
    dns_backend = checkers.BackendId("udp/198.51.100.10:53", ip_address("10.0.0.21"), 53)
    dns_target, dns_spec = result.checks[dns_backend]
    assert dns_target == checkers.Target(ip_address("10.0.0.21"), 53)
    assert isinstance(dns_spec, checkers.DnsCheck)
    assert (dns_spec.query_name, dns_spec.query_type, dns_spec.expect_rcode) == (
        "example.org",
        "A",
        "NOERROR",
    )
    assert result.always_up == frozenset()
    # No `alpha` (haipvs default true): every checked backend starts down until it rises.
    assert result.up_at_start == frozenset()
    assert set(result.backends) == set(result.checks)


def test_dr_keeps_the_service_port_and_the_thresholds() -> None:
    (spec,) = compiled("examples/dr.yaml").services
    assert [dest.forwarding for dest in spec.real_servers] == [Forwarding.DROUTE] * 3
    assert [dest.key.port for dest in spec.real_servers] == [80, 80, 80]
    assert (spec.real_servers[2].u_thresh, spec.real_servers[2].l_thresh) == (500, 400)
    assert spec.inhibit_on_failure is True
    assert spec.service.scheduler == "wrr"


def test_tun_dests_carry_their_tunnels_and_families() -> None:
    (spec,) = compiled("examples/tun.yaml").services
    tunnels = [(d.key.address, d.tun_type, d.tun_port, d.tun_flags) for d in spec.real_servers]
    assert tunnels == [
        ("198.51.100.21", TunType.IPIP, 0, TunFlags.NOCSUM),
        ("198.51.100.22", TunType.GUE, 6080, TunFlags.CSUM),
        ("198.51.100.23", TunType.GRE, 0, TunFlags.REMCSUM),
        ("2001:db8:100::24", TunType.IPIP, 0, TunFlags.NOCSUM),
    ]
    assert {d.forwarding for d in spec.real_servers} == {Forwarding.TUNNEL}
    assert spec.service.flags.mh_port and spec.service.flags.mh_fallback


@pytest.mark.parametrize(("scheduler", "flags"), [
    ("mh", {"mh_fallback"}), ("sh", {"sh_fallback"}), ("wrr", set()),
])
def test_a_hash_scheduler_always_gets_its_fallback(scheduler: str, flags: set[str]) -> None:
    # A real server at weight 0 (draining, inhibit_on_failure) keeps its share of the
    # hash: without the fallback the kernel drops the new connections hashed to it.
    loaded = load_config_text(textwrap.dedent(f"""
        virtual_servers:
          - vip: 198.51.100.10
            port: 80
            scheduler: {scheduler}
            inhibit_on_failure: true
            real_servers: [{{address: 192.0.2.11}}]
    """))
    (spec,) = compile_config(loaded.config).services
    names = ("sh_fallback", "sh_port", "mh_fallback", "mh_port", "one_packet")
    assert {name for name in names if getattr(spec.service.flags, name)} == flags


def test_a_fwmark_service_checks_on_the_check_port() -> None:
    result = compiled("examples/fwmark.yaml")
    (spec,) = result.services
    assert spec.key == ServiceKey.for_fwmark(10, Family.INET)
    assert (spec.service.persistence_timeout, spec.service.prefix_length) == (600, 24)
    assert spec.service.flags.sh_fallback
    assert [dest.key for dest in spec.real_servers] == [
        DestKey("192.0.2.21", 0),
        DestKey("192.0.2.22", 0),
    ]
    target, check = result.checks[checkers.BackendId("fwmark/10", ip_address("192.0.2.21"), 0)]
    assert target.port == 0
    assert isinstance(check, checkers.HttpCheck) and check.connect_port == 80


def test_ipv6_services_and_instances() -> None:
    result = compiled("examples/ipv6.yaml")
    six, four = result.instances
    assert six.family == 6 and four.family == 4
    assert six.advert_interval == 0.5
    assert six.key[:2] == four.key[:2] == ("eth0", 91)
    web6 = result.services[0]
    assert web6.key == ServiceKey.tcp("2001:db8:10::10", 80)
    assert web6.key.family is Family.INET6
    assert web6.service.prefix_length == 64


def test_unicast_peers_garp_and_track_scripts() -> None:
    (instance,) = compiled("examples/unicast.yaml").instances
    assert instance.unicast_source == ip_address("192.0.2.2")
    assert instance.unicast_peers == (ip_address("192.0.2.3"),)
    assert (instance.garp_repeat, instance.garp_master_refresh) == (3, 60.0)
    (script,) = instance.track_scripts
    assert script.command == ("/usr/local/bin/check-uplink", "--gateway", "192.0.2.1")
    assert (script.interval, script.timeout, script.rise, script.fall, script.weight) == (
        2.0,
        1.0,
        2,
        2,
        -50,
    )


def test_unicast_checksum_reaches_the_instance_settings() -> None:
    assert compiled("examples/unicast.yaml").instances[0].unicast_checksum is (
        vrrp.UnicastChecksum.auto
    )
    for mode in ("auto", "old", "never"):
        config = load_config_text(
            textwrap.dedent(
                f"""\
                vrrp:
                  - name: v
                    interface: eth0
                    vrid: 1
                    vips: [192.0.2.1/24]
                    unicast_peers: [192.0.2.11]
                    unicast_checksum: {mode}
                """
            )
        ).config
        (instance,) = compile_config(config).instances
        assert instance.unicast_checksum is vrrp.UnicastChecksum(mode)


def test_checks_inherit_replace_and_alpha() -> None:
    config = load_config_text(
        textwrap.dedent(
            """\
            virtual_servers:
              - name: mixed
                vip: 192.0.2.1
                port: 80
                check: {type: tcp, interval: 2.0, timeout: 1.0, alpha: true}
                real_servers:
                  - {address: 10.0.0.1}
                  - address: 10.0.0.2
                    check: {type: exec, command: [/bin/true], dynamic: true, alpha: false}
              - name: bare
                vip: 192.0.2.1
                port: 81
                real_servers: [{address: 10.0.0.3}]
            """
        )
    ).config
    result = compile_config(config)
    one = checkers.BackendId("tcp/192.0.2.1:80", ip_address("10.0.0.1"), 80)
    two = checkers.BackendId("tcp/192.0.2.1:80", ip_address("10.0.0.2"), 80)
    bare = checkers.BackendId("tcp/192.0.2.1:81", ip_address("10.0.0.3"), 81)
    assert isinstance(result.checks[one][1], checkers.TcpCheck)
    exec_check = result.checks[two][1]
    assert isinstance(exec_check, checkers.ExecCheck)
    assert exec_check.command == ("/bin/true",) and exec_check.dynamic_weight
    assert result.always_up == {bare}
    assert result.up_at_start == {two}  # alpha: true keeps `one` down; `two` said false
    assert result.director == "director"  # no director.name: the caller's host name


def test_a_value_a_settings_type_refuses_names_its_key_path() -> None:
    config = load_config_text(
        "vrrp: [{name: a, interface: eth0, vrid: 1, vips: [192.0.2.1]}]"
    ).config
    broken = Config.model_construct(
        **{
            **dict(config),
            "vrrp": (VrrpInstance.model_construct(**{**dict(config.vrrp[0]), "vrid": 0}),),
        }
    )
    with pytest.raises(CompileError) as caught:
        compile_config(broken)
    assert caught.value.key_path == ("vrrp", 0)
    assert caught.value.message == "vrid: 0 outside 1..255"


def test_the_loader_reports_a_compile_error_at_its_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(config: Config, **_: Any) -> Compiled:
        raise CompileError(("virtual_servers", 0, "port"), "refused by a settings type")

    monkeypatch.setattr(compile_module, "compile_config", refuse)
    with pytest.raises(ConfigInvalid) as caught:
        load_config_text("virtual_servers:\n  - vip: 192.0.2.1\n    port: 80\n", "t.yaml")
    assert [str(e) for e in caught.value.errors] == [
        "t.yaml:3: virtual_servers[0].port: refused by a settings type"
    ]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
def test_every_valid_config_compiles_consistently(data: dict[str, Any]) -> None:
    config = load_config_text(yaml.safe_dump(data)).config
    result = compile_config(config)
    assert len(result.instances) == len(config.vrrp)
    assert [spec.key for spec in result.services] == [
        ipvs_service_key(vs) for vs in config.virtual_servers
    ]
    table = {(spec.key, dest.key) for spec in result.services for dest in spec.real_servers}
    assert set(result.backends.values()) == table
    assert set(result.checks) | result.always_up == set(result.backends)
    assert not set(result.checks) & result.always_up
    assert result.up_at_start <= set(result.checks)


def test_track_processes_and_files_reach_the_instance_settings() -> None:
    from haipvs.config import compile_config, load_config_text

    text = """\
vrrp:
  - name: VI_1
    interface: eth0
    vrid: 51
    vips: [198.51.100.10/24]
    track:
      processes:
        - name: haproxy
          process: /usr/sbin/haproxy
          args: [-f, /etc/haproxy/haproxy.cfg]
          param_match: partial
          weight: -20
          quorum: 1
          quorum_max: 4
          fork_delay: 0.5
          terminate_delay: 2
      files:
        - name: maintenance
          path: /run/haipvs/maintenance
          weight: 0
"""
    import vrrp

    (instance,) = compile_config(load_config_text(text, "t.yaml").config).instances
    assert instance.track_processes == (
        vrrp.TrackProcess(
            name="haproxy",
            process="/usr/sbin/haproxy",
            args=("-f", "/etc/haproxy/haproxy.cfg"),
            param_match=vrrp.ParamMatch.PARTIAL,
            weight=-20,
            quorum=1,
            quorum_max=4,
            fork_delay=0.5,
            terminate_delay=2.0,
        ),
    )
    assert instance.track_files == (
        vrrp.TrackFile("maintenance", "/run/haipvs/maintenance", weight=0),
    )


def test_sync_group_notify_reaches_every_member() -> None:
    from haipvs.config import compile_config, load_config_text

    text = """\
vrrp:
  - {name: A, interface: eth0, vrid: 1, vips: [198.51.100.10/24]}
  - {name: B, interface: eth0, vrid: 2, vips: [198.51.100.11/24]}
  - {name: C, interface: eth0, vrid: 3, vips: [198.51.100.12/24]}
sync_groups:
  - name: G
    instances: [A, B]
    notify: {master: [/usr/local/bin/announce], timeout: 5}
"""
    import vrrp

    a, b, c = compile_config(load_config_text(text, "t.yaml").config).instances
    expected = vrrp.NotifySettings(master=("/usr/local/bin/announce",), timeout=5.0)
    assert a.sync_group_notify == b.sync_group_notify == expected
    assert (a.sync_group, c.sync_group, c.sync_group_notify) == ("G", None, None)


def test_smtp_and_ping_checks_reach_the_checkers() -> None:
    text = textwrap.dedent(
        """
        virtual_servers:
          - name: mail
            vip: 198.51.100.10
            port: 25
            check: {type: smtp, helo_name: director1.example.org, timeout: 2}
            real_servers:
              - address: 10.0.0.11
              - address: 10.0.0.12
                check: {type: ping, interval: 2, timeout: 1}
          - name: relay
            vip: 198.51.100.10
            port: 587
            check: {type: smtp}
            real_servers:
              - address: 10.0.0.13
        """
    )
    result = compile_config(load_config_text(text, "mail.yaml").config, hostname="testhost")
    specs = {str(target): spec for target, spec in result.checks.values()}
    smtp = specs["10.0.0.11:25"]
    assert isinstance(smtp, checkers.SmtpCheck)
    assert (smtp.helo_name, smtp.connect_port, smtp.timing.timeout) == (
        "director1.example.org",
        None,
        2.0,
    )
    ping = specs["10.0.0.12:25"]
    assert isinstance(ping, checkers.PingCheck) and ping.timing.interval == 2.0
    relay = specs["10.0.0.13:587"]
    assert isinstance(relay, checkers.SmtpCheck)
    assert relay.helo_name == "smtpchecker.keepalived.org"  # keepalived's default


def test_an_smtp_check_needs_a_port_like_every_socket_check() -> None:
    text = textwrap.dedent(
        """
        virtual_servers:
          - name: mail
            fwmark: 7
            check: {type: smtp}
            real_servers:
              - address: 10.0.0.11
        """
    )
    with pytest.raises(ConfigInvalid, match="a smtp check needs a port"):
        load_config_text(text, "mail.yaml")
