"""Golden bytes and round trips for haipvs.ipvs.genl, the IPVS genl codec.

Where pyroute2 encodes a message correctly, its bytes are the oracle: both
encoders must produce exactly the same datagram. Where pyroute2 is wrong (IPv6
netmask typed as an IPv4 address, GUE port in host order), the test shows the
bytes the kernel wants next to the pyroute2 hack that happens to produce them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyroute2.netlink.generic import ipvs as gi

from haipvs.ipvs import genl
from haipvs.ipvs.genl import (
    AF_INET,
    AF_INET6,
    NLM_F_ACK,
    NLM_F_DUMP,
    NLM_F_MULTI,
    NLM_F_REQUEST,
    Ack,
    CmdAttr,
    Done,
    GenlMessage,
    IpvsCmd,
    MalformedReplyError,
)
from haipvs.ipvs.model import (
    AddDest,
    AddService,
    DeleteDest,
    DeleteService,
    Dest,
    DestKey,
    DestStats,
    Family,
    Forwarding,
    Protocol,
    SchedFlags,
    Service,
    ServiceKey,
    TunFlags,
    TunType,
    UpdateDest,
    UpdateService,
)

FAMILY = 0x1E  # any dynamic genl id; the adapter resolves the real one
REQ_ACK = NLM_F_REQUEST | NLM_F_ACK


def pyroute2_bytes(cmd: int, attrs: list[tuple[str, Any]], flags: int, seq: int) -> bytes:
    msg = gi.ipvsmsg()
    msg["cmd"] = cmd
    msg["version"] = gi.GENL_VERSION
    msg["attrs"] = attrs
    msg["header"]["type"] = FAMILY
    msg["header"]["flags"] = flags
    msg["header"]["sequence_number"] = seq
    msg.encode()
    return bytes(msg.data)


def pyroute2_decode(data: bytes) -> Any:
    msg = gi.ipvsmsg(data)
    msg.decode()
    return msg


def v4(text: str) -> bytes:
    return socket.inet_pton(AF_INET, text)


def v6(text: str) -> bytes:
    return socket.inet_pton(AF_INET6, text)


def one(data: bytes) -> GenlMessage:
    (msg,) = genl.parse_messages(data)
    assert isinstance(msg, GenlMessage)
    return msg


# --------------------------------------------------------------------------
# Golden bytes against pyroute2's encoder


def test_new_tcp_service_matches_pyroute2() -> None:
    key = genl.encode_service_key_attrs(AF_INET, socket.IPPROTO_TCP, v4("198.51.100.10"), 80, 0)
    attrs = genl.encode_service_attrs(
        key, af=AF_INET, scheduler="wlc", flags=0x1, flags_mask=0xFFFFFFFF, timeout=300, netmask=24
    )
    ours = genl.encode_request(FAMILY, IpvsCmd.NEW_SERVICE, REQ_ACK, 7, genl.nla(1, attrs))
    theirs = pyroute2_bytes(
        gi.IPVS_CMD_NEW_SERVICE,
        [
            (
                "IPVS_CMD_ATTR_SERVICE",
                {
                    "attrs": [
                        ("IPVS_SVC_ATTR_AF", AF_INET),
                        ("IPVS_SVC_ATTR_PROTOCOL", socket.IPPROTO_TCP),
                        ("IPVS_SVC_ATTR_ADDR", "198.51.100.10"),
                        ("IPVS_SVC_ATTR_PORT", 80),
                        ("IPVS_SVC_ATTR_SCHED_NAME", "wlc"),
                        ("IPVS_SVC_ATTR_FLAGS", {"flags": 1, "mask": 0xFFFFFFFF}),
                        ("IPVS_SVC_ATTR_TIMEOUT", 300),
                        ("IPVS_SVC_ATTR_NETMASK", "255.255.255.0"),
                    ]
                },
            )
        ],
        REQ_ACK,
        7,
    )
    assert ours == theirs


def test_ipv6_netmask_is_a_host_order_prefix_length() -> None:
    # pyroute2 types NETMASK as ip4addr, so /64 has to be spelled '64.0.0.0'
    # (notes Q4); the kernel reads a host-order u32 prefix length.
    key = genl.encode_service_key_attrs(AF_INET6, socket.IPPROTO_UDP, v6("2001:db8::10"), 53, 0)
    attrs = genl.encode_service_attrs(
        key, af=AF_INET6, scheduler="sh", flags=0x18, flags_mask=0xFFFFFFFF, timeout=0, netmask=64
    )
    ours = genl.encode_request(FAMILY, IpvsCmd.NEW_SERVICE, REQ_ACK, 1, genl.nla(1, attrs))
    hack = "64.0.0.0" if struct.pack("=I", 1)[0] == 1 else "0.0.0.64"
    theirs = pyroute2_bytes(
        gi.IPVS_CMD_NEW_SERVICE,
        [
            (
                "IPVS_CMD_ATTR_SERVICE",
                {
                    "attrs": [
                        ("IPVS_SVC_ATTR_AF", AF_INET6),
                        ("IPVS_SVC_ATTR_PROTOCOL", socket.IPPROTO_UDP),
                        ("IPVS_SVC_ATTR_ADDR", "2001:db8::10"),
                        ("IPVS_SVC_ATTR_PORT", 53),
                        ("IPVS_SVC_ATTR_SCHED_NAME", "sh"),
                        ("IPVS_SVC_ATTR_FLAGS", {"flags": 0x18, "mask": 0xFFFFFFFF}),
                        ("IPVS_SVC_ATTR_TIMEOUT", 0),
                        ("IPVS_SVC_ATTR_NETMASK", hack),
                    ]
                },
            )
        ],
        REQ_ACK,
        1,
    )
    assert ours == theirs
    assert struct.pack("=I", 64) in ours


def test_fwmark_service_key_is_af_and_mark_only() -> None:
    key = genl.encode_service_key_attrs(AF_INET, 0, b"", 0, 100)
    ours = genl.encode_request(FAMILY, IpvsCmd.DEL_SERVICE, REQ_ACK, 3, genl.nla(1, key))
    theirs = pyroute2_bytes(
        gi.IPVS_CMD_DEL_SERVICE,
        [
            (
                "IPVS_CMD_ATTR_SERVICE",
                {"attrs": [("IPVS_SVC_ATTR_AF", AF_INET), ("IPVS_SVC_ATTR_FWMARK", 100)]},
            )
        ],
        REQ_ACK,
        3,
    )
    assert ours == theirs


def test_new_nat_dest_matches_pyroute2() -> None:
    svc = genl.encode_service_key_attrs(AF_INET, socket.IPPROTO_TCP, v4("198.51.100.10"), 80, 0)
    dkey = genl.encode_dest_key_attrs(AF_INET, v4("10.0.0.11"), 8080)
    dest = genl.encode_dest_attrs(dkey, forwarding=0, weight=5, u_thresh=100, l_thresh=10)
    ours = genl.encode_request(
        FAMILY,
        IpvsCmd.NEW_DEST,
        REQ_ACK,
        11,
        genl.nla(CmdAttr.SERVICE, svc) + genl.nla(CmdAttr.DEST, dest),
    )
    theirs = pyroute2_bytes(
        gi.IPVS_CMD_NEW_DEST,
        [
            (
                "IPVS_CMD_ATTR_SERVICE",
                {
                    "attrs": [
                        ("IPVS_SVC_ATTR_AF", AF_INET),
                        ("IPVS_SVC_ATTR_PROTOCOL", socket.IPPROTO_TCP),
                        ("IPVS_SVC_ATTR_ADDR", "198.51.100.10"),
                        ("IPVS_SVC_ATTR_PORT", 80),
                    ]
                },
            ),
            (
                "IPVS_CMD_ATTR_DEST",
                {
                    "attrs": [
                        ("IPVS_DEST_ATTR_ADDR", "10.0.0.11"),
                        ("IPVS_DEST_ATTR_PORT", 8080),
                        ("IPVS_DEST_ATTR_ADDR_FAMILY", AF_INET),
                        ("IPVS_DEST_ATTR_FWD_METHOD", 0),
                        ("IPVS_DEST_ATTR_WEIGHT", 5),
                        ("IPVS_DEST_ATTR_U_THRESH", 100),
                        ("IPVS_DEST_ATTR_L_THRESH", 10),
                    ]
                },
            ),
        ],
        REQ_ACK,
        11,
    )
    assert ours == theirs


def test_gue_tunnel_port_is_big_endian() -> None:
    # pyroute2 declares TUN_PORT uint16 (host order): 6080 would land as 49175
    # (notes Q3); its bytes only match ours with socket.htons().
    svc = genl.encode_service_key_attrs(AF_INET6, 0, b"", 0, 7)
    dkey = genl.encode_dest_key_attrs(AF_INET, v4("10.0.0.12"), 0)
    dest = genl.encode_dest_attrs(
        dkey, forwarding=2, weight=1, u_thresh=0, l_thresh=0, tun_type=1, tun_port=6080, tun_flags=1
    )
    ours = genl.encode_request(
        FAMILY,
        IpvsCmd.SET_DEST,
        REQ_ACK,
        12,
        genl.nla(CmdAttr.SERVICE, svc) + genl.nla(CmdAttr.DEST, dest),
    )
    theirs = pyroute2_bytes(
        gi.IPVS_CMD_SET_DEST,
        [
            (
                "IPVS_CMD_ATTR_SERVICE",
                {"attrs": [("IPVS_SVC_ATTR_AF", AF_INET6), ("IPVS_SVC_ATTR_FWMARK", 7)]},
            ),
            (
                "IPVS_CMD_ATTR_DEST",
                {
                    "attrs": [
                        ("IPVS_DEST_ATTR_ADDR", "10.0.0.12"),
                        ("IPVS_DEST_ATTR_PORT", 0),
                        ("IPVS_DEST_ATTR_ADDR_FAMILY", AF_INET),
                        ("IPVS_DEST_ATTR_FWD_METHOD", 2),
                        ("IPVS_DEST_ATTR_WEIGHT", 1),
                        ("IPVS_DEST_ATTR_U_THRESH", 0),
                        ("IPVS_DEST_ATTR_L_THRESH", 0),
                        ("IPVS_DEST_ATTR_TUN_TYPE", 1),
                        ("IPVS_DEST_ATTR_TUN_PORT", socket.htons(6080)),
                        ("IPVS_DEST_ATTR_TUN_FLAGS", 1),
                    ]
                },
            ),
        ],
        REQ_ACK,
        12,
    )
    assert ours == theirs
    assert b"\x17\xc0" in ours  # 6080 = 0x17c0, network order on the wire


def test_timeouts_match_the_typed_pyroute2_layout() -> None:
    ours = genl.encode_request(
        FAMILY, IpvsCmd.SET_CONFIG, REQ_ACK, 4, genl.encode_timeouts(900, 120, 300)
    )
    # The stock class types the timeouts as 'hex' (notes Q8): packed u32s.
    theirs = pyroute2_bytes(
        gi.IPVS_CMD_SET_CONFIG,
        [
            ("IPVS_CMD_ATTR_TIMEOUT_TCP", struct.pack("=I", 900)),
            ("IPVS_CMD_ATTR_TIMEOUT_TCP_FIN", struct.pack("=I", 120)),
            ("IPVS_CMD_ATTR_TIMEOUT_UDP", struct.pack("=I", 300)),
        ],
        REQ_ACK,
        4,
    )
    assert ours == theirs


def test_dump_and_bare_commands_have_no_attributes() -> None:
    dump = genl.encode_request(FAMILY, IpvsCmd.GET_SERVICE, NLM_F_REQUEST | NLM_F_DUMP, 9)
    assert dump == pyroute2_bytes(gi.IPVS_CMD_GET_SERVICE, [], NLM_F_REQUEST | NLM_F_DUMP, 9)
    flush = genl.encode_request(FAMILY, IpvsCmd.FLUSH, REQ_ACK, 10)
    assert flush == pyroute2_bytes(gi.IPVS_CMD_FLUSH, [], REQ_ACK, 10)
    assert len(flush) == 20


def test_daemon_attrs_layout() -> None:
    attrs = genl.encode_daemon_attrs(
        1,
        interface="sync0",
        syncid=7,
        mcast_group=v4("224.0.0.81"),
        mcast_port=8848,
        mcast_ttl=2,
    )
    msg = genl.encode_request(FAMILY, IpvsCmd.NEW_DAEMON, REQ_ACK, 5, attrs)
    decoded = pyroute2_decode(msg)
    raw = bytes.fromhex(decoded.get_attr("IPVS_CMD_ATTR_DAEMON").replace(":", ""))
    # Walk the nested attributes by hand: type -> payload.
    found: dict[int, bytes] = {}
    offset = 0
    while offset < len(raw):
        length, attr_type = struct.unpack_from("=HH", raw, offset)
        found[attr_type] = raw[offset + 4 : offset + length]
        offset += (length + 3) & ~3
    assert found == {
        1: struct.pack("=I", 1),
        2: b"sync0\0",
        3: struct.pack("=I", 7),
        5: v4("224.0.0.81"),
        7: struct.pack("=H", 8848),  # host order, as ip_vs_genl_new_daemon reads it
        8: b"\x02",
    }
    stop = genl.encode_daemon_attrs(2)
    assert stop == genl.nla(CmdAttr.DAEMON, genl.nla(1, struct.pack("=I", 2)))


def test_get_family_request_and_reply() -> None:
    req = genl.encode_get_family(1)
    assert req[4:6] == struct.pack("=H", genl.GENL_ID_CTRL)
    assert b"IPVS\0" in req
    reply_attrs = genl.nla(1, struct.pack("=H", 0x23)) + genl.nla(2, b"IPVS\0")
    reply = genl.encode_request(genl.GENL_ID_CTRL, 1, 0, 1, reply_attrs, version=2)
    assert genl.decode_family_id(one(reply)) == 0x23


# --------------------------------------------------------------------------
# Our encoder, read back by pyroute2's decoder


def test_pyroute2_decodes_our_service_and_dest() -> None:
    svc = genl.encode_service_key_attrs(AF_INET6, socket.IPPROTO_SCTP, v6("2001:db8::1"), 443, 0)
    dkey = genl.encode_dest_key_attrs(AF_INET6, v6("2001:db8::11"), 8443)
    dest = genl.encode_dest_attrs(dkey, forwarding=3, weight=7, u_thresh=0, l_thresh=0)
    msg = genl.encode_request(
        FAMILY,
        IpvsCmd.NEW_DEST,
        REQ_ACK,
        1,
        genl.nla(CmdAttr.SERVICE, svc) + genl.nla(CmdAttr.DEST, dest),
    )
    decoded = pyroute2_decode(msg)
    s = decoded.get_attr("IPVS_CMD_ATTR_SERVICE")
    d = decoded.get_attr("IPVS_CMD_ATTR_DEST")
    assert s.get_attr("IPVS_SVC_ATTR_ADDR") == "2001:db8::1"
    assert s.get_attr("IPVS_SVC_ATTR_PORT") == 443
    assert s.get_attr("IPVS_SVC_ATTR_PROTOCOL") == socket.IPPROTO_SCTP
    assert d.get_attr("IPVS_DEST_ATTR_ADDR") == "2001:db8::11"
    assert d.get_attr("IPVS_DEST_ATTR_PORT") == 8443
    assert d.get_attr("IPVS_DEST_ATTR_FWD_METHOD") == 3
    assert d.get_attr("IPVS_DEST_ATTR_WEIGHT") == 7


# --------------------------------------------------------------------------
# Decoding kernel-shaped replies


def kernel_service_reply(
    seq: int,
    *,
    af: int = AF_INET,
    address: bytes = b"",
    port: int = 80,
    protocol: int = socket.IPPROTO_TCP,
    fwmark: int = 0,
    scheduler: str = "wlc",
    flags: int = 0,
    timeout: int = 0,
    netmask: int = 32,
    pe_name: str | None = None,
    stats64: tuple[int, ...] | None = None,
) -> bytes:
    """A NEW_SERVICE message laid out as ip_vs_genl_fill_service does."""
    inner = genl.nla(1, struct.pack("=H", af))
    if fwmark:
        inner += genl.nla(5, struct.pack("=I", fwmark))
    else:
        inner += genl.nla(2, struct.pack("=H", protocol))
        inner += genl.nla(3, address.ljust(16, b"\0"))  # the kernel sends all 16 bytes
        inner += genl.nla(4, struct.pack("!H", port))
    inner += genl.nla(6, scheduler.encode() + b"\0")
    if pe_name is not None:
        inner += genl.nla(11, pe_name.encode() + b"\0")
    inner += genl.nla(7, struct.pack("=II", flags | 0x2, 0xFFFFFFFF))  # HASHED set
    inner += genl.nla(8, struct.pack("=I", timeout))
    inner += genl.nla(9, genl.netmask_bytes(af, netmask))
    if stats64 is not None:
        st = b"".join(
            genl.nla(11, b"") + genl.nla(i + 1, struct.pack("=Q", v)) for i, v in enumerate(stats64)
        )
        inner += genl.nla(12, st)
    return genl.encode_request(
        FAMILY, IpvsCmd.NEW_SERVICE, NLM_F_MULTI, seq, genl.nla(CmdAttr.SERVICE, inner)
    )


def test_decode_kernel_service_drops_hashed_flag_and_reads_16_byte_address() -> None:
    data = kernel_service_reply(
        3,
        address=v4("198.51.100.10"),
        flags=0x1,
        timeout=300,
        netmask=24,
        stats64=(1, 2, 3, 4, 5, 6, 7, 8, 9, 10),
    )
    rec = genl.decode_service(one(data), with_stats=True)
    assert rec == genl.ServiceRecord(
        af=AF_INET,
        protocol=socket.IPPROTO_TCP,
        address=v4("198.51.100.10"),
        port=80,
        fwmark=0,
        scheduler="wlc",
        flags=0x1,
        timeout=300,
        netmask=24,
        pe_name="",
        stats=genl.IpvsStats(1, 2, 3, 4, 5, 6, 7, 8, 9, 10),
    )


def test_decode_fwmark_v6_service_with_pe() -> None:
    data = kernel_service_reply(4, af=AF_INET6, fwmark=42, netmask=64, pe_name="sip")
    rec = genl.decode_service(one(data))
    assert (rec.af, rec.fwmark, rec.address, rec.netmask, rec.pe_name) == (
        AF_INET6,
        42,
        b"",
        64,
        "sip",
    )
    assert rec.stats is None


def test_decode_dest_from_a_pyroute2_encoded_kernel_reply() -> None:
    data = pyroute2_bytes(
        gi.IPVS_CMD_NEW_DEST,
        [
            (
                "IPVS_CMD_ATTR_DEST",
                {
                    "attrs": [
                        ("IPVS_DEST_ATTR_ADDR_FAMILY", AF_INET),
                        ("IPVS_DEST_ATTR_ADDR", "10.0.0.11"),
                        ("IPVS_DEST_ATTR_PORT", 80),
                        ("IPVS_DEST_ATTR_FWD_METHOD", 2),
                        ("IPVS_DEST_ATTR_WEIGHT", 3),
                        ("IPVS_DEST_ATTR_TUN_TYPE", 2),
                        ("IPVS_DEST_ATTR_TUN_PORT", 0),
                        ("IPVS_DEST_ATTR_TUN_FLAGS", 1),
                        ("IPVS_DEST_ATTR_U_THRESH", 100),
                        ("IPVS_DEST_ATTR_L_THRESH", 10),
                        ("IPVS_DEST_ATTR_ACTIVE_CONNS", 4),
                        ("IPVS_DEST_ATTR_INACT_CONNS", 5),
                        ("IPVS_DEST_ATTR_PERSIST_CONNS", 6),
                        (
                            "IPVS_DEST_ATTR_STATS",
                            {"attrs": [("IPVS_STATS_ATTR_CONNS", 9)]},
                        ),
                    ]
                },
            )
        ],
        NLM_F_MULTI,
        8,
    )
    rec = genl.decode_dest(one(data), AF_INET, with_stats=True)
    assert rec == genl.DestRecord(
        af=AF_INET,
        address=v4("10.0.0.11"),
        port=80,
        forwarding=2,
        weight=3,
        u_thresh=100,
        l_thresh=10,
        active_conns=4,
        inactive_conns=5,
        persist_conns=6,
        tun_type=2,
        tun_port=0,
        tun_flags=1,
        stats=genl.IpvsStats(conns=9),
    )


def test_acks_errors_and_done_in_one_datagram() -> None:
    ok = struct.pack("=IHHII", 36, 2, 0x100, 1, 0) + struct.pack("=i", 0) + b"\0" * 16
    eexist = struct.pack("=IHHII", 36, 2, 0x100, 2, 0) + struct.pack("=i", -17) + b"\0" * 16
    done = struct.pack("=IHHII", 20, 3, NLM_F_MULTI, 3, 0) + b"\0" * 4
    assert genl.parse_messages(ok + eexist + done) == [Ack(1, 0), Ack(2, 17), Done(3)]


def test_config_info_and_daemon_replies() -> None:
    cfg = genl.encode_request(FAMILY, IpvsCmd.SET_CONFIG, 0, 1, genl.encode_timeouts(7200, 60, 180))
    assert genl.decode_config(one(cfg)) == genl.Timeouts(7200, 60, 180)
    info = genl.encode_request(
        FAMILY,
        IpvsCmd.SET_INFO,
        0,
        2,
        genl.nla(1, struct.pack("=I", 0x010201)) + genl.nla(2, struct.pack("=I", 4096)),
    )
    decoded = genl.decode_info(one(info))
    assert (decoded.version_string, decoded.conn_tab_size) == ("1.2.1", 4096)
    daemon = genl.encode_request(
        FAMILY,
        IpvsCmd.NEW_DAEMON,
        NLM_F_MULTI,
        3,
        genl.encode_daemon_attrs(
            2,
            interface="eth1",
            syncid=9,
            sync_maxlen=1472,
            mcast_group=v4("224.0.0.81"),
            mcast_port=8848,
            mcast_ttl=1,
        ),
    )
    assert genl.decode_daemon(one(daemon)) == genl.DaemonInfo(
        state=2,
        interface="eth1",
        syncid=9,
        sync_maxlen=1472,
        mcast_group=v4("224.0.0.81"),
        mcast_port=8848,
        mcast_ttl=1,
    )


# --------------------------------------------------------------------------
# Our misuse raises ValueError; the kernel's garbage raises MalformedReplyError


def test_misuse_raises_value_error() -> None:
    with pytest.raises(ValueError, match="bytes for family"):
        genl.encode_service_key_attrs(AF_INET, 6, v6("2001:db8::1"), 80, 0)
    with pytest.raises(ValueError, match="longer than 15"):
        genl.encode_service_attrs(
            b"", af=AF_INET, scheduler="x" * 16, flags=0, flags_mask=0, timeout=0, netmask=32
        )
    with pytest.raises(ValueError, match="netmask"):
        genl.netmask_bytes(AF_INET6, 0)
    with pytest.raises(ValueError, match="weight"):
        genl.encode_dest_attrs(b"", forwarding=0, weight=-1, u_thresh=0, l_thresh=0)


def test_truncated_reply_is_malformed() -> None:
    data = kernel_service_reply(1, address=v4("192.0.2.1"))
    with pytest.raises(MalformedReplyError):
        genl.parse_messages(data[:-8] + struct.pack("=I", 0))
    cut = bytearray(data)
    struct.pack_into("=I", cut, 0, len(data) + 4)
    with pytest.raises(MalformedReplyError):
        genl.parse_messages(bytes(cut))


def test_service_without_scheduler_is_malformed() -> None:
    inner = genl.nla(1, struct.pack("=H", AF_INET)) + genl.nla(5, struct.pack("=I", 3))
    data = genl.encode_request(FAMILY, IpvsCmd.NEW_SERVICE, 0, 1, genl.nla(1, inner))
    with pytest.raises(MalformedReplyError):
        genl.decode_service(one(data))


def test_non_contiguous_v4_netmask_is_malformed() -> None:
    data = bytearray(kernel_service_reply(1, address=v4("192.0.2.1"), netmask=24))
    mask = v4("255.255.255.0")
    at = bytes(data).rindex(mask)
    data[at : at + 4] = v4("255.0.255.0")
    with pytest.raises(MalformedReplyError, match="netmask"):
        genl.decode_service(one(bytes(data)))


# --------------------------------------------------------------------------
# Property tests

addresses_v4 = st.binary(min_size=4, max_size=4)
addresses_v6 = st.binary(min_size=16, max_size=16)
schedulers = st.sampled_from(
    ["rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh", "fo", "ovf"]
)


@st.composite
def services(draw: st.DrawFn) -> dict[str, Any]:
    af = draw(st.sampled_from([AF_INET, AF_INET6]))
    fwmark = draw(st.one_of(st.just(0), st.integers(1, 2**32 - 1)))
    return {
        "af": af,
        "protocol": 0 if fwmark else draw(st.sampled_from([6, 17, 132])),
        "address": b"" if fwmark else draw(addresses_v4 if af == AF_INET else addresses_v6),
        "port": 0 if fwmark else draw(st.integers(0, 65535)),
        "fwmark": fwmark,
        "scheduler": draw(schedulers),
        "flags": draw(st.sampled_from([0, 1, 4, 8, 0x18, 0x39])),
        "timeout": draw(st.integers(0, 2**32 - 1)),
        "netmask": draw(st.integers(0, 32) if af == AF_INET else st.integers(1, 128)),
    }


@given(services())
def test_service_round_trip(svc: dict[str, Any]) -> None:
    key = genl.encode_service_key_attrs(
        svc["af"], svc["protocol"], svc["address"], svc["port"], svc["fwmark"]
    )
    attrs = genl.encode_service_attrs(
        key,
        af=svc["af"],
        scheduler=svc["scheduler"],
        flags=svc["flags"],
        flags_mask=0xFFFFFFFF,
        timeout=svc["timeout"],
        netmask=svc["netmask"],
    )
    data = genl.encode_request(FAMILY, IpvsCmd.NEW_SERVICE, NLM_F_MULTI, 1, genl.nla(1, attrs))
    rec = genl.decode_service(one(data))
    assert rec == genl.ServiceRecord(pe_name="", stats=None, **svc)


@given(
    af=st.sampled_from([AF_INET, AF_INET6]),
    data=st.data(),
    port=st.integers(0, 65535),
    forwarding=st.sampled_from([0, 2, 3]),
    weight=st.integers(0, 2**31 - 1),
    u_thresh=st.integers(0, 2**32 - 1),
    l_thresh=st.integers(0, 2**32 - 1),
    tun=st.one_of(
        st.none(), st.tuples(st.integers(0, 2), st.integers(0, 65535), st.integers(0, 3))
    ),
)
def test_dest_round_trip(
    af: int,
    data: st.DataObject,
    port: int,
    forwarding: int,
    weight: int,
    u_thresh: int,
    l_thresh: int,
    tun: tuple[int, int, int] | None,
) -> None:
    address = data.draw(addresses_v4 if af == AF_INET else addresses_v6)
    key = genl.encode_dest_key_attrs(af, address, port)
    tun_type, tun_port, tun_flags = tun if tun is not None else (None, 0, 0)
    attrs = genl.encode_dest_attrs(
        key,
        forwarding=forwarding,
        weight=weight,
        u_thresh=u_thresh,
        l_thresh=l_thresh,
        tun_type=tun_type,
        tun_port=tun_port,
        tun_flags=tun_flags,
    )
    raw = genl.encode_request(FAMILY, IpvsCmd.NEW_DEST, NLM_F_MULTI, 1, genl.nla(2, attrs))
    rec = genl.decode_dest(one(raw), AF_INET6)
    assert rec == genl.DestRecord(
        af=af,
        address=address,
        port=port,
        forwarding=forwarding,
        weight=weight,
        u_thresh=u_thresh,
        l_thresh=l_thresh,
        active_conns=0,
        inactive_conns=0,
        persist_conns=0,
        tun_type=tun_type or 0,
        tun_port=tun_port,
        tun_flags=tun_flags,
        stats=None,
    )


@given(st.binary(max_size=200))
def test_garbage_raises_only_malformed_reply(blob: bytes) -> None:
    try:
        replies = genl.parse_messages(blob)
    except MalformedReplyError:
        return
    for reply in replies:
        if isinstance(reply, GenlMessage):
            for decode in (
                lambda m: genl.decode_service(m, with_stats=True),
                lambda m: genl.decode_dest(m, AF_INET, with_stats=True),
                genl.decode_config,
                genl.decode_daemon,
                genl.decode_info,
            ):
                with contextlib.suppress(MalformedReplyError):
                    decode(reply)


@given(st.binary(min_size=20, max_size=300), st.integers(0x10, 0xFFFF))
def test_garbage_inside_a_valid_header_raises_only_malformed_reply(
    payload: bytes, msg_type: int
) -> None:
    data = struct.pack("=IHHII", 16 + len(payload), msg_type, 0, 1, 0) + payload
    try:
        replies = genl.parse_messages(data)
    except MalformedReplyError:
        return
    for reply in replies:
        if isinstance(reply, GenlMessage):
            for decode in (
                lambda m: genl.decode_service(m, with_stats=True),
                lambda m: genl.decode_dest(m, AF_INET, with_stats=True),
                genl.decode_daemon,
            ):
                with contextlib.suppress(MalformedReplyError):
                    decode(reply)


# --------------------------------------------------------------------------
# The model layer: ops encode to the right command; dumps decode to equal values


WEB = ServiceKey.tcp("198.51.100.10", 80)
RS1 = DestKey("10.0.0.11", 80)


def as_reply(request: bytes) -> GenlMessage:
    """The request's attributes seen as a dump reply (same nested layout)."""
    return one(request)


