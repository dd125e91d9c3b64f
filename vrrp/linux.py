"""Linux implementations of the VRRP ports (``vrrp/ports.py``): the only module of
``vrrp`` that touches sockets and netlink.

Rules kept here:

1. Thin: no protocol decision is taken here. Adverts go out and come in as bytes;
   the TTL/hop-limit check (RFC 5798 §7.1) and decoding happen in the runner with
   ``vrrp.packet``, so the fake link is held to exactly the same rules.
2. Every ``OSError`` / pyroute2 ``NetlinkError`` leaves as :class:`VrrpIoError`
   (op, errno), httpcore's ``map_exceptions`` idea.
3. Idempotent addresses: EEXIST on add and EADDRNOTAVAIL on delete are success,
   because after a restart or a split brain the kernel may already be in the
   state we ask for (keepalived ignores the same two errors in
   ``vrrp_ipaddress.c``).
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import fcntl
import socket
import struct
from collections.abc import AsyncIterator, Iterator, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_interface
from typing import TYPE_CHECKING

from vrrp.bpf import ipv4_advert_filter, ipv6_advert_filter
from vrrp.errors import MalformedAdvert
from vrrp.linux_errors import IFF_UP as _IFF_UP
from vrrp.linux_errors import ifindex as _ifindex
from vrrp.linux_errors import io_error as _io_error
from vrrp.packet import IPPROTO_VRRP, VRRP_MULTICAST_V4, VRRP_MULTICAST_V6, parse_ipv4_packet
from vrrp.ports import InstancePorts, IPAddress, LinkEvent, ReceivedAdvert, Vip, VrrpIoError
from vrrp.rtnl import Rtnl
from vrrp.settings import InstanceSettings

if TYPE_CHECKING:
    from pyroute2 import AsyncIPRoute

    from vrrp.linux_routing import LinuxRouting, LinuxVirtualMacs

__all__ = [
    "LinuxAdvertLink",
    "LinuxAnnouncer",
    "LinuxPorts",
    "LinuxVipAddresses",
    "NetlinkLinkMonitor",
    "open_advert_link",
    "primary_address",
]

ALL_NODES_V6 = IPv6Address("ff02::1")

# Linux socket options the stdlib does not name (include/uapi/linux/in.h, in6.h).
_IP_MULTICAST_ALL = 49
_IPV6_MULTICAST_ALL = 29
_IPV6_HOPLIMIT = 52
_IPV6_PKTINFO = 50
_ETH_P_ARP = 0x0806
_ETH_P_IP = 0x0800
_IFF_RUNNING = 0x40
_IFA_F_NODAD = 0x02
_SO_ATTACH_FILTER = 26
_SIOCGIFHWADDR = 0x8927
_BROADCAST_MAC = b"\xff" * 6
_MAX_DATAGRAM = 65535


async def primary_address(interface: str, version: int) -> IPAddress:
    """The address adverts leave from on ``interface``.

    IPv4: the interface's primary (first, non-secondary) address, RFC 5798
    §5.1.1.1. IPv6: its link-local address, RFC 5798 §5.1.2.1 ("the IPv6
    link-local address of the interface over which the packet is transmitted").
    """
    index = _ifindex(interface)
    family = socket.AF_INET6 if version == 6 else socket.AF_INET
    try:
        with Rtnl() as rtnl:
            entries = rtnl.addresses(family, index)
    except OSError as exc:
        raise _io_error(f"addr dump {interface}", exc) from exc
    for entry in entries:
        address = entry.address
        if family == socket.AF_INET6 and not address.is_link_local:
            continue
        # IFA_F_SECONDARY (0x01): keepalived skips secondaries too.
        if family == socket.AF_INET and entry.flags & 0x01:
            continue
        return address
    raise VrrpIoError(f"primary address of {interface}", errno.EADDRNOTAVAIL)


async def connected_networks(interface: str, version: int) -> tuple[IPv4Network | IPv6Network, ...]:
    """The subnets of every address on ``interface`` (IPv6: the link-local one
    included, where adverts come from), as the kernel has them now."""
    index = _ifindex(interface)
    family = socket.AF_INET6 if version == 6 else socket.AF_INET
    found: list[IPv4Network | IPv6Network] = []
    try:
        with Rtnl() as rtnl:
            entries = rtnl.addresses(family, index)
    except OSError as exc:
        raise _io_error(f"addr dump {interface}", exc) from exc
    for entry in entries:
        network = ip_interface(f"{entry.address}/{entry.prefixlen}").network
        if network not in found:
            found.append(network)
    return tuple(found)


class LinuxAdvertLink:
    """Raw IPPROTO_VRRP sockets (one to send, one to receive) on one interface
    and one family.

    Multicast mode joins 224.0.0.18 / ff02::12 on that interface only; unicast
    mode (keepalived ``unicast_peer``) sends one copy to each peer; adverts from
    strangers are delivered so the runner can count them (``not_a_peer``). Our
    own adverts are never delivered back: multicast loop is off and the source
    is filtered.
    """

    def __init__(
        self,
        send_socket: socket.socket,
        receive_socket: socket.socket,
        *,
        interface: str,
        local_address: IPAddress,
        unicast_peers: Sequence[IPAddress] = (),
        connected: Sequence[IPv4Network | IPv6Network] = (),
    ) -> None:
        self._connected = tuple(connected)
        self._send_sock = send_socket
        self._sock = receive_socket
        self._interface = interface
        self._ifindex = _ifindex(interface)
        self._local = local_address
        self._peers = frozenset(unicast_peers)
        self._v6 = receive_socket.family == socket.AF_INET6

    @property
    def local_address(self) -> IPAddress:
        return self._local

    @property
    def interface(self) -> str:
        return self._interface

    @property
    def unicast_peers(self) -> frozenset[IPAddress]:
        return self._peers

    @property
    def connected_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        return self._connected

    def default_destinations(self) -> tuple[IPAddress, ...]:
        """Where an advert goes: every unicast peer, else the VRRP group."""
        if self._peers:
            return tuple(sorted(self._peers, key=str))
        return (VRRP_MULTICAST_V6 if self._v6 else VRRP_MULTICAST_V4,)

    async def send(self, payload: bytes, destination: IPAddress) -> None:
        address: tuple[str, int] | tuple[str, int, int, int]
        address = (str(destination), 0, 0, self._ifindex) if self._v6 else (str(destination), 0)
        try:
            # Raw sockets do not queue behind a full buffer for long: a
            # non-blocking send that would block is reported, not awaited, so a
            # stuck interface becomes a fault instead of a stalled runner.
            self._send_sock.sendto(payload, address)
        except OSError as exc:
            raise _io_error(f"send {self._interface} {destination}", exc) from exc

    def _read_one(self) -> ReceivedAdvert | None:
        """One datagram from the socket, or None when it is empty.

        Our own echoes are skipped here: they are not adverts for this instance
        at all. Strangers (in unicast mode) are delivered, so that the runner
        counts them (``not_a_peer``), as the class docstring says.
        """
        while True:
            try:
                if self._v6:
                    data, ancdata, _flags, addr = self._sock.recvmsg(
                        _MAX_DATAGRAM, socket.CMSG_SPACE(20) + socket.CMSG_SPACE(4)
                    )
                else:
                    data, addr = self._sock.recvfrom(_MAX_DATAGRAM)
                    ancdata = []
            except (BlockingIOError, InterruptedError):
                return None
            except OSError as exc:
                raise _io_error(f"receive {self._interface}", exc) from exc
            received = self._convert(data, ancdata, addr)
            if received.source == self._local:
                # Our own advert (another socket of ours on the segment, or a
                # unicast peer list that names us): never an input.
                continue
            return received

    def _convert(
        self, data: bytes, ancdata: list[tuple[int, int, bytes]], addr: tuple[object, ...]
    ) -> ReceivedAdvert:
        if not self._v6:
            sender = IPv4Address(str(addr[0]))
            try:
                source, destination, ttl, payload = parse_ipv4_packet(data)
            except MalformedAdvert as exc:
                return ReceivedAdvert(
                    payload=b"",
                    source=sender,
                    destination=VRRP_MULTICAST_V4,
                    ttl=0,
                    header_error=exc,
                )
            return ReceivedAdvert(payload, source, destination, ttl)
        # IPv6 raw sockets deliver the payload only; the hop limit and the
        # destination come as ancillary data (RFC 3542 §6), asked for with
        # IPV6_RECVHOPLIMIT and IPV6_RECVPKTINFO at open.
        hop_limit = 0
        destination6: IPv6Address = VRRP_MULTICAST_V6
        for level, kind, value in ancdata:
            if level != socket.IPPROTO_IPV6:
                continue
            if kind == _IPV6_HOPLIMIT and len(value) >= 4:
                hop_limit = struct.unpack("@i", value[:4])[0]
            elif kind == _IPV6_PKTINFO and len(value) >= 16:
                destination6 = IPv6Address(value[:16])
        source6 = IPv6Address(str(addr[0]).split("%", 1)[0])
        return ReceivedAdvert(bytes(data), source6, destination6, hop_limit)

    def pending(self, limit: int) -> list[ReceivedAdvert]:
        waiting: list[ReceivedAdvert] = []
        while len(waiting) < limit and (received := self._read_one()) is not None:
            waiting.append(received)
        return waiting

    async def receive(self) -> ReceivedAdvert:
        loop = asyncio.get_running_loop()
        while True:
            # Read in this task, not in a reader callback: a datagram stays in
            # the socket until someone consumes it, so pending() (called by the
            # runner before a timer) always sees it.
            received = self._read_one()
            if received is not None:
                return received
            readable: asyncio.Future[None] = loop.create_future()
            fd = self._sock.fileno()
            loop.add_reader(fd, _resolve, readable)
            try:
                await readable
            finally:
                loop.remove_reader(fd)

    def close(self) -> None:
        self._send_sock.close()
        self._sock.close()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _attach_filter(sock: socket.socket, program: bytes) -> None:
    """SO_ATTACH_FILTER with a classic BPF program (``struct sock_filter`` array)."""
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("@HP", len(program) // 8, ctypes.addressof(buffer))  # struct sock_fprog
    sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)


def _no_receive(sock: socket.socket) -> None:
    """Attach a BPF program that accepts nothing (keepalived's
    ``if_setsockopt_no_receive``): a raw socket hears every protocol-112
    packet for its address, and the send socket must not queue them."""
    _attach_filter(sock, struct.pack("=HBBI", 0x06, 0, 0, 0))  # BPF_RET | BPF_K, 0


def _raw_socket(family: int, interface: str) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_RAW, IPPROTO_VRRP)
    try:
        sock.setblocking(False)
        # Only this interface's adverts: two instances with one VRID on two
        # interfaces must not hear each other (keepalived binds the same way).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
    except OSError:
        sock.close()
        raise
    return sock


def _open_sockets_v4(
    interface: str, ifindex: int, local: IPv4Address, multicast: bool, receive_filter: bytes | None
) -> tuple[socket.socket, socket.socket]:
    """(send, receive). Two sockets because a raw socket bound to an address
    only receives packets *to* that address: the send socket is bound so
    adverts leave from the primary address even when a VIP sits on the same
    interface (RFC 5798 §5.1.1.1), the receive socket is not, so it also hears
    224.0.0.18."""
    send = _raw_socket(socket.AF_INET, interface)
    try:
        # RFC 5798 §5.1.1.3: TTL MUST be 255, for multicast and unicast alike.
        send.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 255)
        send.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
        send.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
        mreqn = struct.pack("=4s4si", VRRP_MULTICAST_V4.packed, local.packed, ifindex)
        send.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
        send.bind((str(local), 0))
        _no_receive(send)
        receive = _raw_socket(socket.AF_INET, interface)
    except OSError:
        send.close()
        raise
    try:
        if receive_filter is not None:
            # Before joining: garbage dies in the kernel from the first packet on.
            _attach_filter(receive, receive_filter)
        # IP_MULTICAST_ALL off: only the groups joined on this socket.
        receive.setsockopt(socket.IPPROTO_IP, _IP_MULTICAST_ALL, 0)
        if multicast:
            receive.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
    except OSError:
        send.close()
        receive.close()
        raise
    return send, receive


def _open_sockets_v6(
    interface: str, ifindex: int, local: IPv6Address, multicast: bool, receive_filter: bytes | None
) -> tuple[socket.socket, socket.socket]:
    """(send, receive), split for the same reason as IPv4."""
    send = _raw_socket(socket.AF_INET6, interface)
    try:
        # RFC 5798 §5.1.2.3: hop limit MUST be 255.
        send.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
        send.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
        send.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
        send.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
        # No IPV6_CHECKSUM: the codec computes the RFC 5798 §5.2.8 checksum over
        # the pseudo-header itself, so the kernel must leave the bytes alone.
        send.bind((str(local), 0, 0, ifindex))
        _no_receive(send)
        receive = _raw_socket(socket.AF_INET6, interface)
    except OSError:
        send.close()
        raise
    try:
        if receive_filter is not None:
            _attach_filter(receive, receive_filter)
        receive.setsockopt(socket.IPPROTO_IPV6, _IPV6_MULTICAST_ALL, 0)
        receive.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
        receive.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
        if multicast:
            mreq = struct.pack("=16sI", VRRP_MULTICAST_V6.packed, ifindex)
            receive.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
    except OSError:
        send.close()
        receive.close()
        raise
    return send, receive


async def open_advert_link(
    interface: str,
    version: int,
    *,
    unicast_peers: Sequence[IPAddress] = (),
    unicast_source: IPAddress | None = None,
    vrid: int | None = None,
    vrrp_version: int = 3,
    accept_foreign_source: bool = False,
    address_interface: str | None = None,
) -> LinuxAdvertLink:
    """Open the raw VRRP socket for one instance (``version`` is the IP family, 4 or 6).

    ``unicast_source`` overrides the source (keepalived ``unicast_src_ip``);
    otherwise the interface's primary (IPv4) or link-local (IPv6) address.
    With ``vrid`` the receive socket gets the kernel filter of ``vrrp.bpf``
    (protocol, TTL, destination, source, version, VRID); without, it hears
    every protocol-112 packet of the interface.

    ``address_interface`` is where the source address and the connected subnets come
    from when ``interface`` has none of its own (a ``use_vmac`` macvlan: adverts leave
    it with its base interface's primary address, as keepalived sends them).
    """
    ifindex = _ifindex(interface)
    addressed = address_interface or interface
    local = unicast_source or await primary_address(addressed, version)
    multicast = not unicast_peers
    connected = await connected_networks(addressed, version)
    receive_filter: bytes | None = None
    if vrid is not None and version == 6:
        receive_filter = ipv6_advert_filter(vrid=vrid, version=vrrp_version)
    elif vrid is not None and isinstance(local, IPv4Address):
        receive_filter = ipv4_advert_filter(
            vrid=vrid,
            version=vrrp_version,
            local=local,
            unicast_peers=[peer for peer in unicast_peers if isinstance(peer, IPv4Address)],
            source_networks=None
            if accept_foreign_source
            else [net for net in connected if isinstance(net, IPv4Network)],
        )
    try:
        if version == 6:
            if not isinstance(local, IPv6Address):
                raise ValueError(f"IPv6 instance with IPv4 source {local}")
            send, receive = _open_sockets_v6(interface, ifindex, local, multicast, receive_filter)
        else:
            if not isinstance(local, IPv4Address):
                raise ValueError(f"IPv4 instance with IPv6 source {local}")
            send, receive = _open_sockets_v4(interface, ifindex, local, multicast, receive_filter)
    except OSError as exc:
        raise _io_error(f"open vrrp socket {interface}", exc) from exc
    return LinuxAdvertLink(
        send,
        receive,
        interface=interface,
        local_address=local,
        unicast_peers=unicast_peers,
        connected=connected,
    )


class LinuxVipAddresses:
    """VIPs through rtnetlink (`vrrp.rtnl`, one socket reused): no library import on the
    way to BACKUP (stale VIPs removed, RFC 5798 §6.4.1) or at a takeover (§6.4.2)."""

    def __init__(self) -> None:
        self._rtnl: Rtnl | None = None

    def _route(self) -> Rtnl:
        if self._rtnl is None:
            self._rtnl = Rtnl()
        return self._rtnl

    async def add(self, interface: str, vip: Vip) -> None:
        index = _ifindex(interface)
        # keepalived adds IPv6 VIPs with IFA_F_NODAD: the address must work
        # at once at takeover, DAD would hold it tentative for ~1 s.
        flags = _IFA_F_NODAD if vip.version == 6 else 0
        try:
            self._route().add_address(index, vip.ip, vip.network.prefixlen, flags)
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                return
            raise _io_error(f"addr add {vip} dev {interface}", exc) from exc

    async def remove(self, interface: str, vip: Vip) -> None:
        index = _ifindex(interface)
        try:
            self._route().delete_address(index, vip.ip, vip.network.prefixlen)
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                return
            raise _io_error(f"addr del {vip} dev {interface}", exc) from exc

    async def list(self, interface: str) -> tuple[Vip, ...]:
        index = _ifindex(interface)
        try:
            entries = self._route().addresses(socket.AF_UNSPEC, index)
        except OSError as exc:
            raise _io_error(f"addr dump {interface}", exc) from exc
        return tuple(ip_interface(f"{entry.address}/{entry.prefixlen}") for entry in entries)

    def close(self) -> None:
        if self._rtnl is not None:
            self._rtnl.close()
            self._rtnl = None


def arp_announcement(mac: bytes, vip: IPv4Address) -> bytes:
    """A gratuitous ARP request frame: sender = target = VIP, to broadcast.

    RFC 5798 §6.4.2 asks for a gratuitous ARP per VIP at takeover; the request
    form (op 1) is what keepalived sends (``vrrp_arp.c``) and what RFC 5227 §3
    calls an ARP announcement. The target hardware address is zero (RFC 5227).
    """
    ethernet = _BROADCAST_MAC + mac + struct.pack("!H", _ETH_P_ARP)
    arp = struct.pack("!HHBBH", 1, _ETH_P_IP, 6, 4, 1) + mac + vip.packed + b"\x00" * 6 + vip.packed
    return ethernet + arp


def unsolicited_na(mac: bytes, vip: IPv6Address) -> bytes:
    """An unsolicited neighbour advertisement for ``vip`` (RFC 4861 §7.2.6).

    Override flag set so neighbours replace their cache entry (the VIP moved),
    solicited flag clear, with a target link-layer address option (§4.6.1).
    The kernel fills the ICMPv6 checksum of a raw ICMPv6 socket (RFC 3542 §3.1).
    """
    flags = 0x20000000  # O (override)
    header = struct.pack("!BBHI", 136, 0, 0, flags)
    option = struct.pack("!BB", 2, 1) + mac
    return header + vip.packed + option


def _mac_address(interface: str) -> bytes:
    """The interface's hardware address (SIOCGIFHWADDR), asked of the kernel
    through a socket, so it is the current network namespace's device (sysfs
    may still show another namespace's)."""
    request = struct.pack("256s", interface.encode()[:15])
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            reply = fcntl.ioctl(sock.fileno(), _SIOCGIFHWADDR, request)
    except OSError as exc:
        raise _io_error(f"mac address {interface}", exc) from exc
    return bytes(reply[18:24])


class LinuxAnnouncer:
    """Gratuitous ARP over AF_PACKET, unsolicited NA over a raw ICMPv6 socket."""

    async def announce(self, interface: str, vips: Sequence[Vip]) -> None:
        v4 = [vip.ip for vip in vips if isinstance(vip.ip, IPv4Address)]
        v6 = [vip.ip for vip in vips if isinstance(vip.ip, IPv6Address)]
        if not v4 and not v6:
            return
        mac = _mac_address(interface)
        if v4:
            self._send_arp(interface, mac, v4)
        if v6:
            self._send_na(interface, mac, v6)

    @staticmethod
    def _send_arp(interface: str, mac: bytes, vips: Sequence[IPv4Address]) -> None:
        try:
            with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ARP)) as sock:
                sock.bind((interface, _ETH_P_ARP))
                for vip in vips:
                    sock.send(arp_announcement(mac, vip))
        except OSError as exc:
            raise _io_error(f"garp {interface}", exc) from exc

    @staticmethod
    def _send_na(interface: str, mac: bytes, vips: Sequence[IPv6Address]) -> None:
        ifindex = _ifindex(interface)
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
                # RFC 4861 §7.1.2: a receiver drops an NA whose hop limit is not 255.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
                for vip in vips:
                    sock.sendto(unsolicited_na(mac, vip), (str(ALL_NODES_V6), 0, 0, ifindex))
        except OSError as exc:
            raise _io_error(f"unsolicited na {interface}", exc) from exc


