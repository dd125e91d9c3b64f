"""Is each VIP a usable address of this director? Read before it is announced.

IPVS catches packets in the host's LOCAL_IN: a VIP the routers send here must be a local
address, or the packets are routed on (back to the router) instead of scheduled. In
scale-out mode the operator puts the VIP on ``lo`` (every director holds it at once; on a
shared link the directors would answer ARP/ND for it against each other), where IPv6
duplicate address detection never runs. On any other interface an IPv6 VIP must be added
with ``nodad`` (keepalived does the same for its VIPs): DAD would hold it tentative, or mark
it failed when another director holds it too, and a tentative address takes no packets.

Thin IO: one bind per VIP (no IP_FREEBIND, so the kernel says whether the address is local
and usable: a tentative or DAD-failed IPv6 address is refused like a foreign one), then
``/proc/net/if_inet6`` for an IPv6 VIP that failed, to say why.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv6Address

__all__ = ["IF_INET6", "unusable_vips"]

IPAddress = IPv4Address | IPv6Address
IF_INET6 = "/proc/net/if_inet6"
_TENTATIVE = 0x40  # IFA_F_TENTATIVE
_DADFAILED = 0x08  # IFA_F_DADFAILED
_NODAD = "add it with nodad: several directors hold it at once"


def unusable_vips(vips: Iterable[IPAddress], if_inet6: str = IF_INET6) -> dict[IPAddress, str]:
    """The VIPs this host cannot take packets for, each with the gate's words."""
    problems: dict[IPAddress, str] = {}
    for vip in vips:
        family = socket.AF_INET if vip.version == 4 else socket.AF_INET6
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.bind((str(vip), 0))
        except OSError as error:
            if error.errno != errno.EADDRNOTAVAIL:
                problems[vip] = f"cannot check {vip}: {error.strerror}"
            elif vip.version == 6:
                problems[vip] = _ipv6_state(vip, if_inet6)
            else:
                problems[vip] = f"{vip} is not an address of this director (put it on lo)"
    return problems


def _ipv6_state(vip: IPAddress, if_inet6: str) -> str:
    wanted = vip.packed.hex()
    try:
        with open(if_inet6) as handle:
            for line in handle:
                fields = line.split()
                if len(fields) < 6 or fields[0] != wanted:
                    continue
                flags = int(fields[4], 16)
                if flags & _DADFAILED:
                    return (f"{vip} on {fields[5]} failed duplicate address detection "
                            f"({_NODAD})")
                if flags & _TENTATIVE:
                    return (f"{vip} on {fields[5]} is tentative: duplicate address "
                            f"detection has not finished ({_NODAD})")
    except OSError:
        pass
    return f"{vip} is not an address of this director (put it on lo)"
