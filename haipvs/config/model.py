"""The config model: every key of the YAML contract (docs/config.md), typed and defaulted.

Rule 1: this module owns the *shape* of a config file: which keys exist, their types, their
ranges and their defaults. Each model is strict (no silent coercion: ``"80"`` is not a port,
``1`` is not ``true``), frozen and forbids unknown keys, so a typo is an error, never ignored.

Rule 2: rules that relate several keys (vrid unique per interface, dr cannot map ports, a VIP
no VRRP instance carries...) live in :mod:`haipvs.config.rules`, not in validators; both
report :class:`Finding` (defined here, at the end).

Messages are written for the operator reading ``haipvs check-config`` at night: short, they
say what is allowed (``must be 1..65535``), and the names are the YAML keys.

Pure: no IO, no clock, no logging. Names follow keepalived.conf where one exists, and each
field's docstring-comment names the keepalived option it matches (docs/config.md has the table).
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
)
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
)
from pydantic_core import PydanticCustomError

from haipvs.ipvs.model import service_label

__all__ = [
    "MESH_REFRESH_PERIOD",
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
    "Nexthop",
    "Notify",
    "Persistence",
    "PingCheck",
    "ProgrammerSettings",
    "Protocol",
    "Quorum",
    "RealServer",
    "RouteScope",
    "RouteType",
    "RuleAction",
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
    "VirtualRoute",
    "VirtualRule",
    "VirtualServer",
    "Vmac",
    "VrrpInstance",
    "address_family",
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


class AuthHmacMode(enum.Enum):
    """keepalived ``auth_hmac { mode }``: the rollout steps, enforce by default."""

    RECEIVE_ONLY = "receive-only"  # verify a trailer when present, send none
    PERMISSIVE = "permissive"  # sign, and still accept unsigned adverts
    ENFORCE = "enforce"  # sign, and accept only a valid trailer


class AntiReplayMode(enum.Enum):
    """keepalived ``auth_hmac { anti_replay }``."""

    TIME = "time"  # timestamps within time_window of our clock, growing per sender
    MONOTONIC = "monotonic"  # growing per sender only (no trusted clock)


class UnicastChecksum(enum.Enum):
    """keepalived ``old_unicast_checksum [never]``: the VRRPv3 IPv4 unicast checksum form.

    keepalived before 1.3.7 put 224.0.0.18 in the pseudo-header of unicast adverts.
    """

    AUTO = "auto"  # no keyword: RFC form, switch to the old one when a peer uses it
    OLD = "old"  # old_unicast_checksum: the old form from the start
    NEVER = "never"  # old_unicast_checksum never: the RFC form only


class RouteType(enum.Enum):
    """keepalived virtual_routes route types (rtnetlink RTN_*)."""

    UNICAST = "unicast"
    BLACKHOLE = "blackhole"
    UNREACHABLE = "unreachable"
    PROHIBIT = "prohibit"
    THROW = "throw"


class RouteScope(enum.Enum):
    """`scope` of a virtual route (rtnetlink RT_SCOPE_*)."""

    UNIVERSE = "universe"
    SITE = "site"
    LINK = "link"
    HOST = "host"


class RuleAction(enum.Enum):
    """What a virtual rule does: look up `table`, or end the lookup (FR_ACT_*)."""

    TABLE = "table"
    BLACKHOLE = "blackhole"
    UNREACHABLE = "unreachable"
    PROHIBIT = "prohibit"


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


def _parse_network(value: Any) -> IPv4Network | IPv6Network:
    if isinstance(value, IPv4Network | IPv6Network):
        return value
    if not isinstance(value, str):
        raise PydanticCustomError("network_type", "must be a prefix like 192.0.2.0/24")
    try:
        return ipaddress.ip_network(value)
    except ValueError as exc:
        raise PydanticCustomError(
            "network",
            "not a prefix: {value} ({reason})",
            {"value": repr(value), "reason": str(exc)},
        ) from None


def _to_str(value: Any) -> str:
    return str(value)


Address = Annotated[
    IPv4Address | IPv6Address, BeforeValidator(_parse_address), PlainSerializer(_to_str)
]
Network = Annotated[
    IPv4Network | IPv6Network, BeforeValidator(_parse_network), PlainSerializer(_to_str)
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
SyncRefreshSeconds = Annotated[int, BeforeValidator(_int_in(1, 3600))]
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
RouteTypeValue = Annotated[
    RouteType, BeforeValidator(_enum_parser(RouteType)), PlainSerializer(_enum_value)
]
RouteScopeValue = Annotated[
    RouteScope, BeforeValidator(_enum_parser(RouteScope)), PlainSerializer(_enum_value)
]
RuleActionValue = Annotated[
    RuleAction, BeforeValidator(_enum_parser(RuleAction)), PlainSerializer(_enum_value)
]
RouteTable = Annotated[int, BeforeValidator(_int_in(1, 4294967295))]
Uint32 = Annotated[int, BeforeValidator(_int_in(0, 4294967295))]
NexthopWeight = Annotated[int, BeforeValidator(_int_in(1, 256))]
AuthHmacModeValue = Annotated[
    AuthHmacMode, BeforeValidator(_enum_parser(AuthHmacMode)), PlainSerializer(_enum_value)
]
AntiReplayValue = Annotated[
    AntiReplayMode, BeforeValidator(_enum_parser(AntiReplayMode)), PlainSerializer(_enum_value)
]
AuthWindow = Annotated[int, BeforeValidator(_int_in(1, 300))]
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
    # defer_build: a model's validator is built when it first validates, not at import.
    # The loader validates each section on its own (load.py) and assembles the root
    # without validating it again, so the daemon's start builds the sections its file
    # has and nothing more (no root Config validator, no bgp section in a VRRP pair).
    # The defaults below are made with model_construct for the same reason: calling a
    # model at import would build it.
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, defer_build=True)


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
    # keepalived's generic `notify`: every change, after the state's own hook, with
    # INSTANCE|GROUP NAME STATE PRIORITY appended.
    any: Command | None = None
    timeout: ShortSeconds = 10.0


class Nexthop(_Model):
    # keepalived `nexthop via A dev D weight W` (or the older `via A or B`)
    via: Address | None = None
    dev: InterfaceName | None = None
    weight: NexthopWeight = 1


class VirtualRoute(_Model):
    # keepalived virtual_routes entry, in `ip route` words
    to: Network  # the prefix (0.0.0.0/0 for a default route)
    type: RouteTypeValue = RouteType.UNICAST
    via: Address | None = None  # keepalived `via` / `gw`
    dev: InterfaceName | None = None
    src: Address | None = None  # the preferred source address (often a VIP)
    table: RouteTable = 254  # keepalived `table`; 254 is main
    metric: Uint32 | None = None  # keepalived metric / priority / preference
    scope: RouteScopeValue | None = None
    nexthops: ListOf[Nexthop] = ()  # multipath


class VirtualRule(_Model):
    # keepalived virtual_rules entry, in `ip rule` words (`from` / `to` are source / destination)
    source: Network | None = None
    destination: Network | None = None
    # Needed only when neither prefix says it (keepalived's `inet6`).
    family: FamilyValue | None = None
    table: RouteTable | None = None  # keepalived `table` / `lookup`
    action: RuleActionValue = RuleAction.TABLE
    # None: 32000 (keepalived lets the kernel choose, just above the main table's rule).
    priority: Uint32 | None = None  # keepalived priority / preference / pref
    iif: InterfaceName | None = None
    oif: InterfaceName | None = None
    fwmark: Uint32 | None = None
    fwmask: Uint32 | None = None
    invert: bool = False  # keepalived `not`


class Vmac(_Model):
    # keepalived use_vmac [NAME]: the VIPs on a macvlan with the virtual MAC
    name: InterfaceName | None = None  # None: vrrp.VRID, keepalived's default
    xmit_base: bool = False  # keepalived vmac_xmit_base: adverts from the base interface
    # keepalived use_ipvlan [NAME]: an L2 ipvlan (bridge) with the base's MAC instead.
    ipvlan: bool = False


class AuthHmacKey(_Model):
    # keepalived `key ID VALUE`: VALUE is `hex:` + hex digits (raw octets), `file:PATH`
    # (the file holds such a value; keep it mode 0600), or ASCII; 32..64 octets.
    id: OneTo255
    key: Text


class AuthHmac(_Model):
    # keepalived auth_hmac { ... } (2.4.2+, draft-cassen-vrrp-auth-hmac): every key
    # verifies, active_key signs (rotation: add the new key everywhere, then move
    # active_key, then remove the old one).
    keys: ListOf[AuthHmacKey]
    active_key: OneTo255 | None = None  # None: the only key
    mode: AuthHmacModeValue = AuthHmacMode.ENFORCE
    anti_replay: AntiReplayValue = AntiReplayMode.TIME
    time_window: AuthWindow | None = None  # None: max(3 x advert_interval, 5) s


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
    track: Track = Track.model_construct()
    notify: Notify = Notify.model_construct()
    garp_repeat: OneTo255 = 5  # keepalived garp_master_repeat
    garp_interval: GarpInterval = 0.0  # keepalived garp_interval (between packets)
    garp_master_delay: GarpDelay = 5.0  # keepalived garp_master_delay (second burst)
    garp_master_refresh: DaySeconds = 0.0  # keepalived garp_master_refresh (0: off)
    # RFC 5798 §6.1 Accept_Mode: accept packets for the VIPs when not the owner
    # (keepalived `accept`, its default outside vrrp_strict).
    accept: bool = True
    # VRRPv2 simple password (RFC 3768 §5.3.6 type 1; keepalived authentication auth_pass).
    auth_pass: Text | None = None
    # keepalived virtual_routes / virtual_rules: installed while MASTER, like the vips.
    routes: ListOf[VirtualRoute] = ()
    rules: ListOf[VirtualRule] = ()
    # keepalived use_vmac / vmac_xmit_base (RFC 5798 §7.3 virtual MAC 00:00:5e:00:01:VRID).
    vmac: Vmac | None = None
    # keepalived auth_hmac: an HMAC-SHA256 trailer on every advert (VRRPv2 or v3).
    auth_hmac: AuthHmac | None = None
    # keepalived vrrp_strict / strict_mode: RFC 5798 as written (see docs/config.md).
    strict: bool = False

    @property
    def vmac_name(self) -> str | None:
        if self.vmac is None:
            return None
        return self.vmac.name if self.vmac.name is not None else f"vrrp.{self.vrid}"

    @property
    def family(self) -> Family:
        # RFC 5798 §1: an IPv4 and an IPv6 virtual router are separate; the first VIP decides.
        return address_family(self.vips[0].address) if self.vips else Family.IPV4


class SyncGroup(_Model):
    name: Name  # keepalived vrrp_sync_group NAME
    instances: ListOf[Name]  # keepalived group { ... }
    # keepalived notify_master/backup/fault of the group: once per group change.
    notify: Notify = Notify.model_construct()


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


class FileCheck(CheckTiming):
    # keepalived FILE_CHECK { track_file } on a real server: the file's number x weight is
    # added to the real server's weight; weight 0: a non-zero number is a fault. keepalived
    # acts on the first read, so rise and fall default to 1, and polls often.
    type: Literal["file"]
    path: AbsolutePath  # keepalived track_file NAME { file PATH }
    weight: FileWeight = 1  # keepalived FILE_CHECK / track_file weight
    reverse: bool = False  # keepalived weight N reverse
    interval: CheckSeconds = 1.0
    timeout: CheckSeconds = 0.5  # a local read; within the interval
    rise: Count = 1
    fall: Count = 1


Check = Annotated[
    TcpCheck
    | HttpCheck
    | HttpsCheck
    | ExecCheck
    | DnsCheck
    | UdpCheck
    | SmtpCheck
    | PingCheck
    | FileCheck,
    Field(discriminator="type"),
]
CHECK_TYPES = ("tcp", "http", "https", "exec", "dns", "udp", "smtp", "ping", "file")


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
    persistence: Persistence = Persistence.model_construct()
    quorum: Quorum = Quorum.model_construct()
    sorry_server: Annotated[SorryServer, BeforeValidator(_parse_host_port)] | None = None
    drain: Drain = Drain.model_construct()
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
        """The ``vs`` log key (``haipvs.ipvs.model.service_label``): ``tcp/198.51.100.10:80``,
        ``fwmark/10``, ``fwmark6/10``."""
        return service_label(
            self.protocol.value,
            self.vip,
            self.port,
            self.fwmark,
            ipv6=self.service_family is Family.IPV6,
        )

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


#: A sync mesh's refresh_period when the config sets none: every live connection of a
#: peer is re-sent within 5 s (one sync entry per connection per 5 s on the sync link).
MESH_REFRESH_PERIOD = 5


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
    # net.ipv4.vs.sync_refresh_period (with sync_threshold's period 0): every live
    # connection re-sent at least this often, so a peer that starts learns the long-lived
    # ones within it (haipvs.ipvs.sysctl). Unset: 5 s in mesh mode, the kernel's in vrrp mode.
    refresh_period: SyncRefreshSeconds | None = None


class ProgrammerSettings(_Model):
    # Reconcile runs at least min_interval apart and at most max_interval apart (drift repair),
    # after k8s BoundedFrequencyRunner.
    min_interval: MinInterval = 1.0
    max_interval: LongSeconds = 60.0


class IpvsSettings(_Model):
    timeouts: IpvsTimeouts = IpvsTimeouts.model_construct()
    sync_daemon: SyncDaemon | None = None
    programmer: ProgrammerSettings = ProgrammerSettings.model_construct()


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
ErrorWaitSeconds = Annotated[int, BeforeValidator(_int_in(1, 3600))]
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
    bfd: Annotated[BgpBfd | None, BeforeValidator(_parse_bfd)] = BgpBfd.model_construct()
    hold_time: HoldTime = 3
    keepalive_time: KeepaliveTime = 1
    # BIRD's `error wait time MIN,MAX`: after a session fails (a BFD flap included), BIRD
    # waits MIN seconds before it restarts it, doubling up to MAX while it keeps failing.
    # BIRD's own 60,300 keeps a healthy director out of the routers' ECMP for a minute
    # after one short flap (measured in the lab); a director wants back in within seconds.
    error_wait_min: ErrorWaitSeconds = 5
    error_wait_max: ErrorWaitSeconds = 60
    # Defaults for every VIP of a virtual server; ``vips`` overrides them per VIP.
    need: Need = 1
    # Unset: the sync mesh's refresh_period + 3 s when there is one (every live connection
    # re-sent once, the kernel's 2 s flush, a heartbeat's gap), else 0 (haipvs.config.compile).
    learn: DelaySeconds | None = None
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

    def learn_for(self, vip: IPv4Address | IPv6Address) -> float | None:
        """The VIP's own learn, else the section's; None when neither is set."""
        for item in self.vips:
            if item.vip == vip and item.learn is not None:
                return item.learn
        return self.learn


class Config(_Model):
    director: Director = Director.model_construct()
    vrrp: ListOf[VrrpInstance] = ()
    sync_groups: ListOf[SyncGroup] = ()
    virtual_servers: ListOf[VirtualServer] = ()
    ipvs: IpvsSettings = IpvsSettings.model_construct()
    bgp: BgpSettings | None = None  # scale-out mode when set


# --------------------------------------------------------------------------------------------
# Findings: what the shape checks (load.py) and the cross-field rules (rules.py) report

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
