"""VRRP advertisement codec: VRRPv2 (RFC 3768) and VRRPv3 (RFC 5798, RFC 9568), IPv4 and IPv6.

This module owns the wire format and nothing else (wsproto's ``frame_protocol``,
aioquic's ``packet.py``): bytes in, :class:`Advertisement` out, and back. It
does not know about instances, states or sockets; the addresses that the v3
checksum covers are arguments.

Rules kept here:

- ``decode_advert`` raises only :class:`MalformedAdvert` for *any* input (the
  peer's garbage is a typed, countable error; hypothesis checks this).
- ``encode_advert`` raises ``ValueError`` for fields out of range (our bug).
- Checksums: VRRPv2 covers the VRRP message only (RFC 3768 §5.3.8); VRRPv3
  covers the message plus the IPv4 or IPv6 pseudo-header (RFC 5798 §5.2.8,
  clarified for IPv4 by RFC 9568 §5.2.8), as keepalived computes it: the golden
  captures in tests/data/captures pin this.
- Semantic checks that need the instance (VRID, interval, auth, peers, own
  packets) belong to the machine, not here. The TTL/hop-limit check
  (RFC 5798 §7.1) is :func:`check_ttl`, for the socket adapter that sees it.

Pure module: no IO, no clock, no logging.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from vrrp.errors import DropReason, MalformedAdvert

__all__ = [
    "IPPROTO_VRRP",
    "VRRP_MULTICAST_V4",
    "VRRP_MULTICAST_V6",
    "VRRP_TTL",
    "Advertisement",
    "check_ttl",
    "decode_advert",
    "encode_advert",
    "internet_checksum",
    "parse_ipv4_packet",
    "pdu_length",
    "seal_extension",
]

#: IANA protocol number of VRRP (RFC 5798 §5.1.1.4).
IPPROTO_VRRP = 112
#: RFC 5798 §5.1.1.2 / §5.1.2.2: the multicast destinations.
VRRP_MULTICAST_V4 = IPv4Address("224.0.0.18")
VRRP_MULTICAST_V6 = IPv6Address("ff02::12")
#: RFC 5798 §5.1.1.3: sent with TTL / hop limit 255, and §7.1: received only with 255.
VRRP_TTL = 255

#: RFC 5798 §5.2.2: the only packet type.
_TYPE_ADVERTISEMENT = 1
#: Version/type, VRID, priority, count (4 octets) + interval/auth, checksum (4 octets).
_HEADER_LEN = 8
#: RFC 3768 §5.3.10: VRRPv2 always carries 8 authentication octets.
_V2_AUTH_LEN = 8
_V3_INTERVAL_MASK = 0x0FFF  # RFC 5798 §5.2.7: 4 reserved bits, then 12 bits of centiseconds.

IPAddress = IPv4Address | IPv6Address


@dataclass(frozen=True, slots=True)
class Advertisement:
    """One VRRP advertisement, independent of the wire version's units.

    ``advert_interval`` is in seconds: VRRPv2's 8-bit field counts seconds,
    VRRPv3's 12-bit field counts centiseconds. ``auth_type``/``auth_data`` exist
    only in VRRPv2 (RFC 3768 §5.3.6); ``auth_data`` is the password without its
    zero padding (``b""`` when there is none).
    """

    version: int
    vrid: int
    priority: int
    advert_interval: float
    addresses: tuple[IPv4Address | IPv6Address, ...]
    auth_type: int = 0
    auth_data: bytes = b""

    @property
    def family(self) -> int | None:
        """4 or 6 from the carried addresses, None if it carries none."""
        return self.addresses[0].version if self.addresses else None


def internet_checksum(data: bytes) -> int:
    """RFC 1071 one's-complement sum of 16-bit words, complemented."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def _pseudo_header(source: IPAddress, destination: IPAddress, length: int) -> bytes:
    if isinstance(source, IPv4Address):
        # RFC 9568 §5.2.8 (IPv4): source, destination, zero, protocol, VRRP length.
        return source.packed + destination.packed + struct.pack("!BBH", 0, IPPROTO_VRRP, length)
    # RFC 8200 §8.1 (IPv6): source, destination, 32-bit length, 3 zero octets, next header.
    return source.packed + destination.packed + struct.pack("!I3xB", length, IPPROTO_VRRP)


def _checksum(version: int, message: bytes, source: IPAddress, destination: IPAddress) -> int:
    if version == 2:
        # RFC 3768 §5.3.8: over the VRRP message only.
        return internet_checksum(message)
    return internet_checksum(_pseudo_header(source, destination, len(message)) + message)


