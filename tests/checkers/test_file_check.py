"""FILE_CHECK: the number in a file, read like keepalived's strtol, and what it makes of
a real server (keepalived check_file.c / track_file.c)."""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from checkers.file_check import file_verdict, parse_number, probe, read_number
from checkers.spec import FileCheck, SpecError, Target, Timing


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("5\n", 5),
        ("  -3 trailing words", -3),
        ("+7", 7),
        ("0x1F", 31),
        ("010", 8),  # C octal
        ("09", 0),  # strtol stops at the 9: "0"
        ("", None),
        ("drain", None),
        ("\t\n 42", 42),
    ],
)
def test_parse_number_is_c_strtol_base_0(text: str, value: int | None) -> None:
    assert parse_number(text) == value


@pytest.mark.parametrize(
    ("value", "weight", "reverse", "base", "expected"),
    [
        # weight 0: a switch, non-zero is a fault (zero with reverse).
        (0, 0, False, 10, (True, "value 0", None)),
        (1, 0, False, 10, (False, "value 1: fault", None)),
        (0, 0, True, 10, (False, "value 0: fault", None)),
        (5, 0, True, 10, (True, "value 5", None)),
        # otherwise value x weight is added to the configured weight.
        (0, 1, False, 10, (True, "value 0: weight 10", 10)),
        (5, 2, False, 10, (True, "value 5: weight 20", 20)),
        (5, 2, True, 10, (False, "value 5: weight 0", None)),
        (-10, 1, False, 10, (False, "value -10: weight 0", None)),
        (-11, 1, False, 10, (False, "value -11: weight -1", None)),
        (-(2**31), 1, False, 10, (False, f"value {-(2**31)}: fault", None)),
    ],
)
def test_file_verdict_like_keepalived(
    value: int, weight: int, reverse: bool, base: int, expected: tuple[bool, str, int | None]
) -> None:
    assert file_verdict(value, weight=weight, reverse=reverse, base_weight=base) == expected


def test_read_number_reads_0_for_missing_unreadable_or_garbage(tmp_path: Path) -> None:
    assert read_number(str(tmp_path / "absent")) == (0, "missing, read as 0")
    (tmp_path / "garbage").write_text("drain please\n")
    assert read_number(str(tmp_path / "garbage")) == (0, "no number, read as 0")
    (tmp_path / "big").write_text("99999999999\n")
    assert read_number(str(tmp_path / "big")) == (0, "99999999999 out of range, read as 0")
    (tmp_path / "ok").write_text("-4\n")
    assert read_number(str(tmp_path / "ok")) == (-4, "")
    assert read_number(str(tmp_path))[0] == 0  # a directory: unreadable


def test_probe_follows_the_file(tmp_path: Path) -> None:
    path = tmp_path / "rs1"
    spec = FileCheck(
        Timing(interval=1.0, timeout=0.5, rise=1, fall=1), str(path), weight=1, base_weight=3
    )
    target = Target(IPv4Address("10.0.0.11"), 80)
    result = asyncio.run(probe(spec, target))
    assert (result.ok, result.weight) == (True, 3)
    assert result.detail == f"{path}: value 0: weight 3 (missing, read as 0)"
    path.write_text("-3\n")
    result = asyncio.run(probe(spec, target))
    assert (result.ok, result.detail) == (False, f"{path}: value -3: weight 0")
    path.write_text("2\n")
    assert asyncio.run(probe(spec, target)).weight == 5


def test_spec_wants_an_absolute_path() -> None:
    with pytest.raises(SpecError, match="absolute"):
        FileCheck(Timing(interval=1.0, timeout=0.5, rise=1, fall=1), "relative/file")
