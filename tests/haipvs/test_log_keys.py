"""One form for the `vs` and `rs` log keys on every line about a service or real server.

On-call greps one real server across its `check.down`, the kernel op that follows and
its drain: the checkers, the IPVS programmer and the drain tracker must render the two
keys identically, for an IPv4, an IPv6 and a fwmark service (named or not).
"""

from __future__ import annotations

import asyncio
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs
from support import FakeVrrpPart, free_port, until

import checkers
from haipvs.config import load_config_text
from haipvs.ipvs import FakeIpvsKernel
from haipvs.supervisor import Supervisor

CHECK = "{type: tcp, port: 80, interval: 0.05, timeout: 0.04, rise: 1, fall: 1}"
CONFIG = """
director:
  name: lb-test
  api: 127.0.0.1:API_PORT
  log_format: json
ipvs:
  programmer: {min_interval: 0.01, max_interval: 5}
virtual_servers:
  - name: web
    vip: 198.51.100.10
    port: 80
    drain: {timeout: 5}
    check: CHECK
    real_servers:
      - {address: 10.0.0.11, port: 8080}
      - {address: 10.0.0.12, port: 8080}
  - vip: 2001:db8::10
    port: 443
    drain: {timeout: 5}
    check: CHECK
    real_servers:
      - {address: 2001:db8::11}
      - {address: 2001:db8::12}
  - name: mark
    fwmark: 10
    family: ipv6
    drain: {timeout: 5}
    check: CHECK
    real_servers:
      - {address: 2001:db8::21}
      - {address: 2001:db8::22}
""".replace("CHECK", CHECK)

#: The failing real server of each service, and the keys every line about it carries.
FAILING = {
    ("tcp/198.51.100.10:80", "10.0.0.12:8080"): checkers.Target(ip_address("10.0.0.12"), 8080),
    ("tcp/[2001:db8::10]:443", "[2001:db8::12]:443"): checkers.Target(
        ip_address("2001:db8::12"), 443
    ),
    ("fwmark6/10", "[2001:db8::22]:0"): checkers.Target(ip_address("2001:db8::22"), 0),
}
#: check.down, then the kernel op that takes the server out (weight 0: the drain starts),
#: then the op that deletes it when the drain ends.
EVENTS = ("check.down", "ipvs.dest.drain.started", "ipvs.dest.drain.finished")


def test_the_config_renders_the_keys_as_the_kernel_side_does() -> None:
    config = load_config_text(CONFIG.replace("API_PORT", "9797"), "test.yaml").config
    assert [vs.label for vs in config.virtual_servers] == [vs for vs, _ in FAILING]


@pytest.mark.asyncio
async def test_check_ipvs_and_drain_lines_carry_the_same_vs_and_rs(tmp_path: Path) -> None:
    port = free_port()
    path = tmp_path / "haipvs.yaml"
    path.write_text(CONFIG.replace("API_PORT", str(port)))
    path.chmod(0o644)
    prober = checkers.ScriptedProber(default=checkers.ProbeResult(True, "connected", 0.001))
    kernel = FakeIpvsKernel()
    supervisor = Supervisor(str(path), kernel=kernel, prober=prober, vrrp_factory=FakeVrrpPart)
    task = asyncio.create_task(supervisor.run())
    await until(lambda: sum(len(entry.dests) for entry in kernel.table.values()) == 6)
    # The daemon configured structlog at start; capture from here on.
    with capture_logs() as logs:
        for target in FAILING.values():
            prober.always(target, checkers.ProbeResult(False, "connect refused", 0.001))

        def seen(keys: tuple[str, str], event: str) -> bool:
            return any(_keys(line) == keys and line["event"] == event for line in logs)

        await until(lambda: all(seen(keys, "ipvs.dest.drain.finished") for keys in FAILING))
        supervisor.request_shutdown()
        assert await task == 0
    for keys in FAILING:
        for event in EVENTS:
            assert seen(keys, event), f"no {event} line with vs={keys[0]} rs={keys[1]}"
    # No line about these servers uses another form of the keys.
    about = [line for line in logs if "rs" in line and line["rs"] in {rs for _, rs in FAILING}]
    assert {_keys(line) for line in about} == set(FAILING)


def _keys(line: dict[str, Any]) -> tuple[str, str] | None:
    if "vs" not in line or "rs" not in line:
        return None
    return (str(line["vs"]), str(line["rs"]))