@pytest.mark.parametrize(
    ("op", "cmd", "flags"),
    [
        (AddService(Service(WEB)), IpvsCmd.NEW_SERVICE, REQ_ACK),
        (UpdateService(Service(WEB, scheduler="rr")), IpvsCmd.SET_SERVICE, REQ_ACK),
        (DeleteService(WEB), IpvsCmd.DEL_SERVICE, REQ_ACK),
        (AddDest(WEB, Dest(RS1)), IpvsCmd.NEW_DEST, REQ_ACK),
        (UpdateDest(WEB, Dest(RS1, weight=0)), IpvsCmd.SET_DEST, REQ_ACK),
        (DeleteDest(WEB, RS1), IpvsCmd.DEL_DEST, REQ_ACK),
    ],
)
def test_each_op_maps_to_its_command_never_update_to_delete(
    op: Any, cmd: IpvsCmd, flags: int
) -> None:
    data = genl.encode_op(FAMILY, 5, op)
    length, msg_type, got_flags, seq, _ = struct.unpack_from("=IHHII", data)
    assert (length, msg_type, got_flags, seq, data[16]) == (len(data), FAMILY, flags, 5, cmd)
    assert genl.encode_op(FAMILY, 5, op, ack=False)[6:8] == struct.pack("=H", NLM_F_REQUEST)


