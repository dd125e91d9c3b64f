"""`haipvs lab run` from the host: exit status, output, timeout, a kernel with IPVS.

These boot the real lab guest (user-mode-linux here, since this kernel has no IPVS;
natively on a host that has it); each boot takes a few seconds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from haipvs.lab.runner import _command_script, host_paths_to_keep

LAB = [sys.executable, "-m", "haipvs", "lab", "run"]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab runs as root")
needs_uml = pytest.mark.skipif(shutil.which("linux") is None, reason="user-mode-linux")


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
    # The script is under /tmp: the guest's own /tmp gets it mounted back.
    with tempfile.TemporaryDirectory(dir="/tmp") as workdir:
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


def test_a_directory_under_the_hosts_tmp_is_there_in_the_guest_and_tmp_stays_its_own() -> None:
    # A checkout or virtualenv in /tmp/NAME: the guest mounts a tmpfs of its own on /tmp,
    # and mounts /tmp/NAME back (the working directory and the paths in argv).
    with tempfile.TemporaryDirectory(dir="/tmp") as cwd, \
            tempfile.TemporaryDirectory(dir="/tmp") as elsewhere:
        (Path(cwd) / "here.txt").write_text("from the host's /tmp\n")
        (Path(elsewhere) / "hidden.txt").write_text("not named by the command\n")
        result = subprocess.run(
            [*LAB, "--", "sh", "-c",
             f"cat here.txt; test -e {elsewhere}/hidden.txt && echo leaked; "
             f"echo guest > {cwd}/written.txt; touch /tmp/guest-only-file"],
            cwd=cwd, check=False, capture_output=True, text=True, timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == "from the host's /tmp\n"
        assert (Path(cwd) / "written.txt").read_text() == "guest\n"  # the host's own files
        assert not Path("/tmp/guest-only-file").exists()


def test_the_paths_the_guest_mounts_back_are_the_top_directories_under_tmp_and_run() -> None:
    keep = host_paths_to_keep(
        ["/tmp/a/.venv/bin/python", "--out=/run/b/x.json", "relative/path", "/usr/bin/env"],
        {"PYTHONPATH": f"/tmp/c/src{os.pathsep}/opt/lib", "VIRTUAL_ENV": "/tmp/a/.venv"},
        "/tmp/d/sub",
        extra=("/var/cache/haipvs/lab/runs/run-1",),
        exists=lambda path: path != "/tmp/d",
    )
    assert keep[:3] == ["/tmp/a", "/run/b", "/tmp/c"]  # the rest: this interpreter's, if any
    assert "/tmp/d" not in keep  # not on the host
    assert len(set(keep)) == len(keep)
    assert all(path.count("/") == 2 for path in keep)


@needs_uml
def test_each_documented_backend_is_accepted_and_uml_runs() -> None:
    # The docs say UML is the default guest: `--backend uml` must be accepted and run.
    result = lab("--backend", "uml", "--", "sh", "-c", "echo $HAIPVS_IN_LAB")
    assert (result.returncode, result.stdout) == (0, "1\n"), result.stderr
    refused = lab("--backend", "vmware", "--", "true")
    assert refused.returncode == 2
    assert "invalid choice: 'vmware'" in refused.stderr
    assert "uml" in refused.stderr


@needs_uml
def test_lab_setup_prepares_the_guest_auto_would_boot() -> None:
    result = subprocess.run([*LAB[:-1], "setup"], check=False, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("haipvs lab: user-mode-linux ")
