"""An IPv6 VIP in scale-out mode and duplicate address detection, on the lab kernel.

Several directors hold the VIP at once. On ``lo`` DAD never runs; on a link it holds the
address tentative (no packets) and marks it failed when another host holds it too, unless
it is added with ``nodad``. The announce gate's check (``haipvs.bgp.local``) must see each
of these as the kernel has them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

pytestmark = pytest.mark.lab


def sh(*args: str) -> str:
    done = subprocess.run(list(args), capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(args)}: {done.stderr.strip()}"
    return done.stdout


@pytest.fixture
def namespace() -> Iterator[str]:
    name = f"haipvs-dad-{os.getpid()}"
    sh("ip", "netns", "add", name)
    sh("ip", "netns", "add", f"{name}-peer")  # another director on the same link
    try:
        yield name
    finally:
        for each in (name, f"{name}-peer"):
            subprocess.run(["ip", "netns", "del", each], capture_output=True, check=False)


def unusable(namespace: str, *vips: str) -> dict[str, str]:
    code = ("import json, sys\nfrom ipaddress import ip_address\n"
            "from haipvs.bgp.local import unusable_vips\n"
            "found = unusable_vips([ip_address(a) for a in sys.argv[1:]])\n"
            "print(json.dumps({str(k): v for k, v in found.items()}))\n")
    out = sh("ip", "netns", "exec", namespace, sys.executable, "-c", code, *vips)
    result: dict[str, str] = json.loads(out)
    return result


def test_the_gate_sees_tentative_failed_and_nodad_ipv6_vips(namespace: str) -> None:
    ns = ("ip", "-n", namespace)
    sh(*ns, "link", "set", "lo", "up")
    peer = ("ip", "-n", f"{namespace}-peer")
    sh(*ns, "link", "add", "name", "va", "type", "veth", "peer", "name", "vb", "netns",
       f"{namespace}-peer")
    # Many probes, one second apart: the address stays tentative for the whole test.
    sh("ip", "netns", "exec", namespace, "sysctl", "-qw", "net.ipv6.conf.va.dad_transmits=60")
    sh(*ns, "link", "set", "va", "up")
    sh(*peer, "link", "set", "vb", "up")
    sh(*peer, "addr", "add", "2001:db8::13/64", "dev", "vb", "nodad")  # it holds the VIP
    sh(*ns, "addr", "add", "2001:db8::10/128", "dev", "lo")  # the recommended place
    sh(*ns, "addr", "add", "2001:db8::11/64", "dev", "va", "nodad")
    sh(*ns, "addr", "add", "2001:db8::12/64", "dev", "va")
    sh(*ns, "addr", "add", "2001:db8::13/64", "dev", "va")
    nodad = "(add it with nodad: several directors hold it at once)"
    deadline = time.monotonic() + 20
    while True:  # the peer's answer to the first probe marks ::13 failed
        found = unusable(namespace, "2001:db8::10", "2001:db8::11", "2001:db8::12",
                         "2001:db8::13", "2001:db8::99")
        if "failed" in found.get("2001:db8::13", "") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert found == {
        "2001:db8::12": f"2001:db8::12 on va is tentative: duplicate address detection has "
                        f"not finished {nodad}",
        "2001:db8::13": f"2001:db8::13 on va failed duplicate address detection {nodad}",
        "2001:db8::99": "2001:db8::99 is not an address of this director (put it on lo)",
    }, sh(*ns, "-6", "addr", "show")
