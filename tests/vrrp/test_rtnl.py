"""vrrp.rtnl, the VRRP process's own rtnetlink client, against the host kernel.

The kernel cases run in a fresh interpreter inside a network namespace of its own
(``unshare --net``, root only): only its loopback exists there, and nothing the
test adds outlives it. The address dump is compared with ``ip -o addr``'s view of the same kernel.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import struct
import subprocess
import sys

import pytest

from vrrp.rtnl import attributes, parse_messages

needs_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                                reason="a network namespace needs root and unshare(1)")


def in_own_netns(body: str) -> dict[str, object]:
    script = (
        "import asyncio, errno, json, os, socket, sys\n"
        "from ipaddress import ip_address, ip_interface\n"
        f"{body}\n"
    )
    result = subprocess.run(["unshare", "--net", sys.executable, "-c", script],
                            capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stderr
    answer: dict[str, object] = json.loads(result.stdout.splitlines()[-1])
    return answer


def test_parse_messages_splits_aligned_messages() -> None:
    first = struct.pack("=IHHII", 20, 16, 2, 7, 0) + b"abcd"
    second = struct.pack("=IHHII", 17, 3, 2, 7, 0) + b"x" + b"\0" * 3  # padded to 20
    assert parse_messages(first + second) == [(16, 2, 7, b"abcd"), (3, 2, 7, b"x")]


def test_parse_messages_refuses_a_truncated_message() -> None:
    with pytest.raises(OSError, match="truncated netlink message at 0") as refused:
        parse_messages(struct.pack("=IHHII", 40, 16, 0, 1, 0) + b"short")
    assert refused.value.errno == errno.EBADMSG


def test_attributes_by_type_first_wins_and_garbage_ends() -> None:
    data = (struct.pack("=HH", 8, 1) + b"\x01\x02\x03\x04"
            + struct.pack("=HH", 5, 3) + b"z\0\0\0"
            + struct.pack("=HH", 8, 1) + b"\x09\x09\x09\x09"
            + struct.pack("=HH", 99, 2))  # claims more than there is
    assert attributes(data) == {1: b"\x01\x02\x03\x04", 3: b"z"}


@needs_root
def test_addresses_links_and_errors_match_the_kernel_and_pyroute2() -> None:
    answer = in_own_netns("""
from vrrp.rtnl import Rtnl
rtnl = Rtnl()
lo = socket.if_nametoindex("lo")
out = {}
rtnl.add_address(lo, ip_address("192.0.2.7"), 24)
rtnl.add_address(lo, ip_address("192.0.2.8"), 24)  # a secondary in the same subnet
rtnl.add_address(lo, ip_address("2001:db8::7"), 64, flags=0x02)  # IFA_F_NODAD
try:
    rtnl.add_address(lo, ip_address("192.0.2.7"), 24)
except OSError as exc:
    out["again"] = exc.errno
mine = [(e.index, e.family, e.prefixlen, e.flags & 0xFF, str(e.address))
        for e in rtnl.addresses(index=lo)]
out["v4"] = [str(e.address) for e in rtnl.addresses(socket.AF_INET, lo)]
out["secondary"] = [str(e.address) for e in rtnl.addresses(socket.AF_INET, lo) if e.flags & 1]
out["v6_nodad"] = [bool(e.flags & 0x02) for e in rtnl.addresses(socket.AF_INET6, lo)
                   if str(e.address) == "2001:db8::7"]
out["lo_flags"] = rtnl.link_flags("lo")
out["missing_link"] = rtnl.link_flags("nosuch0")
rtnl.delete_address(lo, ip_address("192.0.2.8"), 24)
try:
    rtnl.delete_address(lo, ip_address("192.0.2.8"), 24)
except OSError as exc:
    out["gone"] = exc.errno
try:
    rtnl.add_address(4242, ip_address("192.0.2.9"), 24)
except OSError as exc:
    out["no_device"] = exc.errno
out["after"] = [str(e.address) for e in rtnl.addresses(socket.AF_INET, lo)]
import subprocess
shown = subprocess.run(["ip", "-o", "addr", "show", "dev", "lo"], capture_output=True,
                       text=True, check=True).stdout.splitlines()
theirs = [line.split()[3] for line in shown if line.strip()]
mine = [(e.index, e.family, e.prefixlen, e.flags, str(e.address)) for e in rtnl.addresses(index=lo)]
out["same_as_ip"] = sorted(f"{e[4]}/{e[2]}" for e in mine) == sorted(theirs) or [mine, theirs]
print(json.dumps(out))
""")
    assert answer["again"] == errno.EEXIST
    # The primary first; lo is down in a new namespace, so it has no 127.0.0.1.
    assert answer["v4"] == ["192.0.2.7", "192.0.2.8"]
    assert answer["secondary"] == ["192.0.2.8"]
    assert answer["v6_nodad"] == [True]
    assert answer["lo_flags"] == 0x8  # IFF_LOOPBACK, and down in a new namespace
    assert answer["missing_link"] is None
    assert answer["gone"] == errno.EADDRNOTAVAIL
    assert answer["no_device"] == errno.ENODEV
    assert answer["after"] == ["192.0.2.7"]
    assert answer["same_as_ip"] is True
