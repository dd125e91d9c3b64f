"""When to probe next: interval, fast interval, down interval and warm-up spread.

Rules kept here:

1. The first probe of a check waits a random delay so that N checks created
   at once (daemon start, a reload adding a service) do not fire together:
   uniform in ``[0, warmup]`` (keepalived ``warmup``), or in ``[0, interval)``
   when ``warmup`` is None (HAProxy spreads its first checks over ``inter``).
   The randomness comes from an injected ``random.Random``.
2. After a result, the next probe comes ``fast_interval`` later while the state
   is in doubt (a rise or fall count is running: HAProxy ``fastinter``),
   ``down_interval`` later while settled DOWN (HAProxy ``downinter``), and
   ``interval`` later otherwise. Unset intervals fall back to ``interval``.
3. Each probe keeps its own grid: the next deadline is the previous
   *deadline* plus the interval, not the previous end. A stalled event loop
   then delays one round only, and the warm-up spread is never lost (if the
   next deadline counted from the end, every probe delayed by one stall
   would stay bunched with the others forever). A probe that outlasts its
   interval counts from its end instead (keepalived re-arms ``delay_loop``
   when a check completes), so a slow server is never probed twice at once.
4. One probe shared by several backends (same CheckKey) runs at the shortest
   interval any of them asks for: every backend gets results at least as
   often as it wants.
5. Probe starts are batched: when the timer fires for one probe, every probe
   whose start may come early enough starts with it. A start may come 1 % of
   the interval it follows early (``PROBE_EARLY_SHARE``: the gap between two
   starts of a check stays at least 99 % of its interval), never less than
   ``PROBE_BATCH`` and never more than the pool's batch (``PROBE_BATCH_MAX`` by
   default). Each wake-up of the event loop has a fixed cost (the timer, an
   ``epoll_wait``, clock reads, and in a VM the exits), and the starts of one
   batch also complete together, in one more wake-up: at 500 checks/s spread at
   random, a 10 ms batch still woke the loop about once per three checks, where
   a 20 ms (2 s interval) or 50 ms (10 s and more) batch shares each wake-up
   between 10 and 25. A start is never late for it (Linux's timer slack
   coalesces the same way, only later); each probe keeps its own grid (rule 3
   counts from its deadline).

Pure: time arrives as ``now``; deadlines are returned, never slept on.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from checkers.spec import Timing

__all__ = [
    "PROBE_BATCH",
    "PROBE_BATCH_MAX",
    "PROBE_EARLY_SHARE",
    "batch_end",
    "first_probe_at",
    "next_probe_at",
    "probe_early",
    "probe_interval",
    "shared_interval",
]

# Seconds of probe starts batched into one wake-up (rule 5): at most that early.
# No more than the shortest check interval the config allows (0.01 s), so a start
# is never more than one interval early (and one probe of a check runs at a time).
PROBE_BATCH = 0.01
# The most a start may come early (rule 5), whatever its interval: about what a
# health check's own timing jitters by (a connect on a LAN, a scheduler tick).
PROBE_BATCH_MAX = 0.05
# The share of its interval a start may come early (rule 5).
PROBE_EARLY_SHARE = 0.01


def first_probe_at(timing: Timing, now: float, rng: random.Random) -> float:
    """Deadline of the very first probe of a check created at ``now`` (rule 1)."""
    if timing.warmup is None:
        return now + rng.random() * timing.interval
    if timing.warmup == 0:
        return now
    return now + rng.uniform(0.0, timing.warmup)


def probe_interval(timing: Timing, *, up: bool, in_doubt: bool) -> float:
    """Seconds from the end of one probe to the start of the next (rule 2)."""
    if in_doubt:
        return timing.fast_interval if timing.fast_interval is not None else timing.interval
    if not up:
        return timing.down_interval if timing.down_interval is not None else timing.interval
    return timing.interval


def shared_interval(intervals: Iterable[float]) -> float:
    """The interval of a probe shared by several backends (rule 4)."""
    shortest = min(intervals, default=None)
    if shortest is None:
        raise ValueError("a shared probe needs at least one backend")
    return shortest


def next_probe_at(previous_due: float, finished: float, interval: float) -> float:
    """Deadline of the next probe after one due at ``previous_due`` ended at ``finished``."""
    due = previous_due + interval
    if due < finished:
        return finished + interval
    return due


def batch_end(fired_for: float, batch: float = PROBE_BATCH) -> float:
    """Probes due by this time start when the timer fires for ``fired_for`` (rule 5)."""
    return fired_for + batch


def probe_early(interval: float, most: float = PROBE_BATCH_MAX) -> float:
    """Seconds a start that follows the previous one by ``interval`` may come early
    to share a wake-up (rule 5): PROBE_EARLY_SHARE of it, at least PROBE_BATCH,
    at most ``most`` (the pool's batch; 0 batches nothing)."""
    return min(most, max(PROBE_BATCH, PROBE_EARLY_SHARE * interval))
