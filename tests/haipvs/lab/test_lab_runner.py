"""`haipvs lab run` from the host: exit status, output, timeout, a kernel with IPVS.

These boot the real lab guest (user-mode-linux here, since this kernel has no IPVS;
natively on a host that has it); each boot takes a few seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from haipvs.lab.runner import _command_script

LAB = [sys.executable, "-m", "haipvs", "lab", "run"]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab runs as root")


def lab(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LAB, *argv], check=False, capture_output=True, text=True, timeout=timeout
    )


def test_ipvsadm_prints_the_ipvs_banner_and_exits_0() -> None:
    result = lab("--", "ipvsadm", "-Ln")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("IP Virtual Server version 1.2.1")


def test_the_command_exit_status_comes_back() -> None:
    assert lab("--", "false").returncode == 1
    assert lab("--", "sh", "-c", "echo 'it works'; exit 3").returncode == 3


def test_a_command_that_outlives_its_timeout_is_stopped_and_reported() -> None:
    result = lab("--timeout", "3", "--", "sleep", "60")
    assert result.returncode == 124
    assert "timed out after 3 s: sleep 60" in result.stderr


def test_arguments_and_environment_reach_the_guest_unchanged() -> None:
    result = subprocess.run(
        [*LAB, "--", "sh", "-c", 'printf "%s|%s|%s" "$1" "$HAIPVS_PROBE" "$HAIPVS_IN_LAB"',
         "x", "a b 'c' $d"],
        check=False, capture_output=True, text=True, timeout=120,
        env={**os.environ, "HAIPVS_PROBE": "quoted \"value\" $HOME"},
    )
    assert result.stdout == "a b 'c' $d|quoted \"value\" $HOME|1"


def test_the_command_script_quotes_what_it_exports() -> None:
    script = _command_script(["echo", "a b"], {"X": "1 2", "BAD-NAME": "z", "PWD": "/"}, 5)
    assert "export X='1 2'" in script
    assert "BAD-NAME" not in script and "PWD" not in script
    assert script.rstrip().endswith("exec timeout -k 5 5 echo 'a b'")


def test_a_bench_script_enters_the_lab_itself() -> None:
    # bench/*.py call rerun_in_lab_unless_ipvs first: run from this host, the script
    # runs again in the lab with its arguments, and its exit status comes back.
    # (Not under /tmp: the guest has a /tmp of its own.)
    with tempfile.TemporaryDirectory(dir="/var/tmp") as workdir:
        script = Path(workdir) / "bench_like.py"
        script.write_text(
            "import os, sys\n"
            "from haipvs.lab.runner import rerun_in_lab_unless_ipvs\n"
            "rerun = rerun_in_lab_unless_ipvs(__file__, sys.argv[1:], timeout=60)\n"
            "if rerun is not None:\n"
            "    sys.exit(rerun)\n"
            "print('in the lab:', os.environ['HAIPVS_IN_LAB'], sys.argv[1:], flush=True)\n"
            "sys.exit(int(sys.argv[2]))\n"
        )
        result = subprocess.run([sys.executable, str(script), "a b", "5"], check=False,
                                capture_output=True, text=True, timeout=120)
    assert result.returncode == 5, result.stderr
    assert "in the lab: 1 ['a b', '5']" in result.stdout
