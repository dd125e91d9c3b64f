"""File tracking (keepalived ``track_file`` / ``vrrp_track_file``): the pure core.

keepalived.conf(5), "Track files": the file holds a number in text. With ``weight`` 0
a non-zero value is a failure (FAULT) and zero is OK; otherwise the value multiplied
by the weight is added to the priority, and a result below -253 puts the instance in
FAULT (the effective priority is still clamped to 1..254: ``vrrp.track_verdict``).
A file that is missing, unreadable or holds no number reads as 0 (keepalived's
strtol of nothing), and the reason says so: the reading is keepalived's one reader,
``trackfile``, shared with FILE_CHECK.

Pure: no IO. Reading the file (inotify where the kernel has it, else polling) is in
``vrrp.track_watch``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FileEffect", "TrackFile", "file_effect"]

_MAX_RESULT = 253


@dataclass(frozen=True, slots=True)
class TrackFile:
    """One tracked file (keepalived ``track_file NAME { file PATH; weight W }``)."""

    name: str
    path: str
    weight: int = 1
    interval: float = 1.0  # polling period when inotify is not available

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("name: must not be empty")
        if not self.path.startswith("/"):
            raise ValueError(f"path: {self.path!r} must be absolute")
        if not -(2**31) < self.weight < 2**31:
            raise ValueError(f"weight: {self.weight} outside -2147483647..2147483647")
        if not self.interval > 0:
            raise ValueError(f"interval: {self.interval} must be > 0")


@dataclass(frozen=True, slots=True)
class FileEffect:
    """What one file value does: a priority change, or FAULT."""

    delta: int
    fault: bool
    label: str


def file_effect(spec: TrackFile, value: int) -> FileEffect:
    label = f"file {spec.name} = {value}"
    if spec.weight == 0:
        return FileEffect(0, value != 0, label)
    delta = value * spec.weight
    if delta < -_MAX_RESULT:
        return FileEffect(0, True, f"{label} (x{spec.weight} = {delta} < -253)")
    return FileEffect(min(delta, _MAX_RESULT), False, label)
