"""The number in a tracked file, read the way keepalived reads it.

keepalived has one reader (track_file.c) behind both of its file features, and so does
haipvs: a VRRP instance's ``track_file`` (``vrrp.track_file``, priority or FAULT) and a
real server's ``FILE_CHECK`` (``checkers.file_check``, weight or down) read their file
here. vrrp and checkers may not import each other; this package imports neither.

The rule (keepalived ``process_update_track_file_status``): read at most 127 octets;
the value is C ``strtol(buf, NULL, 0)`` of them (leading blanks, an optional sign,
then ``0x`` hex, ``0`` octal or decimal digits, stopping at the first other
character); a missing, empty or unreadable file and a file with no number read as 0,
and the note says which. A number outside -2147483648..2147483648 (keepalived's bound,
one past INT_MAX) also reads as 0 here, where keepalived logs "Invalid number" and keeps
the value it read before.
"""

from __future__ import annotations

import re

__all__ = ["READ_LIMIT", "parse_number", "read_number"]

#: keepalived reads into a 128-octet buffer, keeping one for the terminating NUL.
READ_LIMIT = 127
_LOWEST, _HIGHEST = -(2**31), 2**31  # keepalived: INT32_MIN .. INT32_MAX + 1
# C isspace() in the "C" locale: blank, \t \n \v \f \r (not Python's Unicode \s).
_NUMBER = re.compile(r"[ \t\n\v\f\r]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")


def parse_number(text: str) -> int | None:
    """C ``strtol(text, NULL, 0)``: the leading number, or None when there is none
    (keepalived reads "none" as 0; the caller says why)."""
    match = _NUMBER.match(text)
    if match is None:
        return None
    sign, digits = match.groups()
    if digits[:2] in {"0x", "0X"}:
        value = int(digits[2:], 16)
    elif digits.startswith("0"):
        value = int(digits, 8)
    else:
        value = int(digits)
    return -value if sign == "-" else value


def read_number(path: str) -> tuple[int, str]:
    """(value, note) from the file at ``path``: the note is empty when a number in
    range was read, else it says why the value is keepalived's 0."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(READ_LIMIT)
    except FileNotFoundError:
        return 0, "missing, read as 0"
    except OSError as exc:
        return 0, f"unreadable ({exc.strerror or exc}), read as 0"
    value = parse_number(raw.decode("ascii", errors="replace"))
    if value is None:
        return 0, "no number, read as 0"
    if not _LOWEST <= value <= _HIGHEST:
        return 0, f"{value} out of range, read as 0"
    return value, ""
