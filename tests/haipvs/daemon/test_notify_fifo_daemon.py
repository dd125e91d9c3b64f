"""director.notify_fifo: the daemon writes keepalived's lines, in the order it learns of the
changes, to a FIFO a reader holds open (the way keepalived's sample_notify_fifo.sh reads)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from ipaddress import ip_address
from pathlib import Path

from support import FakeVrrpPart, free_port, until

import checkers
from haipvs.ipvs.fake import FakeIpvsKernel
from haipvs.supervisor import Supervisor


def config(port: int, fifo: Path) -> str:
    return f"""
director:
  name: lb-test
  api: 127.0.0.1:{port}
  log_format: json
  notify_fifo: {fifo}
vrrp:
  - name: VI_1
    interface: eth0
    vrid: 51
    priority: 150
    vips: [198.51.100.10/24]
ipvs:
  programmer: {{min_interval: 0.01, max_interval: 5}}
virtual_servers:
  - name: web
    vip: 198.51.100.10
    port: 80
    drain: {{timeout: 0}}
    check: {{type: tcp, interval: 0.05, timeout: 0.04, rise: 1, fall: 1, alpha: false}}
    quorum: {{min_up: 1}}
    real_servers:
      - {{address: 10.0.0.11, port: 8080}}
"""


async def test_instance_rs_and_vs_lines_reach_the_fifo_in_order(tmp_path: Path) -> None:
    fifo = tmp_path / "notify"
    os.mkfifo(fifo, 0o600)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # held open, as a listener would
    received = b""

    def lines() -> list[str]:
        nonlocal received
        with contextlib.suppress(BlockingIOError):  # nothing written yet
            received += os.read(reader, 65536)
        return received.decode().splitlines()

    prober = checkers.ScriptedProber(default=checkers.ProbeResult(True, "connected", 0.001))
    path = tmp_path / "haipvs.yaml"
    path.write_text(config(free_port(), fifo))
    path.chmod(0o644)
    FakeVrrpPart.last = None
    supervisor = Supervisor(
        str(path), kernel=FakeIpvsKernel(), prober=prober, vrrp_factory=FakeVrrpPart
    )
    task = asyncio.create_task(supervisor.run())
    try:
        await until(lambda: supervisor.programmer is not None and FakeVrrpPart.last is not None)
        part = FakeVrrpPart.last
        assert part is not None
        # The first check result comes first (the start-up, before any VRRP transition).
        up = "RS [10.0.0.11]:tcp:8080 [198.51.100.10]:tcp:80 UP"
        await until(lambda: lines() == [up])
        part.on_transition("VI_1", "INIT", "BACKUP", "startup", "")
        part.on_transition("VI_1", "BACKUP", "MASTER", "master_down_timer", "")
        await until(lambda: len(lines()) >= 3)
        target = checkers.Target(ip_address("10.0.0.11"), 8080)
        prober.always(target, checkers.ProbeResult(False, "connect refused", 0.001))
        await until(lambda: 'VS [198.51.100.10]:tcp:80 DOWN' in lines())
        assert lines() == [
            up,
            'INSTANCE "VI_1" BACKUP 150',
            'INSTANCE "VI_1" MASTER 150',
            "RS [10.0.0.11]:tcp:8080 [198.51.100.10]:tcp:80 DOWN",
            "VS [198.51.100.10]:tcp:80 DOWN",
        ]
    finally:
        supervisor.request_shutdown()
        assert await task == 0
        os.close(reader)
