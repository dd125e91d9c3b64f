"""The supervisor runs the IPVS sync daemon in the role VRRP calls for (issue 9).

keepalived ``lvs_sync_daemon``: the VRRP master runs the *master* sync daemon (it
sends connection state), the backup (and a faulted instance) the *backup* one. VRRP
transitions arrive on the VRRP thread; the kernel socket belongs to the supervisor's
loop, so the kernel calls must happen there, with ``genl.SyncState`` values, and a
burst of transitions must end in the role of the last one.

The lab test tests/lab/test_conn_sync.py shows the effect end to end (a TCP connection
through the VIP survives a master crash); this one pins the supervisor's part against
a recording fake kernel, no lab needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from support import FakeHost, FakeVrrpPart, free_port, until

import checkers
from haipvs.ipvs import FakeIpvsKernel
from haipvs.ipvs.genl import SyncState
from haipvs.supervisor import Supervisor

Callback = Callable[[str, str, str, str, str], None]


class RecordingKernel(FakeIpvsKernel):
    """The strict fake table plus the sync-daemon verbs of NetlinkIpvsKernel, recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.daemon_calls: list[tuple[Any, ...]] = []
        self.running: set[SyncState] = set()
        self.loops: set[int] = set()

    async def set_sync_daemon(
        self, state: SyncState, interface: str, syncid: int, **options: object
    ) -> None:
        self.loops.add(id(asyncio.get_running_loop()))
        self.daemon_calls.append(("set", state, interface, syncid))
        if not isinstance(state, SyncState):
            raise TypeError(f"state {state!r} is not a SyncState")
        if state in self.running:
            raise OSError(17, "File exists")  # the kernel: EEXIST
        self.running.add(state)

    async def stop_sync_daemon(self, state: SyncState) -> None:
        self.loops.add(id(asyncio.get_running_loop()))
        self.daemon_calls.append(("stop", state))
        if not isinstance(state, SyncState):
            raise TypeError(f"state {state!r} is not a SyncState")
        if state not in self.running:
            raise OSError(3, "No such process")  # the kernel: ESRCH
        self.running.discard(state)


def write_config(path: Path) -> None:
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
  sync_daemon: {{interface: eth1, instance: VI_WEB, syncid: 7}}
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
    """Deliver transitions the way VrrpService does: from a coroutine on its own
    thread's event loop (which then goes on with VRRP, here: ends)."""

    async def deliver() -> None:
        for old, new in transitions:
            callback(instance, old, new, "test", "")
        await asyncio.sleep(0.05)

    thread = threading.Thread(target=asyncio.run, args=(deliver(),))
    thread.start()
    thread.join()


@contextlib.asynccontextmanager
async def running_daemon(tmp_path: Path) -> AsyncIterator[tuple[RecordingKernel, Callback]]:
    """The supervisor on the config above; (its kernel, its VRRP part's transition callback)."""
    config = tmp_path / "haipvs.yaml"
    write_config(config)
    kernel = RecordingKernel()
    FakeVrrpPart.last = None
    supervisor = Supervisor(
        str(config), kernel=kernel, vrrp_factory=FakeVrrpPart, host=FakeHost(),
        prober=checkers.ScriptedProber(default=checkers.ProbeResult(True, "ok", 0.001)),
    )
    task = asyncio.create_task(supervisor.run())
    try:
        await until(lambda: FakeVrrpPart.last is not None)
        assert FakeVrrpPart.last is not None
        yield kernel, FakeVrrpPart.last.on_transition
    finally:
        supervisor.request_shutdown()
        await task


async def test_the_sync_daemon_follows_vrrp_on_the_supervisor_loop(tmp_path: Path) -> None:
    async with running_daemon(tmp_path) as (kernel, callback):
        from_vrrp_thread(callback, ("INIT", "BACKUP"))
        await until(lambda: kernel.running == {SyncState.BACKUP})
        # A takeover, a step-down and a takeover again in one burst: the last one wins.
        from_vrrp_thread(callback, ("BACKUP", "MASTER"), ("MASTER", "BACKUP"),
                         ("BACKUP", "MASTER"))
        await until(lambda: kernel.running == {SyncState.MASTER}
                    and kernel.daemon_calls[-1][0] == "set")
        await asyncio.sleep(0.1)  # any call still queued would land now
        assert kernel.running == {SyncState.MASTER}
        assert kernel.daemon_calls[-1] == ("set", SyncState.MASTER, "eth1", 7)
        # FAULT listens like a backup: only the master sends connection state.
        from_vrrp_thread(callback, ("MASTER", "FAULT"))
        await until(lambda: kernel.running == {SyncState.BACKUP})
        # Every kernel call ran on the supervisor's loop, not the VRRP thread's.
        assert kernel.loops == {id(asyncio.get_running_loop())}


async def test_transitions_of_another_instance_leave_the_sync_daemon_alone(
    tmp_path: Path,
) -> None:
    async with running_daemon(tmp_path) as (kernel, callback):
        from_vrrp_thread(callback, ("BACKUP", "MASTER"), instance="VI_OTHER")
        await asyncio.sleep(0.1)
        assert kernel.daemon_calls == []
