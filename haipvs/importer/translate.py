"""Translate a parsed keepalived.conf into the haipvs YAML config (docs/config.md).

This module owns the *meaning* of keepalived's keywords for the importer. Rules:

1. Nothing is dropped silently. Every keyword is either translated, or
   recorded as a `Finding` with its file:line, which the renderer writes as a YAML
   comment beside the item and the command prints on stderr.
2. A finding's `Severity` answers the operator's question "what must I do?":
   - NOTE: translated; the behaviour differs in a small, documented way.
   - DROPPED: haipvs has no equivalent; the feature is lost (mail alerts, process
     tuning, a weaker health check...). Read it; nothing else to do.
   - UNSUPPORTED: cannot be expressed, and leaving it out would change which
     director holds the VIPs or what the scripts around it do (virtual MACs,
     routes that follow mastership, authentication the keepalived peer insists
     on, quorum scripts, an unknown keyword...). The import fails (exit 1) with
     the list, because the operator has to change something before migrating.
3. Output is plain data (dicts, lists, str, int, float, bool) with the key names of
   haipvs.config.model; validating it is the config package's job.

Pure: no IO, no clock, no logging.
"""

from __future__ import annotations

import enum
import ipaddress
import math
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from haipvs.importer.parser import Location, ParsedConfig, Statement
from haipvs.importer.routes import Translated, route_item, rule_item

__all__ = [
    "Finding",
    "Severity",
    "Translation",
    "render_yaml",
    "source_of",
    "translate",
]


class Severity(enum.Enum):
    NOTE = "note"
    DROPPED = "dropped"
    UNSUPPORTED = "unsupported"


@dataclass(frozen=True, slots=True)
class Finding:
    """One keepalived keyword the output does not carry exactly, and why."""

    location: Location
    keyword: str
    severity: Severity
    message: str
    #: The output item it belongs to ("vrrp VI_1", "virtual_server tcp/10.0.0.1:80").
    anchor: str | None = None

    def __str__(self) -> str:
        return f"{self.location}: {self.severity.value}: {self.keyword}: {self.message}"


@dataclass(frozen=True, slots=True)
class Translation:
    """The YAML document as data, plus everything that did not translate exactly."""

    config: Mapping[str, Any]
    findings: tuple[Finding, ...]
    source: str
    #: Output item ("vrrp VI_1", "virtual_server tcp/...") -> the anchor of its findings.
    anchors: Mapping[str, str] = field(default_factory=dict)
    #: Output item -> where its keepalived block starts (to locate validation errors).
    origins: Mapping[str, Location] = field(default_factory=dict)
    #: Anchor -> the source's comments of that block, carried over as YAML comments.
    comments: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def unsupported(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.UNSUPPORTED)

    @property
    def complete(self) -> bool:
        """True when nothing the operator must act on was left out."""
        return not self.unsupported


# --- keyword tables -------------------------------------------------------------------
# Keywords haipvs has no use for, with the reason shown to the operator.

_MAIL = "e-mail alerts are not sent by haipvs; alert on the log events (docs/operations.md)"
_PROCESS = "tuning of keepalived's child processes; the systemd unit sets haipvs's"
_SNMP = "SNMP is not offered; use the Prometheus /metrics endpoint"
_DBUS = "D-Bus is not offered; use the status API"
_NETLINK = "haipvs follows interface state through netlink"
_STRICT = "haipvs follows RFC 5798 as written (no iptables rules are added)"
_SYNCD = "IPVS connection sync: see ipvs.sync_daemon"

_GLOBAL_DROPPED: dict[str, str] = {
    **dict.fromkeys(
        (
            "notification_email",
            "notification_email_from",
            "smtp_server",
            "smtp_connect_timeout",
            "smtp_helo_name",
            "smtp_alert",
            "smtp_alert_vrrp",
            "smtp_alert_checker",
            "email_faults",
        ),
        _MAIL,
    ),
    **dict.fromkeys(
        (
            "enable_snmp_vrrp",
            "enable_snmp_keepalived",
            "enable_snmp_checker",
            "enable_snmp_rfc",
            "enable_snmp_rfcv2",
            "enable_snmp_rfcv3",
            "enable_traps",
            "snmp_socket",
        ),
        _SNMP,
    ),
    **dict.fromkeys(("enable_dbus", "enable_dbus_instance"), _DBUS),
    **dict.fromkeys(
        (
            "vrrp_no_swap",
            "checker_no_swap",
            "bfd_no_swap",
            "vrrp_priority",
            "checker_priority",
            "bfd_priority",
            "vrrp_rt_priority",
            "checker_rt_priority",
            "bfd_rt_priority",
            "vrrp_rlimit_rttime",
            "checker_rlimit_rttime",
            "bfd_rlimit_rttime",
            "vrrp_cpu_affinity",
            "checker_cpu_affinity",
            "max_auto_priority",
            "min_auto_priority_delay",
            "process_names",
            "process_name",
            "vrrp_process_name",
            "checker_process_name",
            "vrrp_netlink_cmd_rcv_bufs",
            "vrrp_netlink_cmd_rcv_bufs_force",
            "vrrp_netlink_monitor_rcv_bufs",
            "vrrp_netlink_monitor_rcv_bufs_force",
            "lvs_netlink_cmd_rcv_bufs",
            "lvs_netlink_cmd_rcv_bufs_force",
            "lvs_netlink_monitor_rcv_bufs",
            "lvs_netlink_monitor_rcv_bufs_force",
            "vrrp_rx_bufs_policy",
            "vrrp_rx_bufs_multiplier",
            "checker_log_all_failures",
            "reload_check_config",
            "reload_time_file",
            "config_save_dir",
            "tmp_config_directory",
            "umask",
            "random_seed",
            "child_wait_time",
            "data_use_instance",
            "state_dump_file",
            "stats_dump_file",
            "json_dump_file",
        ),
        _PROCESS,
    ),
    **dict.fromkeys(("linkbeat_use_polling", "dynamic_interfaces"), _NETLINK),
    **dict.fromkeys(
        (
            "vrrp_iptables",
            "vrrp_ipsets",
            "nftables",
            "nftables_priority",
            "nftables_ifindex",
            "nftables_counters",
            "vrrp_skip_check_adv_addr",
            "vrrp_lower_prio_no_advert",
            "vrrp_higher_prio_send_advert",
        ),
        _STRICT,
    ),
    "enable_script_security": "haipvs runs every script as argv, without a shell",
    "script_user": "scripts run as haipvs's user (set User= in the systemd unit if needed)",
    "lvs_id": "legacy keepalived identifier",
    "lvs_flush": "haipvs removes only the services it owns and never flushes the table",
    "lvs_flush_onstop": "haipvs keeps its services at exit unless run with --remove-ipvs-on-exit",
    "vrrp_check_unicast_src": "haipvs accepts unicast adverts only from the configured peers",
    "vrrp_startup_delay": (
        "haipvs starts as BACKUP and waits Master_Down_Interval (RFC 5798 §6.4.1)"
    ),
    "vrrp_gna_interval": "unsolicited NA are paced by garp_interval",
    "vrrp_min_garp": "garp_repeat / garp_master_refresh are translated per instance",
    "vrrp_garp_lower_prio_delay": "not offered (keepalived's reaction to lower-priority adverts)",
    "vrrp_garp_lower_prio_repeat": "not offered (keepalived's reaction to lower-priority adverts)",
    "vrrp_garp_master_refresh_repeat": "each refresh sends one burst of garp_repeat",
    "instance": "the config id is chosen at import time (`@ID` lines)",
    "namespace_with_ipsets": "haipvs adds no ipsets",
}

# keepalived's notify scripts of an instance or a sync group -> haipvs's notify keys; the
# generic `notify` (every change, after the state's own script) is notify.any.
_NOTIFY_HOOKS: dict[str, str] = {
    "notify_master": "master",
    "notify_backup": "backup",
    "notify_fault": "fault",
    "notify_stop": "stop",
    "notify": "any",
}

_VRRP_DROPPED: dict[str, str] = {
    "smtp_alert": _MAIL,
    "debug": "use director.log_level",
    "skip_check_adv_addr": _STRICT,
    "lower_prio_no_advert": _STRICT,
    "higher_prio_send_advert": _STRICT,
    "check_unicast_src": "haipvs accepts unicast adverts only from the configured peers",
    "kernel_rx_buf_size": _PROCESS,
    "garp_lower_prio_delay": "not offered (keepalived's reaction to lower-priority adverts)",
    "garp_lower_prio_repeat": "not offered (keepalived's reaction to lower-priority adverts)",
    "garp_master_refresh_repeat": "each refresh sends one burst of garp_repeat",
    "gna_interval": "unsolicited NA are paced by garp_interval",
    "dont_track_primary": "haipvs tracks only the interfaces listed in track.interfaces",
    "native_ipv6": "IPv6 instances use VRRPv3 (RFC 5798)",
    "notify_master_rx_lower_pri": "not offered; notify.master runs on becoming master",
    "notify_deleted": "not offered",
    "mcast_src_ip": "adverts go out from the interface's primary address",
}

_VS_DROPPED: dict[str, str] = {
    "ha_suspend": "health checks always run, also on the backup director (hot standby)",
    "omega": "quorum.down is not run when haipvs stops (keepalived omega runs quorum_down then)",
    "smtp_alert": _MAIL,
    "sorry_server_inhibit": "the sorry server is added while below quorum and removed after",
    "sorry_server_lvs_method": "the sorry server uses the service's forwarding method",
}

_RS_DROPPED: dict[str, str] = {
    "notify_up": "scripts on real server changes are not offered; alert on check.up/check.down",
    "notify_down": "scripts on real server changes are not offered; alert on check.up/check.down",
    "smtp_alert": _MAIL,
}

_CHECK_DROPPED: dict[str, str] = {
    "bindto": "probes leave from the director's route to the real server",
    "bind_port": "the probe's source port is chosen by the kernel",
    "bind_if": "probes follow the route",
    "fwmark": "probes are not marked",
    "log_all_failures": "every check.down is logged once, with its reason",
    "enable_regex_debug": "no regex debugging",
    "http_protocol": "probes speak HTTP/1.1",
    "fast_recovery": "not offered",
    "ssl_verify": "TLS certificates are not verified, as keepalived's SSL_GET",
    "tls_verify": "TLS certificates are not verified, as keepalived's SSL_GET",
}

_SCHEDULERS = frozenset(
    {"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh", "fo", "ovf", "twos"}
)
_SCHEDULER_FLAGS = {
    "sh-port": "sh-port",
    "sh-fallback": "sh-fallback",
    "mh-port": "mh-port",
    "mh-fallback": "mh-fallback",
}
_FORWARDING = {"NAT": "nat", "DR": "dr", "TUN": "tun"}
_PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}
_SHELL_SYNTAX = re.compile(r"[<>|&;`$(){}*?~]")

# keepalived's defaults (keepalived.conf(5), check_*.c); written out so the output does
# not depend on haipvs's own defaults matching them.
_DEFAULT_DELAY_LOOP = 60.0
_DEFAULT_CONNECT_TIMEOUT = 5.0
_DEFAULT_RETRY = 1
_DEFAULT_PRIORITY = 100
_DEFAULT_SCRIPT_INTERVAL = 1.0
_DEFAULT_PERSISTENCE = 360
_DEFAULT_VRRP_VERSION = 2
_MAX_EFFECTIVE_PRIORITY = 254  # keepalived caps priority plus weights at 254
_MAX_GROUP_RANGE = 256  # a virtual_server_group range expands to at most this many services
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:@-]{0,63}$")