def _link_is_up(flags: int) -> bool:
    # keepalived's IF_ISUP: administratively up and carrier (IFF_RUNNING).
    return bool(flags & _IFF_UP) and bool(flags & _IFF_RUNNING)


class NetlinkLinkMonitor:
    """Oper state of interfaces from RTM_NEWLINK/RTM_DELLINK on RTMGRP_LINK."""

    def __init__(self) -> None:
        self._subscriptions: list[AsyncIPRoute] = []

    async def is_up(self, interface: str) -> bool:
        try:
            with Rtnl() as rtnl:
                flags = rtnl.link_flags(interface)  # None: no such device (ENODEV)
        except OSError as exc:
            raise _io_error(f"link get {interface}", exc) from exc
        return flags is not None and _link_is_up(flags)

    async def subscribe(self) -> AsyncIterator[LinkEvent]:
        # pyroute2 (its broadcast reader) only for an instance that tracks interfaces;
        # it is loaded while the instance starts (LinuxPorts), never at a takeover.
        from pyroute2 import AsyncIPRoute
        from pyroute2.netlink.exceptions import NetlinkError
        from pyroute2.netlink.rtnl import RTMGRP_LINK

        ipr = AsyncIPRoute()
        try:
            await ipr.bind(groups=RTMGRP_LINK)
        except (NetlinkError, OSError) as exc:
            ipr.close()
            raise _io_error("link monitor bind", exc) from exc
        self._subscriptions.append(ipr)
        return self._follow(ipr)

    async def _follow(self, ipr: AsyncIPRoute) -> AsyncIterator[LinkEvent]:
        from pyroute2.netlink.exceptions import NetlinkError

        try:
            last: dict[str, bool] = {}
            while True:
                # Each get() returns the next batch of broadcast messages.
                async for msg in ipr.get():
                    for event in _link_events(msg, last):
                        yield event
        except (NetlinkError, OSError) as exc:
            raise _io_error("link monitor", exc) from exc
        finally:
            ipr.close()
            if ipr in self._subscriptions:
                self._subscriptions.remove(ipr)

    def close(self) -> None:
        for ipr in self._subscriptions:
            ipr.close()
        self._subscriptions.clear()


