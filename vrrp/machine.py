"""The VRRP election state machine of one instance (RFC 5798 §6.4, RFC 3768 §6.4), sans IO.

Rule 1 (h11): every change of state lives in this file, and every one of them
goes through :data:`TRANSITIONS`, the table that *is* the specification: a
(state, reason) pair that is not in it raises and leaves the state unchanged.
Rule 2: the machine does not know how packets travel or what time it is.
Inputs carry ``now`` (monotonic seconds); outputs are :data:`Action` values the
runner executes in order; the runner asks :meth:`VrrpMachine.next_deadline`
when to call :meth:`VrrpMachine.on_timer` (aioquic's ``get_timer()``).

Inputs, each returning ``tuple[Action, ...]`` in execution order:
``start``, ``on_advert``, ``on_timer``, ``set_priority``, ``set_fault``, ``shutdown``,
``resign`` (sync groups) and ``reconfigure`` (reload in place).

Behaviour matched, beyond the RFC text, to keepalived 2.x (``vrrp.c``,
``vrrp_track.c``) because operators migrate from it one director at a time:

- a master that hears a *lower* priority advert answers at once with its own
  advert ("forcing new election"), so a split brain heals in one packet;
- ``preempt_delay`` starts at startup and whenever a lower priority master is
  first heard; a master of equal or higher priority cancels it;
- track weights never move the address owner (priority 255); other instances
  clamp their effective priority to 1..254;
- a rising effective priority shortens a running master-down timer at once;
- leaving MASTER for FAULT sends a priority-0 advert so the backup waits only
  its skew time (RFC 5798 §6.4.3 for shutdown; keepalived does it for faults too);
- an advert whose address list differs from ours is *accepted* and reported
  once per change (keepalived logs it; RFC 5798 §7.1 makes the check a MAY);
- VRRPv3 IPv4 unicast checksums: an advert from a unicast peer that passes only
  with 224.0.0.18 in the pseudo-header (keepalived < 1.3.7) is accepted and the
  instance switches to that old form for good, sending it too (keepalived's
  ``old_unicast_checksum`` compatibility, reported once as :class:`OldUnicastChecksum`).
- keepalived 2.4.2+ ``auth_hmac``: :meth:`VrrpMachine.receive` checks the HMAC trailer
  (vrrp.auth_hmac) before an advert reaches the election; a refused advert changes
  nothing but is counted by verdict.

Pure module: no IO, no clock, no logging.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from vrrp.auth_hmac import TRAILER_LEN, AuthCheck, AuthVerdict, HmacGuard
from vrrp.errors import DropReason, MalformedAdvert, VrrpUsageError
from vrrp.packet import (
    VRRP_MULTICAST_V4,
    VRRP_MULTICAST_V6,
    Advertisement,
    check_ttl,
    decode_advert,
    pdu_length,
)
from vrrp.settings import InstanceSettings, UnicastChecksum, VipSpec
from vrrp.timing import master_down_interval, skew_time
from vrrp.track_verdict import clamp_priority

__all__ = [
    "TRANSITIONS",
    "Action",
    "AdvertDropped",
    "AdvertMismatch",
    "Announce",
    "InstallVips",
    "InstanceReload",
    "InstanceStep",
    "InstancesPlan",
    "OldUnicastChecksum",
    "PriorityChanged",
    "Received",
    "RemoveVips",
    "SendAdvert",
    "State",
    "Transition",
    "TransitionReason",
    "VipsChanged",
    "VrrpMachine",
    "build_advert",
    "instance_reload",
    "plan_instances",
    "vip_changes",
]

IPAddress = IPv4Address | IPv6Address

#: RFC 5798 §5.2.4: a master resigning (shutdown) advertises priority 0.
PRIORITY_STOP = 0


class State(enum.Enum):
    """RFC 5798 §6.4 states, plus FAULT (keepalived: a tracked resource failed)."""

    INIT = "INIT"
    BACKUP = "BACKUP"
    MASTER = "MASTER"
    FAULT = "FAULT"


class TransitionReason(enum.Enum):
    """Why the state changed (snake_case: the ``reason`` of ``vrrp.transition`` log lines)."""

    #: RFC 5798 §6.4.1: priority 255 owns the addresses and becomes master at once.
    startup_priority_owner = "startup_priority_owner"
    #: RFC 5798 §6.4.1: any other priority starts as backup and listens.
    startup_backup = "startup_backup"
    #: RFC 5798 §6.4.2: no advert from a master for Master_Down_Interval.
    master_down_timer = "master_down_timer"
    #: RFC 5798 §6.4.2: the master resigned (priority 0); we waited only Skew_Time.
    priority_zero_advert = "priority_zero_advert"
    #: RFC 5798 §6.4.2: preempt on, the master's priority is lower; its adverts were discarded.
    preempt_lower_priority_master = "preempt_lower_priority_master"
    #: As above, after keepalived's ``preempt_delay`` ran out.
    preempt_delay_elapsed = "preempt_delay_elapsed"
    #: RFC 5798 §6.4.3: a master heard a higher priority advert and steps down.
    higher_priority_advert = "higher_priority_advert"
    #: RFC 5798 §6.4.3: equal priority, the peer's primary address is higher.
    equal_priority_higher_address = "equal_priority_higher_address"
    #: A tracked interface or script failed with weight 0 (keepalived FAULT state).
    fault_entered = "fault_entered"
    #: Every fault cleared; back to listening as backup.
    fault_cleared = "fault_cleared"
    #: The daemon stops this instance (RFC 5798 §6.4.2/§6.4.3 Shutdown event).
    shutdown = "shutdown"
    #: keepalived ``vrrp_sync_group``: another member left MASTER, this one follows.
    sync_group = "sync_group"
    #: ``haipvs failover``: the operator handed mastership over (priority-0 advert).
    operator_failover = "operator_failover"


#: The specification: (from state, reason) -> to state. Nothing else changes ``state``.
TRANSITIONS: Mapping[tuple[State, TransitionReason], State] = {
    (State.INIT, TransitionReason.startup_priority_owner): State.MASTER,
    (State.INIT, TransitionReason.startup_backup): State.BACKUP,
    (State.INIT, TransitionReason.fault_entered): State.FAULT,
    (State.BACKUP, TransitionReason.master_down_timer): State.MASTER,
    (State.BACKUP, TransitionReason.priority_zero_advert): State.MASTER,
    (State.BACKUP, TransitionReason.preempt_lower_priority_master): State.MASTER,
    (State.BACKUP, TransitionReason.preempt_delay_elapsed): State.MASTER,
    (State.BACKUP, TransitionReason.fault_entered): State.FAULT,
    (State.BACKUP, TransitionReason.shutdown): State.INIT,
    (State.MASTER, TransitionReason.higher_priority_advert): State.BACKUP,
    (State.MASTER, TransitionReason.equal_priority_higher_address): State.BACKUP,
    (State.MASTER, TransitionReason.fault_entered): State.FAULT,
    (State.MASTER, TransitionReason.shutdown): State.INIT,
    (State.MASTER, TransitionReason.sync_group): State.BACKUP,
    (State.MASTER, TransitionReason.operator_failover): State.BACKUP,
    (State.FAULT, TransitionReason.fault_cleared): State.BACKUP,
    (State.FAULT, TransitionReason.shutdown): State.INIT,
}


# --- actions (outputs) -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendAdvert:
    """Send one advertisement with ``priority`` (0 = we resign); see :func:`build_advert`."""

    priority: int


@dataclass(frozen=True, slots=True)
class InstallVips:
    """Add every VIP of the instance (idempotent on the IO side)."""


@dataclass(frozen=True, slots=True)
class RemoveVips:
    """Remove every VIP of the instance (idempotent on the IO side)."""


@dataclass(frozen=True, slots=True)
class VipsChanged:
    """A reload changed the VIP set of a master: add ``added`` and remove ``removed`` now
    (the other VIPs stay; an Announce follows for the new set)."""

    added: tuple[VipSpec, ...]
    removed: tuple[VipSpec, ...]


@dataclass(frozen=True, slots=True)
class Announce:
    """Gratuitous ARP / unsolicited NA burst for the VIPs (garp_repeat x garp_interval)."""


@dataclass(frozen=True, slots=True)
class Transition:
    """The state changed from ``old`` to ``new`` because of ``reason``; ``detail`` says more.

    ``detail`` is ``key=value`` words, e.g. ``peer=10.0.0.2 peer_priority=150``.
    """

    old: State
    new: State
    reason: TransitionReason
    detail: str = ""


@dataclass(frozen=True, slots=True)
class AdvertDropped:
    """An advert was dropped without effect: count it under ``reason`` and log it (rate-limited)."""

    reason: DropReason
    source: IPv4Address | IPv6Address
    detail: str


@dataclass(frozen=True, slots=True)
class AdvertMismatch:
    """An advert was *accepted* but disagrees with our configuration (its VIP list).

    keepalived logs this and carries on (RFC 5798 §7.1: the address check is a
    MAY and must be logged). Reported once per (source, address list) change.
    """

    reason: DropReason
    source: IPv4Address | IPv6Address
    detail: str


@dataclass(frozen=True, slots=True)
class PriorityChanged:
    """The effective priority changed (tracking); ``reason`` is the caller's text."""

    old: int
    new: int
    reason: str