@dataclass(slots=True)
class _InstanceDraft:
    """What a vrrp_instance block says, gathered statement by statement before its YAML
    item is built (the order of statements in keepalived.conf does not matter)."""

    name: str
    anchor: str
    version: int
    garp: dict[str, int | float]
    interface: str | None = None
    vrid: int | None = None
    priority: int = _DEFAULT_PRIORITY
    advert_interval: int | float = 1
    preempt: bool = True
    preempt_delay: int | float = 0
    vip_stmts: list[tuple[Statement, bool]] = field(default_factory=list)
    peers: list[str] = field(default_factory=list)
    unicast_source: str | None = None
    track_interfaces: list[dict[str, Any]] = field(default_factory=list)
    track_scripts: list[dict[str, Any]] = field(default_factory=list)
    track_processes: list[dict[str, Any]] = field(default_factory=list)
    track_files: list[dict[str, Any]] = field(default_factory=list)
    notify: dict[str, list[str]] = field(default_factory=dict)
    auth_stmt: Statement | None = None
    auth_hmac_stmt: Statement | None = None
    accept: bool | None = None
    checksum_stmt: Statement | None = None
    routes: list[dict[str, Any]] = field(default_factory=list)
    rules: list[dict[str, Any]] = field(default_factory=list)
    vmac: dict[str, Any] | None = None
    vmac_stmt: Statement | None = None
    xmit_base_stmt: Statement | None = None
    strict: bool | None = None
    accept_stmt: Statement | None = None
    peer_stmt: Statement | None = None
    preempt_delay_stmt: Statement | None = None


@dataclass(slots=True)
class _Script:
    name: str
    command: list[str]
    interval: float
    timeout: float | None
    rise: int
    fall: int
    weight: int
    block: Statement
    #: A `killall -0 X` / `pidof X` / `pgrep X` script, as the track_process it becomes.
    process: dict[str, Any] | None = None


_PROCESS_NAME = re.compile(r"^[A-Za-z0-9_.:@+-]{1,64}$")


def _process_probe(words: Sequence[str]) -> tuple[str, str | None] | None:
    """(process name, caveat) when `words` only asks whether a process runs by name.

    `killall -0 X` and `pidof X` test the name exactly as track_process does; plain
    `pgrep X` matches X anywhere in the name (a regular expression), `pgrep -x X` exactly.
    Anything else (pgrep -f, users, several names, shell syntax) stays a script.
    """
    if not words:
        return None
    program = words[0].rsplit("/", 1)[-1]
    rest = list(words[1:])
    caveat: str | None = None
    if program == "killall" and len(rest) == 2 and rest[0] == "-0":
        name = rest[1]
    elif program == "pidof" and len(rest) == 1:
        name = rest[0]
    elif program == "pgrep" and len(rest) == 2 and rest[0] == "-x":
        name = rest[1]
    elif program == "pgrep" and len(rest) == 1:
        name = rest[0]
        caveat = (
            f"pgrep {name} matched {name!r} anywhere in a name; track_process matches it exactly"
        )
    else:
        return None
    if not _PROCESS_NAME.match(name) or name.startswith("-"):
        return None
    return name, caveat


def _number(text: str) -> int | float:
    """A number as keepalived's strtod reads one: finite (``nan``, ``inf`` and ``1e999`` are
    no delay, weight or timeout) and without Python's ``_`` digit separators."""
    value = float(text)
    if "_" in text or not math.isfinite(value):
        raise ValueError(text)
    return int(value) if value.is_integer() else value


