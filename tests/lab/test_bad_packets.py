"""Crafted VRRP packets thrown at a running haipvs pair.

From the client namespace on the front segment, a raw AF_PACKET socket sends whole
Ethernet frames, so every field is ours: TTL, checksums, version, lengths, VRID,
source address. Each packet looks dangerous if it were accepted (VRID 51, priority
254: the master would step down at once), and each has exactly one defect. For every
defect, on both directors:

- a defect the kernel socket filter knows (vrrp.bpf: TTL, version/type, VRID,
  destination, off-link or non-peer source) is dropped before the daemon reads
  it: no counter, no log line;
- the others are dropped and counted by reason in GET /metrics
  (``haipvs_vrrp_adverts_dropped_total{reason=...}``), and ``vrrp.advert.dropped``
  is logged at most once per interval per reason (two sources, several packets
  each: one line, so spoofed sources cannot make a line each);
- nothing changes: no ``vrrp.transition``, dir1 keeps the VIP, dir2 stays BACKUP.

A winning advert with a valid checksum sent to the VIP instead of the group, or
from a spoofed source off the front subnet, changes nothing either (it once took
mastership away: the destination never reached the checks).

Cases needing another pair run on their own: VRRPv2 advert-interval mismatch (RFC 3768
§7.1) on a v2 pair, and a stranger's advert on a unicast pair (keepalived
``unicast_peer``: only configured peers may speak).
"""

from __future__ import annotations

import re
import struct
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

import pytest

from haipvs.lab.pair import DIRECTORS, DirectorPair, PairSettings, running_pair, wait_until
from vrrp import Advertisement, encode_advert
from vrrp.packet import IPPROTO_VRRP, VRRP_MULTICAST_V4, internet_checksum

pytestmark = pytest.mark.lab

CLIENT = IPv4Address("198.51.100.2")
SPOOFED = IPv4Address("198.51.100.3")  # a second source on the segment (no such host)
VIPS = (IPv4Address("198.51.100.10"), IPv4Address("10.0.0.1"))
PER_SOURCE = {CLIENT: 4, SPOOFED: 2}  # packets sent from each source per case
MULTICAST_MAC = bytes.fromhex("01005e000012")  # RFC 1112 §6.4 mapping of 224.0.0.18

SENDER = """
import socket, sys
iface, count = sys.argv[1], int(sys.argv[2])
with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
    sock.bind((iface, 0))
    for hexframe in sys.argv[3:]:
        for _ in range(count):
            sock.send(bytes.fromhex(hexframe))
"""


# --- crafting ---------------------------------------------------------------------------------


def advert(version: int = 3, *, vrid: int = 51, priority: int = 254, interval: float = 1.0
           ) -> Advertisement:
    return Advertisement(version=version, vrid=vrid, priority=priority,
                         advert_interval=interval, addresses=VIPS)


def ip_datagram(source: IPv4Address, destination: IPv4Address, payload: bytes,
                *, ttl: int = 255) -> bytes:
    header = bytearray(struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0xC0, 20 + len(payload), 0x4242, 0, ttl, IPPROTO_VRRP, 0,
        source.packed, destination.packed,
    ))
    struct.pack_into("!H", header, 10, internet_checksum(bytes(header)))
    return bytes(header) + payload


def fix_vrrp_checksum(payload: bytearray, source: IPv4Address, destination: IPv4Address) -> None:
    summed = bytes(payload[:6]) + b"\0\0" + bytes(payload[8:])
    if payload[0] >> 4 == 3:  # RFC 5798 §5.2.8: v3 sums the pseudo-header too
        summed = source.packed + destination.packed + struct.pack(
            "!BBH", 0, IPPROTO_VRRP, len(payload)) + summed
    struct.pack_into("!H", payload, 6, internet_checksum(summed))


Craft = Callable[[IPv4Address, IPv4Address], bytes]


def bad_checksum(source: IPv4Address, destination: IPv4Address) -> bytes:
    payload = bytearray(encode_advert(advert(), source, destination))
    payload[6] ^= 0x5A
    return ip_datagram(source, destination, bytes(payload))


def bad_ttl(source: IPv4Address, destination: IPv4Address) -> bytes:
    # RFC 5798 §7.1: crossed a router, so not from our link.
    return ip_datagram(source, destination, encode_advert(advert(), source, destination), ttl=64)


