"""keepalived ``auth_hmac`` (draft-cassen-vrrp-auth-hmac-00): the trailer, the verdicts,
the rollout modes, the send sequence, and the machine's receive filter.

The two wire images are the draft's appendix vectors (keepalived 2.4.3's
test/auth_hmac_test.c): key 00..1f, VRID 51, priority 200, sequence
0x6800000080000000; IPv4 from 198.51.100.10 with VIP 192.0.2.100, IPv6 from fe80::10
with VIP fe80::100 and the kernel-style checksum to fe80::20 covering the trailer.
Their timestamps are far in the past, so the vectors verify in monotonic mode.
"""

from __future__ import annotations

import asyncio
import dataclasses
from ipaddress import IPv4Address, IPv6Address, ip_interface

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from vrrp.auth_hmac import (
    TRAILER_LEN,
    AntiReplay,
    AuthHmacSettings,
    AuthMode,
    AuthVerdict,
    HmacGuard,
    Trailer,
    build_trailer,
    decode_key,
    default_window,
    next_send_sequence,
    seq_after,
    sequence_at,
)
from vrrp.errors import DropReason, MalformedAdvert
from vrrp.fake import FakeSegment, FakeVipAddresses, RecordingAnnouncer
from vrrp.machine import State, VrrpMachine
from vrrp.packet import Advertisement, decode_advert, encode_advert, seal_extension
from vrrp.runner import InstanceRunner
from vrrp.settings import InstanceSettings, VipSpec

KEY = bytes(range(32))
SEQ = 0x6800000080000000
V4_SOURCE = IPv4Address("198.51.100.10")
V6_SOURCE = IPv6Address("fe80::10")
V6_DEST = IPv6Address("fe80::20")
V4_IMAGE = bytes.fromhex(
    "3133c80100644402c00002640101000068000000800000001b84bc4e8e43892dc6d98448f8ee2265"
)
V6_IMAGE = bytes.fromhex(
    "3133c8010064a2e9"
    "fe800000000000000000000000000100"
    "010100006800000080000000"
    "c8c56146ebfd66ee10ec4d8186461b78"
)
MONOTONIC = AuthHmacSettings(((1, KEY),), 1, anti_replay=AntiReplay.monotonic)
#: A wall clock reading inside the vectors' second (0x68000000 = 2025-04-16).
VECTOR_TIME = 0x68000000 + 0.5


def guard(settings: AuthHmacSettings = MONOTONIC, *, vrid: int = 51) -> HmacGuard:
    return HmacGuard(settings, version=3, vrid=vrid, advert_interval=1.0)


# --- the wire format ------------------------------------------------------------------------


@pytest.mark.parametrize(("image", "source"), [(V4_IMAGE, V4_SOURCE), (V6_IMAGE, V6_SOURCE)])
def test_appendix_vectors_are_what_build_trailer_gives(
    image: bytes, source: IPv4Address | IPv6Address
) -> None:
    pdu, trailer = image[:-TRAILER_LEN], image[-TRAILER_LEN:]
    built = build_trailer(pdu, key_id=1, key=KEY, sequence=SEQ, version=3, vrid=51, source=source)
    assert built == trailer
    assert Trailer.from_bytes(trailer) == Trailer(1, 1, 0, SEQ, trailer[12:])
    assert guard().check(pdu, trailer, source, 0.0).verdict is AuthVerdict.ok


def test_ipv6_checksum_covers_the_trailer_like_the_kernel() -> None:
    pdu = encode_advert(
        Advertisement(3, 51, 200, 1.0, (IPv6Address("fe80::100"),)), V6_SOURCE, V6_DEST
    )
    trailer = build_trailer(
        pdu, key_id=1, key=KEY, sequence=SEQ, version=3, vrid=51, source=V6_SOURCE
    )
    assert seal_extension(pdu, trailer, V6_SOURCE, V6_DEST) == V6_IMAGE
    advert = decode_advert(V6_IMAGE, V6_SOURCE, V6_DEST, extension=TRAILER_LEN)
    assert advert.priority == 200 and advert.addresses == (IPv6Address("fe80::100"),)
    # The PDU's own checksum is not what an IPv6 trailer-carrying advert has.
    with pytest.raises(MalformedAdvert) as caught:
        decode_advert(V6_IMAGE, V6_SOURCE, V6_DEST)
    assert caught.value.reason is DropReason.bad_length


