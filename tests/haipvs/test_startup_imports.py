"""What the daemon's path to BACKUP and to a hot IPVS table imports, in a fresh interpreter.

Every module loaded before the VRRP process is BACKUP and the table is adopted is start-up
time (bench/startup.py; in the lab guest a large library costs 0.2-0.3 s). These tests
hold the libraries that path does not need out of it: each runs the import (or the start
step) in a fresh interpreter and names the top-level packages that were loaded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def _loaded(code: str, *, netns: bool = False) -> set[str]:
    probe = (
        "import json, sys\n"
        f"{code}\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    argv = [sys.executable, "-c", probe]
    result = subprocess.run(["unshare", "--net", *argv] if netns else argv,
                            capture_output=True, text=True, check=True, timeout=120)
    return set(json.loads(result.stdout.splitlines()[-1]))


def _packages(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def test_checker_pool_loads_no_dns_library() -> None:
    # dnspython is loaded by the first DNS check, not by the pool the daemon builds
    # before its first IPVS sync.
    loaded = _loaded("import checkers.pool")
    assert "checkers.pool" in loaded
    assert "dns" not in _packages(loaded)
    assert "checkers.dns" not in loaded
    # (the DNS probe itself still runs through run_probe: tests/checkers/test_dns.py)



@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="a network namespace needs root and unshare(1)")
def test_vrrp_start_and_takeover_io_import_no_pyroute2() -> None:
    # What the VRRP process does on its way to BACKUP (the advert socket, with the
    # interface's primary address and subnets; stale VIPs removed; link state) and at
    # a takeover (VIPs added): all through vrrp.rtnl. pyroute2 (0.2-0.9 s of import in
    # the lab guest) is loaded only by the link monitor's subscription, which starts
    # with an instance that tracks interfaces: never on the path to BACKUP of one that
    # does not, and never at a takeover.
    code = """
import asyncio, socket
from ipaddress import ip_address, ip_interface
from vrrp.rtnl import Rtnl
from vrrp.linux import LinuxPorts, NetlinkLinkMonitor, LinuxVipAddresses, open_advert_link
with Rtnl() as rtnl:
    rtnl.add_address(socket.if_nametoindex("lo"), ip_address("192.0.2.7"), 24)
async def main():
    link = await open_advert_link("lo", 4, vrid=51)
    link.close()
    vips = LinuxVipAddresses()
    await vips.remove("lo", ip_interface("192.0.2.100/24"))
    await vips.add("lo", ip_interface("192.0.2.100/24"))
    assert ip_interface("192.0.2.100/24") in await vips.list("lo")
    vips.close()
    assert await NetlinkLinkMonitor().is_up("lo") is False  # down in a new namespace
    LinuxPorts().close()
asyncio.run(main())
"""
    loaded = _loaded(code, netns=True)
    assert "vrrp.linux" in loaded
    assert "pyroute2" not in _packages(loaded)


def test_loading_a_file_builds_only_the_sections_it_has(tmp_path: Path) -> None:
    # The config models build their validators on first use (defer_build): a VRRP pair's
    # start builds neither the bgp section's nor the root Config's.
    path = tmp_path / "haipvs.yaml"
    path.write_text(EXAMPLE)
    code = f"""
from haipvs.config import load_config
from haipvs.config import model
loaded = load_config({str(path)!r})
built = sorted(name for name, value in vars(model).items() if isinstance(value, type)
               and issubclass(value, model._Model) and value.__pydantic_complete__)
print(json.dumps(built))
sys.exit(0)
"""
    result = subprocess.run([sys.executable, "-c", "import json, sys\n" + code],
                            capture_output=True, text=True, check=True, timeout=120)
    built = set(json.loads(result.stdout.splitlines()[-1]))
    assert {"Director", "VrrpInstance", "VirtualServer", "IpvsSettings"} <= built
    assert "BgpSettings" not in built
    assert "Config" not in built


EXAMPLE = """director:
  name: dir2
vrrp:
  - name: VI_WEB
    interface: eth0
    vrid: 51
    priority: 100
    vips: [198.51.100.10/24]
virtual_servers:
  - name: web
    vip: 198.51.100.10
    port: 80
    check: {type: tcp}
    real_servers:
      - {address: 10.0.0.11, port: 80}
"""


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None
                    or shutil.which("ip") is None,
                    reason="a network namespace needs root, unshare(1) and ip(8)")
def test_a_real_vrrp_service_starts_takes_over_and_resigns_without_pyroute2() -> None:
    # The whole VRRP stack on the Linux ports (a veth in a namespace of its own): BACKUP
    # at start, MASTER after Master_Down_Interval with its VIP added, the VIP removed at
    # stop. None of it loads pyroute2, so no takeover waits for its import.
    code = """
import subprocess, time
from ipaddress import ip_interface
for argv in (["ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1"],
             ["ip", "link", "set", "d1", "up"], ["ip", "link", "set", "d0", "up"],
             ["ip", "addr", "add", "192.0.2.7/24", "dev", "d0"]):
    subprocess.run(argv, check=True)
from vrrp.service import VrrpService
from vrrp.settings import InstanceSettings, VipSpec
states = []
settings = InstanceSettings(name="VI_1", interface="d0", vrid=51, priority=100, version=3,
                            advert_interval=0.05, preempt=True, preempt_delay=0.0,
                            vips=(VipSpec(ip_interface("192.0.2.100/24")),), garp_repeat=1)
service = VrrpService([settings], on_transition=lambda _n, t, _s: states.append(t.new.name),
                      realtime_priority=None, notify=False)
service.start()
deadline = time.monotonic() + 30
while time.monotonic() < deadline and "MASTER" not in states:
    time.sleep(0.05)
def held():
    shown = subprocess.run(["ip", "-o", "addr", "show", "dev", "d0"], capture_output=True,
                           text=True, check=True).stdout
    return "192.0.2.100/24" in shown
held_as_master = held()
service.stop()
assert states[:2] == ["BACKUP", "MASTER"], states
assert held_as_master and not held()
"""
    loaded = _loaded(code, netns=True)
    assert "vrrp.linux" in loaded
    assert "pyroute2" not in _packages(loaded)
