"""Classic BPF receive filters for the raw VRRP sockets (SO_ATTACH_FILTER).

A raw IPPROTO_VRRP socket hears every protocol-112 packet the host receives on
its interface, to the group *and* to any local address (a VIP included). Each
one that reaches Python costs a wakeup, a copy and a parse; a flood of garbage
then starves the advert timer. The kernel can drop in its softirq, for a few
instructions per packet, everything that can never be a valid advert for this
instance, before it is queued on the socket:

- IPv4 protocol other than 112;
- multicast instance: destination other than the group (RFC 5798 §5.1.1.2),
  TTL other than 255 (RFC 5798 §7.1: the same rule the runner applies), source
  on none of the interface's connected subnets (unless allowed);
- unicast instance (keepalived ``unicast_peer``): destination other than our
  own address, source not a configured peer (keepalived
  ``vrrp_check_unicast_src``; TTL not checked, peers may be routed);
- VRRP version / type byte other than ours with type 1 (RFC 5798 §5.2.1-5.2.2);
- VRID other than the instance's (one socket per instance).

The filter is only a cheaper copy of rules whose home is the machine
(``VrrpMachine._check_advert``, ``VrrpMachine.ttl_rule_applies``):
what it lets through is still checked there, so a packet it wrongly accepts
costs CPU, never state. IPv6 raw sockets hand the filter the VRRP payload only
(RFC 3542 §3: no IP header on receive), so the IPv6 program checks version,
type and VRID; hop limit, destination and source stay with the runner.

Pure module: builds bytes (``struct sock_filter`` arrays), no IO.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

__all__ = [
    "ACCEPT",
    "MAX_SOURCE_NETWORKS",
    "MAX_UNICAST_PEERS",
    "Instruction",
    "assemble",
    "ipv4_advert_filter",
    "ipv6_advert_filter",
]

# linux/filter.h / linux/bpf_common.h opcodes.
BPF_LD, BPF_LDX, BPF_ALU, BPF_JMP, BPF_RET = 0x00, 0x01, 0x04, 0x05, 0x06
BPF_W, BPF_H, BPF_B = 0x00, 0x08, 0x10
BPF_ABS, BPF_IND, BPF_MSH, BPF_LEN = 0x20, 0x40, 0xA0, 0x80
BPF_JA, BPF_JEQ, BPF_JGE = 0x00, 0x10, 0x30
BPF_AND = 0x50
BPF_K = 0x00

#: What an accepting program returns: the number of bytes to keep (all of them).
ACCEPT = 0xFFFFFFFF
_IPPROTO_VRRP = 112
_VRRP_TTL = 255
_VRRP_TYPE_ADVERTISEMENT = 1
_GROUP_V4 = int(IPv4Address("224.0.0.18"))
_MAX_JUMP = 255
#: Beyond these counts the conditional jumps would not fit in 8 bits: the kernel
#: filter then leaves the source to the machine's check (still enforced, dearer).
MAX_SOURCE_NETWORKS = 64
MAX_UNICAST_PEERS = 200

#: Jump targets: the next instruction, the two exits, or a named label.
NEXT, DROP, PASS = "next", "drop", "pass"


@dataclass(frozen=True, slots=True)
class Instruction:
    """One ``struct sock_filter`` with symbolic jump targets."""

    code: int
    k: int = 0
    jt: str = NEXT
    jf: str = NEXT
    label: str | None = None


def _ld_abs(size: int, offset: int, label: str | None = None) -> Instruction:
    return Instruction(BPF_LD | size | BPF_ABS, offset, label=label)


def _ld_ind(size: int, offset: int) -> Instruction:
    return Instruction(BPF_LD | size | BPF_IND, offset)


def _jeq(value: int, jt: str = NEXT, jf: str = DROP) -> Instruction:
    return Instruction(BPF_JMP | BPF_JEQ | BPF_K, value, jt, jf)


def assemble(program: Sequence[Instruction]) -> bytes:
    """Resolve labels and pack the program as the kernel's ``sock_filter`` array.

    Two exits are appended: ``pass`` (return :data:`ACCEPT`) and ``drop``
    (return 0). Conditional jumps are forward only and at most 255 ahead
    (the classic BPF encoding); a longer program is a bug and raises.
    """
    body = [*program, Instruction(BPF_RET | BPF_K, ACCEPT, label=PASS)]
    body.append(Instruction(BPF_RET | BPF_K, 0, label=DROP))
    where: dict[str, int] = {}
    for index, instruction in enumerate(body):
        if instruction.label is not None:
            if instruction.label in where:
                raise ValueError(f"bpf: label {instruction.label} defined twice")
            where[instruction.label] = index

    def offset(index: int, target: str) -> int:
        if target == NEXT:
            return 0
        if target not in where:
            raise ValueError(f"bpf: unknown label {target}")
        jump = where[target] - index - 1
        if not 0 <= jump <= _MAX_JUMP:
            raise ValueError(f"bpf: jump to {target} from {index} out of range")
        return jump

    out = bytearray()
    for index, instruction in enumerate(body):
        jt, jf, k = offset(index, instruction.jt), offset(index, instruction.jf), instruction.k
        if instruction.code == BPF_JMP | BPF_JA:
            # An unconditional jump carries its offset in k.
            k, jt, jf = offset(index, instruction.jt), 0, 0
        out += struct.pack("=HBBI", instruction.code, jt, jf, k)
    return bytes(out)


def _vrrp_header(vrid: int, version: int) -> list[Instruction]:
    """Check the VRRP header's first two octets; X holds the IP header length."""
    return [
        _ld_ind(BPF_B, 0),
        _jeq((version << 4) | _VRRP_TYPE_ADVERTISEMENT),
        _ld_ind(BPF_B, 1),
        _jeq(vrid, jt=PASS),
    ]


