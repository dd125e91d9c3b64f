"""The nemesis's pure parts: the seeded schedule and the invariant checker, with
literal times (no clock, no lab)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence

import pytest

from haipvs.lab.client import Sample, outages
from haipvs.lab.nemesis.invariants import (
    Event,
    Holders,
    Observations,
    Proc,
    Status,
    Table,
    Violation,
    check,
    cpu_share,
    describe,
    guest_stalls,
)
from haipvs.lab.nemesis.schedule import (
    ALL_KINDS,
    CI_KINDS,
    KINDS,
    MAX_SPACING,
    MIN_SPACING,
    Fault,
    generate,
)

# --------------------------------------------------------------------- schedule


def test_same_seed_same_schedule() -> None:
    assert generate(7, 300) == generate(7, 300)
    assert generate(7, 300) != generate(8, 300)


def test_spacing_durations_and_settling() -> None:
    for seed in range(50):
        faults = generate(seed, 900)
        assert faults, seed
        for before, after in itertools.pairwise(faults):
            gap = after.at - before.at
            assert MIN_SPACING - 0.1 <= gap <= MAX_SPACING + 0.1, (seed, before, after)
            assert after.at >= before.end + KINDS[before.kind].settle - 0.1, (before, after)
        last = faults[-1]
        assert last.end + KINDS[last.kind].settle <= 900
        for fault in faults:
            low, high = KINDS[fault.kind].duration
            assert low <= fault.duration <= high, fault
            assert fault.target in KINDS[fault.kind].targets


def test_every_kind_is_drawn_and_the_mix_is_respected() -> None:
    drawn = {f.kind for seed in range(20) for f in generate(seed, 900)}
    assert drawn == set(ALL_KINDS)
    assert set(CI_KINDS) == set(ALL_KINDS)  # CI runs the full mix
    some = ("partition", "flood", "kill_child")
    assert {f.kind for seed in range(20) for f in generate(seed, 900, some)} == set(some)


@pytest.mark.parametrize("seed", range(1, 11))
def test_every_kind_comes_once_before_any_comes_twice(seed: int) -> None:
    faults = generate(seed, 900)
    assert len(faults) > 2 * len(ALL_KINDS)
    for start in range(0, 2 * len(ALL_KINDS), len(ALL_KINDS)):
        bag = [f.kind for f in faults[start:start + len(ALL_KINDS)]]
        assert sorted(bag) == sorted(ALL_KINDS)


def test_a_ci_sized_run_meets_the_kinds_ci_used_to_leave_out() -> None:
    kinds = {f.kind for f in generate(1, 180)}
    assert {"flood", "kill_child", "api_idle", "reload_bad_interface"} <= kinds
    assert len(kinds) >= 12


def test_clock_steps_are_an_hour_or_a_day_either_way() -> None:
    steps = {f.params["step_s"] for seed in range(30) for f in generate(seed, 900, ["clock_step"])}
    assert steps == {3600.0, -3600.0, 86400.0, -86400.0}


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="nope"):
        generate(1, 60, ["partition", "nope"])
    with pytest.raises(ValueError, match="none given"):
        generate(1, 60, [])


def test_a_run_too_short_for_any_fault_has_none() -> None:
    assert generate(1, 5) == ()


# --------------------------------------------------------------------- invariants


def holders(*steps: tuple[float, bool, bool]) -> list[Holders]:
    """(t, dir1 holds, dir2 holds) steps."""
    return [Holders(t, name, held) for t, one, two in steps
            for name, held in (("dir1", one), ("dir2", two))]


def invariants_of(found: Sequence[Violation]) -> list[str]:
    return [v.invariant for v in found]


def answers(*runs: tuple[float, float, bool]) -> list[Sample]:
    """(from, to, answered) runs of requests every 0.1 s."""
    return [Sample(round(start + k * 0.1, 1), ok, "rs1" if ok else None,
                   None if ok else "timeout", 1.0)
            for start, stop, ok in runs for k in range(round((stop - start) / 0.1))]


def answered(sends: Sequence[float]) -> list[Sample]:
    return [Sample(t, True, "rs1", None, 1.0) for t in sends]


def test_a_client_outage_runs_from_the_last_answer_to_the_next() -> None:
    sent = answers((0, 1, True), (1, 2, False), (2, 3, True), (3, 4, False))
    assert [(o.start, o.end) for o in outages(sent, end=4.5)] == [(0.9, 2.0), (2.9, 4.5)]
    assert outages(answers((0, 1, True)), end=2) == []


def test_the_client_unanswered_6_s_after_a_healed_partition_is_a_violation() -> None:
    # The split-brain heal that left the neighbours on the loser's MAC: one holder again
    # 0.2 s after the heal, but the client unanswered until 20.0.
    partition = Fault(10.0, "partition", "", 4.0)
    obs = Observations(faults=(partition,),
                       holders=holders((0, True, False), (12.0, True, True),
                                       (14.2, True, False)),
                       client_requests=answers((0, 12, True), (12, 20, False), (20, 25, True)),
                       end=25)
    verdict = check(obs)
    assert invariants_of(verdict.violations) == ["client_answered"]
    assert verdict.violations[0].t == 19.0
    assert "6.00 s after the faults around it ended" in verdict.violations[0].what
    assert verdict.figures["client_unanswered_after_fault_max_ms"] == 6000


def test_the_client_answered_within_5_s_of_the_heal_is_within_bounds() -> None:
    obs = Observations(faults=(Fault(10.0, "partition", "", 4.0),),
                       client_requests=answers((0, 12, True), (12, 16, False), (16, 25, True)),
                       end=25)
    verdict = check(obs)
    assert verdict.violations == ()
    assert verdict.figures["client_unanswered_after_fault_max_ms"] == 2000


def test_an_outage_no_fault_explains_may_last_5_s() -> None:
    within = Observations(faults=(), client_requests=answers(
        (0, 10, True), (10, 14, False), (14, 20, True)), end=20)
    assert check(within).violations == ()
    # A fault that ended before the outage began explains none of it.
    beyond = Observations(faults=(Fault(1.0, "partition", "", 2.0),), client_requests=answers(
        (0, 10, True), (10, 16, False), (16, 20, True)), end=20)
    found = check(beyond).violations
    assert invariants_of(found) == ["client_answered"]
    assert "for 6.10 s with no fault around it" in found[0].what


def test_an_outage_at_the_end_of_the_run_counts_only_what_was_seen() -> None:
    # The run ended 3 s after the heal with the client still unanswered: not yet known.
    obs = Observations(faults=(Fault(10.0, "partition", "", 4.0),),
                       client_requests=answers((0, 12, True), (12, 17, False)), end=17)
    assert check(obs).violations == ()


def test_two_holders_for_1_2_s_while_connected_is_a_violation() -> None:
    obs = Observations(faults=(), holders=holders((0, True, False), (10.0, True, True),
                                                  (11.2, True, False)), end=20)
    verdict = check(obs)
    assert invariants_of(verdict.violations) == ["one_holder"]
    assert verdict.violations[0].t == 10.0
    assert "1.20 s" in verdict.violations[0].what
    assert verdict.figures["dual_holder_max_ms"] == 1200


def test_two_holders_for_0_8_s_while_connected_is_within_bounds() -> None:
    obs = Observations(faults=(), holders=holders((0, True, False), (10.0, True, True),
                                                  (10.8, True, False)), end=20)
    verdict = check(obs)
    assert verdict.violations == ()
    assert verdict.figures["dual_holder_max_ms"] == 800


def test_two_holders_during_a_partition_and_1_4_s_after_it_heals_are_allowed() -> None:
    obs = Observations(faults=(Fault(10.0, "partition", "", 4.0),),
                       holders=holders((0, True, False), (12.0, True, True),
                                       (15.4, True, False)), end=20)
    verdict = check(obs)
    assert verdict.violations == ()
    assert verdict.figures["dual_holder_max_ms"] == 0


def test_two_holders_2_s_after_a_partition_heals_is_a_violation() -> None:
    obs = Observations(faults=(Fault(10.0, "partition", "", 4.0),),
                       holders=holders((0, True, False), (12.0, True, True),
                                       (16.0, True, False)), end=20)
    verdict = check(obs)
    assert invariants_of(verdict.violations) == ["one_holder"]
    assert verdict.violations[0].t == pytest.approx(15.5)


def test_a_short_handover_that_begins_after_the_heal_is_a_connected_episode() -> None:
    # A killed VRRP process's successor starts (the separation ends at 13.3) and, as RFC
    # 5798 §6.4.2 has it, preempts the peer a Master_Down_Interval (1.7 s) later: the
    # two holders of that handover for 30 ms began after the heal, so they are judged as
    # a connected episode (it used to be a violation: it ended 1.53 s after the heal).
    obs = Observations(
        faults=(Fault(10.0, "kill_child", "dir1"),),
        events=[Event(10.1, "dir1", "vrrp.process.died", {}),
                Event(13.3, "dir1", "vrrp.process.started", {})],
        holders=holders((0, True, False), (10.0, False, False), (11.3, False, True),
                        (14.8, True, True), (14.83, True, False)), end=20)
    verdict = check(obs)
    assert verdict.violations == ()
    assert verdict.figures["dual_holder_max_ms"] == 30
    long_handover = Observations(
        faults=(Fault(10.0, "kill_child", "dir1"),),
        events=[Event(10.1, "dir1", "vrrp.process.died", {}),
                Event(13.3, "dir1", "vrrp.process.started", {})],
        holders=holders((0, True, False), (10.0, False, False), (11.3, False, True),
                        (14.8, True, True), (16.0, True, False)), end=20)
    assert invariants_of(check(long_handover).violations) == ["one_holder"]


def test_a_flood_does_not_excuse_two_holders() -> None:
    obs = Observations(faults=(Fault(10.0, "flood", "group", 3.0),),
                       holders=holders((0, True, False), (11.0, True, True),
                                       (12.5, True, False)), end=20)
    assert invariants_of(check(obs).violations) == ["one_holder"]


def test_a_killed_daemon_excuses_two_holders_until_its_status_answers_again() -> None:
    obs = Observations(
        faults=(Fault(10.0, "kill_daemon", "dir1", 2.0),),
        holders=holders((0, True, False), (12.0, True, True), (16.0, False, True)),
        statuses=[Status(11.0, "dir1", None), Status(15.0, "dir1", "BACKUP"),
                  Status(16.5, "dir1", "BACKUP")],
        end=20)
    assert invariants_of(check(obs).violations) == []


def test_no_holder_for_3_5_s_is_a_violation_3_s_is_not() -> None:
    long_gap = Observations(faults=(), holders=holders((0, True, False), (5.0, False, False),
                                                       (8.5, False, True)), end=20)
    verdict = check(long_gap)
    assert invariants_of(verdict.violations) == ["availability"]
    assert verdict.figures["no_holder_max_ms"] == 3500
    short_gap = Observations(faults=(), holders=holders((0, True, False), (5.0, False, False),
                                                        (8.0, False, True)), end=20)
    assert check(short_gap).violations == ()


def test_status_must_match_the_vip_within_2_s() -> None:
    base = holders((0, True, False), (5.0, False, True))
    late = Observations(faults=(), holders=base, end=20, statuses=[
        Status(1.0, "dir1", "MASTER"), Status(5.5, "dir1", "MASTER"),
        Status(7.0, "dir1", "MASTER"), Status(7.6, "dir1", "BACKUP")])
    verdict = check(late)
    assert invariants_of(verdict.violations) == ["truthful_status"]
    assert verdict.violations[0].t == 5.5
    assert "said MASTER while it does not hold" in verdict.violations[0].what
    prompt = Observations(faults=(), holders=base, end=20, statuses=[
        Status(1.0, "dir1", "MASTER"), Status(5.5, "dir1", "MASTER"),
        Status(7.0, "dir1", "BACKUP"), Status(8.0, "dir1", None)])
    assert check(prompt).violations == ()


def test_status_stuck_at_the_end_of_the_run_is_a_violation() -> None:
    obs = Observations(faults=(), holders=holders((0, False, True)), end=20,
                       statuses=[Status(10.0, "dir1", "MASTER"), Status(19.0, "dir1", "MASTER")])
    assert invariants_of(check(obs).violations) == ["truthful_status"]


def test_a_killed_child_must_be_seen_dying_and_no_other_child_may_die() -> None:
    kill = Fault(10.0, "kill_child", "dir1")
    unseen = Observations(faults=(kill,), end=30)
    assert invariants_of(check(unseen).violations) == ["child_restarts"]
    seen = Observations(faults=(kill,), end=30, events=[
        # read a little before the kill's return was stamped
        Event(9.9, "dir1", "vrrp.process.died"), Event(11.5, "dir1", "vrrp.process.started")])
    assert check(seen).violations == ()
    extra = Observations(faults=(kill,), end=30, events=[
        Event(10.3, "dir1", "vrrp.process.died"), Event(20.0, "dir2", "vrrp.process.died")])
    found = check(extra).violations
    assert invariants_of(found) == ["child_restarts"] and "dir2" in found[0].what


FULL = {"10.0.0.11": 1, "10.0.0.12": 1, "10.0.0.13": 1}
WITHOUT_RS2 = {"10.0.0.11": 1, "10.0.0.13": 1}
BACKENDS = {"rs1": "10.0.0.11", "rs2": "10.0.0.12", "rs3": "10.0.0.13"}


def crash_obs(left_at: float, back_at: float, ops: Sequence[Event] = ()) -> Observations:
    crash = Fault(10.0, "backend_crash", "rs2", 5.0)  # down 10-15
    tables = [Table(t / 10, "dir1", WITHOUT_RS2 if left_at <= t / 10 < back_at else FULL)
              for t in range(0, 300, 5)]
    return Observations(faults=(crash,), tables=tables, backends=BACKENDS, end=30,
                        events=list(ops))


def test_a_backend_leaves_within_3_5_s_and_returns_within_3_s() -> None:
    verdict = check(crash_obs(left_at=12.5, back_at=17.0))
    assert verdict.violations == ()
    assert verdict.figures["converge_max_ms"] == 2500


def test_a_backend_that_leaves_late_or_returns_late_is_a_violation() -> None:
    late_leave = check(crash_obs(left_at=14.0, back_at=17.0)).violations
    assert invariants_of(late_leave) == ["ipvs_convergence"]
    assert "still in dir1's table" in late_leave[0].what
    late_return = check(crash_obs(left_at=12.0, back_at=18.5)).violations
    assert invariants_of(late_return) == ["ipvs_convergence"]
    assert late_return[0].t == 15.0


def test_drift_must_be_repaired() -> None:
    drift = Fault(10.0, "ipvs_drift", "dir1")
    repaired = [Table(9.5, "dir1", FULL), Table(10.2, "dir1", {}), Table(12.0, "dir1", FULL)]
    assert check(Observations(faults=(drift,), tables=repaired, end=20)).violations == ()
    never = [Table(9.5, "dir1", FULL), Table(10.2, "dir1", {}), Table(19.0, "dir1", {})]
    found = check(Observations(faults=(drift,), tables=never, end=20)).violations
    assert invariants_of(found) == ["drift_repaired"]


def test_a_table_sampled_while_the_drift_was_applied_is_not_the_wanted_one() -> None:
    # ipvsadm ran from 10.0 to 10.4; the probe saw the cleared table at 10.2 (inside that
    # window) and the daemon had repaired it by 10.5. Stamped at the command's end (10.4,
    # no window), the fault took the cleared table for the one to repair back to (seed 12
    # of a long run: a violation for a repair that took 0.2 s).
    tables = [Table(9.9, "dir1", FULL), Table(10.2, "dir1", {}), Table(10.5, "dir1", FULL),
              Table(10.7, "dir1", FULL)]
    windowed = Fault(10.0, "ipvs_drift", "dir1", 0.4)
    verdict = check(Observations(faults=(windowed,), tables=tables, end=20))
    assert verdict.violations == () and verdict.figures["converge_max_ms"] == 300


def test_a_drift_is_timed_from_the_first_sample_that_shows_it() -> None:
    # Seed 12 of bf6a1a8: ipvsadm -C ran 2.0 s in the loaded guest; the cleared table
    # appeared well into it and was repaired 1.85 s after that: over the 3.5 s bound when
    # timed from the command's start (a violation), 1.85 s from the drift.
    drift = Fault(229.6, "ipvs_drift", "dir2", 2.0)
    tables = [Table(229.4, "dir2", FULL), Table(230.3, "dir2", FULL),
              Table(231.36, "dir2", {}), Table(232.3, "dir2", {}), Table(233.21, "dir2", FULL)]
    verdict = check(Observations(faults=(drift,), tables=tables, end=240))
    assert verdict.violations == () and verdict.figures["converge_max_ms"] == 1850
    # The same repair 4 s after the drift showed is still a violation.
    late = [*tables[:4], Table(235.4, "dir2", FULL)]
    found = check(Observations(faults=(drift,), tables=late, end=240)).violations
    assert invariants_of(found) == ["drift_repaired"]


def test_an_ipvs_op_with_nothing_changed_is_a_violation() -> None:
    op = Event(25.0, "dir2", "ipvs.dest.updated", {"rs": "10.0.0.11:80", "weight": 0})
    found = check(crash_obs(12.0, 16.0, [op])).violations
    assert invariants_of(found) == ["no_op_without_change"]
    assert "dir2 logged ipvs.dest.updated 10.0.0.11:80" in found[0].what
    during = Event(12.0, "dir1", "ipvs.dest.deleted", {"rs": "10.0.0.12:80"})
    assert check(crash_obs(12.0, 16.0, [during])).violations == ()


def test_a_clock_step_moves_nothing() -> None:
    step = Fault(10.0, "clock_step", "", 3.0, {"step_s": -86400.0})
    quiet = Observations(faults=(step,), end=30)
    assert check(quiet).violations == ()
    moved = Observations(faults=(step,), end=30, events=[
        Event(11.0, "dir2", "vrrp.transition", {"from_state": "BACKUP", "to_state": "MASTER"}),
        Event(12.0, "dir1", "check.down", {"rs": "10.0.0.11:80"})])
    found = check(moved).violations
    assert invariants_of(found)[:2] == ["clock", "clock"]
    assert "to_state=MASTER" in found[0].what and "-86400" in found[0].what


def test_what_another_fault_moves_during_a_clock_step_is_not_the_clocks_doing() -> None:
    # Seed 18 (bf6a1a8): the daemon killed 3.4 s into a +1 day step; its VRRP process
    # shut down (master -> init) and the peer took over on the priority-0 advert.
    step = Fault(622.9, "clock_step", "", 3.4, {"step_s": 86400.0})
    kill = Fault(626.3, "kill_daemon", "dir1", 3.1)
    events = [
        Event(626.5, "dir1", "vrrp.transition", {"from_state": "master", "to_state": "init",
                                                 "reason": "shutdown"}),
        Event(627.1, "dir2", "vrrp.transition", {"from_state": "backup", "to_state": "master",
                                                 "reason": "priority_zero_advert"})]
    statuses = [Status(620.0, "dir1", "MASTER"), Status(631.0, "dir1", "BACKUP")]
    obs = Observations(faults=(step, kill), events=events, statuses=statuses, end=640)
    assert [v for v in check(obs).violations if v.invariant == "clock"] == []
    # Without the kill the same transitions are the clock's.
    alone = Observations(faults=(step,), events=events, statuses=statuses, end=640)
    assert invariants_of(check(alone).violations).count("clock") == 2


def test_a_status_with_no_instance_claims_nothing() -> None:
    # Seed 18 (bf6a1a8): the VRRP process killed; its VIPs released at once and /status
    # answered with no instance until the respawned one reported BACKUP 5.3 s later.
    holders = [Holders(2782.6, "dir1", True), Holders(2782.665, "dir1", False),
               Holders(2789.602, "dir1", True)]
    statuses = [Status(2782.666, "dir1", "MASTER")]
    statuses += [Status(2783.0 + 0.3 * i, "dir1", "NO_INSTANCE") for i in range(16)]
    statuses += [Status(2787.981, "dir1", "BACKUP"), Status(2790.069, "dir1", "MASTER")]
    obs = Observations(faults=(), holders=holders, statuses=statuses, end=2795)
    assert [v for v in check(obs).violations if v.invariant == "truthful_status"] == []
    # A status that did not answer at all proves nothing: the claim runs on.
    silent = [s if s.state != "NO_INSTANCE" else Status(s.t, s.director, None)
              for s in statuses]
    obs = Observations(faults=(), holders=holders, statuses=silent, end=2795)
    assert "truthful_status" in invariants_of(check(obs).violations)


def test_an_invalid_reload_is_rejected_and_never_restarts_the_daemon() -> None:
    bad = Fault(10.0, "reload_invalid", "dir1")
    procs = [Proc(9.0, "dir1", 100, 20, 40000, 0), Proc(16.0, "dir1", 100, 20, 40000, 0)]
    rejected = Observations(faults=(bad,), procs=procs, end=20,
                            events=[Event(10.4, "dir1", "config.reload.rejected")])
    assert check(rejected).violations == ()
    applied = Observations(faults=(bad,), procs=procs, end=20,
                           events=[Event(10.4, "dir1", "config.reload.applied")])
    assert invariants_of(check(applied).violations) == ["config_integrity"] * 2
    restarted = Observations(faults=(bad,), end=20,
                             procs=[procs[0], Proc(16.0, "dir1", 222, 20, 40000, 0)],
                             events=[Event(10.4, "dir1", "config.reload.rejected")])
    found = check(restarted).violations
    assert invariants_of(found) == ["config_integrity"] and "restarted" in found[0].what


def test_a_reload_sent_to_a_daemon_still_starting_is_no_restart() -> None:
    # dir1 killed at 100 and restarted at 102.5; on the loaded guest it logs
    # director.started at 117.5, right after the reload signalled at 117.0.
    kill = Fault(100.0, "kill_daemon", "dir1", 2.5)
    reload = Fault(117.0, "reload_valid", "dir1")
    procs = [Proc(99.0, "dir1", 100, 20, 40000, 0), Proc(103.0, "dir1", 200, 20, 40000, 0),
             Proc(125.0, "dir1", 200, 20, 40000, 0)]
    starting = [Event(117.5, "dir1", "director.started"),
                Event(117.6, "dir1", "config.reload.applied")]
    found = check(Observations(faults=(kill, reload), procs=procs, events=starting,
                               end=130)).violations
    assert "config_integrity" not in invariants_of(found)
    # The same daemon up since 110: a director.started after the reload is a restart.
    up = [Event(110.0, "dir1", "director.started"), *starting]
    found = check(Observations(faults=(kill, reload), procs=procs, events=up,
                               end=130)).violations
    assert invariants_of(found) == ["config_integrity"] and "restarted" in found[0].what


def test_a_kill_after_a_reload_is_not_the_reload_restarting_the_daemon() -> None:
    # Rejected at 813.4; the daemon is killed at 818.1 and comes back as pid 300.
    reload = Fault(813.0, "reload_bad_interface", "dir1")
    kill = Fault(818.1, "kill_daemon", "dir1", 2.3)
    procs = [Proc(812.0, "dir1", 200, 20, 40000, 0), Proc(817.0, "dir1", 200, 20, 40000, 0),
             Proc(819.0, "dir1", 300, 20, 40000, 0), Proc(830.0, "dir1", 300, 20, 40000, 0)]
    events = [Event(813.4, "dir1", "config.reload.rejected"),
              Event(827.9, "dir1", "director.started")]
    found = check(Observations(faults=(reload, kill), procs=procs, events=events,
                               end=840)).violations
    assert "config_integrity" not in invariants_of(found)
    # Without the kill, the new pid after the reload is a restart.
    found = check(Observations(faults=(reload,), procs=procs, events=events[:1],
                               end=840)).violations
    assert invariants_of(found) == ["config_integrity"] and "restarted" in found[0].what


def test_hygiene_zombies_descriptors_scripts() -> None:
    procs = [Proc(t, "dir1", 100, fds, 40000, zombies, scripts)
             for t, fds, zombies, scripts in (
                 (1.0, 30, 0, frozenset({7})), (2.0, 30, 1, frozenset({7})),
                 (3.0, 900, 1, frozenset()), (6.5, 30, 1, frozenset({9})),
                 (7.0, 30, 0, frozenset({9})))]
    found = check(Observations(faults=(), procs=procs, end=10)).violations
    assert invariants_of(found) == ["hygiene", "hygiene"]
    assert "1 zombie(s) for more than 3 s" in found[0].what
    assert "900 open descriptors" in found[1].what
    long_script = [Proc(t, "dir1", 100, 30, 40000, 0, frozenset({7})) for t in (1.0, 5.0)]
    found = check(Observations(faults=(), procs=long_script, end=10)).violations
    assert invariants_of(found) == ["hygiene"] and "script pid 7" in found[0].what
    stopped = Observations(faults=(Fault(0.5, "stop_child", "dir1", 4.0),),
                           procs=long_script, end=10)
    assert check(stopped).violations == ()


def test_a_vrrp_child_not_yet_named_is_not_a_script() -> None:
    # Respawned at 630 as pid 1335, it names itself haipvs-vrrp only at 633.5 on the
    # starved guest: until then it is one more descendant of the daemon.
    procs = [Proc(t, "dir1", 100, 30, 40000, 0, frozenset({1335}) if t < 633.5 else frozenset(),
                  None if t < 633.5 else 1335)
             for t in (630.4, 631.4, 632.4, 633.5, 634.5)]
    assert check(Observations(faults=(), procs=procs, end=640)).violations == ()
    # A real script that lives as long is still caught.
    hung = [Proc(t, "dir1", 100, 30, 40000, 0, frozenset({1336}), 1335)
            for t in (630.4, 631.4, 632.4, 633.5, 634.5)]
    found = check(Observations(faults=(), procs=hung, end=640)).violations
    assert invariants_of(found) == ["hygiene"] and "script pid 1336" in found[0].what


def test_rss_growth_is_measured_and_bounded_on_long_series() -> None:
    # 1 MiB per minute: 60 MiB/h, over 20 minutes.
    procs = [Proc(60.0 * i, "dir1", 100, 30, 40000 + 1024 * i, 0) for i in range(21)]
    verdict = check(Observations(faults=(), procs=procs, end=1300))
    assert verdict.figures["rss_growth_mib_per_h"] == pytest.approx(60.0)
    assert verdict.figures["rss_series_judged"] == 1
    assert invariants_of(verdict.violations) == ["hygiene"]
    short = [p for p in procs if p.t <= 300]
    verdict = check(Observations(faults=(), procs=short, end=400))
    assert verdict.violations == ()  # too short to judge: reported apart, not as judged
    assert verdict.figures["rss_growth_mib_per_h"] == 0.0
    assert verdict.figures["rss_series_judged"] == 0
    assert verdict.figures["rss_growth_short_series_mib_per_h"] == pytest.approx(60.0)


def test_rss_set_once_early_is_start_up_and_a_late_climb_is_judged() -> None:
    # As the soak measured: +3 MiB in steps over the first 7 minutes (the first idle-API
    # burst, the first reload), then flat for 13: the whole series climbs 9 MiB/h, its
    # later half does not climb at all.
    def rss(t: float) -> int:
        return 58000 + 1024 * min(3, int(t // 140))

    early = [Proc(10.0 * i, "dir1", 100, 30, rss(10.0 * i), 0) for i in range(121)]
    verdict = check(Observations(faults=(), procs=early, end=1300))
    assert verdict.violations == ()
    assert verdict.figures["rss_growth_mib_per_h"] == pytest.approx(0.0)
    assert verdict.figures["rss_growth_whole_series_mib_per_h"] == pytest.approx(9.0, abs=0.5)
    assert verdict.figures["rss_series_judged"] == 1
    # The same steps in the later half are growth the judge cannot tell from a leak.
    late = [Proc(p.t, "dir1", 100, 30, 58000 + 1024 * max(0, int((p.t - 700) // 140)), 0)
            for p in early]
    verdict = check(Observations(faults=(), procs=late, end=1300))
    assert invariants_of(verdict.violations) == ["hygiene"]
    assert "over the later 600 s of its 1200 s" in verdict.violations[0].what


def test_a_violation_line_names_the_seed_the_time_and_the_last_faults() -> None:
    faults = generate(42, 120)
    violation = Violation(faults[2].at + 1.0, "one_holder", "two VIP holders for 1.20 s")
    line = describe(violation, 42, faults)
    assert line.startswith(f"VIOLATION seed=42 t={violation.t:.1f}s one_holder: ")
    assert "--seed 42" in line
    for fault in faults[:3]:
        assert fault.describe() in line


# --------------------------------------------------------------------- lab helpers' pure parts


def test_probe_reads_real_servers_from_proc_net_ip_vs() -> None:
    from haipvs.lab.nemesis.probe import parse_ip_vs

    text = """IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port Forward Weight ActiveConn InActConn
