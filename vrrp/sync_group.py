"""keepalived ``vrrp_sync_group`` as a sans-IO policy: member transitions in, decisions out.

Instances of one sync group move together:

- The group is in FAULT while any member has a fault of its own (tracking, IO):
  every member is held in FAULT (the group's own fault source) while another member
  has its own fault (keepalived ``vrrp_sync_fault``). The rule follows the members'
  own faults (:meth:`SyncGroupPolicy.on_fault`), not their transitions: a member the
  group already holds in FAULT makes no transition when its own fault starts, yet it
  keeps the group in FAULT until that fault clears.
- A member that loses MASTER to a peer (MASTER -> BACKUP) makes the others follow: they
  advertise the lowest priority (1) so they do not preempt back, and a master among them
  resigns straight to BACKUP (reason ``sync_group``, BACKUP notify, no FAULT) with
  priority 0, so the peer director takes the whole group (keepalived
  ``vrrp_sync_backup``). A follower's own resignation starts no second round.
- The hold lifts when any member is MASTER again (keepalived ``vrrp_sync_master``).
- The group's notify state (:func:`group_state`): FAULT while a member is, MASTER once
  every member is, BACKUP once every member is; in between it keeps its last state.

:class:`SyncGroupPolicy` decides; the service (``vrrp.service.SyncGroup``) executes the
decisions on the members' runners. Every event carries the time it happened (the
runner's clock), and every decision the time it was taken, so tests state literal times
like the machine's.

Pure: no IO, no clock, no logger.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from vrrp.machine import State, TransitionReason

__all__ = [
    "Decision",
    "Demote",
    "Follow",
    "GroupFault",
    "MemberTransition",
    "ReleaseHold",
    "SyncGroupPolicy",
    "group_state",
]


@dataclass(frozen=True, slots=True)
class MemberTransition:
    """A member of the group changed state."""

    instance: str
    old: State
    new: State
    reason: TransitionReason
    at: float


@dataclass(frozen=True, slots=True)
class Follow:
    """The group follows ``instance`` to ``to_state`` ("fault" or "backup"): one log line."""

    instance: str
    to_state: str
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class GroupFault:
    """Set (``on``) or clear the group's fault source on ``member``."""

    member: str
    on: bool
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class Demote:
    """Hold ``member`` at priority 1 and, if it is MASTER, resign it to BACKUP."""

    member: str
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class ReleaseHold:
    """Lift the priority-1 hold on ``member``: it advertises its tracked priority again."""

    member: str
    at: float


Decision = Follow | GroupFault | Demote | ReleaseHold


class SyncGroupPolicy:
    """The decisions of one sync group; it remembers which members have a fault of
    their own and which it holds in FAULT."""

    def __init__(self, name: str, members: Sequence[str]) -> None:
        if len(set(members)) != len(members):
            raise ValueError(f"sync group {name}: duplicate instance")
        self.name = name
        self.members = tuple(members)
        self._own: set[str] = set()
        self._faulted: set[str] = set()

    @property
    def faulted(self) -> frozenset[str]:
        """The members the group holds in FAULT now."""
        return frozenset(self._faulted)

    def on_fault(self, instance: str, own: bool, at: float) -> tuple[Decision, ...]:
        """``instance`` now has (``own``) or no longer has a fault of its own."""
        self._check_member(instance)
        if own == (instance in self._own):
            return ()
        if own:
            self._own.add(instance)
            reason = f"sync_group={self.name} member={instance} in fault"
        else:
            self._own.discard(instance)
            reason = f"sync_group={self.name} member={instance} fault cleared"
        # Held: every member while another member has its own fault.
        held = {member for member in self.members if self._own - {member}}
        decisions: list[Decision] = [Follow(instance, "fault", reason, at)] if own else []
        decisions += [
            GroupFault(member, True, reason, at)
            for member in self.members
            if member in held and member not in self._faulted
        ]
        decisions += [
            GroupFault(member, False, reason, at)
            for member in self.members
            if member in self._faulted and member not in held
        ]
        self._faulted = held
        return tuple(decisions)

    def on_transition(self, event: MemberTransition) -> tuple[Decision, ...]:
        """What the other members do because ``event.instance`` changed state."""
        self._check_member(event.instance)
        name, at = event.instance, event.at
        others = [member for member in self.members if member != name]
        if (
            event.old is State.MASTER
            and event.new is State.BACKUP
            and event.reason is not TransitionReason.sync_group
        ):
            # A member that resigned because it follows the group is not a new cause:
            # following it would hold the member that lost MASTER at priority 1 too, and
            # then no member could ever preempt back (keepalived's vrrp_sync_backup
            # returns when the group is already BACKUP).
            reason = f"sync_group={self.name} member={name} backup"
            return (
                Follow(name, "backup", reason, at),
                *(Demote(other, reason, at) for other in others),
            )
        if event.new is State.MASTER:
            return tuple(ReleaseHold(member, at) for member in self.members)
        return ()

    def _check_member(self, instance: str) -> None:
        if instance not in self.members:
            raise ValueError(f"sync group {self.name}: {instance} is not a member")


def group_state(states: Collection[State]) -> State | None:
    """The sync group's state for its notify hook, from its members' states: FAULT while
    any member is, else the state every member shares; None while they still differ
    (the group keeps its last state)."""
    if State.FAULT in states:
        return State.FAULT
    distinct = set(states)
    if len(distinct) == 1:
        (state,) = distinct
        return state
    return None