def ipv4_advert_filter(
    *,
    vrid: int,
    version: int,
    local: IPv4Address,
    unicast_peers: Sequence[IPv4Address] = (),
    source_networks: Sequence[IPv4Network] | None = None,
) -> bytes:
    """The program for a raw IPv4 VRRP socket (the packet starts at the IP header).

    ``unicast_peers`` empty: a multicast instance; ``source_networks`` are the
    interface's connected subnets a multicast advert must come from (None: any
    source, the operator's ``accept_foreign_source``).
    """
    if not 1 <= vrid <= 255 or version not in (2, 3):
        raise ValueError(f"bpf: vrid {vrid} / version {version} out of range")
    if source_networks is not None and len(source_networks) > MAX_SOURCE_NETWORKS:
        source_networks = None
    program = [_ld_abs(BPF_B, 9), _jeq(_IPPROTO_VRRP)]
    if unicast_peers:
        program += [_ld_abs(BPF_W, 16), _jeq(int(local), jt=NEXT)]
        if len(unicast_peers) <= MAX_UNICAST_PEERS:
            program.append(_ld_abs(BPF_W, 12))
            program += [_jeq(int(peer), jt="source_ok", jf=NEXT) for peer in unicast_peers]
            program.append(Instruction(BPF_JMP | BPF_JA, jt=DROP))
    else:
        program += [
            _ld_abs(BPF_B, 8),
            _jeq(_VRRP_TTL),
            _ld_abs(BPF_W, 16),
            _jeq(_GROUP_V4, jt="source_ok" if source_networks is None else NEXT),
        ]
        if source_networks is not None:
            for network in source_networks:
                program.append(_ld_abs(BPF_W, 12))
                program.append(Instruction(BPF_ALU | BPF_AND | BPF_K, int(network.netmask)))
                program.append(_jeq(int(network.network_address), jt="source_ok", jf=NEXT))
            program.append(Instruction(BPF_JMP | BPF_JA, jt=DROP))
    # X = IP header length (4 * IHL), then the VRRP header.
    program.append(Instruction(BPF_LDX | BPF_B | BPF_MSH, 0, label="source_ok"))
    program += _vrrp_header(vrid, version)
    return assemble(program)


def ipv6_advert_filter(*, vrid: int, version: int) -> bytes:
    """The program for a raw IPv6 VRRP socket (the packet starts at the VRRP header)."""
    if not 1 <= vrid <= 255 or version != 3:
        raise ValueError(f"bpf: vrid {vrid} / version {version} out of range for IPv6")
    program = [
        # X = 0: the VRRP header is at offset 0.
        Instruction(BPF_LDX | BPF_W | 0x00, 0),  # ldx #0 (BPF_IMM)
        *_vrrp_header(vrid, version),
    ]
    return assemble(program)
