"""BgpPart: the scale-out mode's announcer, run by the supervisor when the config has ``bgp``.

It owns three things and nothing else:

- BIRD's config file (``snippet.render_bird_config``), written atomically (temporary file,
  fsync, rename) and followed by BIRD's ``configure`` only when its text changed. BIRD
  disables a ``disabled`` static again on ``configure`` (measured), so after one every VIP
  is re-evaluated and re-announced if its gates hold.
- The gates (``gate.AnnounceGates``), fed every ``interval`` and on each ``poke()`` (a health
  change) with what the daemon knows: the real servers up per service, whether the IPVS
  table equals the desired one, the event loop's lag, the operator's ``drain-director``
  (read from the operator's overrides on every evaluation: a drain survives reload and
  restart with them, and this part keeps no copy of it).
- The speaker calls: a flip is applied through the ``RouteSpeaker``; a failure is one
  ``bgp.speaker.failed`` line with BIRD's code and words, the VIP is re-evaluated on the
  next attempt, after a backoff (0.5 s doubling to 10 s); nothing here ever raises into
  the daemon.

``stop()`` withdraws every VIP before returning; the supervisor calls it before it touches
the IPVS table or anything else, so the routers stop sending before this director stops
serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog

from haipvs.bgp.bird import BirdError, RouteSpeaker, SpeakerError
from haipvs.bgp.gate import AnnounceGates, GateChange, GateInputs, IPAddress, VipInputs
from haipvs.bgp.local import unusable_vips
from haipvs.bgp.plan import ScaleOutPlan
from haipvs.bgp.snippet import protocol_name, render_bird_config

__all__ = ["BgpPart", "BgpView", "DirectorState"]

log = structlog.get_logger("haipvs.bgp")

RETRY_FIRST = 0.5
RETRY_MAX = 10.0


@dataclass(frozen=True, slots=True)
class DirectorState:
    """What the gates read from the rest of the daemon, at one instant."""

    up_by_service: Mapping[str, int]
    table_in_sync: bool
    loop_lag: float
    drained: bool = False  # haipvs drain-director (the operator's overrides)
    sloppy_tcp: str | None = None  # why net.ipv4.vs.sloppy_tcp is not 1 (None: it is)
    #: With a sync mesh: when its backup daemon first ran (loop time), from which ``learn``
    #: counts, since nothing is learnt before it listens; None: count from the part's start.
    learning_since: float | None = None


@dataclass(frozen=True, slots=True)
class BgpView:
    """What ``/status`` shows of the part (the supervisor copies it into the snapshot)."""

    announced: tuple[str, ...]
    drained: bool
    protocols: dict[str, str]
    speaker_error: str | None
    withheld: dict[str, str]


class BgpPart:
    def __init__(
        self,
        plan: ScaleOutPlan,
        speaker: RouteSpeaker,
        state: Callable[[], DirectorState],
        *,
        interval: float = 0.5,
        vip_check: Callable[[Iterable[IPAddress]], Mapping[IPAddress, str]] = unusable_vips,
    ) -> None:
        self._plan = plan
        self._speaker = speaker
        self._state = state
        self._interval = interval
        self._vip_check = vip_check
        self._gates = AnnounceGates()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._started_at: float | None = None
        self._stopping = False
        self._drained = False
        self._config_pending = True
        self._bird_has: str | None = None  # the config text BIRD last accepted
        self._retry_at = 0.0
        self._backoff = RETRY_FIRST
        self._speaker_error: str | None = None
        self._protocols: Mapping[str, str] = {}
        # Completed gate evaluations: "nothing was announced for a whole round" is an
        # observable fact for whoever waits on it, not a guess about how long a round takes.
        self.evaluations = 0

    # ------------------------------------------------------------------ the daemon's API

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._started_at = loop.time()
        self._task = asyncio.create_task(self._run(), name="bgp")

    def poke(self) -> None:
        """A health change (or anything the gates read) moved: evaluate now."""
        self._wake.set()

    def update(self, plan: ScaleOutPlan) -> None:
        """A reload: the new plan's config file is written (and BIRD reconfigured) if its
        text changed; gates of VIPs no longer in it withdraw them."""
        self._plan = plan
        self._config_pending = True
        self._wake.set()

    @property
    def control_socket(self) -> str:
        return self._plan.control_socket

    def view(self) -> BgpView:
        announced = sorted(self._gates.announced(), key=lambda a: (a.version, a))
        return BgpView(
            announced=tuple(str(vip) for vip in announced),
            drained=self._drained,
            protocols=dict(self._protocols),
            speaker_error=self._speaker_error,
            withheld={str(vip): reason for vip, reason in sorted(
                self._gates.withheld().items(), key=lambda item: (item[0].version, item[0]))},
        )

    async def stop(self) -> None:
        """Withdraw every VIP (one attempt each, bounded by the speaker's timeout), then
        stop. Called before anything else is torn down."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        was_announced = bool(self._gates.announced())
        try:
            state = self._state()
            changes = self._gates.evaluate(self._vip_inputs(state), self._gate_inputs(state))
        except Exception:  # withdraw all the same: the reason is only for the log
            log.exception("bgp.part.failed")
            changes = []
        flipped = {change.vip: change for change in changes}
        for vip in sorted(self._plan.vips, key=lambda a: (a.version, a)):
            change = flipped.get(vip, GateChange(vip, False, "shutting down"))
            try:
                changed = await self._speaker.withdraw(protocol_name(vip))
            except SpeakerError as error:
                self._failed(error, vip=vip)
                continue
            if changed or vip in flipped:
                log.info("bgp.vip.withdrawn", vip=str(vip), reason=change.reason)
        if was_announced and self._plan.withdraw_grace > 0:
            # The routers need a moment to take this director out of ECMP: until then
            # packets still arrive, and must find the IPVS table (the caller tears it
            # down only after this returns).
            await asyncio.sleep(self._plan.withdraw_grace)
        with contextlib.suppress(SpeakerError):
            await self._speaker.close()

    # ------------------------------------------------------------------ the loop

    async def _run(self) -> None:
        while True:
            try:
                await self._tick()
            except SpeakerError as error:  # pragma: no cover - _tick catches its own
                self._failed(error)
            except Exception:  # a failing step never kills the daemon
                log.exception("bgp.part.failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()

    async def _tick(self) -> None:
        now = asyncio.get_running_loop().time()
        if now < self._retry_at:
            return
        try:
            if self._config_pending:
                await self._write_config()
            state = self._state()
            changes = self._gates.evaluate(self._vip_inputs(state), self._gate_inputs(state))
            await self._apply(changes)
            self._protocols = dict(await self._speaker.protocol_states())
            self._repair_drift()
            self.evaluations += 1
        except SpeakerError as error:
            self._failed(error)
            if not isinstance(error, BirdError):
                # The socket failed: BIRD may be a new process now, started on whatever
                # file is there with every static disabled. Configure it again and let
                # the gates announce afresh.
                self._bird_has = None
                self._config_pending = True
            self._retry_at = now + self._backoff
            self._backoff = min(self._backoff * 2, RETRY_MAX)
            return
        self._speaker_error = None
        self._backoff = RETRY_FIRST

    async def _write_config(self) -> None:
        text = render_bird_config(self._plan.bird)
        path = Path(self._plan.config_file)
        try:
            changed = _install(path, text)
        except OSError as error:
            raise SpeakerError(
                f"write {path}", error.errno or 0, error.strerror or str(error)
            ) from error
        # At start too, even with the file unchanged: BIRD may still run an older one.
        if changed or text != self._bird_has:
            await self._speaker.configure()
            self._bird_has = text
            log.info("bgp.config.applied", path=str(path), vips=len(self._plan.vips))
            for vip in self._gates.announced() - set(self._plan.vips):
                log.info("bgp.vip.withdrawn", vip=str(vip), reason="VIP removed from the config")
            # BIRD disabled every static again: evaluate every VIP afresh.
            self._gates = self._gates.afresh()
        self._config_pending = False

    async def _apply(self, changes: list[GateChange]) -> None:
        for change in changes:
            name = protocol_name(change.vip)
            try:
                if change.announce:
                    await self._speaker.announce(name)
                else:
                    await self._speaker.withdraw(name)
            except SpeakerError:
                # Re-evaluated on the next attempt, so the flip is applied once it works.
                self._gates.forget(change.vip)
                raise
            if change.announce:
                log.info("bgp.vip.announced", vip=str(change.vip), protocol=name)
            else:
                log.info("bgp.vip.withdrawn", vip=str(change.vip), reason=change.reason)

    def _repair_drift(self) -> None:
        """A VIP announced by the gates but down in BIRD (someone ran ``birdc disable``,
        BIRD restarted between two ticks) is announced again on the next tick."""
        for vip in self._gates.announced():
            state = self._protocols.get(protocol_name(vip))
            if state is not None and not state.startswith("up"):
                log.warning("bgp.vip.drift", vip=str(vip), bird_state=state,
                            reason="announced by haipvs, not up in BIRD: enabling it again")
                self._gates.forget(vip)
                self._wake.set()

    def _failed(self, error: SpeakerError, vip: IPAddress | None = None) -> None:
        self._speaker_error = str(error)
        log.error(
            "bgp.speaker.failed",
            op=error.op,
            code=error.code,
            error=error.text,
            vip=None if vip is None else str(vip),
            retry_in=None if self._stopping else self._backoff,
        )

    def _vip_inputs(self, state: DirectorState) -> dict[IPAddress, VipInputs]:
        up = state.up_by_service
        unusable = self._vip_check(self._plan.vips)
        return {
            vip: VipInputs(
                {label: up.get(label, 0) for label in plan.services}, plan.need, plan.learn,
                unusable.get(vip),
            )
            for vip, plan in self._plan.vips.items()
        }

    def _gate_inputs(self, state: DirectorState) -> GateInputs:
        self._drained = state.drained  # for the view: as the gates last saw it
        now = asyncio.get_running_loop().time()
        started = now if self._started_at is None else self._started_at
        if state.learning_since is not None:
            started = max(started, state.learning_since)
        return GateInputs(
            now=now,
            started_at=started,
            learn=0.0,
            table_in_sync=state.table_in_sync,
            loop_lag=state.loop_lag,
            max_loop_lag=self._plan.max_loop_lag,
            drained=state.drained,
            stopping=self._stopping,
            sloppy_tcp=state.sloppy_tcp,
        )


def _install(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` unless it is there already; BIRD never reads half a
    file: written beside it, fsynced, renamed over it. A few kB: done inline."""
    try:
        if path.read_text() == text:
            return False
    except OSError:
        pass
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return True
