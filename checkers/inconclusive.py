"""When a failed probe is no evidence about its real server: the checker was not running.

A probe's timeout says "the real server did not answer within ``timeout``" only if the
checker was running while that time passed. When the daemon was stopped (SIGSTOP, a
debugger, a frozen cgroup) or its host starved it, every deadline due meanwhile fires at
once on resume, already far past; the answers the servers sent may still sit unread in
socket buffers (the timer runs before the rest of the exchange), or, when the whole host
was starved, the servers did not run either. Counting those timeouts flips healthy
servers down on every director that was paused, and the IPVS table churns for nothing.

Rules kept here (pure: times arrive as arguments, nothing is slept on):

1. An attempt is *inconclusive* when it failed and ended more than ``LATE_BOUND`` after
   its own timeout allowed (``latency - timeout > LATE_BOUND``): its deadline fired that
   late, so the event loop was late. A success is always evidence (the server answered),
   and so is a failure that came within the bound (a refusal, a timeout on time).
2. An inconclusive attempt moves neither rise nor fall: the probe is run again at once.
3. Only once: a second inconclusive attempt in a row counts as a normal failure, so a
   daemon that stays starved still converges (one extra attempt per scheduled probe,
   never a check that never ends). A conclusive attempt resets the count.
4. Any other deadline of the checker (the hung-probe watchdog) that fires more than
   ``LATE_BOUND`` late judges nothing on that round: it looks again at its next one.
5. One log line per episode, not per probe: an inconclusive attempt more than
   ``EPISODE_GAP`` after the previous one starts a new episode; every one is counted.

The bound sits far above the loop's ordinary lateness (tens of milliseconds with
thousands of checks a second, see docs/benchmarks.md) and far below the pauses it is
for (a stopped daemon: seconds). A dead server costs at most one extra timeout per
scheduled probe while the loop is that late, and nothing otherwise. The VRRP side has
no such rule on purpose: a stopped master must lose its mastership (RFC 9568 6.4.2,
the backup's Master_Down_Timer is the protocol).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["EPISODE_GAP", "LATE_BOUND", "LateDeadlines", "Verdict", "late_beyond_bound"]

# Seconds a deadline may fire after its time and still be taken as on time (rule 1).
LATE_BOUND: Final = 0.2
# Seconds without an inconclusive attempt that end an episode (rule 5).
EPISODE_GAP: Final = 10.0


def late_beyond_bound(due: float, fired: float, bound: float = LATE_BOUND) -> bool:
    """Whether a deadline due at ``due`` that fired at ``fired`` was late past ``bound``."""
    return fired - due > bound


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the pool does with one attempt's result.

    rerun:       drop the result and start the probe again now (rules 1-2).
    new_episode: the first inconclusive attempt of an episode: log one line (rule 5).
    late_by:     seconds the attempt's deadline fired after its time (0.0 when on time).
    """

    rerun: bool
    new_episode: bool = False
    late_by: float = 0.0


_CONCLUSIVE: Final = Verdict(rerun=False)


class LateDeadlines:
    """Judges attempts by rules 1-3 and 5; the caller keeps, per probe, whether the
    attempt judged is itself the re-run of an inconclusive one (``rerun``)."""

    __slots__ = ("_bound", "_episode_gap", "_last", "inconclusive")

    def __init__(self, bound: float = LATE_BOUND, episode_gap: float = EPISODE_GAP) -> None:
        self._bound = bound
        self._episode_gap = episode_gap
        self._last: float | None = None
        # inconclusive attempts seen (re-run or, the second in a row, counted)
        self.inconclusive = 0

    def judge(
        self, *, ok: bool, latency: float, timeout: float, rerun: bool, now: float
    ) -> Verdict:
        """The verdict on one attempt that ended at ``now`` after ``latency`` seconds."""
        late_by = latency - timeout
        if ok or late_by <= self._bound:
            return _CONCLUSIVE
        self.inconclusive += 1
        new_episode = self._last is None or now - self._last > self._episode_gap
        self._last = now
        if rerun:
            # rule 3: the re-run was late too; count it, the next probe may re-run again
            return Verdict(rerun=False, new_episode=new_episode, late_by=late_by)
        return Verdict(rerun=True, new_episode=new_episode, late_by=late_by)
