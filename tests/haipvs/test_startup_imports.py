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
