"""File probe: keepalived's FILE_CHECK (a number in a file sets a real server's weight).

keepalived (check_file.c, track_file.c): the file's first number, read like C's
``strtol(buf, NULL, 0)`` (leading blanks, a sign, ``0x`` hex, ``0`` octal; anything
unreadable or missing counts as 0) is multiplied by the check's ``weight`` (negated
with ``reverse``) and added to the real server's configured weight. With ``weight 0``
the file is a switch instead: a non-zero value (a zero one with ``reverse``) is a
fault. An operator drains a real server by writing a number into a file, without a
reload (keepalived's answer to "change real servers without reload").

Here the verdict is a :class:`~checkers.result.ProbeResult`: a fault, or a weight of
0 or less, is *down* (the real server is drained and removed, as on any failed
check); otherwise *up* with ``weight`` set to the sum (like ``misc_dynamic``). The
parse and the verdict are pure (:func:`parse_number`, :func:`file_verdict`); the probe
reads at most 128 octets, as keepalived, in a worker thread. The pool polls it at the
check's ``interval``; rise and fall apply as to every check.
"""

from __future__ import annotations

import asyncio
import time

from checkers.result import ProbeResult
from checkers.spec import FileCheck, Target
from trackfile import parse_number, read_number

__all__ = ["file_verdict", "parse_number", "probe", "read_number"]

# One reader for both of keepalived's file features (track_file.c): trackfile.

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


def file_verdict(
    value: int, *, weight: int, reverse: bool, base_weight: int
) -> tuple[bool, str, int | None]:
    """(ok, detail, weight) for ``value`` read from the file (keepalived's
    ``update_track_file_status``): ``weight`` 0 makes the file a switch (non-zero is
    a fault, zero with ``reverse``); otherwise ``value`` x ``weight`` (negated with
    ``reverse``) is added to ``base_weight``, and 0 or less is down."""
    if weight == 0:
        faulted = (value != 0) != reverse
        return (False, f"value {value}: fault", None) if faulted else (True, f"value {value}", None)
    delta = value * weight * (-1 if reverse else 1)
    if delta <= _INT32_MIN:
        return False, f"value {value}: fault", None
    effective = base_weight + delta
    if effective <= 0:
        return False, f"value {value}: weight {effective}", None
    return True, f"value {value}: weight {effective}", min(effective, _INT32_MAX)


async def probe(spec: FileCheck, target: Target) -> ProbeResult:
    started = time.monotonic()
    try:
        value, note = await asyncio.wait_for(
            asyncio.to_thread(read_number, spec.path), spec.timing.timeout
        )
    except TimeoutError:
        return ProbeResult(False, f"{spec.path}: read timed out", time.monotonic() - started)
    ok, detail, weight = file_verdict(
        value, weight=spec.weight, reverse=spec.reverse, base_weight=spec.base_weight
    )
    if note:
        detail = f"{detail} ({note})"
    return ProbeResult(ok, f"{spec.path}: {detail}", time.monotonic() - started, weight)