def test_delete_ops_send_only_keys() -> None:
    delete = genl.encode_op(FAMILY, 1, DeleteDest(WEB, RS1))
    decoded = pyroute2_decode(delete)
    d = decoded.get_attr("IPVS_CMD_ATTR_DEST")
    assert [name for name, _ in d["attrs"]] == [
        "IPVS_DEST_ATTR_ADDR",
        "IPVS_DEST_ATTR_PORT",
        "IPVS_DEST_ATTR_ADDR_FAMILY",
    ]
    s = pyroute2_decode(genl.encode_op(FAMILY, 1, DeleteService(WEB))).get_attr(
        "IPVS_CMD_ATTR_SERVICE"
    )
    assert [name for name, _ in s["attrs"]] == [
        "IPVS_SVC_ATTR_AF",
        "IPVS_SVC_ATTR_PROTOCOL",
        "IPVS_SVC_ATTR_ADDR",
        "IPVS_SVC_ATTR_PORT",
    ]


def test_persistent_service_sets_the_flag_and_pyroute2_agrees() -> None:
    svc = Service(WEB, scheduler="wlc", persistence_timeout=300, persistence_netmask=24)
    decoded = pyroute2_decode(genl.encode_op(FAMILY, 1, AddService(svc)))
    s = decoded.get_attr("IPVS_CMD_ATTR_SERVICE")
    assert s.get_attr("IPVS_SVC_ATTR_FLAGS")["flags"] == 0x1
    assert s.get_attr("IPVS_SVC_ATTR_TIMEOUT") == 300
    assert s.get_attr("IPVS_SVC_ATTR_NETMASK") == "255.255.255.0"


