"""haipvs.bgp.local: whether this host can take a VIP's packets (loopback addresses only:
bind tests send nothing), and how an IPv6 VIP held by duplicate address detection reads."""

from __future__ import annotations

from ipaddress import ip_address
from pathlib import Path

from haipvs.bgp.local import unusable_vips

VIP6 = ip_address("2001:db8::10")


def test_a_local_address_is_usable_and_a_foreign_one_is_named() -> None:
    problems = unusable_vips([ip_address("127.0.0.1"), ip_address("192.0.2.10")])
    assert problems == {
        ip_address("192.0.2.10"): "192.0.2.10 is not an address of this director (put it on lo)"
    }


def if_inet6(tmp_path: Path, flags: str) -> str:
    # /proc/net/if_inet6: address, ifindex, prefix length, scope, flags, interface
    path = tmp_path / "if_inet6"
    path.write_text("00000000000000000000000000000001 01 80 10 80       lo\n"
                    f"20010db8000000000000000000000010 02 40 00 {flags}     eth0\n")
    return str(path)


def test_an_ipv6_vip_held_by_duplicate_address_detection_says_to_add_it_with_nodad(
    tmp_path: Path,
) -> None:
    tentative = unusable_vips([VIP6], if_inet6(tmp_path, "c0"))[VIP6]
    assert tentative == ("2001:db8::10 on eth0 is tentative: duplicate address detection has "
                         "not finished (add it with nodad: several directors hold it at once)")
    failed = unusable_vips([VIP6], if_inet6(tmp_path, "88"))[VIP6]
    assert failed == ("2001:db8::10 on eth0 failed duplicate address detection (add it with "
                      "nodad: several directors hold it at once)")
    assert unusable_vips([VIP6], str(tmp_path / "none"))[VIP6] == (
        "2001:db8::10 is not an address of this director (put it on lo)")
