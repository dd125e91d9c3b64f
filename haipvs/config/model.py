"""The config model: every key of the YAML contract (docs/config.md), typed and defaulted.

Rule 1: this module owns the *shape* of a config file: which keys exist, their types, their
ranges and their defaults. Each model is strict (no silent coercion: ``"80"`` is not a port,
``1`` is not ``true``), frozen and forbids unknown keys, so a typo is an error, never ignored.

Rule 2: rules that relate several keys (vrid unique per interface, dr cannot map ports, a VIP
no VRRP instance carries...) live in :func:`find_rule_violations`, not in validators. They
take the items that validated on their own, with their original list indices, so a file with
a typo in one virtual server still gets every rule checked in the others, and every finding
carries the exact key path it is about.

Messages are written for the operator reading ``haipvs check-config`` at night: short, they
say what is allowed (``must be 1..65535``), and the names are the YAML keys.

Pure: no IO, no clock, no logging. Names follow keepalived.conf where one exists, and each
field's docstring-comment names the keepalived option it matches (docs/config.md has the table).
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "Address",
    "BgpBfd",
    "BgpNeighbour",
    "BgpSettings",
    "BgpVip",
    "Check",
    "CheckTiming",
    "Config",
    "Director",
    "DnsCheck",
    "DnsRcode",
    "Drain",
    "ExecCheck",
    "FailOpen",
    "Family",
    "Finding",
    "FlapDamping",
    "Forwarding",
    "HttpCheck",
    "HttpMethod",
    "HttpsCheck",
    "IpvsSettings",
    "IpvsTimeouts",
    "KeyPath",
    "LogFormat",
    "LogLevel",
    "Notify",
    "Persistence",
    "PingCheck",
    "ProgrammerSettings",
    "Protocol",
    "Quorum",
    "RealServer",
    "Scheduler",
    "SchedulerFlag",
    "Severity",
    "SmtpCheck",
    "SorryServer",
    "SyncDaemon",
    "SyncGroup",
    "TcpCheck",
    "Track",
    "TrackInterface",
    "TrackScript",
    "Tunnel",
    "TunnelChecksum",
    "TunnelType",
    "UdpCheck",
    "UnicastChecksum",
    "Vip",
    "VirtualServer",
    "VrrpInstance",
    "address_family",
    "find_rule_violations",
    "format_key_path",
]

T = TypeVar("T")
E = TypeVar("E", bound=enum.Enum)

# --------------------------------------------------------------------------------------------
# Enumerations of the operator's vocabulary. The YAML spells them as their values.


class Family(enum.Enum):
    IPV4 = "ipv4"
    IPV6 = "ipv6"


class Protocol(enum.Enum):
    TCP = "tcp"
    UDP = "udp"
    SCTP = "sctp"


class Forwarding(enum.Enum):
    """ipvsadm -m / -g / -i; keepalived ``lb_kind NAT|DR|TUN``."""

    NAT = "nat"
    DR = "dr"
    TUN = "tun"


class Scheduler(enum.Enum):
    """The schedulers the Linux kernel ships (net/netfilter/ipvs/ip_vs_<name>.c)."""

    RR = "rr"
    WRR = "wrr"
    LC = "lc"
    WLC = "wlc"
    LBLC = "lblc"
    LBLCR = "lblcr"
    DH = "dh"
    SH = "sh"
    SED = "sed"
    NQ = "nq"
    MH = "mh"
    FO = "fo"
    OVF = "ovf"
    TWOS = "twos"


class SchedulerFlag(enum.Enum):
    """ipvsadm -b / keepalived ``lvs_sched_flags``: IP_VS_SVC_F_SCHED1 / SCHED2 for sh and mh."""

    SH_FALLBACK = "sh-fallback"
    SH_PORT = "sh-port"
    MH_FALLBACK = "mh-fallback"
    MH_PORT = "mh-port"


class TunnelType(enum.Enum):
    """ipvsadm --tun-type; keepalived ``tun_type``."""

    IPIP = "ipip"
    GUE = "gue"
    GRE = "gre"


class TunnelChecksum(enum.Enum):
    """ipvsadm --tun-nocsum / --tun-csum / --tun-remcsum; keepalived ``tun_flags``."""

    NONE = "none"
    CSUM = "csum"
    REMCSUM = "remcsum"


class UnicastChecksum(enum.Enum):
    """keepalived ``old_unicast_checksum [never]``: the VRRPv3 IPv4 unicast checksum form.

    keepalived before 1.3.7 put 224.0.0.18 in the pseudo-header of unicast adverts.
    """

    AUTO = "auto"  # no keyword: RFC form, switch to the old one when a peer uses it
    OLD = "old"  # old_unicast_checksum: the old form from the start
    NEVER = "never"  # old_unicast_checksum never: the RFC form only


class LogFormat(enum.Enum):
    JSON = "json"
    CONSOLE = "console"


class LogLevel(enum.Enum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class HttpMethod(enum.Enum):
    GET = "GET"
    HEAD = "HEAD"


class DnsRcode(enum.Enum):
    """RFC 1035 §4.1.1 and RFC 6895 §2.3 rcode names."""

    NOERROR = "NOERROR"
    FORMERR = "FORMERR"
    SERVFAIL = "SERVFAIL"
    NXDOMAIN = "NXDOMAIN"
    NOTIMP = "NOTIMP"
    REFUSED = "REFUSED"
    YXDOMAIN = "YXDOMAIN"
    YXRRSET = "YXRRSET"
    NXRRSET = "NXRRSET"
    NOTAUTH = "NOTAUTH"
    NOTZONE = "NOTZONE"


class Severity(enum.Enum):
    ERROR = "error"
    WARNING = "warning"


# --------------------------------------------------------------------------------------------
# Field types: each parses the YAML scalar itself, so the message is ours and exact.


def _as_tuple(value: Any) -> Any:
    # YAML gives lists; frozen models keep tuples (hashable, so configs can be keys and diffed).
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, tuple):
        return value
    raise PydanticCustomError("list_type", "must be a list")


ListOf = Annotated[tuple[T, ...], BeforeValidator(_as_tuple)]


def _enum_parser(enum_type: type[E]) -> Callable[[Any], E]:
    choices = ", ".join(str(member.value) for member in enum_type)

    def parse(value: Any) -> E:
        if isinstance(value, enum_type):
            return value
        for member in enum_type:
            # bool is an int: `true` must not match a value 1.
            if type(value) is type(member.value) and value == member.value:
                return member
        raise PydanticCustomError("choice", "must be one of: {choices}", {"choices": choices})

    return parse


def _enum_value(member: enum.Enum) -> Any:
    return member.value


def _int_in(low: int, high: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if type(value) is not int:
            raise PydanticCustomError("int_type", "must be an integer")
        if not low <= value <= high:
            raise PydanticCustomError("range", "must be {low}..{high}", {"low": low, "high": high})
        return value

    return parse


def _number_in(low: float, high: float) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        if type(value) not in (int, float):
            raise PydanticCustomError("float_type", "must be a number")
        number = float(value)
        if not low <= number <= high:
            raise PydanticCustomError(
                "range", "must be {low}..{high}", {"low": f"{low:g}", "high": f"{high:g}"}
            )
        return number

    return parse


def _parse_address(value: Any) -> IPv4Address | IPv6Address:
    if isinstance(value, IPv4Address | IPv6Address):
        return value
    if not isinstance(value, str):
        raise PydanticCustomError("address_type", "must be an IP address")
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise PydanticCustomError(
            "address", "not an IP address: {value}", {"value": repr(value)}
        ) from None


def _parse_interface(value: Any) -> IPv4Interface | IPv6Interface:
    if isinstance(value, IPv4Interface | IPv6Interface):
        return value
    if not isinstance(value, str):
        raise PydanticCustomError("address_type", "must be an IP address with a /prefix")
    try:
        # A bare address is a host route (/32, /128), as keepalived's virtual_ipaddress.
        return ipaddress.ip_interface(value)
    except ValueError:
        raise PydanticCustomError(
            "address", "not an IP address or address/prefix: {value}", {"value": repr(value)}
        ) from None


def _to_str(value: Any) -> str:
    return str(value)


Address = Annotated[
    IPv4Address | IPv6Address, BeforeValidator(_parse_address), PlainSerializer(_to_str)
]
InterfaceAddress = Annotated[
    IPv4Interface | IPv6Interface, BeforeValidator(_parse_interface), PlainSerializer(_to_str)
]

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:@-]*$")
# Linux IFNAMSIZ is 16 with the NUL; `ip link` refuses '/', whitespace and ':' is an alias.
_IFNAME = re.compile(r"^[^/\s:]{1,15}$")


def _parse_name(value: Any) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("string_type", "must be a string")
    if not _NAME.match(value) or len(value) > 64:
        raise PydanticCustomError(
            "name",
            "must be 1..64 characters of letters, digits and _ . : @ - (got {value})",
            {"value": repr(value)},
        )
    return value


def _non_empty_text(value: Any) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("string_type", "must be a string")
    if not value or "\0" in value:
        raise PydanticCustomError("text", "must be a non-empty string without NUL")
    return value


def _absolute_path(value: Any) -> str:
    text = _non_empty_text(value)
    if not text.startswith("/"):
        raise PydanticCustomError(
            "path", "must be an absolute path (got {value})", {"value": repr(text)}
        )
    return text


def _parse_ifname(value: Any) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("string_type", "must be a string")
    if not _IFNAME.match(value):
        raise PydanticCustomError(
            "ifname",
            "not an interface name: {value} (1..15 characters, no '/', ':' or spaces)",
            {"value": repr(value)},
        )
    return value


def _parse_text(value: Any) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("string_type", "must be a string")
    if not value:
        raise PydanticCustomError("empty", "must not be empty")
    return value


def _parse_command(value: Any) -> tuple[str, ...]:
    # argv lists, run without a shell (notify): a string would need a shell
    # to split, and that is exactly what we refuse.
    if isinstance(value, str):
        raise PydanticCustomError(
            "command_type", "must be an argv list, e.g. [/usr/local/bin/notify, master]"
        )
    if not isinstance(value, list | tuple):
        raise PydanticCustomError("list_type", "must be a list")
    if not value:
        raise PydanticCustomError("empty", "must not be empty")
    for arg in value:
        if not isinstance(arg, str) or not arg:
            raise PydanticCustomError("command_arg", "every argument must be a non-empty string")
    if not value[0].startswith("/"):
        raise PydanticCustomError(
            "command_path",
            "the program must be an absolute path (got {value})",
            {"value": repr(value[0])},
        )
    return tuple(value)


def _parse_url_path(value: Any) -> str:
    text = _parse_text(value)
    if not text.startswith("/") or any(c in text for c in " \r\n"):
        raise PydanticCustomError(
            "url_path",
            "must start with '/' and have no spaces (got {value})",
            {"value": repr(text)},
        )
    return text


def _parse_host_header(value: Any) -> str:
    text = _parse_text(value)
    if any(c in text for c in " \r\n/"):
        raise PydanticCustomError("host_header", "not a host name: {value}", {"value": repr(text)})
    return text


def _parse_status(value: Any) -> int | str:
    # keepalived status_code takes codes and LOW-HIGH ranges.
    if type(value) is int:
        return _int_in(100, 599)(value)
    if isinstance(value, str):
        match = re.fullmatch(r"(\d{3})-(\d{3})", value)
        if match and 100 <= int(match.group(1)) <= int(match.group(2)) <= 599:
            return value
    raise PydanticCustomError("status", "must be a status code 100..599 or a range like 200-299")


def _parse_md5(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]{32}", value):
        raise PydanticCustomError("md5", "must be 32 lowercase hex digits (an md5 digest)")
    return value


def _parse_record_type(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Z][A-Z0-9]*", value):
        raise PydanticCustomError("record_type", "must be a record type such as A, AAAA, SOA")
    return value


Name = Annotated[str, BeforeValidator(_parse_name)]
UrlPath = Annotated[str, BeforeValidator(_parse_url_path)]
HostHeader = Annotated[str, BeforeValidator(_parse_host_header)]
StatusCode = Annotated[int | str, BeforeValidator(_parse_status)]
Md5 = Annotated[str, BeforeValidator(_parse_md5)]
RecordType = Annotated[str, BeforeValidator(_parse_record_type)]
InterfaceName = Annotated[str, BeforeValidator(_parse_ifname)]
Text = Annotated[str, BeforeValidator(_parse_text)]


def _parse_token(value: Any) -> str:
    # RFC 6750 section 2.1: a bearer token is visible ASCII; a blank or spaced token
    # cannot be sent in an Authorization header and must not protect anything.
    text = _parse_text(value)
    if not all("!" <= c <= "~" for c in text):
        raise PydanticCustomError(
            "token", "must be printable ASCII with no whitespace (a bearer token)")
    return text


BearerToken = Annotated[str, BeforeValidator(_parse_token)]
Command = Annotated[tuple[str, ...], BeforeValidator(_parse_command)]
TrackWeight = Annotated[int, BeforeValidator(_int_in(-253, 253))]
SyncId = Annotated[int, BeforeValidator(_int_in(0, 255))]
PersistenceTimeout = Annotated[int, BeforeValidator(_int_in(0, 2678400))]
Uint16 = Annotated[int, BeforeValidator(_int_in(0, 65535))]
QuorumWeight = Annotated[int, BeforeValidator(_int_in(0, 4294967295))]
Count = Annotated[int, BeforeValidator(_int_in(1, 100))]
OneTo255 = Annotated[int, BeforeValidator(_int_in(1, 255))]
KernelTimeout = Annotated[int, BeforeValidator(_int_in(1, 2678400))]
Fwmark = Annotated[int, BeforeValidator(_int_in(1, 4294967295))]
SyncMaxlen = Annotated[int, BeforeValidator(_int_in(1, 65507))]
PositiveUint16 = Annotated[int, BeforeValidator(_int_in(1, 65535))]
HttpStatus = Annotated[int, BeforeValidator(_int_in(100, 599))]
VrrpVersion = Annotated[int, BeforeValidator(_int_in(2, 3))]
GarpInterval = Annotated[float, BeforeValidator(_number_in(0, 1))]
GarpDelay = Annotated[float, BeforeValidator(_number_in(0, 255))]
PreemptDelay = Annotated[float, BeforeValidator(_number_in(0, 1000))]
MinInterval = Annotated[float, BeforeValidator(_number_in(0, 3600))]
SlowStart = Annotated[float, BeforeValidator(_number_in(0, 600))]
DaySeconds = Annotated[float, BeforeValidator(_number_in(0, 86400))]
Ratio = Annotated[float, BeforeValidator(_number_in(0, 0.99))]
AdvertInterval = Annotated[float, BeforeValidator(_number_in(0.01, 255))]
ScriptSeconds = Annotated[float, BeforeValidator(_number_in(0.01, 3600))]
CheckSeconds = Annotated[float, BeforeValidator(_number_in(0.01, 86400))]
ShortSeconds = Annotated[float, BeforeValidator(_number_in(0.1, 3600))]
DelaySeconds = Annotated[float, BeforeValidator(_number_in(0, 3600))]
FileWeight = Annotated[int, BeforeValidator(_int_in(-2147483647, 2147483647))]
AbsolutePath = Annotated[str, BeforeValidator(_absolute_path)]
Penalty = Annotated[float, BeforeValidator(_number_in(1, 1_000_000))]
LongSeconds = Annotated[float, BeforeValidator(_number_in(1, 86400))]
FamilyValue = Annotated[Family, BeforeValidator(_enum_parser(Family)), PlainSerializer(_enum_value)]
ForwardingValue = Annotated[
    Forwarding, BeforeValidator(_enum_parser(Forwarding)), PlainSerializer(_enum_value)
]
HttpMethodValue = Annotated[
    HttpMethod, BeforeValidator(_enum_parser(HttpMethod)), PlainSerializer(_enum_value)
]
LogFormatValue = Annotated[
    LogFormat, BeforeValidator(_enum_parser(LogFormat)), PlainSerializer(_enum_value)
]
LogLevelValue = Annotated[
    LogLevel, BeforeValidator(_enum_parser(LogLevel)), PlainSerializer(_enum_value)
]
ProtocolValue = Annotated[
    Protocol, BeforeValidator(_enum_parser(Protocol)), PlainSerializer(_enum_value)
]
SchedulerValue = Annotated[
    Scheduler, BeforeValidator(_enum_parser(Scheduler)), PlainSerializer(_enum_value)
]
SchedulerFlagValue = Annotated[
    SchedulerFlag, BeforeValidator(_enum_parser(SchedulerFlag)), PlainSerializer(_enum_value)
]
TunnelChecksumValue = Annotated[
    TunnelChecksum, BeforeValidator(_enum_parser(TunnelChecksum)), PlainSerializer(_enum_value)
]
DnsRcodeValue = Annotated[
    DnsRcode, BeforeValidator(_enum_parser(DnsRcode)), PlainSerializer(_enum_value)
]
UnicastChecksumValue = Annotated[
    UnicastChecksum, BeforeValidator(_enum_parser(UnicastChecksum)), PlainSerializer(_enum_value)
]
TunnelTypeValue = Annotated[
    TunnelType, BeforeValidator(_enum_parser(TunnelType)), PlainSerializer(_enum_value)
]
Port = Uint16
NonZeroPort = PositiveUint16


def _parse_vip(value: Any) -> Any:
    # `- 198.51.100.10/24` is shorthand for `- {address: 198.51.100.10/24}`.
    if isinstance(value, str):
        return {"address": value}
    if not isinstance(value, dict | Vip):
        raise PydanticCustomError(
            "vip_type", "must be an address/prefix or a mapping {address, interface}"
        )
    return value


def _parse_host_port(value: Any) -> Any:
    # `sorry_server: 10.0.0.250:80` / `[2001:db8::250]:80` / a bare address.
    if not isinstance(value, str):
        if not isinstance(value, dict | SorryServer):
            raise PydanticCustomError(
                "host_port_type", "must be ADDRESS:PORT, an address or a mapping {address, port}"
            )
        return value
    match = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^:\[\]]+):(\d+)", value)
    if match is None:
        return {"address": value}
    host = match.group(1) or match.group(3)
    port = match.group(2) or match.group(4)
    return {"address": host, "port": int(port)}


def _parse_netmask(value: Any) -> Any:
    # keepalived persistence_granularity takes a dotted IPv4 mask; a prefix length works for
    # both families and is what the kernel stores for IPv6.
    if isinstance(value, str):
        try:
            return ipaddress.IPv4Network(f"0.0.0.0/{value}").prefixlen
        except ValueError:
            raise PydanticCustomError(
                "netmask",
                "not a netmask: {value} (a prefix length or a dotted IPv4 mask)",
                {"value": repr(value)},
            ) from None
    return _int_in(0, 128)(value)


_HOST_PORT = re.compile(r"^(?:\[(?P<v6>[^\]]+)\]|(?P<v4>[^:\[\]]+)):(?P<port>\d{1,5})$")


def _parse_listen(value: Any) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("string_type", "must be a string HOST:PORT")
    match = _HOST_PORT.match(value)
    if match is None:
        raise PydanticCustomError(
            "listen",
            "must be HOST:PORT, e.g. 127.0.0.1:9797 or [::1]:9797 (got {value})",
            {"value": repr(value)},
        )
    host = match.group("v6") or match.group("v4") or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise PydanticCustomError(
            "listen", "HOST must be an IP address (got {value})", {"value": repr(host)}
        ) from None
    if not 1 <= int(match.group("port")) <= 65535:
        raise PydanticCustomError("listen", "PORT must be 1..65535")
    return value


def address_family(address: IPv4Address | IPv6Address | IPv4Interface | IPv6Interface) -> Family:
    return Family.IPV4 if address.version == 4 else Family.IPV6


# --------------------------------------------------------------------------------------------
# Models


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Director(_Model):
    # keepalived global_defs router_id; None: the host name, filled in at start-up.
    name: Name | None = None
    api: Annotated[str, BeforeValidator(_parse_listen)] = "127.0.0.1:9797"
    # Required by clients when the API listens beyond loopback (see the warning rule).
    api_token: BearerToken | None = None
    # None: console on a TTY, json otherwise.
    log_format: LogFormatValue | None = None
    log_level: LogLevelValue = LogLevel.INFO
    # keepalived global_defs notify_fifo: keepalived-format state lines (INSTANCE, VS, RS).
    notify_fifo: AbsolutePath | None = None

    @property
    def api_host(self) -> str:
        host, _, _ = self.api.rpartition(":")
        return host.strip("[]")

    @property
    def api_port(self) -> int:
        return int(self.api.rpartition(":")[2])


class Vip(_Model):
    address: InterfaceAddress  # keepalived virtual_ipaddress entry
    interface: InterfaceName | None = None  # keepalived `dev IFACE`; None: the instance's


class TrackInterface(_Model):
    name: InterfaceName  # keepalived track_interface
    # 0: the instance goes FAULT when the interface is down (keepalived's default);
    # otherwise the priority moves by weight while it is down.
    weight: TrackWeight = 0


class TrackScript(_Model):
    # keepalived vrrp_script / track_script
    name: Name | None = None
    command: Command
    interval: ScriptSeconds = 1.0
    timeout: ScriptSeconds | None = None  # None: the interval
    weight: TrackWeight = 0
    rise: Count = 1
    fall: Count = 1

    @property
    def effective_timeout(self) -> float:
        return self.interval if self.timeout is None else self.timeout


class ParamMatch(enum.Enum):
    # keepalived track_process param_match: exact (no param_match), partial, initial
    EXACT = "exact"
    PARTIAL = "partial"
    INITIAL = "initial"


class TrackProcess(_Model):
    # keepalived vrrp_track_process / track_process (see vrrp.track_process)
    name: Name
    process: Annotated[str, BeforeValidator(_non_empty_text)]
    args: ListOf[str] | None = None  # keepalived `process NAME ARGS...`
    param_match: Annotated[
        ParamMatch, BeforeValidator(_enum_parser(ParamMatch)), PlainSerializer(_enum_value)
    ] = ParamMatch.EXACT
    full_command: bool = False
    # 0: FAULT while not running; otherwise added while running (>0) / not running (<0).
    weight: TrackWeight = 0
    quorum: Uint16 = 1
    quorum_max: Uint16 | None = None
    fork_delay: DelaySeconds = 0.0
    terminate_delay: DelaySeconds = 0.0
    interval: ScriptSeconds = 1.0


class TrackFile(_Model):
    # keepalived track_file / vrrp_track_file (see vrrp.track_file)
    name: Name
    path: AbsolutePath
    weight: FileWeight = 1
    interval: ScriptSeconds = 1.0


class Track(_Model):
    interfaces: ListOf[TrackInterface] = ()
    scripts: ListOf[TrackScript] = ()
    processes: ListOf[TrackProcess] = ()
    files: ListOf[TrackFile] = ()


class Notify(_Model):
    # keepalived notify_master / notify_backup / notify_fault / notify_stop; argv lists.
    master: Command | None = None
    backup: Command | None = None
    fault: Command | None = None
    stop: Command | None = None
    timeout: ShortSeconds = 10.0


class VrrpInstance(_Model):
    name: Name  # keepalived vrrp_instance NAME
    interface: InterfaceName
    vrid: OneTo255  # keepalived virtual_router_id
    priority: OneTo255 = 100  # keepalived default 100
    # RFC 5798 §5.2.4: the router that owns the VIP as a real interface address uses 255.
    address_owner: bool = False
    version: VrrpVersion = 3  # keepalived vrrp_version (its default is 2)
    advert_interval: AdvertInterval = 1.0  # keepalived advert_int
    preempt: bool = True  # keepalived preempts unless `nopreempt`
    preempt_delay: PreemptDelay = 0.0  # keepalived preempt_delay (0..1000 s)
    unicast_source: Address | None = None  # keepalived unicast_src_ip
    unicast_peers: ListOf[Address] = ()  # keepalived unicast_peer; empty: multicast
    # keepalived old_unicast_checksum [never]: VRRPv3 IPv4 unicast checksum with 224.0.0.18
    # in the pseudo-header (keepalived < 1.3.7 peers); auto switches when a peer uses it.
    unicast_checksum: UnicastChecksumValue = UnicastChecksum.AUTO
    # Multicast adverts from a source on none of the interface's subnets are
    # dropped (spoofed sources); true accepts them (peers numbered off-subnet).
    accept_foreign_source: bool = False
    vips: ListOf[Annotated[Vip, BeforeValidator(_parse_vip)]]  # keepalived virtual_ipaddress
    track: Track = Track()
    notify: Notify = Notify()
    garp_repeat: OneTo255 = 5  # keepalived garp_master_repeat
    garp_interval: GarpInterval = 0.0  # keepalived garp_interval (between packets)
    garp_master_delay: GarpDelay = 5.0  # keepalived garp_master_delay (second burst)
    garp_master_refresh: DaySeconds = 0.0  # keepalived garp_master_refresh (0: off)
    # RFC 5798 §6.1 Accept_Mode: accept packets for the VIPs when not the owner
    # (keepalived `accept`, its default outside vrrp_strict).
    accept: bool = True
    # VRRPv2 simple password (RFC 3768 §5.3.6 type 1; keepalived authentication auth_pass).
    auth_pass: Text | None = None

    @property
    def family(self) -> Family:
        # RFC 5798 §1: an IPv4 and an IPv6 virtual router are separate; the first VIP decides.
        return address_family(self.vips[0].address) if self.vips else Family.IPV4


class SyncGroup(_Model):
    name: Name  # keepalived vrrp_sync_group NAME
    instances: ListOf[Name]  # keepalived group { ... }
    # keepalived notify_master/backup/fault of the group: once per group change.
    notify: Notify = Notify()


class Persistence(_Model):
    # keepalived persistence_timeout; 0: no persistence.
    timeout: PersistenceTimeout = 0
    # keepalived persistence_granularity: a prefix length (or a dotted IPv4 mask).
    netmask: Annotated[int, BeforeValidator(_parse_netmask)] | None = None


class Quorum(_Model):
    # keepalived quorum: the sum of the weights of the healthy real servers (min_weight);
    # or, by choice, a count of healthy real servers (min_up, the default when min_weight
    # is not set). keepalived hysteresis: lost below threshold - hysteresis, regained at
    # threshold + hysteresis.
    min_up: Uint16 = 1
    min_weight: QuorumWeight | None = None
    hysteresis: Uint16 = 0
    # keepalived quorum_up / quorum_down: argv run when quorum is regained / lost.
    up: Command | None = None
    down: Command | None = None
    command_timeout: ShortSeconds = 10.0


class SorryServer(_Model):
    address: Address  # keepalived sorry_server IP PORT
    port: Port | None = None  # None: the service port


class Drain(_Model):
    # Removal sets weight 0 and waits for connections to end, at most this long.
    timeout: DaySeconds = 30.0


class FailOpen(_Model):
    # If more than this share of the real servers fail together, suspect the check, not the
    # servers, and keep the last good set (Envoy's panic threshold).
    ratio: Ratio = 0.5  # 0..0.99
    window: ShortSeconds = 10.0
    min_real_servers: PositiveUint16 = 2


class FlapDamping(_Model):
    # RFC 2439 route flap damping, applied to a real server's verdict.
    penalty_per_flap: Penalty = 1000.0
    half_life: LongSeconds = 60.0
    suppress_threshold: Penalty = 2000.0
    reuse_threshold: Penalty = 750.0
    max_suppress: LongSeconds = 300.0


class CheckTiming(_Model):
    """Fields every check type has (keepalived checker common options)."""

    interval: CheckSeconds = 5.0  # keepalived delay_loop
    timeout: CheckSeconds = 3.0  # keepalived connect_timeout
    rise: Count = 2
    fall: Count = 2  # keepalived retry
    fast_interval: CheckSeconds | None = None  # keepalived delay_before_retry
    down_interval: CheckSeconds | None = None  # while down; None: interval
    # keepalived warmup: the first probe waits a random 0..warmup s; None: spread over one
    # interval.
    warmup: DaySeconds | None = None
    slow_start: SlowStart = 0.0  # keepalived slow_start: weight ramp after up
    # keepalived alpha: at start-up a real server is down until `rise` good probes (the
    # haipvs default: no traffic to a server nobody has seen answer). `alpha: false` is
    # keepalived's default: up until its first result (the importer writes it out). Real
    # servers added by a reload always start down; ones already in the kernel table keep
    # their place until their first result.
    alpha: bool = True
    flap_damping: FlapDamping | None = None


class TcpCheck(CheckTiming):
    type: Literal["tcp"]  # keepalived TCP_CHECK
    port: NonZeroPort | None = None  # keepalived connect_port; None: the real server's
    bind_to: Address | None = None  # keepalived bindto: the probe's source address


class HttpCheck(CheckTiming):
    type: Literal["http"]  # keepalived HTTP_GET
    port: NonZeroPort | None = None
    path: UrlPath = "/"
    method: HttpMethodValue = HttpMethod.GET
    host: HostHeader | None = None  # keepalived virtualhost
    # keepalived status_code: codes or "LOW-HIGH" ranges; its default is any 2xx.
    expect_status: ListOf[StatusCode] = ("200-299",)
    expect_body: Text | None = None  # a substring the body must contain
    digest: Md5 | None = None  # keepalived digest: md5 of the body


class HttpsCheck(CheckTiming):
    type: Literal["https"]  # keepalived SSL_GET
    port: NonZeroPort | None = None
    path: UrlPath = "/"
    method: HttpMethodValue = HttpMethod.GET
    host: HostHeader | None = None
    expect_status: ListOf[StatusCode] = ("200-299",)
    expect_body: Text | None = None
    digest: Md5 | None = None
    verify_tls: bool = False  # keepalived SSL_GET does not verify either
    ca_file: Text | None = None  # the CA bundle verify_tls uses; None: the system's
    server_name: Text | None = None  # TLS SNI (keepalived enable_sni)


class ExecCheck(CheckTiming):
    type: Literal["exec"]  # keepalived MISC_CHECK misc_path (argv, no shell)
    command: Command
    dynamic: bool = False  # keepalived misc_dynamic: exit code 2..255 sets weight-2


class DnsCheck(CheckTiming):
    type: Literal["dns"]  # keepalived DNS_CHECK
    port: NonZeroPort = 53
    name: Text  # keepalived DNS_CHECK name
    record_type: RecordType = "A"  # keepalived DNS_CHECK type
    expect_rcode: DnsRcodeValue = DnsRcode.NOERROR
    expect_answer: Text | None = None  # text an answer record must contain; None: any


class UdpCheck(CheckTiming):
    type: Literal["udp"]  # keepalived UDP_CHECK
    port: NonZeroPort | None = None
    payload: Text | None = None  # keepalived payload
    expect: Text | None = None  # keepalived require_reply


class SmtpCheck(CheckTiming):
    type: Literal["smtp"]  # keepalived SMTP_CHECK: 220 greeting, 250 to HELO, QUIT
    port: NonZeroPort | None = None  # keepalived connect_port; None: the real server's
    helo_name: Text = "smtpchecker.keepalived.org"  # keepalived helo_name and its default


class PingCheck(CheckTiming):
    type: Literal["ping"]  # keepalived PING_CHECK: an ICMP(v6) echo reply in time


Check = Annotated[
    TcpCheck | HttpCheck | HttpsCheck | ExecCheck | DnsCheck | UdpCheck | SmtpCheck | PingCheck,
    Field(discriminator="type"),
]
CHECK_TYPES = ("tcp", "http", "https", "exec", "dns", "udp", "smtp", "ping")


class Tunnel(_Model):
    type: TunnelTypeValue = TunnelType.IPIP
    port: NonZeroPort | None = None  # keepalived tun_port (gue only)
    csum: TunnelChecksumValue = TunnelChecksum.NONE  # keepalived tun_flags


class RealServer(_Model):
    name: Name | None = None
    address: Address  # keepalived real_server IP
    port: Port | None = None  # keepalived real_server IP PORT; None: the service port
    weight: Uint16 = 1  # keepalived weight
    u_thresh: Uint16 = 0  # keepalived uthreshold; 0: no limit
    l_thresh: Uint16 = 0  # keepalived lthreshold
    forwarding: ForwardingValue | None = None  # keepalived lb_kind per real server
    tun: Tunnel | None = None
    check: Check | None = None  # replaces the service's check for this real server


class VirtualServer(_Model):
    name: Name | None = None
    vip: Address | None = None  # keepalived virtual_server IP PORT
    port: Port | None = None
    protocol: ProtocolValue = Protocol.TCP  # keepalived protocol
    fwmark: Fwmark | None = None  # keepalived virtual_server fwmark N
    family: FamilyValue | None = None  # fwmark only (keepalived `ip_family`); default ipv4
    scheduler: SchedulerValue = Scheduler.WLC  # keepalived lb_algo (ipvsadm's default)
    scheduler_flags: ListOf[SchedulerFlagValue] = ()  # keepalived sh-port, mh-fallback...
    one_packet: bool = False  # keepalived ops; ipvsadm -o (UDP only)
    forwarding: ForwardingValue = Forwarding.NAT  # keepalived lb_kind
    persistence: Persistence = Persistence()
    quorum: Quorum = Quorum()
    sorry_server: Annotated[SorryServer, BeforeValidator(_parse_host_port)] | None = None
    drain: Drain = Drain()
    inhibit_on_failure: bool = False  # keepalived inhibit_on_failure: down = weight 0
    fail_open: FailOpen | None = None
    check: Check | None = None  # the default for every real server; None: always up
    real_servers: ListOf[RealServer] = ()

    @property
    def service_family(self) -> Family:
        if self.vip is not None:
            return address_family(self.vip)
        return self.family or Family.IPV4

    @property
    def label(self) -> str:
        """The ``vs`` log key (docs/operations.md): ``tcp/198.51.100.10:80``, ``fwmark/10``."""
        if self.fwmark is not None:
            suffix = "/ipv6" if self.service_family is Family.IPV6 else ""
            return f"fwmark/{self.fwmark}{suffix}"
        host = f"[{self.vip}]" if self.service_family is Family.IPV6 else str(self.vip)
        return f"{self.protocol.value}/{host}:{self.port}"

    def real_server_port(self, real_server: RealServer) -> int:
        if real_server.port is not None:
            return real_server.port
        return self.port or 0

    def real_server_forwarding(self, real_server: RealServer) -> Forwarding:
        return real_server.forwarding or self.forwarding

    def real_server_check(self, real_server: RealServer) -> Check | None:
        return real_server.check if real_server.check is not None else self.check


class IpvsTimeouts(_Model):
    # ipvsadm --set tcp tcpfin udp; keepalived lvs_timeouts. None: leave the kernel's value.
    tcp: KernelTimeout | None = None
    tcpfin: KernelTimeout | None = None
    udp: KernelTimeout | None = None


class SyncDaemon(_Model):
    # keepalived lvs_sync_daemon IFACE INSTANCE [id N] [maxlen N] [group ADDR] [port N] [ttl N]
    interface: InterfaceName
    instance: Name | None = None  # the VRRP instance whose MASTER/BACKUP state it follows
    # mesh: master and backup at once from start, whatever VRRP does (scale-out mode:
    # every director holds every other director's connections).
    mode: Literal["vrrp", "mesh"] = "vrrp"
    syncid: SyncId = 0
    maxlen: SyncMaxlen | None = None
    group: Address | None = None
    port: NonZeroPort = 8848
    ttl: OneTo255 = 1


class ProgrammerSettings(_Model):
    # Reconcile runs at least min_interval apart and at most max_interval apart (drift repair),
    # after k8s BoundedFrequencyRunner.
    min_interval: MinInterval = 1.0
    max_interval: LongSeconds = 60.0


class IpvsSettings(_Model):
    timeouts: IpvsTimeouts = IpvsTimeouts()
    sync_daemon: SyncDaemon | None = None
    programmer: ProgrammerSettings = ProgrammerSettings()


# --------------------------------------------------------------------------------------------
# Scale-out mode (several active directors behind the routers' ECMP, announced over BGP by
# BIRD): the settings haipvs needs to render BIRD's config and gate each VIP's announcement.


def _parse_bfd(value: Any) -> Any:
    # ``bfd: off`` (YAML reads it as false) turns BFD off: the BGP hold time alone then
    # decides how fast the routers notice a dead director (3 s and more).
    if value is False or value == "off":
        return None
    return value


def _parse_router_id(value: Any) -> IPv4Address:
    # BIRD's router id is a 32-bit number written as an IPv4 address (RFC 6286).
    address = _parse_address(value)
    if not isinstance(address, IPv4Address):
        raise PydanticCustomError("router_id", "must be an IPv4 address (a 32-bit BGP router id)")
    return address


RouterId = Annotated[IPv4Address, BeforeValidator(_parse_router_id), PlainSerializer(_to_str)]
AsNumber = Annotated[int, BeforeValidator(_int_in(1, 4294967295))]  # RFC 6793 4-octet AS
BfdInterval = Annotated[int, BeforeValidator(_int_in(10, 10000))]
HoldTime = Annotated[int, BeforeValidator(_int_in(3, 65535))]  # RFC 4271 §4.2: 0 or >= 3
KeepaliveTime = Annotated[int, BeforeValidator(_int_in(1, 21845))]
Need = Annotated[int, BeforeValidator(_int_in(0, 1000))]
GraceSeconds = Annotated[float, BeforeValidator(_number_in(0, 60))]
LoopLag = Annotated[float, BeforeValidator(_number_in(0.05, 60))]


class BgpBfd(_Model):
    # RFC 5880 §6.8.4: detection time = interval x multiplier.
    interval_ms: BfdInterval = 100
    multiplier: OneTo255 = 3


class BgpNeighbour(_Model):
    address: Address
    remote_as: AsNumber


class BgpVip(_Model):
    """A VIP whose gate differs from the section's defaults."""

    vip: Address
    need: Need | None = None
    learn: DelaySeconds | None = None


