"""FakeIpvsKernel: an in-memory IPVS table that fails exactly as the kernel does.

It implements ``DirectorKernel`` (kernel.py: the table and the connection-sync daemons)
for the programmer's and the daemon's tests. It is
strict (k8s FakeIPVS): every refusal of the real kernel is reproduced with the same errno
(checked by tests/contract/test_ipvs_kernel.py and test_sync_daemon_port.py against the real
kernel in the lab). It is observable: ``op_log`` lists every op applied through the port (what
"minimal ops" tests assert on), ``failed`` every refused one, ``dump_count`` the dumps. It has
fault switches (``fail_next``, ``fail_when``, ``fail_dumps``) and ``tamper_*`` helpers that
change the table behind the programmer's back, as an operator running ``ipvsadm -d`` or
``ipvsadm -C`` would; tampering is not logged as an op.

No IO and no clock: the async methods never await anything, so tests stay deterministic.
"""

from __future__ import annotations

import dataclasses
import errno as _errno
import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from haipvs.ipvs.errors import EEXIST, EINVAL, ENOENT, ESRCH, KernelError
from haipvs.ipvs.genl import DaemonInfo, SyncState
from haipvs.ipvs.model import (
    SCHEDULERS,
    ActualTable,
    AddDest,
    AddService,
    DeleteDest,
    DeleteService,
    Dest,
    DestKey,
    DestStats,
    Forwarding,
    IpvsTable,
    IpvsTimeouts,
    Op,
    Service,
    ServiceEntry,
    ServiceKey,
    UpdateDest,
    UpdateService,
    op_name,
    op_target,
)

__all__ = ["FakeIpvsKernel", "FaultRule"]

# Kernel defaults of ip_vs_proto_{tcp,udp} (ipvsadm -L --timeout on a fresh boot).
_DEFAULT_TIMEOUTS = IpvsTimeouts(tcp=900, tcp_fin=120, udp=300)
# The sync daemon's defaults (ip_vs_sync.c: IP_VS_SYNC_GROUP 224.0.0.81, IP_VS_SYNC_PORT
# 8848, TTL 1) when the request names none.
_SYNC_GROUP = bytes((224, 0, 0, 81))
_SYNC_PORT = 8848
_SYNC_TTL = 1
ENODEV = _errno.ENODEV


@dataclass(frozen=True, slots=True)
class FaultRule:
    """Fail ops for which ``matches(op)`` is true with ``errno``, ``times`` times (None: always)."""

    matches: Callable[[Op], bool]
    errno: int
    times: int | None = 1


