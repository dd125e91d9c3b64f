"""Fuzzing the VRRP receive path: the peer's garbage is a typed, countable error, never a crash.

Whatever arrives on the raw socket, the path a runner takes
(``parse_ipv4_packet`` -> ``check_ttl`` -> ``decode_advert`` -> ``VrrpMachine.on_advert``)
raises nothing but :class:`vrrp.MalformedAdvert`, and a dropped advert changes nothing.

Arbitrary bytes rarely get past the header checks, so most cases here start from the
golden keepalived captures in tests/data/captures and mutate them (bit flips,
overwrites, truncation, insertion, deletion, appended bytes), optionally repairing the
VRRP checksum afterwards so the mutation reaches the checks behind it (count field,
lengths, version, interval) and the machine's own rules (VRID, version, interval).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Interface, IPv6Address
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from support import read_pcap

import vrrp
from vrrp import (
    AdvertDropped,
    Advertisement,
    DropReason,
    InstanceSettings,
    MalformedAdvert,
    State,
    VipSpec,
    VrrpMachine,
    check_ttl,
    decode_advert,
    encode_advert,
    parse_ipv4_packet,
)

CAPTURES = Path(__file__).resolve().parents[1] / "data" / "captures"
MASTER = IPv4Address("198.51.100.11")
GROUP4 = IPv4Address("224.0.0.18")
GROUP6 = IPv6Address("ff02::12")
LINK_LOCAL = IPv6Address("fe80::1")
OUR_ADDRESS = IPv4Address("198.51.100.12")

IPAddress = IPv4Address | IPv6Address


def golden_datagrams() -> list[bytes]:
    """The IPv4 datagrams of every keepalived capture (Ethernet header removed)."""
    datagrams = []
    for name in ("vrrp-v2-adverts.pcap", "vrrp-v3-adverts.pcap"):
        for frame in read_pcap(CAPTURES / name):
            assert frame[12:14] == b"\x08\x00"
            datagrams.append(frame[14:])
    return datagrams


GOLDEN = golden_datagrams()


# --- the receive path, as the runner walks it ----------------------------------------------


def receive_path(datagram: bytes) -> tuple[IPAddress, Advertisement]:
    """What a raw IPv4 socket's datagram goes through before the machine sees it."""
    source, destination, ttl, payload = parse_ipv4_packet(datagram)
    check_ttl(ttl)
    return source, decode_advert(payload, source, destination)


def machine(version: int, *, priority: int = 100, unicast: bool = False) -> VrrpMachine:
    """A started instance like the keepalived peer's in the captures (VRID 51)."""
    instance = InstanceSettings(
        name="VI_FUZZ",
        interface="eth0",
        vrid=51,
        priority=priority,
        version=version,
        advert_interval=1.0,
        preempt=True,
        preempt_delay=0.0,
        vips=(
            VipSpec(IPv4Interface("198.51.100.100/24")),
            VipSpec(IPv4Interface("10.0.0.1/24")),
        ),
        unicast_peers=(MASTER,) if unicast else (),
    )
    built = VrrpMachine(instance, primary_address=OUR_ADDRESS)
    built.start(now=0.0)
    return built


# --- mutations -------------------------------------------------------------------------------


Mutation = Callable[[bytearray], None]


def flip(position: int, mask: int) -> Mutation:
    def apply(data: bytearray) -> None:
        if data:
            data[position % len(data)] ^= mask

    return apply


def overwrite(position: int, value: int) -> Mutation:
    def apply(data: bytearray) -> None:
        if data:
            data[position % len(data)] = value

    return apply


def truncate(length: int) -> Mutation:
    def apply(data: bytearray) -> None:
        del data[length:]

    return apply


def insert(position: int, chunk: bytes) -> Mutation:
    def apply(data: bytearray) -> None:
        at = position % (len(data) + 1)
        data[at:at] = chunk

    return apply


def delete(position: int, count: int) -> Mutation:
    def apply(data: bytearray) -> None:
        if data:
            at = position % len(data)
            del data[at : at + count]

    return apply


def append(chunk: bytes) -> Mutation:
    def apply(data: bytearray) -> None:
        data.extend(chunk)

    return apply


positions = st.integers(min_value=0, max_value=512)
mutations: st.SearchStrategy[Mutation] = st.one_of(
    st.builds(flip, positions, st.integers(min_value=1, max_value=255)),
    st.builds(overwrite, positions, st.integers(min_value=0, max_value=255)),
    st.builds(truncate, st.integers(min_value=0, max_value=80)),
    st.builds(insert, positions, st.binary(min_size=1, max_size=40)),
    st.builds(delete, positions, st.integers(min_value=1, max_value=40)),
    st.builds(append, st.binary(min_size=1, max_size=64)),
)


