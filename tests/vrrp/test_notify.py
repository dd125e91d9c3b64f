"""Notify hooks: keepalived's argument convention, no shell, order, timeout, isolation."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from vrrp.notify import HookKind, Notifier, NotifyResult, hook_argv, run_argv
from vrrp.settings import NotifySettings

# A hook that appends its arguments (and optionally its environment) to a file.
RECORDER = (
    "import json, os, sys, time\n"
    "path, pause = sys.argv[1], float(sys.argv[2])\n"
    "time.sleep(pause)\n"
    "with open(path, 'a') as f:\n"
    "    f.write(json.dumps({'argv': sys.argv[3:], 'env': dict(os.environ)}) + '\\n')\n"
)


def recorder(path: Path, pause: float = 0.0, *extra: str) -> tuple[str, ...]:
    return (sys.executable, "-c", RECORDER, str(path), str(pause), *extra)


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_hook_argv_appends_keepalived_arguments() -> None:
    settings = NotifySettings(master=("/usr/local/bin/notify", "master"), timeout=5)
    assert hook_argv(settings, HookKind.master, "VI_1", 150) == (
        "/usr/local/bin/notify",
        "master",
        "INSTANCE",
        "VI_1",
        "MASTER",
        "150",
    )
    assert hook_argv(settings, HookKind.backup, "VI_1", 150) is None


async def test_hook_receives_type_name_state_priority(tmp_path: Path) -> None:
    out = tmp_path / "calls"
    notifier = Notifier()
    settings = NotifySettings(master=recorder(out), timeout=10)
    assert notifier.notify("VI_1", settings, HookKind.master, 150)
    await notifier.join()
    await notifier.close()
    assert [call["argv"] for call in lines(out)] == [["INSTANCE", "VI_1", "MASTER", "150"]]
    assert notifier.results[0].ok


async def test_no_shell_and_minimal_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "calls"
    marker = tmp_path / "injected"
    monkeypatch.setenv("HAIPVS_DAEMON_SECRET", "do-not-leak")
    notifier = Notifier()
    settings = NotifySettings(backup=recorder(out, 0.0, f"$(touch {marker})"), timeout=10)
    notifier.notify("VI_1", settings, HookKind.backup, 100)
    await notifier.join()
    await notifier.close()
    (call,) = lines(out)
    # The argument arrives verbatim: nothing interpreted it.
    assert call["argv"] == [f"$(touch {marker})", "INSTANCE", "VI_1", "BACKUP", "100"]
    assert not marker.exists()
    env = call["env"]
    assert isinstance(env, dict)
    assert "HAIPVS_DAEMON_SECRET" not in env
    assert env["PATH"].startswith("/usr/local/sbin")


async def test_hooks_of_one_instance_run_in_order(tmp_path: Path) -> None:
    out = tmp_path / "calls"
    notifier = Notifier()
    # The first hook is the slowest: run concurrently, it would finish last.
    slow = NotifySettings(backup=recorder(out, 0.3), timeout=10)
    fast = NotifySettings(master=recorder(out), fault=recorder(out), timeout=10)
    notifier.notify("VI_1", slow, HookKind.backup, 100)
    notifier.notify("VI_1", fast, HookKind.master, 100)
    notifier.notify("VI_1", fast, HookKind.fault, 100)
    await notifier.join()
    await notifier.close()
    assert [call["argv"][2] for call in lines(out)] == ["BACKUP", "MASTER", "FAULT"]  # type: ignore[index]


async def test_a_slow_instance_does_not_delay_another(tmp_path: Path) -> None:
    out = tmp_path / "calls"
    notifier = Notifier()
    slow = NotifySettings(master=recorder(out, 0.5), timeout=10)
    fast = NotifySettings(master=recorder(out), timeout=10)
    notifier.notify("SLOW", slow, HookKind.master, 1)
    notifier.notify("FAST", fast, HookKind.master, 1)
    await notifier.join()
    await notifier.close()
    assert [call["argv"][1] for call in lines(out)] == ["FAST", "SLOW"]  # type: ignore[index]


async def test_notify_only_enqueues(tmp_path: Path) -> None:
    out = tmp_path / "calls"
    notifier = Notifier()
    settings = NotifySettings(master=recorder(out), timeout=10)
    queued = notifier.notify("VI_1", settings, HookKind.master, 1)
    # Nothing ran yet: notify() returned before the hook even started.
    assert queued and notifier.results == [] and not out.exists()
    await notifier.join()
    await notifier.close()
    assert len(notifier.results) == 1


async def test_hook_past_its_timeout_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    script = (
        "import os, sys, time\n"
        f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        "time.sleep(60)\n"
    )
    seen: list[NotifyResult] = []
    notifier = Notifier(on_result=seen.append)
    settings = NotifySettings(fault=(sys.executable, "-c", script), timeout=0.5)
    with capture_logs() as logs:
        notifier.notify("VI_1", settings, HookKind.fault, 100, vrid=51, iface="eth0")
        await notifier.join()
    await notifier.close()
    assert [(r.timed_out, r.returncode, r.ok) for r in seen] == [(True, None, False)]
    pid = int(pid_file.read_text())
    # Killed and reaped: the pid no longer exists.
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    (line,) = [entry for entry in logs if entry["event"] == "vrrp.notify.failed"]
    assert line["reason"] == "timeout" and line["vrid"] == 51 and line["to_state"] == "fault"


async def test_missing_program_and_exit_status_are_reported(tmp_path: Path) -> None:
    notifier = Notifier()
    settings = NotifySettings(
        master=(str(tmp_path / "does-not-exist"),), backup=("/bin/false",), timeout=5
    )
    with capture_logs() as logs:
        notifier.notify("VI_1", settings, HookKind.master, 1)
        notifier.notify("VI_1", settings, HookKind.backup, 1)
        await notifier.join()
    await notifier.close()
    first, second = notifier.results
    assert first.returncode is None and "FileNotFoundError" in first.error
    assert second.returncode == 1 and not second.timed_out
    assert [entry["reason"] for entry in logs if entry["event"] == "vrrp.notify.failed"] == [
        "exec_failed",
        "exit_status",
    ]


async def test_run_argv_returns_exit_status() -> None:
    outcome = await run_argv(("/bin/sh", "-c", "exit 3"), 5)
    assert (outcome.returncode, outcome.timed_out, outcome.error) == (3, False, "")


def test_no_hook_configured_queues_nothing() -> None:
    notifier = Notifier()
    assert not notifier.notify("VI_1", None, HookKind.master, 1)
    assert not notifier.notify("VI_1", NotifySettings(), HookKind.stop, 1)
