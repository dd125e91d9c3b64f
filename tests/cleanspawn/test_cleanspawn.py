"""cleanspawn: every guarantee checked in a real child, on both paths.

A stand-in for the daemon runs in its own process (with ambient capabilities, and
for the reset path SCHED_RR and a finite RLIMIT_RTTIME), starts a reporter through
``clean_spawn`` and prints what the reporter found in itself.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cleanspawn import PARENT_CHECK, SETPRIV_OPTIONS, clean_spawn, inherits_clean

SETPRIV = shutil.which("setpriv")

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or SETPRIV is None,
    reason="raising ambient capabilities and SCHED_RR need root and setpriv",
)

# What the child finds in itself: the four things the reset promises.
REPORT = """
import ctypes, json, os, resource
libc = ctypes.CDLL(None, use_errno=True)
signal = ctypes.c_int(0)
libc.prctl(2, ctypes.byref(signal), 0, 0, 0)  # PR_GET_PDEATHSIG
ambient = [line.split()[1] for line in open("/proc/self/status") if line.startswith("CapAmb:")]
print(json.dumps({
    "policy": os.sched_getscheduler(0),
    "rttime": list(resource.getrlimit(resource.RLIMIT_RTTIME)),
    "ambient": int(ambient[0], 16),
    "pdeathsig": signal.value,
}))
"""

# The daemon's stand-in: set up the caller's state, spawn the reporter (or a
# sleeper, whose pid it prints before it dies), print which path was taken.
CALLER = """
import json, os, resource, subprocess, sys
from cleanspawn import clean_spawn
scenario, report = sys.argv[1], sys.argv[2]
if scenario == "realtime":
    os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(1))
    resource.setrlimit(resource.RLIMIT_RTTIME, (5_000_000, 10_000_000))
argv = [sys.executable, "-c", report] if scenario != "orphan" else ["sleep", "60"]
spawn = clean_spawn(argv, os.environ["PATH"])
path = "inherit" if spawn.preexec_fn is None else "reset"
if scenario == "orphan":
    child = subprocess.Popen(
        spawn.argv, preexec_fn=spawn.preexec_fn,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    print(json.dumps({"path": path, "pid": child.pid}), flush=True)
    os._exit(0)
out = subprocess.run(spawn.argv, preexec_fn=spawn.preexec_fn, capture_output=True, check=True)
print(json.dumps({"path": path, "child": json.loads(out.stdout)}))
"""


def run_caller(scenario: str) -> dict[str, object]:
    assert SETPRIV is not None
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root}
    # The caller holds CAP_NET_RAW as an ambient capability, as the daemon under
    # the shipped unit (AmbientCapabilities=) does.
    argv = [SETPRIV, "--inh-caps", "+net_raw", "--ambient-caps", "+net_raw", "--"]
    argv += [sys.executable, "-c", CALLER, scenario, REPORT]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=True)
    result: dict[str, object] = json.loads(done.stdout)
    return result


CLEAN = {
    "policy": os.SCHED_OTHER,
    "rttime": [resource.RLIM_INFINITY, resource.RLIM_INFINITY],
    "ambient": 0,
    "pdeathsig": 9,
}


@needs_root
def test_a_clean_caller_takes_the_inherit_path_and_the_child_is_clean() -> None:
    result = run_caller("normal")
    assert result == {"path": "inherit", "child": CLEAN}


@needs_root
def test_a_realtime_caller_takes_the_reset_path_and_the_child_is_clean() -> None:
    result = run_caller("realtime")
    child = result["child"]
    assert isinstance(child, dict)
    # RLIMIT_RTTIME: unlimited where the hard limit can be raised (CAP_SYS_RESOURCE),
    # else the soft limit up to the caller's hard one (10 s)
    assert child.pop("rttime") in ([resource.RLIM_INFINITY] * 2, [10_000_000] * 2)
    rest = {key: value for key, value in CLEAN.items() if key != "rttime"}
    assert result == {"path": "reset", "child": rest}


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


@needs_root
def test_a_child_dies_with_its_caller() -> None:
    result = run_caller("orphan")
    assert result["path"] == "inherit"
    pid = result["pid"]
    assert isinstance(pid, int)
    deadline = time.monotonic() + 30  # generous: the host is shared
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        assert _gone(pid)
    finally:
        if not _gone(pid):
            os.kill(pid, 9)


@pytest.mark.parametrize(
    ("policy", "rttime", "clean"),
    [
        (os.SCHED_OTHER, resource.RLIM_INFINITY, True),
        (os.SCHED_RR, resource.RLIM_INFINITY, False),
        (os.SCHED_FIFO, resource.RLIM_INFINITY, False),
        (os.SCHED_BATCH, resource.RLIM_INFINITY, False),
        (os.SCHED_OTHER, 200_000, False),
        (os.SCHED_OTHER | os.SCHED_RESET_ON_FORK, resource.RLIM_INFINITY, False),
    ],
)
def test_only_a_thread_with_nothing_to_reset_inherits(
    policy: int, rttime: int, clean: bool
) -> None:
    assert inherits_clean(policy, rttime) is clean


@pytest.mark.skipif(SETPRIV is None, reason="needs setpriv")
def test_the_inherit_path_execs_the_command_through_setpriv_unchanged() -> None:
    spawn = clean_spawn(["true", "--flag"], "/usr/bin:/bin")
    assert spawn.preexec_fn is None
    sh = spawn.argv[len(SETPRIV_OPTIONS) + 1]
    assert spawn.argv[1:] == (
        *SETPRIV_OPTIONS,
        sh,
        "-c",
        PARENT_CHECK,
        "cleanspawn",
        str(os.getpid()),
        "true",
        "--flag",
    )
    assert subprocess.run(spawn.argv, check=False).returncode == 0


@pytest.mark.skipif(SETPRIV is None, reason="needs setpriv")
def test_the_inherit_path_refuses_to_run_once_its_caller_is_gone() -> None:
    # The caller's pid is not the parent's any more (as when the caller died before
    # setpriv armed the signal): the script must not run.
    spawn = clean_spawn(["true"], "/usr/bin:/bin")
    argv = list(spawn.argv)
    argv[-2] = "1"
    assert subprocess.run(argv, check=False).returncode == 127


def test_a_command_that_does_not_resolve_is_left_to_popen_to_refuse() -> None:
    spawn = clean_spawn(["no-such-check-program"], "/usr/bin:/bin")
    assert spawn.argv == ("no-such-check-program",)
    assert spawn.preexec_fn is not None
    with pytest.raises(FileNotFoundError):
        env = {"PATH": "/usr/bin:/bin"}
        subprocess.Popen(spawn.argv, preexec_fn=spawn.preexec_fn, env=env)  # noqa: PLW1509
