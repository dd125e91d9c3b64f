"""Host preflight: does this machine let the config work? (`haipvs check-config --host`)

The config can be valid and the director still useless: NAT without IP forwarding
answers nobody, a VRRP interface that does not exist never elects, a firewall that
drops IP protocol 112 makes both directors master. Each finding names the setting,
what it breaks for which part of the config, and the command that fixes it.

`check_host` is pure: it judges a `HostFacts` (sysctl values, interface names, the
firewall's input rules) against the config. `read_host_facts` is the thin adapter that
reads them from /proc/sys, /sys/class/net and `nft list ruleset` / `iptables-save`.
"""

from __future__ import annotations

import enum
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from haipvs.config.model import Config, Family, Forwarding, VirtualServer

__all__ = [
    "SYSCTLS",
    "FirewallView",
    "HostFacts",
    "HostFinding",
    "Severity",
    "check_config_and_host",
    "check_host",
    "host_check_command",
    "parse_firewall",
    "read_host_facts",
]

PERSIST = "/etc/sysctl.d/90-haipvs.conf"


class Severity(enum.Enum):
    ERROR = "error"  # the config cannot work on this host as it is
    WARNING = "warning"  # it works, worse than it should (or may not: we cannot be sure)


@dataclass(frozen=True, slots=True)
class HostFinding:
    severity: Severity
    setting: str  # the sysctl, interface or firewall it is about
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"host: {self.severity.value}: {self.setting}: {self.problem}; fix: {self.fix}"


@dataclass(frozen=True, slots=True)
class FirewallView:
    """What the input rules say about VRRP, as far as a reading of them can tell."""

    tool: str  # "nftables", "iptables" or "none" (no rules could be read)
    drops_by_default: bool  # an input hook/chain whose policy drops, or a final drop rule
    allows_vrrp: bool  # a rule that accepts IP protocol 112 (vrrp)


@dataclass(frozen=True, slots=True)
class HostFacts:
    sysctls: Mapping[str, str | None]  # "net.ipv4.ip_forward" -> "1"; None: absent
    interfaces: frozenset[str]
    firewall: FirewallView
    ipvs_loaded: bool = True


def _persist(*assignments: str) -> str:
    lines = "\\n".join(assignments)
    return (f"sysctl -w {' '.join(assignments)} && printf '{lines}\\n' >> {PERSIST}")


def _services(config: Config, kind: Forwarding) -> list[VirtualServer]:
    return [
        vs for vs in config.virtual_servers
        if vs.forwarding is kind or any(rs.forwarding is kind for rs in vs.real_servers)
    ]


def _names(services: Iterable[VirtualServer]) -> str:
    return ", ".join(vs.name or vs.label for vs in services)


# Every sysctl check_host looks at, for the adapter to read.
SYSCTLS = (
    "net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding",
    "net.ipv4.conf.all.rp_filter", "net.ipv4.conf.tunl0.rp_filter",
    "net.ipv4.vs.expire_nodest_conn", "net.ipv4.vs.conn_reuse_mode",
    "net.ipv4.vs.expire_quiescent_template",
)


