"""ICMP echo probe: keepalived's PING_CHECK.

Up when the real server answers one ICMP echo request (IPv4, RFC 792) or ICMPv6 echo
request (RFC 4443 §4.1) with the matching echo reply before the check's timeout.

Which socket: an unprivileged ICMP socket (``SOCK_DGRAM``/``IPPROTO_ICMP``, Linux "ping
sockets") when ``net.ipv4.ping_group_range`` admits the daemon's group: the kernel then
picks the echo identifier and hands this socket only the replies to it. Otherwise a raw
socket (``SOCK_RAW``, needs CAP_NET_RAW, which the daemon has for VRRP), which hears every
ICMP message of the host: replies are matched on identifier, sequence, source and the
random payload, so another prober's echo (or a spoofed one) never counts.

The packet work (building a request, recognising our reply) is pure and tested with
literal bytes; the socket work is a thin asyncio adapter.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import os
import socket
import struct
from ipaddress import IPv4Address, IPv6Address, ip_address

from checkers.result import ProbeResult
from checkers.spec import PingCheck, Target
from checkers.tcp import describe_errno, describe_timeout

__all__ = ["build_echo_request", "check_ping", "echo_reply_matches", "probe"]

_ECHO_REQUEST = {4: 8, 6: 128}
_ECHO_REPLY = {4: 0, 6: 129}
_PAYLOAD_BYTES = 16
_sequence = itertools.count(1)


def _checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071), for ICMPv4 (ICMPv6's is the kernel's)."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def build_echo_request(version: int, identifier: int, sequence: int, payload: bytes) -> bytes:
    kind = _ECHO_REQUEST[version]
    header = struct.pack("!BBHHH", kind, 0, 0, identifier, sequence)
    if version == 6:
        return header + payload
    checksum = _checksum(header + payload)
    return struct.pack("!BBHHH", kind, 0, checksum, identifier, sequence) + payload


def echo_reply_matches(
    version: int, message: bytes, sequence: int, payload: bytes, identifier: int | None
) -> bool:
    """Whether ``message`` (ICMP, IP header already stripped) is the reply to our request.

    ``identifier`` None: a ping socket, where the kernel owns the identifier and filters.
    """
    if len(message) < 8 + len(payload):
        return False
    kind, code, _, reply_id, reply_seq = struct.unpack("!BBHHH", message[:8])
    if kind != _ECHO_REPLY[version] or code != 0 or reply_seq != sequence:
        return False
    if identifier is not None and reply_id != identifier:
        return False
    return message[8 : 8 + len(payload)] == payload


def _open(version: int) -> tuple[socket.socket, bool]:
    """A ping socket if allowed, else a raw one; the flag says raw."""
    family = socket.AF_INET if version == 4 else socket.AF_INET6
    proto = socket.IPPROTO_ICMP if version == 4 else socket.IPPROTO_ICMPV6
    try:
        return socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK, proto), False
    except PermissionError:
        # ping_group_range does not admit us (its default "1 0" admits nobody).
        return socket.socket(family, socket.SOCK_RAW | socket.SOCK_NONBLOCK, proto), True


def _strip_ipv4_header(data: bytes) -> bytes:
    # A raw IPv4 socket delivers the IP header too (raw(7)); IPv6 raw sockets do not.
    if not data:
        return data
    return data[(data[0] & 0x0F) * 4 :]


async def check_ping(
    address: str,
    timeout: float,  # noqa: ASYNC109 - the probe enforces its own deadline (see header)
) -> ProbeResult:
    """Up when ``address`` answers one ICMP(v6) echo request within ``timeout``."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    target: IPv4Address | IPv6Address = ip_address(address)
    version = target.version
    try:
        sock, raw = _open(version)
    except OSError as exc:
        detail = f"icmp socket: {describe_errno(exc.errno or errno.EPERM, 'open')}"
        return ProbeResult(ok=False, detail=detail, latency=loop.time() - started)
    try:
        sequence = next(_sequence) & 0xFFFF
        payload = os.urandom(_PAYLOAD_BYTES)
        identifier = os.getpid() & 0xFFFF if raw else None
        request = build_echo_request(version, identifier or 0, sequence, payload)
        try:
            sock.sendto(request, (address, 0))
        except OSError as exc:
            detail = describe_errno(exc.errno or errno.EIO, "send")
            return ProbeResult(ok=False, detail=detail, latency=loop.time() - started)
        answered: asyncio.Future[None] = loop.create_future()

        def on_readable() -> None:
            while not answered.done():
                try:
                    data, sender = sock.recvfrom(65535)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError:
                    # ICMP errors queued on the socket (unreachable) are not a reply.
                    continue
                if ip_address(str(sender[0]).split("%", 1)[0]) != target:
                    continue
                message = _strip_ipv4_header(data) if raw and version == 4 else data
                if echo_reply_matches(version, message, sequence, payload, identifier):
                    answered.set_result(None)

        fd = sock.fileno()
        loop.add_reader(fd, on_readable)
        try:
            async with asyncio.timeout_at(started + timeout):
                await answered
        except TimeoutError:
            detail = f"no echo reply after {describe_timeout(timeout)}"
            return ProbeResult(ok=False, detail=detail, latency=loop.time() - started)
        finally:
            loop.remove_reader(fd)
        return ProbeResult(ok=True, detail="echo reply", latency=loop.time() - started)
    finally:
        sock.close()


async def probe(spec: PingCheck, target: Target) -> ProbeResult:
    """The PING_CHECK of ``spec`` against ``target`` (run_probe's entry point)."""
    return await check_ping(str(target.address), spec.timing.timeout)