def test_tunnel_attrs_only_for_tunnel_dests() -> None:
    nat = pyroute2_decode(genl.encode_op(FAMILY, 1, AddDest(WEB, Dest(RS1))))
    names = [n for n, _ in nat.get_attr("IPVS_CMD_ATTR_DEST")["attrs"]]
    assert "IPVS_DEST_ATTR_TUN_TYPE" not in names
    gue = Dest(
        RS1,
        forwarding=Forwarding.TUNNEL,
        tun_type=TunType.GUE,
        tun_port=6080,
        tun_flags=TunFlags.CSUM,
    )
    tun = pyroute2_decode(genl.encode_op(FAMILY, 1, AddDest(WEB, gue)))
    d = tun.get_attr("IPVS_CMD_ATTR_DEST")
    assert d.get_attr("IPVS_DEST_ATTR_TUN_TYPE") == 1
    assert socket.ntohs(d.get_attr("IPVS_DEST_ATTR_TUN_PORT")) == 6080
    assert d.get_attr("IPVS_DEST_ATTR_TUN_FLAGS") == 1


def test_dump_requests() -> None:
    dump = genl.encode_dump_services(FAMILY, 3)
    assert struct.unpack_from("=HH", dump, 4) == (FAMILY, NLM_F_REQUEST | NLM_F_DUMP)
    dests = genl.encode_dump_dests(FAMILY, 4, ServiceKey.for_fwmark(9, Family.INET6))
    s = pyroute2_decode(dests).get_attr("IPVS_CMD_ATTR_SERVICE")
    assert (s.get_attr("IPVS_SVC_ATTR_AF"), s.get_attr("IPVS_SVC_ATTR_FWMARK")) == (AF_INET6, 9)
    assert dests[16] == IpvsCmd.GET_DEST