class FakeIpvsKernel:
    """In-memory ``IpvsKernel``; see the module docstring."""

    def __init__(
        self,
        initial: IpvsTable | None = None,
        *,
        schedulers: Iterable[str] = SCHEDULERS,
        interfaces: Iterable[str] | None = None,
    ) -> None:
        # ``interfaces``: the names a sync daemon may bind to (the kernel refuses others
        # with ENODEV); None accepts any name.
        self._interfaces = None if interfaces is None else frozenset(interfaces)
        self._sync: dict[SyncState, DaemonInfo] = {}
        self.sync_calls: list[tuple[str, SyncState]] = []
        self._services: dict[ServiceKey, Service] = {}
        self._dests: dict[ServiceKey, dict[DestKey, Dest]] = {}
        self._stats: dict[ServiceKey, dict[DestKey, DestStats]] = {}
        self._schedulers = frozenset(schedulers)
        self._timeouts = _DEFAULT_TIMEOUTS
        self._faults: list[FaultRule] = []
        self._dump_faults: list[int] = []
        self.op_log: list[Op] = []
        self.failed: list[tuple[Op, KernelError]] = []
        self.dump_count = 0
        self.batches: list[int] = []  # sizes of apply_many calls
        self.listeners: list[Callable[[Op], None]] = []
        if initial is not None:
            self.load(initial)

    # ----------------------------------------------------------------- the IpvsKernel port

    async def dump(self) -> ActualTable:
        self.dump_count += 1
        if self._dump_faults:
            raise KernelError("dump", "*", self._dump_faults.pop(0))
        return self.snapshot()

    async def apply(self, op: Op) -> None:
        for index, rule in enumerate(self._faults):
            if rule.matches(op):
                if rule.times is not None:
                    if rule.times <= 1:
                        del self._faults[index]
                    else:
                        self._faults[index] = FaultRule(rule.matches, rule.errno, rule.times - 1)
                self._refuse(op, rule.errno)
        self._perform(op)
        self.op_log.append(op)
        for listener in self.listeners:
            listener(op)

    async def apply_many(self, ops: Sequence[Op]) -> list[KernelError | None]:
        """Each op in order, as ``apply``; a refused op does not stop the following ones."""
        self.batches.append(len(ops))
        results: list[KernelError | None] = []
        for op in ops:
            try:
                await self.apply(op)
            except KernelError as error:
                results.append(error)
            else:
                results.append(None)
        return results

    async def set_timeouts(self, tcp: int, tcpfin: int, udp: int) -> None:
        for value in (tcp, tcpfin, udp):
            if value < 0:
                raise KernelError("set_timeouts", "*", EINVAL)
        current = self._timeouts
        # ipvsadm --set: a 0 leaves that timeout as it is (ip_vs_set_timeout).
        self._timeouts = IpvsTimeouts(
            tcp=tcp or current.tcp, tcp_fin=tcpfin or current.tcp_fin, udp=udp or current.udp
        )

    async def get_timeouts(self) -> IpvsTimeouts:
        return self._timeouts

    # ------------------------------------------------------------------- the SyncDaemonPort

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
        """ip_vs_genl_new_daemon: EINVAL for an interface name too long, ENODEV for an
        unknown interface, EEXIST when that role already runs."""
        if not isinstance(state, SyncState):
            raise TypeError(f"state {state!r} is not a SyncState")
        key = f"{state.name.lower()}/{interface}"
        self.sync_calls.append(("set", state))
        if len(interface.encode()) > 15:  # IP_VS_IFNAME_MAXLEN with its NUL: the policy refuses
            raise KernelError("set_sync_daemon", key, EINVAL)
        if not interface or (self._interfaces is not None and interface not in self._interfaces):
            raise KernelError("set_sync_daemon", key, ENODEV)
        if state in self._sync:
            raise KernelError("set_sync_daemon", key, EEXIST)
        group = _SYNC_GROUP
        if mcast_group is not None:
            group = ipaddress.ip_address(mcast_group).packed
        self._sync[state] = DaemonInfo(
            state=state.value,
            interface=interface,
            syncid=syncid,
            sync_maxlen=sync_maxlen or 0,
            mcast_group=group,
            mcast_port=mcast_port or _SYNC_PORT,
            mcast_ttl=mcast_ttl or _SYNC_TTL,
        )

    async def stop_sync_daemon(self, state: SyncState) -> None:
        """ip_vs_genl_del_daemon: ESRCH when that role does not run."""
        if not isinstance(state, SyncState):
            raise TypeError(f"state {state!r} is not a SyncState")
        self.sync_calls.append(("stop", state))
        if self._sync.pop(state, None) is None:
            raise KernelError("stop_sync_daemon", state.name.lower(), ESRCH)

    async def sync_daemons(self) -> list[DaemonInfo]:
        return [self._sync[state] for state in SyncState if state in self._sync]

    @property
    def sync_running(self) -> frozenset[SyncState]:
        """The roles whose daemon runs now."""
        return frozenset(self._sync)

    # ------------------------------------------------------------------- inspection

    def snapshot(self) -> ActualTable:
        """The table as a dump returns it: services sorted (deterministic tests), each
        service's dests in the kernel's list order. The kernel puts a new dest at the head
        of the service's list (``list_add_rcu`` in ``__ip_vs_update_dest``; measured in the
        lab: add 1, 2, 3 dumps 3, 2, 1), an edit keeps its place, and the dump walks the
        list: the dump reads newest first. ``mh`` builds its lookup table in that order."""
        services: dict[ServiceKey, ServiceEntry] = {}
        stats: dict[ServiceKey, dict[DestKey, DestStats]] = {}
        for key in sorted(self._services, key=ServiceKey.sort_key):
            dests = self._dests[key]  # insertion order: the kernel's list reversed
            ordered = {k: dests[k] for k in reversed(dests)}
            services[key] = ServiceEntry(self._services[key], ordered)
            per = self._stats.get(key, {})
            stats[key] = {k: per.get(k, DestStats()) for k in ordered}
        return ActualTable(IpvsTable(services), stats)

    @property
    def table(self) -> IpvsTable:
        return self.snapshot().table

    def clear_log(self) -> None:
        self.op_log.clear()
        self.failed.clear()

    # ------------------------------------------------------------------- fault switches

    def fail_next(self, errno: int, times: int = 1) -> None:
        """Refuse the next ``times`` applies, whatever they are, with ``errno``."""
        self._faults.append(FaultRule(lambda _op: True, errno, times))

    def fail_when(self, matches: Callable[[Op], bool], errno: int, times: int | None = 1) -> None:
        """Refuse the ops ``matches`` selects with ``errno`` (``times=None``: until cleared)."""
        self._faults.append(FaultRule(matches, errno, times))

    def fail_dumps(self, errno: int, times: int = 1) -> None:
        self._dump_faults.extend([errno] * times)

    def clear_faults(self) -> None:
        self._faults.clear()
        self._dump_faults.clear()

    # -------------------------------------------------------- drift: changes behind our back

    def load(self, table: IpvsTable) -> None:
        """Replace the whole table (what another tool or a previous run left), unlogged."""
        self._services.clear()
        self._dests.clear()
        self._stats.clear()
        for key, entry in table.items():
            self._services[key] = entry.service
            self._dests[key] = dict(entry.dests)

    def tamper(self, op: Op) -> None:
        """Perform ``op`` as ``ipvsadm`` would, outside the port: not logged, no faults."""
        self._perform(op)

    def tamper_delete_dest(self, service: ServiceKey, dest: DestKey) -> None:
        """``ipvsadm -d -t VIP:PORT -r RS:PORT``."""
        self._perform(DeleteDest(service, dest))

    def tamper_delete_service(self, service: ServiceKey) -> None:
        """``ipvsadm -D -t VIP:PORT``."""
        self._perform(DeleteService(service))

    def tamper_set_weight(self, service: ServiceKey, dest: DestKey, weight: int) -> None:
        """``ipvsadm -e -t VIP:PORT -r RS:PORT -w W``."""
        current = self._dests.get(service, {}).get(dest)
        if current is None:
            raise KernelError("update_dest", f"{service} {dest}", ENOENT)
        self._perform(UpdateDest(service, dataclasses.replace(current, weight=weight)))

    def tamper_clear(self) -> None:
        """``ipvsadm -C``: flush every service."""
        self._services.clear()
        self._dests.clear()
        self._stats.clear()

    def set_stats(self, service: ServiceKey, dest: DestKey, stats: DestStats) -> None:
        """Pretend traffic: set a dest's connection counters (what a drain waits on)."""
        if dest not in self._dests.get(service, {}):
            raise KeyError(f"no dest {dest} in {service}")
        self._stats.setdefault(service, {})[dest] = stats

    # ---------------------------------------------------------------------- the kernel rules

    def _refuse(self, op: Op, errno: int) -> None:
        error = KernelError(op_name(op), op_target(op), errno)
        self.failed.append((op, error))
        raise error

    def _perform(self, op: Op) -> None:
        # Each branch checks in the order the kernel does (ip_vs_genl_set_cmd, ip_vs_ctl.c):
        # service lookup first (ESRCH), then the request's own checks, then dest lookup.
        if isinstance(op, AddService):
            if op.service.key in self._services:
                self._refuse(op, EEXIST)
            self._check_scheduler(op, op.service.scheduler)
            self._services[op.service.key] = op.service
            self._dests[op.service.key] = {}
        elif isinstance(op, UpdateService):
            if op.service.key not in self._services:
                self._refuse(op, ESRCH)
            self._check_scheduler(op, op.service.scheduler)
            self._services[op.service.key] = op.service
        elif isinstance(op, DeleteService):
            if op.key not in self._services:
                self._refuse(op, ESRCH)
            del self._services[op.key]
            del self._dests[op.key]
            self._stats.pop(op.key, None)
        elif isinstance(op, AddDest):
            dests = self._service_dests(op)
            self._check_family(op, op.service_key, op.dest)
            if op.dest.key in dests:
                self._refuse(op, EEXIST)
            dests[op.dest.key] = op.dest
        elif isinstance(op, UpdateDest):
            dests = self._service_dests(op)
            self._check_family(op, op.service_key, op.dest)
            if op.dest.key not in dests:
                self._refuse(op, ENOENT)
            dests[op.dest.key] = op.dest
        else:
            dests = self._service_dests(op)
            if op.dest_key not in dests:
                self._refuse(op, ENOENT)
            del dests[op.dest_key]
            self._stats.get(op.service_key, {}).pop(op.dest_key, None)

    def _service_dests(self, op: AddDest | UpdateDest | DeleteDest) -> dict[DestKey, Dest]:
        dests = self._dests.get(op.service_key)
        if dests is None:
            self._refuse(op, ESRCH)
            raise AssertionError("unreachable")
        return dests

    def _check_scheduler(self, op: Op, scheduler: str) -> None:
        # The kernel loads ip_vs_<name>; a name with no module is ENOENT (ip_vs_scheduler_get).
        if scheduler not in self._schedulers:
            self._refuse(op, ENOENT)

    def _check_family(self, op: Op, service: ServiceKey, dest: Dest) -> None:
        # Mixed-family dests (IPv4 real server in an IPv6 service or the reverse) are only
        # forwardable by tunnelling; the kernel refuses the others with EINVAL.
        if dest.key.family is not service.family and dest.forwarding is not Forwarding.TUNNEL:
            self._refuse(op, EINVAL)

