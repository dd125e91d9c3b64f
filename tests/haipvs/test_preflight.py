"""Host preflight (`haipvs check-config --host`): literal host facts in, findings out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from haipvs.config.load import load_config_text
from haipvs.config.model import Config
from haipvs.preflight import (
    SYSCTLS,
    FirewallView,
    HostFacts,
    Severity,
    check_host,
    parse_firewall,
    read_host_facts,
)

ROOT = Path(__file__).resolve().parents[2]

GOOD_SYSCTLS = {
    "net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "1",
    "net.ipv4.conf.all.rp_filter": "0", "net.ipv4.conf.tunl0.rp_filter": "0",
    "net.ipv4.vs.expire_nodest_conn": "1", "net.ipv4.vs.conn_reuse_mode": "1",
    "net.ipv4.vs.expire_quiescent_template": "1",
}
OPEN = FirewallView("none", drops_by_default=False, allows_vrrp=False)


def config(forwarding: str = "nat", persistence: str = "") -> Config:
    return load_config_text(f"""
vrrp:
  - name: VI_PUBLIC
    interface: eth0
    vrid: 51
    priority: 150
    vips: [198.51.100.10/24, {{address: 10.0.0.1/24, interface: eth1}}]
virtual_servers:
  - name: web
    vip: 198.51.100.10
    port: 80
    forwarding: {forwarding}{persistence}
    real_servers:
      - {{address: 10.0.0.11, port: 80}}
