"""The composition root: `haipvs run -c FILE`.

It builds the parts, wires them and owns the daemon's life:

- the IPVS programmer (both directors keep a hot table: IPVS is programmed on the
  master and the backup alike; only the VIPs follow VRRP mastership);
- the checker pool, whose health changes reach the programmer;
- the VRRP instances, in a process of their own (haipvs.daemon.vrrp_process, like
  keepalived's VRRP child), so a busy checker pool cannot delay an advert;
- the status API, systemd notify and watchdog, an event-loop lag monitor.

Signals only queue an action (exabgp's interrupt.py): SIGHUP -> reload, SIGTERM or
SIGINT -> shutdown. SIGUSR1 (keepalived's "dump state") logs the status snapshot as one
`daemon.state_dump` line and changes nothing. Repeated SIGHUPs while a reload is
pending collapse into one, and a reload reads the file when it runs, so the last file
wins.

Reload validates the new file to one side: a bad file is `config.reload.rejected`
with every error and the running config stays. A good one is diffed by key and only
what changed is touched: unchanged checks keep their state, unchanged VRRP instances
keep their state and VIPs, and the kernel sees only the ops for the changed entries.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import errno
import gc
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from ipaddress import IPv4Address, IPv6Address
from typing import TYPE_CHECKING, Protocol

import structlog

import checkers
import vrrp
from haipvs import notify_fifo
from haipvs.bgp.bird import BirdControl, RouteSpeaker
from haipvs.bgp.local import unusable_vips
from haipvs.bgp.part import BgpPart, BgpView, DirectorState
from haipvs.bgp.sloppy import SLOPPY_TCP, SloppyTcp
from haipvs.config import ConfigInvalid, dump_config
from haipvs.config.compile import Compiled
from haipvs.daemon.accept import (
    Accepted,
    HostFacts,
    UnsafeConfigFileError,
    accept_config,
    check_file_safety,
)
from haipvs.daemon.admin import (
    AdminServer,
    DestProgress,
    Operator,
    RunningView,
    default_socket_path,
)
from haipvs.daemon.plan import redacted
from haipvs.daemon.reload import ReloadPlan, plan_reload, served
from haipvs.ipvs import (
    ActualTable,
    DestKey,
    DirectorKernel,
    HealthView,
    IpvsProgrammer,
    KernelError,
    ServiceKey,
)
from haipvs.ipvs.fingerprint import fingerprint, in_canonical_order
from haipvs.ipvs.genl import SyncState
from haipvs.ipvs.sync_roles import MESH, sync_roles, sync_steps
from haipvs.ipvs.sysctl import IPVS_SYSCTL_DIR, SyncRefresh
from haipvs.logs import configure_logging
from haipvs.sdnotify import SystemdNotifier
from haipvs.status.snapshot import (
    DrainView,
    InstanceView,
    OverrideView,
    ProgrammerView,
    RealServerView,
    ReloadOutcome,
    ReloadView,
    ScaleOutView,
    ServiceView,
    Snapshot,
)

if TYPE_CHECKING:
    from haipvs.status.api import StatusApi

__all__ = [
    "Supervisor",
    "UnsafeConfigFileError",
    "VrrpPart",
    "check_file_safety",
    "director_state",
    "run_command",
]

VERSION = "0.1.0"
log = structlog.get_logger()


class _Action(enum.Enum):
    RELOAD = "reload"
    SHUTDOWN = "shutdown"


class VrrpPart(Protocol):
    """What the supervisor needs from the VRRP side (vrrp.VrrpService adapts to it)."""

    async def start(self) -> None: ...

    async def update(self, instances: Sequence[vrrp.InstanceSettings]) -> None: ...

    async def stop(self) -> None: ...

    def views(self) -> tuple[InstanceView, ...]: ...

    def loop_lag(self) -> float: ...

    def restarts(self) -> int:
        """How many times VRRP had to be started again after it died on its own."""
        ...

    async def set_holds(self, holds: Mapping[str, str]) -> None:
        """``haipvs failover``: held instances (name -> reason) resign and stay backup."""
        ...


#: scale-out mode: which VIPs this host cannot take packets for, and why (haipvs.bgp.local)
VipCheck = Callable[[Iterable[IPv4Address | IPv6Address]], Mapping[IPv4Address | IPv6Address, str]]
VrrpFactory = Callable[
    [Sequence[vrrp.InstanceSettings], Callable[[str, str, str, str, str], None]], VrrpPart
]


class Supervisor:
    def __init__(
        self,
        config_path: str,
        *,
        kernel: DirectorKernel | None = None,
        vrrp_factory: VrrpFactory | None = None,
        prober: checkers.Prober | None = None,
        remove_ipvs_on_exit: bool = False,
        hostname: str | None = None,
        overrides_file: str | None = None,
        admin_socket: str | None = None,
        host: HostFacts | None = None,
        bgp_speaker: Callable[[str], RouteSpeaker] | None = None,
        sloppy_tcp_file: str = SLOPPY_TCP,
        bgp_vip_check: VipCheck | None = None,
        ipvs_sysctl_dir: str = IPVS_SYSCTL_DIR,
    ) -> None:
        self._path = config_path
        self._host = host
        self._kernel = kernel
        self._vrrp_factory = vrrp_factory
        self._prober = prober
        self._remove_on_exit = remove_ipvs_on_exit
        self._hostname = hostname or socket.gethostname()
        self._actions: asyncio.Queue[_Action] = asyncio.Queue()
        self._reload_pending = False
        self._reload_lock = asyncio.Lock()
        self._notifier = SystemdNotifier()
        self._started_at = time.time()
        self._accepted: Accepted | None = None
        self._compiled: Compiled | None = None
        self._programmer: IpvsProgrammer | None = None
        self._pool: checkers.CheckerPool | None = None
        self._vrrp: VrrpPart | None = None
        self._api: StatusApi | None = None
        self._actual: ActualTable | None = None
        self._actual_at = 0.0
        self._actual_syncs = -1
        self._last_reload: ReloadView | None = None
        self._reloads_applied = 0
        self._reloads_rejected = 0
        self._lag = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sync_wanted: frozenset[SyncState] | None = None
        self._sync_applied: frozenset[SyncState] | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self._sync_reason = ""
        self._overrides_file = overrides_file
        self._admin_socket = admin_socket or default_socket_path()
        self._operator: Operator | None = None
        self._admin: AdminServer | None = None
        # keepalived quorum_up / quorum_down: one command at a time per service, in order.
        self._quorum_locks: dict[ServiceKey, asyncio.Lock] = {}
        self._quorum_tasks: set[asyncio.Task[None]] = set()
        self._fifo: notify_fifo.NotifyFifo | None = None  # keepalived notify_fifo
        self._bgp: BgpPart | None = None  # scale-out mode (the config's bgp section)
        self._bgp_speaker = bgp_speaker or BirdControl
        self._sloppy_tcp = SloppyTcp(sloppy_tcp_file)  # set in scale-out and mesh mode
        self._sync_refresh = SyncRefresh(ipvs_sysctl_dir)  # with a sync refresh_period
        # When the sync backup daemon first ran (loop time): a scale-out director's learn
        # counts from there, once in the daemon's life (a reload's restart of the sync
        # daemon keeps the table it learnt, and must not withdraw anything).
        self._sync_learning_since: float | None = None
        self._bgp_vip_check = bgp_vip_check or unusable_vips

    # ----------------------------------------------------------------- start-up

    async def run(self) -> int:
        try:
            accepted = self._accept()
        except ConfigInvalid as invalid:
            for error in invalid.errors:
                print(str(error), file=sys.stderr)
            return 1
        config, compiled = accepted.config, accepted.compiled
        configure_logging(
            director=compiled.director,
            log_format=None if config.director.log_format is None
            else config.director.log_format.value,
            level=config.director.log_level.value,
        )
        for warning in accepted.loaded.warnings:
            log.warning("config.warning", detail=str(warning))
        self._accepted, self._compiled = accepted, compiled
        self._follow_notify_fifo(config.director.notify_fifo)
        loop = asyncio.get_running_loop()
        self._loop = loop
        for signum, action in (
            (signal.SIGHUP, _Action.RELOAD),
            (signal.SIGTERM, _Action.SHUTDOWN),
            (signal.SIGINT, _Action.SHUTDOWN),
        ):
            loop.add_signal_handler(signum, self._queue, action)
        loop.add_signal_handler(signal.SIGUSR1, self._dump_state)
        try:
            await self._start(compiled, config.director.api, config.director.api_token)
        except Exception as error:
            log.error("director.start.failed", reason=str(error), error_type=type(error).__name__)
            await self._shutdown()
            return 1
        # Everything built so far lives as long as the daemon: keep it out of the
        # garbage collector's full passes (shorter pauses with thousands of backends).
        # `haipvs run` starts with the collector off (haipvs.cli): on from here.
        gc.freeze()
        gc.enable()
        log.info(
            "director.started",
            config=self._path,
            vrrp_instances=len(compiled.instances),
            virtual_servers=len(compiled.services),
            real_servers=len(compiled.backends),
        )
        self._notifier.ready(f"{len(compiled.instances)} VRRP instances, "
                             f"{len(compiled.services)} virtual servers")
        while True:
            action = await self._actions.get()
            if action is _Action.SHUTDOWN:
                break
            self._reload_pending = False
            await self.reload()
        self._notifier.stopping()
        log.info("director.stopping", reason="signal")
        await self._shutdown()
        log.info("director.stopped")
        return 0

    def request_reload(self) -> None:
        """What SIGHUP does (also for embedding and tests)."""
        self._queue(_Action.RELOAD)

    def request_shutdown(self) -> None:
        """What SIGTERM does."""
        self._queue(_Action.SHUTDOWN)

    @property
    def programmer(self) -> IpvsProgrammer | None:
        return self._programmer

    @property
    def bgp(self) -> BgpPart | None:
        """The scale-out part while the config has a bgp section."""
        return self._bgp

    def _queue(self, action: _Action) -> None:
        # Signal context: record the action, nothing more (exabgp interrupt.py).
        if action is _Action.RELOAD:
            if self._reload_pending:
                return
            self._reload_pending = True
        self._actions.put_nowait(action)

    async def _start(self, compiled: Compiled, api: str, token: str | None) -> None:
        kernel = self._kernel
        if kernel is None:
            from haipvs.ipvs.netlink import NetlinkIpvsKernel

            kernel = NetlinkIpvsKernel()
            self._kernel = kernel
        if compiled.instances:
            # VRRP first, while the daemon has no connection open: its process is forked
            # from this one (haipvs.daemon.vrrp_process) and listens as BACKUP while the IPVS
            # table and the checkers start (keepalived starts its VRRP and checker
            # children side by side too). It cannot become MASTER before a whole
            # Master_Down_Interval (a priority-255 owner excepted), by which time the
            # table is programmed; a restart keeps the previous table meanwhile.
            factory = self._vrrp_factory or _default_vrrp_factory
            self._vrrp = factory(compiled.instances, self._vrrp_transition)
            vrrp_started = asyncio.create_task(self._vrrp.start(), name="vrrp-start")
            # One turn of the loop: the task forks the VRRP process now, before the IPVS
            # netlink socket below opens. The table is then adopted and programmed while
            # the VRRP process starts its instances (neither waits for the other: a hot
            # standby needs both); its start is awaited before the checkers start.
            await asyncio.sleep(0)
        else:
            vrrp_started = None
        try:
            await self._start_ipvs(compiled, kernel)
        except BaseException:
            if vrrp_started is not None:  # started or not, shutdown stops what there is
                with contextlib.suppress(Exception):
                    await vrrp_started
            raise
        if vrrp_started is not None:
            await vrrp_started  # a VRRP start failure is the daemon's, as before
        await self._start_rest(compiled, api, token)

    async def _start_ipvs(self, compiled: Compiled, kernel: DirectorKernel) -> None:
        """The IPVS table: adopted, the operator's overrides applied, and programmed
        (the first sync awaited) before anything else starts: a hot standby first."""
        programmer = IpvsProgrammer(
            kernel,
            min_interval=compiled.min_interval,
            max_interval=compiled.max_interval,
            on_quorum=self._quorum_changed,
        )
        self._programmer = programmer
        if compiled.timeouts is not None:
            programmer.set_timeouts(
                compiled.timeouts.tcp, compiled.timeouts.tcp_fin, compiled.timeouts.udp
            )
        # Adopt the existing table: real servers already in it keep their place until
        # their first check result, so a restart does not churn the kernel.
        actual = await kernel.dump()
        self._actual, self._actual_at = actual, time.monotonic()
        adopted = {
            backend for backend, (svc, dest) in compiled.backends.items()
            if svc in actual.table and dest in actual.table[svc].dests
        } | set(compiled.up_at_start)  # checks with `alpha: false` (keepalived's default)
        pool = checkers.CheckerPool(self._prober or _probe, on_change=self._health_changed)
        self._pool = pool
        pool.update(compiled.checks, adopted=adopted, fail_open=compiled.fail_open)
        programmer.set_health(self._health_map(compiled))
        programmer.set_specs(compiled.services)
        # The operator's drains and maintenance are in the very first sync: a restart never
        # gives a drained real server new connections.
        operator = Operator(path=self._overrides_file, running=self._running_view,
                            set_admin=programmer.set_admin, set_holds=self._set_holds,
                            progress=self._dest_progress, on_director=self._poke_bgp)
        self._operator = operator
        operator.load()
        operator.apply_ipvs()
        await self._first_sync(programmer, actual)
        self._tasks.append(asyncio.create_task(programmer.run(), name="ipvs-programmer"))

    async def _first_sync(self, programmer: IpvsProgrammer, actual: ActualTable) -> None:
        """Program the table now, before the checkers and the API start (the standby is
        hot as early as it can be), against the dump the adoption just took: a restart over
        a hot table costs one dump and a compare. A failure here is what the programmer's
        loop meets on its first turn too: logged, and retried there."""
        try:
            await programmer.adopt(actual)  # the kernel's refusals are the programmer's to log
        except Exception as error:  # a bug: the programmer's loop retries, as it would
            log.error("ipvs.sync.crashed", error=f"{type(error).__name__}: {error}",
                      exc_info=error)

    async def _start_rest(self, compiled: Compiled, api: str, token: str | None) -> None:
        """What may start once the table is hot and VRRP runs: checks, the operator's
        VRRP holds, the status API, the admin socket, BGP, the sync daemon, the watchdog."""
        pool, operator = self._pool, self._operator
        if pool is None or operator is None:
            raise RuntimeError("the IPVS part did not start")
        pool.start()
        await operator.apply_vrrp()
        # Imported here, after the VRRP process was forked: aiohttp and prometheus_client
        # are a third of the daemon's import time, and the VRRP process needs neither.
        from haipvs.status.api import StatusApi

        self._api = StatusApi(api, snapshot=self.snapshot, reload=self.reload, token=token,
                              before=self._refresh_kernel_stats,
                              running_config=self._running_config_document)
        await self._api.start()
        admin = AdminServer(self._admin_socket, operator.handle)
        try:
            await admin.start()
            self._admin = admin
        except OSError as error:  # the director runs without it: its VIPs matter more
            log.error("operator.admin.unavailable", socket=self._admin_socket,
                      error=str(error), reason="haipvs drain/failover will not reach this daemon")
        self._tasks.append(asyncio.create_task(self._lag_monitor(), name="loop-lag"))
        await self._follow_bgp(compiled)
        if compiled.sync_daemon is not None and compiled.sync_daemon.mode == "mesh":
            self._want_sync_mesh()
        if self._notifier.watchdog_interval is not None:
            self._tasks.append(asyncio.create_task(self._watchdog(), name="watchdog"))

    def _health_map(self, compiled: Compiled) -> dict[tuple[ServiceKey, DestKey], HealthView]:
        health: dict[tuple[ServiceKey, DestKey], HealthView] = {}
        for backend in compiled.always_up:
            health[compiled.backends[backend]] = HealthView(up=True, reason="no check")
        assert self._pool is not None
        for backend, status in self._pool.snapshot().backends.items():
            key = compiled.backends.get(backend)
            if key is not None:
                health[key] = HealthView(
                    up=status.healthy,
                    weight_factor=status.weight_factor if status.healthy else 0.0,
                    reason=status.reason,
                    weight=status.weight,
                )
        return health

    # ----------------------------------------------------------------- events

    def _health_changed(self, change: checkers.HealthChanged) -> None:
        compiled, programmer = self._compiled, self._programmer
        if compiled is None or programmer is None:
            return
        key = compiled.backends.get(change.backend)
        if key is None:
            return
        factor = min(1.0, max(0.0, change.weight_factor)) if change.healthy else 0.0
        view = HealthView(
            up=change.healthy, weight_factor=factor, reason=change.reason, weight=change.weight
        )
        programmer.update_health(key[0], key[1], view)
        if self._bgp is not None:
            self._bgp.poke()
        if self._fifo is not None:
            service = notify_fifo.service_endpoint(key[0])
            real_server = notify_fifo.real_server_endpoint(key[0], key[1])
            self._fifo.write(notify_fifo.rs_line(real_server, service, up=change.healthy))

    def _quorum_changed(self, key: ServiceKey, held: bool, detail: str) -> None:
        """keepalived quorum_up / quorum_down: run the service's command, if it has one."""
        if self._fifo is not None:
            self._fifo.write(notify_fifo.vs_line(notify_fifo.service_endpoint(key), up=held))
        compiled = self._compiled
        commands = compiled.quorum_commands.get(key) if compiled is not None else None
        if commands is None:
            return
        argv = commands.up if held else commands.down
        if argv is None:
            return
        task = asyncio.create_task(
            self._run_quorum_command(key, "up" if held else "down", argv, commands.timeout)
        )
        self._quorum_tasks.add(task)
        task.add_done_callback(self._quorum_tasks.discard)

    async def _run_quorum_command(
        self, key: ServiceKey, hook: str, argv: tuple[str, ...], kill_after: float
    ) -> None:
        lock = self._quorum_locks.setdefault(key, asyncio.Lock())
        async with lock:
            outcome = await vrrp.run_argv(argv, kill_after)
        if outcome.returncode == 0:
            log.info("ipvs.quorum.command", vs=str(key), hook=hook, command=" ".join(argv))
            return
        reason = (
            "timeout"
            if outcome.timed_out
            else outcome.error or f"exit_status {outcome.returncode}"
        )
        log.warning(
            "ipvs.quorum.command.failed",
            vs=str(key),
            hook=hook,
            command=" ".join(argv),
            reason=reason,
        )

    def _vrrp_transition(
        self, instance: str, from_state: str, to_state: str, reason: str, detail: str
    ) -> None:
        # The VRRP side logs `vrrp.transition` itself; here the director follows it.
        # A VrrpPart may call from its own thread (LinuxVrrpPart): hop to the
        # supervisor's loop, which owns the kernel socket.
        compiled, loop = self._compiled, self._loop
        if self._fifo is not None and loop is not None:
            loop.call_soon_threadsafe(self._fifo_instance_line, instance, to_state)
        if compiled is None or compiled.sync_daemon is None or loop is None:
            return
        sync = compiled.sync_daemon
        if sync.mode == MESH:
            return  # both roles run from the start, whatever VRRP says
        roles = sync_roles(sync.mode, sync.instance, instance, to_state)
        if roles is not None:
            loop.call_soon_threadsafe(self._want_sync_roles, roles, f"vrrp_{to_state.lower()}")

    def _fifo_instance_line(self, instance: str, state: str) -> None:
        # keepalived writes the instance's priority as it stands: the VRRP process's last
        # view of it, else the configured one.
        priority = next(
            (v.effective_priority for v in self._vrrp.views() if v.name == instance), None
        ) if self._vrrp is not None else None
        if priority is None and self._compiled is not None:
            priority = next(
                (i.priority for i in self._compiled.instances if i.name == instance), 0
            )
        if self._fifo is not None:
            self._fifo.write(notify_fifo.instance_line(instance, state, priority or 0))

    def _follow_notify_fifo(self, path: str | None) -> None:
        """Open the notify FIFO the config names (at start and at each reload)."""
        if self._fifo is not None and self._fifo.path == path:
            return
        if self._fifo is not None:
            self._fifo.close()
            self._fifo = None
        if path is None:
            return
        fifo = notify_fifo.NotifyFifo(path, on_drop=_fifo_dropped)
        try:
            fifo.ensure()
        except OSError as error:
            log.error("notify_fifo.unavailable", path=path, error=str(error))
            return
        self._fifo = fifo

    def _want_sync_roles(self, roles: frozenset[SyncState], reason: str) -> None:
        # One worker applies the latest wanted roles (haipvs.ipvs.sync_roles): a quick
        # BACKUP->MASTER->BACKUP ends with the backup daemon, whatever order the kernel
        # answers in.
        self._sync_wanted = roles
        self._sync_reason = reason
        if self._sync_task is None or self._sync_task.done():
            self._sync_task = asyncio.create_task(self._follow_sync_daemon())
            self._tasks.append(self._sync_task)

    async def _follow_sync_daemon(self) -> None:
        """keepalived lvs_sync_daemon: the master sends connection state, the backup listens."""
        while self._sync_wanted is not None and self._sync_wanted != self._sync_applied:
            roles = self._sync_wanted
            compiled, kernel = self._compiled, self._kernel
            if compiled is None or compiled.sync_daemon is None or kernel is None:
                return
            sync = compiled.sync_daemon
            stops, starts = sync_steps(roles)
            for state in stops:
                with contextlib.suppress(KernelError):  # ESRCH: it did not run
                    await kernel.stop_sync_daemon(state)
            for start in starts:
                try:
                    await kernel.set_sync_daemon(start, sync.interface, sync.syncid,
                                                 mcast_group=sync.group, mcast_port=sync.port,
                                                 mcast_ttl=sync.ttl, sync_maxlen=sync.maxlen)
                    log.info("ipvs.sync_daemon.started", state=start.name.lower(),
                             iface=sync.interface, syncid=sync.syncid, reason=self._sync_reason)
                    if start is SyncState.BACKUP and self._sync_learning_since is None:
                        self._sync_learning_since = asyncio.get_running_loop().time()
                except KernelError as error:
                    log.error("ipvs.sync_daemon.failed", state=start.name.lower(),
                              iface=sync.interface, errno=error.errno, reason=str(error))
            if sync.refresh_period is not None:
                # After the starts: the sysctls exist once ip_vs is loaded. A failure is
                # logged (ipvs.sync_refresh.failed); the sync itself runs without it.
                self._sync_refresh.ensure(sync.refresh_period)
            self._sync_applied = roles

    # ----------------------------------------------------------------- reload

    async def reload(self) -> ReloadOutcome:
        async with self._reload_lock:
            self._notifier.reloading()
            try:
                return await self._reload()
            except Exception as error:  # SIGHUP or POST /reload: never the daemon's end
                message = f"{self._path}: reload failed: {type(error).__name__}: {error}"
                log.error("config.reload.failed", config=self._path, errors=[message],
                          reason="unexpected error; the running config stays")
                self._reloads_rejected += 1
                self._last_reload = ReloadView(at=time.time(), result="rejected",
                                               errors=(message,))
                return ReloadOutcome(False, (message,), "")
            finally:
                self._notifier.ready("reloaded")

    def _accept(self) -> Accepted:
        """The gate check-config uses too (haipvs.daemon.accept)."""
        return accept_config(self._path, hostname=self._hostname, host=self._host)

    @property
    def running_config(self) -> Accepted | None:
        """The config the daemon runs (the last one accepted and applied)."""
        return self._accepted

    def _running_config_document(self) -> dict[str, str]:
        """GET /config: the running config as YAML, secrets redacted (haipvs.daemon.plan)."""
        accepted = self._accepted
        assert accepted is not None
        return {"file": accepted.path, "yaml": dump_config(redacted(accepted.config))}

    async def _reload(self) -> ReloadOutcome:
        running = self._accepted
        assert running is not None
        try:
            # Off the loop: a large (or hostile) file must not stall adverts' peers,
            # checks and the watchdog ping while it parses.
            accepted = await asyncio.to_thread(self._accept)
        except ConfigInvalid as invalid:
            return self._rejected(tuple(str(error) for error in invalid.errors))
        programmer, operator = self._programmer, self._operator
        plan = plan_reload(
            (running.config, running.compiled), (accepted.config, accepted.compiled),
            health=programmer.health if programmer is not None else None,
            overrides=operator.overrides if operator is not None else None,
            drains=programmer.draining_dests() if programmer is not None else None,
        )
        try:
            await self._execute_vrrp(plan, running, accepted)
        except Exception as error:  # a failing step never kills the daemon
            return self._failed(plan, running, error)
        self._execute(plan, accepted)
        self._follow_notify_fifo(accepted.config.director.notify_fifo)
        await self._follow_bgp(accepted.compiled)
        if not plan.is_empty:
            await self._operator_follow_config()
        self._reloads_applied += 1
        self._last_reload = ReloadView(at=time.time(), result="applied", summary=plan.summary)
        log.info("config.reload.applied", config=self._path, changes=plan.summary)
        for note in plan.restart_needed:
            log.warning("config.reload.deferred", config=self._path, detail=note)
        return ReloadOutcome(True, (), plan.summary)

    async def _execute_vrrp(self, plan: ReloadPlan, running: Accepted, new: Accepted) -> None:
        """The VRRP part of a plan: the one step that can fail on this host (a device
        gone, a socket refused). On failure the VRRP side is brought back to the running
        instances before the error goes up: the reload is then not adopted at all."""
        instances = new.compiled.instances
        if self._vrrp is None:
            if plan.start_vrrp:
                factory = self._vrrp_factory or _default_vrrp_factory
                part = factory(instances, self._vrrp_transition)
                try:
                    await part.start()
                except Exception:
                    with contextlib.suppress(Exception):
                        await part.stop()
                    raise
                self._vrrp = part
            return
        if not plan.vrrp_changed:
            return
        try:
            await self._vrrp.update(instances)
        except Exception:
            try:
                await self._vrrp.update(running.compiled.instances)
            except Exception as again:
                log.error("vrrp.rollback.failed", reason=str(again),
                          error_type=type(again).__name__)
            raise

    def _execute(self, plan: ReloadPlan, new: Accepted) -> None:
        """The in-memory part of a plan: checks, IPVS specs, timeouts, the sync daemon."""
        compiled = new.compiled
        self._accepted, self._compiled = new, compiled
        assert self._pool is not None and self._programmer is not None
        if plan.checks_changed or plan.services_changed:
            self._pool.update(compiled.checks, fail_open=compiled.fail_open)
            self._programmer.set_health(self._health_map(compiled))
            self._programmer.set_specs(compiled.services)
        if plan.timeouts_changed and compiled.timeouts is not None:
            self._programmer.set_timeouts(
                compiled.timeouts.tcp, compiled.timeouts.tcp_fin, compiled.timeouts.udp
            )
        if plan.sync_daemon != "keep":
            self._sync_applied = None
            self._sync_reason = "config_changed"
            if plan.sync_daemon == "stop":
                self._sync_wanted = None
                self._tasks.append(asyncio.create_task(self._stop_sync_daemon()))
            else:
                sync = compiled.sync_daemon
                assert sync is not None  # plan.sync_daemon says it is configured
                state = self._followed_state()
                roles = sync_roles(sync.mode, sync.instance, sync.instance, state)
                if roles is not None:
                    self._want_sync_roles(roles, "config_changed")

    def _followed_state(self) -> str | None:
        """The VRRP state the sync daemon follows now (None: not known yet)."""
        compiled = self._compiled
        if compiled is None or compiled.sync_daemon is None or self._vrrp is None:
            return None
        name = compiled.sync_daemon.instance
        for view in self._vrrp.views():
            if (name is None or view.name == name) and view.state in (
                "MASTER", "BACKUP", "FAULT"
            ):
                return view.state
        return None

    async def _stop_sync_daemon(self) -> None:
        kernel = self._kernel
        if kernel is None:
            return
        for state in SyncState:
            with contextlib.suppress(KernelError):  # ESRCH: it did not run
                await kernel.stop_sync_daemon(state)
        log.info("ipvs.sync_daemon.stopped", reason="config_changed")

    def _failed(self, plan: ReloadPlan, running: Accepted, error: Exception) -> ReloadOutcome:
        message = f"{self._path}: reload not applied: {type(error).__name__}: {error}"
        self._reloads_rejected += 1
        self._last_reload = ReloadView(at=time.time(), result="rejected", errors=(message,))
        log.error(
            "config.reload.failed",
            config=self._path,
            changes=plan.summary,
            errors=[message],
            reason="a step failed; the running config stays",
        )
        self._accepted, self._compiled = running, running.compiled
        return ReloadOutcome(False, (message,), "")

    def _rejected(self, errors: tuple[str, ...]) -> ReloadOutcome:
        self._reloads_rejected += 1
        self._last_reload = ReloadView(at=time.time(), result="rejected", errors=errors)
        log.error(
            "config.reload.rejected",
            config=self._path,
            errors=list(errors),
            reason=f"{len(errors)} error(s); the running config stays",
        )
        return ReloadOutcome(False, errors, "")

    # ----------------------------------------------------------------- shutdown

    async def _shutdown(self) -> None:
        # The routers stop sending before anything of this director stops serving.
        await self._follow_bgp(None)
        if self._fifo is not None:
            self._fifo.close()
        if self._admin is not None:
            await self._admin.stop()
        if self._operator is not None:
            self._operator.stop()
        if self._vrrp is not None:
            with contextlib.suppress(Exception):
                await self._vrrp.stop()  # priority-0 advert, VIPs removed
        if self._pool is not None:
            await self._pool.stop()
        if self._programmer is not None:
            with contextlib.suppress(Exception):
                await self._programmer.stop(remove=self._remove_on_exit)
        if self._api is not None:
            await self._api.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        close = getattr(self._kernel, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                result = close()
                if asyncio.iscoroutine(result):
                    await result

    # ----------------------------------------------------------------- operator

    def _running_view(self) -> RunningView:
        compiled = self._compiled
        assert compiled is not None
        return RunningView(
            services=served(compiled),
            instances=tuple(settings.name for settings in compiled.instances),
            announces=compiled.bgp is not None,
        )

    def _poke_bgp(self) -> None:
        """drain-director changed: the gates read it now, not at their next tick."""
        if self._bgp is not None:
            self._bgp.poke()

    async def _set_holds(self, holds: Mapping[str, str]) -> None:
        if self._vrrp is not None:
            await self._vrrp.set_holds(holds)

    async def _dest_progress(self) -> dict[tuple[ServiceKey, DestKey], DestProgress]:
        await self._refresh_kernel_stats()
        actual = self._actual
        if actual is None:
            return {}
        progress = {}
        for service, entry in actual.table.services.items():
            for key, dest in entry.dests.items():
                stats = actual.stats_of(service, key)
                progress[(service, key)] = DestProgress(
                    dest.weight, stats.active_conns, stats.inactive_conns
                )
        return progress

    async def _operator_follow_config(self) -> None:
        """After a reload: the overrides on the new config (they outlive config changes)."""
        if self._operator is not None:
            self._operator.apply_ipvs()
            with contextlib.suppress(Exception):  # logged by the VRRP part
                await self._operator.apply_vrrp()

    def _dump_state(self) -> None:
        # keepalived's SIGUSR1 writes its state to a file; here the log is the record.
        try:
            log.info("daemon.state_dump", reason="SIGUSR1", snapshot=self.snapshot().to_json())
        except Exception as error:  # never let a dump take the daemon down
            log.error("daemon.state_dump_failed", error=repr(error))

    def _override_views(self, compiled: Compiled) -> tuple[OverrideView, ...]:
        operator = self._operator
        if operator is None:
            return ()
        overrides = operator.overrides
        services = self._running_view().services
        views = [
            OverrideView(
                kind=entry.state.value,
                target=entry.describe().split(" in ")[0],
                service=entry.service,
                uid=entry.uid,
                since=entry.since,
                matches=len(overrides.matched(entry, services)),
            )
            for entry in overrides.servers
        ]
        now = time.time()
        views.extend(
            OverrideView(kind="failover", target=hold.instance, service=None, uid=hold.uid,
                         since=hold.since, until=hold.until,
                         matches=1 if hold.instance in {s.name for s in compiled.instances}
                         else 0)
            for hold in overrides.holds if hold.active(now)
        )
        if overrides.director is not None:
            views.append(OverrideView(kind="drain-director", target=compiled.director,
                                      service=None, uid=overrides.director.uid,
                                      since=overrides.director.since,
                                      matches=1 if compiled.bgp is not None else 0))
        return tuple(views)

    # ----------------------------------------------------------------- upkeep

    async def _lag_monitor(self, interval: float = 0.5) -> None:
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + interval
            await asyncio.sleep(interval)
            self._lag = max(0.0, loop.time() - expected)

    async def _watchdog(self) -> None:
        interval = self._notifier.watchdog_interval or 10.0
        while True:
            self._notifier.watchdog()
            await asyncio.sleep(interval)

    async def _refresh_kernel_stats(self) -> None:
        # /status and /metrics show the kernel's weights and connection counts: dump
        # again when the programmer has changed the table since, else at most once a second.
        if self._kernel is None:
            return
        syncs = self._programmer.status().syncs if self._programmer is not None else 0
        if syncs == self._actual_syncs and time.monotonic() - self._actual_at < 1.0:
            return
        with contextlib.suppress(Exception):
            self._actual = await self._kernel.dump()
            self._actual_at, self._actual_syncs = time.monotonic(), syncs

    # ----------------------------------------------------------------- status

    def snapshot(self) -> Snapshot:
        compiled, programmer, pool = self._compiled, self._programmer, self._pool
        assert compiled is not None and programmer is not None and pool is not None
        status = programmer.status()
        pool_snap = pool.snapshot()
        # Loop (monotonic) time -> wall time, for the `since` fields people read.
        to_wall = pool_snap.taken_at_wall - pool_snap.taken_at
        actual = self._actual
        expected = programmer.expected_table
        drains = {(d.vs, d.rs): d for d in status.draining}
        by_key = {key: backend for backend, key in compiled.backends.items()}
        admin = programmer.admin
        services = []
        for spec in compiled.services:
            name = compiled.service_names[spec.key]
            entry = actual.table.get(spec.key) if actual is not None else None
            real_servers = []
            for dest in spec.real_servers:
                backend = by_key.get((spec.key, dest.key))
                health = pool_snap.backends.get(backend) if backend is not None else None
                in_kernel = entry.dests.get(dest.key) if entry is not None else None
                stats = actual.stats_of(spec.key, dest.key) if actual is not None else None
                drain = drains.get((str(spec.key), str(dest.key)))
                real_servers.append(RealServerView(
                    address=dest.key.address,
                    port=dest.key.port,
                    weight=dest.weight,
                    kernel_weight=None if in_kernel is None else in_kernel.weight,
                    forwarding=dest.forwarding.name.lower(),
                    health="up" if health is None and backend in compiled.always_up
                    else "unknown" if health is None
                    else "up" if health.healthy else "down",
                    reason="no check" if health is None else health.reason,
                    since=None if health is None else health.since + to_wall,
                    latency_ms=None if health is None or health.last_latency is None
                    else health.last_latency * 1000,
                    active_conns=0 if stats is None else stats.active_conns,
                    inactive_conns=0 if stats is None else stats.inactive_conns,
                    drain=None if drain is None else DrainView(
                        since=drain.since + to_wall,
                        deadline=drain.deadline + to_wall,
                        cause=drain.cause,
                    ),
                    fail_open_held=health is not None and health.held_by_fail_open,
                    admin=None if (spec.key, dest.key) not in admin
                    else admin[(spec.key, dest.key)].state.value,
                ))
            service_status = pool_snap.services.get(str(spec.key))
            sorry = spec.sorry_server
            services.append(ServiceView(
                name=name,
                key=str(spec.key),
                scheduler=spec.service.scheduler,
                in_kernel=entry is not None,
                real_servers=tuple(real_servers),
                sorry_server=None if sorry is None else str(sorry.key),
                sorry_active=sorry is not None and expected is not None
                and spec.key in expected and sorry.key in expected[spec.key].dests,
                fail_open=service_status is not None and service_status.fail_open,
                quorum_min_up=spec.min_up,
                fingerprint=None if entry is None else fingerprint(entry),
                dest_order_canonical=None if entry is None else in_canonical_order(entry),
            ))
        return Snapshot(
            director=compiled.director,
            version=VERSION,
            started_at=self._started_at,
            config_file=self._path,
            instances=self._vrrp.views() if self._vrrp is not None else (),
            services=tuple(services),
            programmer=ProgrammerView(
                in_sync=status.in_sync,
                syncs=status.syncs,
                last_sync_at=status.last_sync_at,
                last_sync_seconds=status.last_sync_seconds,
                last_error=status.last_error,
                last_errno=status.last_errno,
                ops_applied=dict(status.ops_applied),
                ops_failed=status.ops_failed,
                drift_repairs=status.drift_repairs,
            ),
            last_reload=self._last_reload,
            reloads_applied=self._reloads_applied,
            reloads_rejected=self._reloads_rejected,
            loop_lag_ms=self._lag * 1000,
            vrrp_loop_lag_ms=self._vrrp.loop_lag() * 1000 if self._vrrp is not None else 0.0,
            vrrp_restarts=self._vrrp.restarts() if self._vrrp is not None else 0,
            checks_inconclusive=pool.late_deadlines.inconclusive,
            overrides=self._override_views(compiled),
            bgp=None if self._bgp is None else _scale_out_view(self._bgp.view()),
        )


    # ----------------------------------------------------------------- scale-out (bgp)

    def _want_sync_mesh(self) -> None:
        """ipvs.sync_daemon.mode mesh: master and backup from start, VRRP or not."""
        # Synced connections are only half of it: a moved flow must also be scheduled.
        self._sloppy_tcp.ensure()
        roles = sync_roles(MESH, None, None, None)
        assert roles is not None
        self._want_sync_roles(roles, "mesh")

    def _bgp_state(self) -> DirectorState:
        programmer = self._programmer
        settled = programmer is not None and programmer.settled
        state = director_state(self.snapshot(), table_settled=settled)
        learning_since = None
        compiled = self._compiled
        if compiled is not None and compiled.sync_daemon is not None \
                and compiled.sync_daemon.mode == "mesh":
            # Not listening yet: nothing learnt so far, the warm-up has not begun.
            learning_since = self._sync_learning_since
            if learning_since is None:
                learning_since = asyncio.get_running_loop().time()
        return dataclasses.replace(state, sloppy_tcp=self._sloppy_tcp.ensure(),
                                   learning_since=learning_since)

    async def _follow_bgp(self, compiled: Compiled | None) -> None:
        """Start, update or stop the BGP part as the config's bgp section says; stopping
        withdraws every VIP first."""
        plan = None if compiled is None else compiled.bgp
        if plan is None:
            if self._bgp is not None:
                part, self._bgp = self._bgp, None
                await part.stop()
            return
        if self._bgp is not None and self._bgp.control_socket != plan.control_socket:
            part, self._bgp = self._bgp, None
            await part.stop()  # withdrawn through the old BIRD, announced by the new one
        if self._bgp is None:
            self._bgp = BgpPart(plan, self._bgp_speaker(plan.control_socket), self._bgp_state,
                                vip_check=self._bgp_vip_check)
            self._bgp.start()
        else:
            self._bgp.update(plan)



def _scale_out_view(view: BgpView) -> ScaleOutView:
    return ScaleOutView(announced=view.announced, drained=view.drained,
                        protocols=view.protocols, speaker_error=view.speaker_error,
                        withheld=view.withheld)


def director_state(snapshot: Snapshot, *, table_settled: bool | None = None) -> DirectorState:
    """From the status snapshot: a real server counts as up when its check says up and the
    operator has not taken it out (drain, maintenance). ``table_settled`` is the
    programmer's ``settled`` (no change waiting for a sync); None: the snapshot's in_sync."""
    up = {
        service.key: sum(
            1 for rs in service.real_servers if rs.health == "up" and rs.admin is None
        )
        for service in snapshot.services
    }
    return DirectorState(
        up_by_service=up,
        table_in_sync=snapshot.programmer.in_sync if table_settled is None else table_settled,
        loop_lag=snapshot.loop_lag_ms / 1000.0,
        drained=any(o.kind == "drain-director" for o in snapshot.overrides),
    )



def _fifo_dropped(line: str, code: int) -> None:
    if code == errno.ENXIO:
        # Nobody reads: the normal state of a FIFO no tool listens to.
        log.debug("notify_fifo.no_reader", line=line.rstrip("\n"))
    else:
        log.warning("notify_fifo.dropped", line=line.rstrip("\n"), errno=errno.errorcode[code])


async def _probe(spec: checkers.CheckSpec, target: checkers.Target) -> checkers.ProbeResult:
    """``checkers.run_probe``, whose probe modules (DNS, HTTP, SMTP...) load at the first
    probe: after the table is programmed, not before it."""
    return await checkers.run_probe(spec, target)


def _default_vrrp_factory(
    instances: Sequence[vrrp.InstanceSettings],
    on_transition: Callable[[str, str, str, str, str], None],
) -> VrrpPart:
    from haipvs.daemon.vrrp_process import VrrpProcessPart

    return VrrpProcessPart(instances, on_transition, fork_first=True)


def run_command(args: object) -> int:
    # SIGHUP's default action ends the process: until run() installs its handler (after
    # the config is read and the parts start, seconds on a slow host), a `systemctl
    # reload` would kill a starting daemon. Ignored until then: the file being started
    # is the one a reload would read.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    config = getattr(args, "config")  # noqa: B009 - argparse namespace
    remove = bool(getattr(args, "remove_ipvs_on_exit", False))
    return asyncio.run(Supervisor(config, remove_ipvs_on_exit=remove).run())