def _safe_name(text: str) -> str:
    """A name the config accepts (letters, digits and _ . : @ -)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.:@-]", "_", text)[:64]
    if not cleaned or not _NAME.match(cleaned):
        cleaned = ("x" + cleaned)[:64]
    return cleaned


def _host_port(address: str, port: int | None) -> str:
    ip = ipaddress.ip_address(address)
    if port is None:
        return str(ip)
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def _service_label(endpoint: Mapping[str, Any], protocol: str) -> str:
    """The `vs` log key, which the config model also uses as the label."""
    if "fwmark" in endpoint:
        return f"fwmark/{endpoint['fwmark']}"
    vip = ipaddress.ip_address(endpoint["vip"])
    host = f"[{vip}]" if vip.version == 6 else str(vip)
    return f"{protocol}/{host}:{endpoint['port']}"


def _status_codes(args: Iterable[str]) -> list[int | str] | None:
    """`200-299 400 503` (keepalived status_code) -> ["200-299", 400, 503]."""
    codes: list[int | str] = []
    for arg in args:
        for part in arg.split(","):
            if not part:
                continue
            low, dash, high = part.partition("-")
            if not low.isdigit() or (dash and not high.isdigit()):
                return None
            first, last = int(low), int(high) if dash else int(low)
            if not 100 <= first <= last <= 599:
                return None
            codes.append(f"{first}-{last}" if dash else first)
    return codes or None


class _Translator:
    def __init__(self) -> None:
        self.findings: list[Finding] = []
        self.scripts: dict[str, _Script] = {}
        self.groups: dict[str, Statement] = {}
        self.sync_groups: list[dict[str, Any]] = []
        self.default_interface: str | None = None
        #: keepalived global_defs vrrp_strict: every instance's strict_mode default.
        self.strict_default = False
        self.vrrp_version = _DEFAULT_VRRP_VERSION
        self.garp_defaults: dict[str, int | float] = {}
        self.ipvs: dict[str, Any] = {}
        self.anchors: dict[str, str] = {}
        self.origins: dict[str, Location] = {}
        self.comments: dict[str, tuple[str, ...]] = {}
        self.instance_names: set[str] = set()
        self.used_groups: set[str] = set()
        self.used_scripts: set[str] = set()
        self.used_processes: set[str] = set()
        self.removed_scripts: set[str] = set()  # vrrp_script blocks without `script`
        self.used_files: set[str] = set()
        # keepalived vrrp_track_process / track_file blocks: (item, default weight, block)
        self.processes: dict[str, tuple[dict[str, Any], int, Statement]] = {}
        self.files: dict[str, tuple[dict[str, Any], int, Statement]] = {}

    # -- findings ----------------------------------------------------------------------

    def add(self, severity: Severity, stmt: Statement, message: str, anchor: str | None) -> None:
        self.findings.append(Finding(stmt.location, stmt.keyword, severity, message, anchor))

    def note(self, stmt: Statement, message: str, anchor: str | None = None) -> None:
        self.add(Severity.NOTE, stmt, message, anchor)

    def dropped(self, stmt: Statement, message: str, anchor: str | None = None) -> None:
        self.add(Severity.DROPPED, stmt, message, anchor)

    def unsupported(self, stmt: Statement, message: str, anchor: str | None = None) -> None:
        self.add(Severity.UNSUPPORTED, stmt, message, anchor)

    def unknown(self, stmt: Statement, where: str, anchor: str | None) -> None:
        # An unknown keyword may change behaviour: refuse rather than guess (rule 2).
        self.unsupported(stmt, f"not known to the importer in {where}", anchor)

    # -- values ------------------------------------------------------------------------

    def arg(self, stmt: Statement, anchor: str | None, index: int = 0) -> str | None:
        if len(stmt.args) <= index:
            self.unsupported(stmt, "is missing its value", anchor)
            return None
        return stmt.args[index]

    def num(
        self, stmt: Statement, anchor: str | None, *, low: float | None = None
    ) -> int | float | None:
        text = self.arg(stmt, anchor)
        if text is None:
            return None
        try:
            value = _number(text)
        except ValueError:
            self.unsupported(stmt, f"{text!r} is not a number", anchor)
            return None
        if low is not None and value < low:
            self.unsupported(stmt, f"{text} is below {low:g}", anchor)
            return None
        return value

    def integer(self, stmt: Statement, anchor: str | None) -> int | None:
        text = self.arg(stmt, anchor)
        if text is None:
            return None
        try:
            return int(text)
        except ValueError:
            self.unsupported(stmt, f"{text!r} is not an integer", anchor)
            return None

    def argv(self, stmt: Statement, anchor: str | None) -> list[str] | None:
        """A command line as keepalived reads it: one quoted string, or several words."""
        if not stmt.args:
            self.unsupported(stmt, "is missing its command", anchor)
            return None
        if len(stmt.args) > 1:
            words = list(stmt.args)
        else:
            raw = stmt.args[0]
            if _SHELL_SYNTAX.search(raw):
                # keepalived's own samples rely on a shell ("</dev/tcp/127.0.0.1/80");
                # haipvs runs argv without one, so the shell is made explicit. /dev/tcp is
                # a bash feature (the sample's comment says so).
                shell = "/bin/bash" if re.search(r"/dev/(tcp|udp)/", raw) else "/bin/sh"
                self.note(stmt, f"shell syntax in {raw!r}: run through {shell} -c", anchor)
                return [shell, "-c", raw]
            try:
                words = shlex.split(raw)
            except ValueError as exc:
                self.unsupported(stmt, f"cannot split {raw!r}: {exc}", anchor)
                return None
        if not words or not words[0]:
            self.unsupported(stmt, "is an empty command", anchor)
            return None
        if not words[0].startswith("/"):
            # keepalived searches PATH for a bare program name; haipvs wants an absolute
            # path, and env(1) keeps the PATH search.
            self.note(
                stmt, f"{words[0]!r} is not an absolute path: run through /usr/bin/env", anchor
            )
            return ["/usr/bin/env", *words]
        return words

    def notify_argv(self, stmt: Statement, anchor: str | None) -> list[str] | None:
        """A notify script line as keepalived reads it (lib/notify.c notify_script_init):
        the first word is the command (quoted when it has arguments), the words after it
        the user and group to run it as; haipvs runs its scripts as its own user."""
        if len(stmt.args) > 1:
            self.dropped(
                stmt,
                f"run as {' '.join(stmt.args[1:])!r} (keepalived's username [groupname]): "
                "scripts run as haipvs's user (set User= in the systemd unit if needed)",
                anchor,
            )
            stmt = replace(stmt, args=stmt.args[:1])
        return self.argv(stmt, anchor)

    # -- top level ---------------------------------------------------------------------

    def run(self, parsed: ParsedConfig) -> dict[str, Any]:
        director: dict[str, Any] = {}
        vrrp: list[dict[str, Any]] = []
        services: list[dict[str, Any]] = []

        for skipped in parsed.skipped:
            words = skipped.text.split()
            # "@high priority 170": the keyword is the word after the config id.
            keyword = words[1] if words[0].startswith("@") and len(words) > 1 else words[0]
            self.findings.append(
                Finding(skipped.location, keyword, Severity.DROPPED, skipped.reason)
            )

        for empty in parsed.empty_includes:
            self.findings.append(
                Finding(empty.location, "include", Severity.NOTE, f"{empty.text}: {empty.reason}")
            )

        # Definitions others refer to may come anywhere in the file: read them first.
        sync_blocks: list[Statement] = []
        for stmt in parsed.statements:
            if stmt.keyword == "global_defs":
                self.origins.setdefault("director", stmt.location)
                self.global_defs(stmt, director)
            elif stmt.keyword == "vrrp_script":
                self.vrrp_script(stmt)
            elif stmt.keyword == "virtual_server_group" and stmt.args:
                self.groups[stmt.args[0]] = stmt
            elif stmt.keyword == "vrrp_sync_group":
                sync_blocks.append(stmt)
            elif stmt.keyword == "vrrp_track_process":
                self.track_process_block(stmt)
            elif stmt.keyword in {"track_file", "vrrp_track_file"}:
                self.track_file_block(stmt)

        for stmt in parsed.statements:
            kw = stmt.keyword
            if kw == "vrrp_instance":
                instance = self.vrrp_instance(stmt)
                if instance is not None:
                    vrrp.append(instance)
                    self.origins[f"vrrp {instance['name']}"] = stmt.location
                    self.keep_comments(f"vrrp {instance['name']}", stmt)
            elif kw == "virtual_server":
                services.extend(self.virtual_server(stmt))
            elif kw in {
                "global_defs",
                "vrrp_script",
                "virtual_server_group",
                "vrrp_sync_group",
                "vrrp_track_process",
                "track_file",
                "vrrp_track_file",
            }:
                continue
            elif kw in {"static_ipaddress", "static_routes", "static_rules"}:
                self.dropped(
                    stmt,
                    "static addresses, routes and rules do not follow mastership: configure "
                    "them with the system's network configuration",
                )
            elif kw == "bfd_instance":
                self.unsupported(stmt, "this tracker is not offered (it changes failover)")
            elif kw in {"linkbeat_interfaces", "garp_group"}:
                self.dropped(stmt, "netlink and garp_interval are used instead")
            elif kw == "net_namespace":
                self.net_namespace(stmt)
            elif kw in _GLOBAL_DROPPED:
                # keepalived accepts some global keywords outside global_defs too.
                self.dropped(stmt, _GLOBAL_DROPPED[kw])
            else:
                self.unknown(stmt, "the top level", None)

        for block in sync_blocks:
            self.vrrp_sync_group(block)
        for name, group in self.groups.items():
            if name not in self.used_groups:
                self.note(group, f"virtual_server_group {name!r} is not used by any virtual_server")
        for name, script in self.scripts.items():
            if name not in self.used_scripts:
                self.note(script.block, f"vrrp_script {name!r} is not tracked by any instance")
        for kind, blocks, used in (
            ("vrrp_track_process", self.processes, self.used_processes),
            ("track_file", self.files, self.used_files),
        ):
            for name, (_, _, block) in blocks.items():
                if name not in used:
                    self.note(block, f"{kind} {name!r} is not tracked by any instance")

        config: dict[str, Any] = {}
        if director:
            config["director"] = director
        config["vrrp"] = vrrp
        if self.sync_groups:
            config["sync_groups"] = self.sync_groups
        config["virtual_servers"] = services
        if self.ipvs:
            config["ipvs"] = self.ipvs
        return config

    def keep_comments(self, anchor: str, block: Statement) -> None:
        """The block's own comments, then its statements' (named by keyword and line)."""
        lines = list(block.comments)

        def walk(stmts: Iterable[Statement]) -> None:
            for stmt in stmts:
                line = stmt.location.line
                lines.extend(f"{stmt.keyword} (line {line}): {c}" for c in stmt.comments)
                walk(stmt.block or ())

        walk(block.block or ())
        if lines:
            self.comments[anchor] = tuple(lines)

    # -- global_defs -------------------------------------------------------------------

    def global_defs(self, block: Statement, director: dict[str, Any]) -> None:
        for stmt in block.block or ():
            kw = stmt.keyword
            if kw == "router_id":
                value = self.arg(stmt, None)
                if value is not None:
                    director["name"] = _safe_name(value)
                    if director["name"] != value:
                        self.note(stmt, f"{value!r} becomes {director['name']!r}")
            elif kw == "default_interface":
                self.default_interface = self.arg(stmt, None)
            elif kw == "vrrp_strict":
                word = stmt.args[0].lower() if stmt.args else "true"
                self.strict_default = word in {"true", "on", "yes", "1"}
                self.note(stmt, "every vrrp_instance gets `strict: true` (unless strict_mode off)")
            elif kw == "vrrp_version":
                version = self.integer(stmt, None)
                if version in (2, 3):
                    self.vrrp_version = version
                elif version is not None:
                    self.unsupported(stmt, f"version {version} is not 2 or 3")
            elif kw in {"vrrp_mcast_group4", "vrrp_mcast_group6"}:
                default = "224.0.0.18" if kw.endswith("4") else "ff02::12"
                if stmt.args and stmt.args[0].lower() != default:
                    self.unsupported(
                        stmt, f"haipvs sends adverts to {default} (RFC 5798 §5.1.1.2, §5.1.2.2)"
                    )
            elif kw in {
                "vrrp_garp_master_delay",
                "vrrp_garp_master_repeat",
                "vrrp_garp_master_refresh",
                "vrrp_garp_interval",
            }:
                seconds = self.num(stmt, None, low=0)
                if seconds is not None:
                    self.garp_defaults[kw.removeprefix("vrrp_")] = seconds
            elif kw == "net_namespace":
                self.net_namespace(stmt)
            elif kw == "lvs_timeouts":
                self.lvs_timeouts(stmt)
            elif kw == "lvs_sync_daemon":
                self.lvs_sync_daemon(stmt)
            elif kw in {"notify_fifo", "vrrp_notify_fifo", "lvs_notify_fifo"}:
                self.notify_fifo(stmt, director)
            elif kw in {"notify_fifo_script", "vrrp_notify_fifo_script", "lvs_notify_fifo_script"}:
                self.unsupported(
                    stmt,
                    "haipvs does not start the FIFO's reader: run it as a service of its own "
                    "reading director.notify_fifo",
                )
            elif kw in _GLOBAL_DROPPED:
                self.dropped(stmt, _GLOBAL_DROPPED[kw])
            else:
                self.unknown(stmt, "global_defs", None)

    def notify_fifo(self, stmt: Statement, director: dict[str, Any]) -> None:
        """keepalived's FIFOs (global, VRRP-only, LVS-only) become the one director FIFO."""
        path = self.arg(stmt, None)
        if path is None:
            return
        if not path.startswith("/"):
            self.unsupported(stmt, f"{path!r} is not an absolute path")
            return
        current = director.get("notify_fifo")
        if current is not None and current != path:
            self.unsupported(stmt, f"haipvs writes one FIFO ({current}); merge the readers onto it")
            return
        director["notify_fifo"] = path
        if stmt.keyword != "notify_fifo":
            self.note(stmt, "the FIFO carries every line (INSTANCE, VS and RS), not only this kind")
        if len(stmt.args) > 1:
            self.note(stmt, "the FIFO is made mode 0600 for the daemon's user; owner not set")

    def net_namespace(self, stmt: Statement) -> None:
        # Interfaces, VIPs and the IPVS table are per namespace: the whole config means
        # something else in the host's namespace, so the operator must place haipvs.
        self.unsupported(
            stmt,
            "haipvs runs in the namespace it is started in: set NetworkNamespacePath="
            f"/run/netns/{stmt.args[0] if stmt.args else 'NAME'} in a drop-in of the unit",
        )

    def lvs_timeouts(self, stmt: Statement) -> None:
        timeouts: dict[str, int] = {}
        args = list(stmt.args)
        for i in range(0, len(args) - 1, 2):
            key, value = args[i], args[i + 1]
            if key in {"tcp", "tcpfin", "udp"} and value.isdigit():
                timeouts[key] = int(value)
            else:
                self.unsupported(stmt, f"cannot read `{key} {value}`")
        if len(args) % 2:
            self.unsupported(stmt, f"`{args[-1]}` has no value")
        if timeouts:
            self.ipvs["timeouts"] = timeouts
            self.origins.setdefault("ipvs", stmt.location)

    def lvs_sync_daemon(self, stmt: Statement) -> None:
        # lvs_sync_daemon IFACE [INSTANCE] [id N] [maxlen N] [port N] [ttl N] [group ADDR]
        args = list(stmt.args)
        if not args:
            self.unsupported(stmt, "needs an interface")
            return
        daemon: dict[str, Any] = {"interface": args[0]}
        rest = args[1:]
        if rest and rest[0] not in {"id", "maxlen", "port", "ttl", "group"}:
            daemon["instance"] = rest.pop(0)
        keys = {"id": "syncid", "maxlen": "maxlen", "port": "port", "ttl": "ttl"}
        while rest:
            key = rest.pop(0)
            value = rest.pop(0) if rest else None
            if value is None:
                self.unsupported(stmt, f"`{key}` has no value")
            elif key in keys and value.isdigit():
                daemon[keys[key]] = int(value)
            elif key == "group":
                daemon["group"] = value
            else:
                self.unsupported(stmt, f"cannot read `{key} {value}`")
        self.ipvs["sync_daemon"] = daemon
        self.origins.setdefault("ipvs", stmt.location)

    # -- vrrp_script / vrrp_sync_group -------------------------------------------------

    def vrrp_script(self, block: Statement) -> None:
        if not block.args:
            self.unsupported(block, "has no name")
            return
        name = block.args[0]
        anchor = f"vrrp_script {name}"
        script = _Script(name, [], _DEFAULT_SCRIPT_INTERVAL, None, 1, 1, 0, block)
        for stmt in block.block or ():
            kw = stmt.keyword
            if kw == "script":
                script.command = self.argv(stmt, anchor) or []
            elif kw == "interval":
                value = self.num(stmt, anchor, low=0.01)
                if value is not None:
                    script.interval = value
            elif kw == "timeout":
                value = self.num(stmt, anchor, low=0.01)
                if value is not None:
                    script.timeout = value
            elif kw in {"rise", "fall"}:
                count = self.integer(stmt, anchor)
                if count is not None:
                    setattr(script, kw, max(1, count))
            elif kw == "weight":
                weight = self.integer(stmt, anchor)
                if weight is not None:
                    script.weight = weight
                if len(stmt.args) > 1 and stmt.args[1] == "reverse":
                    self.unsupported(stmt, "`weight N reverse` is not offered", anchor)
            elif kw == "user":
                self.dropped(stmt, "scripts run as haipvs's own user", anchor)
            elif kw == "init_fail":
                self.note(stmt, "haipvs starts every tracked script as failing", anchor)
            else:
                self.unknown(stmt, "vrrp_script", anchor)
        if script.timeout is not None and script.timeout > script.interval:
            # haipvs refuses a timeout longer than the interval: the next run would start
            # while the last one is still running.
            self.note(block, f"timeout {script.timeout:g} s cut to the interval", anchor)
            script.timeout = script.interval
        if not script.command:
            if block.child("script") is None:
                # keepalived: "No script set for vrrp_script - removing"; the instances
                # tracking it run without it (conditional `@ID script` lines do this).
                self.removed_scripts.add(name)
                self.dropped(block, "has no `script`: keepalived removes it too", anchor)
            else:
                self.unsupported(block, "has no usable `script`", anchor)
            return
        self.process_probe(block, script, anchor)
        self.scripts[name] = script

    def process_probe(self, block: Statement, script: _Script, anchor: str) -> None:
        """A script that only checks a process by name becomes a native track_process.

        It needs no fork every interval and works under the packaged unit, where the
        script would run as the haipvs user. rise/fall become the delays that give the
        same reaction time ((rise - 1) and (fall - 1) intervals).
        """
        stmt = block.child("script")
        if stmt is None:
            return
        words = list(stmt.args) if len(stmt.args) > 1 else None
        if words is None:
            try:
                words = shlex.split(stmt.args[0]) if stmt.args else []
            except ValueError:
                return
        probe = _process_probe(words)
        if probe is None:
            return
        process, caveat = probe
        script.process = {
            "name": _safe_name(script.name),
            "process": process,
            "interval": script.interval,
        }
        if script.rise > 1:
            script.process["fork_delay"] = round((script.rise - 1) * script.interval, 3)
        if script.fall > 1:
            script.process["terminate_delay"] = round((script.fall - 1) * script.interval, 3)
        # The script's own notes (PATH search through env) no longer apply.
        self.findings = [f for f in self.findings if f.location != stmt.location]
        message = f"`{' '.join(words)}` becomes track_process {process!r} (read from /proc)"
        if caveat:
            message += f"; {caveat}"
        self.note(stmt, message, anchor)

    def track_process_block(self, block: Statement) -> None:
        """keepalived `vrrp_track_process NAME { ... }`: kept until an instance tracks it."""
        if not block.args:
            self.unsupported(block, "has no name")
            return
        name = block.args[0]
        anchor = f"vrrp_track_process {name}"
        item: dict[str, Any] = {"name": _safe_name(name)}
        weight = 1  # keepalived's default for track_process
        for stmt in block.block or ():
            kw = stmt.keyword
            if kw == "process":
                if not stmt.args:
                    self.unsupported(stmt, "is missing the process name", anchor)
                    continue
                item["process"] = stmt.args[0]
                if len(stmt.args) > 1:
                    item["args"] = list(stmt.args[1:])
            elif kw == "param_match":
                mode = self.arg(stmt, anchor)
                if mode in {"initial", "partial"}:
                    item["param_match"] = mode
                    item.setdefault("args", [])
                elif mode is not None:
                    self.unsupported(stmt, f"param_match {mode!r} is not initial/partial", anchor)
            elif kw == "weight":
                value = self.integer(stmt, anchor)
                if value is not None:
                    weight = value
                if len(stmt.args) > 1 and stmt.args[1] == "reverse":
                    self.unsupported(stmt, "`weight N reverse` is not offered", anchor)
            elif kw in {"quorum", "quorum_max"}:
                value = self.integer(stmt, anchor)
                if value is not None:
                    item[kw] = value
            elif kw in {"fork_delay", "terminate_delay", "delay"}:
                delay = self.num(stmt, anchor, low=0)
                if delay is not None:
                    keys = ("fork_delay", "terminate_delay") if kw == "delay" else (kw,)
                    for key in keys:
                        item[key] = delay
            elif kw == "full_command":
                item["full_command"] = True
            else:
                self.unknown(stmt, "vrrp_track_process", anchor)
        if "process" not in item:
            self.unsupported(block, "has no `process`", anchor)
            return
        self.processes[name] = (item, weight, block)

    def track_file_block(self, block: Statement) -> None:
        """keepalived `track_file NAME { file PATH; weight W }` (vrrp_track_file)."""
        if not block.args:
            self.unsupported(block, "has no name")
            return
        name = block.args[0]
        anchor = f"track_file {name}"
        item: dict[str, Any] = {"name": _safe_name(name)}
        weight = 1  # keepalived's default for track_file
        for stmt in block.block or ():
            kw = stmt.keyword
            if kw == "file":
                path = self.arg(stmt, anchor)
                if path is not None and not path.startswith("/"):
                    self.unsupported(stmt, f"{path!r} is not an absolute path", anchor)
                elif path is not None:
                    item["path"] = path
            elif kw == "weight":
                value = self.integer(stmt, anchor)
                if value is not None:
                    weight = value
                if len(stmt.args) > 1 and stmt.args[1] == "reverse":
                    self.unsupported(stmt, "`weight N reverse` is not offered", anchor)
            elif kw == "init_file":
                self.unsupported(
                    stmt,
                    "haipvs does not create or write tracked files: create it at boot "
                    "(systemd-tmpfiles) with the initial value",
                    anchor,
                )
            else:
                self.unknown(stmt, "track_file", anchor)
        if "path" not in item:
            self.unsupported(block, "has no usable `file`", anchor)
            return
        self.files[name] = (item, weight, block)

    def vrrp_sync_group(self, block: Statement) -> None:
        name = _safe_name(block.args[0]) if block.args else "sync_group"
        members: list[str] = []
        notify: dict[str, list[str]] = {}
        for stmt in block.block or ():
            kw = stmt.keyword
            if kw == "group":
                for entry in stmt.block or ():
                    members.extend(entry.words)
            elif kw in _NOTIFY_HOOKS:
                command = self.notify_argv(stmt, None)
                if command is not None:
                    notify[_NOTIFY_HOOKS[kw]] = command
            elif kw in {"smtp_alert"}:
                self.dropped(stmt, _MAIL)
            elif kw in {"global_tracking", "sync_group_tracking_weight"}:
                self.note(stmt, "every member keeps its own tracking")
            elif kw.startswith("track_"):
                self.unsupported(stmt, "tracking on a sync group is not offered")
            elif stmt.block is None and not stmt.args:
                # keepalived 1.x syntax: members listed without a `group { }` block.
                members.append(kw)
            else:
                self.unknown(stmt, "vrrp_sync_group", None)
        known = [m for m in members if m in self.instance_names]
        for missing in (m for m in members if m not in self.instance_names):
            self.unsupported(block, f"member {missing!r} is not a translated vrrp_instance")
        if len(known) < 2:
            # keepalived drops a group of one instance too: it synchronises nothing.
            self.note(block, "a sync group of fewer than two instances is left out")
            if notify:
                self.unsupported(
                    block,
                    "its notify scripts would be lost with the group: move them to the "
                    "instance's notify",
                )
            return
        group: dict[str, Any] = {"name": name, "instances": known}
        if notify:
            group["notify"] = notify
        self.sync_groups.append(group)
        self.origins[f"sync_groups {name}"] = block.location

    # -- vrrp_instance -----------------------------------------------------------------

    def vrrp_instance(self, block: Statement) -> dict[str, Any] | None:
        if not block.args:
            self.unsupported(block, "has no name")
            return None
        name = _safe_name(block.args[0])
        draft = _InstanceDraft(
            name=name, anchor=f"vrrp {name}", version=self.vrrp_version,
            garp=dict(self.garp_defaults),
        )
        if name != block.args[0]:
            self.note(block, f"{block.args[0]!r} becomes {name!r}", draft.anchor)
        for stmt in block.block or ():
            if not (
                self._instance_election(stmt, draft)
                or self._instance_addressing(stmt, draft)
                or self._instance_tracking(stmt, draft)
                or self._instance_announcing(stmt, draft)
            ):
                self._instance_refused(stmt, draft)
        return self._instance_item(block, draft)

    def _instance_election(self, stmt: Statement, d: _InstanceDraft) -> bool:
        """Who wins: interface, VRID, priority, timing, version, preemption."""
        kw, anchor = stmt.keyword, d.anchor
        if kw == "interface":
            d.interface = self.arg(stmt, anchor)
        elif kw == "virtual_router_id":
            d.vrid = self.integer(stmt, anchor)
        elif kw == "priority":
            value_p = self.integer(stmt, anchor)
            if value_p is not None:
                d.priority = value_p
        elif kw == "advert_int":
            value = self.num(stmt, anchor, low=0.01)
            if value is not None:
                d.advert_interval = value
        elif kw == "version":
            value_v = self.integer(stmt, anchor)
            if value_v in (2, 3):
                d.version = value_v
            elif value_v is not None:
                self.unsupported(stmt, f"version {value_v} is not 2 or 3", anchor)
        elif kw == "nopreempt":
            d.preempt = False
        elif kw == "preempt":
            d.preempt = True
        elif kw == "preempt_delay":
            value = self.num(stmt, anchor, low=0)
            if value is not None:
                d.preempt_delay = value
                d.preempt_delay_stmt = stmt
        elif kw == "state":
            self.note(
                stmt,
                "every instance starts as BACKUP and is elected by priority "
                "(RFC 5798 §6.4.1); `state` is not needed",
                anchor,
            )
        else:
            return False
        return True

    def _instance_addressing(self, stmt: Statement, d: _InstanceDraft) -> bool:
        """What is advertised and to whom: VIPs, unicast peers, checksum, authentication,
        accept mode."""
        kw, anchor = stmt.keyword, d.anchor
        if kw == "virtual_ipaddress":
            d.vip_stmts.extend((entry, False) for entry in stmt.block or ())
        elif kw == "virtual_ipaddress_excluded":
            self.note(
                stmt,
                "excluded addresses become ordinary vips, so they are also carried in "
                "adverts (a keepalived peer logs an address-list mismatch)",
                anchor,
            )
            d.vip_stmts.extend((entry, True) for entry in stmt.block or ())
        elif kw == "unicast_peer":
            d.peer_stmt = stmt
            for entry in stmt.block or ():
                d.peers.append(entry.keyword)
                if entry.args:
                    self.dropped(
                        entry, f"peer options `{' '.join(entry.args)}` are not offered", anchor
                    )
        elif kw == "unicast_src_ip":
            d.unicast_source = self.arg(stmt, anchor)
        elif kw == "old_unicast_checksum":
            d.checksum_stmt = stmt
        elif kw == "authentication":
            d.auth_stmt = stmt
        elif kw == "auth_hmac":
            d.auth_hmac_stmt = stmt
        elif kw in {"accept", "no_accept"}:
            d.accept = kw == "accept"
            d.accept_stmt = stmt
        else:
            return False
        return True

    def _instance_tracking(self, stmt: Statement, d: _InstanceDraft) -> bool:
        """track_interface, track_script, track_process, track_file."""
        kw, anchor = stmt.keyword, d.anchor
        if kw == "track_interface":
            for entry in stmt.block or ():
                weight = self.track_weight(entry, 0, anchor)
                d.track_interfaces.append({"name": entry.keyword, "weight": weight})
        elif kw == "track_script":
            for entry in stmt.block or ():
                self._instance_track_script(entry, d)
        elif kw == "track_process":
            for entry in stmt.block or ():
                self._instance_tracked(
                    entry, "vrrp_track_process", defined=self.processes,
                    used=self.used_processes, into=d.track_processes, anchor=anchor,
                )
        elif kw == "track_file":
            for entry in stmt.block or ():
                self._instance_tracked(
                    entry, "track_file", defined=self.files, used=self.used_files,
                    into=d.track_files, anchor=anchor,
                )
        else:
            return False
        return True

    def _instance_tracked(
        self,
        entry: Statement,
        what: str,
        *,
        defined: dict[str, tuple[dict[str, Any], int, Statement]],
        used: set[str],
        into: list[dict[str, Any]],
        anchor: str,
    ) -> None:
        """One entry of a track_process / track_file list: the global block it names, with
        the entry's weight (or the block's own)."""
        found = defined.get(entry.keyword)
        used.add(entry.keyword)
        if found is None:
            self.unsupported(entry, f"{what} {entry.keyword!r} is not usable", anchor)
            return
        item = dict(found[0])
        item["weight"] = self.track_weight(entry, found[1], anchor)
        into.append(item)

    def _instance_track_script(self, entry: Statement, d: _InstanceDraft) -> None:
        """One track_script entry: a script check, or the track_process a `killall -0` /
        `pidof` / `pgrep` script became."""
        anchor = d.anchor
        script = self.scripts.get(entry.keyword)
        self.used_scripts.add(entry.keyword)
        if script is None and entry.keyword in self.removed_scripts:
            self.dropped(
                entry,
                f"vrrp_script {entry.keyword!r} has no script: keepalived ignores tracking it",
                anchor,
            )
            return
        if script is None:
            self.unsupported(entry, f"vrrp_script {entry.keyword!r} is not usable", anchor)
            return
        if script.process is not None:
            process_item = dict(script.process)
            process_item["weight"] = self.track_weight(entry, script.weight, anchor)
            d.track_processes.append(process_item)
            return
        item: dict[str, Any] = {
            "name": _safe_name(script.name),
            "command": script.command,
            "interval": script.interval,
        }
        if script.timeout is not None:
            item["timeout"] = script.timeout
        item["weight"] = self.track_weight(entry, script.weight, anchor)
        item["rise"] = script.rise
        item["fall"] = script.fall
        d.track_scripts.append(item)

    def _instance_announcing(self, stmt: Statement, d: _InstanceDraft) -> bool:
        """What a transition runs and sends: notify scripts, gratuitous ARP timing, the
        keepalived 1.x sync daemon that follows this instance."""
        kw, anchor = stmt.keyword, d.anchor
        if kw in _NOTIFY_HOOKS:
            command = self.notify_argv(stmt, anchor)
            if command is not None:
                d.notify[_NOTIFY_HOOKS[kw]] = command
        elif kw in {"garp_master_delay", "garp_master_repeat", "garp_master_refresh"}:
            value = self.num(stmt, anchor, low=0)
            if value is not None:
                d.garp[kw] = value
        elif kw == "garp_interval":
            value = self.num(stmt, anchor, low=0)
            if value is not None:
                d.garp["garp_interval"] = value
        elif kw == "lvs_sync_daemon_interface":
            # keepalived 1.x: the sync daemon follows this instance's state.
            self.ipvs["sync_daemon"] = {"interface": self.arg(stmt, anchor), "instance": d.name}
            self.origins.setdefault("ipvs", stmt.location)
        else:
            return False
        return True

    def _instance_refused(self, stmt: Statement, d: _InstanceDraft) -> None:
        """Everything else: not offered (located, with what it would change), dropped, or
        unknown."""
        kw, anchor = stmt.keyword, d.anchor
        if kw == "use_vmac":
            d.vmac_stmt = stmt
            d.vmac = {"name": stmt.args[0]} if stmt.args else {}
        elif kw == "vmac_xmit_base":
            d.xmit_base_stmt = stmt
        elif kw == "strict_mode":
            word = stmt.args[0].lower() if stmt.args else "true"
            d.strict = word in {"true", "on", "yes", "1"}
        elif kw == "use_ipvlan":
            self._instance_ipvlan(stmt, d)
        elif kw in {"virtual_routes", "virtual_rules"}:
            self._instance_routing(stmt, d)
        elif kw in {"track_bfd", "track_src_ip"}:
            self.unsupported(stmt, "this tracker is not offered (it changes failover)", anchor)
        elif kw in _VRRP_DROPPED:
            self.dropped(stmt, _VRRP_DROPPED[kw], anchor)
        else:
            self.unknown(stmt, "vrrp_instance", anchor)

    def _instance_strict(
        self, block: Statement, d: _InstanceDraft, out: dict[str, Any], priority: int
    ) -> None:
        """keepalived vrrp_strict / strict_mode as keepalived applies it to one instance
        (vrrp.c vrrp_complete_instance): refused, reset, or carried as `strict: true`."""
        anchor = d.anchor
        refused = False
        if d.peer_stmt is not None and d.peers:
            refused = True
            self.unsupported(
                d.peer_stmt,
                "keepalived refuses a strict instance with unicast peers (\"Unicast peers "
                "are not supported in strict mode\")",
                anchor,
            )
        if d.auth_stmt is not None:
            self.dropped(d.auth_stmt, "keepalived ignores authentication in strict mode", anchor)
        if d.preempt_delay and d.preempt_delay_stmt is not None:
            self.dropped(
                d.preempt_delay_stmt, "keepalived resets preempt_delay in strict mode", anchor
            )
            out["preempt_delay"] = 0
        if d.xmit_base_stmt is not None and d.vmac is not None:
            self.dropped(
                d.xmit_base_stmt, "keepalived clears vmac_xmit_base in strict mode", anchor
            )
            d.xmit_base_stmt = None
        if priority != 255:  # the address owner runs in accept mode, strict or not
            refused = self._strict_accept(block, d) or refused
        if not refused:
            out["strict"] = True

    def _strict_accept(self, block: Statement, d: _InstanceDraft) -> bool:
        """A strict non-owner: keepalived runs it without accept mode unless `accept` is
        written (and never for VRRPv2); True when that is refused."""
        anchor = d.anchor
        without = (
            "keepalived runs it without accept mode and drops traffic to its VIPs with "
            "nftables rules, which haipvs does not install"
        )
        if d.version == 2:
            self.unsupported(
                block, f"strict VRRPv2 (RFC 3768): {without}; use VRRPv3 with `accept`", anchor
            )
            return True
        if d.accept is None:
            self.unsupported(
                block,
                f"strict: {without}; add `accept` to the instance (keepalived then runs it "
                "in accept mode too) or remove vrrp_strict",
                anchor,
            )
            return True
        return False

    def _instance_ipvlan(self, stmt: Statement, d: _InstanceDraft) -> None:
        """keepalived `use_ipvlan [NAME] [ADDRESS/PREFIX] [bridge|private|vepa]`."""
        item: dict[str, Any] = {}
        for word in stmt.args:
            if word == "bridge":
                continue
            if word in {"private", "vepa"}:
                self.unsupported(stmt, f"ipvlan mode {word} is not offered (bridge is)", d.anchor)
                return
            try:
                ipaddress.ip_interface(word)
            except ValueError:
                item["name"] = word
                continue
            self.unsupported(
                stmt,
                f"an address on the ipvlan ({word}, keepalived's advert source) is not "
                "offered: adverts leave with the base interface's primary address",
                d.anchor,
            )
            return
        item["ipvlan"] = True
        d.vmac = item
        d.vmac_stmt = stmt

    def _instance_vmac(
        self, block: Statement, d: _InstanceDraft, vips: Sequence[str | dict[str, str]]
    ) -> dict[str, Any] | None:
        """use_vmac [NAME] / vmac_xmit_base -> vmac: {name, xmit_base} (IPv4 only)."""
        if d.vmac is None:
            if d.xmit_base_stmt is not None:
                # keepalived: vmac_xmit_base without use_vmac changes nothing.
                self.dropped(d.xmit_base_stmt, "has no effect without use_vmac", d.anchor)
            return None
        assert d.vmac_stmt is not None
        first = vips[0] if isinstance(vips[0], str) else vips[0]["address"]
        if ipaddress.ip_interface(first).version == 6:
            self.unsupported(
                d.vmac_stmt,
                "a virtual MAC for an IPv6 instance is not offered (the macvlan would need "
                "a link-local address of its own)",
                d.anchor,
            )
            return None
        vmac = dict(d.vmac)
        if d.xmit_base_stmt is not None:
            vmac["xmit_base"] = True
        return vmac

    def _instance_routing(self, stmt: Statement, d: _InstanceDraft) -> None:
        """virtual_routes / virtual_rules: each line as keepalived reads it
        (haipvs.importer.routes), reported at its own line."""
        routes = stmt.keyword == "virtual_routes"
        translate_one = route_item if routes else rule_item
        into = d.routes if routes else d.rules
        for entry in stmt.block or ():
            translated: Translated = translate_one([entry.keyword, *entry.args])
            for kind, message in translated.findings:
                self.add(Severity(kind), entry, message, d.anchor)
            if translated.item is not None:
                into.append(translated.item)

    def _instance_vips(
        self, block: Statement, d: _InstanceDraft, interface: str
    ) -> list[str | dict[str, str]] | None:
        """The instance's VIPs, each once; None (reported) when there are none. Settles the
        version: keepalived runs an IPv6 instance as VRRPv3."""
        anchor = d.anchor
        vips: list[str | dict[str, str]] = []
        seen: set[str] = set()
        for entry, _ in d.vip_stmts:
            vip = self.vip(entry, interface, anchor)
            if vip is None:
                continue
            address = vip if isinstance(vip, str) else vip["address"]
            if str(ipaddress.ip_interface(address).ip) in seen:
                # keepalived adds an address once however often it is listed.
                self.note(entry, f"{entry.keyword} is listed twice: kept once", anchor)
                continue
            seen.add(str(ipaddress.ip_interface(address).ip))
            vips.append(vip)
        if not vips:
            self.unsupported(block, "has no virtual_ipaddress", anchor)
            return None
        families = {
            ipaddress.ip_interface(v if isinstance(v, str) else v["address"]).version for v in vips
        }
        if families == {4, 6}:
            self.unsupported(
                block,
                "VIPs of both families: one instance advertises one family (keepalived "
                "keeps the other family out of its adverts); split it into an IPv4 and an "
                "IPv6 instance",
                anchor,
            )
        elif families == {6} and d.version == 2:
            # keepalived runs an IPv6 instance as VRRPv3 whatever vrrp_version says
            # (VRRPv2, RFC 3768, carries IPv4 only); the peer speaks v3 already.
            d.version = 3
            self.note(block, "its VIPs are IPv6: imported as VRRPv3, as keepalived runs it", anchor)
        return vips

    def _instance_item(self, block: Statement, d: _InstanceDraft) -> dict[str, Any] | None:
        """The YAML item of a vrrp_instance block once all its statements are read."""
        anchor = d.anchor
        interface = d.interface or self.default_interface
        if interface is None:
            self.unsupported(block, "has no `interface` (nor global default_interface)", anchor)
            return None
        if d.vrid is None:
            self.unsupported(block, "has no `virtual_router_id`", anchor)
            return None
        vips = self._instance_vips(block, d, interface)
        if vips is None:
            return None
        priority = self.fold_positive_weights(
            block, d.priority, d.track_interfaces, [*d.track_scripts, *d.track_processes], anchor
        )
        out: dict[str, Any] = {"name": d.name}
        out["interface"] = interface
        out["vrid"] = d.vrid
        out["priority"] = priority
        if priority == 255:
            # keepalived treats 255 as the address owner implicitly (RFC 5798 §5.2.4).
            out["address_owner"] = True
        out["version"] = d.version
        out["advert_interval"] = d.advert_interval
        out["preempt"] = d.preempt
        out["preempt_delay"] = d.preempt_delay
        if d.unicast_source is not None:
            out["unicast_source"] = d.unicast_source
        if d.peers:
            out["unicast_peers"] = d.peers
        if d.checksum_stmt is not None:
            mode = self.unicast_checksum(d.checksum_stmt, d.version, d.peers, vips, anchor)
            if mode is not None:
                out["unicast_checksum"] = mode
        out["vips"] = vips
        strict = d.strict if d.strict is not None else self.strict_default
        hmac_stmt = d.auth_hmac_stmt
        auth_hmac = None if hmac_stmt is None else self.auth_hmac(hmac_stmt, anchor)
        if hmac_stmt is not None and auth_hmac is not None:
            if strict and auth_hmac.get("mode", "enforce") != "enforce":
                # keepalived (vrrp_complete_instance): "strict mode requires auth_hmac mode
                # enforce", and it runs the instance in enforce mode.
                self.note(
                    hmac_stmt,
                    f"mode {auth_hmac['mode']} becomes enforce: keepalived's strict mode "
                    "requires it",
                    anchor,
                )
                auth_hmac["mode"] = "enforce"
            out["auth_hmac"] = auth_hmac
        if strict:
            self._instance_strict(block, d, out, priority)
        elif d.auth_stmt is not None and auth_hmac is not None:
            # keepalived: "auth_hmac cannot be combined with authentication, dropping legacy auth".
            self.dropped(d.auth_stmt, "keepalived drops it when auth_hmac is set, too", anchor)
        elif d.auth_stmt is not None:
            auth_pass = self.authentication(d.auth_stmt, d.version, anchor)
            if auth_pass is not None:
                out["auth_pass"] = auth_pass
        if d.accept is False and d.accept_stmt is not None:
            self.unsupported(
                d.accept_stmt,
                "no accept mode needs firewall rules that drop traffic to the VIPs "
                "(keepalived's nftables/iptables rules), which haipvs does not install; "
                "use `accept` (keepalived's default outside vrrp_strict)",
                anchor,
            )
        elif d.accept is not None:
            out["accept"] = d.accept
        vmac = self._instance_vmac(block, d, vips)
        if vmac is not None:
            out["vmac"] = vmac
        if d.routes:
            out["routes"] = d.routes
        if d.rules:
            out["rules"] = d.rules
        track: dict[str, Any] = {}
        if d.track_interfaces:
            track["interfaces"] = d.track_interfaces
        if d.track_scripts:
            track["scripts"] = d.track_scripts
        if d.track_processes:
            track["processes"] = d.track_processes
        if d.track_files:
            track["files"] = d.track_files
        if track:
            out["track"] = track
        if d.notify:
            out["notify"] = d.notify
        self.garp(block, d.garp, out, anchor)
        self.instance_names.add(d.name)
        return out

    def unicast_checksum(
        self,
        stmt: Statement,
        version: int,
        peers: Sequence[str],
        vips: Sequence[str | dict[str, str]],
        anchor: str,
    ) -> str | None:
        """keepalived ``old_unicast_checksum [never]`` -> ``unicast_checksum: old | never``.

        keepalived (``_WITH_UNICAST_CHKSUM_COMPAT_``, as Debian builds it) uses it
        only for VRRPv3 IPv4 instances with unicast peers; elsewhere it changes
        nothing and haipvs refuses it, so it is dropped with that reason.
        """
        if not stmt.args:
            mode = "old"
        elif stmt.args[0] == "never":
            mode = "never"
        else:
            # keepalived: "Unknown old_unicast_chksum mode ... - ignoring".
            self.dropped(
                stmt, f"unknown mode {stmt.args[0]!r}: keepalived ignores the keyword", anchor
            )
            return None
        first = vips[0] if isinstance(vips[0], str) else vips[0]["address"]
        if version != 3 or not peers or ipaddress.ip_interface(first).version != 4:
            self.dropped(
                stmt,
                "has no effect here: the old checksum exists only for VRRPv3 IPv4 instances "
                "with unicast_peer (keepalived ignores it too)",
                anchor,
            )
            return None
        return mode

    def garp(
        self, block: Statement, garp: Mapping[str, int | float], out: dict[str, Any], anchor: str
    ) -> None:
        repeat = garp.get("garp_master_repeat")
        if repeat is not None:
            out["garp_repeat"] = max(1, int(repeat))
        interval = garp.get("garp_interval")
        if interval is not None:
            if interval > 1:
                self.note(block, f"garp_interval {interval:g} s cut to 1 s", anchor)
            out["garp_interval"] = min(interval, 1)
        delay = garp.get("garp_master_delay")
        if delay is not None:
            out["garp_master_delay"] = min(delay, 255)
        refresh = garp.get("garp_master_refresh")
        if refresh is not None:
            out["garp_master_refresh"] = refresh

    def vip(self, entry: Statement, interface: str, anchor: str) -> str | dict[str, str] | None:
        text = entry.keyword
        try:
            net = ipaddress.ip_interface(text)
        except ValueError:
            self.unsupported(entry, f"{text!r} is not an address", anchor)
            return None
        # keepalived's default prefix is the host prefix (/32, /128), as is haipvs's.
        address = str(net) if "/" in text else str(net.ip)
        args = list(entry.args)
        dev: str | None = None
        i = 0
        while i < len(args):
            word = args[i]
            has_value = i + 1 < len(args)
            if word == "dev" and has_value:
                dev = args[i + 1]
                i += 2
            elif word in {"label", "brd", "broadcast", "scope", "preferred_lft"} and has_value:
                self.dropped(entry, f"`{word} {args[i + 1]}` is not set on the VIP", anchor)
                i += 2
            elif word in {"no_track", "home", "-nodad", "nodad", "noprefixroute", "autojoin"}:
                self.dropped(entry, f"`{word}` is not set on the VIP", anchor)
                i += 1
            else:
                self.unsupported(entry, f"VIP option {word!r} is not offered", anchor)
                i += 1
        if dev is not None and dev != interface:
            return {"address": address, "interface": dev}
        return address

    def auth_hmac(self, stmt: Statement, anchor: str) -> dict[str, Any] | None:
        """keepalived 2.4.2+ ``auth_hmac { key ID VALUE; active_key; mode; anti_replay;
        time_window }``: the same names; what keepalived's parser would reject is
        dropped with its reason, as keepalived logs it and carries on."""
        keys: list[dict[str, Any]] = []
        out: dict[str, Any] = {}
        for entry in stmt.block or ():
            kw, args = entry.keyword, entry.args
            if kw == "key" and len(args) >= 2 and args[0].isdigit() and 1 <= int(args[0]) <= 255:
                keys.append({"id": int(args[0]), "key": args[1]})
            elif kw == "key":
                self.dropped(entry, "needs an id 1..255 and a value; keepalived skips it", anchor)
            elif kw == "active_key" and args and args[0].isdigit():
                out["active_key"] = int(args[0])
            elif kw == "mode" and args and args[0] in {"enforce", "permissive", "receive-only"}:
                out["mode"] = args[0]
            elif kw == "anti_replay" and args and args[0] in {"time", "monotonic"}:
                out["anti_replay"] = args[0]
            elif kw == "time_window" and args and args[0].isdigit():
                out["time_window"] = int(args[0])
            elif kw in {"active_key", "mode", "anti_replay", "time_window"}:
                self.dropped(entry, "invalid value; keepalived keeps its default", anchor)
            else:
                self.unknown(entry, "auth_hmac", anchor)
        if "active_key" not in out or all(k["id"] != out["active_key"] for k in keys):
            # keepalived: "auth_hmac active_key N is not defined, disabling extension".
            self.dropped(
                stmt,
                "no active_key naming one of its keys: keepalived runs the instance without "
                "auth_hmac, and so does the import; add active_key to authenticate",
                anchor,
            )
            return None
        return {"keys": keys, **out}

    def authentication(self, stmt: Statement, version: int, anchor: str) -> str | None:
        auth_type = stmt.child("auth_type")
        auth_pass = stmt.child("auth_pass")
        kind = auth_type.args[0].upper() if auth_type and auth_type.args else "PASS"
        if version == 3:
            # keepalived ignores authentication with VRRPv3 (RFC 5798 removed it), too.
            self.dropped(stmt, "VRRPv3 has no authentication; keepalived ignores it too", anchor)
            return None
        if kind != "PASS":
            # A keepalived peer that expects AH discards adverts without it (RFC 3768
            # §7.1), so a mixed pair would elect two masters.
            self.unsupported(
                stmt,
                f"auth_type {kind} (IPsec AH) is not offered: switch both keepalived "
                "directors to auth_type PASS or to no authentication first, then import",
                anchor,
            )
            return None
        if auth_pass is None or not auth_pass.args:
            self.unsupported(stmt, "auth_type PASS without auth_pass", anchor)
            return None
        password = auth_pass.args[0]
        if len(password.encode()) > 8:
            # keepalived sends the first 8 octets (RFC 3768 §5.3.10).
            self.note(auth_pass, "the password is cut to its first 8 octets, as keepalived", anchor)
            password = password.encode()[:8].decode(errors="ignore")
        self.note(
            stmt,
            "the VRRPv2 simple password is kept so the keepalived peer accepts the adverts; "
            "it is sent in clear text (RFC 3768 §10)",
            anchor,
        )
        return password

    def track_weight(self, entry: Statement, default: int, anchor: str) -> int:
        args = list(entry.args)
        if len(args) >= 2 and args[0] == "weight":
            try:
                weight = int(args[1])
            except ValueError:
                self.unsupported(entry, f"weight {args[1]!r} is not an integer", anchor)
                return default
            if args[2:] == ["reverse"]:
                self.unsupported(entry, "`weight N reverse` is not offered", anchor)
            elif args[2:]:
                self.unsupported(entry, f"option `{' '.join(args[2:])}` is not offered", anchor)
            return weight
        if args:
            self.unsupported(entry, f"option `{' '.join(args)}` is not offered", anchor)
        return default

    def fold_positive_weights(
        self,
        block: Statement,
        priority: int,
        interfaces: list[dict[str, Any]],
        scripts: list[dict[str, Any]],
        anchor: str,
    ) -> int:
        """Write keepalived's positive track weights as a raised base and negative weights.

        keepalived adds a positive weight while the interface is up or the script
        succeeds. A base priority raised by that weight, minus the weight while down
        or failing, gives the same effective priority in every state, in the one
        convention every reader of the YAML understands.
        """
        raised = priority
        for item in (*interfaces, *scripts):
            if item["weight"] > 0:
                raised += item["weight"]
                item["weight"] = -item["weight"]
        if priority in (raised, 255):
            # keepalived's address owner ignores weights; nothing moves.
            return priority
        capped = min(raised, _MAX_EFFECTIVE_PRIORITY)
        message = (
            f"positive track weights folded into the priority: {priority} -> {capped}, "
            "the same weights subtracted while down"
        )
        if capped != raised:
            message += f" (keepalived caps {raised} at {_MAX_EFFECTIVE_PRIORITY} too)"
        self.note(block, message, anchor)
        return capped

    # -- virtual_server ----------------------------------------------------------------

    def virtual_server(self, block: Statement) -> list[dict[str, Any]]:
        args = block.args
        if len(args) >= 2 and args[0] == "group":
            anchor = f"virtual_server group {args[1]}"
            endpoints = self.group_endpoints(block, args[1], anchor)
        elif len(args) >= 2 and args[0] == "fwmark":
            anchor = f"virtual_server fwmark {args[1]}"
            if not args[1].isdigit():
                self.unsupported(block, f"fwmark {args[1]!r} is not a number", anchor)
                return []
            endpoints = [{"fwmark": int(args[1])}]
        elif args:
            anchor = f"virtual_server {' '.join(args)}"
            try:
                address = ipaddress.ip_address(args[0])
            except ValueError:
                self.unsupported(block, f"{args[0]!r} is not an address", anchor)
                return []
            port = int(args[1]) if len(args) >= 2 and args[1].isdigit() else 0
            endpoints = [{"vip": str(address), "port": port}]
        else:
            self.unsupported(block, "has no address")
            return []

        common = self.service_settings(block, anchor)
        real_servers = [
            rs
            for stmt in common.pop("real_server_stmts")
            if (rs := self.real_server(stmt, common, anchor)) is not None
        ]
        services = []
        for endpoint in endpoints:
            service = self.build_service(endpoint, common, real_servers)
            services.append(service)
            label = _service_label(endpoint, service.get("protocol", "tcp"))
            self.anchors[f"virtual_server {label}"] = anchor
            self.origins[f"virtual_server {label}"] = block.location
        self.keep_comments(anchor, block)
        _share_equal_values(services)
        return services

    def group_endpoints(self, block: Statement, name: str, anchor: str) -> list[dict[str, Any]]:
        group = self.groups.get(name)
        self.used_groups.add(name)
        if group is None:
            self.unsupported(block, f"virtual_server_group {name!r} is not defined", anchor)
            return []
        endpoints: list[dict[str, Any]] = []
        for entry in group.block or ():
            if entry.keyword == "fwmark":
                if entry.args and entry.args[0].isdigit():
                    endpoints.append({"fwmark": int(entry.args[0])})
                else:
                    self.unsupported(entry, "fwmark needs a number", anchor)
                continue
            port = int(entry.args[0]) if entry.args and entry.args[0].isdigit() else 0
            endpoints.extend({"vip": a, "port": port} for a in self.expand_range(entry, anchor))
        if endpoints:
            self.note(
                group,
                f"virtual_server_group {name!r} becomes {len(endpoints)} virtual servers with "
                "the same real servers (identical probes run once and are shared)",
                anchor,
            )
        return endpoints

    def expand_range(self, entry: Statement, anchor: str) -> list[str]:
        """`10.0.0.3-10`, `ae00::2-9`: keepalived ranges vary the last octet / hextet."""
        text = entry.keyword
        base, dash, last = text.rpartition("-")
        if not dash:
            try:
                return [str(ipaddress.ip_address(text))]
            except ValueError:
                self.unsupported(entry, f"{text!r} is not an address", anchor)
                return []
        try:
            first = ipaddress.ip_address(base)
            end = int(last, 16) if first.version == 6 else int(last)
        except ValueError:
            self.unsupported(entry, f"{text!r} is not an address range", anchor)
            return []
        width = 16 if first.version == 6 else 8
        start = int(first) & ((1 << width) - 1)
        if end < start or end >= (1 << width) or end - start + 1 > _MAX_GROUP_RANGE:
            self.unsupported(entry, f"range {text!r} is empty or too large", anchor)
            return []
        return [str(first + offset) for offset in range(end - start + 1)]

    def service_settings(self, block: Statement, anchor: str) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "protocol": "tcp",
            "scheduler": "wlc",
            "forwarding": "nat",
            "delay_loop": _DEFAULT_DELAY_LOOP,
            "real_server_stmts": [],
        }
        for stmt in block.block or ():
            kw = stmt.keyword
            if kw in {"lb_algo", "lvs_sched"}:
                word = (self.arg(stmt, anchor) or "").lower()
                if word in _SCHEDULERS:
                    settings["scheduler"] = word
                elif word:
                    self.unsupported(stmt, f"{word!r} is not an IPVS scheduler", anchor)
            elif kw in _SCHEDULER_FLAGS:
                settings.setdefault("scheduler_flags", []).append(_SCHEDULER_FLAGS[kw])
            elif kw in {"lb_kind", "lvs_method"}:
                word = (self.arg(stmt, anchor) or "").upper()
                if word in _FORWARDING:
                    settings["forwarding"] = _FORWARDING[word]
                elif word:
                    self.unsupported(stmt, f"forwarding {word!r} is not NAT, DR or TUN", anchor)
                if len(stmt.args) > 1:
                    self.unsupported(
                        stmt, f"tunnel options `{' '.join(stmt.args[1:])}` are not read", anchor
                    )
            elif kw == "protocol":
                word = (self.arg(stmt, anchor) or "").upper()
                if word in _PROTOCOLS:
                    settings["protocol"] = _PROTOCOLS[word]
                elif word:
                    self.unsupported(stmt, f"protocol {word!r} is not offered", anchor)
            elif kw == "ip_family":
                word = (self.arg(stmt, anchor) or "").lower()
                if word in {"inet", "inet6"}:
                    settings["family"] = "ipv6" if word == "inet6" else "ipv4"
                elif word:
                    self.unsupported(stmt, f"family {word!r} is not inet or inet6", anchor)
            elif kw == "delay_loop":
                value = self.num(stmt, anchor, low=0.01)
                if value is not None:
                    settings["delay_loop"] = value
            elif kw == "persistence_timeout":
                value = self.num(stmt, anchor, low=0) if stmt.args else _DEFAULT_PERSISTENCE
                if value is not None:
                    settings.setdefault("persistence", {})["timeout"] = int(value)
            elif kw == "persistence_granularity":
                mask = self.arg(stmt, anchor)
                if mask is not None:
                    netmask: str | int = int(mask) if mask.isdigit() else mask
                    settings.setdefault("persistence", {})["netmask"] = netmask
            elif kw == "persistence_engine":
                self.unsupported(stmt, "IPVS persistence engines (SIP) are not offered", anchor)
            elif kw in {"quorum", "hysteresis"}:
                count = self.integer(stmt, anchor)
                if count is not None:
                    # keepalived's quorum is a sum of live weights: min_weight.
                    key = "min_weight" if kw == "quorum" else "hysteresis"
                    settings.setdefault("quorum", {})[key] = count
            elif kw in {"quorum_up", "quorum_down"}:
                command = self.argv(stmt, anchor)
                if command is not None:
                    key = kw.removeprefix("quorum_")
                    settings.setdefault("quorum", {})[key] = command
            elif kw == "sorry_server":
                self.sorry_server(stmt, settings, anchor)
            elif kw == "virtualhost":
                settings["virtualhost"] = self.arg(stmt, anchor)
            elif kw == "alpha":
                settings["alpha"] = True
            elif kw == "inhibit_on_failure":
                settings["inhibit_on_failure"] = True
            elif kw in {"ops", "one_packet"}:
                settings["one_packet"] = True
            elif kw in {"connect_timeout", "retry", "delay_before_retry", "warmup"}:
                # keepalived 2.x: virtual_server level defaults for its checkers.
                value = self.num(stmt, anchor, low=0)
                if value is not None:
                    settings.setdefault("check_defaults", {})[kw] = value
            elif kw == "real_server":
                settings["real_server_stmts"].append(stmt)
            elif kw in _VS_DROPPED:
                self.dropped(stmt, _VS_DROPPED[kw], anchor)
            else:
                self.unknown(stmt, "virtual_server", anchor)
        return settings

    def sorry_server(self, stmt: Statement, settings: dict[str, Any], anchor: str) -> None:
        address = self.arg(stmt, anchor)
        if address is None:
            return
        try:
            port = int(stmt.args[1]) if len(stmt.args) >= 2 else None
            settings["sorry_server"] = _host_port(address, port)
        except ValueError:
            self.unsupported(stmt, f"cannot read `{' '.join(stmt.args)}`", anchor)

    def build_service(
        self,
        endpoint: Mapping[str, Any],
        common: Mapping[str, Any],
        real_servers: Sequence[dict[str, Any]],
    ) -> dict[str, Any]:
        service: dict[str, Any] = dict(endpoint)
        if "fwmark" in endpoint and "family" in common:
            service["family"] = common["family"]
        service["protocol"] = common["protocol"]
        for key in ("scheduler", "scheduler_flags", "one_packet", "forwarding"):
            if key in common:
                service[key] = common[key]
        for key in ("persistence", "quorum"):
            if key in common:
                service[key] = dict(common[key])
        if "sorry_server" in common:
            service["sorry_server"] = common["sorry_server"]
        if common.get("inhibit_on_failure") or any(
            rs.pop("inhibit_on_failure", False) for rs in real_servers
        ):
            service["inhibit_on_failure"] = True
        checks = [rs.get("check") for rs in real_servers]
        rs_items = [{k: v for k, v in rs.items() if k != "check"} for rs in real_servers]
        if checks and checks[0] is not None and all(c == checks[0] for c in checks):
            # One check for all: the service's default.
            service["check"] = checks[0]
        else:
            for item, check in zip(rs_items, checks, strict=True):
                if check is not None:
                    item["check"] = check
        if "fwmark" not in endpoint:
            for item in rs_items:
                if item.get("port") == endpoint["port"]:
                    item.pop("port")  # the service port is the default
        service["real_servers"] = rs_items
        return service

    def real_server(
        self, block: Statement, common: Mapping[str, Any], anchor: str
    ) -> dict[str, Any] | None:
        if not block.args:
            self.unsupported(block, "has no address", anchor)
            return None
        try:
            address = ipaddress.ip_address(block.args[0])
        except ValueError:
            self.unsupported(block, f"{block.args[0]!r} is not an address", anchor)
            return None
        rs: dict[str, Any] = {"address": str(address)}
        if len(block.args) >= 2 and block.args[1].isdigit():
            rs["port"] = int(block.args[1])
        rs["weight"] = 1
        checks: list[Statement] = []
        for stmt in block.block or ():
            kw = stmt.keyword
            if kw == "weight":
                weight = self.integer(stmt, anchor)
                if weight is not None:
                    rs["weight"] = weight
            elif kw.endswith("_CHECK") or kw in {"HTTP_GET", "SSL_GET"}:
                checks.append(stmt)
            elif kw == "uthreshold":
                rs["u_thresh"] = self.integer(stmt, anchor)
            elif kw == "lthreshold":
                rs["l_thresh"] = self.integer(stmt, anchor)
            elif kw in {"lvs_method", "lb_kind"}:
                word = (self.arg(stmt, anchor) or "").upper()
                if word in _FORWARDING:
                    rs["forwarding"] = _FORWARDING[word]
                if word not in _FORWARDING or len(stmt.args) > 1:
                    self.unsupported(stmt, f"cannot read `{' '.join(stmt.args)}`", anchor)
            elif kw == "inhibit_on_failure":
                rs["inhibit_on_failure"] = True
            elif kw in {"alpha", "delay_loop", "retry", "delay_before_retry", "warmup"}:
                value = 1 if kw == "alpha" else self.num(stmt, anchor, low=0)
                if value is not None:
                    rs.setdefault("_check_defaults", {})[kw] = value
            elif kw == "connect_timeout":
                value = self.num(stmt, anchor, low=0.01)
                if value is not None:
                    rs.setdefault("_check_defaults", {})[kw] = value
            elif kw in _RS_DROPPED:
                self.dropped(stmt, _RS_DROPPED[kw], anchor)
            else:
                self.unknown(stmt, "real_server", anchor)
        defaults = {**common.get("check_defaults", {}), **rs.pop("_check_defaults", {})}
        translated = [self.check(stmt, rs, common, defaults, anchor) for stmt in checks]
        if len(checks) > 1:
            self.unsupported(
                checks[1],
                "several checkers on one real server (keepalived wants all to pass) are not "
                "offered; keep one",
                anchor,
            )
        if translated and translated[0] is not None:
            rs["check"] = translated[0]
        elif not checks:
            self.note(block, "no checker: the real server is always up, as in keepalived", anchor)
        return rs

    def check(
        self,
        block: Statement,
        rs: Mapping[str, Any],
        common: Mapping[str, Any],
        defaults: Mapping[str, int | float],
        anchor: str,
    ) -> dict[str, Any] | None:
        kw = block.keyword
        kinds = {
            "TCP_CHECK": "tcp",
            "HTTP_GET": "http",
            "SSL_GET": "https",
            "MISC_CHECK": "exec",
            "DNS_CHECK": "dns",
            "UDP_CHECK": "udp",
            "SMTP_CHECK": "smtp",
            "PING_CHECK": "ping",
            "FILE_CHECK": "file",
        }
        if kw == "FILE_CHECK":
            return self.file_check(block, common, defaults, anchor)
        if kw not in kinds:
            self.unsupported(block, f"{kw} is not offered by haipvs's checkers", anchor)
            return None
        check: dict[str, Any] = {"type": kinds[kw]}
        if kw == "SMTP_CHECK":
            check["port"] = 25
        if check["type"] in {"http", "https"} and common.get("virtualhost"):
            check["host"] = common["virtualhost"]

        retry = int(defaults.get("retry", _DEFAULT_RETRY))
        timeout = float(defaults.get("connect_timeout", _DEFAULT_CONNECT_TIMEOUT))
        interval = float(defaults.get("delay_loop", common["delay_loop"]))
        fast_interval: float | None = None
        if "delay_before_retry" in defaults:
            fast_interval = float(defaults["delay_before_retry"])
        warmup = defaults.get("warmup")
        urls: list[Statement] = []
        smtp_hosts: list[Statement] = []
        timeout_given = "connect_timeout" in defaults
        rs_port = rs.get("port")
        for stmt in block.block or ():
            key = stmt.keyword
            if key == "connect_port":
                port = self.integer(stmt, anchor)
                if port is not None and port != rs_port:
                    check["port"] = port
            elif key in {"connect_timeout", "misc_timeout"}:
                value = self.num(stmt, anchor, low=0.01)
                if value is not None:
                    timeout = float(value)
                    timeout_given = True
            elif key in {"retry", "nb_get_retry"}:
                value_i = self.integer(stmt, anchor)
                if value_i is not None:
                    retry = max(0, value_i)
            elif key == "delay_before_retry":
                value = self.num(stmt, anchor, low=0.01)
                if value is not None:
                    fast_interval = float(value)
            elif key == "delay_loop":
                value = self.num(stmt, anchor, low=0.01)
                if value is not None:
                    interval = float(value)
            elif key == "warmup":
                warmup = self.num(stmt, anchor, low=0)
            elif key == "bindto" and check["type"] == "tcp":
                check["bind_to"] = self.arg(stmt, anchor)
            elif key == "connect_ip":
                if stmt.args and stmt.args[0] != rs["address"]:
                    self.unsupported(
                        stmt,
                        "probing an address other than the real server's is not offered",
                        anchor,
                    )
            elif key == "host" and kw == "SMTP_CHECK":
                smtp_hosts.append(stmt)
            elif key == "helo_name" and kw == "SMTP_CHECK":
                helo = self.arg(stmt, anchor)
                if helo is not None:
                    check["helo_name"] = helo
            elif key == "url" and check["type"] in {"http", "https"}:
                urls.append(stmt)
            elif key == "virtualhost" and check["type"] in {"http", "https"}:
                check["host"] = self.arg(stmt, anchor)
            elif key == "enable_sni" and check["type"] == "https":
                check["sni"] = True
            elif key == "misc_path" and check["type"] == "exec":
                command = self.argv(stmt, anchor)
                if command is not None:
                    check["command"] = command
            elif key == "misc_dynamic" and check["type"] == "exec":
                check["dynamic"] = True
            elif key == "user" and check["type"] == "exec":
                self.dropped(stmt, "scripts run as haipvs's own user", anchor)
            elif key == "type" and check["type"] == "dns":
                check["record_type"] = (self.arg(stmt, anchor) or "A").upper()
            elif key == "name" and check["type"] == "dns":
                check["name"] = self.arg(stmt, anchor)
            elif key in {"payload", "require_reply"} and check["type"] == "udp":
                if stmt.args:
                    self.unsupported(
                        stmt, "hex payloads and replies of UDP_CHECK are not read", anchor
                    )
                else:
                    self.note(stmt, "any reply (and no ICMP unreachable) is success", anchor)
            elif key in _CHECK_DROPPED:
                self.dropped(stmt, _CHECK_DROPPED[key], anchor)
            else:
                self.unknown(stmt, kw, anchor)

        if check.pop("sni", False) and check.get("host"):
            check["server_name"] = check["host"]
        if smtp_hosts:
            self.smtp_hosts(block, smtp_hosts, rs, check, anchor)
        if check["type"] in {"http", "https"}:
            self.http_urls(block, urls, check, anchor)
        if check["type"] == "exec" and "command" not in check:
            self.unsupported(block, "MISC_CHECK without misc_path", anchor)
            return None
        if check["type"] == "exec" and not timeout_given:
            timeout = interval  # keepalived misc_timeout defaults to delay_loop
        if check["type"] == "dns" and "name" not in check:
            self.unsupported(block, "DNS_CHECK without a name to query", anchor)
            return None
        check["interval"] = interval
        if timeout > interval:
            self.note(block, f"timeout {timeout:g} s cut to the interval ({interval:g} s)", anchor)
            timeout = interval
        check["timeout"] = timeout
        # keepalived marks a server up on the first success, and down after the first
        # failure plus `retry` retries (check_*.c: retry_it < retry -> retry again).
        check["rise"] = 1
        check["fall"] = min(100, retry + 1)
        if fast_interval is not None and retry:
            check["fast_interval"] = min(fast_interval, interval)
        if warmup:
            check["warmup"] = warmup
        # keepalived starts a real server up unless `alpha` is set; haipvs starts it down
        # (its default is alpha: true), so say which one this was, always.
        check["alpha"] = bool(common.get("alpha") or defaults.get("alpha"))
        return check

    def file_check(
        self,
        block: Statement,
        common: Mapping[str, Any],
        defaults: Mapping[str, int | float],
        anchor: str,
    ) -> dict[str, Any] | None:
        """keepalived `FILE_CHECK { track_file NAME; weight N [reverse] }`: the path comes
        from the global `track_file NAME { file PATH; weight W }`, whose weight is the
        default. keepalived acts on the file at once: rise and fall 1, polled every 1 s."""
        check: dict[str, Any] = {"type": "file"}
        weight: int | None = None
        for stmt in block.block or ():
            if stmt.keyword == "track_file":
                name = self.arg(stmt, anchor)
                found = self.files.get(name) if name is not None else None
                if found is None:
                    self.unsupported(stmt, f"track_file {name!r} is not defined", anchor)
                    return None
                self.used_files.add(name or "")
                check["path"] = found[0]["path"]
                check.setdefault("weight", found[1])
            elif stmt.keyword == "weight":
                weight = self.integer(stmt, anchor)
                if len(stmt.args) > 1 and stmt.args[1] == "reverse":
                    check["reverse"] = True
            else:
                self.unknown(stmt, "FILE_CHECK", anchor)
        if "path" not in check:
            # keepalived: "FILE_CHECK has no track_file specified - ignoring".
            self.unsupported(block, "FILE_CHECK without track_file", anchor)
            return None
        if weight is not None:
            check["weight"] = weight
        self.note(block, "the file is polled every second (keepalived watches it with inotify)",
                  anchor)
        check["alpha"] = bool(common.get("alpha") or defaults.get("alpha"))
        return check

    def smtp_hosts(
        self,
        block: Statement,
        hosts: Sequence[Statement],
        rs: Mapping[str, Any],
        check: dict[str, Any],
        anchor: str,
    ) -> None:
        """keepalived's older SMTP_CHECK form: `host { connect_ip; connect_port; bindto }`
        blocks, every one of which must answer for the real server to be up.

        haipvs's smtp check probes the real server's own address, once: the host block
        at that address becomes the check (its port); the others are dropped, the
        check being weaker for it (as extra HTTP_GET urls are). Without a host block at
        the real server's address keepalived never probes the server itself, which no
        haipvs check expresses."""
        address = str(rs["address"])
        own: Statement | None = None
        for host in hosts:
            connect_ip = host.child("connect_ip")
            target = connect_ip.args[0] if connect_ip and connect_ip.args else address
            if target == address and own is None:
                own = host
        if own is None:
            self.unsupported(
                hosts[0],
                f"no host block probes the real server ({address}): keepalived checks only "
                "the listed addresses, and a haipvs check probes the real server itself",
                anchor,
            )
            return
        connect_port = own.child("connect_port")
        if connect_port and connect_port.args and connect_port.args[0].isdigit():
            check["port"] = int(connect_port.args[0])
        bindto = own.child("bindto")
        if bindto is not None:
            self.dropped(
                bindto,
                "the probe leaves from the address the routing table picks (smtp checks "
                "take no source address)",
                anchor,
            )
        for host in hosts:
            if host is own:
                continue
            connect_ip = host.child("connect_ip")
            connect_port = host.child("connect_port")
            target = connect_ip.args[0] if connect_ip and connect_ip.args else address
            port_text = connect_port.args[0] if connect_port and connect_port.args else "25"
            self.dropped(
                host,
                f"only the real server's own address is checked; keepalived also wanted "
                f"{target}:{port_text} to answer: the check is weaker",
                anchor,
            )

    def http_urls(
        self, block: Statement, urls: Sequence[Statement], check: dict[str, Any], anchor: str
    ) -> None:
        if not urls:
            check["path"] = "/"
            self.note(block, "no url block: GET / is checked", anchor)
            codes = None
        else:
            url = urls[0]
            for extra in urls[1:]:
                self.dropped(
                    extra,
                    "only the first url is checked (keepalived wants every url to pass): the "
                    "check is weaker",
                    anchor,
                )
            codes = None
            for stmt in url.block or ():
                key = stmt.keyword
                if key == "path":
                    check["path"] = self.arg(stmt, anchor) or "/"
                elif key == "digest":
                    digest = (self.arg(stmt, anchor) or "").lower()
                    if re.fullmatch(r"[0-9a-f]{32}", digest):
                        check["digest"] = digest
                    elif digest:
                        self.unsupported(stmt, f"{digest!r} is not an MD5 digest", anchor)
                elif key == "status_code":
                    codes = _status_codes(stmt.args)
                    if codes is None:
                        self.unsupported(
                            stmt, f"cannot read `{' '.join(stmt.args)}` as status codes", anchor
                        )
                elif key == "virtualhost":
                    check["host"] = self.arg(stmt, anchor)
                elif key == "regex":
                    self.dropped(stmt, "regular expressions on the body are not offered", anchor)
                else:
                    self.unknown(stmt, "url", anchor)
        if codes is not None:
            check["expect_status"] = codes
        # Without status_code keepalived accepts any 2xx, which is haipvs's default too.