def check_host(config: Config, facts: HostFacts) -> list[HostFinding]:
    findings: list[HostFinding] = []
    value = facts.sysctls.get

    # NAT: replies from the real servers are routed back through the director, which
    # forwards them (LVS-NAT; keepalived's docs say the same for lb_kind NAT).
    nat = _services(config, Forwarding.NAT)
    nat4 = [vs for vs in nat if vs.service_family is Family.IPV4]
    nat6 = [vs for vs in nat if vs.service_family is Family.IPV6]
    if nat4 and value("net.ipv4.ip_forward") != "1":
        findings.append(HostFinding(
            Severity.ERROR, "net.ipv4.ip_forward",
            f"is {value('net.ipv4.ip_forward')}: the NAT service(s) {_names(nat4)} need the "
            "director to forward the real servers' replies",
            _persist("net.ipv4.ip_forward=1"),
        ))
    if nat6 and value("net.ipv6.conf.all.forwarding") != "1":
        findings.append(HostFinding(
            Severity.ERROR, "net.ipv6.conf.all.forwarding",
            f"is {value('net.ipv6.conf.all.forwarding')}: the IPv6 NAT service(s) "
            f"{_names(nat6)} need the director to forward the real servers' replies",
            _persist("net.ipv6.conf.all.forwarding=1"),
        ))

    # TUN: a host that receives IPIP (a real server, or this director if it also serves)
    # decapsulates on tunl0 a packet whose source is not routed via tunl0; strict
    # reverse-path filtering (1) drops it. The kernel uses max(all, tunl0).
    tun = _services(config, Forwarding.TUN)
    if tun:
        strict = [key for key in ("net.ipv4.conf.all.rp_filter", "net.ipv4.conf.tunl0.rp_filter")
                  if value(key) == "1"]
        for key in strict:
            findings.append(HostFinding(
                Severity.WARNING, key,
                f"is 1 (strict): IPIP packets of the TUN service(s) {_names(tun)} are dropped "
                "by reverse-path filtering on a host that decapsulates them (each real server, "
                "and this one if it also serves)",
                f"on each real server: {_persist(f'{key}=0')}",
            ))

    # VRRP: the interfaces must exist (keepalived logs "Cant find interface" and the
    # instance never runs), and the firewall must let IP protocol 112 in (RFC 5798 §5.1.1).
    wanted: dict[str, list[str]] = {}
    for inst in config.vrrp:
        wanted.setdefault(inst.interface, []).append(f"vrrp {inst.name}")
        for vip in inst.vips:
            if vip.interface is not None:
                wanted.setdefault(vip.interface, []).append(f"vrrp {inst.name} vip {vip.address}")
        for track in inst.track.interfaces:
            wanted.setdefault(track.name, []).append(f"vrrp {inst.name} track_interface")
    for interface, users in wanted.items():
        if interface not in facts.interfaces:
            findings.append(HostFinding(
                Severity.ERROR, f"interface {interface}",
                f"does not exist on this host (used by {', '.join(dict.fromkeys(users))}); "
                f"present: {', '.join(sorted(facts.interfaces)) or 'none'}",
                "fix the interface name in the config, or create the interface (ip link)",
            ))
    fw = facts.firewall
    if config.vrrp and fw.drops_by_default and not fw.allows_vrrp:
        if fw.tool == "nftables":
            fix = "nft insert rule inet filter input meta l4proto vrrp accept (your table and " \
                "chain names; then save the ruleset in /etc/nftables.conf)"
        else:
            fix = "iptables -I INPUT -p vrrp -j ACCEPT (ip6tables too for IPv6; then save it, " \
                "e.g. netfilter-persistent save)"
        findings.append(HostFinding(
            Severity.ERROR, f"firewall ({fw.tool})",
            "the input rules drop by default and no rule accepts IP protocol 112 (vrrp): "
            "the directors will not hear each other and both become master",
            fix,
        ))

    # IPVS: what a director with health checks wants from the kernel
    # (Documentation/networking/ipvs-sysctl.rst).
    if config.virtual_servers and not facts.ipvs_loaded:
        findings.append(HostFinding(
            Severity.WARNING, "ip_vs", "the module is not loaded (haipvs loads it at start; "
            "the package's modules-load.d does at boot)", "modprobe ip_vs",
        ))
    elif config.virtual_servers:
        if value("net.ipv4.vs.expire_nodest_conn") == "0":
            findings.append(HostFinding(
                Severity.WARNING, "net.ipv4.vs.expire_nodest_conn",
                "is 0: packets of a connection whose real server was removed (down, or left "
                "the config) are dropped silently until the entry times out, instead of the "
                "client being told at once",
                _persist("net.ipv4.vs.expire_nodest_conn=1"),
            ))
        if value("net.ipv4.vs.conn_reuse_mode") == "0":
            findings.append(HostFinding(
                Severity.WARNING, "net.ipv4.vs.conn_reuse_mode",
                "is 0: a new connection that reuses a client port goes to the old connection's "
                "real server even when it is drained (weight 0) or down",
                _persist("net.ipv4.vs.conn_reuse_mode=1"),
            ))
        persistent = [vs for vs in config.virtual_servers if vs.persistence.timeout > 0]
        if persistent and value("net.ipv4.vs.expire_quiescent_template") == "0":
            findings.append(HostFinding(
                Severity.WARNING, "net.ipv4.vs.expire_quiescent_template",
                f"is 0: persistent clients of {_names(persistent)} stay on a real server "
                "whose weight went to 0 (down or draining) until their template expires",
                _persist("net.ipv4.vs.expire_quiescent_template=1"),
            ))
    return findings


