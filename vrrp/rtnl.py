"""A minimal rtnetlink client (standard library only): interface addresses and link flags.

What the VRRP process needs on its way to BACKUP and at a takeover: the addresses of an
instance's interface (its primary address and connected subnets, RFC 5798 §5.1.1.1), the
VIPs removed at start (§6.4.1) and added at takeover (§6.4.2). pyroute2 does all of
this and more, but importing it costs 0.2-0.9 s of CPU in the lab guest, on the path from
the daemon's exec to BACKUP (bench/startup.py, docs/benchmarks.md); the messages below are
four request kinds of ``rtnetlink(7)`` and their replies.

The socket is blocking with a timeout: the kernel answers an rtnetlink request before
``send`` returns (the reply is already queued), so ``recv`` never waits on the network.
Errors are ``OSError`` with the kernel's errno (EEXIST, EADDRNOTAVAIL, ENODEV...), as
pyroute2's ``NetlinkError`` carried them.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import threading
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address

__all__ = ["AddressEntry", "Rtnl", "parse_messages"]

NETLINK_ROUTE = 0
RTM_NEWLINK = 16
RTM_GETLINK = 18
RTM_NEWADDR = 20
RTM_DELADDR = 21
RTM_GETADDR = 22
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300  # NLM_F_ROOT | NLM_F_MATCH
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_FLAGS = 8
IFLA_IFNAME = 3

_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, seq, pid
_IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
_IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
_ATTR = struct.Struct("=HH")  # rtattr: length, type
_ERROR = struct.Struct("=i")
_TIMEOUT = 5.0
_RECV_SIZE = 1 << 16


@dataclass(frozen=True, slots=True)
class AddressEntry:
    """One address of an interface, as RTM_NEWADDR carries it."""

    index: int
    family: int
    prefixlen: int
    flags: int  # IFA_F_* (the header's 8 bits, or IFA_FLAGS' 32 when present)
    address: IPv4Address | IPv6Address


def _align(length: int) -> int:
    return (length + 3) & ~3


def _attribute(kind: int, value: bytes) -> bytes:
    body = _ATTR.pack(_ATTR.size + len(value), kind) + value
    return body + b"\0" * (_align(len(body)) - len(body))


def attributes(data: bytes) -> dict[int, bytes]:
    """The rtattrs of a message body (after its fixed header), by type."""
    found: dict[int, bytes] = {}
    offset = 0
    while offset + _ATTR.size <= len(data):
        length, kind = _ATTR.unpack_from(data, offset)
        if length < _ATTR.size or offset + length > len(data):
            break
        found.setdefault(kind & 0x3FFF, data[offset + _ATTR.size:offset + length])
        offset += _align(length)
    return found


def parse_messages(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """The netlink messages of one datagram: (type, flags, seq, payload)."""
    messages: list[tuple[int, int, int, bytes]] = []
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, kind, flags, seq, _pid = _HEADER.unpack_from(data, offset)
        if length < _HEADER.size or offset + length > len(data):
            raise OSError(errno.EBADMSG, f"truncated netlink message at {offset}")
        messages.append((kind, flags, seq, data[offset + _HEADER.size:offset + length]))
        offset += _align(length)
    return messages


def _address_entry(payload: bytes) -> AddressEntry | None:
    family, prefixlen, flags, _scope, index = _IFADDRMSG.unpack_from(payload)
    attrs = attributes(payload[_IFADDRMSG.size:])
    # IFA_ADDRESS is the address proper (the peer's on a point-to-point link, as
    # pyroute2's IFA_ADDRESS); IFA_LOCAL only when the kernel sent no IFA_ADDRESS.
    raw = attrs.get(IFA_ADDRESS, attrs.get(IFA_LOCAL))
    if raw is None or len(raw) not in (4, 16):
        return None
    if IFA_FLAGS in attrs and len(attrs[IFA_FLAGS]) == 4:
        flags = struct.unpack("=I", attrs[IFA_FLAGS])[0]
    return AddressEntry(index, family, prefixlen, flags, ip_address(raw))


class Rtnl:
    """One NETLINK_ROUTE socket; each method is one request and its whole answer.

    A lock serialises requests (the VRRP thread and the status thread may share one
    socket), so each answer is read by the request that asked for it.
    """

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                   NETLINK_ROUTE)
        try:
            self._sock.bind((0, 0))
            self._sock.settimeout(_TIMEOUT)
        except OSError:
            self._sock.close()
            raise
        self._seq = 0
        self._lock = threading.Lock()

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def request(self, kind: int, flags: int, body: bytes) -> list[bytes]:
        """Send one request; the payloads of its answer (a dump's messages, or none
        for an acknowledged change). A kernel refusal raises OSError(errno)."""
        with self._lock:
            self._seq = seq = (self._seq + 1) & 0xFFFFFFFF
            header = _HEADER.pack(_HEADER.size + len(body), kind, flags | NLM_F_REQUEST, seq, 0)
            self._sock.send(header + body)
            answer: list[bytes] = []
            while True:
                for kind_in, flags_in, seq_in, payload in parse_messages(
                        self._sock.recv(_RECV_SIZE)):
                    if seq_in != seq:
                        continue  # a late answer to an earlier, abandoned request
                    if kind_in == NLMSG_ERROR:
                        (code,) = _ERROR.unpack_from(payload)
                        if code:
                            raise OSError(-code, os.strerror(-code))
                        return answer  # the acknowledgement of a change
                    if kind_in == NLMSG_DONE:
                        if len(payload) >= _ERROR.size:
                            (code,) = _ERROR.unpack_from(payload)
                            if code < 0:
                                raise OSError(-code, os.strerror(-code))
                        return answer
                    answer.append(payload)
                    if not flags_in & NLM_F_MULTI and not flags & NLM_F_ACK:
                        return answer

    def addresses(self, family: int = socket.AF_UNSPEC, index: int | None = None,
                  ) -> list[AddressEntry]:
        """The addresses of ``family`` (all families with AF_UNSPEC), of the interface
        ``index`` only when given, in the kernel's order (primary first)."""
        body = _IFADDRMSG.pack(family, 0, 0, 0, 0)
        found: list[AddressEntry] = []
        for payload in self.request(RTM_GETADDR, NLM_F_DUMP, body):
            entry = _address_entry(payload)
            if entry is not None and (index is None or entry.index == index):
                found.append(entry)
        return found

    def add_address(self, index: int, address: IPv4Address | IPv6Address, prefixlen: int,
                    flags: int = 0) -> None:
        """``ip addr add``: EEXIST when the interface has it already (NLM_F_EXCL)."""
        self._change_address(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, index, address,
                             prefixlen, address_flags=flags)

    def delete_address(self, index: int, address: IPv4Address | IPv6Address,
                       prefixlen: int) -> None:
        """``ip addr del``: EADDRNOTAVAIL when the interface does not have it."""
        self._change_address(RTM_DELADDR, 0, index, address, prefixlen, address_flags=0)

    def _change_address(self, kind: int, flags: int, index: int,
                        address: IPv4Address | IPv6Address, prefixlen: int, *,
                        address_flags: int) -> None:
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        body = _IFADDRMSG.pack(family, prefixlen, address_flags & 0xFF, 0, index)
        # As `ip addr` and pyroute2 send it: IPv4 names the local address too.
        if family == socket.AF_INET:
            body += _attribute(IFA_LOCAL, address.packed)
        body += _attribute(IFA_ADDRESS, address.packed)
        if address_flags:
            body += _attribute(IFA_FLAGS, struct.pack("=I", address_flags))
        self.request(kind, flags | NLM_F_ACK, body)

    def link_flags(self, name: str) -> int | None:
        """The IFF_* flags of the interface ``name``; None when there is none (ENODEV)."""
        body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        body += _attribute(IFLA_IFNAME, name.encode() + b"\0")
        try:
            answer = self.request(RTM_GETLINK, 0, body)
        except OSError as exc:
            if exc.errno == errno.ENODEV:
                return None
            raise
        for payload in answer:
            _family, _type, _index, flags, _change = _IFINFOMSG.unpack_from(payload)
            return int(flags)
        return None
