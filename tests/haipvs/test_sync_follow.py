"""The supervisor runs the IPVS sync daemon in the role VRRP calls for.

keepalived ``lvs_sync_daemon``: the VRRP master runs the *master* sync daemon (it
sends connection state), the backup (and a faulted instance) the *backup* one
(the rule: haipvs.ipvs.sync_roles, tested alone in tests/haipvs/ipvs/test_sync_roles.py).
VRRP transitions arrive on the VRRP thread; the kernel socket belongs to the
supervisor's loop, so the kernel calls must happen there, and a burst of transitions
must end in the role of the last one.

The kernel is the strict fake (it refuses a second start with EEXIST and a stop of a
daemon that does not run with ESRCH, as the real port does: tests/contract). No wall
clock: each step waits for the supervisor's sync worker to finish, not for time to pass.
The lab test tests/lab/test_conn_sync.py shows the effect end to end.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from support import FakeHost, FakeVrrpPart, free_port, until

import checkers
from haipvs.ipvs import FakeIpvsKernel
from haipvs.ipvs.genl import SyncState
from haipvs.supervisor import Supervisor

pytestmark = pytest.mark.asyncio

Callback = Callable[[str, str, str, str, str], None]


class LoopRecordingKernel(FakeIpvsKernel):
    """The strict fake, noting which event loop each sync-daemon call ran on."""

    def __init__(self) -> None:
        super().__init__(interfaces=("eth0", "eth1"))
        self.loops: set[int] = set()

    async def set_sync_daemon(self, state: SyncState, interface: str, syncid: int,
                              **options: object) -> None:
        self.loops.add(id(asyncio.get_running_loop()))
        await super().set_sync_daemon(state, interface, syncid, **options)  # type: ignore[arg-type]

    async def stop_sync_daemon(self, state: SyncState) -> None:
        self.loops.add(id(asyncio.get_running_loop()))
        await super().stop_sync_daemon(state)


def write_config(path: Path, *, syncid: int = 7) -> None:
    path.write_text(f"""
director:
  name: lb-test
  api: 127.0.0.1:{free_port()}
  log_format: json
vrrp:
  - name: VI_WEB
    interface: eth0
    vrid: 51
    priority: 100
    advert_interval: 1
    vips: [198.51.100.10/24]
ipvs:
  sync_daemon: {{interface: eth1, instance: VI_WEB, syncid: {syncid}}}
  programmer: {{min_interval: 0.01, max_interval: 5}}
virtual_servers:
  - name: web
    vip: 198.51.100.10
    port: 80
    scheduler: wlc
    real_servers:
      - {{address: 10.0.0.11, port: 80}}