def test_decoded_service_ignores_timeout_without_persistent_flag() -> None:
    # The kernel reports the timeout it stored even when PERSISTENT is off; only the
    # flag makes a service persistent (notes Q10), so the model keeps 0.
    data = kernel_service_reply(1, address=v4("198.51.100.10"), flags=0, timeout=360)
    assert genl.decode_service_value(one(data)) == Service(WEB)


def test_decoded_dest_drops_meaningless_tunnel_fields() -> None:
    dkey = genl.encode_dest_key_attrs(AF_INET, v4("10.0.0.11"), 80)
    attrs = genl.encode_dest_attrs(
        dkey, forwarding=0, weight=2, u_thresh=0, l_thresh=0, tun_type=2, tun_port=9, tun_flags=1
    )
    data = genl.encode_request(FAMILY, IpvsCmd.NEW_DEST, NLM_F_MULTI, 1, genl.nla(2, attrs))
    dest, stats = genl.decode_dest_value(one(data), Family.INET)
    assert dest == Dest(RS1, weight=2)
    assert stats == DestStats()


def test_unknown_protocol_in_a_dump_is_malformed() -> None:
    data = kernel_service_reply(1, address=v4("198.51.100.10"), protocol=47)
    with pytest.raises(MalformedReplyError, match="protocol 47"):
        genl.decode_service_value(one(data))