def repair_checksums(data: bytearray) -> None:
    """Recompute the IPv4 header and VRRP checksums of a mutated datagram, where the
    header is still readable, so the mutation is judged by the checks behind them."""
    if len(data) < 20:
        return
    header_len = (data[0] & 0x0F) * 4
    if header_len < 20 or len(data) < header_len:
        return
    total_len = min(struct.unpack_from("!H", data, 2)[0], len(data))
    payload = bytes(data[header_len:total_len])
    if len(payload) < 8:
        return
    source, destination = IPv4Address(bytes(data[12:16])), IPv4Address(bytes(data[16:20]))
    summed = payload[:6] + b"\0\0" + payload[8:]
    if payload[0] >> 4 == 3:
        # RFC 5798 §5.2.8 / RFC 9568: v3 over IPv4 sums the pseudo-header too.
        summed = (
            source.packed
            + destination.packed
            + struct.pack("!BBH", 0, vrrp.IPPROTO_VRRP, len(payload))
            + summed
        )
    checksum = vrrp.packet.internet_checksum(summed)
    struct.pack_into("!H", data, header_len + 6, checksum)


# --- properties ------------------------------------------------------------------------------


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(GOLDEN),
    st.lists(mutations, min_size=1, max_size=6),
    st.booleans(),
)
def test_mutated_keepalived_adverts_raise_only_malformed_advert(
    golden: bytes, edits: list[Mutation], repair: bool
) -> None:
    data = bytearray(golden)
    for edit in edits:
        edit(data)
    if repair:
        repair_checksums(data)
    try:
        source, advert = receive_path(bytes(data))
    except MalformedAdvert as error:
        assert isinstance(error.reason, DropReason)
        assert isinstance(error.detail, str) and error.detail
        return
    # What decodes is a well-formed advertisement, in the codec's own units.
    assert advert.version in (2, 3)
    assert 0 <= advert.vrid <= 255 and 0 <= advert.priority <= 255
    assert 0.0 <= advert.advert_interval <= (255 if advert.version == 2 else 40.95)
    assert all(isinstance(address, IPv4Address) for address in advert.addresses)
    assert isinstance(source, IPv4Address)


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(GOLDEN),
    st.lists(mutations, min_size=1, max_size=4),
    st.sampled_from([2, 3]),
    st.sampled_from([50, 100, 150, 255]),
    st.booleans(),
    st.floats(min_value=0.0, max_value=100.0, allow_nan=False),
)
def test_whatever_decodes_is_handled_by_the_machine_without_raising(
    golden: bytes,
    edits: list[Mutation],
    version: int,
    priority: int,
    unicast: bool,
    now: float,
) -> None:
    data = bytearray(golden)
    for edit in edits:
        edit(data)
    repair_checksums(data)
    try:
        source, advert = receive_path(bytes(data))
    except MalformedAdvert:
        return
    instance = machine(version, priority=priority, unicast=unicast)
    state = instance.state
    actions = instance.on_advert(advert, source, now + 1.0)
    assert isinstance(actions, tuple)
    if any(isinstance(action, AdvertDropped) for action in actions):
        # A dropped advert is only reported: no other action, no state change.
        assert len(actions) == 1
        assert instance.state is state
    # The machine keeps answering afterwards (no half-applied state).
    instance.on_timer(now + 1000.0)
    assert instance.state in (State.BACKUP, State.MASTER)


@settings(max_examples=1000)
@given(
    st.binary(max_size=400),
    st.one_of(
        st.builds(IPv4Address, st.integers(0, 2**32 - 1)),
        st.builds(IPv6Address, st.integers(0, 2**128 - 1)),
    ),
    st.one_of(
        st.builds(IPv4Address, st.integers(0, 2**32 - 1)),
        st.builds(IPv6Address, st.integers(0, 2**128 - 1)),
    ),
)
@example(b"", GROUP4, GROUP6)
@example(b"\x31\x33\x96\x02\x00\x0a\x00\x00", LINK_LOCAL, GROUP6)
def test_arbitrary_payloads_and_addresses_raise_only_malformed_advert(
    payload: bytes, source: IPAddress, destination: IPAddress
) -> None:
    try:
        advert = decode_advert(payload, source, destination)
    except MalformedAdvert as error:
        assert isinstance(error.reason, DropReason)
        return
    assert type(source) is type(destination)
    assert all(type(address) is type(source) for address in advert.addresses)


