"""The VRRP codec against a live keepalived, both directions (lab: keepalived in a namespace).

keepalived accepts the adverts we encode and we decode every variant it sends (v2, v3,
IPv4, IPv6, unicast). It lives here, not with the codec's pure tests
(tests/vrrp/test_packet.py), because it needs the lab's kernel and a keepalived process.
"""

from __future__ import annotations

import json
import select
import socket
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Any

import pytest
from pyroute2 import netns

from vrrp.packet import (
    Advertisement,
    check_ttl,
    decode_advert,
    encode_advert,
    parse_ipv4_packet,
)

MASTER = IPv4Address("198.51.100.11")
GROUP4 = IPv4Address("224.0.0.18")
GROUP6 = IPv6Address("ff02::12")

# tests/vrrp/test_packet.py's captures pin VRRPv2 and VRRPv3 over IPv4 multicast. This
# test covers the rest of what a keepalived peer puts on the wire (PASS authentication,
# unicast with its destination-dependent v3 checksum, IPv6 with the RFC 8200
# pseudo-header) in both directions: keepalived must accept our bytes (it stays BACKUP
# under our priority-200 adverts, while a control instance fed a corrupted checksum
# becomes MASTER), and we must decode and re-encode byte for byte what keepalived sends
# once we fall silent.

KA_ADDRESS = IPv4Address("192.0.2.1")
US_ADDRESS = IPv4Address("192.0.2.2")


@dataclass(frozen=True)
class Flow:
    name: str
    vrid: int
    version: int
    interval: float
    vip: IPv4Address | IPv6Address
    keepalived_extra: str = ""
    auth_data: bytes = b""
    unicast: bool = False
    corrupt: bool = False

    @property
    def family(self) -> int:
        return self.vip.version


FLOWS = (
    Flow("V2", 10, 2, 1.0, IPv4Address("198.51.100.10")),
    Flow(
        "V2AUTH",
        11,
        2,
        1.0,
        IPv4Address("198.51.100.11"),
        "authentication {\n        auth_type PASS\n        auth_pass s3cret\n    }",
        auth_data=b"s3cret",
    ),
    Flow("V3", 12, 3, 0.5, IPv4Address("198.51.100.12")),
    Flow(
        "V3UNI",
        13,
        3,
        0.5,
        IPv4Address("198.51.100.13"),
        f"unicast_src_ip {KA_ADDRESS}\n    unicast_peer {{\n        {US_ADDRESS}\n    }}",
        unicast=True,
    ),
    Flow("V3V6", 14, 3, 0.5, IPv6Address("2001:db8::14")),
    Flow("CONTROL", 15, 3, 0.5, IPv4Address("198.51.100.15"), corrupt=True),
)


def keepalived_conf(notify: Path) -> str:
    blocks = ["global_defs {\n    router_id ka\n    script_user root\n}\n"]
    for flow in FLOWS:
        prefix = 32 if flow.family == 4 else 128
        blocks.append(
            f"vrrp_instance {flow.name} {{\n"
            f"    state BACKUP\n    interface eth0\n    virtual_router_id {flow.vrid}\n"
            f"    priority 150\n    advert_int {flow.interval:g}\n    version {flow.version}\n"
            f"    {flow.keepalived_extra}\n"
            f"    virtual_ipaddress {{\n        {flow.vip}/{prefix}\n    }}\n"
            f"    notify {notify}\n}}\n"
        )
    return "\n".join(blocks)


def our_advert(flow: Flow, priority: int) -> Advertisement:
    return Advertisement(
        version=flow.version,
        vrid=flow.vrid,
        priority=priority,
        advert_interval=flow.interval,
        addresses=(flow.vip,),
        auth_type=1 if flow.auth_data else 0,
        auth_data=flow.auth_data,
    )


def link_local(net: Any, host: str) -> IPv6Address:
    """The host's eth0 link-local address once duplicate address detection is over."""
    for _ in range(100):
        shown = net.run(host, ["ip", "-j", "-6", "addr", "show", "dev", "eth0", "scope", "link"])
        infos = [i for entry in json.loads(shown.stdout) for i in entry.get("addr_info", [])]
        ready = [i for i in infos if not i.get("tentative")]
        if ready:
            return IPv6Address(ready[0]["local"])
        threading.Event().wait(0.1)
    raise AssertionError(f"{host}: no usable link-local address")


