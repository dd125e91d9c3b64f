"""Scale-out mode: the kernel's real-server list is the same on every director whatever
order their checks came up in (mh builds its table in that list's order)."""

from __future__ import annotations

import asyncio
from ipaddress import ip_address
from pathlib import Path

import pytest
from support import FakeVrrpPart, free_port, until
from test_supervisor_hook import write_config

import checkers
from haipvs.bgp.fake import FakeSpeaker
from haipvs.ipvs import DestKey, FakeIpvsKernel, ServiceKey
from haipvs.ipvs.fingerprint import in_canonical_order
from haipvs.supervisor import Supervisor

pytestmark = pytest.mark.asyncio
VS = ServiceKey.tcp("192.0.2.10", 80)
RS1, RS2 = DestKey("10.1.1.2", 80), DestKey("10.1.2.2", 80)


async def test_checks_coming_up_in_any_order_leave_the_list_in_canonical_order(
    tmp_path: Path,
) -> None:
    bird_conf = tmp_path / "haipvs-bird.conf"
    write_config(tmp_path / "haipvs.yaml", free_port(), bird_conf)
    sloppy = tmp_path / "sloppy_tcp"
    sloppy.write_text("1\n")
    kernel = FakeIpvsKernel()
    down = checkers.ProbeResult(False, "connect refused", 0.001)
    up = checkers.ProbeResult(True, "connected", 0.001)
    prober = checkers.ScriptedProber(default=up)
    prober.always(checkers.Target(ip_address("10.1.1.2"), 80), down)  # the lower one is late
    supervisor = Supervisor(
        str(tmp_path / "haipvs.yaml"), kernel=kernel, prober=prober, vrrp_factory=FakeVrrpPart,
        bgp_speaker=lambda _socket: FakeSpeaker(config_file=bird_conf),
        sloppy_tcp_file=str(sloppy), bgp_vip_check=lambda _vips: {},
        admin_socket=str(tmp_path / "admin.sock"), overrides_file=str(tmp_path / "o.json"),
    )
    task = asyncio.create_task(supervisor.run())

    def weights() -> dict[DestKey, int]:
        entry = kernel.table.services.get(VS)
        return {} if entry is None else {key: d.weight for key, d in entry.dests.items()}

    await until(lambda: weights() == {RS1: 0, RS2: 1})
    prober.always(checkers.Target(ip_address("10.1.1.2"), 80), up)
    await until(lambda: weights() == {RS1: 1, RS2: 1})
    # Added in one sync, sorted, the down one at weight 0: newest first, so descending,
    # as on a director whose checks came up in the other order.
    assert list(kernel.table[VS].dests) == [RS2, RS1]
    assert in_canonical_order(kernel.table[VS])
    supervisor.request_shutdown()
    assert await task == 0
