"""Check specifications: what to probe, on which target, with which timing.

This module owns the *settings* side of the checkers package (seesaw's
``ha.NodeConfig`` idea: the library owns its settings type, and
``haipvs.config.compile`` fills it in). Everything here is a frozen value.

Rules kept here:

1. Every spec validates itself on construction. A spec that cannot be probed
   is our own misuse (the config compiler let it through) and raises
   ``SpecError``; the peer's garbage never reaches this module.
2. Identity and tuning are separated, as in keepalived's checker ``compare``
   and seesaw's ``CheckKey``: :func:`check_key` keeps only what changes the
   *probe* (kind, target, probe parameters, timeout). Interval, rise, fall,
   warmup, slow start and damping are tuning of the per-backend decision and
   are left out, so identical probes on one target are run once and shared,
   and a reload that only changes tuning keeps the running state
   (keepalived ``migrate_checkers``).

Pure: no IO, no clock, no logging.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import ClassVar

__all__ = [
    "DEFAULT_EXPECT_STATUS",
    "BackendId",
    "CheckKey",
    "CheckSpec",
    "DampingSettings",
    "DnsCheck",
    "ExecCheck",
    "FailOpenSettings",
    "FileCheck",
    "HttpCheck",
    "IPAddress",
    "PingCheck",
    "SmtpCheck",
    "SpecError",
    "Target",
    "TcpCheck",
    "Timing",
    "UdpCheck",
    "check_key",
    "endpoint_label",
    "probe_port",
]

IPAddress = IPv4Address | IPv6Address

# keepalived HTTP_GET with no status_code accepts any 2xx (check_http.c,
# "status_code" default range 200-299).
DEFAULT_EXPECT_STATUS: tuple[tuple[int, int], ...] = ((200, 299),)

_HTTP_METHOD = re.compile(r"^[A-Z]+$")
_DNS_TYPE = re.compile(r"^[A-Z0-9]+$")
# RFC 1035 §4.1.1 and RFC 6895 §2.3 mnemonic names of the rcodes a server answers.
_DNS_RCODES = frozenset(
    {
        "NOERROR",
        "FORMERR",
        "SERVFAIL",
        "NXDOMAIN",
        "NOTIMP",
        "REFUSED",
        "YXDOMAIN",
        "YXRRSET",
        "NXRRSET",
        "NOTAUTH",
        "NOTZONE",
    }
)
_MD5_HEX = re.compile(r"^[0-9a-f]{32}$")


class SpecError(ValueError):
    """A spec that cannot be probed: the caller (config compiler) broke the rules."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise SpecError(message)


def _check_port(value: int | None, name: str, *, allow_zero: bool = False) -> None:
    if value is None:
        return
    low = 0 if allow_zero else 1
    _require(low <= value <= 65535, f"{name} must be {low}..65535, got {value}")


def endpoint_label(address: object, port: int) -> str:
    """The ``rs`` log key (docs/operations.md), the one renderer of an address and port
    on every line about a real server (check.*, ipvs.*, drain, operator) and in the ``rs``
    metric label: ``10.0.0.11:80``, ``[2001:db8::11]:80``. ``address`` is an address
    object or its text."""
    text = str(address)
    return f"[{text}]:{port}" if ":" in text else f"{text}:{port}"


@dataclass(frozen=True, slots=True, order=True)
class Target:
    """Where a probe goes: the real server's address and port.

    Port 0 is allowed for checks that have no port of their own (``exec``
    checks of a fwmark service); socket probes override it with
    ``connect_port`` (keepalived ``connect_port``).
    """

    address: IPAddress
    port: int

    def __post_init__(self) -> None:
        _check_port(self.port, "port", allow_zero=True)

    def __str__(self) -> str:
        return endpoint_label(self.address, self.port)


@dataclass(frozen=True, slots=True)
class BackendId:
    """A real server of a service: the unit that has health.

    ``service`` is the virtual server's name as the config compiler renders
    it (used as the ``vs`` log key). Two services sharing a real server are
    two backends, which may share one probe (see :func:`check_key`).
    """

    service: str
    address: IPAddress
    port: int

    def __post_init__(self) -> None:
        _require(bool(self.service), "service must not be empty")
        _check_port(self.port, "port", allow_zero=True)

    def _order(self) -> tuple[str, int, IPAddress | int, int]:
        # A service may mix families (tun real servers): IPv4 before IPv6, never a
        # comparison of an IPv4 with an IPv6 address (ipaddress refuses it).
        return (self.service, self.address.version, int(self.address), self.port)

    def __lt__(self, other: BackendId) -> bool:
        return self._order() < other._order()

    def __le__(self, other: BackendId) -> bool:
        return self._order() <= other._order()

    def __gt__(self, other: BackendId) -> bool:
        return self._order() > other._order()

    def __ge__(self, other: BackendId) -> bool:
        return self._order() >= other._order()

    @property
    def rs(self) -> str:
        """The ``rs`` log key: ``10.0.0.11:80``."""
        return str(Target(self.address, self.port))

    def __str__(self) -> str:
        return f"{self.service}/{self.rs}"