def bad_version_nibble(source: IPv4Address, destination: IPv4Address) -> bytes:
    payload = bytearray(encode_advert(advert(), source, destination))
    payload[0] = 0x11  # VRRP version 1 (RFC 2338's never-deployed predecessor)
    fix_vrrp_checksum(payload, source, destination)
    return ip_datagram(source, destination, bytes(payload))


def v2_advert_at_v3_instance(source: IPv4Address, destination: IPv4Address) -> bytes:
    return ip_datagram(source, destination, encode_advert(advert(2), source, destination))


def truncated(source: IPv4Address, destination: IPv4Address) -> bytes:
    return ip_datagram(source, destination, encode_advert(advert(), source, destination)[:6])


def wrong_vrid(source: IPv4Address, destination: IPv4Address) -> bytes:
    return ip_datagram(source, destination,
                       encode_advert(advert(vrid=52), source, destination))


def address_count_mismatch(source: IPv4Address, destination: IPv4Address) -> bytes:
    payload = bytearray(encode_advert(advert(), source, destination))
    payload[3] = 3  # says three addresses, carries two
    fix_vrrp_checksum(payload, source, destination)
    return ip_datagram(source, destination, bytes(payload))


def v2_interval_mismatch(source: IPv4Address, destination: IPv4Address) -> bytes:
    # RFC 3768 §7.1: a v2 advert whose interval differs from ours MUST be dropped.
    return ip_datagram(source, destination,
                       encode_advert(advert(2, interval=2.0), source, destination))


def valid_v3(source: IPv4Address, destination: IPv4Address) -> bytes:
    return ip_datagram(source, destination, encode_advert(advert(), source, destination))


def valid_v3_from_off_link(source: IPv4Address, destination: IPv4Address) -> bytes:
    spoofed = IPv4Address("159.112.6.161")
    return ip_datagram(spoofed, destination, encode_advert(advert(), spoofed, destination))


# --- sending and reading -----------------------------------------------------------------------


def mac_of(pair: DirectorPair, host: str) -> bytes:
    text = pair.net.run(host, ["cat", "/sys/class/net/eth0/address"]).stdout.strip()
    return bytes.fromhex(text.replace(":", ""))


def send(pair: DirectorPair, craft: Craft, destination: IPv4Address, dst_mac: bytes) -> None:
    """Send each source's packets from the client namespace, as Ethernet frames."""
    src_mac = mac_of(pair, "client")
    for source, count in PER_SOURCE.items():
        frame = dst_mac + src_mac + b"\x08\x00" + craft(source, destination)
        pair.net.run("client", [sys.executable, "-c", SENDER, "eth0", str(count), frame.hex()])


def dropped(pair: DirectorPair, name: str) -> dict[str, float]:
    """haipvs_vrrp_adverts_dropped_total by reason, from the director's /metrics."""
    result = pair.net.run(name, ["curl", "-s", "-m", "5", "http://127.0.0.1:9797/metrics"],
                          check=False)
    counts: dict[str, float] = {}
    for line in result.stdout.splitlines():
        if line.startswith("haipvs_vrrp_adverts_dropped_total{"):
            reason = re.search(r'reason="([^"]+)"', line)
            assert reason is not None, line
            counts[reason.group(1)] = float(line.rsplit(" ", 1)[1])
    return counts


@dataclass
class Mark:
    """Where the logs and counters stood before a case."""

    events: dict[str, int]
    counts: dict[str, dict[str, float]]


def mark(pair: DirectorPair) -> Mark:
    names = list(pair.directors)
    return Mark(
        events={name: len(pair.log_events(name)) for name in names},
        counts={name: dropped(pair, name) for name in names},
    )


def new_events(pair: DirectorPair, name: str, before: Mark) -> list[dict[str, Any]]:
    return pair.log_events(name)[before.events[name]:]


