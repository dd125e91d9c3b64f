"""Tracking: interfaces and scripts that move an instance's effective priority.

keepalived's ``track_interface`` and ``vrrp_script`` / ``track_script``:

- a tracked item with weight 0 puts the instance in FAULT while it is down or
  failing (keepalived: "if no weight is specified, the instance goes to FAULT");
- a negative weight is added to the priority while the item is down / failing,
  a positive weight while it is up / succeeding (keepalived's sign convention
  for both track_interface and vrrp_script);
- the result is clamped to 1..254: tracking can never make a router the address
  owner, nor silence it (priority 0 means "stopping", RFC 5798 §5.2.4), and an
  owner (255) is never changed (keepalived ignores weights on an owner).

Rules kept here:

1. The arithmetic (:func:`tracking_verdict`) and the rise/fall hysteresis
   (:class:`RiseFall`) are plain values and functions, no IO, so they are tested
   with literal inputs; :class:`InstanceTracker` is the thin IO loop around them.
2. Scripts run without a shell, with a minimal environment and a timeout that
   kills (``vrrp.notify.run_argv``); a timeout counts as a failure.
3. The tracker reports a whole verdict (priority, fault, reason) each time
   something changes; the runner turns it into ``set_priority`` / ``set_fault``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from vrrp.notify import MINIMAL_ENVIRONMENT, RunOutcome, run_argv
from vrrp.ports import LinkEvent, LinkMonitor, VrrpIoError
from vrrp.settings import PRIORITY_OWNER, InstanceSettings, TrackInterface, TrackScript
from vrrp.track_watch import FileWatch, ProcessWatch, TrackedItem

__all__ = [
    "InstanceTracker",
    "RiseFall",
    "ScriptRunner",
    "TrackTarget",
    "TrackVerdict",
    "tracking_verdict",
]

log = structlog.get_logger()

_MAX_TRACKED_PRIORITY = 254


@dataclass(frozen=True, slots=True)
class TrackVerdict:
    """What tracking says about an instance right now."""

    priority: int
    fault: bool
    reason: str


def tracking_verdict(
    base_priority: int,
    interfaces: Mapping[TrackInterface, bool],
    scripts: Mapping[TrackScript, bool],
    others: Iterable[TrackedItem] = (),
) -> TrackVerdict:
    """Effective priority and fault from the state of every tracked item.

    ``interfaces`` maps each tracked interface to "up", ``scripts`` each script
    to "succeeding"; ``others`` are tracked processes and files, already as
    (label, weight, good) (vrrp.track_watch). The reason names every item that is
    currently counting.
    """
    faults: list[str] = []
    moves: list[str] = []
    total = 0
    items: list[tuple[str, int, bool]] = [
        (f"interface {item.name} {'up' if up else 'down'}", item.weight, up)
        for item, up in interfaces.items()
    ]
    items += [
        (f"script {item.command[0]} {'ok' if ok else 'failing'}", item.weight, ok)
        for item, ok in scripts.items()
    ]
    items += others
    for label, weight, good in items:
        if weight == 0:
            if not good:
                faults.append(label)
        elif (weight > 0) == good:
            total += weight
            moves.append(f"{label} {weight:+d}")
    if base_priority == PRIORITY_OWNER:
        priority = PRIORITY_OWNER
    else:
        priority = max(1, min(_MAX_TRACKED_PRIORITY, base_priority + total))
    if faults:
        return TrackVerdict(priority, True, "; ".join(faults))
    return TrackVerdict(priority, False, "; ".join(moves) if moves else "all tracked items nominal")


class RiseFall:
    """keepalived ``rise``/``fall``: a script changes state only after ``rise``
    consecutive successes or ``fall`` consecutive failures."""

    __slots__ = ("_fall", "_rise", "_streak", "healthy")

    def __init__(self, rise: int, fall: int, *, healthy: bool = True) -> None:
        if rise < 1 or fall < 1:
            raise ValueError(f"rise {rise} and fall {fall} must be >= 1")
        self._rise = rise
        self._fall = fall
        self._streak = 0
        self.healthy = healthy

    def observe(self, ok: bool) -> bool:
        """Feed one result; True when the state changed."""
        if ok == self.healthy:
            self._streak = 0
            return False
        self._streak += 1
        if self._streak >= (self._rise if ok else self._fall):
            self.healthy = ok
            self._streak = 0
            return True
        return False


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
        try:
            async for event in events:
                item = by_name.get(event.interface)
                if item is None or self._interfaces.get(item) == event.up:
                    continue
                self._interfaces[item] = event.up
                log.info(
                    "vrrp.track.interface",
                    instance=self._settings.name,
                    vrid=self._settings.vrid,
                    iface=item.name,
                    to_state="up" if event.up else "down",
                    weight=item.weight,
                )
                await self._publish()
        except VrrpIoError as exc:
            # Losing the monitor means we no longer know: fail safe to FAULT on
            # every tracked interface rather than keep VIPs on a blind node.
            log.error("vrrp.track.monitor.failed", instance=self._settings.name, errno=exc.errno)
            for item in self._settings.track_interfaces:
                self._interfaces[item] = False
            await self._publish()

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
