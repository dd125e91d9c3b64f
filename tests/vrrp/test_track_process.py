"""track_process: matching, quorum and delays (literal), and a real process on this host."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from ipaddress import ip_interface
from pathlib import Path

import pytest

from vrrp.settings import InstanceSettings, VipSpec
from vrrp.track import InstanceTracker
from vrrp.track_process import (
    ParamMatch,
    ProcessQuorum,
    ProcessView,
    TrackProcess,
    count_matching,
    process_matches,
)
from vrrp.track_verdict import TrackVerdict, tracking_verdict
from vrrp.track_watch import ProcessWatch, proc_hidden, read_processes

HAPROXY = ProcessView(10, "haproxy", ("/usr/sbin/haproxy", "-f", "/etc/haproxy/haproxy.cfg"))
SSHD = ProcessView(11, "sshd", ("sshd: /usr/sbin/sshd -D",))
KTHREAD = ProcessView(2, "kthreadd", ())
LONG = ProcessView(12, "php-fpm8.2-work", ("php-fpm: pool www",))


def spec(**overrides: object) -> TrackProcess:
    values: dict[str, object] = {"name": "p", "process": "haproxy"}
    values.update(overrides)
    return TrackProcess(**values)  # type: ignore[arg-type]


def test_name_match_is_exact_not_a_pattern() -> None:
    assert process_matches(spec(), HAPROXY)
    assert not process_matches(spec(process="ssh"), SSHD)  # pgrep ssh would match sshd
    assert process_matches(spec(process="sshd"), SSHD)
    assert not process_matches(spec(process="kthread"), KTHREAD)


def test_name_longer_than_comm_compares_its_first_15_characters() -> None:
    assert process_matches(spec(process="php-fpm8.2-worker"), LONG)


def test_full_command_and_parameters_compare_the_command_line() -> None:
    assert process_matches(spec(process="/usr/sbin/haproxy", full_command=True), HAPROXY)
    assert not process_matches(spec(process="haproxy", full_command=True), HAPROXY)
    exact = spec(process="/usr/sbin/haproxy", args=("-f", "/etc/haproxy/haproxy.cfg"))
    assert process_matches(exact, HAPROXY)
    assert not process_matches(spec(process="/usr/sbin/haproxy", args=("-f",)), HAPROXY)
    partial = spec(process="/usr/sbin/haproxy", args=("-f",), param_match=ParamMatch.PARTIAL)
    assert process_matches(partial, HAPROXY)
    initial = spec(
        process="/usr/sbin/haproxy", args=("-f", "/etc/hap"), param_match=ParamMatch.INITIAL
    )
    assert process_matches(initial, HAPROXY)
    no_args = spec(process="/usr/sbin/haproxy", args=(), param_match=ParamMatch.EXACT)
    assert not process_matches(no_args, HAPROXY)
    assert not process_matches(spec(process="kthreadd", full_command=True), KTHREAD)


def test_quorum_counts_matching_processes() -> None:
    two = [HAPROXY, ProcessView(13, "haproxy", ("/usr/sbin/haproxy",)), SSHD]
    assert count_matching(spec(), two) == 2
    assert spec(quorum=2).in_quorum(2)
    assert not spec(quorum=3).in_quorum(2)
    assert not spec(quorum_max=1).in_quorum(2)
    assert spec(quorum=0, quorum_max=0).in_quorum(0)


def test_first_count_decides_at_once_then_delays_apply() -> None:
    state = ProcessQuorum(spec(fork_delay=2.0, terminate_delay=5.0))
    assert state.observe(0, 100.0) and state.up is False
    # Gained at 101: counts only from 103 (fork_delay).
    assert not state.observe(1, 101.0)
    assert state.deadline == 103.0
    assert not state.observe(1, 102.5)
    assert state.observe(1, 103.0) and state.up is True
    # Lost at 110, back at 112: within terminate_delay, forgotten.
    assert not state.observe(0, 110.0)
    assert not state.observe(1, 112.0)
    assert state.deadline is None
    # Lost at 120 for good: down from 125.
    assert not state.observe(0, 120.0)
    assert not state.observe(0, 124.9)
    assert state.observe(0, 125.0) and state.up is False
    assert state.label() == "process p not running (0)"


def test_without_delays_a_change_counts_at_once() -> None:
    state = ProcessQuorum(spec())
    state.observe(1, 0.0)
    assert state.observe(0, 1.0) and state.up is False


def test_weight_zero_process_down_is_fault_in_the_verdict() -> None:
    down = tracking_verdict(150, {}, {}, [("process p not running (0)", 0, False)])
    assert down == TrackVerdict(150, True, "process p not running (0)")
    minus = tracking_verdict(150, {}, {}, [("process p not running (0)", -50, False)])
    assert (minus.priority, minus.fault) == (100, False)


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="quorum_max"):
        spec(quorum=2, quorum_max=1)
    with pytest.raises(ValueError, match="weight"):
        spec(weight=254)
    with pytest.raises(ValueError, match="delay"):
        spec(terminate_delay=-1)


def test_read_processes_sees_this_process() -> None:
    mine = next(p for p in read_processes() if p.pid == os.getpid())
    with open(f"/proc/{os.getpid()}/cmdline", "rb") as handle:
        assert mine.argv == tuple(handle.read().decode().split("\0")[:-1])
    with open(f"/proc/{os.getpid()}/comm") as handle:
        assert mine.comm == handle.read().strip()


def test_read_processes_of_a_missing_root_is_empty() -> None:
    assert read_processes("/nonexistent-proc") == []


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

    async def until(self, fault: bool) -> TrackVerdict:
        while not self.verdicts or self.verdicts[-1].fault != fault:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), 30)
        return self.verdicts[-1]


async def test_a_real_process_that_dies_faults_the_instance_and_returns() -> None:
    marker = f"haipvs-track-test-{os.getpid()}"
    argv = (sys.executable, "-c", "import time; time.sleep(600)", marker)
    tracked = TrackProcess(
        name="sleeper",
        process=sys.executable,
        args=argv[1:],
        weight=0,
        interval=0.05,
    )
    target = Recorder()
    tracker = InstanceTracker(instance(track_processes=(tracked,)), target)
    first = subprocess.Popen(argv)
    task = asyncio.create_task(tracker.run())
    try:
        verdict = await target.until(fault=False)
        assert verdict.reason == "all tracked items nominal"
        first.kill()
        first.wait()
        down = await target.until(fault=True)
        assert down.reason == "process sleeper not running (0)"
        second = subprocess.Popen(argv)
        try:
            await target.until(fault=False)
        finally:
            second.kill()
            second.wait()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        if first.poll() is None:
            first.kill()


async def test_process_watch_with_a_fake_table_and_clock() -> None:
    table: list[ProcessView] = [HAPROXY]
    now = [0.0]
    watch = ProcessWatch(
        [spec(weight=-20, terminate_delay=3.0)],
        instance="VI_1",
        read=lambda: list(table),
        clock=lambda: now[0],
    )
    assert await watch.scan()
    assert watch.items() == [("process p running (1)", -20, True)]
    table.clear()
    now[0] = 1.0
    assert not await watch.scan()
    now[0] = 4.0
    assert await watch.scan()
    assert watch.items() == [("process p not running (0)", -20, False)]


def test_proc_hidden_reads_hidepid_of_the_proc_mount(tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "22 1 0:5 / /dev rw,nosuid - devtmpfs udev rw,size=1k\n"
        "23 1 0:21 / /proc rw,nosuid,nodev,noexec - proc proc rw,hidepid=invisible\n"
    )
    assert proc_hidden(str(mountinfo)) == "invisible"
    mountinfo.write_text("23 1 0:21 / /proc rw,nosuid - proc proc rw\n")
    assert proc_hidden(str(mountinfo)) is None
    mountinfo.write_text("23 1 0:21 / /proc rw - proc proc rw,hidepid=0\n")
    assert proc_hidden(str(mountinfo)) is None
    assert proc_hidden(str(tmp_path / "missing")) is None