def test_ipv4_checksum_covers_the_pdu_only() -> None:
    pdu = encode_advert(
        Advertisement(2, 51, 200, 1.0, (IPv4Address("192.0.2.100"),)),
        V4_SOURCE,
        IPv4Address("224.0.0.18"),
    )
    assert seal_extension(pdu, b"x" * TRAILER_LEN, V4_SOURCE, IPv4Address("224.0.0.18")) == (
        pdu + b"x" * TRAILER_LEN
    )


@pytest.mark.parametrize(
    ("offset", "verdict"),
    [
        (2, AuthVerdict.invalid_hmac),  # priority
        (5, AuthVerdict.invalid_hmac),  # advert interval
        (6, AuthVerdict.ok),  # checksum: read as zero
        (8 + 15, AuthVerdict.invalid_hmac),  # VIP
        (24 + 0, AuthVerdict.malformed),  # ext_type
        (24 + 1, AuthVerdict.unknown_key),  # key id
        (24 + 2, AuthVerdict.malformed),  # reserved
        (24 + 4, AuthVerdict.invalid_hmac),  # seconds
        (24 + 10, AuthVerdict.invalid_hmac),  # counter
        (24 + 12, AuthVerdict.invalid_hmac),  # hmac
    ],
)
def test_one_flipped_octet_gives_keepalived_verdict(offset: int, verdict: AuthVerdict) -> None:
    image = bytearray(V6_IMAGE)
    image[offset] ^= 0x01
    assert guard().check(bytes(image[:24]), bytes(image[24:]), V6_SOURCE, 0.0).verdict is verdict


def test_pseudo_header_binds_source_and_vrid() -> None:
    pdu, trailer = V6_IMAGE[:24], V6_IMAGE[24:]
    assert guard().check(pdu, trailer, V6_DEST, 0.0).verdict is AuthVerdict.invalid_hmac
    assert guard(vrid=52).check(pdu, trailer, V6_SOURCE, 0.0).verdict is AuthVerdict.invalid_hmac


# --- verdicts: freshness, replay, modes ----------------------------------------------------


def test_replay_is_refused_per_sender_and_a_refusal_moves_no_mark() -> None:
    g = guard()
    pdu, trailer = V6_IMAGE[:24], V6_IMAGE[24:]
    assert g.check(pdu, trailer, V6_SOURCE, 0.0).verdict is AuthVerdict.ok
    assert g.check(pdu, trailer, V6_SOURCE, 0.0).verdict is AuthVerdict.replay
    older = build_trailer(
        pdu, key_id=1, key=KEY, sequence=SEQ - 1, version=3, vrid=51, source=V6_SOURCE
    )
    assert g.check(pdu, older, V6_SOURCE, 0.0).verdict is AuthVerdict.replay
    forged_newer = bytearray(
        build_trailer(
            pdu, key_id=1, key=KEY, sequence=SEQ + 100, version=3, vrid=51, source=V6_SOURCE
        )
    )
    forged_newer[-1] ^= 0xFF
    assert g.check(pdu, bytes(forged_newer), V6_SOURCE, 0.0).verdict is AuthVerdict.invalid_hmac
    newer = build_trailer(
        pdu, key_id=1, key=KEY, sequence=SEQ + 1, version=3, vrid=51, source=V6_SOURCE
    )
    assert g.check(pdu, newer, V6_SOURCE, 0.0).verdict is AuthVerdict.ok


def test_time_mode_refuses_a_stamp_outside_the_window_either_way() -> None:
    g = guard(AuthHmacSettings(((1, KEY),), 1, time_window=5))
    pdu, trailer = V6_IMAGE[:24], V6_IMAGE[24:]
    assert g.check(pdu, trailer, V6_SOURCE, VECTOR_TIME + 100).verdict is AuthVerdict.stale
    assert g.check(pdu, trailer, V6_SOURCE, VECTOR_TIME - 100).verdict is AuthVerdict.stale
    assert g.check(pdu, trailer, V6_SOURCE, VECTOR_TIME + 5).verdict is AuthVerdict.ok
    assert g.check(pdu, trailer, V6_SOURCE, VECTOR_TIME + 5).verdict is AuthVerdict.replay