def encode_advert(advert: Advertisement, source: IPAddress, destination: IPAddress) -> bytes:
    """Return the VRRP payload (no IP header) of ``advert``, checksum included.

    ``source``/``destination`` are the IP addresses the packet will carry: the
    VRRPv3 checksum covers them. Raises ``ValueError`` for out-of-range fields.
    """
    if type(source) is not type(destination):
        raise ValueError(f"source {source} and destination {destination} differ in family")
    if advert.version not in (2, 3):
        raise ValueError(f"version: {advert.version} must be 2 or 3")
    if not 0 <= advert.vrid <= 255 or not 0 <= advert.priority <= 255:
        raise ValueError("vrid and priority must fit one octet")
    if len(advert.addresses) > 255:
        raise ValueError("addresses: at most 255 fit the Count IPvX Addr field")
    if any(type(address) is not type(source) for address in advert.addresses):
        raise ValueError("addresses: every address must be of the packet's family")
    packed_addresses = b"".join(address.packed for address in advert.addresses)
    head = struct.pack(
        "!BBBB",
        (advert.version << 4) | _TYPE_ADVERTISEMENT,
        advert.vrid,
        advert.priority,
        len(advert.addresses),
    )
    if advert.version == 2:
        if isinstance(source, IPv6Address):
            raise ValueError("VRRPv2 is IPv4 only (RFC 3768)")
        seconds = advert.advert_interval
        if not (float(seconds).is_integer() and 1 <= seconds <= 255):
            raise ValueError(f"advert_interval: {seconds} must be whole seconds 1..255 (VRRPv2)")
        if not 0 <= advert.auth_type <= 255:
            raise ValueError(f"auth_type: {advert.auth_type} must fit one octet")
        if len(advert.auth_data) > _V2_AUTH_LEN:
            raise ValueError("auth_data: at most 8 octets (RFC 3768 §5.3.10)")
        second_word = struct.pack("!BB", advert.auth_type, int(seconds))
        tail = packed_addresses + advert.auth_data.ljust(_V2_AUTH_LEN, b"\0")
    else:
        if advert.auth_type or advert.auth_data:
            raise ValueError("auth_type/auth_data: VRRPv3 has no authentication (RFC 5798 §9)")
        centis = round(advert.advert_interval * 100)
        if not 0 <= centis <= _V3_INTERVAL_MASK:
            raise ValueError(f"advert_interval: {advert.advert_interval} outside 0..40.95 s")
        second_word = struct.pack("!H", centis)
        tail = packed_addresses
    unsummed = head + second_word + b"\0\0" + tail
    checksum = _checksum(advert.version, unsummed, source, destination)
    return head + second_word + struct.pack("!H", checksum) + tail


def pdu_length(payload: bytes, source: IPAddress) -> int | None:
    """The length the header's version and address count give the PDU (header,
    addresses, VRRPv2 authentication octets), or None for a header too short or
    of an unknown version. An extension (the auth_hmac trailer) is what follows."""
    if len(payload) < _HEADER_LEN or payload[0] >> 4 not in (2, 3):
        return None
    address_len = 4 if isinstance(source, IPv4Address) else 16
    trailer = _V2_AUTH_LEN if payload[0] >> 4 == 2 else 0
    return _HEADER_LEN + payload[3] * address_len + trailer


def seal_extension(
    pdu: bytes, extension: bytes, source: IPAddress, destination: IPAddress
) -> bytes:
    """``pdu`` (from :func:`encode_advert`) with ``extension`` appended, checksum fixed.

    An extension after the PDU (keepalived's auth_hmac trailer) is outside the
    IPv4 VRRP checksum, which covers the VRRP message only; keepalived sends IPv6
    through the kernel's IPV6_CHECKSUM, which sums the whole payload with the
    pseudo-header length of the whole payload, so an IPv6 checksum is redone.
    """
    if not extension or isinstance(source, IPv4Address):
        return pdu + extension
    whole = pdu[:6] + b"\0\0" + pdu[8:] + extension
    checksum = internet_checksum(_pseudo_header(source, destination, len(whole)) + whole)
    return whole[:6] + struct.pack("!H", checksum) + whole[8:]


