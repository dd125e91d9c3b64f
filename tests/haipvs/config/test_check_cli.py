"""`haipvs check-config FILE`: exit status and exactly the lines an operator reads."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from haipvs.cli import main
from haipvs.daemon.check import check_config_command

ROOT = Path(__file__).resolve().parents[3]
THREE_ERRORS = Path(__file__).parent / "invalid" / "64-three-errors.yaml"


def run(path: Path | str, *, offline: bool = False) -> tuple[int, list[str]]:
    out = io.StringIO()
    status = check_config_command(str(path), out, offline=offline)
    return status, out.getvalue().splitlines()


def test_the_shipped_config_is_ok() -> None:
    # A sample: its scripts and eth1 belong to the director it is written for.
    status, lines = run(ROOT / "etc" / "haipvs.yaml", offline=True)
    assert status == 0
    (line,) = lines
    assert line.endswith("haipvs.yaml: ok: 2 vrrp instances, 3 virtual servers, 8 real servers")


def test_three_distinct_errors_print_three_lines_and_exit_1() -> None:
    status, lines = run(THREE_ERRORS)
    assert status == 1
    assert lines == [
        f"{THREE_ERRORS}:6: vrrp[0].priority: must be 1..255",
        f"{THREE_ERRORS}:10: virtual_servers[0].scheduler: must be one of: "
        "rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, mh, fo, ovf, twos",
        f"{THREE_ERRORS}:12: virtual_servers[0].real_servers[0].port: must be 0..65535",
    ]


def test_warnings_follow_the_summary(tmp_path: Path) -> None:
    path = tmp_path / "single.yaml"
    path.write_text(
        "virtual_servers:\n"
        "  - vip: 192.0.2.1\n"
        "    port: 80\n"
        "    real_servers: [{address: 10.0.0.1}]\n"
    )
    status, lines = run(path)
    assert status == 0
    assert lines == [
        f"{path}: ok: 0 vrrp instances, 1 virtual server, 1 real server (1 warning)",
        f"{path}:2: warning: virtual_servers[0].vip: 192.0.2.1 is not a vip of any vrrp "
        "instance: no failover for this service",
    ]


def test_a_missing_file_is_one_error(tmp_path: Path) -> None:
    status, lines = run(tmp_path / "nope.yaml")
    assert status == 1
    assert lines == [f"{tmp_path / 'nope.yaml'}:1: (file): cannot read: No such file or directory"]


def test_the_cli_dispatches_to_check_config() -> None:
    assert main(["check-config", str(THREE_ERRORS)]) == 1
    assert main(["check-config", str(ROOT / "etc" / "examples" / "dr.yaml")]) == 0


def test_the_installed_command_exits_with_the_status() -> None:
    haipvs = Path(sys.executable).parent / "haipvs"
    done = subprocess.run(
        [str(haipvs), "check-config", str(THREE_ERRORS)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert len(done.stdout.splitlines()) == 3


def test_check_config_opens_no_socket_at_all() -> None:
    # "never touches the kernel": no netlink, raw or inet socket is even created.
    # The audit hook sees every socket.socket() in the process, whoever imports it.
    script = (
        "import sys\n"
        "def hook(event, args):\n"
        "    if event == 'socket.__new__':\n"
        "        raise SystemExit('socket opened: %r' % (args,))\n"
        "sys.addaudithook(hook)\n"
        "from haipvs.cli import main\n"
        f"sys.exit(main(['check-config', {str(ROOT / 'etc' / 'haipvs.yaml')!r}]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    # The host checks run too (this host may lack the sample's eth1 and scripts: exit 1
    # with located lines), and they read files, never a socket.
    assert done.returncode in (0, 1), done.stderr
    assert "socket opened" not in done.stdout + done.stderr
    assert done.stdout.startswith(str(ROOT / "etc" / "haipvs.yaml") + ":")