def assert_dropped_without_effect(
    pair: DirectorPair, before: Mark, reason: str | None, *, master: str = "dir1"
) -> None:
    """``reason`` None: the kernel filter drops it, the daemon never sees it."""
    sent = sum(PER_SOURCE.values())
    for name in pair.directors:
        if reason is None:
            continue
        wait_until(
            lambda name=name: dropped(pair, name).get(reason, 0)  # type: ignore[misc]
            >= before.counts[name].get(reason, 0) + sent,
            15,
        )
    time.sleep(1.0)  # room for a transition that must not happen
    for name in pair.directors:
        after = dropped(pair, name)
        events = new_events(pair, name, before)
        lines = [e for e in events if e["event"] == "vrrp.advert.dropped"]
        if reason is None:
            assert after == before.counts[name], (name, after)
            assert lines == [], lines
        else:
            assert after.get(reason, 0) - before.counts[name].get(reason, 0) == sent, (name, after)
            # At most once per interval per reason: one line for the two sources.
            assert [e["reason"] for e in lines] == [reason], lines
            assert all(e["vrid"] == 51 and e["iface"] == "eth0" for e in lines)
        assert not [e for e in events if e["event"] == "vrrp.transition"], (name, events)
    assert pair.holds_vip(master)
    assert pair.vrrp_state(master) == "MASTER"
    backup = "dir2" if master == "dir1" else "dir1"
    assert pair.vrrp_state(backup) == "BACKUP"
    assert not pair.holds_vip(backup)


def start_pair(pair: DirectorPair) -> None:
    pair.start_director("dir1")
    pair.start_director("dir2")
    wait_until(lambda: pair.holds_vip("dir1") and pair.vrrp_state("dir2") == "BACKUP", 90)
    wait_until(lambda: pair.vrrp_state("dir1") == "MASTER", 30)


# --- multicast VRRPv3 pair ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def v3_pair() -> Iterator[DirectorPair]:
    with running_pair(PairSettings(version=3, advert_interval=1.0), prefix="bad3-") as pair:
        start_pair(pair)
        yield pair


@pytest.mark.parametrize(
    ("craft", "reason"),
    [
        (bad_checksum, "bad_checksum"),
        (bad_ttl, None),
        (bad_version_nibble, None),
        (truncated, "truncated"),
        (wrong_vrid, None),
        (address_count_mismatch, "address_count_mismatch"),
        (v2_advert_at_v3_instance, None),
        (valid_v3_from_off_link, None),
    ],
    ids=["bad_checksum", "ttl_64", "version_1", "truncated", "wrong_vrid",
         "address_count_mismatch", "v2_at_v3", "off_link_source"],
)
def test_crafted_multicast_packet_is_dropped_counted_and_changes_nothing(
    v3_pair: DirectorPair, craft: Craft, reason: str | None
) -> None:
    before = mark(v3_pair)
    send(v3_pair, craft, VRRP_MULTICAST_V4, MULTICAST_MAC)
    assert_dropped_without_effect(v3_pair, before, reason)


def test_a_winning_advert_sent_to_the_vip_changes_nothing(v3_pair: DirectorPair) -> None:
    # A multicast instance hears only the group: the same advert unicast to the
    # VIP (the raw socket receives it, the VIP is a local address) is dropped.
    before = mark(v3_pair)
    send(v3_pair, valid_v3, VIPS[0], mac_of(v3_pair, "dir1"))
    assert_dropped_without_effect(v3_pair, before, None)


def test_the_same_packet_without_its_defect_does_take_over(v3_pair: DirectorPair) -> None:
    # The control: what the crafted packets would have done if accepted. A valid
    # priority-254 advert from the client makes the master step down (RFC 5798 §6.4.3).
    # Runs last in the module: it disturbs the pair.
    before = mark(v3_pair)
    send(v3_pair, valid_v3, VRRP_MULTICAST_V4, MULTICAST_MAC)
    wait_until(lambda: any(
        e["event"] == "vrrp.transition" and e["to_state"] == "backup"
        for e in new_events(v3_pair, "dir1", before)), 10)


# --- VRRPv2 pair: advert interval mismatch -----------------------------------------------------


def test_v2_interval_mismatch_is_dropped() -> None:
    with running_pair(PairSettings(version=2, advert_interval=1.0), prefix="bad2-") as pair:
        start_pair(pair)
        before = mark(pair)
        send(pair, v2_interval_mismatch, VRRP_MULTICAST_V4, MULTICAST_MAC)
        assert_dropped_without_effect(pair, before, "interval_mismatch")


# --- unicast pair: a stranger speaks -----------------------------------------------------------


def test_unicast_advert_from_a_non_peer_is_dropped() -> None:
    with running_pair(PairSettings(version=3, unicast=True), prefix="badu-") as pair:
        start_pair(pair)
        before = mark(pair)
        for name in ("dir1", "dir2"):
            address = IPv4Address(DIRECTORS[name][0])
            send(pair, valid_v3, address, mac_of(pair, name))
        # Each director got its own copies; the kernel filter takes only peers.
        assert_dropped_without_effect(pair, before, None)