TCP  C633640A:0050 rr
  -> 0A00000D:0050      Masq    1      0          0
  -> 0A00000C:0050      Masq    3      0          2
"""
    assert parse_ip_vs(text) == {"10.0.0.13": 1, "10.0.0.12": 3}
    assert parse_ip_vs("IP Virtual Server version 1.2.1 (size=4096)\n") == {}


def test_flood_packets_are_vrrp_garbage_from_random_unicast_sources() -> None:
    import random
    import socket

    from haipvs.lab.faults import _checksum, garbage_advert

    rng = random.Random(3)
    packets = [garbage_advert(rng, "224.0.0.18", 51) for _ in range(200)]
    sources = {p[12:16] for p in packets}
    assert len(sources) > 190
    for packet in packets:
        assert packet[0] == 0x45 and packet[8] == 255 and packet[9] == 112
        assert _checksum(packet[:20]) == 0  # a valid IPv4 header: it reaches the socket
        assert packet[16:20] == socket.inet_aton("224.0.0.18")
        assert packet[20] == 0x31 and packet[21] == 51 and packet[22] == 254
        assert 1 <= packet[12] < 0xDF  # unicast, never multicast or reserved


def test_a_daemon_that_exits_on_its_own_is_a_violation() -> None:
    from haipvs.lab.nemesis.invariants import DAEMON_DIED

    bad = Fault(10.0, "reload_bad_interface", "dir1")
    obs = Observations(faults=(bad,), end=20, events=[
        Event(10.5, "dir1", DAEMON_DIED, {"exit": "exit status 1"})])
    found = check(obs).violations
    assert invariants_of(found) == ["config_integrity", "daemon_alive"]
    assert "no config.reload.rejected" in found[0].what
    assert "exit status 1" in found[1].what


def stall_events() -> list[Event]:
    rs = "10.0.0.11:80"
    return [Event(20.0, "dir1", "check.down", {"rs": rs}),
            Event(20.4, "dir2", "check.down", {"rs": rs}),
            Event(20.1, "dir1", "ipvs.dest.drain.started", {"rs": rs}),
            Event(21.5, "dir1", "check.up", {"rs": rs}),
            Event(21.6, "dir1", "ipvs.dest.updated", {"rs": rs, "weight": 1})]


def test_a_backend_both_directors_saw_stall_explains_its_ops() -> None:
    verdict = check(Observations(faults=(), events=stall_events(), end=30))
    assert verdict.violations == ()
    assert verdict.figures["backend_stalls"] == 1
    alone = [e for e in stall_events() if e.director == "dir1"]
    found = check(Observations(faults=(), events=alone, end=30)).violations
    assert invariants_of(found) == ["no_op_without_change"] * 2
    assert "after check.down rs=10.0.0.11:80" in found[0].what


def test_a_stall_during_a_flood_is_the_finding_not_an_excuse() -> None:
    flood = Fault(18.0, "flood", "group", 3.0)
    found = check(Observations(faults=(flood,), events=stall_events(), end=30)).violations
    assert invariants_of(found) == ["no_op_without_change"] * 2


def paced(start: float, end: float, every: float = 0.02) -> list[float]:
    return [start + i * every for i in range(round((end - start) / every) + 1)]


def test_guest_stalls_are_gaps_in_the_clients_fixed_schedule() -> None:
    sends = paced(10.0, 12.0) + paced(12.6, 14.0) + paced(14.2, 15.0)
    assert guest_stalls(sends, 0.25) == [(pytest.approx(12.0), pytest.approx(12.6))]
    assert guest_stalls(paced(10.0, 20.0), 0.25) == []


def test_a_guest_stall_just_before_a_one_sided_check_down_explains_its_ops() -> None:
    alone = [e for e in stall_events() if e.director == "dir1"]  # check.down at 20.0
    sends = paced(10.0, 18.9) + paced(19.5, 30.0)  # the guest did not run 18.9-19.5
    verdict = check(Observations(faults=(), events=alone, end=30, client_requests=answered(sends)))
    assert verdict.violations == ()
    assert verdict.figures["guest_stalls"] == 1
    assert verdict.figures["guest_stall_max_ms"] == 600


@pytest.mark.parametrize(("gap_from", "gap_to"), [
    (16.0, 17.0),  # ended 3 s before the check.down: longer ago than a fall takes
    (20.5, 21.0),  # after the check.down: it cannot have caused it
])
def test_a_guest_stall_away_from_the_check_down_explains_nothing(
        gap_from: float, gap_to: float) -> None:
    alone = [e for e in stall_events() if e.director == "dir1"]
    sends = paced(10.0, gap_from) + paced(gap_to, 30.0)
    found = check(Observations(faults=(), events=alone, end=30,
                               client_requests=answered(sends))).violations
    assert invariants_of(found) == ["no_op_without_change"] * 2


def test_a_short_hiccup_of_the_client_is_no_guest_stall() -> None:
    alone = [e for e in stall_events() if e.director == "dir1"]
    sends = paced(10.0, 19.5) + paced(19.7, 30.0)  # 0.2 s: under the bound
    found = check(Observations(faults=(), events=alone, end=30,
                               client_requests=answered(sends))).violations
    assert invariants_of(found) == ["no_op_without_change"] * 2


def test_a_guest_stall_during_a_flood_is_the_finding_not_an_excuse() -> None:
    flood = Fault(18.0, "flood", "group", 3.0)
    alone = [e for e in stall_events() if e.director == "dir1"]
    sends = paced(10.0, 18.9) + paced(19.5, 30.0)
    found = check(Observations(faults=(flood,), events=alone, end=30,
                               client_requests=answered(sends))).violations
    assert invariants_of(found) == ["no_op_without_change"] * 2


def test_a_clock_step_is_not_blamed_for_a_check_down_a_guest_stall_explains() -> None:
    # The guest stopped running 19.0-19.6; two checks timed out; the check.down is read
    # at 20.0, 0.1 s after a clock step whose own effect must still be nil.
    step = Fault(19.9, "clock_step", "", 3.0, {"step_s": 86400.0})
    alone = [e for e in stall_events() if e.director == "dir1"]
    sends = paced(10.0, 19.0) + paced(19.6, 30.0)
    assert check(Observations(faults=(step,), events=alone, end=30,
                              client_requests=answered(sends))).violations == ()
    found = check(Observations(faults=(step,), events=alone, end=30,
                               client_requests=answered(paced(10.0, 30.0)))).violations
    assert set(invariants_of(found)) == {"clock", "no_op_without_change"}
    # a VRRP transition after the step is never explained by a stall
    moved = [*alone, Event(21.0, "dir1", "vrrp.transition", {"to_state": "BACKUP"})]
    found = check(Observations(faults=(step,), events=moved, end=30,
                               client_requests=answered(sends))).violations
    assert invariants_of(found) == ["clock"]


def cpu_series(director: str, shares: list[tuple[float, float]]) -> list[Proc]:
    """One sample a second from t=10: (seconds, share of a CPU used in that second)."""
    procs, used = [], 0.0
    for t, share in shares:
        used += share
        procs.append(Proc(t, director, 100, 10, 1000, 0, cpu_s=used))
    return procs


def test_cpu_share_is_measured_from_the_samples_around_the_window() -> None:
    procs = cpu_series("dir1", [(float(t), 0.2 if t < 20 else 0.9) for t in range(10, 31)])
    assert cpu_share(procs, "dir1", 13.0, 16.0) == pytest.approx(0.2)
    assert cpu_share(procs, "dir1", 23.0, 26.0) == pytest.approx(0.9)
    assert cpu_share(procs, "dir2", 13.0, 16.0) is None
    # a restart resets the counter: the step down counts as nothing used
    restarted = [*cpu_series("dir1", [(10.0, 0.0), (11.0, 5.0)]),
                 Proc(12.0, "dir1", 101, 10, 1000, 0, cpu_s=0.1)]
    assert cpu_share(restarted, "dir1", 10.5, 11.5) == pytest.approx(2.5)


def test_under_api_idle_a_guest_stall_excuses_a_check_down_only_if_the_daemon_was_idle() -> None:
    api = Fault(15.0, "api_idle", "dir1", 8.0)
    alone = [e for e in stall_events() if e.director == "dir1"]
    sends = paced(10.0, 18.9) + paced(19.5, 30.0)
    idle = cpu_series("dir1", [(float(t), 0.1) for t in range(10, 31)])
    busy = cpu_series("dir1", [(float(t), 0.8) for t in range(10, 31)])
    assert check(Observations(faults=(api,), events=alone, end=30, client_requests=answered(sends),
                              procs=idle)).violations == ()
    found = check(Observations(faults=(api,), events=alone, end=30, client_requests=answered(sends),
                               procs=busy)).violations
    assert invariants_of(found) == ["no_op_without_change"] * 2
    # without samples the fault's own rule stands: the finding
    found = check(Observations(faults=(api,), events=alone, end=30,
                               client_requests=answered(sends))).violations
    assert invariants_of(found) == ["no_op_without_change"] * 2


def test_a_table_sampled_before_the_drift_took_effect_is_no_repair() -> None:
    # Inside the window the kernel may not be cleared yet: a full table there is the old
    # one, not a repair. Counted from the window's start, a drift never repaired passed.
    tables = [Table(9.9, "dir1", FULL), Table(10.1, "dir1", FULL), Table(10.3, "dir1", {}),
              Table(19.0, "dir1", {})]
    windowed = Fault(10.0, "ipvs_drift", "dir1", 0.4)
    found = check(Observations(faults=(windowed,), tables=tables, end=20)).violations
    assert invariants_of(found) == ["drift_repaired"]


def test_the_probe_tells_a_status_with_no_instance_from_no_answer() -> None:
    # Seed 18 of bf6a1a8: between a killed VRRP process and its respawn, /status answers
    # with no instance; the probe wrote null ("did not answer"), the judge skipped those
    # samples and carried the last MASTER over the 5.3 s the VIP was (rightly) gone.
    import http.server
    import io
    import threading

    from haipvs.lab.nemesis.probe import NO_INSTANCE, _status_loop, _Writer

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"instances": []}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    def first_state(url: str) -> object:
        out = io.StringIO()
        stop = threading.Event()
        loop = threading.Thread(target=_status_loop, args=(_Writer(out), url, stop))
        loop.start()
        for _ in range(200):
            if out.getvalue():
                break
            stop.wait(0.05)
        stop.set()
        loop.join(5)
        return json.loads(out.getvalue().splitlines()[0])["state"]

    server = http.server.HTTPServer(("127.0.0.1", 0), Answer)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert first_state(f"http://127.0.0.1:{port}/status") == NO_INSTANCE
    finally:
        server.shutdown()
        server.server_close()
    assert first_state(f"http://127.0.0.1:{port}/status") is None  # nobody answers