def test_time_mode_forgets_a_mark_older_than_the_window() -> None:
    g = guard(AuthHmacSettings(((1, KEY),), 1, time_window=5))
    pdu = V6_IMAGE[:24]
    far = build_trailer(
        pdu,
        key_id=1,
        key=KEY,
        sequence=(0x68000000 + 3600) << 32,
        version=3,
        vrid=51,
        source=V6_SOURCE,
    )
    assert g.check(pdu, far, V6_SOURCE, 0x68000000 + 3600).verdict is AuthVerdict.ok
    # The sender's clock was stepped back an hour: its mark is outside the window.
    assert g.check(pdu, V6_IMAGE[24:], V6_SOURCE, VECTOR_TIME).verdict is AuthVerdict.ok


@pytest.mark.parametrize(
    ("mode", "verdict", "signs"),
    [
        (AuthMode.receive_only, AuthVerdict.unsigned, False),
        (AuthMode.permissive, AuthVerdict.unsigned, True),
        (AuthMode.enforce, AuthVerdict.missing, True),
    ],
)
def test_modes_decide_an_unsigned_advert_and_whether_we_sign(
    mode: AuthMode, verdict: AuthVerdict, signs: bool
) -> None:
    g = guard(AuthHmacSettings(((1, KEY),), 1, mode=mode))
    assert g.check(V6_IMAGE[:24], None, V6_SOURCE, VECTOR_TIME).verdict is verdict
    assert (len(g.sign(V6_IMAGE[:24], V6_SOURCE, VECTOR_TIME)) == TRAILER_LEN) is signs
    # A present trailer is verified in every mode.
    assert g.check(V6_IMAGE[:24], V6_IMAGE[24:], V6_SOURCE, VECTOR_TIME).verdict is AuthVerdict.ok


def test_rotation_every_key_verifies_the_active_one_signs() -> None:
    other = bytes(range(100, 140))
    sender = guard(AuthHmacSettings(((1, KEY), (2, other)), 2))
    receiver = guard(AuthHmacSettings(((1, KEY), (2, other)), 1))
    old_only = guard(AuthHmacSettings(((1, KEY),), 1))
    trailer = sender.sign(V6_IMAGE[:24], V6_SOURCE, VECTOR_TIME)
    assert trailer[1] == 2
    assert receiver.check(V6_IMAGE[:24], trailer, V6_SOURCE, VECTOR_TIME).verdict is AuthVerdict.ok
    assert (
        old_only.check(V6_IMAGE[:24], trailer, V6_SOURCE, VECTOR_TIME).verdict
        is AuthVerdict.unknown_key
    )


# --- sequence and settings ------------------------------------------------------------------


def test_sequence_from_the_clock_and_serial_order() -> None:
    assert sequence_at(0x68000000 + 0.5) == SEQ
    assert seq_after(SEQ + 1, SEQ) and not seq_after(SEQ, SEQ) and not seq_after(SEQ, SEQ + 1)
    assert seq_after(0, (1 << 64) - 1)  # across the wrap


def test_send_sequence_grows_even_when_the_clock_does_not() -> None:
    first = next_send_sequence(0, VECTOR_TIME, time_mode=True, window=5)
    assert first == SEQ
    assert next_send_sequence(first, VECTOR_TIME, time_mode=True, window=5) == SEQ + 1
    # A sequence stranded an hour ahead (clock stepped back): time mode restarts from the
    # clock, monotonic mode keeps strict growth.
    ahead = (0x68000000 + 3600) << 32
    assert next_send_sequence(ahead, VECTOR_TIME, time_mode=True, window=5) == SEQ
    assert next_send_sequence(ahead, VECTOR_TIME, time_mode=False, window=5) == ahead + 1