@settings(max_examples=1000)
@given(
    st.sampled_from(GOLDEN),
    st.lists(mutations, min_size=1, max_size=6),
)
def test_whatever_decodes_encodes_back_to_an_equal_advertisement(
    golden: bytes, edits: list[Mutation]
) -> None:
    # Decoding normalises (v3 reserved interval bits, v2 password padding): encoding
    # what was decoded must give bytes that decode to the very same value.
    data = bytearray(golden)
    for edit in edits:
        edit(data)
    repair_checksums(data)
    try:
        source, destination, _ttl, payload = parse_ipv4_packet(bytes(data))
        advert = decode_advert(payload, source, destination)
    except MalformedAdvert:
        return
    assume(advert.version == 3 or advert.advert_interval >= 1)
    again = encode_advert(advert, source, destination)
    assert decode_advert(again, source, destination) == advert


# --- the crafted packets of the lab test, checked here first ---------------------------------


def golden_v3() -> bytearray:
    return bytearray(next(d for d in GOLDEN if d[20] >> 4 == 3))


def golden_v2() -> bytearray:
    return bytearray(next(d for d in GOLDEN if d[20] >> 4 == 2))


def set_vrrp_octet(data: bytearray, offset: int, value: int) -> None:
    data[20 + offset] = value


CRAFTED: dict[str, tuple[Callable[[], bytearray], DropReason]] = {}


def crafted(name: str, reason: DropReason) -> Callable[[Callable[[], bytearray]], None]:
    def register(build: Callable[[], bytearray]) -> None:
        CRAFTED[name] = (build, reason)

    return register


@crafted("bad_checksum", DropReason.bad_checksum)
def _bad_checksum() -> bytearray:
    data = golden_v3()
    data[26] ^= 0xFF
    return data


@crafted("bad_ttl", DropReason.bad_ttl)
def _bad_ttl() -> bytearray:
    data = golden_v3()
    data[8] = 64
    return data


@crafted("bad_version", DropReason.bad_version)
def _bad_version() -> bytearray:
    data = golden_v3()
    set_vrrp_octet(data, 0, 0x41)
    repair_checksums(data)
    return data


@crafted("truncated", DropReason.truncated)
def _truncated() -> bytearray:
    data = golden_v3()[:26]
    struct.pack_into("!H", data, 2, len(data))
    return data


@crafted("address_count_mismatch", DropReason.address_count_mismatch)
def _address_count() -> bytearray:
    data = golden_v3()
    set_vrrp_octet(data, 3, 3)  # says three addresses, carries two
    repair_checksums(data)
    return data


@pytest.mark.parametrize("name", ["bad_checksum", "bad_ttl", "bad_version", "truncated",
                                  "address_count_mismatch"])
def test_each_crafted_packet_is_dropped_for_its_own_reason(name: str) -> None:
    build, reason = CRAFTED[name]
    with pytest.raises(MalformedAdvert) as raised:
        receive_path(bytes(build()))
    assert raised.value.reason is reason


def test_repaired_checksum_without_mutation_is_the_original() -> None:
    # The repair helper itself must agree with keepalived, or the properties above
    # would test the wrong thing.
    for datagram in GOLDEN:
        data = bytearray(datagram)
        repair_checksums(data)
        assert bytes(data) == datagram


@pytest.mark.parametrize(
    ("edit", "version", "reason"),
    [
        (lambda d: set_vrrp_octet(d, 1, 52), 3, DropReason.wrong_vrid),
        (lambda d: None, 2, DropReason.bad_version),
        (lambda d: set_vrrp_octet(d, 5, 2), 2, DropReason.interval_mismatch),
    ],
    ids=["wrong_vrid", "v3_advert_at_v2_instance", "v2_interval_mismatch"],
)
def test_semantic_drops_reach_the_machine_and_change_nothing(
    edit: Callable[[bytearray], None], version: int, reason: DropReason
) -> None:
    data = golden_v3() if reason is not DropReason.interval_mismatch else golden_v2()
    edit(data)
    repair_checksums(data)
    source, advert = receive_path(bytes(data))
    instance = machine(version)
    deadline = instance.next_deadline()
    actions = instance.on_advert(advert, source, now=0.5)
    assert actions == (AdvertDropped(reason, source, actions[0].detail),)  # type: ignore[union-attr]
    assert instance.state is State.BACKUP
    assert instance.next_deadline() == deadline
    assert instance.master_source is None


def test_unicast_instance_drops_a_stranger_and_hears_its_peer() -> None:
    data = golden_v3()
    source, advert = receive_path(bytes(data))
    listening = machine(3, unicast=True)
    stranger = IPv4Address("198.51.100.2")
    dropped = listening.on_advert(advert, stranger, now=0.5)
    assert [type(a) for a in dropped] == [AdvertDropped]
    assert dropped[0].reason is DropReason.not_a_peer  # type: ignore[union-attr]
    assert listening.master_source is None
    heard = listening.on_advert(advert, source, now=0.6)
    assert not any(isinstance(a, AdvertDropped) for a in heard)
    assert listening.master_source == MASTER
