"""Loading: line numbers on every message, every error at once, duplicate keys, YAML errors."""

from __future__ import annotations

import textwrap
from ipaddress import ip_address, ip_interface
from pathlib import Path

import pytest

from haipvs.config import (
    Config,
    ConfigError,
    ConfigInvalid,
    Forwarding,
    HttpCheck,
    Scheduler,
    TcpCheck,
    dump_config,
    load_config,
    load_config_text,
)

# The documented example contract, verbatim: it must load as written.
DESIGN_EXAMPLE = """\
director:
  name: lb1                    # bound into every log line
  api: 127.0.0.1:9797          # status JSON + Prometheus /metrics; loopback by default
  log_format: json             # json | console (default: console on a TTY, else json)
  log_level: info

vrrp:
  - name: VI_WEB
    interface: eth0
    vrid: 51                   # 1..255
    priority: 150              # 1..255 (255 = address owner)
    version: 3                 # 2 | 3
    advert_interval: 1.0       # seconds; v2 whole seconds, v3 in 0.01 s steps
    preempt: true
    preempt_delay: 0           # seconds
    unicast_peers: []          # empty: multicast 224.0.0.18 / ff02::12
    vips:                      # on `interface`, or on the interface named
      - 198.51.100.10/24
      - {address: 10.0.0.1/24, interface: eth1}   # NAT: the real servers' floating gateway
    track:
      interfaces: [{name: eth1, weight: -60}]
      scripts: [{command: [/usr/local/bin/check-uplink], interval: 2, weight: -30}]
    notify:                    # argv lists, run without a shell, with a timeout
      master: [/usr/local/bin/notify, master]
      backup: [/usr/local/bin/notify, backup]
      fault:  [/usr/local/bin/notify, fault]

virtual_servers:
  - name: web
    vip: 198.51.100.10         # or  fwmark: 10
    port: 80
    protocol: tcp              # tcp | udp | sctp
    scheduler: wlc             # rr wrr lc wlc lblc lblcr dh sh sed nq mh fo ovf
    forwarding: nat            # nat | dr | tun
    persistence: {timeout: 0}  # seconds; netmask optional
    quorum: {min_up: 1}        # below it: sorry_server only (or none), logged
    sorry_server: 10.0.0.250:80
    drain: {timeout: 30}       # removal = weight 0 until connections end or timeout
    check:                     # default for every real server of this service
      type: http               # tcp | http | https | exec | ...
      path: /healthz
      expect_status: [200]
      interval: 1.0
      timeout: 1.0
      rise: 2
      fall: 2
    real_servers:
      - {address: 10.0.0.11, port: 80, weight: 1}
      - {address: 10.0.0.12, port: 80, weight: 2, check: {type: tcp}}
"""


def errors_of(text: str, file: str = "t.yaml") -> list[str]:
    with pytest.raises(ConfigInvalid) as caught:
        load_config_text(textwrap.dedent(text), file)
    return [str(error) for error in caught.value.errors]


def test_the_design_example_loads_with_its_values() -> None:
    loaded = load_config_text(DESIGN_EXAMPLE, "design.yaml")
    config = loaded.config
    assert loaded.warnings == ()
    assert config.director.name == "lb1"
    (instance,) = config.vrrp
    assert (instance.interface, instance.vrid, instance.priority) == ("eth0", 51, 150)
    assert instance.vips[0].address == ip_interface("198.51.100.10/24")
    assert instance.vips[1].interface == "eth1"
    assert instance.track.interfaces[0].weight == -60
    assert instance.notify.fault == ("/usr/local/bin/notify", "fault")
    (web,) = config.virtual_servers
    assert web.vip == ip_address("198.51.100.10")
    assert web.scheduler is Scheduler.WLC
    assert web.forwarding is Forwarding.NAT
    assert web.sorry_server is not None
    assert (str(web.sorry_server.address), web.sorry_server.port) == ("10.0.0.250", 80)
    assert isinstance(web.check, HttpCheck)
    assert web.check.path == "/healthz"
    assert isinstance(web.real_servers[1].check, TcpCheck)
    assert web.real_server_check(web.real_servers[0]) == web.check


def test_defaults_are_the_operators() -> None:
    config = load_config_text(
        "vrrp: [{name: v, interface: eth0, vrid: 1, vips: [192.0.2.1]}]\n"
        "virtual_servers: [{vip: 192.0.2.1, port: 80, real_servers: [{address: 10.0.0.1}]}]\n"
    ).config
    instance = config.vrrp[0]
    assert (instance.priority, instance.version, instance.advert_interval) == (100, 3, 1.0)
    assert instance.preempt is True
    assert instance.garp_repeat == 5 and instance.accept is True
    assert str(instance.vips[0].address) == "192.0.2.1/32"
    vs = config.virtual_servers[0]
    assert vs.scheduler is Scheduler.WLC and vs.forwarding is Forwarding.NAT
    assert vs.real_server_port(vs.real_servers[0]) == 80
    assert vs.real_servers[0].weight == 1
    assert vs.label == "tcp/192.0.2.1:80"


def test_an_error_points_at_the_line_of_the_value() -> None:
    text = """\
    virtual_servers:
      - vip: 192.0.2.1
        port: 80
        real_servers:
          - address: 10.0.0.11
            port: 80
          - address: 10.0.0.12
            port: 70000
    """
    assert errors_of(text, "etc/haipvs.yaml") == [
        "etc/haipvs.yaml:8: virtual_servers[0].real_servers[1].port: must be 0..65535"
    ]


