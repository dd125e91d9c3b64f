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


CONFIG = """
director: {name: d1, api: 127.0.0.1:API_PORT, log_format: json}
ipvs:
  sync_daemon: {interface: lo, syncid: SYNC_ID, mode: mesh}
virtual_servers:
  - vip: 192.0.2.10
    port: 80
    scheduler: mh
    scheduler_flags: [mh-port]
    forwarding: tun
    real_servers: [{address: 10.1.1.2, port: 80}]
"""


def write_config(path: Path, api_port: int, syncid: int) -> None:
    path.write_text(CONFIG.replace("API_PORT", str(api_port)).replace("SYNC_ID", str(syncid)))
    path.chmod(0o644)


async def syncids(kernel: FakeIpvsKernel) -> dict[int, int]:
    return {daemon.state: daemon.syncid for daemon in await kernel.sync_daemons()}


async def test_mesh_runs_master_and_backup_without_vrrp(tmp_path: Path) -> None:
    config = tmp_path / "haipvs.yaml"
    api_port = free_port()
    write_config(config, api_port, 7)
    kernel = FakeIpvsKernel(interfaces=("lo",))  # strict: EEXIST, ESRCH, ENODEV
    supervisor = Supervisor(str(config), kernel=kernel, vrrp_factory=FakeVrrpPart,
                            prober=checkers.ScriptedProber(
                                default=checkers.ProbeResult(True, "ok", 0.001)))
    task = asyncio.create_task(supervisor.run())
    await until(lambda: supervisor.programmer is not None)
    await until(lambda: kernel.sync_running == {SyncState.MASTER, SyncState.BACKUP})
    assert await syncids(kernel) == {1: 7, 2: 7}
    # A scale-out director's learn counts from when the backup daemon first listened.
    listening = supervisor._bgp_state().learning_since
    assert listening is not None and listening <= asyncio.get_running_loop().time()
    # A reload with new sync settings restarts both roles with them (it used to
    # look for a VRRP state to follow, find none in mesh mode, and keep the old ones).
    write_config(config, api_port, 9)
    outcome = await supervisor.reload()
    assert outcome.applied
    task_of_sync = supervisor._sync_task
    assert task_of_sync is not None
    await task_of_sync
    assert await syncids(kernel) == {1: 9, 2: 9}
    # ... once in the daemon's life: a reload's restart keeps what it learnt.
    assert supervisor._bgp_state().learning_since == listening
    supervisor.request_shutdown()
    assert await task == 0


def sysctl_dir(tmp_path: Path) -> Path:
    """The kernel's defaults, printed as it prints them."""
    directory = tmp_path / "vs"
    directory.mkdir()
    (directory / "sync_threshold").write_text("3\t50\n")
    (directory / "sync_refresh_period").write_text("0\n")
    return directory


async def test_the_mesh_resends_every_connection_by_time_and_a_reload_changes_it(
    tmp_path: Path,
) -> None:
    # The kernel re-sends an established connection every 50 packets: a director that
    # joins learns a quiet long-lived one late or never. The mesh sets a refresh period.
    config = tmp_path / "haipvs.yaml"
    api_port = free_port()
    write_config(config, api_port, 7)
    sysctls = sysctl_dir(tmp_path)
    kernel = FakeIpvsKernel(interfaces=("lo",))
    supervisor = Supervisor(str(config), kernel=kernel, vrrp_factory=FakeVrrpPart,
                            prober=checkers.ScriptedProber(
                                default=checkers.ProbeResult(True, "ok", 0.001)),
                            ipvs_sysctl_dir=str(sysctls))
    task = asyncio.create_task(supervisor.run())
    await until(lambda: (sysctls / "sync_refresh_period").read_text() == "5\n")
    assert (sysctls / "sync_threshold").read_text() == "3 0\n"
    config.write_text(config.read_text().replace("mode: mesh", "mode: mesh, refresh_period: 20"))
    assert (await supervisor.reload()).applied
    await until(lambda: (sysctls / "sync_refresh_period").read_text() == "20\n")
    supervisor.request_shutdown()
    assert await task == 0