ipv4_text = st.ip_addresses(v=4).map(str)
ipv6_text = st.ip_addresses(v=6).map(str)


@st.composite
def model_services(draw: st.DrawFn) -> Service:
    family = draw(st.sampled_from([Family.INET, Family.INET6]))
    if draw(st.booleans()):
        key = ServiceKey.for_fwmark(draw(st.integers(1, 2**32 - 1)), family)
    else:
        address = draw(ipv4_text if family is Family.INET else ipv6_text)
        key = ServiceKey(
            draw(st.sampled_from(list(Protocol))), address, draw(st.integers(0, 65535))
        )
    scheduler = draw(schedulers)
    flags = SchedFlags(one_packet=draw(st.booleans()))
    if scheduler == "sh":
        flags = SchedFlags(sh_fallback=draw(st.booleans()), sh_port=draw(st.booleans()))
    elif scheduler == "mh":
        flags = SchedFlags(mh_fallback=draw(st.booleans()), mh_port=draw(st.booleans()))
    full = 32 if key.family is Family.INET else 128
    return Service(
        key,
        scheduler=scheduler,
        flags=flags,
        persistence_timeout=draw(st.integers(0, 2**32 - 1)),
        persistence_netmask=draw(st.integers(0 if full == 32 else 1, full)),
    )


@st.composite
def model_dests(draw: st.DrawFn) -> Dest:
    address = draw(st.one_of(ipv4_text, ipv6_text))
    key = DestKey(address, draw(st.integers(0, 65535)))
    forwarding = draw(st.sampled_from(list(Forwarding)))
    u_thresh = draw(st.integers(0, 2**32 - 1))
    base = Dest(
        key,
        weight=draw(st.integers(0, 2**31 - 1)),
        forwarding=forwarding,
        u_thresh=u_thresh,
        l_thresh=draw(st.integers(0, u_thresh)),
    )
    if forwarding is not Forwarding.TUNNEL:
        return base
    tun_type = draw(st.sampled_from(list(TunType)))
    return dataclasses.replace(
        base,
        tun_type=tun_type,
        tun_port=draw(st.integers(1, 65535)) if tun_type is TunType.GUE else 0,
        tun_flags=TunFlags(draw(st.integers(0, 3))),
    )


@given(model_services())
def test_model_service_round_trip(service: Service) -> None:
    for op in (AddService(service), UpdateService(service)):
        assert genl.decode_service_value(as_reply(genl.encode_op(FAMILY, 1, op))) == service


@given(model_services(), model_dests())
def test_model_dest_round_trip(service: Service, dest: Dest) -> None:
    for op in (AddDest(service.key, dest), UpdateDest(service.key, dest)):
        decoded, stats = genl.decode_dest_value(
            as_reply(genl.encode_op(FAMILY, 1, op)), service.key.family
        )
        assert decoded == dest
        assert stats == DestStats()


# --------------------------------------------------------------------------
# Captured from Debian's 6.1 kernel in the lab (the attributes after the genl header of
# one GET_SERVICE / GET_DEST dump reply each): golden bytes for the decoders.