@dataclass(frozen=True, slots=True)
class DampingSettings:
    """Flap damping, after BGP route flap damping (RFC 2439 §4.2).

    Every change of the check's verdict (up->down and down->up) adds
    ``penalty_per_flap``; the penalty halves every ``half_life`` seconds. When
    it goes above ``suppress_threshold`` the backend is held DOWN until it has
    decayed below ``reuse_threshold``. ``max_suppress`` caps how long a
    backend can be held: the penalty never exceeds the ceiling
    ``reuse_threshold * 2 ** (max_suppress / half_life)`` (RFC 2439 §4.2,
    "maximum hold down time").

    Defaults: one down/up cycle (2 flaps, penalty just below 2000) is
    tolerated; a third flap within about a minute suppresses the backend,
    which then stays down until the penalty decays to 750: about 95 s after
    three flaps in one minute (2200..2700 -> 750 is 1.6..1.9 half-lives),
    never more than 300 s after the last flap.
    """

    penalty_per_flap: float = 1000.0
    half_life: float = 60.0
    suppress_threshold: float = 2000.0
    reuse_threshold: float = 750.0
    max_suppress: float = 300.0

    def __post_init__(self) -> None:
        _require(self.penalty_per_flap > 0, "penalty_per_flap must be > 0")
        _require(self.half_life > 0, "half_life must be > 0")
        _require(self.reuse_threshold > 0, "reuse_threshold must be > 0")
        _require(
            self.suppress_threshold > self.reuse_threshold,
            "suppress_threshold must be above reuse_threshold",
        )
        _require(self.max_suppress > 0, "max_suppress must be > 0")
        _require(
            self.ceiling > self.suppress_threshold,
            "max_suppress too short: the penalty ceiling would never reach suppress_threshold",
        )

    @property
    def ceiling(self) -> float:
        """Largest penalty kept (RFC 2439 §4.2 "ceiling")."""
        return self.reuse_threshold * math.pow(2.0, self.max_suppress / self.half_life)


@dataclass(frozen=True, slots=True)
class FailOpenSettings:
    """Per-service fail-open guard (Envoy's panic threshold, made time-aware).

    If more than ``fail_open_ratio`` of a service's real servers go from up
    to down within ``window`` seconds, the whole failure is treated as a
    broken check rather than broken servers: the last known-good set stays
    in the service. Services with fewer than ``min_real_servers`` are never
    held open (a single server that fails is just down; quorum and the sorry
    server handle an empty service).
    """

    fail_open_ratio: float = 0.5
    window: float = 10.0
    min_real_servers: int = 2

    def __post_init__(self) -> None:
        _require(0.0 <= self.fail_open_ratio < 1.0, "fail_open_ratio must be in [0, 1)")
        _require(self.window > 0, "window must be > 0")
        _require(self.min_real_servers >= 1, "min_real_servers must be >= 1")


