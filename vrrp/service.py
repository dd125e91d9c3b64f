"""The VRRP service: every instance in a dedicated real-time thread, and the sync groups.

:class:`VrrpService` runs one :class:`~vrrp.runner.InstanceRunner` per instance in its own
thread and event loop, so VRRP timing does not depend on how busy the caller's loop is.
:class:`SyncGroup` executes the decisions of the sans-IO sync-group policy
(:class:`vrrp.sync_group.SyncGroupPolicy`) on the members' runners.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from vrrp.errors import VrrpUsageError
from vrrp.machine import InstanceReload, InstancesPlan, State, Transition, VrrpMachine
from vrrp.notify import HookKind, Notifier
from vrrp.ports import PortsProvider, VrrpIoError
from vrrp.runner import InstanceRunner, log
from vrrp.settings import InstanceSettings
from vrrp.status import FaultSource, InstanceStatus, LoopLag
from vrrp.sync_group import (
    Decision,
    Demote,
    Follow,
    GroupFault,
    MemberTransition,
    ReleaseHold,
    SyncGroupPolicy,
    group_state,
)
from vrrp.track import InstanceTracker

__all__ = ["FailureCallback", "ServiceCallback", "SyncGroup", "VrrpService"]


class SyncGroup:
    """keepalived ``vrrp_sync_group`` on running instances: each member's transition
    goes to the group's :class:`~vrrp.sync_group.SyncGroupPolicy` (the rules are
    there), and its decisions are executed on the other members' runners.

    The callbacks run inside a member's input; the follow-ups are spawned as
    tasks so one member's lock is never held while waiting for another's.
    """

    def __init__(self, name: str, members: Sequence[InstanceRunner]) -> None:
        self.policy = SyncGroupPolicy(name, [member.name for member in members])
        self.name = name
        self._members = {member.name: member for member in members}
        self._tasks: set[asyncio.Task[None]] = set()
        for member in members:
            member.add_transition_callback(self._on_transition)
            member.add_fault_callback(self._on_fault)

    @property
    def members(self) -> tuple[InstanceRunner, ...]:
        return tuple(self._members.values())

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"vrrp-sync-{self.name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_transition(self, instance: str, transition: Transition, machine: VrrpMachine) -> None:
        event = MemberTransition(
            instance, transition.old, transition.new, transition.reason, self._now()
        )
        for decision in self.policy.on_transition(event):
            self._execute(decision)

    def _on_fault(self, instance: str, own: bool) -> None:
        for decision in self.policy.on_fault(instance, own, self._now()):
            self._execute(decision)

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    def _execute(self, decision: Decision) -> None:
        if isinstance(decision, Follow):
            log.info(
                "vrrp.sync_group.follow",
                sync_group=self.name,
                instance=decision.instance,
                to_state=decision.to_state,
                reason=decision.reason,
            )
        elif isinstance(decision, GroupFault):
            member = self._members[decision.member]
            self._spawn(member.set_fault(FaultSource.sync_group, decision.on, decision.reason))
        elif isinstance(decision, Demote):
            self._spawn(self._demote(self._members[decision.member], decision.reason))
        elif isinstance(decision, ReleaseHold):
            self._spawn(self._members[decision.member].hold_for_sync_group(None))
        else:  # pragma: no cover - the Decision union is closed
            raise TypeError(f"unknown decision {decision!r}")

    async def _demote(self, member: InstanceRunner, reason: str) -> None:
        await member.hold_for_sync_group(reason)
        await member.resign(reason)


#: Called in the caller's loop (or the VRRP thread without one) after each transition.
ServiceCallback = Callable[[str, Transition, InstanceStatus], None]

#: Called once, in the caller's loop (or the VRRP thread without one), when the
#: VRRP thread ended by a failure instead of :meth:`VrrpService.stop`.
FailureCallback = Callable[[BaseException], None]



class VrrpService:
    """Runs every VRRP instance in a dedicated thread with its own event loop.

    VRRP timing then does not depend on how busy the caller's loop is (health
    checks of thousands of real servers): the issue's "own thread if that is
    what it takes". The thread's loop measures its own lag (a 100 ms ticker)
    for metrics. Transitions are handed back to the caller's loop with
    ``call_soon_threadsafe``; notify hooks and tracking run in the VRRP loop.

    ``ports`` builds the :class:`~vrrp.ports.PortsProvider` inside the VRRP
    loop (default: :class:`vrrp.linux.LinuxPorts`). ``realtime_priority``
    (default 1, None to disable) puts the VRRP thread, and only it, in SCHED_RR
    like keepalived's ``vrrp_rt_priority``.
    """

    def __init__(
        self,
        instances: Sequence[InstanceSettings],
        *,
        ports: Callable[[], PortsProvider] | None = None,
        on_transition: ServiceCallback | None = None,
        callback_loop: asyncio.AbstractEventLoop | None = None,
        notify: bool = True,
        lag_interval: float = 0.1,
        realtime_priority: int | None = 1,
        on_failure: FailureCallback | None = None,
    ) -> None:
        names = [settings.name for settings in instances]
        if len(set(names)) != len(names):
            raise ValueError("instances: duplicate instance name")
        keys = [settings.key for settings in instances]
        if len(set(keys)) != len(keys):
            raise ValueError("instances: two instances share interface, vrid and family")
        self._instances = tuple(instances)
        self._ports_factory = ports
        self._on_transition = on_transition
        self._callback_loop = callback_loop
        self._notify = notify
        self._lag_interval = lag_interval
        if realtime_priority is not None and not 1 <= realtime_priority <= 99:
            raise ValueError(f"realtime_priority: {realtime_priority} outside 1..99")
        self._realtime_priority = realtime_priority
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested: asyncio.Event | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._runners: dict[str, InstanceRunner] = {}
        self._trackers: dict[str, InstanceTracker] = {}
        self._runs: dict[str, asyncio.Task[None]] = {}
        self._tracking: dict[str, asyncio.Task[None]] = {}
        self._provider: PortsProvider | None = None
        self._group: asyncio.TaskGroup | None = None
        self._sync_groups: dict[str, SyncGroup] = {}
        self._lag = LoopLag(0.0, 0.0, 0)
        self._on_failure = on_failure
        self._failure: BaseException | None = None
        self.notifier: Notifier | None = None
        self._group_states: dict[str, State] = {}

    # --- caller side (any thread) ------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def loop_lag(self) -> LoopLag:
        return self._lag

    @property
    def failure(self) -> BaseException | None:
        """Why the VRRP thread ended on its own after start-up (None: it did not)."""
        return self._failure

    def start(self, timeout: float = 30.0) -> None:
        """Start the thread and every instance; raises what start-up raised."""
        if self._thread is not None:
            raise RuntimeError("VrrpService already started")
        self._thread = threading.Thread(target=self._thread_main, name="haipvs-vrrp", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"VRRP service not started within {timeout} s")
        if self._startup_error is not None:
            self._thread.join(timeout)
            raise self._startup_error

    async def start_async(self, wait_up_to: float = 30.0) -> None:
        """:meth:`start` from a coroutine; transitions come back to this loop."""
        if self._callback_loop is None:
            self._callback_loop = asyncio.get_running_loop()
        await asyncio.to_thread(self.start, wait_up_to)

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful stop: masters resign (priority 0) and drop their VIPs,
        stop hooks run, then the thread ends."""
        thread, loop, event = self._thread, self._loop, self._stop_requested
        if thread is None:
            return
        if loop is not None and event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError(f"VRRP service not stopped within {timeout} s")

    async def stop_async(self, wait_up_to: float = 30.0) -> None:
        await asyncio.to_thread(self.stop, wait_up_to)

    def status(self, timeout: float = 5.0) -> tuple[InstanceStatus, ...]:
        """Snapshots of every instance, taken inside the VRRP loop."""
        loop = self._loop
        if loop is None or not self.running:
            return ()

        async def snapshot() -> tuple[InstanceStatus, ...]:
            return tuple(runner.status() for runner in self._runners.values())

        return asyncio.run_coroutine_threadsafe(snapshot(), loop).result(timeout)

    def call(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        """Run ``coro`` in the VRRP loop (reloads, tests)."""
        if self._loop is None:
            raise RuntimeError("VrrpService not started")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def runner(self, name: str) -> InstanceRunner:
        """The runner of one instance; touch it only from the VRRP loop (:meth:`call`)."""
        return self._runners[name]

    # --- VRRP thread ---------------------------------------------------------------------------

    def _raise_scheduling_priority(self) -> None:
        """Give the VRRP thread the CPU before the checkers (keepalived
        ``vrrp_rt_priority``): SCHED_RR for this thread only, else a lower nice
        value. On a saturated director a fair share of the CPU is not enough to
        advertise every 50 ms; the thread sleeps between adverts, so it takes
        little. Failures (no CAP_SYS_NICE) are logged and VRRP runs unboosted."""
        if self._realtime_priority is None:
            return
        thread = threading.get_native_id()
        try:
            os.sched_setscheduler(thread, os.SCHED_RR, os.sched_param(self._realtime_priority))
            log.info("vrrp.service.scheduling", policy="rr", priority=self._realtime_priority)
            return
        except (OSError, AttributeError) as exc:
            reason = f"SCHED_RR refused: {exc}"
        try:
            os.setpriority(os.PRIO_PROCESS, thread, -10)
            log.info("vrrp.service.scheduling", policy="nice", priority=-10, reason=reason)
        except OSError as exc:
            log.warning("vrrp.service.scheduling", policy="default", reason=f"{reason}; {exc}")

    def _thread_main(self) -> None:
        self._raise_scheduling_priority()
        loop = asyncio.new_event_loop()
        self._loop = loop
        failure: BaseException | None = None
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # reported to start(), or logged after it
            if not self._ready.is_set():
                self._startup_error = exc
            else:
                failure = exc
        finally:
            self._ready.set()
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
        stopping = self._stop_requested is not None and self._stop_requested.is_set()
        if failure is None and self._startup_error is None and not stopping:
            failure = RuntimeError("VRRP loop ended without a stop request")
        if failure is not None:
            self._failed(failure)

    def _failed(self, failure: BaseException) -> None:
        """The VRRP thread is gone with instances that may hold VIPs and send no
        adverts: say so, and tell the owner (the VRRP process exits so that its
        parent respawns it; a fresh start removes stale VIPs, RFC 5798 §6.4.1)."""
        self._failure = failure
        log.error("vrrp.service.failed", error=repr(failure))
        callback = self._on_failure
        if callback is None:
            return
        if self._callback_loop is not None:
            with contextlib.suppress(RuntimeError):  # the caller's loop already closed
                self._callback_loop.call_soon_threadsafe(callback, failure)
        else:
            callback(failure)

    async def _main(self) -> None:
        self._stop_requested = asyncio.Event()
        provider = self._ports_factory() if self._ports_factory else _linux_provider()
        try:
            await self._serve(provider)
        finally:
            try:
                await provider.release()
            except VrrpIoError as exc:
                log.error("vrrp.vmac.failed", op=exc.op, errno=exc.errno, error=str(exc),
                          reason="exit")
            finally:
                provider.close()

    async def _serve(self, provider: PortsProvider) -> None:
        assert self._stop_requested is not None
        self._provider = provider
        self.notifier = Notifier() if self._notify else None
        for settings in self._instances:
            await self._build(settings)
        groups: dict[str, list[InstanceRunner]] = {}
        for runner in self._runners.values():
            if runner.settings.sync_group is not None:
                groups.setdefault(runner.settings.sync_group, []).append(runner)
        self._sync_groups = {name: SyncGroup(name, members) for name, members in groups.items()}
        async with asyncio.TaskGroup() as group:
            self._group = group
            lag = group.create_task(self._measure_lag())
            for name in self._runners:
                self._launch(name)
            self._ready.set()
            await self._stop_requested.wait()
            lag.cancel()
            for task in self._tracking.values():
                task.cancel()
            # Graceful: each instance resigns (RFC 5798 §6.4.3) in turn.
            for runner in self._runners.values():
                await runner.stop()
            for run in self._runs.values():
                await run
            if self.notifier is not None:
                # Let the stop hooks run (each is bounded by its own timeout).
                await self.notifier.join()
                await self.notifier.close()

    async def _build(self, settings: InstanceSettings) -> None:
        assert self._provider is not None
        ports = await self._provider(settings)
        spec = settings.vmac_spec
        if spec is not None:
            log.info("vrrp.vmac.ready", instance=settings.name, iface=spec.name,
                     parent=spec.parent, mac=spec.mac,
                     adverts_from=settings.advert_interface)
        runner = InstanceRunner(
            settings,
            link=ports.link,
            addresses=ports.addresses,
            announcer=ports.announcer,
            routing=ports.routing,
        )
        runner.add_transition_callback(self._transitioned)
        self._runners[settings.name] = runner
        self._trackers[settings.name] = self._tracker(settings, runner)

    def _tracker(self, settings: InstanceSettings, runner: InstanceRunner) -> InstanceTracker:
        assert self._provider is not None
        monitor = self._provider.monitor if settings.track_interfaces else None
        return InstanceTracker(settings, runner, monitor=monitor)

    def _launch(self, name: str) -> None:
        assert self._group is not None
        runner, tracker = self._runners[name], self._trackers[name]
        self._runs[name] = self._group.create_task(runner.run(), name=f"vrrp-{name}")
        if tracker.active:
            self._tracking[name] = self._group.create_task(tracker.run())

    async def _remove(self, name: str) -> None:
        tracking = self._tracking.pop(name, None)
        if tracking is not None:
            tracking.cancel()
        runner = self._runners[name]
        # A master resigns with priority 0 and drops its VIPs; its last transition
        # (to INIT) is still reported, so it leaves the maps only afterwards.
        await runner.stop()
        run = self._runs.pop(name, None)
        if run is not None:
            await run
        del self._runners[name]
        self._trackers.pop(name, None)

    async def _reconfigure(self, settings: InstanceSettings) -> None:
        runner, tracker = self._runners[settings.name], self._trackers[settings.name]
        if tracker.same_items(settings):
            verdict = tracker.rebase(settings) if tracker.active else None
            await runner.reconfigure(settings, verdict)
            return
        # New tracked items: a new tracker, which publishes its verdict when it starts.
        tracking = self._tracking.pop(settings.name, None)
        if tracking is not None:
            tracking.cancel()
        await runner.reconfigure(settings, None)
        tracker = self._tracker(settings, runner)
        self._trackers[settings.name] = tracker
        if tracker.active and self._group is not None:
            self._tracking[settings.name] = self._group.create_task(tracker.run())

    @property
    def instances(self) -> tuple[InstanceSettings, ...]:
        """The settings of every instance that runs now (after a partial apply, too)."""
        return tuple(runner.settings for runner in self._runners.values())

    async def apply(self, plan: InstancesPlan) -> None:
        """Execute a reload plan without a restart (call it in the VRRP loop: :meth:`call`).

        Only the instances the plan names are touched: removed ones resign and drop
        their VIPs, reconfigured ones keep their state (vrrp.machine.instance_reload),
        added ones start as a fresh instance would. The first failing step raises; the
        steps before it stay applied and :attr:`instances` says what runs, so the
        caller can plan its way back.
        """
        if plan.restart:
            raise VrrpUsageError("apply: the plan changes a sync group; restart the service")
        for step in plan.steps:
            if step.action in ("remove", InstanceReload.replace.value):
                await self._remove(step.name)
                log.info("vrrp.instance.removed", instance=step.name, reason=step.action)
            if step.action == InstanceReload.reconfigure.value:
                assert step.new is not None
                await self._reconfigure(step.new)
                log.info("vrrp.instance.reconfigured", instance=step.name,
                         vrid=step.new.vrid, iface=step.new.interface, reason="config_changed")
            if step.action in ("add", InstanceReload.replace.value):
                assert step.new is not None
                await self._build(step.new)
                self._launch(step.name)
                log.info("vrrp.instance.added", instance=step.name, vrid=step.new.vrid,
                         iface=step.new.interface, reason=step.action)
        order = {name: index for index, name in enumerate(plan.names)}
        self._runners = dict(
            sorted(self._runners.items(), key=lambda item: order.get(item[0], len(order)))
        )
        self._instances = self.instances

    async def _measure_lag(self) -> None:
        loop = asyncio.get_running_loop()
        worst, samples = 0.0, 0
        while True:
            expected = loop.time() + self._lag_interval
            await asyncio.sleep(self._lag_interval)
            lag = max(0.0, loop.time() - expected)
            samples += 1
            worst = max(worst, lag)
            self._lag = LoopLag(lag, worst, samples)

    def _group_notify(self, runner: InstanceRunner) -> None:
        """keepalived's sync group notify: once per change of the group's state
        (``vrrp.sync_group.group_state``)."""
        group, settings = runner.settings.sync_group, runner.settings.sync_group_notify
        if group is None or settings is None or self.notifier is None:
            return
        state = group_state(
            [
                member.machine.state
                for member in self._runners.values()
                if member.settings.sync_group == group
            ]
        )
        if state is None:
            return
        kind = _HOOK_FOR_STATE.get(state)
        if kind is None or self._group_states.get(group) is state:
            return
        self._group_states[group] = state
        log.info("vrrp.sync_group.state", sync_group=group, to_state=state.value)
        self.notifier.notify(group, settings, kind, 0, scope="GROUP")

    def _transitioned(self, name: str, transition: Transition, machine: VrrpMachine) -> None:
        runner = self._runners[name]
        status = runner.status()
        if self.notifier is not None:
            kind = _HOOK_FOR_STATE.get(transition.new)
            if kind is not None:
                self.notifier.notify(
                    name,
                    runner.settings.notify,
                    kind,
                    machine.effective_priority,
                    vrid=runner.settings.vrid,
                    iface=runner.settings.interface,
                )
            self._group_notify(runner)
        callback = self._on_transition
        if callback is None:
            return
        if self._callback_loop is not None:
            with contextlib.suppress(RuntimeError):  # the caller's loop already closed
                self._callback_loop.call_soon_threadsafe(callback, name, transition, status)
        else:
            callback(name, transition, status)


_HOOK_FOR_STATE = {
    State.MASTER: HookKind.master,
    State.BACKUP: HookKind.backup,
    State.FAULT: HookKind.fault,
    State.INIT: HookKind.stop,
}


def _linux_provider() -> PortsProvider:
    # Imported here so that the runner (and its tests with fakes) never loads
    # pyroute2 unless the real ports are asked for.
    from vrrp.linux import LinuxPorts

    return LinuxPorts()
