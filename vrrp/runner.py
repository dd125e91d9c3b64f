"""The asyncio adapter around :class:`~vrrp.machine.VrrpMachine`: one instance.

The service that runs every instance in its own thread, and the sync groups, are in
``vrrp.service``; the status types in ``vrrp.status``.

aioquic's ``asyncio/protocol.py`` shape: on every input (an advert, the timer,
a tracking verdict, a fault) call the machine with ``clock()``, execute the
returned actions through the ports in order, then re-arm ONE ``loop.call_at``
timer at ``next_deadline()``. A firing timer passes ``max(deadline, clock())``
so the machine never sees a time earlier than the deadline it asked for.

Rules kept here:

1. No protocol decision: the machine decides, the runner executes (the receive
   filter too: TTL rule and checksum form, ``VrrpMachine.decode_received``). The
   only policies here are IO ones: how to group VIPs per interface, how to space a
   gratuitous-ARP burst, how long an IO fault is held before retrying.
2. Read before the timer: before acting on a deadline, every advert already
   waiting in the socket is fed first (``AdvertLink.pending()``), so a loop
   that stalled past a master-down deadline never declares a live master dead.
3. One input at a time: an ``asyncio.Lock`` serialises inputs, so actions of
   one input are all executed before the next input reaches the machine.
4. Port failures become inputs: a :class:`~vrrp.ports.VrrpIoError` while
   executing sets an ``io`` fault (``set_fault``), cleared after a hold time.
   The peer's garbage is counted per :class:`~vrrp.errors.DropReason` and
   logged at most once per ``drop_log_interval`` per reason: per reason, not
   per source, so spoofed sources cannot make a line (and a table entry) each.
   A transient send failure (ENOBUFS, EAGAIN) is retried, and only a streak of
   them (``vrrp.retry.SendFailures``) is a fault.
5. Every change is one log line saying why: ``vrrp.transition``
   with vrid, iface, from_state, to_state, reason (+ detail words).
6. Adverts before garbage: the receive loop hands the event loop back every
   ``_RECEIVE_BUDGET`` datagrams and the timer reads at most ``_PENDING_LIMIT``
   waiting ones, so a flood on the socket delays the advert timer by a bounded
   amount instead of silencing it (keepalived bounds its read loop per VRID).
7. Logging never aborts an input: a log sink that fails (stdout closed, EPIPE)
   or a transition callback that raises is contained (``_NeverRaises``), and the
   remaining actions of the input (VIPs, adverts, the timer) still happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import structlog

from vrrp.errors import DropReason, MalformedAdvert
from vrrp.machine import (
    Action,
    AdvertDropped,
    AdvertMismatch,
    Announce,
    InstallVips,
    OldUnicastChecksum,
    PriorityChanged,
    RemoveVips,
    SendAdvert,
    State,
    Transition,
    TransitionReason,
    VipsChanged,
    VrrpMachine,
)
from vrrp.packet import VRRP_MULTICAST_V4, VRRP_MULTICAST_V6, encode_advert, seal_extension
from vrrp.ports import (
    AdvertLink,
    Announcer,
    IPAddress,
    ReceivedAdvert,
    Vip,
    VipAddresses,
    VirtualRouting,
    VrrpIoError,
)
from vrrp.retry import SendFailures
from vrrp.routes import VirtualRoute, VirtualRule, changes
from vrrp.settings import InstanceSettings
from vrrp.status import FaultSource, InstanceStatus, RunnerCounters
from vrrp.track_verdict import TrackVerdict

__all__ = ["FaultCallback", "InstanceRunner", "TransitionCallback", "log"]

#: Datagrams the receive loop feeds before it yields to the event loop (timers,
#: advert sends). Small: one datagram costs tens of microseconds in Python.
_RECEIVE_BUDGET = 16
#: Datagrams the timer reads from the socket before deciding (rule 2), at most.
_PENDING_LIMIT = 64


class _NeverRaises:
    """The module's logger, whose calls never raise.

    A log sink can fail (stdout closed by a supervisor, EPIPE, a full disk): the
    line is lost, but the input that was logging (a transition, VIPs, the next
    timer) must complete, or the instance is left MASTER with no VIPs and no
    timer. The failure goes to stderr, if even that works."""

    def __init__(self, logger: Any) -> None:
        self._logger = logger

    def _call(self, level: str, event: str, fields: dict[str, Any]) -> None:
        try:
            getattr(self._logger, level)(event, **fields)
        except Exception as exc:  # any sink failure, see above
            with contextlib.suppress(Exception):
                print(f"haipvs: log write failed for {event}: {exc!r}", file=sys.stderr)

    def info(self, event: str, **fields: Any) -> None:
        self._call("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._call("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._call("error", event, fields)


log = _NeverRaises(structlog.get_logger())


#: Called after each transition, in the runner's event loop.
TransitionCallback = Callable[[str, Transition, VrrpMachine], None]
#: Called when the instance gets or loses a fault of its own (any source but the
#: sync group's), in the runner's event loop: (instance, has an own fault).
FaultCallback = Callable[[str, bool], None]


class InstanceRunner:
    """Runs one VRRP instance: its machine, its link, its VIPs, one timer.

    ``run()`` starts the machine and serves adverts until ``stop()`` (graceful:
    priority-0 advert and VIPs removed, RFC 5798 §6.4.3) or cancellation
    (a crash: nothing is sent, nothing removed, as when the process dies).
    """

    def __init__(
        self,
        settings: InstanceSettings,
        *,
        link: AdvertLink,
        addresses: VipAddresses,
        announcer: Announcer,
        routing: VirtualRouting | None = None,
        clock: Callable[[], float] | None = None,
        on_transition: TransitionCallback | None = None,
        drop_log_interval: float = 10.0,
        io_fault_hold: float | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        # UTC seconds for auth_hmac's timestamps and freshness window (keepalived
        # uses CLOCK_REALTIME); the election itself runs on the monotonic ``clock``.
        self._wall_clock = wall_clock
        self._link = link
        self._addresses = addresses
        self._announcer = announcer
        self._routing = routing
        self._clock = clock
        self._callbacks: list[TransitionCallback] = []
        if on_transition is not None:
            self._callbacks.append(on_transition)
        self._drop_log_interval = drop_log_interval
        # How long an IO failure keeps the instance in FAULT before it listens
        # again: one master-down interval, so a flapping port cannot make the
        # instance flap faster than the protocol itself would.
        self._io_fault_hold = (
            io_fault_hold if io_fault_hold is not None else 3 * settings.advert_interval + 1.0
        )
        self.machine = VrrpMachine(
            settings, primary_address=link.local_address, connected=link.connected_networks
        )
        # Advert send failures: a fault at the third advert in a row that could
        # not be sent (1.5 intervals after the first), before a peer's
        # Master_Down_Interval (3 intervals + skew) runs out.
        self._send_failures = SendFailures(1.5 * settings.advert_interval)
        self.counters = RunnerCounters()
        self._lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._announce_task: asyncio.Task[None] | None = None
        #: Transitions of the step being executed, whose callbacks run after its actions.
        self._deferred: list[Transition] | None = None
        self._io_fault_timer: asyncio.TimerHandle | None = None
        self._faults: dict[FaultSource, str] = {}
        self._fault_callbacks: list[FaultCallback] = []
        self._own_fault_reported = False
        self._tracked_priority = settings.priority
        self._tracked_reason = "configured"
        self._sync_hold: str | None = None
        self._operator_hold: str | None = None
        # Per reason (bounded by the enum): when the last line was written and
        # how many drops it has hidden since.
        self._drop_logged: dict[DropReason, tuple[float, int]] = {}
        self._stopped = asyncio.Event()
        self._started = False

    # --- queries ------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._settings.name

    @property
    def settings(self) -> InstanceSettings:
        return self._settings

    @property
    def state(self) -> State:
        return self.machine.state

    @property
    def faults(self) -> dict[FaultSource, str]:
        return dict(self._faults)

    def status(self) -> InstanceStatus:
        """A snapshot for status, metrics and callbacks (take it in the runner's loop)."""
        return InstanceStatus.of(self)

    def add_transition_callback(self, callback: TransitionCallback) -> None:
        self._callbacks.append(callback)

    def add_fault_callback(self, callback: FaultCallback) -> None:
        self._fault_callbacks.append(callback)

    def _report_own_fault(self) -> None:
        """Tell the fault callbacks (a sync group) when the instance got or lost a
        fault of its own; a fault the group holds on it is not its own."""
        own = any(source is not FaultSource.sync_group for source in self._faults)
        if own == self._own_fault_reported:
            return
        self._own_fault_reported = own
        for callback in self._fault_callbacks:
            try:
                callback(self.name, own)
            except Exception as exc:  # rule 7
                log.error(
                    "vrrp.callback.failed",
                    instance=self.name,
                    callback=getattr(callback, "__qualname__", repr(callback)),
                    error=repr(exc),
                )

    def _now(self) -> float:
        if self._clock is not None:
            return self._clock()
        return self._running_loop().time()

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    # --- lifecycle ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Start the machine and serve adverts until :meth:`stop` or cancellation."""
        if self._started:
            raise RuntimeError(f"instance {self.name} already started")
        self._started = True
        self._running_loop()
        await self._input(self.machine.start)
        receiver = asyncio.create_task(self._receive_loop(), name=f"vrrp-rx-{self.name}")
        stopped = asyncio.create_task(self._stopped.wait())
        try:
            await asyncio.wait({receiver, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if receiver.done() and not self._stopped.is_set():
                receiver.result()  # a bug in the receive path ends run() loudly
        finally:
            receiver.cancel()
            stopped.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await receiver
            self._cancel_background()

    async def stop(self) -> None:
        """Graceful stop: the machine's Shutdown event (a master resigns with
        priority 0 and removes its VIPs), then the link is closed."""
        if self._stopped.is_set():
            return
        try:
            if self._started:
                await self._input(self.machine.shutdown)
        finally:
            self._stopped.set()
            self._cancel_background()
            self._link.close()

    def _cancel_background(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_at = None
        if self._io_fault_timer is not None:
            self._io_fault_timer.cancel()
            self._io_fault_timer = None
        for task in list(self._tasks):
            task.cancel()

    # --- inputs from outside --------------------------------------------------------------------

    async def apply_tracking(self, verdict: TrackVerdict) -> None:
        """A new tracking verdict (``vrrp.track.InstanceTracker`` target)."""
        self._tracked_priority = verdict.priority
        self._tracked_reason = verdict.reason
        await self._input(self._priority_input)
        await self.set_fault(FaultSource.track, verdict.fault, verdict.reason)

    async def set_fault(self, source: FaultSource, on: bool, reason: str) -> None:
        """Set or clear one source's fault; the machine sees the union."""
        if on:
            self._faults[source] = reason
        else:
            self._faults.pop(source, None)
        summary = self._fault_summary() or (f"{source.value}: {reason}" if reason else source.value)

        def fault_input(now: float) -> tuple[Action, ...]:
            return self.machine.set_fault(bool(self._faults), summary, now)

        await self._input(fault_input)
        self._report_own_fault()

    async def hold_for_sync_group(self, reason: str | None) -> None:
        """Sync group: advertise the lowest priority while a member is backup
        (``reason`` set), or the tracked one again (None)."""
        self._sync_hold = reason
        await self._input(self._priority_input)

    async def resign(self, reason: str) -> None:
        """Leave MASTER for BACKUP now (a sync group follows a member to BACKUP).

        keepalived's ``vrrp_sync_backup`` moves the other members straight to
        BACKUP: one MASTER -> BACKUP transition (reason ``sync_group``) and the
        BACKUP notify hook, never a FAULT. The machine sends priority 0 on the
        way out (RFC 5798 §6.4.3's resign advert; keepalived leaves silently) so
        the peer takes over after its skew time, and drops the VIPs. Keeping the
        instance from preempting back is the caller's part
        (:meth:`hold_for_sync_group`). Not MASTER: nothing happens."""
        await self._input(lambda now: self.machine.resign(reason, now))

    async def hold_for_operator(self, reason: str | None) -> None:
        """``haipvs failover``: hand mastership over and stay backup (``reason`` set), or
        release the hold (None).

        While held the instance advertises priority 1, like a sync group's hold, so it
        never preempts back, yet still takes over if the peer dies. A master resigns
        with a priority-0 advert (RFC 5798 §6.4.3): the peer takes over after its skew
        time."""
        if reason == self._operator_hold:
            return
        self._operator_hold = reason
        await self._input(self._priority_input)
        if reason is not None:
            await self._input(
                lambda now: self.machine.resign(
                    reason, now, cause=TransitionReason.operator_failover
                )
            )

    async def reconfigure(
        self, settings: InstanceSettings, tracked: TrackVerdict | None = None
    ) -> None:
        """Reload: new tunables, VIPs or tracking in place (vrrp.machine.instance_reload),
        keeping the state; a master adds and announces new VIPs and drops removed ones at
        once. A new identity, version or sync group raises VrrpUsageError: the caller
        replaces the instance.

        ``tracked`` is the tracking verdict for the new settings (the instance's
        ``InstanceTracker.rebase``): the machine resets its effective priority to the new
        base, and the tracking weights (and a sync group's hold) are applied again in the
        same step, so the peer never sees the bare base priority. None: untracked, or a
        new tracker publishes its verdict next.
        """

        previous = self._settings

        def produce(now: float) -> tuple[Action, ...]:
            actions = self.machine.reconfigure(settings, now)
            # Before the actions run: VipsChanged and Announce act on the new VIPs.
            self._settings = settings
            if tracked is not None:
                self._tracked_priority, self._tracked_reason = tracked.priority, tracked.reason
            else:
                self._tracked_priority, self._tracked_reason = settings.priority, "configured"
            return actions + self._priority_input(now)

        await self._input(produce)
        async with self._lock:
            if not self._stopped.is_set():
                await self._reconfigure_routing(previous, settings)
        if tracked is not None:
            await self.set_fault(FaultSource.track, tracked.fault, tracked.reason)
        elif FaultSource.track in self._faults:
            await self.set_fault(FaultSource.track, False, "tracking reconfigured")

    def _fault_summary(self) -> str:
        """Every fault still held, as the reason the machine logs (empty: none)."""
        return "; ".join(f"{source.value}: {why}" for source, why in self._faults.items())

    def _priority_input(self, now: float) -> tuple[Action, ...]:
        if self._sync_hold is not None:
            return self.machine.set_priority(1, self._sync_hold, now)
        if self._operator_hold is not None:
            return self.machine.set_priority(1, self._operator_hold, now)
        return self.machine.set_priority(self._tracked_priority, self._tracked_reason, now)

    # --- the adapter loop -------------------------------------------------------------------------

    async def _input(self, produce: Callable[[float], tuple[Action, ...]]) -> None:
        async with self._lock:
            if self._stopped.is_set():
                return
            await self._execute(produce(self._now()))
            self._rearm()

    async def _receive_loop(self) -> None:
        fed = 0
        while not self._stopped.is_set():
            fed += 1
            if fed >= _RECEIVE_BUDGET:
                # Rule 6: a socket that always has data never makes receive()
                # suspend; hand the loop back so the advert timer runs.
                fed = 0
                await asyncio.sleep(0)
            try:
                received = await self._link.receive()
            except VrrpIoError as exc:
                if self._stopped.is_set():
                    return
                # A socket that cannot be read is a fault like any IO failure;
                # try again once the fault hold has passed.
                async with self._lock:
                    self._io_failed(exc, "receive")
                    if FaultSource.io not in self._faults:
                        await self._enter_io_fault(exc)
                    self._rearm()
                await asyncio.sleep(self._io_fault_hold)
                continue
            # Acquire without yielding when free (asyncio.Lock's fast path), and
            # FIFO otherwise: an advert read before a timer fired is fed first.
            async with self._lock:
                if self._stopped.is_set():
                    return
                await self._feed(received)
                self._rearm()

    async def _feed(self, received: ReceivedAdvert) -> None:
        self.counters.adverts_received += 1
        now = self._now()
        try:
            if received.header_error is not None:
                raise received.header_error
            accepted = self.machine.receive(
                received.payload,
                received.source,
                received.destination,
                received.ttl,
                self._wall_clock(),
            )
        except MalformedAdvert as exc:
            self._dropped(exc.reason, received.source, exc.detail, now)
            return
        if accepted.auth is not None:
            self.counters.auth_accepted[accepted.auth.verdict] += 1
        await self._execute(
            self.machine.on_advert(
                accepted.advert,
                received.source,
                now,
                old_checksum=accepted.old_checksum,
                destination=received.destination,
            )
        )

    def _rearm(self) -> None:
        deadline = self.machine.next_deadline()
        if deadline == self._timer_at and (deadline is None or self._timer is not None):
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            self._timer = self._running_loop().call_at(deadline, self._timer_fired, deadline)

    def _timer_fired(self, deadline: float) -> None:
        self._timer = None
        self._timer_at = None
        self._spawn(self._on_timer(deadline), "timer")

    async def _on_timer(self, fired: float) -> None:
        async with self._lock:
            if self._stopped.is_set():
                return
            # Rule 2: adverts that waited in the socket while we were busy count
            # first; they may push the master-down deadline into the future.
            for received in self._link.pending(_PENDING_LIMIT):
                await self._feed(received)
            deadline = self.machine.next_deadline()
            now = self._now()
            if deadline is not None and deadline <= max(fired, now):
                await self._execute(self.machine.on_timer(max(deadline, now)))
            self._rearm()

    def _spawn(self, coro: Coroutine[Any, Any, None], what: str) -> asyncio.Task[None]:
        task = self._running_loop().create_task(coro, name=f"vrrp-{what}-{self.name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- executing actions ------------------------------------------------------------------------

    async def _execute(self, actions: Sequence[Action]) -> None:
        """Run the machine's actions in order; an IO failure becomes a fault.

        The remaining actions after a failure are still attempted when they
        release state (RemoveVips): leaving VIPs behind is worse than a second
        error line.
        """
        failure: VrrpIoError | None = None
        # Transition callbacks (notify hooks, the status the parent serves) run after
        # the step's other actions, as keepalived runs notify scripts after its VIPs and
        # gratuitous ARPs: a hook's fork holds this loop for tens to hundreds of ms on a
        # slow host, and the VIPs must be up and announced first.
        deferred: list[Transition] = []
        self._deferred = deferred
        for action in actions:
            if failure is not None and not isinstance(action, RemoveVips | Transition):
                continue
            try:
                await self._execute_one(action)
            except VrrpIoError as exc:
                if isinstance(action, SendAdvert):
                    self.counters.send_errors += 1
                    if not self._send_failures.failed(exc.errno, self._now()):
                        self._send_retried(exc)
                        continue
                self._io_failed(exc, type(action).__name__)
                failure = failure or exc
            except Exception as exc:  # rule 7: the rest still runs
                log.error(
                    "vrrp.action.failed",
                    vrid=self._settings.vrid,
                    iface=self._settings.interface,
                    action=type(action).__name__,
                    error=repr(exc),
                )
        self._deferred = None
        for transition in deferred:
            self._run_callbacks(transition)
        if failure is not None and FaultSource.io not in self._faults:
            await self._enter_io_fault(failure)

    def _send_retried(self, exc: VrrpIoError) -> None:
        failures = self._send_failures
        since = failures.failing_since
        log.warning(
            "vrrp.advert.send_failed",
            vrid=self._settings.vrid,
            iface=self._settings.interface,
            op=exc.op,
            errno=exc.errno,
            consecutive=failures.consecutive,
            failing_for_ms=round((self._now() - since) * 1000) if since is not None else 0,
            fault_after_ms=round(failures.grace * 1000),
        )

    def _io_failed(self, exc: VrrpIoError, action: str) -> None:
        self.counters.io_errors += 1
        log.error(
            "vrrp.io.failed",
            vrid=self._settings.vrid,
            iface=self._settings.interface,
            op=exc.op,
            errno=exc.errno,
            action=action,
        )

    async def _enter_io_fault(self, failure: VrrpIoError) -> None:
        self._faults[FaultSource.io] = f"{failure.op} errno={failure.errno}"
        # Inside the lock already: call the machine directly. Failures while
        # releasing (priority-0 advert on a dead link) are logged, not re-faulted.
        await self._execute(self.machine.set_fault(True, self._fault_summary(), self._now()))
        self._report_own_fault()
        loop = self._running_loop()
        if self._io_fault_timer is not None:
            self._io_fault_timer.cancel()
        self._io_fault_timer = loop.call_at(
            self._now() + self._io_fault_hold,
            lambda: self._spawn(self.set_fault(FaultSource.io, False, "retry"), "io-retry"),
        )

    async def _execute_one(self, action: Action) -> None:
        settings = self._settings
        if isinstance(action, SendAdvert):
            await self._send(action.priority)
        elif isinstance(action, InstallVips):
            for interface, vips in self._vips_by_interface():
                for vip in vips:
                    await self._addresses.add(interface, vip)
            # After the VIPs: a route with `src VIP` needs the address in place.
            await self._change_routing(settings.routes, settings.rules, (), (), "became_master")
        elif isinstance(action, RemoveVips):
            # Rules and routes first, the VIPs they may name last (the reverse order).
            await self._change_routing((), (), settings.routes, settings.rules, "left_master")
            await self._remove_vips()
        elif isinstance(action, VipsChanged):
            await self._change_vips(action)
        elif isinstance(action, Announce):
            self._start_announce()
        elif isinstance(action, Transition):
            self._transitioned(action)
        elif isinstance(action, AdvertDropped):
            self._dropped(action.reason, action.source, action.detail, self._now())
        elif isinstance(action, AdvertMismatch):
            self.counters.address_mismatches += 1
            log.warning(
                "vrrp.advert.mismatch",
                vrid=settings.vrid,
                iface=settings.interface,
                reason=action.reason.value,
                peer=str(action.source),
                detail=action.detail,
            )
        elif isinstance(action, OldUnicastChecksum):
            # keepalived: "(VI_1) Setting unicast VRRPv3 checksum to old version".
            log.info(
                "vrrp.checksum.compat",
                instance=settings.name,
                vrid=settings.vrid,
                iface=settings.interface,
                peer=str(action.source),
                checksum="old",
                detail="peer uses the pre-1.3.7 keepalived VRRPv3 unicast checksum "
                "(224.0.0.18 in the pseudo-header); sending it too from now on",
            )
        elif isinstance(action, PriorityChanged):
            log.info(
                "vrrp.priority.changed",
                vrid=settings.vrid,
                iface=settings.interface,
                from_priority=action.old,
                to_priority=action.new,
                reason=action.reason,
            )
        else:  # pragma: no cover - the Action union is closed
            raise TypeError(f"unknown action {action!r}")

    def _destinations(self) -> tuple[IPAddress, ...]:
        if self._settings.unicast_peers:
            return self._settings.unicast_peers
        return (VRRP_MULTICAST_V6 if self._settings.family == 6 else VRRP_MULTICAST_V4,)

    async def _send(self, priority: int) -> None:
        advert = self.machine.build_advert(priority)
        source = self.machine.source_address
        destinations = self._destinations()
        # keepalived auth_hmac: one trailer per advert, shared by every unicast copy
        # (the HMAC reads the checksum as zero and does not cover the destination).
        trailer = self.machine.auth_trailer(
            encode_advert(advert, source, self.machine.checksum_destination(destinations[0])),
            self._wall_clock(),
        )
        for destination in destinations:
            # The VRRPv3 checksum covers the machine's choice of pseudo-header
            # destination: the peer's address, or 224.0.0.18 in the old unicast form.
            checksummed = self.machine.checksum_destination(destination)
            payload = seal_extension(
                encode_advert(advert, source, checksummed), trailer, source, checksummed
            )
            try:
                await self._link.send(payload, destination)
            except VrrpIoError as exc:
                if not SendFailures.retry_at_once(exc.errno):
                    raise
                # A full queue drains in microseconds: one more try after
                # letting the loop (and the kernel) run.
                await asyncio.sleep(0)
                await self._link.send(payload, destination)
            self.counters.adverts_sent += 1
        self._send_failures.sent()

    def _vips_by_interface(self) -> list[tuple[str, list[Vip]]]:
        grouped: dict[str, list[Vip]] = {}
        for interface, address in self._settings.vip_placements():
            grouped.setdefault(interface, []).append(address)
        return list(grouped.items())

    async def _remove_vips(self) -> None:
        first: VrrpIoError | None = None
        for interface, vips in self._vips_by_interface():
            for vip in vips:
                try:
                    await self._addresses.remove(interface, vip)
                except VrrpIoError as exc:
                    first = first or exc
        if first is not None:
            raise first

    async def _change_vips(self, change: VipsChanged) -> None:
        # Removals first: a VIP moved to another interface is then never held twice.
        first: VrrpIoError | None = None
        for vip in change.removed:
            try:
                await self._addresses.remove(
                    vip.interface or self._settings.vip_interface, vip.address
                )
            except VrrpIoError as exc:
                first = first or exc
        for vip in change.added:
            await self._addresses.add(vip.interface or self._settings.vip_interface, vip.address)
        log.info(
            "vrrp.vips.changed",
            instance=self._settings.name,
            vrid=self._settings.vrid,
            iface=self._settings.interface,
            added=[str(vip.address) for vip in change.added],
            removed=[str(vip.address) for vip in change.removed],
            reason="reloaded",
        )
        if first is not None:
            raise first

    async def _change_routing(
        self,
        add_routes: Sequence[VirtualRoute],
        add_rules: Sequence[VirtualRule],
        remove_routes: Sequence[VirtualRoute],
        remove_rules: Sequence[VirtualRule],
        reason: str,
    ) -> None:
        """Install or remove virtual routes and rules (keepalived ``virtual_routes`` /
        ``virtual_rules``): routes before the rules that may point at their table, rules
        removed before the routes.

        A failure is logged and counted, not a fault: keepalived stays MASTER when a
        virtual route cannot be set (``netlink_rtlist`` only logs), and a route that
        fails on both directors (an unreachable gateway) must not leave the VIPs on
        neither. Each item is tried, so one bad route does not keep the others out."""
        if self._routing is None:
            return
        steps: list[tuple[str, VirtualRoute | VirtualRule]] = [
            *(("remove", rule) for rule in remove_rules),
            *(("remove", route) for route in remove_routes),
            *(("add", route) for route in add_routes),
            *(("add", rule) for rule in add_rules),
        ]
        for op, item in steps:
            try:
                if isinstance(item, VirtualRoute):
                    await (self._routing.add_route if op == "add" else self._routing.remove_route)(
                        item
                    )
                else:
                    await (self._routing.add_rule if op == "add" else self._routing.remove_rule)(
                        item
                    )
            except VrrpIoError as exc:
                self.counters.route_errors += 1
                log.error(
                    "vrrp.route.failed",
                    instance=self._settings.name,
                    vrid=self._settings.vrid,
                    kind="route" if isinstance(item, VirtualRoute) else "rule",
                    op=op,
                    item=item.describe(),
                    errno=exc.errno,
                    error=str(exc),
                    reason=reason,
                )

    async def _reconfigure_routing(self, old: InstanceSettings, new: InstanceSettings) -> None:
        """A reload changed the routes or rules of a master: the ones in both lists stay,
        the others are added and removed now (a backup has none installed)."""
        added_routes, removed_routes = changes(old.routes, new.routes)
        added_rules, removed_rules = changes(old.rules, new.rules)
        if not (added_routes or removed_routes or added_rules or removed_rules):
            return
        if self.machine.state is not State.MASTER:
            return
        await self._change_routing(
            added_routes, added_rules, removed_routes, removed_rules, "reloaded"
        )
        log.info(
            "vrrp.routes.changed",
            instance=new.name,
            vrid=new.vrid,
            added=[route.describe() for route in added_routes]
            + [rule.describe() for rule in added_rules],
            removed=[route.describe() for route in removed_routes]
            + [rule.describe() for rule in removed_rules],
            reason="reloaded",
        )

    def _start_announce(self) -> None:
        """A gratuitous ARP / NA burst: ``garp_repeat`` rounds ``garp_interval``
        apart (keepalived ``garp_master_repeat`` / ``garp_interval``), in the
        background so adverts keep their timing."""
        if self._announce_task is not None:
            self._announce_task.cancel()
        self._announce_task = self._spawn(self._announce_burst(), "garp")

    async def _announce_burst(self) -> None:
        rounds = max(1, self._settings.garp_repeat)
        for index in range(rounds):
            if self.machine.state is not State.MASTER:
                return
            for interface, vips in self._vips_by_interface():
                try:
                    await self._announcer.announce(interface, vips)
                except VrrpIoError as exc:
                    # Not a fault: the VIPs are up and neighbours learn them by
                    # ARP anyway; a failed GARP only slows the switch-over.
                    self.counters.announce_errors += 1
                    log.warning(
                        "vrrp.announce.failed",
                        vrid=self._settings.vrid,
                        iface=interface,
                        op=exc.op,
                        errno=exc.errno,
                    )
            if index + 1 < rounds and self._settings.garp_interval > 0:
                await asyncio.sleep(self._settings.garp_interval)

    def _transitioned(self, transition: Transition) -> None:
        settings = self._settings
        self.counters.transitions += 1
        if transition.new is not State.MASTER and self._announce_task is not None:
            self._announce_task.cancel()
            self._announce_task = None
        log.info(
            "vrrp.transition",
            instance=settings.name,
            vrid=settings.vrid,
            iface=settings.interface,
            from_state=transition.old.value.lower(),
            to_state=transition.new.value.lower(),
            reason=transition.reason.value,
            detail=transition.detail,
            priority=self.machine.effective_priority,
        )
        if self._deferred is not None:
            self._deferred.append(transition)
        else:
            self._run_callbacks(transition)

    def _run_callbacks(self, transition: Transition) -> None:
        settings = self._settings
        for callback in self._callbacks:
            try:
                callback(settings.name, transition, self.machine)
            except Exception as exc:  # rule 7
                log.error(
                    "vrrp.callback.failed",
                    instance=settings.name,
                    callback=getattr(callback, "__qualname__", repr(callback)),
                    error=repr(exc),
                )

    def _dropped(self, reason: DropReason, source: IPAddress, detail: str, now: float) -> None:
        self.counters.dropped[reason] += 1
        last, suppressed = self._drop_logged.get(reason, (None, 0))
        if last is not None and now - last < self._drop_log_interval:
            self._drop_logged[reason] = (last, suppressed + 1)
            return
        self._drop_logged[reason] = (now, 0)
        log.warning(
            "vrrp.advert.dropped",
            vrid=self._settings.vrid,
            iface=self._settings.interface,
            reason=reason.value,
            peer=str(source),
            detail=detail,
            suppressed=suppressed,
        )