@dataclass(frozen=True, slots=True)
class OldUnicastChecksum:
    """The instance switched to the old VRRPv3 unicast checksum because of ``source``.

    An advert from the unicast peer ``source`` passed its checksum only with the
    multicast group 224.0.0.18 as the pseudo-header destination (keepalived
    < 1.3.7). From now on the instance sends and expects that form (keepalived
    logs "Setting unicast VRRPv3 checksum to old version"). Reported once.
    """

    source: IPv4Address | IPv6Address


Action = (
    SendAdvert
    | InstallVips
    | RemoveVips
    | VipsChanged
    | Announce
    | Transition
    | AdvertDropped
    | AdvertMismatch
    | PriorityChanged
    | OldUnicastChecksum
)

_ENTER_MASTER_SIDE_EFFECTS = (InstallVips(), Announce())

#: The drop reason of each refusing auth_hmac verdict.
_AUTH_DROPS = {
    AuthVerdict.missing: DropReason.auth_missing,
    AuthVerdict.malformed: DropReason.auth_malformed,
    AuthVerdict.unknown_key: DropReason.auth_unknown_key,
    AuthVerdict.invalid_hmac: DropReason.auth_invalid_hmac,
    AuthVerdict.stale: DropReason.auth_stale,
    AuthVerdict.replay: DropReason.auth_replay,
}


@dataclass(frozen=True, slots=True)
class Received:
    """What :meth:`VrrpMachine.receive` let through: the advert, whether it passed only
    with the old unicast checksum, and the auth_hmac verdict (None: not configured, or
    the advert is for another instance and :meth:`VrrpMachine.on_advert` drops it)."""

    advert: Advertisement
    old_checksum: bool = False
    auth: AuthCheck | None = None


class InstanceReload(enum.Enum):
    """What a reload does to one running instance (keepalived keeps each instance's
    state across reloads, ``restore_vrrp_state``)."""

    #: Same settings: not touched.
    keep = "keep"
    #: New tunables, VIPs or tracking, applied in place: the state stays, a master
    #: keeps the VIPs it keeps and adds/removes the others at once.
    reconfigure = "reconfigure"
    #: A new identity (interface, vrid, family), version or sync group: the instance
    #: stops (a master resigns with priority 0) and starts again as a new one.
    replace = "replace"


def instance_reload(old: InstanceSettings, new: InstanceSettings) -> InstanceReload:
    """The one rule for reloading an instance of the same name in place or not.

    Identity and version are what peers know the instance by (RFC 5798 §5.2.3: the
    VRID on one interface and family; the version changes the packet format), and a
    sync group holds its members from start-up: those need a new instance. Everything
    else, the VIP set included, changes in place (keepalived applies VIP changes on
    reload without a transition).
    """
    if old == new:
        return InstanceReload.keep
    if old.key != new.key or old.version != new.version or old.sync_group != new.sync_group:
        return InstanceReload.replace
    if old.vmac != new.vmac:
        # The macvlan (use_vmac) is made when the instance's ports are built: the VIPs
        # and the advert socket move with it, so a new one needs a new instance.
        return InstanceReload.replace
    return InstanceReload.reconfigure


@dataclass(frozen=True, slots=True)
class InstanceStep:
    """One instance's part of a reload: ``action`` is keep / reconfigure / replace
    (:class:`InstanceReload`), or ``add`` (``old`` None) / ``remove`` (``new`` None)."""

    name: str
    action: str
    old: InstanceSettings | None
    new: InstanceSettings | None


