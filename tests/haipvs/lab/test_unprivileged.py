"""haipvs.lab.unprivileged on this host: the command runs as nobody with exactly the
given capabilities and no new privileges, on this checkout's code and interpreter,
wherever they are (root's 0700 home included), and can start the interpreter again
(the daemon starts its VRRP process with sys.executable)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from haipvs.lab.unprivileged import CODE_ROOT, NOBODY, reachable_by_anyone, unprivileged_python

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("setpriv") is None,
    reason="needs root, unshare(1) and setpriv(1)",
)

PROBE = """
import json, os, subprocess, sys
import haipvs
fields = dict(l.split(":\\t", 1) for l in open("/proc/self/status") if ":\\t" in l)
child = subprocess.run([sys.executable, "-c", "import haipvs, vrrp; print('child ok')"],
                       capture_output=True, text=True)
print(json.dumps({"uid": os.getuid(), "gid": os.getgid(), "cap_eff": fields["CapEff"].strip(),
                  "no_new_privs": fields["NoNewPrivs"].strip(), "haipvs": haipvs.__file__,
                  "child": child.stdout + child.stderr}))
"""


def test_the_command_runs_as_nobody_with_only_the_given_capabilities_on_this_code() -> None:
    with tempfile.TemporaryDirectory() as workdir:
        Path(workdir).chmod(0o755)
        command = unprivileged_python(
            ["-c", PROBE], view_dir=Path(workdir) / "view",
            capabilities=["CAP_NET_ADMIN", "CAP_NET_RAW"],
        )
        result = subprocess.run(command.argv, env=command.env, capture_output=True,
                                text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        seen = json.loads(result.stdout)
        view_of_code = command.views[CODE_ROOT]
    assert (seen["uid"], seen["gid"]) == (NOBODY, NOBODY)
    assert int(seen["cap_eff"], 16) == (1 << 12) | (1 << 13)
    assert seen["no_new_privs"] == "1"
    assert seen["haipvs"] == str(view_of_code / "haipvs" / "__init__.py")
    assert seen["child"] == "child ok\n"


def test_a_directory_is_reachable_only_when_every_parent_may_be_traversed() -> None:
    with tempfile.TemporaryDirectory() as workdir:
        closed = Path(workdir) / "closed"
        (closed / "inner").mkdir(parents=True)
        closed.chmod(0o700)
        Path(workdir).chmod(0o755)
        assert reachable_by_anyone(closed)
        assert not reachable_by_anyone(closed / "inner" / "file")
        closed.chmod(0o711)
        assert reachable_by_anyone(closed / "inner" / "file")
