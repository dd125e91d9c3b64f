"""track_file: keepalived's value x weight, FAULT rules, and a real file with inotify/polling."""

from __future__ import annotations

import asyncio
import os
from ipaddress import ip_interface
from pathlib import Path

import pytest

from vrrp.settings import InstanceSettings, VipSpec
from vrrp.track import InstanceTracker
from vrrp.track_file import FileEffect, TrackFile, file_effect
from vrrp.track_verdict import TrackVerdict, tracking_verdict
from vrrp.track_watch import FileWatch, read_value


def spec(weight: int = 1) -> TrackFile:
    return TrackFile("f", "/run/haipvs/f", weight=weight)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("42\n", (42, "ok")),
        ("  -7 trailing", (-7, "ok")),
        ("+3", (3, "ok")),
        # keepalived reads it with strtol base 0: hex and octal too.
        ("0x10\n", (16, "ok")),
        ("-010", (-8, "ok")),
        ("09", (0, "ok")),
        ("", (0, "no number, read as 0")),
        ("up", (0, "no number, read as 0")),
    ],
)
def test_read_value_reads_the_leading_integer(
    tmp_path: Path, text: str, expected: tuple[int, str]
) -> None:
    (tmp_path / "f").write_text(text)
    assert read_value(str(tmp_path / "f")) == expected


def test_read_value_of_an_unreadable_file_is_zero(tmp_path: Path) -> None:
    value, how = read_value(str(tmp_path))  # a directory: read() fails
    assert value == 0 and how.startswith("unreadable") and how.endswith("read as 0")


def test_weight_zero_faults_on_any_non_zero_value() -> None:
    assert file_effect(spec(0), 0) == FileEffect(0, False, "file f = 0")
    assert file_effect(spec(0), 3) == FileEffect(0, True, "file f = 3")
    assert file_effect(spec(0), -1).fault


def test_value_times_weight_moves_priority_and_below_minus_253_faults() -> None:
    assert file_effect(spec(10), 5) == FileEffect(50, False, "file f = 5")
    assert file_effect(spec(-10), 5).delta == -50
    assert file_effect(spec(1), 400).delta == 253
    assert file_effect(spec(1), -253) == FileEffect(-253, False, "file f = -253")
    below = file_effect(spec(2), -127)
    assert below == FileEffect(0, True, "file f = -127 (x2 = -254 < -253)")


def test_file_items_in_the_verdict() -> None:
    watch = FileWatch([spec(10)], instance="VI_1", read=lambda path: (-3, "ok"))
    assert watch.scan()
    assert watch.items() == [("file f = -3", -30, False)]
    assert tracking_verdict(150, {}, {}, watch.items()).priority == 120
    assert not watch.scan()  # the same value again: nothing moved


def test_read_value_of_a_missing_file_is_zero(tmp_path: Path) -> None:
    assert read_value(str(tmp_path / "nope")) == (0, "missing, read as 0")


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="absolute"):
        TrackFile("f", "relative/path")


def instance(**overrides: object) -> InstanceSettings:
    values: dict[str, object] = {
        "name": "VI_1",
        "interface": "eth0",
        "vrid": 51,
        "priority": 150,
        "version": 3,
        "advert_interval": 1.0,
        "preempt": True,
        "preempt_delay": 0.0,
        "vips": (VipSpec(ip_interface("198.51.100.10/24")),),
    }
    values.update(overrides)
    return InstanceSettings(**values)  # type: ignore[arg-type]


class Recorder:
    def __init__(self) -> None:
        self.verdicts: list[TrackVerdict] = []
        self.changed = asyncio.Event()

    async def apply_tracking(self, verdict: TrackVerdict) -> None:
        self.verdicts.append(verdict)
        self.changed.set()

    async def until(self, priority: int, fault: bool = False) -> TrackVerdict:
        while not self.verdicts or (self.verdicts[-1].priority, self.verdicts[-1].fault) != (
            priority,
            fault,
        ):
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), 30)
        return self.verdicts[-1]


@pytest.mark.parametrize("interval", [3600.0, 0.05], ids=["inotify", "polling"])
async def test_a_real_file_moves_priority(tmp_path: Path, interval: float) -> None:
    # With a one-hour interval only inotify can see the writes in time.
    path = tmp_path / "weight"
    path.write_text("0\n")
    tracked = TrackFile("weight", str(path), weight=-10, interval=interval)
    target = Recorder()
    tracker = InstanceTracker(instance(track_files=(tracked,)), target)
    task = asyncio.create_task(tracker.run())
    try:
        await target.until(150)
        path.write_text("3\n")
        assert (await target.until(120)).reason == "file weight = 3 -30"
        # An atomic replacement, as configuration tools write files.
        staged = tmp_path / "weight.new"
        staged.write_text("30\n")
        os.replace(staged, path)
        assert (
            await target.until(150, fault=True)
        ).reason == "file weight = 30 (x-10 = -300 < -253)"
        path.unlink()
        await target.until(150)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
