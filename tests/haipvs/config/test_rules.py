"""Cross-field rules: the invalid corpus (exact messages) and the borders that must pass."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from haipvs.config import ConfigInvalid, load_config_text

CORPUS = Path(__file__).parent / "invalid"
CASES = sorted(CORPUS.glob("*.yaml"))


def messages(path: Path) -> list[str]:
    with pytest.raises(ConfigInvalid) as caught:
        load_config_text(path.read_text(), path.name)
    return [str(e) for e in caught.value.errors] + [str(w) for w in caught.value.warnings]


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert all(case.with_suffix(".expected").is_file() for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.stem for case in CASES])
def test_invalid_config_gives_exactly_the_expected_lines(case: Path) -> None:
    expected = case.with_suffix(".expected").read_text().splitlines()
    assert messages(case) == expected


def loads(text: str) -> None:
    load_config_text(textwrap.dedent(text))


def refused(text: str) -> list[str]:
    with pytest.raises(ConfigInvalid) as caught:
        load_config_text(textwrap.dedent(text), "t.yaml")
    return [str(e) for e in caught.value.errors]


def instance(**fields: object) -> str:
    base: dict[str, object] = {
        "name": "v",
        "interface": "eth0",
        "vrid": 1,
        "vips": "[192.0.2.1/24]",
    }
    base.update(fields)
    body = "\n".join(f"    {key}: {value}" for key, value in base.items())
    return "vrrp:\n  - " + body.lstrip() + "\n"


@pytest.mark.parametrize("interval", ["0.01", "40.95", "1", "0.25"])
def test_v3_advert_interval_in_centiseconds_is_accepted(interval: str) -> None:
    loads(instance(advert_interval=interval))


@pytest.mark.parametrize("interval", ["1", "255", "3.0"])
def test_v2_advert_interval_in_whole_seconds_is_accepted(interval: str) -> None:
    loads(instance(version=2, advert_interval=interval))


def test_v2_advert_interval_below_one_second_is_refused() -> None:
    assert refused(instance(version=2, advert_interval="0.5")) == [
        "t.yaml:7: vrrp[0].advert_interval: VRRPv2 needs whole seconds 1..255 (RFC 3768 §5.3.7)"
    ]


def test_an_address_owner_uses_255() -> None:
    loads(instance(priority=255, address_owner="true"))


def test_one_vrid_on_two_interfaces_or_two_families_is_legal() -> None:
    loads(
        """\
        vrrp:
          - {name: a, interface: eth0, vrid: 7, vips: [192.0.2.1]}
          - {name: b, interface: eth1, vrid: 7, vips: [192.0.2.2]}
          - {name: c, interface: eth0, vrid: 7, vips: ["2001:db8::1/64"]}
        """
    )


def test_unicast_peers_of_the_right_family_are_accepted() -> None:
    loads(instance(unicast_source="192.0.2.10", unicast_peers="[192.0.2.11, 192.0.2.12]"))


def test_tun_may_mix_families_and_dr_keeps_the_port() -> None:
    loads(
        """\
        virtual_servers:
          - vip: 192.0.2.1
            port: 80
            forwarding: tun
            real_servers:
              - {address: "2001:db8::11"}
              - {address: 10.0.0.12, port: 80, tun: {type: gue, port: 6080, csum: remcsum}}
          - vip: 192.0.2.1
            port: 443
            forwarding: dr
            real_servers: [{address: 10.0.0.11, port: 443}, {address: 10.0.0.12}]
        """
    )


def test_nat_maps_ports() -> None:
    loads(
        """\
        virtual_servers:
          - {vip: 192.0.2.1, port: 80, real_servers: [{address: 10.0.0.11, port: 8080}]}
        """
    )


def test_check_timeout_equal_to_interval_is_accepted() -> None:
    # docs/config.md's own example uses interval 1.0 / timeout 1.0: probes never overlap.
    loads(
        """\
        virtual_servers:
          - {vip: 192.0.2.1, port: 80, check: {type: tcp, interval: 1.0, timeout: 1.0}}
        """
    )


def test_a_fwmark_service_with_ports_on_its_real_servers() -> None:
    loads(
        """\
        virtual_servers:
          - fwmark: 10
            persistence: {timeout: 300, netmask: 255.255.255.0}
            check: {type: tcp}
            real_servers: [{address: 10.0.0.11, port: 80}, {address: 10.0.0.12, port: 80}]
        """
    )


def test_sorry_server_port_defaults_to_the_service_port_for_the_duplicate_rule() -> None:
    assert refused(
        """\
        virtual_servers:
          - vip: 192.0.2.1
            port: 80
            sorry_server: 10.0.0.11
            real_servers: [{address: 10.0.0.11}]
        """
    ) == ["t.yaml:4: virtual_servers[0].sorry_server: 10.0.0.11:80 is also real_servers[0]"]


def test_a_broken_instance_does_not_hide_rules_in_the_services() -> None:
    assert refused(
        """\
        vrrp:
          - {name: a, interface: eth0, vrid: 999, vips: [192.0.2.1]}
        virtual_servers:
          - vip: 192.0.2.1
            port: 80
            forwarding: dr
            real_servers: [{address: 10.0.0.11, port: 81}]
        """
    ) == [
        "t.yaml:2: vrrp[0].vrid: must be 1..255",
        "t.yaml:7: virtual_servers[0].real_servers[0].port: "
        "dr cannot map ports: must equal the service port 80",
    ]


def test_a_sync_group_of_one_instance_is_a_warning() -> None:
    loaded = load_config_text(instance() + "sync_groups: [{name: g, instances: [v]}]\n", "t.yaml")
    assert [str(w) for w in loaded.warnings] == [
        "t.yaml:6: warning: sync_groups[0].instances: a sync group of one instance syncs nothing"
    ]


def test_an_api_beyond_loopback_without_a_token_is_refused() -> None:
    # The daemon cannot bind it (the status API refuses), so neither may check-config.
    with pytest.raises(ConfigInvalid) as refused:
        load_config_text("director: {api: 0.0.0.0:9797}\n", "t.yaml")
    assert [str(e) for e in refused.value.errors] == [
        "t.yaml:1: director.api: 0.0.0.0:9797 is reachable beyond this host: "
        "set director.api_token"
    ]
    assert load_config_text("director: {api: 0.0.0.0:9797, api_token: s3cret}\n").warnings == ()


def test_a_broken_real_server_does_not_hide_the_rules_of_its_siblings() -> None:
    assert refused(
        """\
        virtual_servers:
          - vip: 192.0.2.1
            port: 80
            forwarding: dr
            sorry_server: 10.0.0.13:80
            real_servers:
              - {address: 10.0.0.11, port: 81}
              - {address: 10.0.0.300}
              - {address: 10.0.0.12, weight: -1}
              - {address: 10.0.0.13}
              - {address: 10.0.0.11, port: 81}
        """
    ) == [
        "t.yaml:5: virtual_servers[0].sorry_server: 10.0.0.13:80 is also real_servers[3]",
        "t.yaml:7: virtual_servers[0].real_servers[0].port: "
        "dr cannot map ports: must equal the service port 80",
        "t.yaml:8: virtual_servers[0].real_servers[1].address: not an IP address: '10.0.0.300'",
        "t.yaml:9: virtual_servers[0].real_servers[2].weight: must be 0..65535",
        "t.yaml:11: virtual_servers[0].real_servers[4].address: "
        "duplicate real server 10.0.0.11:81 (also real_servers[0])",
        "t.yaml:11: virtual_servers[0].real_servers[4].port: "
        "dr cannot map ports: must equal the service port 80",
    ]


@pytest.mark.parametrize("mode", ["auto", "old", "never"])
def test_unicast_checksum_modes_of_a_v3_ipv4_unicast_instance_are_accepted(mode: str) -> None:
    loads(instance(unicast_peers="[192.0.2.11]", unicast_checksum=mode))


def test_unicast_checksum_old_on_ipv6_is_refused() -> None:
    assert refused(
        instance(
            vips='["2001:db8::1/64"]', unicast_peers='["fe80::2"]', unicast_checksum="old"
        )
    ) == [
        "t.yaml:7: vrrp[0].unicast_checksum: old needs version 3, IPv4 vips and "
        "unicast_peers (the old checksum differs only there)"
    ]
