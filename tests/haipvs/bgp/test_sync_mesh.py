"""ipvs.sync_daemon.mode mesh: master and backup from start, with no VRRP at all (the
scale-out directors each hold every other director's connections)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from support import FakeVrrpPart, free_port, until

import checkers
from haipvs.ipvs import FakeIpvsKernel
from haipvs.ipvs.genl import SyncState
from haipvs.supervisor import Supervisor

pytestmark = pytest.mark.asyncio


class SyncRecordingKernel(FakeIpvsKernel):
    """The fake kernel plus the sync-daemon calls, recorded (the netlink port has them)."""

    def __init__(self) -> None:
        super().__init__()
        self.running: set[SyncState] = set()

    async def set_sync_daemon(self, state: SyncState, interface: str, syncid: int,
                              **options: object) -> None:
        self.running.add(state)

    async def stop_sync_daemon(self, state: SyncState) -> None:
        self.running.discard(state)


async def test_mesh_runs_master_and_backup_without_vrrp(tmp_path: Path) -> None:
    config = tmp_path / "haipvs.yaml"
    config.write_text(f"""
director: {{name: d1, api: 127.0.0.1:{free_port()}, log_format: json}}
ipvs:
  sync_daemon: {{interface: lo, syncid: 7, mode: mesh}}
virtual_servers:
  - vip: 192.0.2.10
    port: 80
    scheduler: mh
    scheduler_flags: [mh-port]
    forwarding: tun
    real_servers: [{{address: 10.1.1.2, port: 80}}]
""")
    config.chmod(0o644)
    kernel = SyncRecordingKernel()
    supervisor = Supervisor(str(config), kernel=kernel, vrrp_factory=FakeVrrpPart,
                            prober=checkers.ScriptedProber(
                                default=checkers.ProbeResult(True, "ok", 0.001)))
    task = asyncio.create_task(supervisor.run())
    await until(lambda: supervisor.programmer is not None)
    await until(lambda: kernel.running == {SyncState.MASTER, SyncState.BACKUP})
    supervisor.request_shutdown()
    assert await task == 0
