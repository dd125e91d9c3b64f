"""The asyncio adapter around :class:`~vrrp.machine.VrrpMachine`.

aioquic's ``asyncio/protocol.py`` shape: on every input (an advert, the timer,
a tracking verdict, a fault) call the machine with ``clock()``, execute the
returned actions through the ports in order, then re-arm ONE ``loop.call_at``
timer at ``next_deadline()``. A firing timer passes ``max(deadline, clock())``
so the machine never sees a time earlier than the deadline it asked for.

Rules kept here:

1. No protocol decision: the machine decides, the runner executes. The only
   policies here are IO ones: how to group VIPs per interface, how to space a
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
import concurrent.futures
import contextlib
import enum
import os
import sys
import threading
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from vrrp.errors import DropReason, MalformedAdvert, VrrpUsageError
from vrrp.machine import (
    Action,
    AdvertDropped,
    AdvertMismatch,
    Announce,
    InstallVips,
    InstanceReload,
    InstancesPlan,
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
from vrrp.notify import HookKind, Notifier
from vrrp.packet import (
    VRRP_MULTICAST_V4,
    VRRP_MULTICAST_V6,
    Advertisement,
    check_ttl,
    decode_advert,
    encode_advert,
)
from vrrp.ports import (
    AdvertLink,
    Announcer,
    IPAddress,
    PortsProvider,
    ReceivedAdvert,
    Vip,
    VipAddresses,
    VrrpIoError,
)
from vrrp.retry import SendFailures
from vrrp.settings import InstanceSettings
from vrrp.track import InstanceTracker, TrackVerdict

__all__ = [
    "FailureCallback",
    "FaultSource",
    "InstanceRunner",
    "InstanceStatus",
    "LoopLag",
    "RunnerCounters",
    "ServiceCallback",
    "SyncGroup",
    "TransitionCallback",
    "VrrpService",
]

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


class FaultSource(enum.Enum):
    """Who holds a fault on the instance; the machine sees only "any fault"."""

    track = "track"
    io = "io"
    sync_group = "sync_group"


@dataclass(slots=True)
class RunnerCounters:
    """Per-instance counters for metrics (monotonic, never reset)."""

    adverts_sent: int = 0
    adverts_received: int = 0
    send_errors: int = 0
    io_errors: int = 0
    announce_errors: int = 0
    transitions: int = 0
    address_mismatches: int = 0
    dropped: Counter[DropReason] = field(default_factory=Counter)

    @property
    def adverts_dropped(self) -> int:
        return sum(self.dropped.values())


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
        clock: Callable[[], float] | None = None,
        on_transition: TransitionCallback | None = None,
        drop_log_interval: float = 10.0,
        io_fault_hold: float | None = None,
    ) -> None:
        self._settings = settings
        self._link = link
        self._addresses = addresses
        self._announcer = announcer
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

    def add_transition_callback(self, callback: TransitionCallback) -> None:
        self._callbacks.append(callback)

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
            if self._ttl_must_be_255(received):
                check_ttl(received.ttl)
            advert, old_checksum = self._decode(received)
        except MalformedAdvert as exc:
            self._dropped(exc.reason, received.source, exc.detail, now)
            return
        await self._execute(
            self.machine.on_advert(
                advert,
                received.source,
                now,
                old_checksum=old_checksum,
                destination=received.destination,
            )
        )

    def _decode(self, received: ReceivedAdvert) -> tuple[Advertisement, bool]:
        """Decode ``received`` with the checksum form the machine expects.

        keepalived's unicast checksum compatibility (``vrrp_check_packet``): a bad
        checksum that the machine allows to be tried in the old form (224.0.0.18
        in the pseudo-header) is checked once more that way; True in the result
        says the old form passed. Otherwise the first error is raised unchanged,
        so a bad checksum is counted and logged exactly as without the retry.
        """
        machine = self.machine
        source, destination = received.source, received.destination
        expected = machine.checksum_destination(destination)
        try:
            return decode_advert(received.payload, source, expected), False
        except MalformedAdvert as exc:
            if exc.reason is not DropReason.bad_checksum or not machine.old_checksum_may_pass(
                source, destination
            ):
                raise
            try:
                advert = decode_advert(received.payload, source, VRRP_MULTICAST_V4)
            except MalformedAdvert:
                raise exc from None
            return advert, True

    def _ttl_must_be_255(self, received: ReceivedAdvert) -> bool:
        """Does the TTL / hop limit 255 rule apply to this advert?

        RFC 5798 §7.1 (RFC 3768 §7.1): drop an advert whose IPv4 TTL / IPv6 hop
        limit is not 255, so a packet that crossed a router cannot pass for one
        from our link. keepalived 2.x (vrrp.c, vrrp_in_chk / vrrp_check_packet:
        "MUST verify that the IPv4 TTL/IPv6 HL is 255 (but not if unicast)")
        checks it only when the instance has no ``unicast_peer``: unicast peers
        may sit behind a router. We waive it more narrowly: only for an advert
        addressed to us (not to a multicast group) from a configured unicast
        peer. Multicast adverts and strangers keep the rule; a stranger with
        TTL 255 is still dropped by the machine (``not_a_peer``, as keepalived's
        ``vrrp_check_unicast_src``).
        """
        if received.destination.is_multicast:
            return True
        return received.source not in self._settings.unicast_peers

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
        elif isinstance(action, RemoveVips):
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
        for destination in self._destinations():
            # The VRRPv3 checksum covers the machine's choice of pseudo-header
            # destination: the peer's address, or 224.0.0.18 in the old unicast form.
            checksummed = self.machine.checksum_destination(destination)
            payload = encode_advert(advert, source, checksummed)
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
        for vip in self._settings.vips:
            grouped.setdefault(vip.interface or self._settings.interface, []).append(vip.address)
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
                await self._addresses.remove(vip.interface or self._settings.interface, vip.address)
            except VrrpIoError as exc:
                first = first or exc
        for vip in change.added:
            await self._addresses.add(vip.interface or self._settings.interface, vip.address)
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


class SyncGroup:
    """keepalived ``vrrp_sync_group``: instances that move together.

    - A member entering FAULT by its own cause (tracking, IO) puts every other
      member in FAULT (source ``sync_group``) until no member has its own fault.
    - A member that loses MASTER to a peer (MASTER -> BACKUP) makes the others
      follow: they advertise the lowest priority (1) so they do not preempt
      back, and a master among them resigns straight to BACKUP (reason
      ``sync_group``, BACKUP notify, no FAULT) with priority 0, so the peer
      director takes the whole group. A follower's own resignation starts no
      second round. The hold lifts when any member is MASTER again
      (keepalived ``vrrp_sync_master``).

    The callbacks run inside a member's input; the follow-ups are spawned as
    tasks so one member's lock is never held while waiting for another's.
    """

    def __init__(self, name: str, members: Sequence[InstanceRunner]) -> None:
        if len({member.name for member in members}) != len(members):
            raise ValueError(f"sync group {name}: duplicate instance")
        self.name = name
        self._members = {member.name: member for member in members}
        self._tasks: set[asyncio.Task[None]] = set()
        for member in members:
            member.add_transition_callback(self._on_transition)

    @property
    def members(self) -> tuple[InstanceRunner, ...]:
        return tuple(self._members.values())

    def _others(self, name: str) -> list[InstanceRunner]:
        return [member for other, member in self._members.items() if other != name]

    @staticmethod
    def _own_fault(member: InstanceRunner) -> bool:
        return any(source is not FaultSource.sync_group for source in member.faults)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"vrrp-sync-{self.name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_transition(self, instance: str, transition: Transition, machine: VrrpMachine) -> None:
        member = self._members[instance]
        if transition.new is State.FAULT and self._own_fault(member):
            reason = f"sync_group={self.name} member={instance} in fault"
            self._follow("fault", instance, reason)
            for other in self._others(instance):
                self._spawn(other.set_fault(FaultSource.sync_group, True, reason))
        elif transition.old is State.FAULT and not any(
            self._own_fault(m) for m in self._members.values()
        ):
            reason = f"sync_group={self.name} member={instance} fault cleared"
            for other in self._others(instance):
                if FaultSource.sync_group in other.faults:
                    self._spawn(other.set_fault(FaultSource.sync_group, False, reason))
        elif (
            transition.old is State.MASTER
            and transition.new is State.BACKUP
            and transition.reason is not TransitionReason.sync_group
        ):
            # A member that resigned because it follows the group is not a new
            # cause: following it would hold the member that lost MASTER at
            # priority 1 too, and then no member could ever preempt back
            # (keepalived's vrrp_sync_backup returns when the group is already BACKUP).
            reason = f"sync_group={self.name} member={instance} backup"
            self._follow("backup", instance, reason)
            for other in self._others(instance):
                self._spawn(self._demote(other, reason))
        elif transition.new is State.MASTER:
            for other in self._members.values():
                self._spawn(other.hold_for_sync_group(None))

    async def _demote(self, member: InstanceRunner, reason: str) -> None:
        await member.hold_for_sync_group(reason)
        await member.resign(reason)

    def _follow(self, to_state: str, instance: str, reason: str) -> None:
        log.info(
            "vrrp.sync_group.follow",
            sync_group=self.name,
            instance=instance,
            to_state=to_state,
            reason=reason,
        )


@dataclass(frozen=True, slots=True)
class InstanceStatus:
    """A thread-safe snapshot of one instance, for status, metrics and callbacks."""

    name: str
    vrid: int
    interface: str
    state: State
    effective_priority: int
    master_source: IPAddress | None
    master_priority: int | None
    faults: tuple[str, ...]
    adverts_sent: int
    adverts_received: int
    adverts_dropped: dict[str, int]
    io_errors: int
    transitions: int

    @classmethod
    def of(cls, runner: InstanceRunner) -> InstanceStatus:
        machine, counters = runner.machine, runner.counters
        return cls(
            name=runner.name,
            vrid=runner.settings.vrid,
            interface=runner.settings.interface,
            state=machine.state,
            effective_priority=machine.effective_priority,
            master_source=machine.master_source,
            master_priority=machine.master_priority,
            faults=tuple(f"{source.value}: {why}" for source, why in runner.faults.items()),
            adverts_sent=counters.adverts_sent,
            adverts_received=counters.adverts_received,
            adverts_dropped={reason.value: n for reason, n in counters.dropped.items()},
            io_errors=counters.io_errors,
            transitions=counters.transitions,
        )


@dataclass(frozen=True, slots=True)
class LoopLag:
    """How late the VRRP event loop ran a timer: the last and worst delay, in seconds."""

    last: float
    worst: float
    samples: int


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
            return tuple(InstanceStatus.of(runner) for runner in self._runners.values())

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
        runner = InstanceRunner(
            settings, link=ports.link, addresses=ports.addresses, announcer=ports.announcer
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
        """keepalived's sync group notify: once per change of the group's state.

        The group is FAULT while a member is, MASTER once every member is, BACKUP once
        every member is; in between (members still moving) it keeps its last state.
        """
        group, settings = runner.settings.sync_group, runner.settings.sync_group_notify
        if group is None or settings is None or self.notifier is None:
            return
        states = {
            member.machine.state
            for member in self._runners.values()
            if member.settings.sync_group == group
        }
        if State.FAULT in states:
            state = State.FAULT
        elif len(states) == 1:
            (state,) = states
        else:
            return
        kind = _HOOK_FOR_STATE.get(state)
        if kind is None or self._group_states.get(group) is state:
            return
        self._group_states[group] = state
        log.info("vrrp.sync_group.state", sync_group=group, to_state=state.value)
        self.notifier.notify(group, settings, kind, 0, scope="GROUP")

    def _transitioned(self, name: str, transition: Transition, machine: VrrpMachine) -> None:
        runner = self._runners[name]
        status = InstanceStatus.of(runner)
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