class BgpSettings(_Model):
    speaker: Literal["bird"] = "bird"
    control_socket: AbsolutePath = "/run/bird/bird.ctl"
    config_file: AbsolutePath = "/etc/bird/haipvs.conf"
    router_id: RouterId
    local_as: AsNumber
    neighbours: ListOf[BgpNeighbour] = ()
    bfd: Annotated[BgpBfd | None, BeforeValidator(_parse_bfd)] = BgpBfd()
    hold_time: HoldTime = 3
    keepalive_time: KeepaliveTime = 1
    # Defaults for every VIP of a virtual server; ``vips`` overrides them per VIP.
    need: Need = 1
    learn: DelaySeconds = 0.0
    max_loop_lag: LoopLag = 1.0
    # On shutdown, how long to keep serving after the withdrawal, while the routers take
    # this director out of ECMP (packets already on their way still find the table).
    withdraw_grace: GraceSeconds = 1.0
    vips: ListOf[BgpVip] = ()

    def need_for(self, vip: IPv4Address | IPv6Address) -> int:
        for item in self.vips:
            if item.vip == vip and item.need is not None:
                return item.need
        return self.need

    def learn_for(self, vip: IPv4Address | IPv6Address) -> float:
        for item in self.vips:
            if item.vip == vip and item.learn is not None:
                return item.learn
        return self.learn


