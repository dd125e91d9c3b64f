"""The supervisor in scale-out mode: the BGP part starts with it, follows health, shows in
/status and withdraws every VIP before anything else stops (fake kernel, fake speaker)."""

from __future__ import annotations

import asyncio
import json
from ipaddress import ip_address
from pathlib import Path

import aiohttp
import jsonschema
import pytest
from structlog.testing import capture_logs
from support import FakeVrrpPart, free_port, until

import checkers
from haipvs.bgp.fake import FakeSpeaker
from haipvs.ipvs import FakeIpvsKernel
from haipvs.supervisor import Supervisor

pytestmark = pytest.mark.asyncio
PROTOCOL = "haipvs_vip_192_0_2_10"


def write_config(path: Path, port: int, bird_conf: Path) -> None:
    path.write_text(f"""
director:
  name: d1
  api: 127.0.0.1:{port}
  log_format: json
ipvs:
  programmer: {{min_interval: 0.01, max_interval: 5}}
virtual_servers:
  - vip: 192.0.2.10
    port: 80
    scheduler: mh
    scheduler_flags: [mh-port, mh-fallback]
    forwarding: tun
    drain: {{timeout: 0}}
    check: {{type: tcp, interval: 0.05, timeout: 0.04, rise: 1, fall: 1}}
    real_servers:
      - {{address: 10.1.1.2, port: 80}}
      - {{address: 10.1.2.2, port: 80}}
bgp:
  control_socket: /nonexistent/bird.ctl
  config_file: {bird_conf}
  router_id: 10.0.1.2
  local_as: 65001
  neighbours: [{{address: 10.0.1.1, remote_as: 65000}}]
  need: 2
""")
    path.chmod(0o644)


async def test_scale_out_announces_follows_health_and_withdraws_first_on_shutdown(
    tmp_path: Path,
) -> None:
    port = free_port()
    bird_conf = tmp_path / "haipvs-bird.conf"
    write_config(tmp_path / "haipvs.yaml", port, bird_conf)
    speaker = FakeSpeaker(config_file=bird_conf)
    kernel = FakeIpvsKernel()
    services_at_withdraw: list[int] = []
    withdraw = speaker.withdraw

    async def recording_withdraw(protocol: str) -> bool:
        services_at_withdraw.append(len(kernel.table))
        return await withdraw(protocol)

    speaker.withdraw = recording_withdraw  # type: ignore[method-assign]
    dests_at_announce: list[int] = []
    announce = speaker.announce

    async def recording_announce(protocol: str) -> bool:
        dests_at_announce.append(sum(len(entry.dests) for entry in kernel.table.values()))
        return await announce(protocol)

    speaker.announce = recording_announce  # type: ignore[method-assign]
    prober = checkers.ScriptedProber(default=checkers.ProbeResult(True, "connected", 0.001))
    sloppy = tmp_path / "sloppy_tcp"  # the kernel's 0 until haipvs sets it
    sloppy.write_text("0\n")
    supervisor = Supervisor(str(tmp_path / "haipvs.yaml"), kernel=kernel, prober=prober,
                            vrrp_factory=FakeVrrpPart, remove_ipvs_on_exit=True,
                            bgp_speaker=lambda socket: speaker,
                            sloppy_tcp_file=str(sloppy),
                            bgp_vip_check=lambda _vips: {})  # the host holds no VIP
    task = asyncio.create_task(supervisor.run())
    await until(lambda: supervisor.programmer is not None)
    programmer = supervisor.programmer
    assert programmer is not None
    with capture_logs() as logs:  # after start: the daemon configures logging itself
        await until(lambda: speaker.announced() == {PROTOCOL})
        # Announced only once both real servers were in the kernel (need 2).
        assert dests_at_announce == [2]
        # ... and once sloppy_tcp was 1: haipvs set it.
        assert sloppy.read_text() == "1\n"
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/status") as response,
        ):
            status = await response.json()
        jsonschema.validate(status, json.loads(Path("docs/status.schema.json").read_text()))
        assert status["bgp"]["announced"] == ["192.0.2.10"]
        assert status["bgp"]["protocols"][PROTOCOL] == "up"

        prober.always(checkers.Target(ip_address("10.1.2.2"), 80),
                      checkers.ProbeResult(False, "connect refused", 0.001))
        await until(lambda: speaker.announced() == frozenset())
        withdrawn = [e for e in logs if e["event"] == "bgp.vip.withdrawn"]
        need = "need 2 real servers up on tcp/192.0.2.10:80, 1 up"
        assert withdrawn[0]["reason"].startswith(need)

        prober.always(checkers.Target(ip_address("10.1.2.2"), 80),
                      checkers.ProbeResult(True, "connected", 0.001))
        await until(lambda: speaker.announced() == {PROTOCOL})
        assert dests_at_announce[-1] == 2
        services_at_withdraw.clear()
        supervisor.request_shutdown()
        assert await task == 0
    assert speaker.announced() == frozenset()
    # Withdrawn while the IPVS service was still in the kernel; removed after.
    assert services_at_withdraw == [1]
    assert len(kernel.table) == 0
    assert [e["reason"] for e in logs if e["event"] == "bgp.vip.withdrawn"][-1] == "shutting down"