@dataclass(frozen=True, slots=True)
class InstancesPlan:
    """What a reload does to the running instances, in the order to do it: removals
    (and the old half of replacements) first, so a key that moves from one name to
    another is free when the new instance binds it; then reconfigurations; then
    additions (and the new half of replacements).

    ``restart``: the membership of a sync group changes. A sync group binds its
    members at start-up (keepalived builds them at config load), so the whole VRRP
    service restarts; ``steps`` still say what changed, for the log.
    """

    steps: tuple[InstanceStep, ...]
    restart: bool
    #: The instances' names in the new config's order (what runs afterwards).
    names: tuple[str, ...] = ()

    @property
    def changed(self) -> tuple[InstanceStep, ...]:
        return tuple(step for step in self.steps if step.action != InstanceReload.keep.value)


def plan_instances(
    old: Sequence[InstanceSettings], new: Sequence[InstanceSettings]
) -> InstancesPlan:
    """The one plan of a VRRP reload, by instance name (the runners' identity)."""
    before = {settings.name: settings for settings in old}
    after = {settings.name: settings for settings in new}
    removed = [InstanceStep(name, "remove", s, None) for name, s in before.items()
               if name not in after]
    kept: list[InstanceStep] = []
    changed: list[InstanceStep] = []
    added: list[InstanceStep] = []
    for name, settings in after.items():
        previous = before.get(name)
        if previous is None:
            added.append(InstanceStep(name, "add", None, settings))
            continue
        action = instance_reload(previous, settings)
        step = InstanceStep(name, action.value, previous, settings)
        (kept if action is InstanceReload.keep else changed).append(step)
    replaced = [step for step in changed if step.action == InstanceReload.replace.value]
    touched = [*removed, *added, *replaced]
    restart = any(
        (step.old is not None and step.old.sync_group is not None)
        or (step.new is not None and step.new.sync_group is not None)
        for step in touched
    )
    return InstancesPlan((*removed, *changed, *added, *kept), restart, tuple(after))


def vip_changes(
    old: InstanceSettings, new: InstanceSettings
) -> tuple[tuple[VipSpec, ...], tuple[VipSpec, ...]]:
    """(added, removed) VIPs between two settings of one instance, in file order."""
    before, after = set(old.vips), set(new.vips)
    return (
        tuple(vip for vip in new.vips if vip not in before),
        tuple(vip for vip in old.vips if vip not in after),
    )


def build_advert(settings: InstanceSettings, priority: int) -> Advertisement:
    """The advertisement an instance sends with ``priority`` (our VIPs, interval and auth)."""
    return Advertisement(
        version=settings.version,
        vrid=settings.vrid,
        priority=priority,
        advert_interval=settings.advert_interval,
        addresses=settings.vip_addresses,
        auth_type=settings.auth_type if settings.version == 2 else 0,
        auth_data=settings.auth_data if settings.version == 2 else b"",
    )


def _hmac_guard(settings: InstanceSettings, *, send_sequence: int) -> HmacGuard | None:
    if settings.auth_hmac is None:
        return None
    # keepalived keeps one anti-replay mark per unicast peer, or 4 for multicast senders.
    return HmacGuard(
        settings.auth_hmac,
        version=settings.version,
        vrid=settings.vrid,
        advert_interval=settings.advert_interval,
        max_senders=max(len(settings.unicast_peers), 4),
        send_sequence=send_sequence,
    )


