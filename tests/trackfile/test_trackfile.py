"""trackfile: keepalived's one reader of a tracked file's number (track_file.c), behind
both vrrp track_file and checkers FILE_CHECK."""

from __future__ import annotations

from pathlib import Path

import pytest

from trackfile import READ_LIMIT, parse_number, read_number


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("42\n", 42),
        (" \t-7 trailing", -7),
        ("+3", 3),
        ("0x1F", 31),
        ("-010", -8),
        ("09", 0),  # strtol base 0: "0" then a non-octal digit
        ("", None),
        ("up", None),
        ("\u00a05", None),  # C isspace() knows no Unicode blanks
    ],
)
def test_parse_number_is_c_strtol_base_0(text: str, value: int | None) -> None:
    assert parse_number(text) == value


def test_read_number_says_why_it_read_zero(tmp_path: Path) -> None:
    assert read_number(str(tmp_path / "absent")) == (0, "missing, read as 0")
    (tmp_path / "empty").write_text("")
    assert read_number(str(tmp_path / "empty")) == (0, "no number, read as 0")
    assert read_number(str(tmp_path))[1].startswith("unreadable")  # a directory


def test_read_number_bounds_are_keepalived_s(tmp_path: Path) -> None:
    # keepalived accepts INT32_MIN .. INT32_MAX + 1 (process_track_file).
    for text, expected in [
        ("2147483648", (2147483648, "")),
        ("-2147483648", (-2147483648, "")),
        ("2147483649", (0, "2147483649 out of range, read as 0")),
    ]:
        (tmp_path / "n").write_text(text)
        assert read_number(str(tmp_path / "n")) == expected


def test_read_number_reads_what_keepalived_reads_and_no_more(tmp_path: Path) -> None:
    (tmp_path / "n").write_text(" " * (READ_LIMIT - 1) + "12")
    assert read_number(str(tmp_path / "n")) == (1, "")  # the 128th octet is never read
