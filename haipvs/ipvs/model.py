"""Values of the IPVS table: keys, tunables, statistics, tables and the ops that change them.

Rule 1: this module owns every value the IPVS programmer, its kernel port and its fake exchange.
Nothing here does IO, reads a clock or logs; every type is a frozen dataclass or an enum.

Rule 2: each kernel object has an *identity key* and a set of *tunables* (seesaw's
``ipvsEqual``, k8s ``RealServer.Equal``). ``ServiceKey`` / ``DestKey`` are identities; ``Service``
and ``Dest`` carry the tunables the kernel stores; ``DestStats`` (connection counters) is kept
apart so that comparing two tables never sees transient state.

Values are normalised on construction (addresses in compressed form, persistence netmask as a
prefix length), so a value built from the config and one decoded from a kernel dump compare equal
exactly when the kernel would treat them as the same configuration. Invalid values raise
``ValueError``: building one is our own misuse, never the peer's.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from checkers.spec import endpoint_label

__all__ = [
    "DEFAULT_OP_REASON",
    "SCHEDULERS",
    "SVC_F_HASHED",
    "SVC_F_ONEPACKET",
    "SVC_F_PERSISTENT",
    "SVC_F_SCHED1",
    "SVC_F_SCHED2",
    "SVC_F_SCHED3",
    "ActualTable",
    "AddDest",
    "AddService",
    "DeleteDest",
    "DeleteService",
    "Dest",
    "DestKey",
    "DestStats",
    "Family",
    "Forwarding",
    "IpvsTable",
    "IpvsTimeouts",
    "Op",
    "OpReason",
    "Protocol",
    "SchedFlags",
    "Service",
    "ServiceEntry",
    "ServiceKey",
    "TunFlags",
    "TunType",
    "UpdateDest",
    "UpdateService",
    "op_dest_key",
    "op_name",
    "op_target",
    "service_differences",
]

# Service flag bits of include/uapi/linux/ip_vs.h (IP_VS_SVC_F_*).
SVC_F_PERSISTENT = 0x0001
SVC_F_HASHED = 0x0002  # set by the kernel on every hashed service; never ours to send
SVC_F_ONEPACKET = 0x0004
SVC_F_SCHED1 = 0x0008  # sh-fallback / mh-fallback
SVC_F_SCHED2 = 0x0010  # sh-port / mh-port
SVC_F_SCHED3 = 0x0020

# The schedulers Debian's 6.1 kernel ships; the fake refuses others with ENOENT
# as the kernel does when request_module("ip_vs_<name>") finds nothing.
SCHEDULERS = frozenset(
    {"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh", "fo", "ovf"}
)


class Family(enum.Enum):
    """Address family; values are Linux's AF_INET / AF_INET6 (kept literal: no socket import)."""

    INET = 2
    INET6 = 10


class Protocol(enum.Enum):
    """Transport protocol of an address service; values are the IP protocol numbers."""

    TCP = 6
    UDP = 17
    SCTP = 132

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Protocol:
        try:
            return cls[text.upper()]
        except KeyError:
            raise ValueError(f"unknown protocol {text!r}: expected tcp, udp or sctp") from None


class Forwarding(enum.Enum):
    """Packet forwarding method (ipvsadm -m / -i / -g); values are IP_VS_CONN_F_* FWD_MASK."""

    MASQ = 0  # NAT
    LOCAL = 1
    TUNNEL = 2
    DROUTE = 3  # DR, "gatewaying"


class TunType(enum.Enum):
    """Tunnel encapsulation of a TUN dest (IP_VS_CONN_F_TUNNEL_TYPE_*; ipvsadm --tun-type)."""

    IPIP = 0
    GUE = 1
    GRE = 2


class TunFlags(enum.IntFlag):
    """Tunnel checksum flags (IP_VS_TUNNEL_ENCAP_FLAG_*; ipvsadm --tun-{no,}csum, --tun-remcsum)."""

    NOCSUM = 0
    CSUM = 1
    REMCSUM = 2


@functools.lru_cache(maxsize=65536)
def _normalise_address(address: str) -> tuple[str, Family]:
    # Cached: a dump of 10,000 dests repeats few distinct addresses, and ipaddress parsing
    # is the dominant cost of building keys.
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(f"not an IP address: {address!r}") from None
    return parsed.compressed, Family.INET if parsed.version == 4 else Family.INET6