@dataclass(frozen=True, slots=True)
class Timing:
    """When to probe and how to turn results into a verdict.

    * ``interval``: seconds between checks while the state is settled
      (keepalived ``delay_loop``, HAProxy ``inter``).
    * ``timeout``: a probe taking longer fails (keepalived ``connect_timeout``).
    * ``rise`` / ``fall``: consecutive successes to go up, failures to go down
      (HAProxy ``rise``/``fall``, keepalived ``retry`` for fall).
    * ``fast_interval``: used while in doubt, i.e. a rise or fall count has
      started but not completed (HAProxy ``fastinter``). None: ``interval``.
    * ``down_interval``: used while settled DOWN (HAProxy ``downinter``).
      None: ``interval``.
    * ``warmup``: the first check is delayed by a random 0..warmup seconds
      (keepalived ``warmup``). None spreads the first checks over one
      ``interval`` (HAProxy spreads its first checks over ``inter``); 0 probes
      at once.
    * ``slow_start``: seconds over which the weight ramps up after a recovery
      (HAProxy ``slowstart``). 0: full weight at once.
    * ``flap_damping``: None disables damping.
    """

    interval: float
    timeout: float
    rise: int
    fall: int
    fast_interval: float | None = None
    down_interval: float | None = None
    warmup: float | None = None
    slow_start: float = 0.0
    flap_damping: DampingSettings | None = None

    def __post_init__(self) -> None:
        _require(self.interval > 0, f"interval must be > 0, got {self.interval}")
        _require(self.timeout > 0, f"timeout must be > 0, got {self.timeout}")
        _require(self.rise >= 1, f"rise must be >= 1, got {self.rise}")
        _require(self.fall >= 1, f"fall must be >= 1, got {self.fall}")
        _require(self.fast_interval is None or self.fast_interval > 0, "fast_interval must be > 0")
        _require(self.down_interval is None or self.down_interval > 0, "down_interval must be > 0")
        _require(self.warmup is None or self.warmup >= 0, "warmup must be >= 0")
        _require(self.slow_start >= 0, "slow_start must be >= 0")


@dataclass(frozen=True, slots=True)
class TcpCheck:
    """TCP connect check (keepalived ``TCP_CHECK``): up when the handshake completes."""

    kind: ClassVar[str] = "tcp"

    timing: Timing
    connect_port: int | None = None
    bind_address: IPAddress | None = None

    def __post_init__(self) -> None:
        _check_port(self.connect_port, "connect_port")


@dataclass(frozen=True, slots=True)
class HttpCheck:
    """HTTP or HTTPS check (keepalived ``HTTP_GET`` / ``SSL_GET``, HAProxy httpchk).

    ``expect_status`` is a tuple of inclusive (lo, hi) ranges; ``body_digest``
    is the md5 hex digest of the body (keepalived ``digest``); ``body_regex``
    is searched in the body (HAProxy ``http-check expect rstring``).
    """

    kind: ClassVar[str] = "http"

    timing: Timing
    tls: bool
    method: str = "GET"
    path: str = "/"
    host: str | None = None
    expect_status: tuple[tuple[int, int], ...] = DEFAULT_EXPECT_STATUS
    body_regex: str | None = None
    body_digest: str | None = None
    sni: str | None = None
    verify_tls: bool = False
    ca_file: str | None = None
    connect_port: int | None = None

    def __post_init__(self) -> None:
        _require(bool(_HTTP_METHOD.match(self.method)), f"bad HTTP method {self.method!r}")
        _require(self.path.startswith("/"), f"path must start with '/', got {self.path!r}")
        _require(
            not any(c in self.path for c in " \r\n"), "path must not contain spaces or newlines"
        )
        _require(
            self.host is None or not any(c in self.host for c in " \r\n/"),
            f"bad Host header {self.host!r}",
        )
        _require(bool(self.expect_status), "expect_status must not be empty")
        for low, high in self.expect_status:
            _require(100 <= low <= high <= 599, f"expect_status range {low}-{high} not in 100..599")
        if self.body_regex is not None:
            try:
                re.compile(self.body_regex)
            except re.error as exc:
                raise SpecError(f"body_regex does not compile: {exc}") from exc
        _require(
            self.body_digest is None or bool(_MD5_HEX.match(self.body_digest)),
            "body_digest must be 32 lowercase hex digits (md5)",
        )
        _require(self.tls or self.sni is None, "sni needs tls")
        _require(self.tls or not self.verify_tls, "verify_tls needs tls")
        _require(self.ca_file is None or self.verify_tls, "ca_file needs verify_tls")
        _check_port(self.connect_port, "connect_port")

    def accepts_status(self, status: int) -> bool:
        """Whether ``status`` is inside one of the expected ranges."""
        return any(low <= status <= high for low, high in self.expect_status)


@dataclass(frozen=True, slots=True)
class ExecCheck:
    """Run a program, no shell (keepalived ``MISC_CHECK``): exit 0 = up.

    ``dynamic_weight``: keepalived ``misc_dynamic``: exit 0 = up at the
    configured weight, 1 = down, 2..255 = up with weight ``code - 2``.
    """

    kind: ClassVar[str] = "exec"

    timing: Timing
    command: tuple[str, ...]
    dynamic_weight: bool = False

    def __post_init__(self) -> None:
        _require(bool(self.command), "command must not be empty")
        _require(bool(self.command[0]), "command[0] must not be empty")


