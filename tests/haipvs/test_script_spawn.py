"""Scripts start clean: no SCHED_RR, RLIMIT_RTTIME, ambient caps; a parent-death signal.

Both script launchers are run from a process that holds what the VRRP process holds
(a SCHED_RR thread, a finite RLIMIT_RTTIME, an ambient capability): the notify hooks
and track scripts' `vrrp.notify.run_argv`, and the exec checks' `checkers.check_exec`.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PROBE = textwrap.dedent("""
    import ctypes, os, resource, sys
    libc = ctypes.CDLL(None)
    signal = ctypes.c_int()
    libc.prctl(2, ctypes.byref(signal), 0, 0, 0)  # PR_GET_PDEATHSIG
    ambient = [line.split()[1] for line in open("/proc/self/status")
               if line.startswith("CapAmb")][0]
    with open(sys.argv[1], "w") as out:
        out.write(f"policy={os.sched_getscheduler(0)} "
                  f"rttime={resource.getrlimit(resource.RLIMIT_RTTIME)[0]} "
                  f"ambient={ambient} pdeathsig={signal.value} "
                  f"leader={os.getsid(0) == os.getpid()}")
""")

PARENT = textwrap.dedent("""
    import asyncio, ctypes, os, resource, sys
    libc = ctypes.CDLL(None, use_errno=True)

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    header, data = Header(0x20080522, 0), (Data * 2)()
    assert libc.capget(ctypes.byref(header), data) == 0
    data[0].inheritable |= 1 << 13  # CAP_NET_RAW, as the unit's AmbientCapabilities
    assert libc.capset(ctypes.byref(header), data) == 0, ctypes.get_errno()
    assert libc.prctl(47, 2, 13, 0, 0) == 0, ctypes.get_errno()  # PR_CAP_AMBIENT_RAISE
    resource.setrlimit(resource.RLIMIT_RTTIME, (2_000_000, 3_000_000))
    os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(1))

    async def main(which, argv):
        if which == "notify":
            from vrrp.notify import run_argv
            outcome = await run_argv(argv, 20)
            assert outcome.returncode == 0, outcome
        else:
            from checkers.exec_probe import check_exec
            result = await check_exec(tuple(argv), 20)
            assert result.ok, result

    asyncio.run(main(sys.argv[1], sys.argv[2:]))
""")


@pytest.mark.parametrize("launcher", ["notify", "exec_check"])
def test_a_script_starts_without_the_vrrp_process_privileges(
    launcher: str, tmp_path: Path
) -> None:
    out = tmp_path / "probe"
    argv = [sys.executable, "-c", PROBE, str(out)]
    done = subprocess.run([sys.executable, "-c", PARENT, launcher, *argv],
                          capture_output=True, text=True, timeout=120, check=False)
    if "Operation not permitted" in done.stderr or "AssertionError: 1" in done.stderr:
        pytest.skip("needs root with CAP_SYS_NICE and CAP_SETPCAP: " + done.stderr[-200:])
    assert done.returncode == 0, done.stderr
    seen = dict(field.split("=") for field in out.read_text().split())
    # RLIM_INFINITY with CAP_SYS_RESOURCE; without it (the shipped unit, most
    # containers) the soft limit rises to the hard one; never the 2 s soft limit.
    assert seen.pop("rttime") in {"-1", "3000000"}
    assert seen == {
        "policy": "0",  # SCHED_OTHER
        "ambient": "0000000000000000",
        "pdeathsig": "9",  # SIGKILL
        "leader": "True",  # its own session, so a timeout kills all its children
    }