def _sortable_address(address: str) -> tuple[int, int]:
    parsed = ipaddress.ip_address(address)
    return parsed.version, int(parsed)


def _check_port(port: int, what: str) -> None:
    if not 0 <= port <= 65535:
        raise ValueError(f"{what} port must be 0..65535, got {port}")


def _check_u32(value: int, what: str) -> None:
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"{what} must be 0..4294967295, got {value}")


def service_label(
    protocol: str | None,
    address: object,
    port: int | None,
    fwmark: int | None,
    *,
    ipv6: bool,
) -> str:
    """The ``vs`` log key (docs/operations.md), the one renderer every line about a
    service uses (check.*, ipvs.*, drain, operator, config reload), and the ``vs``
    metric label: ``tcp/198.51.100.10:80``, ``udp/[2001:db8::10]:53``, ``fwmark/10``,
    ``fwmark6/10`` (an IPv6 fwmark service: the mark alone does not say the family).
    ``protocol`` is the lower-case name; a fwmark service has none."""
    if fwmark:
        return f"{'fwmark6' if ipv6 else 'fwmark'}/{fwmark}"
    if protocol is None or address is None:
        raise ValueError("an address service needs protocol and address (or a fwmark)")
    return f"{protocol}/{endpoint_label(address, port or 0)}"


@dataclass(frozen=True, slots=True)
class ServiceKey:
    """Identity of a virtual service: (protocol, address, port) or (fwmark, family).

    Build with ``ServiceKey.tcp(...)``-style constructors or ``ServiceKey(protocol, address,
    port)``; a fwmark service uses ``ServiceKey.for_fwmark(mark, family)``. For a fwmark service
    ``protocol`` and ``address`` are None and ``port`` is 0: the kernel keys it by mark alone
    (ipvsadm -f) and reports no protocol, address or port for it.
    """

    protocol: Protocol | None = None
    address: str | None = None
    port: int = 0
    fwmark: int = 0
    family: Family = Family.INET
    # Keys are hashed on every table lookup of a 10,000-dest compare: hash once.
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.fwmark:
            _check_u32(self.fwmark, "fwmark")
            if self.protocol is not None or self.address is not None or self.port:
                raise ValueError("a fwmark service has no protocol, address or port")
        else:
            if self.protocol is None or self.address is None:
                raise ValueError("an address service needs protocol and address (or a fwmark)")
            _check_port(self.port, "service")
            address, family = _normalise_address(self.address)
            object.__setattr__(self, "address", address)
            object.__setattr__(self, "family", family)
        object.__setattr__(
            self, "_hash", hash((self.protocol, self.address, self.port, self.fwmark, self.family))
        )

    def __hash__(self) -> int:
        return self._hash

    @classmethod
    def tcp(cls, address: str, port: int) -> ServiceKey:
        return cls(Protocol.TCP, address, port)

    @classmethod
    def udp(cls, address: str, port: int) -> ServiceKey:
        return cls(Protocol.UDP, address, port)

    @classmethod
    def sctp(cls, address: str, port: int) -> ServiceKey:
        return cls(Protocol.SCTP, address, port)

    @classmethod
    def for_fwmark(cls, fwmark: int, family: Family = Family.INET) -> ServiceKey:
        if fwmark <= 0:
            raise ValueError(f"fwmark must be 1..4294967295, got {fwmark}")
        return cls(fwmark=fwmark, family=family)

    @property
    def is_fwmark(self) -> bool:
        return self.fwmark != 0

    @property
    def is_udp(self) -> bool:
        return self.protocol is Protocol.UDP

    def sort_key(self) -> tuple[int, int, int, int, int, int]:
        """Total order: address services by (family, protocol, address, port), then fwmarks."""
        if self.address is None:
            return (1, self.family.value, 0, 0, 0, self.fwmark)
        version, number = _sortable_address(self.address)
        proto = self.protocol.value if self.protocol is not None else 0
        return (0, version, proto, number, self.port, 0)

    def __str__(self) -> str:
        # The `vs` log key; rendered by service_label, its one home.
        return service_label(
            None if self.protocol is None else self.protocol.label,
            self.address,
            self.port,
            self.fwmark,
            ipv6=self.family is Family.INET6,
        )


