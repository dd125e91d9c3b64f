"""Seed ranges and per-seed summary lines, so a long nemesis run can be done in parts.

Pure: a run of 20 seeds x 15 min (5 h of lab) does not fit one sitting, so the bench
runs a range of seeds (``--seeds 8-14``) and appends one ``SEED`` line per finished
seed to a results file; ``--sum FILE`` then folds every part into one ``RESULT`` line.
Parts are summed honestly or not at all: lines measured on different commits, with a
different fault mix or seed length, or the same seed twice, are refused with the line
that disagrees, never averaged into one figure.

A line is ``SEED seed=S key=value ...``: counts (faults, violations, client requests)
add up over seeds, every other figure is a worst case (``*_max_ms``, RSS growth) and
keeps its largest value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["SUMMED", "SeedRun", "combine", "parse_seed_line", "parse_seeds", "seed_line"]

#: Figures that add up over seeds; the rest are worst cases.
SUMMED = frozenset({"faults", "invariant_violations", "client_failed", "client_requests",
                    "lab_seconds", "rss_series_judged"})
#: Every part of one long run must agree on these.
SAME_RUN = ("commit", "mix", "minutes_per_seed")
_PREFIX_SUMMED = ("violations_",)
_FIELD = re.compile(r"(\w+)=(\S+)")


def parse_seeds(spec: str, first: int = 1) -> tuple[int, ...]:
    """``"3"``: three seeds from `first` on (the bench's old meaning); ``"8-14"``: the
    seeds 8 to 14, both included; ``"1,4,9"``: those seeds."""
    text = spec.strip()
    try:
        if "," in text:
            seeds = tuple(int(part) for part in text.split(","))
        elif "-" in text.lstrip("-"):
            low, _, high = text.partition("-")
            seeds = tuple(range(int(low), int(high) + 1))
        else:
            seeds = tuple(range(first, first + int(text)))
    except ValueError:
        raise ValueError(f"--seeds {spec!r}: expected a count (3), a range (8-14) "
                         "or a list (1,4,9)") from None
    if not seeds:
        raise ValueError(f"--seeds {spec!r} names no seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds {spec!r} names a seed twice")
    return seeds


def _number(text: str) -> float:
    value = float(text)
    return int(value) if value.is_integer() else value


def seed_line(seed: int, run: Mapping[str, str], figures: Mapping[str, float]) -> str:
    """One seed's line: ``SEED seed=S commit=... mix=... minutes_per_seed=... figures``."""
    parts = [f"seed={seed}"]
    parts += [f"{key}={run[key]}" for key in SAME_RUN]
    parts += [f"{key}={_number(str(value))}" for key, value in figures.items()]
    return "SEED " + " ".join(parts)


@dataclass(frozen=True, slots=True)
class SeedRun:
    seed: int
    run: Mapping[str, str]  # the SAME_RUN keys
    figures: Mapping[str, float]


def parse_seed_line(line: str, where: str = "") -> SeedRun:
    fields = dict(_FIELD.findall(line))
    missing = [key for key in ("seed", *SAME_RUN) if key not in fields]
    if not line.startswith("SEED ") or missing:
        raise ValueError(f"{where}not a nemesis seed line (missing {missing or 'SEED'}): "
                         f"{line.strip()[:120]!r}")
    figures: dict[str, float] = {}
    for key, value in fields.items():
        if key == "seed" or key in SAME_RUN:
            continue
        try:
            figures[key] = _number(value)
        except ValueError:
            raise ValueError(f"{where}{key}={value!r} is not a number") from None
    return SeedRun(int(fields["seed"]), {key: fields[key] for key in SAME_RUN}, figures)


def combine(lines: Iterable[tuple[str, str]]) -> tuple[tuple[int, ...], dict[str, str],
                                                         dict[str, float]]:
    """(where, line) pairs of one or more results files -> (seeds, run, figures).

    Blank lines and lines not starting with ``SEED`` (comments, a partial last line
    of a run that was cut) are skipped; a seed line that disagrees with the first on
    commit, mix or seed length, or repeats a seed, is a ValueError naming where it is.
    """
    seeds: list[int] = []
    run: dict[str, str] | None = None
    first_where = ""
    figures: dict[str, float] = {}
    for where, line in lines:
        if not line.startswith("SEED "):
            continue
        one = parse_seed_line(line, f"{where}: ")
        if run is None:
            run, first_where = dict(one.run), where
        for key in SAME_RUN:
            if one.run[key] != run[key]:
                raise ValueError(f"{where}: seed {one.seed} has {key}={one.run[key]}, "
                                 f"{first_where} has {key}={run[key]}: not one run")
        if one.seed in seeds:
            raise ValueError(f"{where}: seed {one.seed} appears twice")
        seeds.append(one.seed)
        for key, value in one.figures.items():
            if key in SUMMED or key.startswith(_PREFIX_SUMMED):
                figures[key] = figures.get(key, 0) + value
            else:
                figures[key] = max(figures.get(key, value), value)
    if run is None:
        raise ValueError("no SEED line in the results given")
    return tuple(sorted(seeds)), run, figures
