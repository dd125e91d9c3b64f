"""The classic BPF receive filters (vrrp/bpf.py), run through a small interpreter
of the instructions they use, against crafted packets."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

import pytest

from vrrp.bpf import (
    ACCEPT,
    MAX_SOURCE_NETWORKS,
    MAX_UNICAST_PEERS,
    ipv4_advert_filter,
    ipv6_advert_filter,
)
from vrrp.machine import build_advert
from vrrp.packet import VRRP_MULTICAST_V4, encode_advert
from vrrp.settings import InstanceSettings, VipSpec


class RejectedError(Exception):
    """The kernel's answer to an out-of-bounds load: the packet is dropped."""


def run_bpf(program: bytes, packet: bytes) -> int:
    """Interpret a classic BPF program like net/core/filter.c does for the
    opcodes the VRRP filters use; an unknown opcode fails the test."""
    assert len(program) % 8 == 0 and 0 < len(program) // 8 <= 4096
    code = [struct.unpack_from("=HBBI", program, i) for i in range(0, len(program), 8)]
    a = x = 0
    pc = 0

    def load(offset: int, size: int) -> int:
        if offset < 0 or offset + size > len(packet):
            raise RejectedError
        return int.from_bytes(packet[offset : offset + size], "big")

    sizes = {0x00: 4, 0x08: 2, 0x10: 1}
    try:
        while True:
            op, jt, jf, k = code[pc]
            pc += 1
            cls = op & 0x07
            if cls == 0x00:  # LD
                mode, size = op & 0xE0, sizes[op & 0x18]
                if mode == 0x20:
                    a = load(k, size)
                elif mode == 0x40:
                    a = load(x + k, size)
                elif mode == 0x80:
                    a = len(packet)
                else:
                    raise AssertionError(f"ld mode {mode:#x}")
            elif cls == 0x01:  # LDX
                mode = op & 0xE0
                if mode == 0xA0:
                    x = 4 * (load(k, 1) & 0x0F)
                elif mode == 0x00:
                    x = k
                else:
                    raise AssertionError(f"ldx mode {mode:#x}")
            elif cls == 0x04:  # ALU
                assert op == 0x54, f"alu {op:#x}"
                a &= k
            elif cls == 0x05:  # JMP
                kind = op & 0xF0
                if kind == 0x00:
                    pc += k
                elif kind == 0x10:
                    pc += jt if a == k else jf
                elif kind == 0x30:
                    pc += jt if a >= k else jf
                else:
                    raise AssertionError(f"jmp {op:#x}")
            elif cls == 0x06:  # RET
                return k
            else:
                raise AssertionError(f"opcode {op:#x}")
    except RejectedError:
        return 0


LOCAL = IPv4Address("10.0.0.1")
PEER = IPv4Address("10.0.0.2")
SUBNET = IPv4Network("10.0.0.0/24")


def settings(vrid: int = 51, version: int = 3) -> InstanceSettings:
    return InstanceSettings(
        name="VI", interface="eth0", vrid=vrid, priority=100, version=version, advert_interval=1.0,
        preempt=True, preempt_delay=0.0,
        vips=(VipSpec(IPv4Interface("10.0.0.100/32")),),
    )


def ip_packet(
    source: IPv4Address,
    destination: IPv4Address,
    payload: bytes,
    *,
    ttl: int = 255,
    protocol: int = 112,
    options: bytes = b"",
) -> bytes:
    ihl = (20 + len(options)) // 4
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x40 | ihl, 0, 20 + len(options) + len(payload), 0, 0, ttl, protocol,
        0, source.packed, destination.packed,
    )
    return header + options + payload


def advert(
    source: IPv4Address, destination: IPv4Address, vrid: int = 51, version: int = 3
) -> bytes:
    return encode_advert(build_advert(settings(vrid, version), 200), source, destination)


MULTICAST = ipv4_advert_filter(vrid=51, version=3, local=LOCAL, source_networks=[SUBNET])


def test_multicast_filter_passes_a_valid_advert_from_the_subnet() -> None:
    packet = ip_packet(PEER, VRRP_MULTICAST_V4, advert(PEER, VRRP_MULTICAST_V4))
    assert run_bpf(MULTICAST, packet) == ACCEPT
    # IP options move the VRRP header: the filter follows the IHL.
    with_options = ip_packet(PEER, VRRP_MULTICAST_V4, advert(PEER, VRRP_MULTICAST_V4),
                             options=b"\x94\x04\x00\x00")
    assert run_bpf(MULTICAST, with_options) == ACCEPT