@dataclass(frozen=True, slots=True)
class DestKey:
    """Identity of a real server within a service: (address, port). Family follows the address."""

    address: str
    port: int
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_port(self.port, "real server")
        address, _ = _normalise_address(self.address)
        if address != self.address:
            object.__setattr__(self, "address", address)
        object.__setattr__(self, "_hash", hash((self.address, self.port)))

    def __hash__(self) -> int:
        return self._hash

    @property
    def family(self) -> Family:
        return _normalise_address(self.address)[1]

    def sort_key(self) -> tuple[int, int, int]:
        version, number = _sortable_address(self.address)
        return (version, number, self.port)

    def __str__(self) -> str:
        # The `rs` log key; rendered by checkers.spec.endpoint_label, its one home.
        return endpoint_label(self.address, self.port)


@dataclass(frozen=True, slots=True)
class SchedFlags:
    """Scheduler flags (ipvsadm -b): sh-fallback, sh-port, mh-fallback, mh-port; and ops (-o).

    The kernel stores sh-* and mh-* in the same bits (SCHED1, SCHED2), so a flag is only
    meaningful with its scheduler; ``Service`` refuses a mismatch so that a dump decodes back to
    the very value that was sent.
    """

    sh_fallback: bool = False
    sh_port: bool = False
    mh_fallback: bool = False
    mh_port: bool = False
    one_packet: bool = False

    def to_bits(self) -> int:
        bits = SVC_F_ONEPACKET if self.one_packet else 0
        if self.sh_fallback or self.mh_fallback:
            bits |= SVC_F_SCHED1
        if self.sh_port or self.mh_port:
            bits |= SVC_F_SCHED2
        return bits

    @classmethod
    def from_bits(cls, bits: int, scheduler: str) -> SchedFlags:
        """Decode kernel flag bits for ``scheduler``; persistence and hashed bits are ignored."""
        sched1 = bool(bits & SVC_F_SCHED1)
        sched2 = bool(bits & SVC_F_SCHED2)
        one_packet = bool(bits & SVC_F_ONEPACKET)
        if scheduler == "sh":
            return cls(sh_fallback=sched1, sh_port=sched2, one_packet=one_packet)
        if scheduler == "mh":
            return cls(mh_fallback=sched1, mh_port=sched2, one_packet=one_packet)
        return cls(one_packet=one_packet)


_NO_FLAGS = SchedFlags()


def _prefix_from_netmask(netmask: str | int | None, family: Family) -> int:
    full = 32 if family is Family.INET else 128
    if netmask is None:
        return full
    if isinstance(netmask, int):
        prefix = netmask
    else:
        text = netmask.strip().lstrip("/")
        if text.isdigit():
            prefix = int(text)
        else:
            try:
                prefix = ipaddress.IPv4Network(f"0.0.0.0/{text}").prefixlen
            except ValueError:
                raise ValueError(f"not a netmask: {netmask!r}") from None
    if not 0 <= prefix <= full:
        raise ValueError(f"persistence netmask must be /0../{full}, got {netmask!r}")
    return prefix


