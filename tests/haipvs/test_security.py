"""Security rules of issue 9: scripts others can change are refused (keepalived's
enable_script_security), the status API needs a token off loopback, and the daemon
refuses a config file others can write."""

from __future__ import annotations

import asyncio
import os
import stat
from ipaddress import IPv4Interface
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from support import FakeVrrpPart, free_port

import checkers
import vrrp
from checkers.exec_probe import CHECK_PATH, check_exec
from haipvs.config import ConfigInvalid, load_config_text
from haipvs.ipvs import FakeIpvsKernel
from haipvs.security import (
    ScriptProblem,
    UnsafeScriptError,
    check_executable_safety,
    path_problem,
    resolve_command,
    script_commands,
    unsafe_paths,
)
from haipvs.status.api import ReloadOutcome, StatusApi
from haipvs.status.snapshot import Snapshot
from haipvs.supervisor import Supervisor, UnsafeConfigFileError, check_file_safety
from vrrp.notify import MINIMAL_ENVIRONMENT, run_argv

NOBODY = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")


@pytest.fixture
def safe_dir(tmp_path: Path) -> Path:
    """A root-owned 0755 directory whose ancestors are safe (pytest's tmp_path is)."""
    directory = tmp_path / "scripts"
    directory.mkdir()
    directory.chmod(0o755)
    return directory


def script(directory: Path, name: str = "notify.sh", mode: int = 0o755) -> Path:
    path = directory / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(mode)
    return path


def tmp_path_is_safe(tmp_path: Path) -> bool:
    return path_problem(str(script(tmp_path, "probe.sh"))) is None


# --- scripts -------------------------------------------------------------------------------


def test_a_root_owned_script_in_a_root_owned_directory_is_safe(safe_dir: Path) -> None:
    if not tmp_path_is_safe(safe_dir):
        pytest.skip("the temporary directory's ancestors are not root-owned here")
    path = script(safe_dir)
    assert path_problem(str(path)) is None
    check_executable_safety(str(path))
    assert unsafe_paths([(str(path), "MASTER")]) == []


@pytest.mark.parametrize("mode", [0o757, 0o777, 0o702])
def test_a_world_writable_script_is_refused(safe_dir: Path, mode: int) -> None:
    path = script(safe_dir, mode=mode)
    problem = path_problem(str(path))
    assert problem == ScriptProblem(
        str(path), str(path), f"is writable by other users (mode {mode:04o})"
    )
    with pytest.raises(UnsafeScriptError) as raised:
        check_executable_safety(str(path))
    assert raised.value.problem == problem
    assert unsafe_paths([(str(path),)]) == [
        f"{path}: refused: is writable by other users (mode {mode:04o})"
    ]


@as_root
def test_a_group_writable_script_is_refused_unless_the_group_is_root(safe_dir: Path) -> None:
    if not tmp_path_is_safe(safe_dir):
        pytest.skip("the temporary directory's ancestors are not root-owned here")
    path = script(safe_dir, mode=0o775)
    # Group root (gid 0) may write, as in keepalived's check_security.
    os.chown(path, 0, 0)
    assert path_problem(str(path)) is None
    os.chown(path, 0, NOBODY)
    problem = path_problem(str(path))
    assert problem is not None
    assert problem.reason == f"is writable by group {NOBODY} (mode 0775)"


@as_root
def test_a_script_not_owned_by_root_is_refused(safe_dir: Path) -> None:
    path = script(safe_dir, mode=0o755)
    os.chown(path, NOBODY, 0)
    problem = path_problem(str(path))
    assert problem is not None
    assert (problem.path, problem.reason) == (str(path), f"is owned by uid {NOBODY}, not root")


def test_a_script_in_a_world_writable_directory_is_refused(safe_dir: Path) -> None:
    # Anyone could replace the file: the directory is as dangerous as the file.
    path = script(safe_dir, mode=0o755)
    safe_dir.chmod(0o777)
    problem = path_problem(str(path))
    assert problem is not None
    assert problem.path == str(safe_dir)
    assert problem.reason == "is writable by other users (mode 0777)"
    assert str(problem) == f"{path}: refused: {safe_dir} is writable by other users (mode 0777)"