def test_every_error_of_a_file_is_reported_at_once() -> None:
    text = """\
    vrrp:
      - name: a
        interface: eth0
        vrid: 300
        vips: [192.0.2.1]
    virtual_servers:
      - vip: 192.0.2.1
        port: 80
        scheduler: fastest
      - vip: 192.0.2.2
        port: 80
        forwarding: dr
        real_servers: [{address: 10.0.0.1, port: 8080}]
    """
    assert errors_of(text) == [
        "t.yaml:4: vrrp[0].vrid: must be 1..255",
        "t.yaml:9: virtual_servers[0].scheduler: must be one of: "
        "rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, mh, fo, ovf, twos",
        "t.yaml:13: virtual_servers[1].real_servers[0].port: "
        "dr cannot map ports: must equal the service port 80",
    ]


def test_duplicate_keys_are_errors_and_the_rest_is_still_checked() -> None:
    text = """\
    virtual_servers:
      - vip: 192.0.2.1
        port: 80
        port: 81
        scheduler: nope
    """
    assert errors_of(text) == [
        "t.yaml:4: virtual_servers[0].port: duplicate key (first at line 3)",
        "t.yaml:5: virtual_servers[0].scheduler: must be one of: "
        "rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, mh, fo, ovf, twos",
    ]


def test_a_yaml_syntax_error_has_the_same_form() -> None:
    text = "vrrp:\n  - name: a\n   interface: eth0\n"
    assert errors_of(text) == [
        "t.yaml:3: yaml: while parsing a block collection, "
        "expected <block end>, but found '<block mapping start>'"
    ]


def test_warnings_carry_a_marker_and_do_not_refuse_the_file() -> None:
    loaded = load_config_text("virtual_servers:\n  - vip: 192.0.2.1\n    port: 80\n", "single.yaml")
    assert [str(w) for w in loaded.warnings] == [
        "single.yaml:2: warning: virtual_servers[0].vip: 192.0.2.1 is not a vip of any "
        "vrrp instance: no failover for this service"
    ]


def test_unknown_keys_are_errors_with_a_hint() -> None:
    assert errors_of("director:\n  nmae: lb1\n") == [
        "t.yaml:2: director.nmae: unknown key (did you mean 'name'?)"
    ]


def test_merge_keys_and_anchors_are_followed() -> None:
    text = """\
    x-check: &check {type: tcp, interval: 2.0, timeout: 1.0}
    """
    assert errors_of(text) == ["t.yaml:1: x-check: unknown key"]
    config = load_config_text(
        textwrap.dedent(
            """\
            virtual_servers:
              - &web
                vip: 192.0.2.1
                port: 80
                check: {type: tcp, interval: 2.0, timeout: 1.0}
              - <<: *web
                port: 443
            """
        )
    ).config
    assert [vs.port for vs in config.virtual_servers] == [80, 443]
    assert config.virtual_servers[1].check == config.virtual_servers[0].check


def test_load_config_reads_a_file_and_reports_an_unreadable_one(tmp_path: Path) -> None:
    path = tmp_path / "haipvs.yaml"
    path.write_text(DESIGN_EXAMPLE)
    assert load_config(path).config.vrrp[0].name == "VI_WEB"
    with pytest.raises(ConfigInvalid) as caught:
        load_config(tmp_path / "missing.yaml")
    (error,) = caught.value.errors
    assert error == ConfigError(
        str(tmp_path / "missing.yaml"), 1, "(file)", "cannot read: No such file or directory"
    )


def test_an_empty_file_is_refused() -> None:
    assert errors_of("# only a comment\n") == ["t.yaml:1: (file): the file is empty"]


def test_a_dump_loads_back_equal() -> None:
    config = load_config_text(DESIGN_EXAMPLE).config
    assert load_config_text(dump_config(config)).config == config
    assert isinstance(config, Config)


def test_yaml_that_is_not_plain_data_is_refused_where_it_is() -> None:
    text = """\
    director:
      name: !!python/name:os.system
      1: one
    vrrp:
      - name: a
        interface: eth0
        vrid: 1
        vips: [42]
    """
    assert errors_of(text) == [
        "t.yaml:2: director.name: could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/name:os.system'",
        "t.yaml:3: director: keys must be names, not '1'",
        "t.yaml:8: vrrp[0].vips[0]: must be an address/prefix or a mapping {address, interface}",
    ]


def test_two_documents_in_one_file_are_refused() -> None:
    assert errors_of("director: {}\n---\nvrrp: []\n") == [
        "t.yaml:2: yaml: expected a single document in the stream, but found another document"
    ]


def test_a_missing_key_points_at_its_mapping() -> None:
    text = """\
    vrrp:
      - name: a
        vrid: 1
        vips: [192.0.2.1]
      -
        name: b
        interface: eth1
        vips: [192.0.2.2]
    """
    assert errors_of(text) == [
        "t.yaml:2: vrrp[0].interface: is required",
        "t.yaml:6: vrrp[1].vrid: is required",
    ]


def test_an_anchor_merged_into_many_real_servers_is_no_bomb() -> None:
    servers = "\n".join(f"      - {{<<: *rs, address: 192.0.2.{i % 250 + 1}, port: {1000 + i}}}"
                        for i in range(2000))
    loaded = load_config_text(
        "virtual_servers:\n  - vip: 198.51.100.10\n    port: 80\n    real_servers:\n"
        "      - &rs {address: 192.0.2.250, port: 999, weight: 3, u_thresh: 0, l_thresh: 0}\n"
        + servers + "\n")
    (vs,) = loaded.config.virtual_servers
    assert len(vs.real_servers) == 2001 and {rs.weight for rs in vs.real_servers} == {3}


def test_a_file_past_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    from haipvs.config.load import MAX_FILE_BYTES

    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(ConfigInvalid) as refused:
        load_config(huge)
    assert [str(error) for error in refused.value.errors] == [
        f"{huge}:1: (file): larger than 32 MiB: not a config file"
    ]