def _link_events(msg: object, last: dict[str, bool]) -> Iterator[LinkEvent]:
    """Turn one rtnetlink message into at most one change of oper state.

    The kernel repeats RTM_NEWLINK for many attribute changes (MTU, address,
    statistics); only a change of up/down is an event for the tracker.
    """
    get = getattr(msg, "get", None)
    if get is None:
        return
    kind = get("event")
    name = get("ifname")
    if not isinstance(name, str):
        return
    if kind == "RTM_DELLINK":
        up = False
    elif kind == "RTM_NEWLINK":
        up = _link_is_up(int(get("flags") or 0))
    else:
        return
    if last.get(name) is not up:
        last[name] = up
        yield LinkEvent(name, up)


class LinuxPorts:
    """The real ports for a :class:`~vrrp.service.VrrpService`: one raw socket
    per instance, one shared rtnetlink socket for VIPs, one announcer, one link
    monitor. Create and use it inside the loop that runs the instances."""

    def __init__(self) -> None:
        self.addresses = LinuxVipAddresses()
        self.announcer = LinuxAnnouncer()
        self._monitor = NetlinkLinkMonitor()
        self._routing: LinuxRouting | None = None
        self._vmacs: LinuxVirtualMacs | None = None

    # Routes, rules and macvlans go through pyroute2 (vrrp.linux_routing), imported the
    # first time an instance uses them: an instance with VIPs only reaches BACKUP and
    # takes over without loading it (start-up time, docs/benchmarks.md).
    @property
    def routing(self) -> LinuxRouting:
        if self._routing is None:
            from vrrp.linux_routing import LinuxRouting

            self._routing = LinuxRouting()
        return self._routing

    @property
    def vmacs(self) -> LinuxVirtualMacs:
        if self._vmacs is None:
            from vrrp.linux_routing import LinuxVirtualMacs

            self._vmacs = LinuxVirtualMacs()
        return self._vmacs

    @property
    def monitor(self) -> NetlinkLinkMonitor:
        return self._monitor

    async def __call__(self, settings: InstanceSettings) -> InstancePorts:
        spec = settings.vmac_spec
        if spec is not None:
            await self.vmacs.ensure(spec)
        link = await open_advert_link(
            settings.advert_interface,
            settings.family,
            unicast_peers=settings.unicast_peers,
            unicast_source=settings.unicast_source,
            vrid=settings.vrid,
            vrrp_version=settings.version,
            accept_foreign_source=settings.accept_foreign_source,
            address_interface=settings.interface,
        )
        routing = self.routing if settings.routes or settings.rules else None
        return InstancePorts(link, self.addresses, self.announcer, routing)

    async def release(self) -> None:
        """Remove the macvlans this process made (after the instances dropped their VIPs)."""
        if self._vmacs is None:
            return  # no instance used a VMAC: nothing made, nothing to load
        first: VrrpIoError | None = None
        for spec in self._vmacs.made:
            try:
                await self._vmacs.remove(spec)
            except VrrpIoError as exc:
                first = first or exc
        if first is not None:
            raise first

    def close(self) -> None:
        self.addresses.close()
        if self._routing is not None:
            self._routing.close()
        if self._vmacs is not None:
            self._vmacs.close()
        self._monitor.close()
