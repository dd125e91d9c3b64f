"""The kernel port of the IPVS programmer: the few verbs it needs from an IPVS table.

Declarations only (a narrow Protocol). ``haipvs.ipvs.netlink.NetlinkIpvsKernel`` implements it on
generic netlink; ``haipvs.ipvs.fake.FakeIpvsKernel`` implements it in memory and fails exactly as
the kernel does. ``tests/contract/test_ipvs_kernel.py`` runs one suite against both.

Contract every implementation keeps:

* ``dump()`` returns every service of the table (owned or not) with its dests and their
  connection counters, values normalised as ``model`` builds them.
* ``apply(op)`` performs exactly one kernel request (UpdateService / UpdateDest are
  IPVS_CMD_SET_*, never pyroute2's 'update', which deletes) and raises ``KernelError`` with the
  kernel's errno: add of an existing service or dest -> EEXIST; delete/update of a missing
  service or add of a dest to a missing service -> ESRCH; delete/update of a missing dest ->
  ENOENT; unknown scheduler -> ENOENT. A failed op leaves the table unchanged.
* ``set_timeouts(tcp, tcpfin, udp)`` (seconds; 0 leaves that one unchanged, as ipvsadm --set)
  and ``get_timeouts()``.

``SyncDaemonPort`` is the kernel's connection-sync daemons (ipvsadm --start-daemon /
--stop-daemon / -L --daemon): ``set_sync_daemon`` raises ``KernelError`` EEXIST when that
role already runs, ``stop_sync_daemon`` ESRCH when it does not; ``sync_daemons()`` lists the
running ones. ``tests/contract/test_sync_daemon_port.py`` runs one suite against both.
``DirectorKernel`` is what the daemon needs: the table and the sync daemons.

``BatchIpvsKernel`` adds ``apply_many(ops)``: the same ops in order, sent in batches (one
acknowledgement per batch instead of one per op), a failed op not stopping the following ones;
the programmer uses it when the kernel offers it (a cold build of 10,000 dests).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from haipvs.ipvs.errors import KernelError
from haipvs.ipvs.genl import DaemonInfo, SyncState
from haipvs.ipvs.model import ActualTable, IpvsTimeouts, Op

__all__ = ["BatchIpvsKernel", "DirectorKernel", "IpvsKernel", "KernelError", "SyncDaemonPort"]


@runtime_checkable
class IpvsKernel(Protocol):
    """The IPVS table of one network namespace."""

    async def dump(self) -> ActualTable:
        """The whole table with per-dest statistics."""
        ...

    async def apply(self, op: Op) -> None:
        """Perform one op; raise KernelError(op_name, target, errno) when the kernel refuses."""
        ...

    async def set_timeouts(self, tcp: int, tcpfin: int, udp: int) -> None:
        """Set connection timeouts in seconds (0 = leave unchanged)."""
        ...

    async def get_timeouts(self) -> IpvsTimeouts:
        """Current connection timeouts in seconds."""
        ...


@runtime_checkable
class BatchIpvsKernel(IpvsKernel, Protocol):
    """An IpvsKernel that can also apply many ops per round trip."""

    async def apply_many(self, ops: Sequence[Op]) -> list[KernelError | None]:
        """Apply ``ops`` in order; per op None (done) or the KernelError that refused it."""
        ...


@runtime_checkable
class SyncDaemonPort(Protocol):
    """The kernel's connection-sync daemons, one per role (keepalived ``lvs_sync_daemon``)."""

    async def set_sync_daemon(
        self,
        state: SyncState,
        interface: str,
        syncid: int,
        *,
        mcast_group: str | None = None,
        mcast_port: int | None = None,
        mcast_ttl: int | None = None,
        sync_maxlen: int | None = None,
    ) -> None:
        """Start the ``state`` daemon on ``interface``; KernelError EEXIST if it runs."""
        ...

    async def stop_sync_daemon(self, state: SyncState) -> None:
        """Stop the ``state`` daemon; KernelError ESRCH if it does not run."""
        ...

    async def sync_daemons(self) -> list[DaemonInfo]:
        """The running daemons, one per role."""
        ...


class DirectorKernel(IpvsKernel, SyncDaemonPort, Protocol):
    """What the daemon programs: the IPVS table and the connection-sync daemons."""