@as_root
def test_a_script_in_a_directory_owned_by_another_user_is_refused(safe_dir: Path) -> None:
    path = script(safe_dir, mode=0o755)
    os.chown(safe_dir, NOBODY, NOBODY)
    problem = path_problem(str(path))
    assert problem is not None
    assert (problem.path, problem.reason) == (str(safe_dir), f"is owned by uid {NOBODY}, not root")


def test_a_sticky_world_writable_directory_like_tmp_is_allowed(safe_dir: Path) -> None:
    if not tmp_path_is_safe(safe_dir):
        pytest.skip("the temporary directory's ancestors are not root-owned here")
    path = script(safe_dir, mode=0o755)
    safe_dir.chmod(0o1777)
    assert path_problem(str(path)) is None


def test_a_script_in_a_deeper_unsafe_ancestor_is_refused(safe_dir: Path) -> None:
    nested = safe_dir / "a" / "b"
    nested.mkdir(parents=True)
    nested.chmod(0o755)
    (safe_dir / "a").chmod(0o777)
    path = script(nested)
    problem = path_problem(str(path))
    assert problem is not None and problem.path == str(safe_dir / "a")


def test_a_safe_symlink_to_an_unsafe_target_is_refused(safe_dir: Path, tmp_path: Path) -> None:
    unsafe_dir = tmp_path / "unsafe"
    unsafe_dir.mkdir()
    unsafe_dir.chmod(0o777)
    target = script(unsafe_dir, "real.sh")
    link = safe_dir / "notify.sh"
    link.symlink_to(target)
    problem = path_problem(str(link))
    assert problem is not None
    assert problem.path == str(unsafe_dir)


def test_a_directory_symlink_into_an_unsafe_directory_is_refused(
    safe_dir: Path, tmp_path: Path
) -> None:
    unsafe_dir = tmp_path / "unsafe"
    unsafe_dir.mkdir()
    unsafe_dir.chmod(0o777)
    script(unsafe_dir, "real.sh")
    (safe_dir / "hooks").symlink_to(unsafe_dir)
    problem = path_problem(str(safe_dir / "hooks" / "real.sh"))
    assert problem is not None
    assert (problem.path, problem.reason) == (
        str(unsafe_dir), "is writable by other users (mode 0777)")


def test_a_symlink_to_a_safe_script_is_allowed(safe_dir: Path) -> None:
    if not tmp_path_is_safe(safe_dir):
        pytest.skip("the temporary directory's ancestors are not root-owned here")
    target = script(safe_dir, "real.sh")
    link = safe_dir / "notify.sh"
    link.symlink_to(target)
    assert path_problem(str(link)) is None


def test_missing_not_executable_and_directory_scripts_are_refused(safe_dir: Path) -> None:
    missing = safe_dir / "missing.sh"
    problem = path_problem(str(missing))
    assert problem is not None and problem.reason.startswith("cannot be read")
    plain = script(safe_dir, "plain.sh", mode=0o644)
    problem = path_problem(str(plain))
    assert problem is not None and problem.reason == "is not executable"
    problem = path_problem(str(safe_dir))
    assert problem is not None and problem.reason == "is not a regular file"


def test_a_path_through_a_file_is_refused(safe_dir: Path) -> None:
    path = script(safe_dir)
    problem = path_problem(f"{path}/inner.sh")
    assert problem is not None
    assert (problem.path, problem.reason) == (str(path), "is not a directory")


def test_bare_names_are_looked_up_in_the_scripts_fixed_path(safe_dir: Path) -> None:
    if not tmp_path_is_safe(safe_dir):
        pytest.skip("the temporary directory's ancestors are not root-owned here")
    path = script(safe_dir, "haipvs-notify")
    assert resolve_command("haipvs-notify", search_path=f"/nonexistent:{safe_dir}") == str(path)
    assert path_problem("haipvs-notify", search_path=str(safe_dir)) is None
    path.chmod(0o777)
    problem = path_problem("haipvs-notify", search_path=str(safe_dir))
    assert problem is not None and problem.path == str(path)
    problem = path_problem("no-such-command-here", search_path=str(safe_dir))
    assert problem is not None and problem.reason.startswith("not found in PATH")