""")
    path.chmod(0o644)


def from_vrrp_thread(
    callback: Callback, *transitions: tuple[str, str], instance: str = "VI_WEB"
) -> None:
    """Deliver transitions the way VrrpService does: from its own thread."""

    def deliver() -> None:
        for old, new in transitions:
            callback(instance, old, new, "test", "")

    thread = threading.Thread(target=deliver)
    thread.start()
    thread.join()


async def settled(supervisor: Supervisor) -> None:
    """The transitions handed over have reached the loop, and the sync worker applied
    the last wanted roles (no kernel call is pending any more)."""
    await asyncio.sleep(0)  # run the call_soon_threadsafe callbacks queued by the thread
    task = supervisor._sync_task
    if task is not None:
        await task


@contextlib.asynccontextmanager
async def running_daemon(
    tmp_path: Path,
) -> AsyncIterator[tuple[Supervisor, LoopRecordingKernel, Callback]]:
    """The supervisor on the config above; (it, its kernel, its VRRP part's callback)."""
    config = tmp_path / "haipvs.yaml"
    write_config(config)
    kernel = LoopRecordingKernel()
    FakeVrrpPart.last = None
    supervisor = Supervisor(
        str(config), kernel=kernel, vrrp_factory=FakeVrrpPart, host=FakeHost(),
        prober=checkers.ScriptedProber(default=checkers.ProbeResult(True, "ok", 0.001)),
    )
    task = asyncio.create_task(supervisor.run())
    try:
        await until(lambda: FakeVrrpPart.last is not None)
        assert FakeVrrpPart.last is not None
        yield supervisor, kernel, FakeVrrpPart.last.on_transition
    finally:
        supervisor.request_shutdown()
        await task


async def test_the_sync_daemon_follows_vrrp_on_the_supervisor_loop(tmp_path: Path) -> None:
    async with running_daemon(tmp_path) as (supervisor, kernel, callback):
        from_vrrp_thread(callback, ("INIT", "BACKUP"))
        await settled(supervisor)
        assert kernel.sync_running == {SyncState.BACKUP}
        # A takeover, a step-down and a takeover again in one burst: the last one wins.
        from_vrrp_thread(callback, ("BACKUP", "MASTER"), ("MASTER", "BACKUP"),
                         ("BACKUP", "MASTER"))
        await settled(supervisor)
        assert kernel.sync_running == {SyncState.MASTER}
        (daemon,) = await kernel.sync_daemons()
        assert (daemon.interface, daemon.syncid) == ("eth1", 7)
        assert kernel.sync_calls[-1] == ("set", SyncState.MASTER)
        # FAULT listens like a backup: only the master sends connection state.
        from_vrrp_thread(callback, ("MASTER", "FAULT"))
        await settled(supervisor)
        assert kernel.sync_running == {SyncState.BACKUP}
        # Every kernel call ran on the supervisor's loop, not the VRRP thread's.
        assert kernel.loops == {id(asyncio.get_running_loop())}


async def test_transitions_of_another_instance_leave_the_sync_daemon_alone(
    tmp_path: Path,
) -> None:
    async with running_daemon(tmp_path) as (supervisor, kernel, callback):
        from_vrrp_thread(callback, ("BACKUP", "MASTER"), instance="VI_OTHER")
        await settled(supervisor)
        assert kernel.sync_calls == []
        # INIT (starting, stopping) changes no role either.
        from_vrrp_thread(callback, ("BACKUP", "INIT"))
        await settled(supervisor)
        assert kernel.sync_calls == []


async def test_a_daemon_left_running_by_a_predecessor_is_replaced_not_refused(
    tmp_path: Path,
) -> None:
    async with running_daemon(tmp_path) as (supervisor, kernel, callback):
        # A crashed predecessor left the master daemon running: the kernel would refuse
        # a second start (EEXIST), so every role is stopped first.
        await kernel.set_sync_daemon(SyncState.MASTER, "eth1", 3)
        with capture_logs() as logs:
            from_vrrp_thread(callback, ("BACKUP", "MASTER"))
            await settled(supervisor)
        assert kernel.sync_running == {SyncState.MASTER}
        (daemon,) = await kernel.sync_daemons()
        assert daemon.syncid == 7
        assert [line["event"] for line in logs if "sync_daemon" in line["event"]] == [
            "ipvs.sync_daemon.started"
        ]


async def test_a_refused_start_is_one_error_line_and_the_daemon_carries_on(
    tmp_path: Path,
) -> None:
    config = tmp_path / "haipvs.yaml"
    write_config(config)
    kernel = FakeIpvsKernel(interfaces=("eth0",))  # no eth1: the kernel says ENODEV
    FakeVrrpPart.last = None
    supervisor = Supervisor(
        str(config), kernel=kernel, vrrp_factory=FakeVrrpPart, host=FakeHost(),
        prober=checkers.ScriptedProber(default=checkers.ProbeResult(True, "ok", 0.001)),
    )
    task = asyncio.create_task(supervisor.run())
    await until(lambda: FakeVrrpPart.last is not None)
    assert FakeVrrpPart.last is not None
    with capture_logs() as logs:
        from_vrrp_thread(FakeVrrpPart.last.on_transition, ("INIT", "BACKUP"))
        await settled(supervisor)
    (failed,) = [line for line in logs if line["event"] == "ipvs.sync_daemon.failed"]
    assert (failed["state"], failed["iface"], failed["errno"]) == ("backup", "eth1", 19)
    assert kernel.sync_running == frozenset()
    supervisor.request_shutdown()
    assert await task == 0