@dataclass(frozen=True, slots=True)
class Service:
    """A virtual service and its tunables (ipvsadm -A/-E: -s, -b, -p, -M, -o).

    ``persistence_timeout`` 0 means not persistent (flag IP_VS_SVC_F_PERSISTENT is sent only
    when it is > 0: the kernel ignores a timeout without the flag). ``persistence_netmask`` is
    accepted as a dotted mask ("255.255.255.0"), a prefix length (24, "/24") or None (the full
    mask, the kernel's default), and is stored as the prefix length int.
    """

    key: ServiceKey
    scheduler: str = "wlc"
    flags: SchedFlags = _NO_FLAGS
    persistence_timeout: int = 0
    persistence_netmask: str | int | None = None

    def __post_init__(self) -> None:
        if not self.scheduler or not self.scheduler.isascii() or len(self.scheduler) > 15:
            # IP_VS_SCHEDNAME_MAXLEN is 16 including the NUL.
            raise ValueError(f"bad scheduler name {self.scheduler!r}")
        flags = self.flags
        if (flags.sh_fallback or flags.sh_port) and self.scheduler != "sh":
            raise ValueError("sh_fallback/sh_port need scheduler sh")
        if (flags.mh_fallback or flags.mh_port) and self.scheduler != "mh":
            raise ValueError("mh_fallback/mh_port need scheduler mh")
        _check_u32(self.persistence_timeout, "persistence_timeout")
        prefix = _prefix_from_netmask(self.persistence_netmask, self.key.family)
        if prefix != self.persistence_netmask:
            object.__setattr__(self, "persistence_netmask", prefix)

    @property
    def prefix_length(self) -> int:
        """Persistence netmask as a prefix length (what the model stores)."""
        value = self.persistence_netmask
        assert isinstance(value, int)
        return value

    @property
    def netmask_v4(self) -> str:
        """Persistence netmask in dotted form (IPv4 services, as IPVS_SVC_ATTR_NETMASK wants)."""
        return str(ipaddress.IPv4Network(f"0.0.0.0/{min(self.prefix_length, 32)}").netmask)

    @property
    def is_persistent(self) -> bool:
        return self.persistence_timeout > 0

    def flag_bits(self) -> int:
        """The IP_VS_SVC_F_* bits to send (mask 0xffff... minus HASHED is the adapter's choice)."""
        bits = self.flags.to_bits()
        if self.persistence_timeout > 0:
            bits |= SVC_F_PERSISTENT
        return bits

    @classmethod
    def from_kernel(
        cls,
        key: ServiceKey,
        *,
        scheduler: str,
        flags: int,
        timeout: int,
        netmask: str | int | None,
    ) -> Service:
        """Build from the fields of a kernel dump (adapters use this so decoding is shared).

        The kernel reports ``timeout`` even when the service is not persistent; only the
        PERSISTENT flag makes it one, so the timeout is kept only with the flag.
        """
        return cls(
            key=key,
            scheduler=scheduler,
            flags=SchedFlags.from_bits(flags, scheduler),
            persistence_timeout=timeout if flags & SVC_F_PERSISTENT else 0,
            persistence_netmask=netmask,
        )


@dataclass(frozen=True, slots=True)
class Dest:
    """A real server and its tunables (ipvsadm -a/-e: -w, -m/-i/-g, -x, -y, --tun-*).

    ``u_thresh`` / ``l_thresh``: upper/lower connection thresholds (0 = none). The tunnel fields
    apply only to TUNNEL forwarding and must stay at their defaults otherwise; ``tun_port`` is the
    GUE destination port in host order (the adapter owns any byte-order fix-up).
    """

    key: DestKey
    weight: int = 1
    forwarding: Forwarding = Forwarding.MASQ
    u_thresh: int = 0
    l_thresh: int = 0
    tun_type: TunType = TunType.IPIP
    tun_port: int = 0
    tun_flags: TunFlags = TunFlags.NOCSUM

    def __post_init__(self) -> None:
        if not 0 <= self.weight <= 0x7FFFFFFF:
            raise ValueError(f"weight must be 0..2147483647, got {self.weight}")
        _check_u32(self.u_thresh, "u_thresh")
        _check_u32(self.l_thresh, "l_thresh")
        if self.l_thresh > self.u_thresh:
            # The kernel refuses this with ERANGE (ip_vs_add_dest / ip_vs_edit_dest), even when
            # u_thresh is 0 ("no limit"); keepalived's lthreshold has the same constraint.
            raise ValueError(f"l_thresh {self.l_thresh} > u_thresh {self.u_thresh}")
        _check_port(self.tun_port, "tunnel")
        if self.forwarding is not Forwarding.TUNNEL and (
            self.tun_type is not TunType.IPIP or self.tun_port or self.tun_flags
        ):
            raise ValueError("tun_type/tun_port/tun_flags apply only to tunnel forwarding")
        if self.tun_type is TunType.GUE and not self.tun_port:
            raise ValueError("a GUE tunnel needs tun_port")
        if self.tun_type is not TunType.GUE and self.tun_port:
            raise ValueError("tun_port applies only to GUE tunnels")

    def differences(self, other: Dest) -> tuple[str, ...]:
        """Human-readable 'field old->new' items from ``other`` (old) to ``self`` (new)."""
        out: list[str] = []
        for name in ("weight", "forwarding", "u_thresh", "l_thresh", "tun_type", "tun_port",
                     "tun_flags"):
            old, new = getattr(other, name), getattr(self, name)
            if old != new:
                out.append(f"{name} {_render(old)}->{_render(new)}")
        return tuple(out)


def _render(value: object) -> str:
    if isinstance(value, enum.Enum):
        return str(value.name).lower()
    return str(value)


def service_differences(new: Service, old: Service) -> tuple[str, ...]:
    out: list[str] = []
    for name in ("scheduler", "flags", "persistence_timeout", "persistence_netmask"):
        before, after = getattr(old, name), getattr(new, name)
        if before != after:
            out.append(f"{name} {_render(before)}->{_render(after)}")
    return tuple(out)