def decode_advert(
    payload: bytes, source: IPAddress, destination: IPAddress, *, extension: int = 0
) -> Advertisement:
    """Decode the VRRP payload received from ``source`` to ``destination``.

    Raises :class:`MalformedAdvert` (and nothing else) when the bytes are not a
    well-formed advertisement: version, type, lengths, address count, checksum
    (RFC 5798 §7.1 / RFC 3768 §7.1, the checks that need no instance).

    ``extension``: the payload ends with that many octets after the PDU (the
    auth_hmac trailer); they are not decoded here, and the checksum covers them
    on IPv6 only (see :func:`seal_extension`).
    """
    if type(source) is not type(destination):
        raise MalformedAdvert(
            DropReason.family_mismatch, f"source {source} and destination {destination}"
        )
    if extension:
        if len(payload) < _HEADER_LEN + extension:
            raise MalformedAdvert(
                DropReason.truncated, f"{len(payload)} octets, header and extension need more"
            )
        if isinstance(source, IPv6Address):
            checksummed = payload[:6] + b"\0\0" + payload[8:]
            expected = internet_checksum(
                _pseudo_header(source, destination, len(checksummed)) + checksummed
            )
            received = struct.unpack_from("!H", payload, 6)[0]
            if received != expected:
                raise MalformedAdvert(
                    DropReason.bad_checksum, f"checksum {received:#06x}, computed {expected:#06x}"
                )
            # Checked over the whole payload; decode the PDU with a checksum that passes.
            pdu = payload[: len(payload) - extension]
            fixed = _checksum(3, pdu[:6] + b"\0\0" + pdu[8:], source, destination)
            return decode_advert(pdu[:6] + struct.pack("!H", fixed) + pdu[8:], source, destination)
        return decode_advert(payload[: len(payload) - extension], source, destination)
    if len(payload) < _HEADER_LEN:
        raise MalformedAdvert(DropReason.truncated, f"{len(payload)} octets, header needs 8")
    version_type, vrid, priority, count = payload[0], payload[1], payload[2], payload[3]
    version, packet_type = version_type >> 4, version_type & 0x0F
    if version not in (2, 3):
        raise MalformedAdvert(DropReason.bad_version, f"version {version}")
    if version == 2 and isinstance(source, IPv6Address):
        raise MalformedAdvert(DropReason.bad_version, "VRRPv2 over IPv6 (RFC 3768 is IPv4 only)")
    if packet_type != _TYPE_ADVERTISEMENT:
        raise MalformedAdvert(DropReason.bad_type, f"type {packet_type}")
    address_len = 4 if isinstance(source, IPv4Address) else 16
    trailer = _V2_AUTH_LEN if version == 2 else 0
    carried = len(payload) - _HEADER_LEN - trailer
    if carried < 0:
        raise MalformedAdvert(
            DropReason.truncated, f"{len(payload)} octets, VRRPv2 needs 8 authentication octets"
        )
    if carried % address_len:
        raise MalformedAdvert(
            DropReason.bad_length, f"{len(payload)} octets is no whole number of addresses"
        )
    if carried // address_len != count:
        raise MalformedAdvert(
            DropReason.address_count_mismatch,
            f"count field {count}, packet carries {carried // address_len}",
        )
    expected = _checksum(version, payload[:6] + b"\0\0" + payload[8:], source, destination)
    received = struct.unpack_from("!H", payload, 6)[0]
    if received != expected:
        raise MalformedAdvert(
            DropReason.bad_checksum, f"checksum {received:#06x}, computed {expected:#06x}"
        )
    body = payload[_HEADER_LEN : _HEADER_LEN + carried]
    addresses: tuple[IPAddress, ...]
    if address_len == 4:
        addresses = tuple(IPv4Address(body[i : i + 4]) for i in range(0, carried, 4))
    else:
        addresses = tuple(IPv6Address(body[i : i + 16]) for i in range(0, carried, 16))
    if version == 2:
        return Advertisement(
            version=2,
            vrid=vrid,
            priority=priority,
            advert_interval=float(payload[5]),
            addresses=addresses,
            auth_type=payload[4],
            auth_data=payload[_HEADER_LEN + carried :].rstrip(b"\0"),
        )
    interval_field = struct.unpack_from("!H", payload, 4)[0]
    return Advertisement(
        version=3,
        vrid=vrid,
        priority=priority,
        # RFC 5798 §5.2.7: the reserved bits are ignored on receipt.
        advert_interval=(interval_field & _V3_INTERVAL_MASK) / 100,
        addresses=addresses,
    )


def parse_ipv4_packet(datagram: bytes) -> tuple[IPv4Address, IPv4Address, int, bytes]:
    """Split what a raw IPv4 socket delivers into (source, destination, ttl, VRRP payload).

    Linux raw sockets hand over the IP header (network byte order on receive);
    the payload is cut at the header's Total Length so link-layer padding never
    reaches the VRRP codec. Raises :class:`MalformedAdvert` (truncated /
    bad_length / bad_version / bad_type).
    """
    if len(datagram) < 20:
        raise MalformedAdvert(DropReason.truncated, f"{len(datagram)} octets, IPv4 header needs 20")
    ip_version, header_len = datagram[0] >> 4, (datagram[0] & 0x0F) * 4
    if ip_version != 4:
        raise MalformedAdvert(DropReason.bad_version, f"IP version {ip_version}")
    total_len = struct.unpack_from("!H", datagram, 2)[0]
    if header_len < 20 or total_len < header_len:
        raise MalformedAdvert(
            DropReason.bad_length, f"IHL {header_len} octets, total length {total_len}"
        )
    if len(datagram) < header_len or len(datagram) < total_len:
        raise MalformedAdvert(
            DropReason.truncated, f"{len(datagram)} octets, IP header says {total_len}"
        )
    ttl, protocol = datagram[8], datagram[9]
    if protocol != IPPROTO_VRRP:
        raise MalformedAdvert(DropReason.bad_type, f"IP protocol {protocol}, not VRRP (112)")
    source = IPv4Address(datagram[12:16])
    destination = IPv4Address(datagram[16:20])
    return source, destination, ttl, datagram[header_len:total_len]


def check_ttl(ttl: int) -> None:
    """Raise ``MalformedAdvert(bad_ttl)`` unless TTL / hop limit is 255 (RFC 5798 §7.1).

    A packet that crossed a router cannot come from a router on our link.
    """
    if ttl != VRRP_TTL:
        raise MalformedAdvert(DropReason.bad_ttl, f"ttl {ttl}, must be 255")
