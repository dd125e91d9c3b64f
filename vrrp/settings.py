"""Settings of one VRRP instance: frozen values, validated once, at construction.

This module owns the ``vrrp`` package's own configuration types (seesaw's
``ha.NodeConfig`` idea): ``haipvs.config.compile`` translates the YAML model into
them, and nothing here knows about YAML or pydantic. Every invariant the
protocol relies on is checked in ``__post_init__`` and raises ``ValueError``
naming the field, so a machine never runs with settings the RFCs forbid.

Names follow keepalived's ``vrrp_instance`` keywords where one exists
(``virtual_router_id`` -> ``vrid``, ``advert_int`` -> ``advert_interval``,
``nopreempt`` -> ``preempt=False``, ``garp_master_repeat`` -> ``garp_repeat``,
``garp_master_refresh``, ``unicast_peer``, ``unicast_src_ip``, ``track_interface``,
``track_script``, ``notify_*``, ``accept``, ``authentication { auth_pass }``,
``old_unicast_checksum`` -> ``unicast_checksum``).

Pure module: no IO, no clock, no logging.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface

from vrrp.auth_hmac import AuthHmacSettings
from vrrp.routes import VirtualRoute, VirtualRule
from vrrp.track_file import TrackFile
from vrrp.track_process import TrackProcess
from vrrp.vmac import VmacSettings, VmacSpec, virtual_mac, vmac_name

__all__ = [
    "MAX_TRACK_WEIGHT",
    "PRIORITY_OWNER",
    "InstanceKey",
    "InstanceSettings",
    "NotifySettings",
    "TrackInterface",
    "TrackScript",
    "UnicastChecksum",
    "VipSpec",
    "v3_centiseconds",
]

#: RFC 5798 §5.2.4: priority 255 is reserved for the router that owns the addresses.
PRIORITY_OWNER = 255
#: keepalived accepts track weights in -253..253 (so one weight can move 1 <-> 254).
MAX_TRACK_WEIGHT = 253
#: keepalived's ``preempt_delay`` range is 0..1000 seconds.
MAX_PREEMPT_DELAY = 1000.0

IPAddress = IPv4Address | IPv6Address
IPInterface = IPv4Interface | IPv6Interface
#: Identity of an instance across reloads: (interface, vrid, family).
InstanceKey = tuple[str, int, int]


def v3_centiseconds(advert_interval: float) -> int:
    """Return the VRRPv3 interval in centiseconds, or raise if it is not a whole number of them.

    RFC 5798 §5.2.7: Max Adver Int is a 12-bit count of centiseconds (0.01..40.95 s).
    """
    centis = round(advert_interval * 100)
    if not math.isclose(centis, advert_interval * 100, abs_tol=1e-6):
        raise ValueError(
            f"advert_interval: {advert_interval} is not a whole number of centiseconds (VRRPv3)"
        )
    if not 1 <= centis <= 4095:
        raise ValueError(f"advert_interval: {advert_interval} outside 0.01..40.95 s (VRRPv3)")
    return centis


class UnicastChecksum(enum.Enum):
    """Which VRRPv3 IPv4 checksum a unicast instance sends and expects.

    keepalived before 1.3.7 computed the VRRPv3 IPv4 checksum of *unicast*
    adverts with the multicast group 224.0.0.18 as the pseudo-header
    destination instead of the peer's address (RFC 5798 §5.2.8 / RFC 9568
    §5.2.8 say the packet's destination). keepalived built with
    ``_WITH_UNICAST_CHKSUM_COMPAT_`` (Debian's is) copes with such peers through
    ``old_unicast_checksum``; these are its three settings.
    """

    #: keepalived without ``old_unicast_checksum``: the RFC form, until an advert
    #: from a unicast peer passes only with the old form; from then on this
    #: instance sends and expects the old form (keepalived's AUTO).
    auto = "auto"
    #: keepalived ``old_unicast_checksum``: send and expect the old form from the start.
    old = "old"
    #: keepalived ``old_unicast_checksum never``: the RFC form only; an old-form
    #: advert is a bad checksum.
    never = "never"


def _family(address: IPAddress | IPInterface) -> int:
    return address.version


@dataclass(frozen=True, slots=True)
class VipSpec:
    """One virtual address (keepalived ``virtual_ipaddress`` entry).

    ``interface`` None means the instance's own interface; another name puts the
    address elsewhere (the NAT case: the real servers' floating gateway on eth1).
    """

    address: IPv4Interface | IPv6Interface
    interface: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.address, IPv4Interface | IPv6Interface):
            raise ValueError(f"address: expected an IPv4/IPv6 interface, got {self.address!r}")
        if self.interface is not None and not self.interface:
            raise ValueError("interface: must be a non-empty name or None")

    @property
    def ip(self) -> IPv4Address | IPv6Address:
        """The bare address, as carried in advertisements."""
        return self.address.ip


@dataclass(frozen=True, slots=True)
class TrackInterface:
    """A tracked interface (keepalived ``track_interface { eth1 weight -60 }``).

    ``weight`` 0 means the instance goes to FAULT while the interface is down;
    otherwise ``weight`` is added to the priority while it is down (keepalived:
    a negative weight lowers the priority when the interface fails).
    """

    name: str
    weight: int

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("name: must not be empty")
        if not -MAX_TRACK_WEIGHT <= self.weight <= MAX_TRACK_WEIGHT:
            raise ValueError(f"weight: {self.weight} outside -253..253")


@dataclass(frozen=True, slots=True)
class TrackScript:
    """A tracked script (keepalived ``vrrp_script``): argv run without a shell.

    ``weight`` 0 means FAULT while the script is failing. keepalived's sign
    convention: a positive weight is added while the script *succeeds*, a
    negative weight is added while it *fails*.
    """

    command: tuple[str, ...]
    interval: float
    timeout: float
    rise: int
    fall: int
    weight: int

    def __post_init__(self) -> None:
        if not self.command or not all(self.command):
            raise ValueError("command: must be a non-empty argv of non-empty strings")
        if not self.interval > 0:
            raise ValueError(f"interval: {self.interval} must be > 0")
        if not self.timeout > 0:
            raise ValueError(f"timeout: {self.timeout} must be > 0")
        if self.rise < 1:
            raise ValueError(f"rise: {self.rise} must be >= 1")
        if self.fall < 1:
            raise ValueError(f"fall: {self.fall} must be >= 1")
        if not -MAX_TRACK_WEIGHT <= self.weight <= MAX_TRACK_WEIGHT:
            raise ValueError(f"weight: {self.weight} outside -253..253")


@dataclass(frozen=True, slots=True)
class NotifySettings:
    """Notify hooks (keepalived ``notify_master`` etc.): argv lists, no shell, with a timeout.

    ``any`` is keepalived's generic ``notify`` script: run on every change, after the
    state's own hook, with ``INSTANCE|GROUP NAME STATE PRIORITY`` appended.
    """

    master: tuple[str, ...] | None = None
    backup: tuple[str, ...] | None = None
    fault: tuple[str, ...] | None = None
    stop: tuple[str, ...] | None = None
    any: tuple[str, ...] | None = None
    timeout: float = 10.0

    def __post_init__(self) -> None:
        for field_name in ("master", "backup", "fault", "stop", "any"):
            argv = getattr(self, field_name)
            if argv is not None and (not argv or not all(argv)):
                raise ValueError(f"{field_name}: must be None or a non-empty argv")
        if not self.timeout > 0:
            raise ValueError(f"timeout: {self.timeout} must be > 0")


@dataclass(frozen=True, slots=True)
class InstanceSettings:
    """One VRRP instance (keepalived ``vrrp_instance``). See the module docstring for names.

    Invariants (each violation raises ``ValueError`` naming the field):
    vrid 1..255 and priority 1..255 (RFC 5798 §5.2.3-5.2.4); version 2 or 3;
    v2 interval a whole number of seconds 1..255 (RFC 3768 §5.3.7); v3 interval
    0.01..40.95 s in centiseconds (RFC 5798 §5.2.7); at least one VIP, all of one
    family; VRRPv2 is IPv4 only (RFC 3768); unicast peers and source of that
    family; auth_pass only with v2 (RFC 5798 removed authentication).
    """

    name: str
    interface: str
    vrid: int
    priority: int
    version: int
    advert_interval: float
    preempt: bool
    preempt_delay: float
    vips: tuple[VipSpec, ...]
    unicast_peers: tuple[IPv4Address | IPv6Address, ...] = ()
    unicast_source: IPv4Address | IPv6Address | None = None
    garp_repeat: int = 5
    garp_interval: float = 0.0
    garp_master_refresh: float | None = None
    track_interfaces: tuple[TrackInterface, ...] = ()
    track_scripts: tuple[TrackScript, ...] = ()
    notify: NotifySettings | None = None
    accept: bool = True
    sync_group: str | None = None
    #: keepalived ``authentication { auth_type PASS; auth_pass ... }`` (VRRPv2 only,
    #: RFC 3768 §5.3.6 type 1: up to 8 octets, zero-padded on the wire).
    auth_pass: str | None = None
    #: keepalived ``garp_master_delay``: a second announcement burst this many seconds
    #: after becoming master (keepalived's default is 5; None or 0 = no second burst).
    garp_master_delay: float | None = None
    #: keepalived ``old_unicast_checksum [never]``: the VRRPv3 IPv4 unicast checksum
    #: form (see :class:`UnicastChecksum`); ``old``/``never`` only for VRRPv3 IPv4
    #: instances with unicast peers, where the two forms differ.
    unicast_checksum: UnicastChecksum = UnicastChecksum.auto
    #: Accept multicast adverts whose source is on none of the interface's
    #: connected subnets (off: dropped as ``foreign_source``, so spoofed random
    #: sources die in the kernel filter). Peers numbered out of the link's subnets
    #: need it on.
    accept_foreign_source: bool = False
    #: keepalived ``track_process`` / ``track_file`` (vrrp.track_process, vrrp.track_file).
    track_processes: tuple[TrackProcess, ...] = ()
    track_files: tuple[TrackFile, ...] = ()
    #: keepalived notify_* of the instance's vrrp_sync_group (the same on every member):
    #: run once per change of the group's state, with GROUP NAME STATE appended.
    sync_group_notify: NotifySettings | None = None
    #: keepalived ``virtual_routes`` / ``virtual_rules``: installed with the VIPs when the
    #: instance becomes MASTER and removed with them when it leaves (vrrp.routes).
    routes: tuple[VirtualRoute, ...] = ()
    rules: tuple[VirtualRule, ...] = ()
    #: keepalived ``use_vmac`` / ``vmac_xmit_base`` (vrrp.vmac): the VIPs without their
    #: own interface live on a macvlan with the RFC 5798 §7.3 virtual MAC.
    vmac: VmacSettings | None = None
    #: keepalived ``auth_hmac { ... }``: the HMAC-SHA256 trailer (vrrp.auth_hmac), v2 or v3.
    auth_hmac: AuthHmacSettings | None = None
    #: keepalived ``vrrp_strict`` / ``strict_mode``: RFC 5798 as written where keepalived
    #: otherwise bends it (a master discards a lower-priority advert: no advert back, no
    #: gratuitous ARP), and none of what strict mode forbids (see ``_check_strict``).
    strict: bool = False

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("name: must not be empty")
        if not self.interface:
            raise ValueError("interface: must not be empty")
        if not 1 <= self.vrid <= 255:
            raise ValueError(f"vrid: {self.vrid} outside 1..255")
        if not 1 <= self.priority <= PRIORITY_OWNER:
            raise ValueError(f"priority: {self.priority} outside 1..255")
        if self.version not in (2, 3):
            raise ValueError(f"version: {self.version} must be 2 or 3")
        self._check_interval()
        if not 0 <= self.preempt_delay <= MAX_PREEMPT_DELAY:
            raise ValueError(f"preempt_delay: {self.preempt_delay} outside 0..1000 s")
        self._check_vips()
        family = self.vips[0].address.version
        for peer in self.unicast_peers:
            if _family(peer) != family:
                raise ValueError(f"unicast_peers: {peer} is not IPv{family} like the VIPs")
        if len(set(self.unicast_peers)) != len(self.unicast_peers):
            raise ValueError("unicast_peers: duplicate address")
        if self.unicast_source is not None and _family(self.unicast_source) != family:
            raise ValueError(f"unicast_source: {self.unicast_source} is not IPv{family}")
        if self.garp_repeat < 0:
            raise ValueError(f"garp_repeat: {self.garp_repeat} must be >= 0")
        if self.garp_interval < 0:
            raise ValueError(f"garp_interval: {self.garp_interval} must be >= 0")
        if self.garp_master_refresh is not None and not self.garp_master_refresh > 0:
            raise ValueError(f"garp_master_refresh: {self.garp_master_refresh} must be > 0")
        if self.garp_master_delay is not None and not self.garp_master_delay >= 0:
            raise ValueError(f"garp_master_delay: {self.garp_master_delay} must be >= 0")
        if self.auth_pass is not None:
            if self.version != 2:
                raise ValueError("auth_pass: authentication exists only in VRRPv2 (RFC 5798 §9)")
            encoded = self.auth_pass.encode("utf-8")
            if not 1 <= len(encoded) <= 8 or b"\0" in encoded:
                raise ValueError("auth_pass: must be 1..8 octets without NUL (RFC 3768 §5.3.10)")
        if self.auth_hmac is not None and self.auth_pass is not None:
            # keepalived: "auth_hmac cannot be combined with authentication".
            raise ValueError("auth_hmac: cannot be combined with auth_pass")
        if self.sync_group is not None and not self.sync_group:
            raise ValueError("sync_group: must be a non-empty name or None")
        self._check_unicast_checksum(family)
        if len(set(self.routes)) != len(self.routes):
            raise ValueError("routes: duplicate route")
        keys = [route.key for route in self.routes]
        if len(set(keys)) != len(keys):
            raise ValueError("routes: two routes to one prefix with one table and metric")
        if len(set(self.rules)) != len(self.rules):
            raise ValueError("rules: duplicate rule")
        self._check_strict()
        if self.vmac is not None and self.vmac.ipvlan and self.vmac.xmit_base:
            raise ValueError("vmac: xmit_base is a macvlan's option, not an ipvlan's")
        if self.vmac is not None and family != 4:
            raise ValueError(
                "vmac: offered for IPv4 instances only (an IPv6 one needs a link-local "
                "address of its own on the macvlan)"
            )

    def _check_strict(self) -> None:
        """What keepalived's strict mode refuses or resets (vrrp.c ``vrrp_complete_instance``)."""
        if not self.strict:
            return
        if self.unicast_peers:
            raise ValueError("strict: unicast peers are not allowed (RFC 5798 multicast only)")
        if self.auth_pass is not None:
            raise ValueError("strict: no authentication (RFC 5798 has none)")
        if self.preempt_delay:
            raise ValueError("strict: no preempt_delay")
        if self.vmac is not None and self.vmac.xmit_base:
            raise ValueError("strict: no vmac xmit_base")

    def _check_unicast_checksum(self, family: int) -> None:
        if not isinstance(self.unicast_checksum, UnicastChecksum):
            raise ValueError(
                f"unicast_checksum: {self.unicast_checksum!r} is not a UnicastChecksum"
            )
        if self.unicast_checksum is UnicastChecksum.auto:
            return
        # The old form differs from the RFC one only where the pseudo-header
        # destination is a peer: VRRPv3 (v2 has no pseudo-header), IPv4 (keepalived
        # lets the kernel checksum IPv6), unicast.
        if self.version != 3 or family != 4 or not self.unicast_peers:
            raise ValueError(
                f"unicast_checksum: {self.unicast_checksum.value} applies only to VRRPv3 "
                "IPv4 instances with unicast_peers"
            )

    def _check_interval(self) -> None:
        if self.version == 2:
            # RFC 3768 §5.3.7: Adver Int is an 8-bit count of whole seconds.
            if not (float(self.advert_interval).is_integer() and 1 <= self.advert_interval <= 255):
                raise ValueError(
                    f"advert_interval: {self.advert_interval} must be whole seconds 1..255 (VRRPv2)"
                )
        else:
            v3_centiseconds(self.advert_interval)

    def _check_vips(self) -> None:
        if not self.vips:
            raise ValueError("vips: at least one virtual address is required")
        if len(self.vips) > 255:
            raise ValueError("vips: at most 255 addresses fit the Count IPvX Addr field")
        families = {vip.address.version for vip in self.vips}
        if len(families) != 1:
            raise ValueError("vips: all virtual addresses of one instance must be of one family")
        if self.version == 2 and families != {4}:
            raise ValueError("vips: VRRPv2 carries IPv4 addresses only (RFC 3768)")
        ips = [vip.ip for vip in self.vips]
        if len(set(ips)) != len(ips):
            raise ValueError("vips: duplicate address")

    @property
    def family(self) -> int:
        """4 or 6: the address family of the instance (from its first VIP)."""
        return self.vips[0].address.version

    @property
    def vmac_spec(self) -> VmacSpec | None:
        """The macvlan this instance needs (None: no ``use_vmac``)."""
        if self.vmac is None:
            return None
        mac = None if self.vmac.ipvlan else virtual_mac(self.vrid, 4)
        return VmacSpec(vmac_name(self.vrid, self.vmac.name), self.interface, mac)

    @property
    def vip_interface(self) -> str:
        """Where a VIP without its own ``interface`` goes: the macvlan with ``use_vmac``."""
        spec = self.vmac_spec
        return spec.name if spec is not None else self.interface

    def vip_placements(self) -> tuple[tuple[str, IPv4Interface | IPv6Interface], ...]:
        """Each VIP with the interface it is held on (its own ``interface``, else
        :attr:`vip_interface`): what a master adds and everyone else removes."""
        return tuple((vip.interface or self.vip_interface, vip.address) for vip in self.vips)

    @property
    def advert_interface(self) -> str:
        """Where adverts are sent and heard: the macvlan with ``use_vmac`` (their source
        MAC is the virtual one), the base interface with ``vmac_xmit_base``."""
        if self.vmac is not None and self.vmac.xmit_base:
            return self.interface
        return self.vip_interface

    @property
    def key(self) -> InstanceKey:
        """Identity for reload diffs: (interface, vrid, family); VRID spaces are per family."""
        return (self.interface, self.vrid, self.family)

    @property
    def is_owner(self) -> bool:
        """True for the address owner (priority 255, RFC 5798 §5.2.4)."""
        return self.priority == PRIORITY_OWNER

    @property
    def vip_addresses(self) -> tuple[IPv4Address | IPv6Address, ...]:
        """The bare VIP addresses in configured order, as carried in our adverts."""
        return tuple(vip.ip for vip in self.vips)

    @property
    def auth_data(self) -> bytes:
        """The VRRPv2 password octets, unpadded (``b""`` without authentication).

        The codec pads them with zeros to 8 octets on the wire and strips the
        padding when decoding, so this compares equal to a decoded advert's field.
        """
        if self.auth_pass is None:
            return b""
        return self.auth_pass.encode("utf-8")

    @property
    def auth_type(self) -> int:
        """RFC 3768 §5.3.6: 0 no authentication, 1 simple text password (keepalived PASS)."""
        return 0 if self.auth_pass is None else 1