class Config(_Model):
    director: Director = Director()
    vrrp: ListOf[VrrpInstance] = ()
    sync_groups: ListOf[SyncGroup] = ()
    virtual_servers: ListOf[VirtualServer] = ()
    ipvs: IpvsSettings = IpvsSettings()
    bgp: BgpSettings | None = None  # scale-out mode when set


# --------------------------------------------------------------------------------------------
# Cross-field rules

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Finding:
    """One broken rule: where (a key path into the YAML), what, and how bad."""

    key_path: KeyPath
    message: str
    severity: Severity = Severity.ERROR


def format_key_path(path: KeyPath) -> str:
    """``("virtual_servers", 0, "port")`` -> ``virtual_servers[0].port``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


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
        findings += _virtual_server_rules(index, virtual_server)
    findings += _service_uniqueness_rules(virtual_servers)
    if all_vrrp_valid and bgp is None and not scale_out:
        # In scale-out mode the routers fail over, not VRRP.
        findings += _vip_coverage_rules(virtual_servers, vrrp)
    if ipvs is not None:
        findings += _ipvs_rules(ipvs, vrrp, virtual_servers, all_vrrp_valid)
    if bgp is not None:
        findings += _scale_out_rules(bgp, vrrp, virtual_servers)
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


def _virtual_server_rules(index: int, vs: VirtualServer) -> Iterable[Finding]:
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
    if fallback is not None and fallback not in vs.scheduler_flags:
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
# mh-fallback needs no rule here: haipvs always sets it (``scheduler_flags_in_use``).
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