def test_system_commands_on_the_default_path_are_safe() -> None:
    if not Path("/bin/true").exists():
        pytest.skip("no /bin/true")
    assert unsafe_paths([("true",), ("/bin/true", "x")]) == []


def test_unsafe_paths_reports_each_command_once_in_order(safe_dir: Path) -> None:
    first = script(safe_dir, "a.sh", mode=0o777)
    second = script(safe_dir, "b.sh", mode=0o666)
    messages = unsafe_paths([(str(first), "MASTER"), (str(second),), (str(first), "BACKUP"), ()])
    assert len(messages) == 2
    assert messages[0].startswith(f"{first}: refused: ")
    assert messages[1].startswith(f"{second}: refused: ")


def test_script_commands_collects_notify_track_and_exec_checks() -> None:
    instance = vrrp.InstanceSettings(
        name="VI_1",
        interface="eth0",
        vrid=51,
        priority=100,
        version=3,
        advert_interval=1.0,
        preempt=True,
        preempt_delay=0.0,
        vips=(vrrp.VipSpec(IPv4Interface("192.0.2.10/24")),),
        track_scripts=(
            vrrp.TrackScript(command=("/etc/haipvs/track.sh", "x"), interval=2.0, timeout=1.0,
                             rise=1, fall=1, weight=0),
        ),
        notify=vrrp.NotifySettings(master=("/etc/haipvs/master.sh",), fault=("logger", "f")),
    )
    timing = checkers.Timing(interval=1.0, timeout=0.5, rise=1, fall=1)
    exec_check = checkers.ExecCheck(timing=timing, command=("/etc/haipvs/check.sh", "--rs"))
    tcp_check = checkers.TcpCheck(timing=timing)
    commands = script_commands(
        [instance], [("target", exec_check), tcp_check]
    )
    assert commands == [
        ("/etc/haipvs/master.sh",),
        ("logger", "f"),
        ("/etc/haipvs/track.sh", "x"),
        ("/etc/haipvs/check.sh", "--rs"),
    ]


# --- one rule for scripts' arguments and the config file -------------------------------------


def test_an_interpreter_running_a_writable_script_is_refused(safe_dir: Path) -> None:
    if not tmp_path_is_safe(safe_dir):
        pytest.skip("the temporary directory's ancestors are not root-owned here")
    writable = safe_dir / "writable"
    writable.mkdir()
    writable.chmod(0o777)
    hook = script(writable, "x.sh", mode=0o644)  # sh needs no executable bit
    assert unsafe_paths([("/bin/sh", str(hook), "MASTER")]) == [
        f"/bin/sh: refused: {writable} is writable by other users (mode 0777)"
    ]
    # A safe script argument, a missing file or a non-path argument is no problem.
    safe = script(safe_dir, "y.sh", mode=0o644)
    assert unsafe_paths([("/bin/sh", str(safe), "-x", "/nonexistent/out", "MASTER")]) == []


def test_a_group_writable_script_argument_is_refused(safe_dir: Path) -> None:
    hook = script(safe_dir, "x.sh", mode=0o664)
    os.chown(hook, 0, NOBODY) if os.geteuid() == 0 else pytest.skip("chown needs root")
    assert unsafe_paths([("/bin/sh", str(hook))]) == [
        f"/bin/sh: refused: {hook} is writable by group {NOBODY} (mode 0664)"
    ]


@as_root
def test_a_group_writable_config_of_another_user_in_a_writable_directory_is_refused(
    tmp_path: Path,
) -> None:
    # The old check looked at the file's world-write bit only: this passed.
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    config = shared / "haipvs.yaml"
    config.write_text("director: {name: d1}\n")
    config.chmod(0o664)
    os.chown(config, NOBODY, NOBODY)
    with pytest.raises(UnsafeConfigFileError,
                       match=f"{shared} is writable by other users \\(mode 0777\\)"):
        check_file_safety(str(config))
    shared.chmod(0o755)
    with pytest.raises(UnsafeConfigFileError, match=f"is owned by uid {NOBODY}, not root"):
        check_file_safety(str(config))
    os.chown(config, 0, NOBODY)
    with pytest.raises(UnsafeConfigFileError, match=f"is writable by group {NOBODY}"):
        check_file_safety(str(config))
    config.chmod(0o644)
    check_file_safety(str(config))