def test_keys_and_window_like_keepalived() -> None:
    assert decode_key("hex:" + "00" * 32) == bytes(32)
    assert decode_key("a" * 40) == b"a" * 40
    with pytest.raises(ValueError, match="hex digits"):
        decode_key("hex:zz")
    assert default_window(1.0) == 5 and default_window(4) == 12 and default_window(200) == 300
    with pytest.raises(ValueError, match="31 octets"):
        AuthHmacSettings(((1, bytes(31)),), 1)
    with pytest.raises(ValueError, match="active_key: 2"):
        AuthHmacSettings(((1, KEY),), 2)
    with pytest.raises(ValueError, match="duplicate"):
        AuthHmacSettings(((1, KEY), (1, KEY)), 1)


# --- the machine's receive filter -----------------------------------------------------------

VIP = ip_interface("198.51.100.100/24")
A = IPv4Address("198.51.100.1")
B = IPv4Address("198.51.100.2")
GROUP = IPv4Address("224.0.0.18")
NOW = 1_800_000_000.25


def settings(mode: AuthMode = AuthMode.enforce, key: bytes = KEY) -> InstanceSettings:
    return InstanceSettings(
        name="VI_1",
        interface="eth0",
        vrid=51,
        priority=100,
        version=3,
        advert_interval=1.0,
        preempt=True,
        preempt_delay=0.0,
        vips=(VipSpec(VIP),),
        auth_hmac=AuthHmacSettings(((1, key),), 1, mode=mode),
    )


def signed(sender: VrrpMachine, priority: int, wall: float) -> bytes:
    advert = sender.build_advert(priority)
    pdu = encode_advert(advert, B, GROUP)
    return seal_extension(pdu, sender.auth_trailer(pdu, wall), B, GROUP)


def test_machine_accepts_a_signed_advert_and_drops_each_bad_one_by_reason() -> None:
    sender = VrrpMachine(settings(), primary_address=B)
    receiver = VrrpMachine(settings(), primary_address=A)
    receiver.start(0.0)
    good = signed(sender, 200, NOW)
    assert len(good) == 12 + TRAILER_LEN
    received = receiver.receive(good, B, GROUP, 255, NOW)
    assert received.auth is not None and received.auth.verdict is AuthVerdict.ok
    assert received.advert.priority == 200
    cases = [
        (good, NOW, DropReason.auth_replay),
        (signed(sender, 200, NOW)[:12], NOW, DropReason.auth_missing),
        (signed(sender, 200, NOW), NOW + 60, DropReason.auth_stale),
        (
            signed(VrrpMachine(settings(key=b"k" * 32), primary_address=B), 200, NOW),
            NOW,
            DropReason.auth_invalid_hmac,
        ),
    ]
    for payload, wall, reason in cases:
        with pytest.raises(MalformedAdvert) as caught:
            receiver.receive(payload, B, GROUP, 255, wall)
        assert caught.value.reason is reason
    # Nothing moved the election: still BACKUP with no master learnt.
    assert receiver.master_source is None


def test_machine_permissive_accepts_unsigned_and_receive_only_sends_none() -> None:
    receiver = VrrpMachine(settings(AuthMode.permissive), primary_address=A)
    plain = encode_advert(Advertisement(3, 51, 200, 1.0, (VIP.ip,)), B, GROUP)
    received = receiver.receive(plain, B, GROUP, 255, NOW)
    assert received.auth is not None and received.auth.verdict is AuthVerdict.unsigned
    quiet = VrrpMachine(settings(AuthMode.receive_only), primary_address=B)
    assert quiet.auth_trailer(plain, NOW) == b""


# --- two runners on the fake segment: signing, verdict counters, status --------------------


def _now() -> float:
    return asyncio.get_running_loop().time()


def _runner(
    segment: FakeSegment, address: IPv4Address, priority: int, key: bytes
) -> InstanceRunner:
    runner = InstanceRunner(
        dataclasses.replace(settings(key=key), priority=priority),
        link=segment.attach(address),
        addresses=FakeVipAddresses(["eth0"]),
        announcer=RecordingAnnouncer(clock=_now),
        # The wall clock follows the loop's (looptime) time, from a fixed epoch.
        wall_clock=lambda: NOW + _now(),
    )
    asyncio.get_running_loop().create_task(runner.run())
    return runner


