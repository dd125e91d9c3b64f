"""keepalived quorum_up / quorum_down through the supervisor (fake kernel, scripted probes)."""

from __future__ import annotations

import asyncio
from ipaddress import ip_address
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from support import FakeVrrpPart, free_port, until

import checkers
from haipvs.ipvs import FakeIpvsKernel
from haipvs.supervisor import Supervisor

pytestmark = pytest.mark.asyncio


def config(port: int, record: Path) -> str:
    return f"""
director:
  name: lb-test
  api: 127.0.0.1:{port}
  log_format: json
ipvs:
  programmer: {{min_interval: 0.01, max_interval: 5}}
virtual_servers:
  - name: web
    vip: 198.51.100.10
    port: 80
    drain: {{timeout: 0}}
    check: {{type: tcp, interval: 0.05, timeout: 0.04, rise: 1, fall: 1}}
    quorum:
      min_weight: 3
      up: [/bin/sh, -c, "echo up >> {record}"]
      down: [/bin/sh, -c, "echo down >> {record}"]
    sorry_server: 10.0.0.250:80
    real_servers:
      - {{address: 10.0.0.11, port: 80, weight: 1}}
      - {{address: 10.0.0.12, port: 80, weight: 2}}
"""


async def test_quorum_commands_run_on_loss_and_return_in_order(tmp_path: Path) -> None:
    prober = checkers.ScriptedProber(default=checkers.ProbeResult(True, "connected", 0.001))
    record = tmp_path / "quorum.log"
    path = tmp_path / "haipvs.yaml"
    path.write_text(config(free_port(), record))
    path.chmod(0o644)
    kernel = FakeIpvsKernel()
    supervisor = Supervisor(str(path), kernel=kernel, prober=prober, vrrp_factory=FakeVrrpPart)
    task = asyncio.create_task(supervisor.run())

    def lines() -> list[str]:
        return record.read_text().split() if record.exists() else []

    await until(lambda: supervisor.programmer is not None)
    target = checkers.Target(ip_address("10.0.0.12"), 80)
    # The checks start from down (alpha): below quorum at start, then regained, as
    # keepalived runs quorum_down and quorum_up for a virtual server with alpha.
    await until(lambda: lines() == ["down", "up"])
    vs = "tcp/198.51.100.10:80"
    with capture_logs() as logs:  # after start-up: the supervisor configures logging

        def commands() -> list[tuple[str, str]]:
            return [(e["hook"], e["vs"]) for e in logs if e["event"] == "ipvs.quorum.command"]

        prober.always(target, checkers.ProbeResult(False, "connect refused", 0.001))
        await until(lambda: lines() == ["down", "up", "down"])
        prober.always(target, checkers.ProbeResult(True, "connected", 0.001))
        await until(lambda: lines() == ["down", "up", "down", "up"])
        await until(lambda: commands()[-2:] == [("down", vs), ("up", vs)])
    # A command's line is logged once it finished, after its output: the start-up "up"
    # may still be logged inside this window (a loaded machine), never anything else.
    assert commands() in ([("down", vs), ("up", vs)], [("up", vs), ("down", vs), ("up", vs)])
    lost = [e["detail"] for e in logs if e["event"] == "ipvs.quorum.lost"]
    assert lost == ["1 weight up < min_weight 3"]
    supervisor.request_shutdown()
    assert await task == 0