@as_root
def test_a_sticky_directory_protects_only_when_root_owns_it(safe_dir: Path) -> None:
    if not tmp_path_is_safe(safe_dir):
        pytest.skip("the temporary directory's ancestors are not root-owned here")
    config = safe_dir / "haipvs.yaml"
    config.write_text("director: {name: d1}\n")
    config.chmod(0o644)
    safe_dir.chmod(0o1777)
    check_file_safety(str(config))  # root's /tmp-like directory
    os.chown(safe_dir, NOBODY, NOBODY)  # its owner may replace every entry
    with pytest.raises(UnsafeConfigFileError, match=f"is owned by uid {NOBODY}"):
        check_file_safety(str(config))
    problem = path_problem(str(script(safe_dir, "hook.sh")))
    assert problem is not None and problem.path == str(safe_dir)


# --- status API ----------------------------------------------------------------------------


def no_snapshot() -> Snapshot:
    raise AssertionError("the snapshot must not be read")


async def no_reload() -> ReloadOutcome:
    raise AssertionError("reload must not run")


@pytest.mark.parametrize("listen", ["0.0.0.0:9797", "192.0.2.1:9797", "[::]:9797",
                                    "director.example:9797"])
def test_status_api_refuses_a_non_loopback_bind_without_a_token(listen: str) -> None:
    with pytest.raises(ValueError, match="api_token"):
        StatusApi(listen, snapshot=no_snapshot, reload=no_reload)
    with pytest.raises(ValueError, match="api_token"):
        StatusApi(listen, snapshot=no_snapshot, reload=no_reload, token="")


@pytest.mark.parametrize("listen", ["127.0.0.1:9797", "127.0.0.53:9797", "[::1]:9797",
                                    "localhost:9797"])
def test_status_api_binds_loopback_without_a_token(listen: str) -> None:
    api = StatusApi(listen, snapshot=no_snapshot, reload=no_reload)
    assert api.port == 9797


async def test_a_token_protected_api_answers_only_with_the_token() -> None:
    api = StatusApi("0.0.0.0:9797", snapshot=no_snapshot, reload=no_reload, token="s3cret")
    async with TestClient(TestServer(api.app())) as client:
        missing = await client.get("/healthz")
        assert missing.status == 401
        wrong = await client.get("/healthz", headers={"Authorization": "Bearer nope"})
        assert wrong.status == 401
        reload = await client.post("/reload")
        assert reload.status == 401
        good = await client.get("/healthz", headers={"Authorization": "Bearer s3cret"})
        assert good.status == 200
        assert await good.text() == "ok\n"


# --- config file ---------------------------------------------------------------------------


def test_a_world_writable_config_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "haipvs.yaml"
    config.write_text("director: {name: d1}\n")
    config.chmod(0o644)
    check_file_safety(str(config))
    config.chmod(0o646)
    with pytest.raises(UnsafeConfigFileError, match="writable by other users"):
        check_file_safety(str(config))
    assert stat.S_IMODE(config.stat().st_mode) == 0o646


async def test_the_daemon_does_not_start_with_a_world_writable_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "haipvs.yaml"
    config.write_text("director: {name: d1}\n")
    config.chmod(0o666)
    assert await Supervisor(str(config)).run() == 1
    assert "writable by other users" in capsys.readouterr().err


def test_the_status_api_binds_loopback_unless_configured_otherwise() -> None:
    loaded = load_config_text("director: {name: d1}\n")
    assert loaded.config.director.api == "127.0.0.1:9797"
    with pytest.raises(ConfigInvalid, match=r"set director\.api_token"):
        load_config_text("director: {name: d1, api: '0.0.0.0:9797'}\n")
    protected = load_config_text(
        "director: {name: d1, api: '0.0.0.0:9797', api_token: s3cret}\n")
    assert not any("api_token" in str(warning) for warning in protected.warnings)


# --- how scripts run: no shell, minimal environment ------------------------------------------


def recorder(directory: Path) -> tuple[Path, Path]:
    """A script that writes its arguments and its environment, one per line."""
    out = directory / "recorded"
    path = directory / "record.sh"
    path.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {out}\nenv > {out}.env\n')
    path.chmod(0o755)
    return path, out