def source_of(translation: Translation, key_path: str) -> Location | None:
    """The keepalived statement an output key path (`vrrp[0].vips`) was made from."""
    match = re.match(r"([a-z_]+)(?:\[(\d+)\])?", key_path)
    if match is None:
        return None
    section, index = match.group(1), match.group(2)
    value = translation.config.get(section)
    if index is not None and isinstance(value, list) and int(index) < len(value):
        item = value[int(index)]
        if isinstance(item, Mapping):
            return translation.origins.get(_item_key(section, item))
    return translation.origins.get(section)


def _share_equal_values(services: list[dict[str, Any]]) -> None:
    """Make equal `check`/`real_servers` values of one block's services the same object.

    A virtual_server_group becomes one service per member with the same real servers
    and check; the renderer writes a shared object once, with a YAML anchor, and aliases
    it in the other services (the config loader reads anchors and aliases).
    """
    for key in _SHARED_KEYS:
        first: list[Any] = []
        for service in services:
            value = service.get(key)
            if not value:
                continue
            same = next((f for f in first if f == value), None)
            if same is None:
                first.append(value)
            else:
                service[key] = same


_SHARED_KEYS = ("check", "real_servers")


def translate(parsed: ParsedConfig, source: str = "keepalived.conf") -> Translation:
    """Translate a parsed keepalived.conf; never raises for the operator's content."""
    translator = _Translator()
    config = translator.run(parsed)
    # A group's real servers are read once for every member: report each finding once.
    unique = dict.fromkeys(translator.findings)
    findings = tuple(sorted(unique, key=lambda f: (f.location.file, f.location.line)))
    return Translation(
        config,
        findings,
        source,
        dict(translator.anchors),
        dict(translator.origins),
        dict(translator.comments),
    )


