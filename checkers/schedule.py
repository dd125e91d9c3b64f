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
   due within ``PROBE_BATCH`` after it starts with it. Each wake-up of the
   event loop has a fixed cost (the timer, an ``epoll_wait``, and in a VM the
   exit); at 500 checks/s spread at random each check would otherwise pay it
   alone, twice (its start, then its connect completing), and the starts of
   one batch also complete together. A start is at most ``PROBE_BATCH`` early
   and never late for it (Linux's timer slack coalesces the same way, only
   later); each probe keeps its own grid (rule 3 counts from its deadline).

Pure: time arrives as ``now``; deadlines are returned, never slept on.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from checkers.spec import Timing

__all__ = [
    "PROBE_BATCH",
    "batch_end",
    "first_probe_at",
    "next_probe_at",
    "probe_interval",
    "shared_interval",
]

# Seconds of probe starts batched into one wake-up (rule 5): at most that early.
# No more than the shortest check interval the config allows (0.01 s), so a start
# is never more than one interval early (and one probe of a check runs at a time).
PROBE_BATCH = 0.01


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