HOSTILE = ("$(touch /nonexistent-pwned)", "; rm -rf /", "`id`", "a b", "*")


async def test_notify_hooks_run_without_a_shell_and_with_a_minimal_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HAIPVS_DAEMON_SECRET", "must-not-leak")
    script_path, out = recorder(tmp_path)
    outcome = await run_argv((str(script_path), *HOSTILE), kill_after=10.0)
    assert (outcome.returncode, outcome.timed_out, outcome.error) == (0, False, "")
    # Each argument arrives as one literal word: nothing was expanded by a shell.
    assert out.read_text().splitlines() == list(HOSTILE)
    environment = dict(
        line.split("=", 1) for line in Path(f"{out}.env").read_text().splitlines() if "=" in line
    )
    environment.pop("PWD", None)  # sh sets it itself
    environment.pop("SHLVL", None)
    environment.pop("_", None)
    assert environment == dict(MINIMAL_ENVIRONMENT)


async def test_exec_checks_run_without_a_shell_and_with_a_minimal_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HAIPVS_DAEMON_SECRET", "must-not-leak")
    script_path, out = recorder(tmp_path)
    result = await check_exec((str(script_path), *HOSTILE), 10.0,
                              address="10.0.0.11", port=80)
    assert result.ok, result.detail
    assert out.read_text().splitlines() == list(HOSTILE)
    environment = Path(f"{out}.env").read_text()
    assert "HAIPVS_DAEMON_SECRET" not in environment
    assert f"PATH={CHECK_PATH}" in environment.splitlines()


# --- the daemon refuses unsafe scripts at start and on reload ---------------------------------


def daemon_config(path: Path, port: int, command: Path) -> None:
    path.write_text(f"""
director:
  name: lb-test
  api: 127.0.0.1:{port}
  log_format: json
ipvs:
  programmer: {{min_interval: 0.01, max_interval: 5}}
virtual_servers:
  - name: web
    vip: 198.51.100.10
    port: 80
    scheduler: wlc
    check: {{type: exec, command: ["{command}", "--quiet"], interval: 0.05, timeout: 0.04,
             rise: 1, fall: 1}}
    real_servers:
      - {{address: 10.0.0.11, port: 80}}
""")
    path.chmod(0o644)


def daemon(config: Path) -> Supervisor:
    return Supervisor(
        str(config),
        kernel=FakeIpvsKernel(),
        prober=checkers.ScriptedProber(default=checkers.ProbeResult(True, "ok", 0.001)),
        vrrp_factory=FakeVrrpPart,
    )


async def test_the_daemon_refuses_to_start_with_an_unsafe_check_script(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unsafe_dir = tmp_path / "hooks"
    unsafe_dir.mkdir()
    unsafe_dir.chmod(0o777)
    command = script(unsafe_dir, "check.sh")
    config = tmp_path / "haipvs.yaml"
    daemon_config(config, free_port(), command)
    supervisor = daemon(config)
    task = asyncio.create_task(supervisor.run())
    done, _pending = await asyncio.wait({task}, timeout=5.0)
    if not done:
        supervisor.request_shutdown()
        await task
        pytest.fail("the daemon started with a script others can change")
    assert task.result() == 1
    assert f"{command}: refused: {unsafe_dir} is writable by other users" in capsys.readouterr().err


async def test_a_reload_that_brings_an_unsafe_script_is_rejected(tmp_path: Path) -> None:
    safe = tmp_path / "safe"
    safe.mkdir()
    safe.chmod(0o755)
    unsafe = tmp_path / "unsafe"
    unsafe.mkdir()
    unsafe.chmod(0o777)
    config = tmp_path / "haipvs.yaml"
    port = free_port()
    daemon_config(config, port, script(safe, "check.sh"))
    supervisor = daemon(config)
    task = asyncio.create_task(supervisor.run())
    try:
        async with asyncio.timeout(10):
            while supervisor.programmer is None:
                await asyncio.sleep(0.01)
        daemon_config(config, port, script(unsafe, "check.sh"))
        outcome = await supervisor.reload()
        assert not outcome.applied
        assert any("refused" in error for error in outcome.errors), outcome.errors
    finally:
        supervisor.request_shutdown()
        await task
