"""The sync-group policy alone: member transitions in, decisions out, literal times.

keepalived ``vrrp_sync_group``: a member's own fault faults the group, a member
that loses MASTER takes the others to BACKUP, a new MASTER lifts the hold. The
runner-level tests (tests/vrrp/test_runner.py) run the same rules on the fakes.
"""

from __future__ import annotations

import pytest

from vrrp.machine import State, TransitionReason
from vrrp.sync_group import (
    Demote,
    Follow,
    GroupFault,
    MemberTransition,
    ReleaseHold,
    SyncGroupPolicy,
    group_state,
)

MEMBERS = ("VI_1", "VI_2", "VI_3")


def moved(
    instance: str, old: State, new: State, reason: TransitionReason, at: float
) -> MemberTransition:
    return MemberTransition(instance, old, new, reason, at)


def policy() -> SyncGroupPolicy:
    return SyncGroupPolicy("G", MEMBERS)


def test_a_members_own_fault_faults_every_other_member() -> None:
    group = policy()
    reason = "sync_group=G member=VI_1 in fault"
    assert group.on_fault("VI_1", True, 12.5) == (
        Follow("VI_1", "fault", reason, 12.5),
        GroupFault("VI_2", True, reason, 12.5),
        GroupFault("VI_3", True, reason, 12.5),
    )
    assert group.faulted == {"VI_2", "VI_3"}
    # Told twice: nothing new.
    assert group.on_fault("VI_1", True, 13.0) == ()


def test_a_transition_into_fault_decides_nothing_by_itself() -> None:
    # The members' own faults drive the fault rule; the transitions they cause
    # (and the ones the group's fault causes) start no second round.
    group = policy()
    group.on_fault("VI_1", True, 3.0)
    into_fault = moved("VI_2", State.MASTER, State.FAULT, TransitionReason.fault_entered, 3.0)
    assert group.on_transition(into_fault) == ()
    out_of_fault = moved("VI_2", State.FAULT, State.BACKUP, TransitionReason.fault_cleared, 9.0)
    assert group.on_transition(out_of_fault) == ()
    assert group.faulted == {"VI_2", "VI_3"}


def test_the_group_stays_in_fault_until_the_last_own_fault_clears() -> None:
    group = policy()
    group.on_fault("VI_1", True, 3.0)
    # VI_2 fails too while the group already holds it: now VI_1 is held as well.
    assert group.on_fault("VI_2", True, 4.0) == (
        Follow("VI_2", "fault", "sync_group=G member=VI_2 in fault", 4.0),
        GroupFault("VI_1", True, "sync_group=G member=VI_2 in fault", 4.0),
    )
    assert group.faulted == {"VI_1", "VI_2", "VI_3"}
    # VI_1 recovers at 10 s: VI_2 still fails, so VI_1 stays held; VI_2 is in
    # FAULT by its own fault alone.
    assert group.on_fault("VI_1", False, 10.0) == (
        GroupFault("VI_2", False, "sync_group=G member=VI_1 fault cleared", 10.0),
    )
    assert group.faulted == {"VI_1", "VI_3"}
    # VI_2 recovers at 20 s: the group's fault lifts everywhere.
    reason = "sync_group=G member=VI_2 fault cleared"
    assert group.on_fault("VI_2", False, 20.0) == (
        GroupFault("VI_1", False, reason, 20.0),
        GroupFault("VI_3", False, reason, 20.0),
    )
    assert group.faulted == frozenset()


def test_a_member_losing_master_takes_the_others_to_backup() -> None:
    group = policy()
    decisions = group.on_transition(
        moved("VI_2", State.MASTER, State.BACKUP, TransitionReason.higher_priority_advert, 7.25)
    )
    reason = "sync_group=G member=VI_2 backup"
    assert decisions == (
        Follow("VI_2", "backup", reason, 7.25),
        Demote("VI_1", reason, 7.25),
        Demote("VI_3", reason, 7.25),
    )


def test_a_followers_own_resignation_starts_no_second_round() -> None:
    # keepalived's vrrp_sync_backup returns when the group is already BACKUP: following
    # the follower would hold the member that lost MASTER at priority 1 too, and no
    # member could ever preempt back.
    resigned = moved("VI_1", State.MASTER, State.BACKUP, TransitionReason.sync_group, 7.25)
    assert policy().on_transition(resigned) == ()


def test_a_new_master_lifts_the_hold_on_every_member() -> None:
    decisions = policy().on_transition(
        moved("VI_3", State.BACKUP, State.MASTER, TransitionReason.master_down_timer, 30.0)
    )
    assert decisions == tuple(ReleaseHold(member, 30.0) for member in MEMBERS)


def test_any_new_master_lifts_the_holds_whatever_it_left() -> None:
    owner = moved("VI_1", State.FAULT, State.MASTER, TransitionReason.fault_cleared, 5.0)
    assert policy().on_transition(owner) == tuple(ReleaseHold(m, 5.0) for m in MEMBERS)


def test_transitions_with_no_group_rule_decide_nothing() -> None:
    group = policy()
    assert group.on_transition(
        moved("VI_1", State.INIT, State.BACKUP, TransitionReason.startup_backup, 0.0)
    ) == ()
    assert group.on_transition(
        moved("VI_1", State.BACKUP, State.INIT, TransitionReason.shutdown, 99.0)
    ) == ()


def test_a_stranger_or_a_duplicate_member_is_refused() -> None:
    with pytest.raises(ValueError, match="sync group G: duplicate instance"):
        SyncGroupPolicy("G", ("VI_1", "VI_1"))
    with pytest.raises(ValueError, match="sync group G: VI_9 is not a member"):
        policy().on_transition(
            moved("VI_9", State.INIT, State.BACKUP, TransitionReason.startup_backup, 0.0)
        )
    with pytest.raises(ValueError, match="sync group G: VI_9 is not a member"):
        policy().on_fault("VI_9", True, 0.0)


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ((State.MASTER, State.MASTER), State.MASTER),
        ((State.BACKUP, State.BACKUP, State.BACKUP), State.BACKUP),
        ((State.MASTER, State.FAULT), State.FAULT),
        ((State.BACKUP, State.FAULT, State.MASTER), State.FAULT),
        ((State.MASTER, State.BACKUP), None),
        ((State.INIT, State.INIT), State.INIT),
    ],
)
def test_group_state_for_the_notify_hook(
    states: tuple[State, ...], expected: State | None
) -> None:
    assert group_state(states) is expected
