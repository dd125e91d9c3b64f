"""The nemesis's seed ranges and the folding of per-seed lines from a long run done in
parts (haipvs.lab.nemesis.summary): pure, literal lines."""

from __future__ import annotations

import pytest

from haipvs.lab.nemesis.summary import combine, parse_seed_line, parse_seeds, seed_line

RUN = {"commit": "abc123def456", "mix": "full", "minutes_per_seed": "15"}


@pytest.mark.parametrize(("spec", "first", "seeds"), [
    ("3", 1, (1, 2, 3)),
    ("2", 7, (7, 8)),
    ("8-11", 1, (8, 9, 10, 11)),
    ("5-5", 1, (5,)),
    ("1,4,9", 1, (1, 4, 9)),
])
def test_seed_specs(spec: str, first: int, seeds: tuple[int, ...]) -> None:
    assert parse_seeds(spec, first) == seeds


@pytest.mark.parametrize(("spec", "reason"), [
    ("0", "names no seed"),
    ("9-3", "names no seed"),
    ("1,1", "names a seed twice"),
    ("a-b", "expected a count (3), a range (8-14) or a list (1,4,9)"),
    ("", "expected a count (3), a range (8-14) or a list (1,4,9)"),
])
def test_bad_seed_specs_are_refused(spec: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        parse_seeds(spec)


def test_a_seed_line_reads_back() -> None:
    line = seed_line(4, RUN, {"faults": 41, "invariant_violations": 0,
                              "dual_holder_max_ms": 120.0, "rss_growth_mib_per_h": 3.5})
    assert line == ("SEED seed=4 commit=abc123def456 mix=full minutes_per_seed=15 "
                    "faults=41 invariant_violations=0 dual_holder_max_ms=120 "
                    "rss_growth_mib_per_h=3.5")
    parsed = parse_seed_line(line)
    assert parsed.seed == 4
    assert parsed.run == RUN
    assert parsed.figures == {"faults": 41, "invariant_violations": 0,
                              "dual_holder_max_ms": 120, "rss_growth_mib_per_h": 3.5}


def test_parts_sum_counts_and_keep_worst_cases() -> None:
    part1 = [seed_line(1, RUN, {"faults": 40, "invariant_violations": 1,
                                "violations_no_holder": 1, "no_holder_max_ms": 3400,
                                "client_requests": 40000, "lab_seconds": 1000}),
             seed_line(2, RUN, {"faults": 38, "invariant_violations": 0,
                                "no_holder_max_ms": 2100, "client_requests": 39000,
                                "lab_seconds": 990})]
    part2 = ["# a comment, skipped", "",
             seed_line(3, RUN, {"faults": 44, "invariant_violations": 2,
                                "violations_no_holder": 1, "violations_status_truthful": 1,
                                "no_holder_max_ms": 2900, "client_requests": 41000,
                                "lab_seconds": 1010}),
             "SEED seed=4 commit=abc1"]  # a line cut short is refused, not skipped
    with pytest.raises(ValueError, match=r"^b:4: not a nemesis seed line"):
        combine([("a:1", part1[0]), ("a:2", part1[1]),
                 *((f"b:{n}", line) for n, line in enumerate(part2, 1))])
    seeds, run, figures = combine([("a:1", part1[0]), ("a:2", part1[1]),
                                   *((f"b:{n}", line) for n, line in enumerate(part2[:3], 1))])
    assert seeds == (1, 2, 3)
    assert run == RUN
    assert figures == {"faults": 122, "invariant_violations": 3, "violations_no_holder": 2,
                       "violations_status_truthful": 1, "no_holder_max_ms": 3400,
                       "client_requests": 120000, "lab_seconds": 3000}


@pytest.mark.parametrize(("change", "reason"), [
    ({"commit": "fff000fff000"}, "a:2: seed 2 has commit=fff000fff000, a:1 has "
                                 "commit=abc123def456: not one run"),
    ({"mix": "ci"}, "a:2: seed 2 has mix=ci, a:1 has mix=full: not one run"),
    ({"minutes_per_seed": "5"}, "a:2: seed 2 has minutes_per_seed=5, a:1 has "
                                "minutes_per_seed=15: not one run"),
])
def test_parts_of_different_runs_are_refused(change: dict[str, str], reason: str) -> None:
    other = {**RUN, **change}
    with pytest.raises(ValueError) as raised:
        combine([("a:1", seed_line(1, RUN, {"faults": 1})),
                 ("a:2", seed_line(2, other, {"faults": 1}))])
    assert str(raised.value) == reason


def test_a_seed_counted_twice_is_refused() -> None:
    with pytest.raises(ValueError) as raised:
        combine([("a:1", seed_line(1, RUN, {"faults": 1})),
                 ("b:1", seed_line(1, RUN, {"faults": 1}))])
    assert str(raised.value) == "b:1: seed 1 appears twice"


def test_no_seed_line_is_an_error() -> None:
    with pytest.raises(ValueError, match="no SEED line"):
        combine([("a:1", "RESULT seeds=0")])


def test_a_figure_that_is_not_a_number_is_located() -> None:
    with pytest.raises(ValueError) as raised:
        parse_seed_line("SEED seed=1 commit=x mix=full minutes_per_seed=15 faults=lots",
                        "r.txt:3: ")
    assert str(raised.value) == "r.txt:3: faults='lots' is not a number"