KERNEL_DEST_MASQ = bytes.fromhex(
    "7c010200140001000a00000b0000000000000000000000000600020000500000080003000000000008000400"
    "0100000005000d000000000006000e000000000006000f000000000008000500000000000800060000000000"
    "08000700000000000800080000000000080009000000000006000b000200000064000a000800010000000000"
    "0800020000000000080003000000000004000b000c000400000000000000000004000b000c00050000000000"
    "00000000080006000000000008000700000000000800080000000000080009000000000008000a0000000000"
    "a0000c000c000100000000000000000004000b000c000200000000000000000004000b000c00030000000000"
    "0000000004000b000c000400000000000000000004000b000c000500000000000000000004000b000c000600"
    "000000000000000004000b000c000700000000000000000004000b000c000800000000000000000004000b00"
    "0c000900000000000000000004000b000c000a000000000000000000"
)
KERNEL_SERVICE_V6_PERSISTENT = bytes.fromhex(
    "54010100060001000a00000006000200060000001400030020010db800000000000000000000000106000400"
    "0050000008000600776c63000c00070003000000ffffffff080008001e000000080009004000000060000a00"
    "0800010000000000080002000000000008000300000000000c000400000000000000000004000b000c000500"
    "0000000000000000080006000000000008000700000000000800080000000000080009000000000008000a00"
    "00000000a0000c000c000100000000000000000004000b000c000200000000000000000004000b000c000300"
    "000000000000000004000b000c000400000000000000000004000b000c000500000000000000000004000b00"
    "0c000600000000000000000004000b000c000700000000000000000004000b000c0008000000000000000000"
    "04000b000c000900000000000000000004000b000c000a000000000000000000"
)
KERNEL_SERVICE_FWMARK = bytes.fromhex(
    "3c0101000600010002000000080005000500000008000600776c63000c00070002000000ffffffff08000800"
    "0000000008000900ffffffff64000a0008000100000000000800020000000000080003000000000004000b00"
    "0c000400000000000000000004000b000c000500000000000000000008000600000000000800070000000000"
    "0800080000000000080009000000000008000a0000000000a0000c000c000100000000000000000004000b00"
    "0c000200000000000000000004000b000c000300000000000000000004000b000c0004000000000000000000"
    "04000b000c000500000000000000000004000b000c000600000000000000000004000b000c00070000000000"
    "0000000004000b000c000800000000000000000004000b000c000900000000000000000004000b000c000a00"
    "0000000000000000"
)


def kernel_reply(cmd: int, attrs: bytes, seq: int = 1) -> bytes:
    return genl.encode_request(FAMILY, cmd, NLM_F_MULTI, seq, attrs)


def test_captured_kernel_replies_decode() -> None:
    assert len(KERNEL_DEST_MASQ) == 380
    dest, stats = genl.decode_dest_value(
        one(kernel_reply(IpvsCmd.NEW_DEST, KERNEL_DEST_MASQ)), Family.INET
    )
    assert dest == Dest(RS1)
    assert stats == DestStats()
    # What the adapter predicts for the memo is byte for byte what the kernel wrote.
    assert genl.dest_memo_key(dest) == KERNEL_DEST_MASQ[4:88]
    v6 = genl.decode_service_value(
        one(kernel_reply(IpvsCmd.NEW_SERVICE, KERNEL_SERVICE_V6_PERSISTENT))
    )
    assert v6 == Service(
        ServiceKey.tcp("2001:db8::1", 80), persistence_timeout=30, persistence_netmask=64
    )
    mark = genl.decode_service_value(one(kernel_reply(IpvsCmd.NEW_SERVICE, KERNEL_SERVICE_FWMARK)))
    assert mark == Service(ServiceKey.for_fwmark(5))


def with_counters(nest_prefix: bytes, af: int, active: int, inactive: int, persist: int) -> bytes:
    """A dest nest in the kernel's order: config prefix, counters, family, stats."""
    nest = (
        nest_prefix
        + genl.nla(7, struct.pack("=I", active))
        + genl.nla(8, struct.pack("=I", inactive))
        + genl.nla(9, struct.pack("=I", persist))
        + genl.nla(11, struct.pack("=H", af))
        + genl.nla(10, genl.nla(1, struct.pack("=I", 0)))
    )
    return genl.nla(CmdAttr.DEST, nest)


def test_dest_dump_memo_returns_the_programmed_object() -> None:
    dest = Dest(RS1, weight=3)
    memo: genl.DestMemo = {genl.dest_memo_key(dest): (AF_INET, dest)}
    datagram = (
        kernel_reply(IpvsCmd.NEW_DEST, with_counters(genl.dest_memo_key(dest), AF_INET, 2, 1, 0), 7)
        + kernel_reply(IpvsCmd.NEW_DEST, KERNEL_DEST_MASQ, 6)  # a stale reply: other seq
        + struct.pack("=IHHII", 20, genl.NLMSG_DONE, NLM_F_MULTI, 7, 0)
        + b"\0" * 4
    )
    part = genl.decode_dest_dump(
        datagram, family_id=FAMILY, seq=7, service_family=Family.INET, memo=memo
    )
    assert part.done and part.errno == 0 and part.malformed == 0
    ((got, stats),) = part.rows
    assert got is dest
    assert stats == DestStats(2, 1, 0)


def test_dest_dump_learns_unknown_rows_then_hits() -> None:
    memo: genl.DestMemo = {}
    datagram = kernel_reply(IpvsCmd.NEW_DEST, KERNEL_DEST_MASQ, 3)
    first = genl.decode_dest_dump(
        datagram, family_id=FAMILY, seq=3, service_family=Family.INET, memo=memo
    )
    assert first.rows == [(Dest(RS1), None)] and not first.done
    assert len(memo) == 1
    second = genl.decode_dest_dump(
        datagram, family_id=FAMILY, seq=3, service_family=Family.INET, memo=memo
    )
    assert second.rows[0][0] is first.rows[0][0]


def test_dest_dump_error_and_malformed_message() -> None:
    err = struct.pack("=IHHII", 36, genl.NLMSG_ERROR, 0, 4, 0) + struct.pack("=i", -16)
    err += b"\0" * 16
    bad = kernel_reply(IpvsCmd.NEW_DEST, genl.nla(CmdAttr.DEST, genl.nla(1, b"\1\2")), 4)
    part = genl.decode_dest_dump(
        bad + err, family_id=FAMILY, seq=4, service_family=Family.INET, memo={}
    )
    assert (part.rows, part.done, part.errno, part.malformed) == ([], True, 16, 1)