@pytest.mark.parametrize(
    "packet",
    [
        # TTL 64: crossed a router (RFC 5798 §7.1).
        ip_packet(PEER, VRRP_MULTICAST_V4, advert(PEER, VRRP_MULTICAST_V4), ttl=64),
        # To a unicast address (a VIP) while the instance is multicast.
        ip_packet(PEER, IPv4Address("10.0.0.100"), advert(PEER, VRRP_MULTICAST_V4)),
        # A spoofed source on none of the interface's subnets.
        ip_packet(IPv4Address("159.112.6.161"), VRRP_MULTICAST_V4,
                  advert(IPv4Address("159.112.6.161"), VRRP_MULTICAST_V4)),
        # Another VRID, another version, not an advertisement, another protocol.
        ip_packet(PEER, VRRP_MULTICAST_V4, advert(PEER, VRRP_MULTICAST_V4, vrid=52)),
        ip_packet(PEER, VRRP_MULTICAST_V4, advert(PEER, VRRP_MULTICAST_V4, version=2)),
        ip_packet(PEER, VRRP_MULTICAST_V4, b"\x32" + advert(PEER, VRRP_MULTICAST_V4)[1:]),
        ip_packet(PEER, VRRP_MULTICAST_V4, advert(PEER, VRRP_MULTICAST_V4), protocol=17),
        # Too short to hold a VRRP header: the load past the end drops it.
        ip_packet(PEER, VRRP_MULTICAST_V4, b"\x31"),
        b"\x45\x00",
    ],
    ids=["ttl64", "to_vip", "foreign_source", "vrid", "version", "type", "protocol", "short",
         "no_header"],
)
def test_multicast_filter_drops_what_can_never_be_valid(packet: bytes) -> None:
    assert run_bpf(MULTICAST, packet) == 0


def test_multicast_filter_without_source_networks_accepts_any_source() -> None:
    program = ipv4_advert_filter(vrid=51, version=3, local=LOCAL, source_networks=None)
    foreign = IPv4Address("159.112.6.161")
    packet = ip_packet(foreign, VRRP_MULTICAST_V4, advert(foreign, VRRP_MULTICAST_V4))
    assert run_bpf(program, packet) == ACCEPT


def test_unicast_filter_takes_only_configured_peers_to_our_address_any_ttl() -> None:
    program = ipv4_advert_filter(vrid=51, version=3, local=LOCAL, unicast_peers=[PEER])
    routed = ip_packet(PEER, LOCAL, advert(PEER, LOCAL), ttl=62)
    assert run_bpf(program, routed) == ACCEPT
    stranger = IPv4Address("10.0.0.9")
    assert run_bpf(program, ip_packet(stranger, LOCAL, advert(stranger, LOCAL))) == 0
    # To the group, or to a VIP, while the instance is unicast.
    assert run_bpf(program, ip_packet(PEER, VRRP_MULTICAST_V4, advert(PEER, LOCAL))) == 0
    vip = IPv4Address("10.0.0.100")
    assert run_bpf(program, ip_packet(PEER, vip, advert(PEER, vip))) == 0


def test_ipv6_filter_checks_version_type_and_vrid_of_the_payload() -> None:
    program = ipv6_advert_filter(vrid=7, version=3)
    assert run_bpf(program, bytes([0x31, 7]) + b"\x00" * 6) == ACCEPT
    assert run_bpf(program, bytes([0x31, 8]) + b"\x00" * 6) == 0
    assert run_bpf(program, bytes([0x21, 7]) + b"\x00" * 6) == 0
    assert run_bpf(program, b"\x31") == 0


def test_many_subnets_or_peers_fit_the_jumps_else_the_source_is_left_to_the_machine() -> None:
    last = IPv4Address(f"10.{MAX_SOURCE_NETWORKS - 1}.1.1")
    foreign = IPv4Address("192.0.2.1")
    for count, foreign_passes in ((MAX_SOURCE_NETWORKS, False), (MAX_SOURCE_NETWORKS + 1, True)):
        networks = [IPv4Network(f"10.{i}.0.0/16") for i in range(count)]
        program = ipv4_advert_filter(vrid=1, version=3, local=LOCAL, source_networks=networks)
        ok = ip_packet(last, VRRP_MULTICAST_V4, advert(last, VRRP_MULTICAST_V4, vrid=1))
        assert run_bpf(program, ok) == ACCEPT
        bad = ip_packet(foreign, VRRP_MULTICAST_V4, advert(foreign, VRRP_MULTICAST_V4, vrid=1))
        assert (run_bpf(program, bad) == ACCEPT) is foreign_passes
    peers = [IPv4Address(int(LOCAL) + 1 + i) for i in range(MAX_UNICAST_PEERS)]
    program = ipv4_advert_filter(vrid=1, version=3, local=LOCAL, unicast_peers=peers)
    assert run_bpf(program, ip_packet(peers[-1], LOCAL, advert(peers[-1], LOCAL, vrid=1))) == ACCEPT