@dataclass(frozen=True, slots=True)
class DestStats:
    """Connection counters of a dest (ipvsadm -Ln ActiveConn / InActConn, PersistConn)."""

    active_conns: int = 0
    inactive_conns: int = 0
    persist_conns: int = 0

    @property
    def connections(self) -> int:
        """What a drain waits on: active + inactive (k8s graceful_termination)."""
        return self.active_conns + self.inactive_conns


_ZERO_STATS = DestStats()


@dataclass(frozen=True, slots=True)
class IpvsTimeouts:
    """Connection timeouts in seconds (ipvsadm --set tcp tcpfin udp); 0 in a set = unchanged."""

    tcp: int = 0
    tcp_fin: int = 0
    udp: int = 0


@dataclass(frozen=True, slots=True)
class ServiceEntry:
    """One row of an IpvsTable: the service and its dests by key (treat the mapping as frozen)."""

    service: Service
    dests: Mapping[DestKey, Dest] = field(default_factory=dict)

    @property
    def key(self) -> ServiceKey:
        return self.service.key


@dataclass(frozen=True, slots=True)
class IpvsTable(Mapping[ServiceKey, ServiceEntry]):
    """A whole IPVS table: ServiceKey -> ServiceEntry(service, {DestKey: Dest}).

    Equality is by value (dict equality of frozen values), which is what makes a no-op compare
    of 10,000 dests cheap. Treat the mappings as immutable; build new tables with ``build``.
    """

    services: Mapping[ServiceKey, ServiceEntry] = field(default_factory=dict)

    def __getitem__(self, key: ServiceKey) -> ServiceEntry:
        return self.services[key]

    def __iter__(self) -> Iterator[ServiceKey]:
        return iter(self.services)

    def __len__(self) -> int:
        return len(self.services)

    def __contains__(self, key: object) -> bool:
        return key in self.services

    def __eq__(self, other: object) -> bool:
        if isinstance(other, IpvsTable):
            return self.services == other.services
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def build(cls, rows: Iterable[tuple[Service, Iterable[Dest]]]) -> IpvsTable:
        services: dict[ServiceKey, ServiceEntry] = {}
        for service, dests in rows:
            if service.key in services:
                raise ValueError(f"service {service.key} appears twice")
            by_key: dict[DestKey, Dest] = {}
            for dest in dests:
                if dest.key in by_key:
                    raise ValueError(f"real server {dest.key} appears twice in {service.key}")
                by_key[dest.key] = dest
            services[service.key] = ServiceEntry(service, by_key)
        return cls(services)

    def dest_count(self) -> int:
        return sum(len(entry.dests) for entry in self.services.values())

    def dest(self, service: ServiceKey, dest: DestKey) -> Dest | None:
        entry = self.services.get(service)
        return None if entry is None else entry.dests.get(dest)

    def restricted_to(self, keys: Iterable[ServiceKey]) -> IpvsTable:
        """The rows whose key is in ``keys`` (e.g. the services haipvs owns)."""
        wanted = set(keys)
        return IpvsTable({k: v for k, v in self.services.items() if k in wanted})

    def sorted_keys(self) -> list[ServiceKey]:
        return sorted(self.services, key=ServiceKey.sort_key)


@dataclass(frozen=True, slots=True)
class ActualTable:
    """What a kernel dump returns: the table plus per-dest connection counters."""

    table: IpvsTable = field(default_factory=IpvsTable)
    stats: Mapping[ServiceKey, Mapping[DestKey, DestStats]] = field(default_factory=dict)

    def stats_of(self, service: ServiceKey, dest: DestKey) -> DestStats:
        """Counters of one dest; zero when the dump had none (a dest that just appeared)."""
        per_service = self.stats.get(service)
        if per_service is None:
            return _ZERO_STATS
        return per_service.get(dest, _ZERO_STATS)


