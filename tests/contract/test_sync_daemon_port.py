"""One contract for every SyncDaemonPort: the strict fake and the real kernel alike.

Each test runs against ``FakeIpvsKernel`` (anywhere) and ``NetlinkIpvsKernel`` in a fresh
network namespace of the lab kernel (``lab`` marker; ``.venv/bin/haipvs lab run --
.venv/bin/pytest -m lab tests/contract/test_sync_daemon_port.py``). The kernel is the
truth: a second start of a role is EEXIST, a stop of a role that does not run ESRCH, an
unknown interface ENODEV, all as ``KernelError``. Starting a daemon sends nothing until
there are connections to sync.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import os
import subprocess
from collections.abc import AsyncIterator, Iterator

import pytest

from haipvs.ipvs.errors import EEXIST, ESRCH, KernelError
from haipvs.ipvs.fake import FakeIpvsKernel
from haipvs.ipvs.genl import SyncState
from haipvs.ipvs.kernel import SyncDaemonPort

_names = itertools.count()


@pytest.fixture
def namespace() -> Iterator[str]:
    """A fresh network namespace with an interface holding an IPv4 address."""
    name = f"haipvs-syncd-{os.getpid()}-{next(_names)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        ns = ("ip", "netns", "exec", name)
        subprocess.run([*ns, "ip", "link", "set", "lo", "up"], check=True)
        subprocess.run([*ns, "ip", "link", "add", "sync0", "type", "dummy"], check=True)
        subprocess.run([*ns, "ip", "link", "set", "sync0", "up"], check=True)
        subprocess.run([*ns, "ip", "addr", "add", "10.9.0.1/24", "dev", "sync0"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


@pytest.fixture(params=["fake", pytest.param("real", marks=pytest.mark.lab)])
async def port(request: pytest.FixtureRequest) -> AsyncIterator[SyncDaemonPort]:
    if request.param == "fake":
        yield FakeIpvsKernel(interfaces=("lo", "sync0"))
        return
    netlink = pytest.importorskip("haipvs.ipvs.netlink")
    real = netlink.NetlinkIpvsKernel(netns=request.getfixturevalue("namespace"))
    await real.open()
    try:
        yield real
    finally:
        # The namespace's deletion stops its daemons (ip_vs_sync_net_cleanup): no stop
        # here, see test_a_role_stops_and_is_gone.
        await real.close()


async def running(port: SyncDaemonPort) -> dict[int, tuple[str, int]]:
    return {d.state: (d.interface, d.syncid) for d in await port.sync_daemons()}


async def test_nothing_runs_at_first(port: SyncDaemonPort) -> None:
    assert await port.sync_daemons() == []


async def test_both_roles_start_and_read_back(port: SyncDaemonPort) -> None:
    await port.set_sync_daemon(SyncState.MASTER, "sync0", 7)
    await port.set_sync_daemon(SyncState.BACKUP, "sync0", 7, mcast_port=8849, mcast_ttl=2)
    assert await running(port) == {1: ("sync0", 7), 2: ("sync0", 7)}
    backup = next(d for d in await port.sync_daemons() if d.state == 2)
    assert (backup.mcast_port, backup.mcast_ttl) == (8849, 2)


@pytest.mark.parametrize("role", [SyncState.MASTER, SyncState.BACKUP], ids=["master", "backup"])
async def test_a_role_stopped_right_after_its_start_is_gone_at_once(
    port: SyncDaemonPort, role: SyncState
) -> None:
    # Found with this suite on the lab kernel: a stop sent before the daemon's kernel
    # thread first ran gets no ack at all (kthread_stop's -EINTR, which netlink turns
    # into silence), and the adapter used to wait 30 s for it. The stop must answer at
    # once, and the role must be gone.
    await port.set_sync_daemon(role, "sync0", 7)
    await asyncio.wait_for(port.stop_sync_daemon(role), 5)
    assert await port.sync_daemons() == []
    with pytest.raises(KernelError, match=f"stop_sync_daemon {role.name.lower()}") as caught:
        await port.stop_sync_daemon(role)
    assert caught.value.errno == ESRCH


async def test_a_second_start_of_a_role_is_eexist(port: SyncDaemonPort) -> None:
    await port.set_sync_daemon(SyncState.MASTER, "sync0", 7)
    with pytest.raises(KernelError, match="set_sync_daemon master/sync0") as caught:
        await port.set_sync_daemon(SyncState.MASTER, "sync0", 8)
    assert caught.value.errno == EEXIST
    assert await running(port) == {1: ("sync0", 7)}


async def test_stopping_a_role_that_does_not_run_is_esrch(port: SyncDaemonPort) -> None:
    with pytest.raises(KernelError, match="stop_sync_daemon backup") as caught:
        await port.stop_sync_daemon(SyncState.BACKUP)
    assert caught.value.errno == ESRCH


async def test_an_unknown_interface_is_enodev(port: SyncDaemonPort) -> None:
    with pytest.raises(KernelError, match="set_sync_daemon backup/nosuch0") as caught:
        await port.set_sync_daemon(SyncState.BACKUP, "nosuch0", 7)
    assert caught.value.errno == errno.ENODEV
    assert await port.sync_daemons() == []