class VrrpMachine:
    """One VRRP instance's election (RFC 5798 §6.4 / RFC 3768 §6.4) as a pure state machine.

    ``primary_address`` is our own address on the interface, the source of our
    adverts: it breaks priority ties (RFC 5798 §6.4.3) and identifies our own
    packets. When ``settings.unicast_source`` is set, that address is what peers
    see and is used instead for the tie-break (keepalived ``unicast_src_ip``).
    """

    def __init__(
        self,
        settings: InstanceSettings,
        *,
        primary_address: IPv4Address | IPv6Address,
        connected: Sequence[IPv4Network | IPv6Network] = (),
    ) -> None:
        if primary_address.version != settings.family:
            raise ValueError(
                f"primary_address: {primary_address} is not IPv{settings.family} like the VIPs"
            )
        self._settings = settings
        self._primary = primary_address
        self._source: IPAddress = settings.unicast_source or primary_address
        self._own_addresses = frozenset({primary_address, self._source})
        # The interface's subnets: a multicast advert must come from one of them
        # (empty: unknown, not checked).
        self._connected = tuple(connected)
        self._vip_set = frozenset(settings.vip_addresses)
        self._state = State.INIT
        self._effective = settings.priority
        # What set the effective priority last (tracking's verdict, a hold), for status.
        self._priority_reason = "configured"
        self._fault = False
        self._fault_reason = ""
        # RFC 5798 §6.1: Master_Adver_Interval, learnt from the master in VRRPv3.
        self._master_adver_interval = settings.advert_interval
        self._master_source: IPAddress | None = None
        self._master_priority: int | None = None
        # BACKUP: the master-down deadline, and what its expiry will mean.
        self._down_at: float | None = None
        self._down_reason = TransitionReason.master_down_timer
        self._down_detail = ""
        # MASTER: next advert, next gratuitous ARP refresh (keepalived garp_master_refresh),
        # the second burst after takeover (keepalived garp_master_delay).
        self._advert_at: float | None = None
        self._refresh_at: float | None = None
        self._second_announce_at: float | None = None
        # keepalived garp_lower_prio_repeat: when may a master re-announce after hearing
        # another master (a lower priority, or one resigning: a healed partition)?
        self._reannounce_after: float | None = None
        # keepalived preempt_delay: lower priority masters are tolerated until this time.
        self._preempt_at: float | None = None
        self._last_transition: Transition | None = None
        self._last_mismatch: tuple[IPAddress, tuple[IPAddress, ...]] | None = None
        # keepalived unicast_chksum_compat: the old checksum form from the start
        # (CONFIG), or once a peer's advert needed it (AUTO).
        self._old_checksum = settings.unicast_checksum is UnicastChecksum.old
        # keepalived auth_hmac: the send sequence and the senders' anti-replay marks.
        self._hmac = _hmac_guard(settings, send_sequence=0)

    # --- queries --------------------------------------------------------------------------

    def __repr__(self) -> str:
        master = "-" if self._master_source is None else (
            f"{self._master_source}/{self._master_priority}"
        )
        fault = " fault" if self._fault else ""
        return (
            f"<VrrpMachine {self._settings.name} vrid={self._settings.vrid} "
            f"state={self._state.value} priority={self._effective} master={master}{fault}>"
        )

    @property
    def settings(self) -> InstanceSettings:
        return self._settings

    @property
    def state(self) -> State:
        return self._state

    @property
    def effective_priority(self) -> int:
        """The priority we advertise: configured priority moved by tracking weights."""
        return self._effective

    @property
    def priority_reason(self) -> str:
        """Why the effective priority is what it is: the reason ``set_priority`` was last
        given (tracking names each item that moves it: "process chk not running (0) -60"),
        or "configured" / "reconfigured"."""
        return self._priority_reason

    @property
    def primary_address(self) -> IPv4Address | IPv6Address:
        return self._primary

    @property
    def source_address(self) -> IPv4Address | IPv6Address:
        """The address our adverts carry as source (unicast_source or primary_address)."""
        return self._source

    @property
    def master_source(self) -> IPv4Address | IPv6Address | None:
        """The current master's address (ours when MASTER), None when none is known."""
        return self._master_source

    @property
    def master_priority(self) -> int | None:
        return self._master_priority

    @property
    def master_adver_interval(self) -> float:
        """RFC 5798 §6.1 Master_Adver_Interval (VRRPv3 backups learn it from the master)."""
        return self._master_adver_interval

    @property
    def in_fault(self) -> bool:
        """True while a fault is set (even before start)."""
        return self._fault

    @property
    def last_transition(self) -> Transition | None:
        return self._last_transition

    @property
    def old_unicast_checksum(self) -> bool:
        """True while our VRRPv3 IPv4 checksums cover 224.0.0.18, not the unicast destination.

        Set by ``unicast_checksum=old``, or in ``auto`` by the first advert from a
        unicast peer that passed only in that form (keepalived < 1.3.7 peers).
        """
        return self._old_checksum

    def checksum_destination(self, destination: IPAddress) -> IPAddress:
        """The pseudo-header destination of the VRRPv3 checksum of an advert sent to,
        or received at, ``destination``: 224.0.0.18 while the old unicast form is in
        effect (IPv4 only), else ``destination`` itself (RFC 5798 §5.2.8)."""
        if self._old_checksum and isinstance(destination, IPv4Address):
            return VRRP_MULTICAST_V4
        return destination

    def old_checksum_may_pass(self, source: IPAddress, destination: IPAddress) -> bool:
        """May an advert from ``source`` to ``destination`` whose checksum failed be
        checked again with the old form (224.0.0.18 in the pseudo-header)?

        keepalived's ``vrrp_check_packet``: only for a VRRPv3 IPv4 instance with
        unicast peers, in ``auto`` mode before it switched, for an advert not sent
        to the group. We also require the source to be a configured peer, so a
        stranger's packet is a bad checksum as before and never switches the mode.
        A passing advert goes to :meth:`on_advert` with ``old_checksum=True``.
        """
        return (
            isinstance(destination, IPv4Address)
            and destination != VRRP_MULTICAST_V4
            and self._may_switch_checksum(source)
        )

    def ttl_rule_applies(self, source: IPAddress, destination: IPAddress) -> bool:
        """Does the TTL / hop limit 255 rule apply to an advert from ``source`` to
        ``destination``?

        RFC 5798 §7.1 (RFC 3768 §7.1): drop an advert whose IPv4 TTL / IPv6 hop
        limit is not 255, so a packet that crossed a router cannot pass for one
        from our link. keepalived 2.x (vrrp.c, vrrp_in_chk / vrrp_check_packet:
        "MUST verify that the IPv4 TTL/IPv6 HL is 255 (but not if unicast)")
        checks it only when the instance has no ``unicast_peer``: unicast peers
        may sit behind a router. We waive it more narrowly: only for an advert
        addressed to us (not to a multicast group) from a configured unicast
        peer. Multicast adverts and strangers keep the rule; a stranger with
        TTL 255 is still dropped by :meth:`on_advert` (``not_a_peer``, as
        keepalived's ``vrrp_check_unicast_src``).
        """
        if destination.is_multicast:
            return True
        return source not in self._settings.unicast_peers

    def decode_received(
        self, payload: bytes, source: IPAddress, destination: IPAddress, ttl: int, wall: float = 0.0
    ) -> tuple[Advertisement, bool]:
        """:meth:`receive` as (advert, old_checksum)."""
        received = self.receive(payload, source, destination, ttl, wall)
        return received.advert, received.old_checksum

    def receive(
        self, payload: bytes, source: IPAddress, destination: IPAddress, ttl: int, wall: float
    ) -> Received:
        """The receive filter in front of :meth:`on_advert`: the TTL rule
        (:meth:`ttl_rule_applies`), the decode with the checksum form this instance
        expects, then keepalived's auth_hmac check. Raises
        :class:`~vrrp.errors.MalformedAdvert` for a datagram to drop; an advert that
        fails authentication changes nothing but the sender's anti-replay mark,
        which only a verified HMAC moves.

        keepalived's unicast checksum compatibility (``vrrp_check_packet``): a bad
        checksum that :meth:`old_checksum_may_pass` allows is checked once more in
        the old form (224.0.0.18 in the pseudo-header); ``old_checksum`` in the
        result says the old form passed (pass it on as ``on_advert(old_checksum=True)``).
        Otherwise the first error is raised unchanged, so a bad checksum is counted
        and logged exactly as without the retry.

        auth_hmac (keepalived ``vrrp_check_packet``): the trailer is found by exact
        length (PDU + 28 octets); ``wall`` is the UTC time in seconds for the
        freshness window. An advert for another VRID or version, from ourselves or
        from a stranger to a unicast instance is not authenticated here:
        :meth:`on_advert` drops it for that reason.
        """
        if self.ttl_rule_applies(source, destination):
            check_ttl(ttl)
        extension = 0
        if self._hmac is not None:
            expected_len = pdu_length(payload, source)
            if expected_len is not None and len(payload) == expected_len + TRAILER_LEN:
                extension = TRAILER_LEN
        advert, old_checksum = self._decode(payload, source, destination, extension)
        if self._hmac is None or not self._authenticates(advert, source):
            return Received(advert, old_checksum)
        end = len(payload) - extension
        check = self._hmac.check(payload[:end], payload[end:] if extension else None, source, wall)
        if not check.verdict.accepted:
            raise MalformedAdvert(_AUTH_DROPS[check.verdict], check.detail)
        return Received(advert, old_checksum, check)

    def auth_trailer(self, pdu: bytes, wall: float) -> bytes:
        """The auth_hmac trailer to append to ``pdu`` (one advert, every destination),
        or b"" when auth_hmac is off or receive-only. Advances the send sequence."""
        if self._hmac is None:
            return b""
        return self._hmac.sign(pdu, self._source, wall)

    def _authenticates(self, advert: Advertisement, source: IPAddress) -> bool:
        settings = self._settings
        return (
            advert.vrid == settings.vrid
            and advert.version == settings.version
            and source not in self._own_addresses
            and (not settings.unicast_peers or source in settings.unicast_peers)
        )

    def _decode(
        self, payload: bytes, source: IPAddress, destination: IPAddress, extension: int
    ) -> tuple[Advertisement, bool]:
        expected = self.checksum_destination(destination)
        try:
            return decode_advert(payload, source, expected, extension=extension), False
        except MalformedAdvert as exc:
            if exc.reason is not DropReason.bad_checksum or not self.old_checksum_may_pass(
                source, destination
            ):
                raise
            try:
                advert = decode_advert(payload, source, VRRP_MULTICAST_V4, extension=extension)
            except MalformedAdvert:
                raise exc from None
            return advert, True

    def _may_switch_checksum(self, source: IPAddress) -> bool:
        settings = self._settings
        return (
            settings.unicast_checksum is UnicastChecksum.auto
            and not self._old_checksum
            and settings.version == 3
            and isinstance(source, IPv4Address)
            and source in settings.unicast_peers
        )

    def next_deadline(self) -> float | None:
        """When :meth:`on_timer` must be called next (absolute ``now`` units), or None."""
        if self._state is State.BACKUP:
            return self._down_at
        if self._state is State.MASTER:
            timers = (self._advert_at, self._refresh_at, self._second_announce_at)
            deadlines = [t for t in timers if t is not None]
            return min(deadlines) if deadlines else None
        return None

    def build_advert(self, priority: int) -> Advertisement:
        """The advert to send for a :class:`SendAdvert` action."""
        return build_advert(self._settings, priority)

    # --- inputs ---------------------------------------------------------------------------

    def start(self, now: float) -> tuple[Action, ...]:
        """RFC 5798 §6.4.1 Startup event. Raises :class:`VrrpUsageError` unless in INIT."""
        if self._state is not State.INIT:
            raise VrrpUsageError(f"start() in state {self._state.value}; shutdown() first")
        if self._fault:
            # Defensive: VIPs a crashed previous run left behind must not stay up.
            transition = self._move(TransitionReason.fault_entered, self._fault_reason)
            return (transition, RemoveVips())
        if self._settings.is_owner:
            return self._become_master(TransitionReason.startup_priority_owner, "priority=255", now)
        transition = self._move(TransitionReason.startup_backup, f"priority={self._effective}")
        self._arm_master_down(now, TransitionReason.master_down_timer, "peer=none")
        if self._settings.preempt_delay > 0:
            # keepalived: "seconds after startup ... until preemption".
            self._preempt_at = now + self._settings.preempt_delay
        return (transition, RemoveVips())

    def on_advert(
        self,
        advert: Advertisement,
        source: IPv4Address | IPv6Address,
        now: float,
        *,
        old_checksum: bool = False,
        destination: IPv4Address | IPv6Address | None = None,
    ) -> tuple[Action, ...]:
        """A decoded advert arrived from ``source`` (TTL and checksum already checked).

        ``destination`` is the advert's IP destination, which must match the
        instance's mode (None: not known, e.g. a test driving the machine alone).

        ``old_checksum``: its checksum passed only in the old unicast form, which
        the caller tried because :meth:`old_checksum_may_pass` allowed it. If the
        advert passes the instance's checks, the instance switches to the old form
        (:class:`OldUnicastChecksum` first among the actions); if not, it is
        dropped for that check's reason and nothing switches.
        """
        if old_checksum and not self._may_switch_checksum(source):
            raise VrrpUsageError(
                "on_advert(old_checksum=True): this instance does not switch to the old checksum"
            )
        dropped = self._check_advert(advert, source, destination)
        if dropped is not None:
            return (dropped,)
        actions: list[Action] = []
        if old_checksum:
            self._old_checksum = True
            actions.append(OldUnicastChecksum(source))
        if self._state in (State.INIT, State.FAULT):
            # Not participating (keepalived ignores adverts in FAULT); nothing to learn.
            return tuple(actions)
        mismatch = self._check_addresses(advert, source)
        if mismatch is not None:
            actions.append(mismatch)
        if self._state is State.BACKUP:
            actions.extend(self._backup_receives(advert, source, now))
        else:
            actions.extend(self._master_receives(advert, source, now))
        return tuple(actions)

    def on_timer(self, now: float) -> tuple[Action, ...]:
        """Deadlines at or before ``now`` fire (the runner passes max(deadline, clock()))."""
        if self._state is State.BACKUP and self._down_at is not None and now >= self._down_at:
            return self._become_master(self._down_reason, self._down_detail, now)
        actions: list[Action] = []
        if self._state is State.MASTER:
            interval = self._settings.advert_interval
            if self._advert_at is not None and now >= self._advert_at:
                # RFC 5798 §6.4.3: Adver_Timer fired. Re-arm from the deadline so
                # adverts do not drift, but never into the past after a stall.
                actions.append(SendAdvert(self._effective))
                self._advert_at = self._advert_at + interval
                if self._advert_at <= now:
                    self._advert_at = now + interval
            announce = False
            if self._second_announce_at is not None and now >= self._second_announce_at:
                announce = True
                self._second_announce_at = None
            refresh = self._settings.garp_master_refresh
            if refresh is not None and self._refresh_at is not None and now >= self._refresh_at:
                announce = True
                self._refresh_at = now + refresh
            if announce:  # one burst even when both are due at once
                actions.append(Announce())
        return tuple(actions)

    def set_priority(self, effective: int, reason: str, now: float) -> tuple[Action, ...]:
        """Tracking moved the priority to ``effective`` (base + weights, before clamping).

        keepalived ``vrrp_set_effective_priority``: the owner never moves; others
        clamp to 1..254 (``vrrp.track_verdict.clamp_priority``, tracking's clamp too).
        A backup whose priority rises shortens its running master-down timer by the
        skew difference at once.
        """
        if self._settings.is_owner:
            return ()
        # Kept even when the number stays: another item may now be what holds it there.
        self._priority_reason = reason
        new = clamp_priority(effective)
        old = self._effective
        if new == old:
            return ()
        self._effective = new
        if self._state is State.BACKUP and self._down_at is not None and new > old:
            version = self._settings.version
            interval = self._master_adver_interval
            self._down_at -= skew_time(old, interval, version) - skew_time(new, interval, version)
        if self._state is State.MASTER:
            self._master_priority = new
        return (PriorityChanged(old, new, reason),)

    def set_fault(self, on: bool, reason: str, now: float) -> tuple[Action, ...]:
        """A fault (weight-0 tracked interface/script) was set or cleared.

        The caller aggregates its faults: ``on=False`` means *no* fault remains.
        MASTER -> FAULT sends priority 0 first so the backup waits only skew time.
        """
        if on == self._fault:
            return ()
        self._fault = on
        self._fault_reason = reason
        if self._state is State.INIT:
            return ()  # remembered: start() goes straight to FAULT
        if on:
            was_master = self._state is State.MASTER
            transition = self._move(TransitionReason.fault_entered, reason)
            self._clear_timers()
            self._master_source = None
            self._master_priority = None
            if was_master:
                return (transition, SendAdvert(PRIORITY_STOP), RemoveVips())
            return (transition,)
        transition = self._move(TransitionReason.fault_cleared, reason)
        # keepalived vrrp_state_leave_fault: listen afresh with our own interval.
        self._master_adver_interval = self._settings.advert_interval
        self._preempt_at = None
        self._arm_master_down(now, TransitionReason.master_down_timer, "peer=none")
        return (transition,)

    def shutdown(self, now: float) -> tuple[Action, ...]:
        """Stop the instance: a master resigns with priority 0 (RFC 5798 §6.4.3) and drops VIPs."""
        if self._state is State.INIT:
            return ()
        was_master = self._state is State.MASTER
        transition = self._move(TransitionReason.shutdown, f"priority={self._effective}")
        self._clear_timers()
        self._master_source = None
        self._master_priority = None
        self._master_adver_interval = self._settings.advert_interval
        if was_master:
            return (SendAdvert(PRIORITY_STOP), RemoveVips(), transition)
        return (transition,)

    def reconfigure(self, settings: InstanceSettings, now: float) -> tuple[Action, ...]:
        """Adopt changed tunables in place, keeping the state: a reload without a flap.

        keepalived reloads keep each instance's state (``restore_vrrp_state``); a
        restart here would resign with priority 0 and move the VIPs twice. What
        cannot change in place raises :class:`VrrpUsageError` and the caller
        restarts the instance: identity (interface, vrid, family), version, the
        VIP set. A new base priority resets the effective one (returned as
        :class:`PriorityChanged`); the caller then re-applies tracking weights.
        """
        old = self._settings
        if instance_reload(old, settings) is InstanceReload.replace:
            raise VrrpUsageError(
                "reconfigure: identity, version or sync group changed; replace the instance"
            )
        self._settings = settings
        added, removed = vip_changes(old, settings)
        self._vip_set = frozenset(settings.vip_addresses)
        self._source = settings.unicast_source or self._primary
        self._own_addresses = frozenset({self._primary, self._source})
        actions: list[Action] = []
        if settings.priority != old.priority:
            before, self._effective = self._effective, settings.priority
            self._priority_reason = "reconfigured"
            if self._state is State.MASTER:
                self._master_priority = self._effective
            if before != self._effective:
                actions.append(PriorityChanged(before, self._effective, "reconfigured"))
        if settings.preempt_delay <= 0:
            self._preempt_at = None
        if settings.unicast_checksum is not old.unicast_checksum:
            # A new setting starts over; an unchanged ``auto`` keeps what it detected.
            self._old_checksum = settings.unicast_checksum is UnicastChecksum.old
        if (
            settings.auth_hmac != old.auth_hmac
            or settings.advert_interval != old.advert_interval
            or settings.unicast_peers != old.unicast_peers
        ):
            # New keys or mode apply at once (key rotation is a reload); the send
            # sequence carries on so peers' anti-replay marks keep accepting us.
            sent = 0 if self._hmac is None else self._hmac.send_sequence
            self._hmac = _hmac_guard(settings, send_sequence=sent)
        if self._state is State.MASTER and (added or removed):
            # A master owns its VIPs: the new ones go up now and are announced (gratuitous
            # ARP / unsolicited NA, RFC 5798 §6.4.1), the removed ones go now, and the
            # next advert lists the new set.
            actions.append(VipsChanged(added, removed))
            if added:
                actions.append(Announce())
            actions.append(SendAdvert(self._effective))
            if self._advert_at is not None:
                self._advert_at = now + settings.advert_interval
        if self._state is State.MASTER:
            if self._advert_at is not None:
                # Next advert at the new cadence at the latest (RFC 5798 §6.4.3 Adver_Timer).
                self._advert_at = min(self._advert_at, now + settings.advert_interval)
            refresh = settings.garp_master_refresh
            if refresh != old.garp_master_refresh:
                self._refresh_at = None if refresh is None else now + refresh
            self._master_adver_interval = settings.advert_interval
        elif settings.version == 2 or self._master_source is None:
            # VRRPv2 backups always use their own interval; a v3 backup keeps what it
            # learnt from a live master (RFC 5798 §6.4.2).
            self._master_adver_interval = settings.advert_interval
        return tuple(actions)

    def resign(
        self,
        reason: str,
        now: float,
        *,
        send_stop: bool = True,
        cause: TransitionReason = TransitionReason.sync_group,
    ) -> tuple[Action, ...]:
        """Leave MASTER for BACKUP on request (a sync group follows a member that left).

        keepalived ``vrrp_sync_backup`` moves the other members to BACKUP (their
        notify hooks run as BACKUP, not FAULT). With ``send_stop`` we resign with
        priority 0 so the peer takes over after its skew time instead of a whole
        Master_Down_Interval; keepalived itself leaves silently (``send_stop=False``).
        A caller that must stop this instance from taking mastership back holds its
        priority down with :meth:`set_priority`. Not MASTER: nothing to do. ``cause`` is
        the transition's reason: ``operator_failover`` for ``haipvs failover``.
        """
        if self._state is not State.MASTER:
            return ()
        transition = self._move(cause, reason)
        self._advert_at = None
        self._refresh_at = None
        self._second_announce_at = None
        self._master_source = None
        self._master_priority = None
        self._master_adver_interval = self._settings.advert_interval
        self._arm_master_down(now, TransitionReason.master_down_timer, "peer=none")
        if send_stop:
            return (transition, SendAdvert(PRIORITY_STOP), RemoveVips())
        return (transition, RemoveVips())

    # --- receive rules --------------------------------------------------------------------

    def _check_advert(
        self, advert: Advertisement, source: IPAddress, destination: IPAddress | None
    ) -> AdvertDropped | None:
        """RFC 5798 §7.1 / RFC 3768 §7.1 receiver checks that need the instance."""
        settings = self._settings

        def drop(reason: DropReason, detail: str) -> AdvertDropped:
            return AdvertDropped(reason, source, detail)

        if source in self._own_addresses:
            return drop(DropReason.own_packet, f"source={source} is our own address")
        if source.version != settings.family or (
            advert.family is not None and advert.family != settings.family
        ):
            return drop(DropReason.family_mismatch, f"instance is IPv{settings.family}")
        if destination is not None:
            wrong = self._check_destination(source, destination)
            if wrong is not None:
                return drop(*wrong)
        if advert.version != settings.version:
            return drop(
                DropReason.bad_version,
                f"version={advert.version} instance_version={settings.version}",
            )
        if advert.vrid != settings.vrid:
            return drop(DropReason.wrong_vrid, f"vrid={advert.vrid} instance_vrid={settings.vrid}")
        if settings.unicast_peers and source not in settings.unicast_peers:
            # keepalived vrrp_check_unicast_src: only configured peers may speak.
            return drop(DropReason.not_a_peer, f"source={source} not in unicast_peers")
        if settings.version == 2:
            # RFC 3768 §7.1: the authentication type and data must match ours.
            if advert.auth_type != settings.auth_type or (
                settings.auth_type == 1 and advert.auth_data != settings.auth_data
            ):
                return drop(
                    DropReason.auth_mismatch,
                    f"auth_type={advert.auth_type} instance_auth_type={settings.auth_type}",
                )
            # RFC 3768 §7.1: the advert interval must equal ours, else drop and log.
            if advert.advert_interval != settings.advert_interval:
                return drop(
                    DropReason.interval_mismatch,
                    f"advert_interval={advert.advert_interval:g} "
                    f"instance_interval={settings.advert_interval:g}",
                )
        elif advert.advert_interval <= 0 and advert.priority != PRIORITY_STOP:
            # A zero Max Adver Int would make Master_Down_Interval zero: unusable.
            return drop(DropReason.interval_mismatch, "advert_interval=0")
        return None

    def _check_destination(
        self, source: IPAddress, destination: IPAddress
    ) -> tuple[DropReason, str] | None:
        """The advert's addresses must fit the instance's mode (keepalived drops
        a unicast advert on a multicast instance and the reverse, vrrp.c
        ``vrrp_check_packet``): a multicast instance hears only the group (RFC
        5798 §5.1.1.2 / §5.1.2.2), from a source on one of the interface's
        subnets (an advert never crosses a router, §7.1) unless
        ``accept_foreign_source``; a unicast instance only its own address. A
        spoofed advert sent to a VIP then never reaches the election."""
        settings = self._settings
        if settings.unicast_peers:
            if destination not in self._own_addresses:
                return DropReason.wrong_destination, (
                    f"destination={destination} instance is unicast from {self._source}"
                )
            return None
        group = VRRP_MULTICAST_V6 if settings.family == 6 else VRRP_MULTICAST_V4
        if destination != group:
            return DropReason.wrong_destination, (
                f"destination={destination} instance is multicast to {group}"
            )
        if (
            self._connected
            and not settings.accept_foreign_source
            and not any(source in network for network in self._connected)
        ):
            return DropReason.foreign_source, (
                f"source={source} on none of {settings.interface}'s subnets"
            )
        return None

    def _check_addresses(self, advert: Advertisement, source: IPAddress) -> AdvertMismatch | None:
        if frozenset(advert.addresses) == self._vip_set:
            self._last_mismatch = None
            return None
        key = (source, advert.addresses)
        if key == self._last_mismatch:
            return None
        self._last_mismatch = key
        theirs = ",".join(str(a) for a in advert.addresses) or "-"
        ours = ",".join(str(a) for a in self._settings.vip_addresses)
        return AdvertMismatch(
            DropReason.address_count_mismatch, source, f"addresses={theirs} instance_vips={ours}"
        )

    def _backup_receives(
        self, advert: Advertisement, source: IPAddress, now: float
    ) -> tuple[Action, ...]:
        settings = self._settings
        if advert.priority == PRIORITY_STOP:
            # RFC 5798 §6.4.2: the master resigned; take over after Skew_Time only.
            skew = skew_time(self._effective, self._master_adver_interval, settings.version)
            self._down_at = now + skew
            self._down_reason = TransitionReason.priority_zero_advert
            self._down_detail = f"peer={source} peer_priority=0"
            self._master_source = None
            self._master_priority = None
            return ()
        lower = advert.priority < self._effective
        if lower and settings.preempt and not self._preempt_delay_running(now):
            # RFC 5798 §6.4.2 "Else: Discard the ADVERTISEMENT": the master-down
            # timer keeps running and we preempt when it expires.
            delayed = settings.preempt_delay > 0
            self._down_reason = (
                TransitionReason.preempt_delay_elapsed
                if delayed
                else TransitionReason.preempt_lower_priority_master
            )
            self._down_detail = (
                f"peer={source} peer_priority={advert.priority} priority={self._effective}"
            )
            self._master_source = source
            self._master_priority = advert.priority
            return ()
        # Accept (RFC 5798 §6.4.2): nopreempt, priority >= ours, or preempt_delay running.
        if settings.version == 3:
            self._master_adver_interval = advert.advert_interval
        if settings.preempt_delay > 0:
            if not lower:
                self._preempt_at = None  # keepalived "stop preempt delay"
            elif self._preempt_at is None:
                self._preempt_at = now + settings.preempt_delay  # "start preempt delay"
        self._master_source = source
        self._master_priority = advert.priority
        self._arm_master_down(
            now,
            TransitionReason.master_down_timer,
            f"peer={source} peer_priority={advert.priority}",
        )
        return ()

    def _preempt_delay_running(self, now: float) -> bool:
        """keepalived: with preempt_delay, a lower master is tolerated until the delay ends.

        The first lower-priority advert starts the delay when none is running.
        """
        if self._settings.preempt_delay <= 0:
            return False
        return self._preempt_at is None or now < self._preempt_at

    def _master_receives(
        self, advert: Advertisement, source: IPAddress, now: float
    ) -> tuple[Action, ...]:
        if advert.priority == PRIORITY_STOP:
            # RFC 5798 §6.4.3: another router resigned; assert ourselves at once. Only a
            # master resigns, so it was master beside us (a sync group's member following
            # another that met us after a partition): its gratuitous ARPs moved the
            # neighbours, and they come back only if we announce (see below).
            self._advert_at = now + self._settings.advert_interval
            if self._settings.strict:
                return (SendAdvert(self._effective),)
            return self._reannounce(now)
        if self._settings.strict and self._settings.is_owner:
            # keepalived vrrp_strict sets owner_ignore_adverts: the address owner keeps
            # its addresses whatever another router advertises.
            return ()
        detail = f"peer={source} peer_priority={advert.priority} priority={self._effective}"
        if advert.priority > self._effective:
            return self._become_backup(
                TransitionReason.higher_priority_advert, detail, advert, source, now
            )
        # Same family is guaranteed by _check_advert; compare as unsigned integers
        # (RFC 5798 §6.4.3: "primary IPvX address ... greater than the local").
        if advert.priority == self._effective and int(source) > int(self._source):
            return self._become_backup(
                TransitionReason.equal_priority_higher_address, detail, advert, source, now
            )
        # Lower priority (or equal with a lower address): RFC 5798 says discard;
        # keepalived answers at once ("forcing new election") so the other side
        # steps down now instead of after its own timers.
        if self._settings.strict:
            # keepalived vrrp_strict: lower_prio_no_advert and garp_lower_prio_repeat 0,
            # the RFC 5798 §6.4.3 "Otherwise, discard the ADVERTISEMENT" as written.
            return ()
        # Another router believed it was master (a partition has healed, or our adverts
        # were lost): its gratuitous ARPs / NAs moved the neighbours' caches to it, and
        # they stay there after it steps down. Announce the VIPs again, as keepalived's
        # garp_lower_prio_repeat does, at most once per advert interval. Its last
        # gratuitous ARPs may still arrive after ours (it announced before it heard
        # us): a second burst follows after garp_master_delay, as keepalived's
        # garp_lower_prio_delay (which defaults to it) does.
        return self._reannounce(now)

    def _reannounce(self, now: float) -> tuple[Action, ...]:
        """Our advert at once and, at most once per advert interval, the VIPs announced
        again with a second burst ``garp_master_delay`` later."""
        if self._reannounce_after is not None and now < self._reannounce_after:
            return (SendAdvert(self._effective),)
        self._reannounce_after = now + self._settings.advert_interval
        delay = self._settings.garp_master_delay
        if delay and (self._second_announce_at is None or self._second_announce_at > now + delay):
            self._second_announce_at = now + delay
        return (SendAdvert(self._effective), Announce())

    # --- state changes --------------------------------------------------------------------

    def _move(self, reason: TransitionReason, detail: str) -> Transition:
        """The only place ``self._state`` changes, and only along :data:`TRANSITIONS`."""
        new = TRANSITIONS.get((self._state, reason))
        if new is None:
            raise VrrpUsageError(f"no transition from {self._state.value} on {reason.value}")
        transition = Transition(self._state, new, reason, detail)
        self._state = new
        self._last_transition = transition
        return transition

    def _become_master(
        self, reason: TransitionReason, detail: str, now: float
    ) -> tuple[Action, ...]:
        transition = self._move(reason, detail)
        self._down_at = None
        self._preempt_at = None
        self._master_source = self._source
        self._master_priority = self._effective
        self._master_adver_interval = self._settings.advert_interval
        self._advert_at = now + self._settings.advert_interval
        refresh = self._settings.garp_master_refresh
        self._refresh_at = None if refresh is None else now + refresh
        delay = self._settings.garp_master_delay
        self._second_announce_at = now + delay if delay else None
        # keepalived vrrp_state_master_tx: advert first, so the old master drops
        # the VIPs before our gratuitous ARPs move the traffic.
        return (transition, SendAdvert(self._effective), *_ENTER_MASTER_SIDE_EFFECTS)

    def _become_backup(
        self,
        reason: TransitionReason,
        detail: str,
        advert: Advertisement,
        source: IPAddress,
        now: float,
    ) -> tuple[Action, ...]:
        transition = self._move(reason, detail)
        self._advert_at = None
        self._refresh_at = None
        self._second_announce_at = None
        self._preempt_at = None  # keepalived vrrp_state_leave_master
        if self._settings.version == 3:
            # RFC 5798 §6.4.3: Set Master_Adver_Interval to the advert's interval.
            self._master_adver_interval = advert.advert_interval
        self._master_source = source
        self._master_priority = advert.priority
        self._arm_master_down(
            now,
            TransitionReason.master_down_timer,
            f"peer={source} peer_priority={advert.priority}",
        )
        if self._settings.strict:
            # RFC 5798 §6.4.3 as written: cancel the Adver_Timer and go quietly.
            return (transition, RemoveVips())
        # Two masters (a healed partition): our gratuitous ARPs / NAs moved the
        # neighbours' caches to us, and only the winner can move them back. It does when
        # it hears a lower priority advert (keepalived garp_lower_prio_repeat, and our
        # own rule in _master_receives), but if its advert reached us before any of ours
        # reached it, it never hears one: we would go quiet and the neighbours keep
        # sending to us for a reachable time (tens of seconds). So the last thing we
        # send as master is one advert at our own priority, before the VIPs go.
        return (transition, SendAdvert(self._effective), RemoveVips())

    def _arm_master_down(self, now: float, reason: TransitionReason, detail: str) -> None:
        interval = master_down_interval(
            self._effective, self._master_adver_interval, self._settings.version
        )
        self._down_at = now + interval
        self._down_reason = reason
        self._down_detail = f"{detail} master_down_interval={interval:g}"

    def _clear_timers(self) -> None:
        self._down_at = None
        self._advert_at = None
        self._refresh_at = None
        self._second_announce_at = None
        self._preempt_at = None