""").config


def facts(firewall: FirewallView = OPEN, **sysctls: str) -> HostFacts:
    values = dict(GOOD_SYSCTLS)
    values.update({key.replace("__", "."): value for key, value in sysctls.items()})
    return HostFacts(values, frozenset({"lo", "eth0", "eth1"}), firewall)


def lines(config: Config, facts: HostFacts) -> list[str]:
    return [str(finding) for finding in check_host(config, facts)]


def test_a_host_that_suits_the_config_has_no_finding() -> None:
    assert lines(config(), facts()) == []


def test_nat_without_ip_forwarding_is_an_error_with_its_fix() -> None:
    (finding,) = check_host(config(), facts(net__ipv4__ip_forward="0"))
    assert finding.severity is Severity.ERROR
    assert str(finding) == (
        "host: error: net.ipv4.ip_forward: is 0: the NAT service(s) web need the director to "
        "forward the real servers' replies; fix: sysctl -w net.ipv4.ip_forward=1 && "
        "printf 'net.ipv4.ip_forward=1\\n' >> /etc/sysctl.d/90-haipvs.conf"
    )
    # DR does not route the replies back: forwarding is not needed.
    assert lines(config("dr"), facts(net__ipv4__ip_forward="0")) == []


def test_tun_with_strict_rp_filter_warns() -> None:
    (finding,) = check_host(config("tun"), facts(net__ipv4__conf__all__rp_filter="1"))
    assert finding.severity is Severity.WARNING
    assert finding.setting == "net.ipv4.conf.all.rp_filter"
    assert "sysctl -w net.ipv4.conf.all.rp_filter=0" in finding.fix
    # Loose mode (2) lets the decapsulated packets through.
    assert lines(config("tun"), facts(net__ipv4__conf__all__rp_filter="2")) == []


def test_a_missing_vrrp_interface_names_who_uses_it_and_what_exists() -> None:
    host = HostFacts(GOOD_SYSCTLS, frozenset({"lo", "eth0"}), OPEN)
    assert lines(config(), host) == [
        "host: error: interface eth1: does not exist on this host (used by vrrp VI_PUBLIC vip "
        "10.0.0.1/24); present: eth0, lo; fix: fix the interface name in the config, or create "
        "the interface (ip link)"
    ]


def test_a_firewall_that_drops_vrrp_is_an_error() -> None:
    dropping = FirewallView("nftables", drops_by_default=True, allows_vrrp=False)
    (finding,) = check_host(config(), facts(dropping))
    assert finding.severity is Severity.ERROR and "protocol 112" in finding.problem
    assert finding.fix.startswith("nft insert rule inet filter input meta l4proto vrrp accept")
    allowing = FirewallView("nftables", drops_by_default=True, allows_vrrp=True)
    assert lines(config(), facts(allowing)) == []


def test_ipvs_sysctls_that_keep_traffic_on_gone_real_servers_warn() -> None:
    found = check_host(config(persistence="\n    persistence: {timeout: 300}"),
                       facts(net__ipv4__vs__expire_nodest_conn="0",
                             net__ipv4__vs__conn_reuse_mode="0",
                             net__ipv4__vs__expire_quiescent_template="0"))
    assert [(f.severity, f.setting) for f in found] == [
        (Severity.WARNING, "net.ipv4.vs.expire_nodest_conn"),
        (Severity.WARNING, "net.ipv4.vs.conn_reuse_mode"),
        (Severity.WARNING, "net.ipv4.vs.expire_quiescent_template"),
    ]
    assert all(f.fix.startswith("sysctl -w net.ipv4.vs.") for f in found)
    # Without persistence the template setting does not matter.
    assert "expire_quiescent_template" not in " ".join(
        lines(config(), facts(net__ipv4__vs__expire_quiescent_template="0")))


NFT_DROP = """table inet filter {
	chain input {
		type filter hook input priority filter; policy drop;
		ct state established,related accept
		tcp dport 22 accept
	}
}
"""


@pytest.mark.parametrize(
    ("nft", "iptables", "expected"),
    [
        (NFT_DROP, None, FirewallView("nftables", True, False)),
        (NFT_DROP.replace("tcp dport 22 accept", "ip protocol vrrp accept"), None,
         FirewallView("nftables", True, True)),
        (NFT_DROP.replace("tcp dport 22 accept", "meta l4proto { tcp, vrrp } accept"), None,
         FirewallView("nftables", True, True)),
        (NFT_DROP.replace("policy drop", "policy accept"), None,
         FirewallView("nftables", False, False)),
        (None, "*filter\n:INPUT DROP [0:0]\n-A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n",
         FirewallView("iptables", True, False)),
        (None, "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p 112 -j ACCEPT\n-A INPUT -j DROP\n"
         "COMMIT\n", FirewallView("iptables", True, True)),
        ("", "", FirewallView("none", False, False)),
    ],
)
def test_the_firewall_reading(nft: str | None, iptables: str | None,
                              expected: FirewallView) -> None:
    assert parse_firewall(nft, iptables) == expected


def test_the_adapter_reads_sysctls_and_interfaces(tmp_path: Path) -> None:
    proc, net = tmp_path / "proc", tmp_path / "net"
    for key in SYSCTLS:
        path = proc / key.replace(".", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("1\n")
    (proc / "net/ipv4/ip_forward").write_text("0\n")
    (net / "eth0").mkdir(parents=True)
    read = read_host_facts(proc, net)
    assert read.sysctls["net.ipv4.ip_forward"] == "0"
    assert read.sysctls["net.ipv4.vs.conn_reuse_mode"] == "1"
    assert read.interfaces == frozenset({"eth0"}) and read.ipvs_loaded
    (proc / "net/ipv4/vs/conn_reuse_mode").unlink()
    assert read_host_facts(proc, net).sysctls["net.ipv4.vs.conn_reuse_mode"] is None


def test_check_config_host_prints_the_file_verdict_then_the_host(tmp_path: Path) -> None:
    path = tmp_path / "haipvs.yaml"
    path.write_text("vrrp:\n  - {name: VI, interface: no-such-if0, vrid: 9, priority: 100, "
                    "vips: [192.0.2.1/24]}\n")
    result = subprocess.run([sys.executable, "-m", "haipvs", "check-config", "--host", str(path)],
                            capture_output=True, text=True, timeout=60, check=False)
    out = result.stdout.splitlines()
    assert out[0].startswith(f"{path}: ok:")
    assert any(line.startswith("host: error: interface no-such-if0: does not exist")
               for line in out)
    assert result.returncode == 1