@pytest.mark.looptime
async def test_runners_sign_accept_each_other_and_count_verdicts() -> None:
    segment = FakeSegment(clock=_now)
    a = _runner(segment, A, 150, KEY)
    b = _runner(segment, B, 100, KEY)
    await asyncio.sleep(10)
    assert (a.state, b.state) == (State.MASTER, State.BACKUP)
    sent = segment.sent_by(A)
    assert sent and all(len(s.payload) == 12 + TRAILER_LEN for s in sent)
    assert b.counters.auth_accepted[AuthVerdict.ok] >= 5
    assert not b.counters.dropped
    # A replay of the master's last-but-one advert (inside the window) is refused,
    # counted, and moves nothing; its first one, 7 s old, is stale.
    segment.inject(sent[-2].payload, A, GROUP)
    await asyncio.sleep(0.1)
    assert b.counters.dropped == {DropReason.auth_replay: 1}
    assert b.status().auth_verdicts == {"ok": b.counters.auth_accepted[AuthVerdict.ok], "replay": 1}
    segment.inject(sent[0].payload, A, GROUP)
    await asyncio.sleep(0.1)
    assert b.counters.dropped == {DropReason.auth_replay: 1, DropReason.auth_stale: 1}
    assert b.state is State.BACKUP
    await a.stop()
    await b.stop()


@pytest.mark.looptime
async def test_runners_with_different_keys_both_claim_master_and_count_invalid_hmac() -> None:
    segment = FakeSegment(clock=_now)
    a = _runner(segment, A, 150, KEY)
    b = _runner(segment, B, 100, b"another key of thirty-two octets")
    await asyncio.sleep(10)
    # Neither accepts the other: both master, as keepalived with mismatched keys.
    assert (a.state, b.state) == (State.MASTER, State.MASTER)
    assert set(b.counters.dropped) == {DropReason.auth_invalid_hmac}
    assert set(a.counters.dropped) == {DropReason.auth_invalid_hmac}
    await a.stop()
    await b.stop()


def test_reload_with_a_new_active_key_signs_with_it_and_the_sequence_carries_on() -> None:
    other = b"k" * 32
    machine = VrrpMachine(settings(), primary_address=A)
    machine.start(0.0)
    pdu = encode_advert(machine.build_advert(100), A, GROUP)
    first = Trailer.from_bytes(machine.auth_trailer(pdu, NOW))
    rotated = dataclasses.replace(settings(), auth_hmac=AuthHmacSettings(((1, KEY), (2, other)), 2))
    machine.reconfigure(rotated, 1.0)
    # The clock did not move: only the carried-on sequence makes the next one newer.
    second = Trailer.from_bytes(machine.auth_trailer(pdu, NOW))
    assert (first.key_id, second.key_id) == (1, 2)
    assert second.sequence == first.sequence + 1


# --- hostile input: the auth filter raises only MalformedAdvert ---------------------------

_SIGNED = signed(VrrpMachine(settings(), primary_address=B), 200, NOW)


@hsettings(max_examples=300, deadline=None)
@given(
    payload=st.one_of(
        st.binary(max_size=80),
        # Mutations of a real signed advert: the interesting lengths and fields.
        st.tuples(st.integers(0, len(_SIGNED) - 1), st.integers(1, 255)).map(
            lambda m: _SIGNED[: m[0]] + bytes([_SIGNED[m[0]] ^ m[1]]) + _SIGNED[m[0] + 1 :]
        ),
        st.integers(0, len(_SIGNED)).map(lambda n: _SIGNED[:n]),
    ),
    mode=st.sampled_from(list(AuthMode)),
    wall=st.floats(0, 2**33, allow_nan=False),
)
def test_any_payload_is_accepted_or_raises_only_malformed_advert(
    payload: bytes, mode: AuthMode, wall: float
) -> None:
    receiver = VrrpMachine(settings(mode), primary_address=A)
    try:
        received = receiver.receive(payload, B, GROUP, 255, wall)
    except MalformedAdvert:
        return
    assert received.auth is not None and received.auth.verdict.accepted