# --- rendering ------------------------------------------------------------------------

_SEVERITY_TITLES = {
    Severity.UNSUPPORTED: "UNSUPPORTED (must be resolved before migrating; the import failed)",
    Severity.DROPPED: "DROPPED (no haipvs equivalent: the feature is lost)",
    Severity.NOTE: "NOTES (translated, with a small difference)",
}
_ORDER = (Severity.UNSUPPORTED, Severity.DROPPED, Severity.NOTE)


class _Dumper(yaml.SafeDumper):
    """Lists of scalars (status codes, argv) in flow style, so the file stays short."""


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = all(not isinstance(item, dict | list) for item in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def _dump(value: Any) -> str:
    return yaml.dump(value, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def _comment(finding: Finding) -> str:
    return f"#   {finding.location}: {finding.severity.value}: {finding.keyword}: {finding.message}"


def render_yaml(translation: Translation) -> str:
    """The haipvs YAML with every finding as a comment beside the item it concerns."""
    counts = {s: sum(1 for f in translation.findings if f.severity is s) for s in Severity}
    lines = [
        f"# haipvs configuration imported from {translation.source}",
        "# by `haipvs import-keepalived`. Review every comment before use;",
        "# docs/migrating-from-keepalived.md has the option-by-option mapping.",
        "# findings: " + ", ".join(f"{counts[s]} {s.value}" for s in _ORDER),
    ]
    by_anchor: dict[str | None, list[Finding]] = {}
    for finding in translation.findings:
        by_anchor.setdefault(finding.anchor, []).append(finding)

    # Findings go beside the first output item of their keepalived block; the rest
    # (global_defs, vrrp_script, blocks that produced nothing) go in the header.
    item_anchors: dict[str, str] = {}
    for key, value in translation.config.items():
        if isinstance(value, list):
            for item in value:
                item_key = _item_key(key, item)
                anchor = translation.anchors.get(item_key, item_key)
                item_anchors.setdefault(item_key, anchor)
    beside_items = set(item_anchors.values())
    for severity in _ORDER:
        chosen = [f for f in by_anchor.get(None, []) if f.severity is severity]
        if chosen:
            lines += ["#", f"# {_SEVERITY_TITLES[severity]}:"]
            lines.extend(_comment(f) for f in chosen)
    for block, found in by_anchor.items():
        if block is not None and block not in beside_items:
            lines += ["#", f"# {block}:"]
            lines.extend(_comment(f) for f in found)
    lines.append("")

    shared = _shared_names(translation, item_anchors)
    defined: set[int] = set()
    placed: set[str] = set()
    for key, value in translation.config.items():
        if not isinstance(value, list) or not value:
            lines.append(_dump({key: value}).rstrip("\n"))
            continue
        lines.append(f"{key}:")
        for item in value:
            anchor = item_anchors[_item_key(key, item)]
            comments = translation.comments.get(anchor, ())
            if (anchor in by_anchor or comments) and anchor not in placed:
                placed.add(anchor)
                lines.append(f"  # {anchor}:")
                lines.extend(f"  # | {text}" for text in comments)
                lines.extend("  " + _comment(f) for f in by_anchor.get(anchor, []))
            body = _dump_item(item, shared, defined)
            lines.extend("  " + line for line in body.splitlines())
    return "\n".join(lines) + "\n"


_ALIAS_MARK = "__haipvs_import_alias__"


def _shared_names(translation: Translation, item_anchors: Mapping[str, str]) -> dict[int, str]:
    """id() of each value several services share -> its YAML anchor name."""
    users: dict[int, str] = {}
    counts: dict[int, int] = {}
    for item in translation.config.get("virtual_servers", ()):
        for key in _SHARED_KEYS:
            value = item.get(key)
            if value:
                counts[id(value)] = counts.get(id(value), 0) + 1
                block = item_anchors[_item_key("virtual_servers", item)]
                stem = re.sub(r"[^A-Za-z0-9_]+", "_", block.removeprefix("virtual_server "))
                users.setdefault(id(value), f"{stem.strip('_')}_{key}")
    names: dict[int, str] = {}
    taken: set[str] = set()
    for ident, name in users.items():
        if counts[ident] < 2:
            continue
        unique, n = name, 1
        while unique in taken:
            n += 1
            unique = f"{name}_{n}"
        taken.add(unique)
        names[ident] = unique
    return names


def _dump_item(item: Mapping[str, Any], shared: Mapping[int, str], defined: set[int]) -> str:
    """One list item; a shared value gets `&name` where first written, `*name` after."""
    data = dict(item)
    first: dict[str, str] = {}
    for key in _SHARED_KEYS:
        name = shared.get(id(data.get(key)))
        if name is None:
            continue
        if id(data[key]) in defined:
            data[key] = _ALIAS_MARK + name
        else:
            defined.add(id(data[key]))
            first[key] = name
    out = []
    for dumped in _dump([data]).rstrip("\n").splitlines():
        text = dumped.replace(_ALIAS_MARK, "*")
        for key, name in first.items():
            if text in (f"  {key}:", f"- {key}:"):
                text = f"{text} &{name}"
        out.append(text)
    return "\n".join(out)


def _item_key(section: str, item: Mapping[str, Any]) -> str:
    if section == "virtual_servers":
        return f"virtual_server {_service_label(item, item.get('protocol', 'tcp'))}"
    return f"{section} {item.get('name')}"