# --------------------------------------------------------------------------- the adapter

_NFT_INPUT = re.compile(r"type filter hook input priority [^;]+;\s*policy drop", re.S)
_NFT_VRRP = re.compile(
    r"(ip protocol|meta l4proto|ip6 nexthdr)\s+(\{[^}]*\b(vrrp|112)\b[^}]*\}|vrrp|112)"
    r"[^\n]*\baccept\b"
)
_IPT_POLICY = re.compile(r"^:INPUT DROP", re.M)
_IPT_FINAL_DROP = re.compile(r"^-A INPUT (-j|--jump) (DROP|REJECT)\s*$", re.M)
_IPT_VRRP = re.compile(r"^-A INPUT\b.*-p (vrrp|112)\b.*-j ACCEPT", re.M)


def parse_firewall(nft_ruleset: str | None, iptables_save: str | None) -> FirewallView:
    """Read the input rules' stance on VRRP from `nft list ruleset` / `iptables-save`.

    A reading, not a proof: it looks for a dropping input policy (or a final drop rule)
    and for a rule that accepts protocol 112.
    """
    if nft_ruleset and "hook input" in nft_ruleset:
        return FirewallView("nftables", bool(_NFT_INPUT.search(nft_ruleset)),
                            bool(_NFT_VRRP.search(nft_ruleset)))
    if iptables_save and "*filter" in iptables_save:
        drops = bool(_IPT_POLICY.search(iptables_save) or _IPT_FINAL_DROP.search(iptables_save))
        return FirewallView("iptables", drops, bool(_IPT_VRRP.search(iptables_save)))
    return FirewallView("none", drops_by_default=False, allows_vrrp=False)


def _run(argv: list[str]) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


def read_host_facts(proc: Path = Path("/proc/sys"),
                    net: Path = Path("/sys/class/net")) -> HostFacts:
    sysctls: dict[str, str | None] = {}
    for key in SYSCTLS:
        try:
            sysctls[key] = (proc / key.replace(".", "/")).read_text().strip()
        except OSError:
            sysctls[key] = None
    try:
        interfaces = frozenset(entry.name for entry in net.iterdir())
    except OSError:
        interfaces = frozenset()
    firewall = parse_firewall(_run(["nft", "list", "ruleset"]), _run(["iptables-save"]))
    return HostFacts(sysctls, interfaces, firewall,
                     ipvs_loaded=(proc / "net/ipv4/vs").is_dir())


def host_check_command(config: Config, out: TextIO | None = None) -> int:
    """Print the host findings; 1 when any is an error, else 0 (warnings are printed)."""
    stream = out if out is not None else sys.stdout
    findings = check_host(config, read_host_facts())
    for finding in findings:
        print(finding, file=stream)
    if not findings:
        print("host: ok: forwarding, interfaces, firewall and IPVS settings suit this config",
              file=stream)
    return 1 if any(f.severity is Severity.ERROR for f in findings) else 0


def check_config_and_host(path: str) -> int:
    """`haipvs check-config --host FILE`: the file first, then this host against it."""
    from haipvs.config.load import ConfigInvalid, load_config

    # The file on its own first (what depends on this host is judged below), then this
    # host against it, then the daemon's own verdict on both: the exit status is the
    # gate's (haipvs.daemon.accept), so --host never accepts what the daemon refuses.
    from haipvs.daemon.accept import accept_config
    from haipvs.daemon.check import check_config_command

    status = check_config_command(path, offline=True)
    if status != 0:
        return status
    try:
        config = load_config(path).config
    except (ConfigInvalid, OSError):  # changed under us: the check above said why
        return 1
    host_status = host_check_command(config)
    try:
        accept_config(path)
    except ConfigInvalid as refused:
        for error in refused.errors:
            print(error)
        return 1
    return host_status