def test_service_dump_memo() -> None:
    memo: genl.ServiceMemo = {}
    datagram = kernel_reply(IpvsCmd.NEW_SERVICE, KERNEL_SERVICE_FWMARK, 9) + kernel_reply(
        IpvsCmd.NEW_SERVICE, KERNEL_SERVICE_V6_PERSISTENT, 9
    )
    first = genl.decode_service_dump(datagram, family_id=FAMILY, seq=9, memo=memo)
    second = genl.decode_service_dump(datagram, family_id=FAMILY, seq=9, memo=memo)
    assert [s.key for s in first.rows] == [
        ServiceKey.for_fwmark(5),
        ServiceKey.tcp("2001:db8::1", 80),
    ]
    assert all(a is b for a, b in zip(first.rows, second.rows, strict=True))


@given(model_dests(), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_memo_key_decodes_to_the_same_dest(dest: Dest, active: int, inactive: int) -> None:
    # The seeded memo must never hand back a value the full decoder would not produce.
    af = dest.key.family.value
    datagram = kernel_reply(
        IpvsCmd.NEW_DEST, with_counters(genl.dest_memo_key(dest), af, active, inactive, 0)
    )
    slow, stats = genl.decode_dest_value(one(datagram), Family.INET6)
    assert slow == dest
    assert stats == DestStats(active, inactive, 0)
    memo: genl.DestMemo = {}
    cold = genl.decode_dest_dump(
        datagram, family_id=FAMILY, seq=1, service_family=Family.INET6, memo=memo
    )
    assert memo == {genl.dest_memo_key(dest): (af, dest)}
    warm = genl.decode_dest_dump(
        datagram, family_id=FAMILY, seq=1, service_family=Family.INET6, memo=memo
    )
    assert cold.rows == warm.rows


# --------------------------------------------------------------------------
# Against pyroute2's own IPVSService / IPVSDest (its documented API): the same
# attributes carry the same bytes. pyroute2 orders them differently and always sends the
# tunnel attributes, so its list is put in our order (tunnel zeros dropped) first.

_SVC_ORDER = ["AF", "PROTOCOL", "ADDR", "PORT", "FWMARK", "SCHED_NAME", "FLAGS", "TIMEOUT"]
_SVC_ORDER += ["NETMASK"]
_DEST_ORDER = ["ADDR", "PORT", "ADDR_FAMILY", "FWD_METHOD", "WEIGHT", "U_THRESH", "L_THRESH"]
_DEST_ORDER += ["TUN_TYPE", "TUN_PORT", "TUN_FLAGS"]


def _in_our_order(attrs: list[tuple[str, Any]], prefix: str, order: list[str]) -> list[Any]:
    rank = {prefix + name: i for i, name in enumerate(order)}
    return sorted(attrs, key=lambda item: rank[item[0]])


def test_same_bytes_as_pyroute2_ipvsservice_and_ipvsdest() -> None:
    from pyroute2.ipvs import IPVSDest, IPVSService

    pr_service = IPVSService(
        addr="198.51.100.10",
        port=443,
        protocol=socket.IPPROTO_TCP,
        sched_name="wrr",
        timeout=300,
        flags={"flags": 1, "mask": 0xFFFFFFFF},
        netmask="255.255.255.0",
    )
    pr_dest = IPVSDest(addr="10.0.0.11", port=8443, fwd_method=3, weight=5, u_thresh=9)
    dest_attrs = [
        (name, value)
        for name, value in pr_dest.dump_nla()["attrs"]
        if not name.startswith("IPVS_DEST_ATTR_TUN_")
    ]
    theirs_service = pyroute2_bytes(
        gi.IPVS_CMD_NEW_SERVICE,
        [
            (
                "IPVS_CMD_ATTR_SERVICE",
                {
                    "attrs": _in_our_order(
                        pr_service.dump_nla()["attrs"], "IPVS_SVC_ATTR_", _SVC_ORDER
                    )
                },
            )
        ],
        REQ_ACK,
        1,
    )
    theirs_dest = pyroute2_bytes(
        gi.IPVS_CMD_NEW_DEST,
        [
            (
                "IPVS_CMD_ATTR_SERVICE",
                {
                    "attrs": _in_our_order(
                        pr_service.dump_key()["attrs"], "IPVS_SVC_ATTR_", _SVC_ORDER
                    )
                },
            ),
            (
                "IPVS_CMD_ATTR_DEST",
                {"attrs": _in_our_order(dest_attrs, "IPVS_DEST_ATTR_", _DEST_ORDER)},
            ),
        ],
        REQ_ACK,
        2,
    )
    key = ServiceKey.tcp("198.51.100.10", 443)
    service = Service(key, scheduler="wrr", persistence_timeout=300, persistence_netmask=24)
    dest = Dest(DestKey("10.0.0.11", 8443), weight=5, forwarding=Forwarding.DROUTE, u_thresh=9)
    assert genl.encode_op(FAMILY, 1, AddService(service)) == theirs_service
    assert genl.encode_op(FAMILY, 2, AddDest(key, dest)) == theirs_dest


@given(
    st.lists(st.binary(min_size=0, max_size=260), min_size=1, max_size=4),
    st.sampled_from([IpvsCmd.NEW_DEST, IpvsCmd.NEW_SERVICE, 0]),
)
def test_dump_decoders_drop_garbage_messages(bodies: list[bytes], cmd: int) -> None:
    # Each message has sound framing and a garbage body: it is counted, never raised.
    datagram = b"".join(
        genl.encode_request(FAMILY, cmd, NLM_F_MULTI, 1, body.ljust((len(body) + 3) & ~3, b"\0"))
        for body in bodies
    )
    dests = genl.decode_dest_dump(
        datagram, family_id=FAMILY, seq=1, service_family=Family.INET, memo={}
    )
    services = genl.decode_service_dump(datagram, family_id=FAMILY, seq=1, memo={})
    assert len(dests.rows) + dests.malformed == len(bodies)
    assert len(services.rows) + services.malformed == len(bodies)


@given(model_dests())
def test_dump_memo_key_of_a_layout_decoded_dest_is_its_seed(dest: Dest) -> None:
    # The memo learned from a kernel-layout reply and the seed the adapter writes after
    # programming the dest are the same entry.
    af = dest.key.family.value
    datagram = kernel_reply(IpvsCmd.NEW_DEST, with_counters(genl.dest_memo_key(dest), af, 0, 0, 0))
    memo: genl.DestMemo = {}
    genl.decode_dest_dump(datagram, family_id=FAMILY, seq=1, service_family=Family.INET, memo=memo)
    assert list(memo) == [genl.dest_memo_key(dest)]
