"""The VRRP codec against keepalived's own bytes, every malformed case, and round trips."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import read_pcap

from vrrp.errors import DropReason, MalformedAdvert
from vrrp.packet import (
    Advertisement,
    check_ttl,
    decode_advert,
    encode_advert,
    internet_checksum,
    parse_ipv4_packet,
)

CAPTURES = Path(__file__).resolve().parents[1] / "data" / "captures"
MASTER = IPv4Address("198.51.100.11")
GROUP4 = IPv4Address("224.0.0.18")
GROUP6 = IPv6Address("ff02::12")
LL_A = IPv6Address("fe80::1")
VIPS = (IPv4Address("198.51.100.100"), IPv4Address("10.0.0.1"))


def ip_datagrams(name: str) -> list[bytes]:
    frames = read_pcap(CAPTURES / name)
    assert frames
    for frame in frames:
        assert frame[12:14] == b"\x08\x00"  # EtherType IPv4
    return [frame[14:] for frame in frames]


# --- golden bytes from keepalived 2.2.7 ------------------------------------------------------


@pytest.mark.parametrize(
    ("capture", "version", "interval", "count"),
    [("vrrp-v2-adverts.pcap", 2, 1.0, 4), ("vrrp-v3-adverts.pcap", 3, 0.1, 8)],
)
def test_keepalived_capture_decodes_and_reencodes_byte_for_byte(
    capture: str, version: int, interval: float, count: int
) -> None:
    datagrams = ip_datagrams(capture)
    assert len(datagrams) == count
    for datagram in datagrams:
        source, destination, ttl, payload = parse_ipv4_packet(datagram)
        assert (source, destination, ttl) == (MASTER, GROUP4, 255)
        check_ttl(ttl)
        advert = decode_advert(payload, source, destination)
        assert advert == Advertisement(
            version=version, vrid=51, priority=150, advert_interval=interval, addresses=VIPS
        )
        assert encode_advert(advert, source, destination) == payload


def test_v2_golden_fields_exact() -> None:
    payload = parse_ipv4_packet(ip_datagrams("vrrp-v2-adverts.pcap")[0])[3]
    assert payload.hex() == "2133960200011430c63364640a0000010000000000000000"


def test_v3_golden_fields_exact() -> None:
    payload = parse_ipv4_packet(ip_datagrams("vrrp-v3-adverts.pcap")[0])[3]
    assert payload.hex() == "31339602000af954c63364640a000001"


def test_v3_ipv4_checksum_covers_the_pseudo_header() -> None:
    # The same message to another destination must carry another checksum (RFC 9568 §5.2.8).
    advert = Advertisement(version=3, vrid=51, priority=150, advert_interval=0.1, addresses=VIPS)
    multicast = encode_advert(advert, MASTER, GROUP4)
    unicast = encode_advert(advert, MASTER, IPv4Address("198.51.100.12"))
    assert multicast[6:8] != unicast[6:8]
    with pytest.raises(MalformedAdvert) as caught:
        decode_advert(multicast, MASTER, IPv4Address("198.51.100.12"))
    assert caught.value.reason is DropReason.bad_checksum


def test_v2_checksum_ignores_addresses() -> None:
    advert = Advertisement(version=2, vrid=51, priority=150, advert_interval=1.0, addresses=VIPS)
    one = encode_advert(advert, MASTER, GROUP4)
    other = encode_advert(advert, IPv4Address("192.0.2.1"), IPv4Address("192.0.2.2"))
    assert one == other
    assert decode_advert(one, IPv4Address("192.0.2.1"), GROUP4) == advert


def test_v3_ipv6_checksum_matches_rfc_8200_pseudo_header() -> None:
    addresses = (IPv6Address("fe80::100"), IPv6Address("2001:db8::100"))
    advert = Advertisement(
        version=3, vrid=7, priority=100, advert_interval=1.0, addresses=addresses
    )
    payload = encode_advert(advert, LL_A, GROUP6)
    assert len(payload) == 8 + 32
    pseudo = LL_A.packed + GROUP6.packed + struct.pack("!I3xB", len(payload), 112)
    # A correct checksum makes the one's-complement sum over pseudo-header + message zero.
    assert internet_checksum(pseudo + payload) == 0
    assert decode_advert(payload, LL_A, GROUP6) == advert


def test_v2_password_auth_is_padded_on_the_wire_and_stripped_on_decode() -> None:
    advert = Advertisement(
        version=2,
        vrid=9,
        priority=100,
        advert_interval=3.0,
        addresses=VIPS[:1],
        auth_type=1,
        auth_data=b"secret",
    )
    payload = encode_advert(advert, MASTER, GROUP4)
    assert payload[4] == 1  # auth type PASS
    assert payload[-8:] == b"secret\0\0"
    assert decode_advert(payload, MASTER, GROUP4) == advert


def test_v3_reserved_interval_bits_are_ignored_on_receipt() -> None:
    advert = Advertisement(version=3, vrid=51, priority=150, advert_interval=0.1, addresses=VIPS)
    payload = bytearray(encode_advert(advert, MASTER, GROUP4))
    payload[4] |= 0xF0  # RFC 5798 §5.2.7: rsvd bits set by a sloppy peer
    payload[6:8] = b"\0\0"
    payload[6:8] = struct.pack(
        "!H",
        internet_checksum(
            MASTER.packed + GROUP4.packed + struct.pack("!BBH", 0, 112, len(payload)) + payload
        ),
    )
    assert decode_advert(bytes(payload), MASTER, GROUP4) == advert


# --- every malformed case ----------------------------------------------------------------------


def golden_v3() -> bytes:
    return parse_ipv4_packet(ip_datagrams("vrrp-v3-adverts.pcap")[0])[3]


def golden_v2() -> bytes:
    return parse_ipv4_packet(ip_datagrams("vrrp-v2-adverts.pcap")[0])[3]


def refreshed_v3_checksum(payload: bytes, source: IPv4Address = MASTER) -> bytes:
    zeroed = payload[:6] + b"\0\0" + payload[8:]
    pseudo = source.packed + GROUP4.packed + struct.pack("!BBH", 0, 112, len(zeroed))
    return zeroed[:6] + struct.pack("!H", internet_checksum(pseudo + zeroed)) + zeroed[8:]


def reason_of(
    payload: bytes,
    source: IPv4Address | IPv6Address = MASTER,
    destination: IPv4Address | IPv6Address = GROUP4,
) -> DropReason:
    with pytest.raises(MalformedAdvert) as caught:
        decode_advert(payload, source, destination)
    return caught.value.reason


def test_truncated_header() -> None:
    assert reason_of(golden_v3()[:7]) is DropReason.truncated
    assert reason_of(b"") is DropReason.truncated


def test_v2_without_authentication_octets_is_truncated() -> None:
    v2 = golden_v2()
    assert reason_of(v2[:12]) is DropReason.truncated


def test_bad_version() -> None:
    payload = bytes([0x41]) + golden_v3()[1:]
    assert reason_of(payload) is DropReason.bad_version


def test_v2_over_ipv6_is_a_bad_version() -> None:
    payload = golden_v2()[:8] + bytes(16) + bytes(8)
    payload = payload[:3] + b"\x01" + payload[4:]
    assert reason_of(payload, LL_A, GROUP6) is DropReason.bad_version


def test_bad_type() -> None:
    payload = refreshed_v3_checksum(bytes([0x32]) + golden_v3()[1:])
    assert reason_of(payload) is DropReason.bad_type


def test_bad_checksum() -> None:
    payload = bytearray(golden_v3())
    payload[2] = 151  # priority changed, checksum not
    assert reason_of(bytes(payload)) is DropReason.bad_checksum
    v2 = bytearray(golden_v2())
    v2[7] ^= 0xFF
    assert reason_of(bytes(v2)) is DropReason.bad_checksum


def test_address_count_disagreeing_with_length() -> None:
    payload = refreshed_v3_checksum(golden_v3()[:3] + b"\x03" + golden_v3()[4:])
    assert reason_of(payload) is DropReason.address_count_mismatch


def test_length_not_a_whole_number_of_addresses() -> None:
    payload = refreshed_v3_checksum(golden_v3() + b"\0\0")
    assert reason_of(payload) is DropReason.bad_length


def test_family_mismatch_between_source_and_destination() -> None:
    assert reason_of(golden_v3(), MASTER, GROUP6) is DropReason.family_mismatch


def test_ipv4_addresses_read_over_ipv6_do_not_decode() -> None:
    # 8 octets of IPv4 addresses are no whole IPv6 address.
    assert reason_of(golden_v3(), LL_A, GROUP6) is DropReason.bad_length


def test_check_ttl() -> None:
    check_ttl(255)
    for ttl in (0, 1, 64, 254):
        with pytest.raises(MalformedAdvert) as caught:
            check_ttl(ttl)
        assert caught.value.reason is DropReason.bad_ttl


# --- parse_ipv4_packet ----------------------------------------------------------------------


def test_parse_ipv4_packet_cuts_link_padding_at_total_length() -> None:
    datagram = ip_datagrams("vrrp-v3-adverts.pcap")[0]
    source, _destination, _ttl, payload = parse_ipv4_packet(datagram + b"\0" * 10)
    assert source == MASTER
    assert payload == golden_v3()


def test_parse_ipv4_packet_reports_ttl() -> None:
    datagram = bytearray(ip_datagrams("vrrp-v2-adverts.pcap")[0])
    datagram[8] = 254
    assert parse_ipv4_packet(bytes(datagram))[2] == 254


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d[:19], DropReason.truncated),
        (lambda d: d[:30], DropReason.truncated),  # shorter than total length
        (lambda d: bytes([0x44]) + d[1:], DropReason.bad_length),  # IHL 16 octets
        (lambda d: d[:2] + b"\x00\x10" + d[4:], DropReason.bad_length),  # total < IHL
        (lambda d: bytes([0x65]) + d[1:], DropReason.bad_version),
        (lambda d: d[:9] + b"\x06" + d[10:], DropReason.bad_type),
    ],
)
def test_parse_ipv4_packet_errors(mutate: object, reason: DropReason) -> None:
    datagram = ip_datagrams("vrrp-v3-adverts.pcap")[0]
    assert callable(mutate)
    with pytest.raises(MalformedAdvert) as caught:
        parse_ipv4_packet(mutate(datagram))
    assert caught.value.reason is reason


# --- encode misuse raises ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("advert", "reason"),
    [
        pytest.param(
            Advertisement(version=4, vrid=1, priority=1, advert_interval=1.0, addresses=VIPS),
            "^version: 4 must be 2 or 3",
        ),
        pytest.param(
            Advertisement(version=2, vrid=1, priority=1, advert_interval=0.5, addresses=VIPS),
            "^advert_interval: 0\\.5 must be whole seconds",
        ),
        pytest.param(
            Advertisement(version=2, vrid=1, priority=1, advert_interval=256.0, addresses=VIPS),
            "^advert_interval: 256\\.0 must be whole seconds",
        ),
        pytest.param(
            Advertisement(version=3, vrid=1, priority=1, advert_interval=41.0, addresses=VIPS),
            "^advert_interval: 41\\.0 outside 0\\.\\.40\\.95",
        ),
        pytest.param(
            Advertisement(version=3, vrid=256, priority=1, advert_interval=1.0, addresses=VIPS),
            "^vrid and priority must fit one octet",
        ),
        pytest.param(
            Advertisement(
                version=3, vrid=1, priority=1, advert_interval=1.0, addresses=VIPS, auth_type=1
            ),
            "^auth_type/auth_data: VRRPv3 has no authentication",
        ),
        pytest.param(
            Advertisement(
                version=2,
                vrid=1,
                priority=1,
                advert_interval=1.0,
                addresses=VIPS,
                auth_type=1,
                auth_data=b"123456789",
            ),
            "^auth_data: at most 8 octets",
        ),
        pytest.param(
            Advertisement(version=3, vrid=1, priority=1, advert_interval=1.0, addresses=(LL_A,)),
            "^addresses: every address must be of the packet's family",
        ),
    ],
)
def test_encode_rejects_our_own_misuse(advert: Advertisement, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        encode_advert(advert, MASTER, GROUP4)


def test_encode_rejects_mixed_families() -> None:
    advert = Advertisement(version=3, vrid=1, priority=1, advert_interval=1.0, addresses=VIPS)
    with pytest.raises(ValueError):
        encode_advert(advert, MASTER, GROUP6)


# --- hypothesis ---------------------------------------------------------------------------

ipv4 = st.builds(IPv4Address, st.integers(min_value=0, max_value=2**32 - 1))
ipv6 = st.builds(IPv6Address, st.integers(min_value=0, max_value=2**128 - 1))


@st.composite
def v2_adverts(draw: st.DrawFn) -> tuple[Advertisement, IPv4Address, IPv4Address]:
    auth_type = draw(st.integers(min_value=0, max_value=255))
    auth_data = draw(st.binary(max_size=8)).rstrip(b"\0")
    advert = Advertisement(
        version=2,
        vrid=draw(st.integers(0, 255)),
        priority=draw(st.integers(0, 255)),
        advert_interval=float(draw(st.integers(1, 255))),
        addresses=tuple(draw(st.lists(ipv4, max_size=20))),
        auth_type=auth_type,
        auth_data=auth_data,
    )
    return advert, draw(ipv4), draw(ipv4)


@st.composite
def v3_adverts(
    draw: st.DrawFn,
) -> tuple[Advertisement, IPv4Address | IPv6Address, IPv4Address | IPv6Address]:
    family: st.SearchStrategy[IPv4Address | IPv6Address] = draw(st.sampled_from([ipv4, ipv6]))
    advert = Advertisement(
        version=3,
        vrid=draw(st.integers(0, 255)),
        priority=draw(st.integers(0, 255)),
        advert_interval=draw(st.integers(0, 4095)) / 100,
        addresses=tuple(draw(st.lists(family, max_size=20))),
    )
    return advert, draw(family), draw(family)


@given(v2_adverts())
def test_v2_round_trip(case: tuple[Advertisement, IPv4Address, IPv4Address]) -> None:
    advert, source, destination = case
    payload = encode_advert(advert, source, destination)
    assert decode_advert(payload, source, destination) == advert


@given(v3_adverts())
def test_v3_round_trip(
    case: tuple[Advertisement, IPv4Address | IPv6Address, IPv4Address | IPv6Address],
) -> None:
    advert, source, destination = case
    payload = encode_advert(advert, source, destination)
    assert decode_advert(payload, source, destination) == advert


@given(st.binary(max_size=300), st.sampled_from([(MASTER, GROUP4), (LL_A, GROUP6)]))
def test_decoding_arbitrary_bytes_raises_only_malformed_advert(
    payload: bytes, addresses: tuple[IPv4Address | IPv6Address, IPv4Address | IPv6Address]
) -> None:
    try:
        advert = decode_advert(payload, *addresses)
    except MalformedAdvert as error:
        assert isinstance(error.reason, DropReason)
    else:
        assert advert.version == payload[0] >> 4
        assert advert.vrid == payload[1]


@given(st.binary(max_size=100))
def test_parsing_arbitrary_datagrams_raises_only_malformed_advert(datagram: bytes) -> None:
    try:
        parse_ipv4_packet(datagram)
    except MalformedAdvert as error:
        assert isinstance(error.reason, DropReason)


@given(v3_adverts(), st.integers(min_value=0), st.integers(min_value=1, max_value=255))
def test_any_corrupted_octet_is_detected(
    case: tuple[Advertisement, IPv4Address | IPv6Address, IPv4Address | IPv6Address],
    position: int,
    mask: int,
) -> None:
    # One changed octet moves a 16-bit word by 1..255 (x 256), never by 0xFFFF, so the
    # one's-complement checksum (RFC 1071) always notices, reserved bits included.
    advert, source, destination = case
    payload = bytearray(encode_advert(advert, source, destination))
    payload[position % len(payload)] ^= mask
    with pytest.raises(MalformedAdvert):
        decode_advert(bytes(payload), source, destination)