@dataclass(frozen=True, slots=True)
class DnsCheck:
    """DNS query check (keepalived ``DNS_CHECK``): the rcode and optionally an answer."""

    kind: ClassVar[str] = "dns"

    timing: Timing
    query_name: str
    query_type: str = "A"
    expect_rcode: str = "NOERROR"
    expect_answer: str | None = None
    connect_port: int | None = None

    def __post_init__(self) -> None:
        _require(bool(self.query_name), "query_name must not be empty")
        _require(bool(_DNS_TYPE.match(self.query_type)), f"bad query_type {self.query_type!r}")
        _require(self.expect_rcode in _DNS_RCODES, f"unknown rcode {self.expect_rcode!r}")
        _check_port(self.connect_port, "connect_port")


@dataclass(frozen=True, slots=True)
class UdpCheck:
    """UDP request/response check (keepalived ``UDP_CHECK`` with ``payload``/``require_reply``).

    ``expect`` None: any reply (and no ICMP port unreachable) is success.
    """

    kind: ClassVar[str] = "udp"

    timing: Timing
    payload: bytes
    expect: bytes | None = None
    connect_port: int | None = None

    def __post_init__(self) -> None:
        _check_port(self.connect_port, "connect_port")


@dataclass(frozen=True, slots=True)
class SmtpCheck:
    """SMTP dialogue check (keepalived ``SMTP_CHECK``): a 220 greeting, then 250 to
    ``HELO helo_name`` (the config's default is keepalived's, smtpchecker.keepalived.org)."""

    kind: ClassVar[str] = "smtp"

    timing: Timing
    helo_name: str
    connect_port: int | None = None

    def __post_init__(self) -> None:
        _require(
            bool(self.helo_name) and not any(c.isspace() for c in self.helo_name),
            f"helo_name must be one word, got {self.helo_name!r}",
        )
        _check_port(self.connect_port, "connect_port")


@dataclass(frozen=True, slots=True)
class PingCheck:
    """ICMP echo check (keepalived ``PING_CHECK``): up on an echo reply in time."""

    kind: ClassVar[str] = "ping"

    timing: Timing


@dataclass(frozen=True, slots=True)
class FileCheck:
    """A number in a file sets the weight (keepalived ``FILE_CHECK`` on a real server).

    ``weight``: the multiplier of the file's number (keepalived's ``weight N``; 0:
    the file is a fault switch); ``reverse`` negates it; ``base_weight`` is the real
    server's configured weight the product is added to (see checkers.file_check).
    """

    kind: ClassVar[str] = "file"

    timing: Timing
    path: str
    weight: int = 1
    reverse: bool = False
    base_weight: int = 1

    def __post_init__(self) -> None:
        _require(self.path.startswith("/"), f"path must be absolute, got {self.path!r}")
        _require(-(2**31) < self.weight < 2**31, f"weight {self.weight} outside int32")


CheckSpec = (
    TcpCheck | HttpCheck | ExecCheck | DnsCheck | UdpCheck | SmtpCheck | PingCheck | FileCheck
)


@dataclass(frozen=True, slots=True)
class CheckKey:
    """Identity of a probe: same key = same probe, run once and shared.

    ``params`` holds every field of the spec except ``timing`` (in field
    order); ``timeout`` is the one timing field that changes a probe's result.
    """

    target: Target
    kind: str
    timeout: float
    params: tuple[object, ...] = field(compare=True)

    def __str__(self) -> str:
        return f"{self.kind}/{self.target}"


_PARAM_FIELDS: dict[type, tuple[str, ...]] = {}


def check_key(spec: CheckSpec, target: Target) -> CheckKey:
    """The probe identity of ``spec`` on ``target`` (keepalived checker ``compare``)."""
    names = _PARAM_FIELDS.get(type(spec))
    if names is None:
        names = tuple(f.name for f in dataclasses.fields(spec) if f.name != "timing")
        _PARAM_FIELDS[type(spec)] = names
    params = tuple(getattr(spec, name) for name in names)
    return CheckKey(target=target, kind=spec.kind, timeout=spec.timing.timeout, params=params)


def probe_port(spec: TcpCheck | HttpCheck | DnsCheck | UdpCheck | SmtpCheck, target: Target) -> int:
    """The port a probe connects to: keepalived's ``connect_port`` when set (probe
    another port than the one traffic goes to), else the real server's own."""
    return spec.connect_port if spec.connect_port is not None else target.port