class OpReason(enum.Enum):
    """Why an op exists; rendered snake_case as the log line's ``reason``."""

    CONFIG_ADDED = "config_added"
    CONFIG_CHANGED = "config_changed"
    CONFIG_REMOVED = "config_removed"
    WEIGHT_CHANGED = "weight_changed"
    HEALTH_UP = "health_up"
    HEALTH_DOWN = "health_down"
    SLOW_START = "slow_start"
    #: The check reported the weight (keepalived misc_dynamic, FILE_CHECK).
    CHECK_WEIGHT = "check_weight"
    QUORUM_LOST = "quorum_lost"
    QUORUM_REGAINED = "quorum_regained"
    DRAIN_STARTED = "drain_started"
    DRAIN_FINISHED = "drain_finished"
    DRAIN_CANCELLED = "drain_cancelled"
    OPERATOR_DRAIN = "operator_drain"
    OPERATOR_MAINTENANCE = "operator_maintenance"
    DRIFT_MISSING = "drift_missing"
    DRIFT_CHANGED = "drift_changed"
    DRIFT_UNEXPECTED = "drift_unexpected"
    SHUTDOWN = "shutdown"

    @property
    def is_drift(self) -> bool:
        return self in _DRIFT_REASONS


_DRIFT_REASONS = frozenset(
    {OpReason.DRIFT_MISSING, OpReason.DRIFT_CHANGED, OpReason.DRIFT_UNEXPECTED}
)


@dataclass(frozen=True, slots=True)
class AddService:
    """ipvsadm -A: create ``service`` (with no dests)."""

    service: Service
    reason: OpReason = OpReason.CONFIG_ADDED
    detail: str = ""

    @property
    def service_key(self) -> ServiceKey:
        return self.service.key


@dataclass(frozen=True, slots=True)
class UpdateService:
    """ipvsadm -E: set an existing service's tunables (IPVS_CMD_SET_SERVICE, never 'update')."""

    service: Service
    reason: OpReason = OpReason.CONFIG_CHANGED
    detail: str = ""

    @property
    def service_key(self) -> ServiceKey:
        return self.service.key


@dataclass(frozen=True, slots=True)
class DeleteService:
    """ipvsadm -D: delete a service and, with it, all its dests."""

    key: ServiceKey
    reason: OpReason = OpReason.CONFIG_REMOVED
    detail: str = ""

    @property
    def service_key(self) -> ServiceKey:
        return self.key


@dataclass(frozen=True, slots=True)
class AddDest:
    """ipvsadm -a: add ``dest`` to the service ``service_key``."""

    service_key: ServiceKey
    dest: Dest
    reason: OpReason = OpReason.CONFIG_ADDED
    detail: str = ""


@dataclass(frozen=True, slots=True)
class UpdateDest:
    """ipvsadm -e: set the tunables of an existing dest (IPVS_CMD_SET_DEST)."""

    service_key: ServiceKey
    dest: Dest
    reason: OpReason = OpReason.CONFIG_CHANGED
    detail: str = ""


@dataclass(frozen=True, slots=True)
class DeleteDest:
    """ipvsadm -d: delete the dest ``dest_key`` from the service ``service_key``."""

    service_key: ServiceKey
    dest_key: DestKey
    reason: OpReason = OpReason.CONFIG_REMOVED
    detail: str = ""


Op = AddService | UpdateService | DeleteService | AddDest | UpdateDest | DeleteDest

DEFAULT_OP_REASON: Mapping[type[object], OpReason] = {
    AddService: OpReason.CONFIG_ADDED,
    UpdateService: OpReason.CONFIG_CHANGED,
    DeleteService: OpReason.CONFIG_REMOVED,
    AddDest: OpReason.CONFIG_ADDED,
    UpdateDest: OpReason.CONFIG_CHANGED,
    DeleteDest: OpReason.CONFIG_REMOVED,
}

_OP_NAMES: Mapping[type[object], str] = {
    AddService: "add_service",
    UpdateService: "update_service",
    DeleteService: "delete_service",
    AddDest: "add_dest",
    UpdateDest: "update_dest",
    DeleteDest: "delete_dest",
}


def op_name(op: Op) -> str:
    """The op's name as used in KernelError.op and counters: add_service ... delete_dest."""
    return _OP_NAMES[type(op)]


def op_dest_key(op: Op) -> DestKey | None:
    """The dest an op is about, or None for service ops."""
    if isinstance(op, AddDest | UpdateDest):
        return op.dest.key
    if isinstance(op, DeleteDest):
        return op.dest_key
    return None


def op_target(op: Op) -> str:
    """The rendered object of an op, as in KernelError.key: 'vs' or 'vs rs'."""
    dest = op_dest_key(op)
    if dest is None:
        return str(op.service_key)
    return f"{op.service_key} {dest}"
