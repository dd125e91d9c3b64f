"""track_process and track_file in the lab, under the packaged unit's sandbox.

The tracked service runs as root, the daemon as an unprivileged user with only the
unit's capabilities (haipvs.lab.unprivileged, as tests/haipvs/importer/test_importer_lab.py
runs it: it reaches the checkout even in root's 0700 home).
With the unit's `ProtectProc=default` the daemon sees the process: the instance goes
FAULT when it dies and comes back when it starts. With `ProtectProc=invisible` (a /proc
mounted with hidepid=invisible) it cannot, and says so in the log. A number written
to a tracked file moves the priority, and the VIP with it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from haipvs.lab.pair import DirectorPair, PairSettings, haipvs_config, running_pair, wait_until
from haipvs.lab.unprivileged import unprivileged_python

pytestmark = pytest.mark.lab

# The unit's network capabilities (process tracking needs no other).
CAPABILITIES = ("CAP_NET_ADMIN", "CAP_NET_RAW")
SLEEPER = ["/usr/bin/sleep", "4242"]
TRACK = """    track:
      processes:
        - name: sleeper
          process: /usr/bin/sleep
          args: ["4242"]
          interval: 0.2
"""


def tracked_config(name: str, settings: PairSettings, track: str) -> str:
    text = haipvs_config(name, settings)
    return text.replace("    preempt: true\n", "    preempt: true\n" + track, 1)


def start_sandboxed(
    pair: DirectorPair, name: str, *, hide_processes: bool = False, track: str = TRACK
) -> None:
    config = pair.config_path(name)
    config.write_text(tracked_config(name, pair.settings, track))
    config.chmod(0o644)
    command = unprivileged_python(
        ["-m", "haipvs", "run", "-c", str(config)],
        view_dir=pair.workdir / f"view-{name}",
        capabilities=CAPABILITIES,
    )
    env, daemon = command.env, list(command.argv)
    if hide_processes:
        # What ProtectProc=invisible does: a private /proc with hidepid=invisible.
        daemon = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            'mount -t proc -o hidepid=invisible proc /proc && exec "$@"',
            "sh",
            *daemon,
        ]
    log = (pair.workdir / f"{name}.log").open("ab")
    pair.directors[name] = pair.net.popen(
        name, daemon, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )


@pytest.fixture
def pair() -> Iterator[DirectorPair]:
    with running_pair(PairSettings(), prefix="trk-") as built:
        built.workdir.chmod(0o755)
        built.start_real_servers()
        yield built


def test_track_process_faults_and_returns_under_the_unit_sandbox(pair: DirectorPair) -> None:
    sleeper = pair.net.popen("dir1", SLEEPER)
    try:
        start_sandboxed(pair, "dir1", hide_processes=False)
        start_sandboxed(pair, "dir2", hide_processes=True)
        wait_until(lambda: pair.vrrp_state("dir1") == "MASTER", 90)
        assert pair.holds_vip("dir1")

        # dir2 cannot see root's process: FAULT, and the log says why.
        wait_until(lambda: pair.vrrp_state("dir2") == "FAULT", 60)
        hidden = [
            e for e in pair.log_events("dir2") if e["event"] == "vrrp.track.process.proc_hidden"
        ]
        assert hidden and hidden[0]["hidepid"] == "invisible"

        sleeper.kill()
        sleeper.wait()
        wait_until(lambda: pair.vrrp_state("dir1") == "FAULT", 30)
        wait_until(lambda: not pair.holds_vip("dir1"), 10)
        moved = [
            (e["process"], e["to_state"], e["count"])
            for e in pair.log_events("dir1")
            if e["event"] == "vrrp.track.process"
        ]
        assert moved[-1] == ("sleeper", "not_running", 0)

        sleeper = pair.net.popen("dir1", SLEEPER)
        wait_until(lambda: pair.vrrp_state("dir1") == "MASTER", 30)
        assert pair.holds_vip("dir1")
        moved = [
            (e["process"], e["to_state"], e["count"])
            for e in pair.log_events("dir1")
            if e["event"] == "vrrp.track.process"
        ]
        assert moved[-1] == ("sleeper", "running", 1)
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()


def effective_priority(pair: DirectorPair, name: str) -> int | None:
    status = pair.status(name)
    if status is None or not status["instances"]:
        return None
    return int(status["instances"][0]["effective_priority"])


def test_track_file_moves_priority_and_the_vip_under_the_unit_sandbox(
    pair: DirectorPair,
) -> None:
    weight = pair.workdir / "weight"
    weight.write_text("0\n")
    weight.chmod(0o644)
    track = f"""    track:
      files:
        - name: drain-me
          path: {weight}
          weight: -10
"""
    start_sandboxed(pair, "dir1", track=track)  # priority 150
    start_sandboxed(pair, "dir2", track="")  # priority 100
    wait_until(lambda: pair.holds_vip("dir1") and pair.vrrp_state("dir2") == "BACKUP", 90)
    assert effective_priority(pair, "dir1") == 150

    weight.write_text("3\n")  # 150 - 30: still above dir2
    wait_until(lambda: effective_priority(pair, "dir1") == 120, 30)
    assert pair.holds_vip("dir1")

    # Replaced atomically, as a configuration tool writes it: 150 - 60 < 100.
    staged = pair.workdir / "weight.new"
    staged.write_text("6\n")
    staged.chmod(0o644)
    os.replace(staged, weight)
    wait_until(lambda: pair.holds_vip("dir2") and pair.vrrp_state("dir2") == "MASTER", 30)
    assert effective_priority(pair, "dir1") == 90
    changes = [
        (e["value"], e["delta"], e["fault"])
        for e in pair.log_events("dir1")
        if e["event"] == "vrrp.track.file"
    ]
    assert changes == [(0, 0, False), (3, -30, False), (6, -60, False)]

    weight.write_text("0\n")  # back: dir1 preempts
    wait_until(lambda: pair.holds_vip("dir1") and pair.vrrp_state("dir1") == "MASTER", 30)
