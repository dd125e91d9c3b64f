"""Seed -> fault schedule: the same seed always gives the same faults at the same times.

Pure: no clock, no IO; `random.Random(seed)` is the only source of choice, so a seed
printed next to a violation replays the exact schedule (``bench/nemesis.py --seed N``).

One fault at a time: each fault has a start (seconds from the run's start) and a
duration (how long it is held: a SIGSTOP until its SIGCONT, a partition until it heals,
a crashed backend until it returns; 0 for instant faults), and the next one starts
5-20 s after the previous one started, never before the previous one ended plus the
time its kind needs to settle (a killed daemon restarting, a stepped clock restored).

Kinds are drawn from a shuffled bag: every kind once, in a random order, before any
kind comes twice (the Tetris randomizer). A run of N faults then covers min(N, kinds)
kinds, so even a CI-sized run of a few minutes meets nearly every fault, where
independent draws left whole kinds out of most short runs.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = [
    "ALL_KINDS",
    "BACKEND_NAMES",
    "CI_KINDS",
    "DIRECTOR_NAMES",
    "KINDS",
    "Fault",
    "Kind",
    "generate",
]

DIRECTOR_NAMES = ("dir1", "dir2")
BACKEND_NAMES = ("rs1", "rs2", "rs3")
MIN_SPACING, MAX_SPACING = 5.0, 20.0
FIRST_AT = (5.0, 10.0)
CLOCK_STEPS = (3600.0, -3600.0, 86400.0, -86400.0)
IDLE_API_CONNECTIONS = 600


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    targets: tuple[str, ...]  # "" for faults without a target
    duration: tuple[float, float]  # (min, max) seconds held; (0, 0): instant
    settle: float  # seconds after the fault's end before the next may start
    #: The directors cannot hear each other while it lasts: two VIP holders are the
    #: protocol's answer (RFC 5798 §6.4.3 master-down), not a fault of the daemon.
    separates: bool = False


KINDS: Mapping[str, Kind] = {kind.name: kind for kind in (
    # The daemon (its whole process; its VRRP child dies with it) and restarted as
    # systemd's Restart= would, after the duration.
    Kind("kill_daemon", DIRECTOR_NAMES, (1.0, 4.0), 8.0, separates=True),
    # The VRRP child alone: the daemon must notice and respawn it.
    Kind("kill_child", DIRECTOR_NAMES, (0.0, 0.0), 5.0, separates=True),
    Kind("stop_daemon", DIRECTOR_NAMES, (1.0, 5.0), 3.0),
    Kind("stop_child", DIRECTOR_NAMES, (1.0, 4.0), 3.0, separates=True),
    Kind("partition", ("",), (2.0, 6.0), 3.0, separates=True),
    Kind("netem", DIRECTOR_NAMES, (3.0, 8.0), 3.0, separates=True),
    Kind("link_flap", DIRECTOR_NAMES, (1.0, 4.0), 4.0, separates=True),
    Kind("clock_step", ("",), (2.0, 6.0), 3.0),
    Kind("reload_valid", DIRECTOR_NAMES, (0.0, 0.0), 3.0),
    Kind("reload_invalid", DIRECTOR_NAMES, (0.0, 0.0), 3.0),
    Kind("backend_crash", BACKEND_NAMES, (4.0, 8.0), 4.0),
    Kind("api_idle", DIRECTOR_NAMES, (3.0, 8.0), 3.0),
    Kind("flood", ("group", "vip"), (1.0, 4.0), 3.0),
    Kind("ipvs_drift", DIRECTOR_NAMES, (0.0, 0.0), 4.0),
    # A file check-config accepts whose VRRP part this host cannot run (an interface it
    # lacks): the reload must fail whole, the running config and daemon stay.
    Kind("reload_bad_interface", DIRECTOR_NAMES, (0.0, 0.0), 3.0),
)}
ALL_KINDS = tuple(KINDS)
#: The mix a CI run uses: every kind (a full-mix run is clean since the checker stopped
#: counting timeouts whose deadline fired while it was not running).
CI_KINDS = ALL_KINDS


@dataclass(frozen=True, slots=True)
class Fault:
    at: float  # seconds since the start of the run
    kind: str
    target: str = ""
    duration: float = 0.0
    params: Mapping[str, float] = field(default_factory=dict)

    @property
    def end(self) -> float:
        return self.at + self.duration

    def describe(self) -> str:
        where = f" {self.target}" if self.target else ""
        extra = "".join(f" {key}={value:g}" for key, value in sorted(self.params.items()))
        held = f" for {self.duration:.1f}s" if self.duration else ""
        return f"t={self.at:.1f}s {self.kind}{where}{extra}{held}"


def _params(kind: str, rng: random.Random) -> dict[str, float]:
    if kind == "netem":
        return {"loss_pct": float(rng.choice((5, 10, 20, 30))),
                "delay_ms": float(rng.choice((0, 20, 50, 100)))}
    if kind == "clock_step":
        return {"step_s": rng.choice(CLOCK_STEPS)}
    if kind == "reload_valid":
        return {"rs2_weight": float(rng.randint(1, 3))}
    if kind == "api_idle":
        return {"connections": float(IDLE_API_CONNECTIONS)}
    return {}


def generate(seed: int, seconds: float, kinds: Iterable[str] = ALL_KINDS) -> tuple[Fault, ...]:
    """The faults of a run of `seconds` for `seed`, drawn from `kinds` (in time order);
    every fault ends, and settles, before `seconds`."""
    chosen = tuple(kinds)
    unknown = [k for k in chosen if k not in KINDS]
    if not chosen or unknown:
        raise ValueError(f"unknown or no fault kinds: {unknown or 'none given'}")
    rng = random.Random(seed)
    faults: list[Fault] = []
    bag: list[str] = []
    at = rng.uniform(*FIRST_AT)
    while True:
        if not bag:
            bag = list(chosen)
            rng.shuffle(bag)
        kind = KINDS[bag.pop()]
        low, high = kind.duration
        duration = round(rng.uniform(low, high), 1) if high else 0.0
        target = rng.choice(kind.targets)
        fault = Fault(round(at, 1), kind.name, target, duration, _params(kind.name, rng))
        if fault.end + kind.settle > seconds:
            break
        faults.append(fault)
        at = fault.at + rng.uniform(max(MIN_SPACING, duration + kind.settle), MAX_SPACING)
    return tuple(faults)
