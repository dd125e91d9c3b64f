"""The virtual MAC interface of an instance (keepalived ``use_vmac``): values only.

RFC 5798 §7.3: a virtual router's MAC is 00-00-5E-00-01-{VRID} for IPv4 (and
00-00-5E-00-02-{VRID} for IPv6). keepalived puts the VIPs on a macvlan interface with
that MAC on top of the instance's interface (``vrrp.{VRID}`` unless named), so the VIPs
answer ARP with the virtual MAC and neighbours keep one MAC across a failover. Adverts
go out of the macvlan (their source MAC is the virtual one), or of the base interface
with ``vmac_xmit_base``.

keepalived creates the macvlan in ``private`` mode (vrrp_vmac.c: a macvlan in the
default VEPA mode drops frames whose source MAC is its own) and sets, on the macvlan,
``arp_ignore=1`` (answer only for its own addresses), ``accept_local=1`` (hear a peer
whose frames carry the same virtual MAC) and ``rp_filter=0`` (receive on an interface
without an address), and on the base interface ``arp_ignore=1`` and ``arp_filter=1``
(the base must not answer for the VIPs with its own MAC). vrrp_if_config.c lists them.
IPv6 is switched off on the macvlan (keepalived sets ``addr_gen_mode none``): a backup's
macvlan carries the same MAC as the master's and must never send a frame (a router
solicitation, DAD) that would teach the switch the virtual MAC on the wrong port.

Pure module: no IO.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BASE_SYSCTLS",
    "IGMP_LINK_LOCAL_REPORTS",
    "VMAC_SYSCTLS",
    "VmacSettings",
    "VmacSpec",
    "virtual_mac",
    "vmac_name",
]

#: net.ipv4.conf.<macvlan>.* keepalived sets (vrrp_if_config.c ``vmac_sysctl``).
VMAC_SYSCTLS: tuple[tuple[str, int], ...] = (
    ("arp_ignore", 1),
    ("accept_local", 1),
    ("rp_filter", 0),
)
#: net.ipv4.conf.<base interface>.* keepalived sets (``parent_sysctl``), and
#: ``arp_announce=2``, which keepalived does not set: replies from a VIP leave through
#: the base interface (its connected route comes first), and the ARP request the base
#: then sends must not name the VIP as its sender, or the neighbour learns the VIP at
#: the base's own MAC instead of the virtual one.
BASE_SYSCTLS: tuple[tuple[str, int], ...] = (
    ("arp_ignore", 1),
    ("arp_filter", 1),
    ("arp_announce", 2),
)

#: net.ipv4.igmp_link_local_mcast_reports, set to 0 while a macvlan exists: joining
#: 224.0.0.18 on the macvlan would otherwise send IGMP reports with the virtual MAC from
#: the backup too, and a learning switch would move the MAC to it (keepalived moves
#: those reports to the base interface with an nftables rule instead). Reports for the
#: 224.0.0.x link-local groups serve nothing: RFC 4541 §2.1.2 has switches flood them.
IGMP_LINK_LOCAL_REPORTS = ("igmp_link_local_mcast_reports", 0)

_IFNAMSIZ = 15


def virtual_mac(vrid: int, family: int) -> str:
    """RFC 5798 §7.3: the virtual router MAC address of ``vrid`` for the family."""
    if not 1 <= vrid <= 255:
        raise ValueError(f"vrid: {vrid} outside 1..255")
    return f"00:00:5e:00:{2 if family == 6 else 1:02x}:{vrid:02x}"


def vmac_name(vrid: int, name: str | None) -> str:
    """keepalived's default name of the macvlan, ``vrrp.{VRID}``, unless named."""
    return name if name is not None else f"vrrp.{vrid}"


@dataclass(frozen=True, slots=True)
class VmacSettings:
    """keepalived ``use_vmac [NAME]`` and ``vmac_xmit_base``, or ``use_ipvlan [NAME]``
    (``ipvlan``: an L2 ipvlan in bridge mode, keepalived's default; it has its base's
    MAC, so it gives the VIPs an interface of their own but no virtual MAC, for hosts
    where a macvlan with another MAC is not allowed)."""

    name: str | None = None
    xmit_base: bool = False
    ipvlan: bool = False

    def __post_init__(self) -> None:
        if self.name is not None and (
            not self.name or len(self.name) > _IFNAMSIZ or any(c in self.name for c in "/: \t")
        ):
            raise ValueError(f"vmac name: {self.name!r} is not an interface name")


@dataclass(frozen=True, slots=True)
class VmacSpec:
    """The macvlan (or ipvlan: ``mac`` None) one instance needs: what the
    ``VirtualMacs`` port creates."""

    name: str
    parent: str
    mac: str | None

    @property
    def kind(self) -> str:
        return "macvlan" if self.mac is not None else "ipvlan"

    def describe(self) -> str:
        if self.mac is None:
            return f"{self.name} (ipvlan l2 bridge on {self.parent})"
        return f"{self.name} (macvlan private on {self.parent}, {self.mac})"