@pytest.mark.lab
def test_keepalived_accepts_our_adverts_and_we_decode_every_variant_it_sends(
    tmp_path: Path,
) -> None:
    from haipvs.lab.topology import Endpoint, Host, Topology, Veth, build

    topology = Topology(
        hosts=(Host("ka"), Host("us")),
        links=(
            Veth(
                Endpoint("ka", "eth0", (f"{KA_ADDRESS}/24",)),
                Endpoint("us", "eth0", (f"{US_ADDRESS}/24",)),
            ),
        ),
    )
    states = tmp_path / "states"
    notify = tmp_path / "notify.sh"
    notify.write_text(f'#!/bin/sh\necho "$2 $3" >> {states}\n')
    notify.chmod(0o755)
    conf = tmp_path / "keepalived.conf"
    conf.write_text(keepalived_conf(notify))
    with build(topology, prefix="vrrp-codec-") as net:
        ka_ll, us_ll = link_local(net, "ka"), link_local(net, "us")
        netns.pushns(net.ns("us"))
        try:
            ifindex = socket.if_nametoindex("eth0")
            send4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
            send4.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, US_ADDRESS.packed)
            send4.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
            send4.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 255)
            send4.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
            send6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 112)
            send6.bind((str(us_ll), 0, 0, ifindex))
            send6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
            send6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
            send6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
            recv4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
            recv4.setsockopt(
                socket.IPPROTO_IP,
                socket.IP_ADD_MEMBERSHIP,
                struct.pack("4s4si", GROUP4.packed, bytes(4), ifindex),
            )
            recv6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 112)
            recv6.setsockopt(
                socket.IPPROTO_IPV6,
                socket.IPV6_JOIN_GROUP,
                GROUP6.packed + struct.pack("@I", ifindex),
            )
            recv6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
        finally:
            netns.popns()

        def payload_of(flow: Flow) -> tuple[bytes, tuple[Any, ...], socket.socket]:
            if flow.family == 6:
                payload = encode_advert(our_advert(flow, 200), us_ll, GROUP6)
                return payload, (str(GROUP6), 0, 0, ifindex), send6
            destination = KA_ADDRESS if flow.unicast else GROUP4
            payload = encode_advert(our_advert(flow, 200), US_ADDRESS, destination)
            if flow.corrupt:
                payload = payload[:6] + bytes([payload[6] ^ 0xFF]) + payload[7:]
            return payload, (str(destination), 0), send4

        stop = threading.Event()

        def send_until_stopped() -> None:
            packets = [payload_of(flow) for flow in FLOWS]
            while not stop.is_set():
                for payload, address, sock in packets:
                    sock.sendto(payload, address)
                stop.wait(0.2)

        sender = threading.Thread(target=send_until_stopped, daemon=True)
        sender.start()
        log = (tmp_path / "keepalived.log").open("wb")
        keepalived = net.popen(
            "ka",
            [
                "keepalived",
                "-n",
                "-l",
                "-D",
                "-P",
                "-f",
                str(conf),
                "-p",
                str(tmp_path / "ka.pid"),
                "-r",
                str(tmp_path / "ka-vrrp.pid"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            # Phase 1: keepalived hears our priority 200 and stays BACKUP everywhere,
            # except where our checksum is corrupt.
            def seen() -> list[str]:
                return states.read_text().splitlines() if states.exists() else []

            for _ in range(300):
                if "CONTROL MASTER" in seen():
                    break
                stop.wait(0.1)
            else:
                raise AssertionError(f"keepalived never took CONTROL: {seen()}")
            stop.wait(4.0)  # > VRRPv2 Master_Down_Interval since keepalived started
            lines = seen()
            for flow in FLOWS[:-1]:
                assert f"{flow.name} BACKUP" in lines, lines
                assert f"{flow.name} MASTER" not in lines, lines
                assert f"{flow.name} FAULT" not in lines, lines
            # Phase 2: we fall silent; keepalived takes over and we read its adverts.
            stop.set()
            sender.join()
            received: dict[int, tuple[Advertisement, bytes, Any, Any, int]] = {}
            for _ in range(300):
                if len(received) == len(FLOWS):
                    break
                ready, _w, _x = select.select([recv4, recv6], [], [], 0.1)
                if recv4 in ready:
                    source, destination, ttl, payload = parse_ipv4_packet(recv4.recv(4096))
                    if source == KA_ADDRESS:
                        decoded = decode_advert(payload, source, destination)
                        received.setdefault(
                            decoded.vrid, (decoded, payload, source, destination, ttl)
                        )
                if recv6 in ready:
                    payload, ancillary, _flags, peer = recv6.recvmsg(4096, 256)
                    hops = next(
                        int.from_bytes(data, sys.byteorder)
                        for level, kind, data in ancillary
                        if (level, kind) == (socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT)
                    )
                    source6 = IPv6Address(peer[0].split("%")[0])
                    if source6 == ka_ll:
                        decoded = decode_advert(payload, source6, GROUP6)
                        received.setdefault(decoded.vrid, (decoded, payload, source6, GROUP6, hops))
            assert sorted(received) == [flow.vrid for flow in FLOWS], seen()
            for flow in FLOWS:
                decoded, payload, source, destination, ttl = received[flow.vrid]
                assert decoded == our_advert(flow, 150)
                assert encode_advert(decoded, source, destination) == payload
                check_ttl(ttl)
                expected_destination = (
                    US_ADDRESS if flow.unicast else (GROUP6 if flow.family == 6 else GROUP4)
                )
                assert destination == expected_destination
        finally:
            stop.set()
            keepalived.terminate()
            keepalived.wait(timeout=20)
            log.close()
            for sock in (send4, send6, recv4, recv6):
                sock.close()
