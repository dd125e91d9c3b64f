"""Tracking's IO: the loop that watches interfaces, scripts, processes and files and
publishes each new verdict to the instance (keepalived's ``track_interface``,
``vrrp_script`` / ``track_script``, ``track_process``, ``track_file``).

The decisions (the verdict, the weights, the 1..254 clamp, rise/fall) are in
``vrrp.track_verdict``; this module only feeds them.

Rules kept here:

1. The arithmetic (``tracking_verdict``) and the rise/fall hysteresis
   (``RiseFall``) live in ``vrrp.track_verdict``, tested with literal inputs;
   :class:`InstanceTracker` is the thin IO loop around them.
2. Scripts run without a shell, with a minimal environment and a timeout that
   kills (``vrrp.notify.run_argv``); a timeout counts as a failure.
3. The tracker reports a whole verdict (priority, fault, reason) each time
   something changes; the runner turns it into ``set_priority`` / ``set_fault``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Protocol

import structlog

from vrrp.notify import MINIMAL_ENVIRONMENT, RunOutcome, run_argv
from vrrp.ports import LinkEvent, LinkMonitor, VrrpIoError
from vrrp.settings import InstanceSettings, TrackInterface, TrackScript
from vrrp.track_verdict import RiseFall, TrackVerdict, tracking_verdict
from vrrp.track_watch import FileWatch, ProcessWatch

__all__ = ["InstanceTracker", "ScriptRunner", "TrackTarget"]

log = structlog.get_logger()


class TrackTarget(Protocol):
    """Where verdicts go (the instance runner)."""

    async def apply_tracking(self, verdict: TrackVerdict) -> None: ...


ScriptRunner = Callable[[Sequence[str], float], Awaitable[RunOutcome]]


async def _run_script(argv: Sequence[str], kill_after: float) -> RunOutcome:
    return await run_argv(argv, kill_after, MINIMAL_ENVIRONMENT)


class InstanceTracker:
    """Follows one instance's tracked interfaces and scripts and reports verdicts.

    Interfaces come from a :class:`~vrrp.ports.LinkMonitor` (initial state read
    once, then change events); scripts run every ``interval`` seconds.
    A script starts healthy (keepalived's default without ``init_fail``).
    """

    def __init__(
        self,
        settings: InstanceSettings,
        target: TrackTarget,
        *,
        monitor: LinkMonitor | None = None,
        run_script: ScriptRunner = _run_script,
    ) -> None:
        if settings.track_interfaces and monitor is None:
            raise ValueError(f"instance {settings.name} tracks interfaces but has no LinkMonitor")
        self._settings = settings
        self._target = target
        self._monitor = monitor
        self._run_script = run_script
        self._interfaces: dict[TrackInterface, bool] = {}
        self._scripts: dict[TrackScript, RiseFall] = {
            script: RiseFall(script.rise, script.fall) for script in settings.track_scripts
        }
        self._verdict: TrackVerdict | None = None
        self._lock = asyncio.Lock()
        #: Seconds between attempts to re-subscribe a failed link monitor.
        self.resync_retry = 1.0
        self._processes = ProcessWatch(settings.track_processes, instance=settings.name)
        self._files = FileWatch(settings.track_files, instance=settings.name)

    @property
    def verdict(self) -> TrackVerdict:
        return tracking_verdict(
            self._settings.priority,
            self._interfaces,
            {script: state.healthy for script, state in self._scripts.items()},
            [*self._processes.items(), *self._files.items()],
        )

    @property
    def active(self) -> bool:
        return bool(
            self._settings.track_interfaces
            or self._settings.track_scripts
            or self._settings.track_processes
            or self._settings.track_files
        )

    def same_items(self, settings: InstanceSettings) -> bool:
        """True when ``settings`` tracks exactly what this tracker follows."""
        return (
            settings.track_interfaces == self._settings.track_interfaces
            and settings.track_scripts == self._settings.track_scripts
        )

    def rebase(self, settings: InstanceSettings) -> TrackVerdict:
        """A reload that keeps the tracked items: adopt the new settings (a new base
        priority) and return the verdict on it, with every item's current state and
        weight, for the runner to apply in the same step as the new priority.

        Without this, a reload of the priority alone made the effective priority the
        bare base one, dropping every tracking weight until the next change of a
        tracked item (keepalived re-applies ``track_interface``/``track_script``
        weights to the new priority on reload).
        """
        if not self.same_items(settings):
            raise ValueError(f"instance {settings.name}: tracked items changed; use a new tracker")
        self._settings = settings
        self._verdict = self.verdict
        return self._verdict

    async def _publish(self) -> None:
        async with self._lock:
            verdict = self.verdict
            if verdict == self._verdict:
                return
            self._verdict = verdict
            await self._target.apply_tracking(verdict)

    async def run(self) -> None:
        """Track until cancelled. Returns at once when nothing is tracked."""
        if not self.active:
            return
        events = None
        if self._monitor is not None and self._settings.track_interfaces:
            # Subscribe before reading the initial state so no change falls in
            # between (a flap during start-up is then seen as an event).
            events = await self._monitor.subscribe()
            for item in self._settings.track_interfaces:
                self._interfaces[item] = await self._monitor.is_up(item.name)
        if self._settings.track_processes:
            await self._processes.scan()
        self._files.scan()
        await self._publish()
        async with asyncio.TaskGroup() as group:
            if events is not None:
                group.create_task(self._follow_links(events))
            for script in self._settings.track_scripts:
                group.create_task(self._poll_script(script))
            group.create_task(self._processes.run(self._publish))
            group.create_task(self._files.run(self._publish))

    async def _follow_links(self, events: AsyncIterator[LinkEvent]) -> None:
        by_name = {item.name: item for item in self._settings.track_interfaces}
        while True:
            try:
                async for event in events:
                    item = by_name.get(event.interface)
                    if item is not None:
                        await self._link_changed(item, event.up, "event")
                return
            except VrrpIoError as exc:
                # A netlink listener that overflowed (ENOBUFS) or broke lost
                # messages, not links: resynchronise with a fresh subscription
                # and a dump of the current states (every netlink listener
                # must, netlink(7) "ENOBUFS"), instead of calling every tracked
                # interface down for good.
                events = await self._resync(exc)

    async def _link_changed(self, item: TrackInterface, up: bool, how: str) -> None:
        if self._interfaces.get(item) == up:
            return
        self._interfaces[item] = up
        log.info(
            "vrrp.track.interface",
            instance=self._settings.name,
            vrid=self._settings.vrid,
            iface=item.name,
            to_state="up" if up else "down",
            weight=item.weight,
            how=how,
        )
        await self._publish()

    async def _resync(self, failure: VrrpIoError) -> AsyncIterator[LinkEvent]:
        """Subscribe again, then read every tracked interface's state (subscribe
        first, as at start, so no change falls in between). While that fails, the
        tracked interfaces count as down (fail safe: no VIPs on a blind node) and
        it is retried every :attr:`resync_retry` seconds."""
        assert self._monitor is not None
        log.warning(
            "vrrp.track.monitor.resync",
            instance=self._settings.name,
            vrid=self._settings.vrid,
            errno=failure.errno,
            op=failure.op,
        )
        while True:
            try:
                events = await self._monitor.subscribe()
                states = {
                    item: await self._monitor.is_up(item.name)
                    for item in self._settings.track_interfaces
                }
            except VrrpIoError as exc:
                log.error(
                    "vrrp.track.monitor.failed",
                    instance=self._settings.name,
                    errno=exc.errno,
                    retry_in_s=self.resync_retry,
                )
                for item in self._settings.track_interfaces:
                    await self._link_changed(item, False, "monitor_failed")
                await asyncio.sleep(self.resync_retry)
                continue
            for item, up in states.items():
                await self._link_changed(item, up, "resync")
            return events

    async def _poll_script(self, script: TrackScript) -> None:
        state = self._scripts[script]
        loop = asyncio.get_running_loop()
        next_run = loop.time()
        while True:
            outcome = await self._run_script(script.command, script.timeout)
            ok = outcome.returncode == 0 and not outcome.timed_out and not outcome.error
            if state.observe(ok):
                log.info(
                    "vrrp.track.script",
                    instance=self._settings.name,
                    vrid=self._settings.vrid,
                    script=" ".join(script.command),
                    to_state="ok" if ok else "failing",
                    reason=_outcome_reason(outcome),
                    weight=script.weight,
                )
                await self._publish()
            # Fixed cadence from the start of each run (keepalived's interval),
            # never drifting by the script's own run time; a run that overran
            # its slot is followed at once, not by a burst of catch-up runs.
            next_run = max(next_run + script.interval, loop.time())
            await asyncio.sleep(next_run - loop.time())


def _outcome_reason(outcome: RunOutcome) -> str:
    if outcome.timed_out:
        return "timeout"
    if outcome.error:
        return f"exec_failed {outcome.error}"
    return f"exit_status {outcome.returncode}"
