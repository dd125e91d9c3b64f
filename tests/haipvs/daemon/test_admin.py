"""The admin channel end to end: a real Supervisor, its real Unix socket, the CLI commands.

Only the kernel (strict fake), the probes and the VRRP part are fakes.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from support import FakeVrrpPart, free_port, until
from test_supervisor import dests, write_config

import checkers
from haipvs.cli import main as cli_main
from haipvs.daemon.admin import EXIT_DRAIN_TIMED_OUT, admin_request
from haipvs.ipvs import DestKey, DestStats, FakeIpvsKernel, ServiceKey
from haipvs.status.command import render_status
from haipvs.status.metrics import render_metrics
from haipvs.supervisor import Supervisor

pytestmark = pytest.mark.asyncio

VS = ServiceKey.tcp("198.51.100.10", 80)
RS2 = DestKey("10.0.0.12", 80)
VRRP = """vrrp:
  - name: VI_1
    interface: eth0
    vrid: 51
    priority: 150
    vips: [198.51.100.10/24]
"""


async def start(tmp_path: Path, kernel: FakeIpvsKernel, **kwargs: object,
                ) -> tuple[Supervisor, asyncio.Task[int], str]:
    write_config(tmp_path / "haipvs.yaml", free_port(), **kwargs)  # type: ignore[arg-type]
    sock = str(tmp_path / "run" / "admin.sock")
    supervisor = Supervisor(
        str(tmp_path / "haipvs.yaml"), kernel=kernel, vrrp_factory=FakeVrrpPart,
        prober=checkers.ScriptedProber(default=checkers.ProbeResult(True, "connected", 0.001)),
        overrides_file=str(tmp_path / "state" / "overrides.json"), admin_socket=sock,
    )
    task = asyncio.create_task(supervisor.run())
    await until(lambda: os.path.exists(sock))
    return supervisor, task, sock


async def ask(sock: str, **request: object) -> dict[str, object]:
    return await asyncio.to_thread(admin_request, sock, request)


async def cli(*argv: str) -> int:
    return await asyncio.to_thread(cli_main, list(argv))


async def test_drain_is_logged_with_the_uid_persisted_and_survives_a_restart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    kernel = FakeIpvsKernel()
    supervisor, task, sock = await start(tmp_path, kernel)
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o660
    await until(lambda: dests(kernel) == {"10.0.0.11:80": 1, "10.0.0.12:80": 2})
    kernel.set_stats(VS, RS2, DestStats(active_conns=2, inactive_conns=1))
    with capture_logs() as logs:
        assert await cli("drain", "10.0.0.12:80", "--socket", sock) == 0
        await until(lambda: dests(kernel)["10.0.0.12:80"] == 0)
    (line,) = [e for e in logs if e["event"] == "operator.drain"]
    assert (line["uid"], line["target"], line["detail"]) == (
        os.getuid(), "10.0.0.12:80", "10.0.0.12:80: drain")
    # The same vs/rs keys as the check.*, ipvs.* and drain lines about that server.
    assert (line["vs"], line["rs"]) == ("tcp/198.51.100.10:80", "10.0.0.12:80")
    kernel_lines = [e for e in logs if e["event"].startswith("ipvs.dest.")]
    assert kernel_lines
    assert {(e["vs"], e["rs"]) for e in kernel_lines} == {(line["vs"], line["rs"])}
    out = capsys.readouterr().out
    assert "10.0.0.12:80: drain" in out and "active 2, inactive 1" in out
    # Shown in /status, haipvs status and the metrics.
    snap = supervisor.snapshot()
    (rs2,) = [rs for rs in snap.services[0].real_servers if rs.port == 80 and rs.address ==
              "10.0.0.12"]
    assert rs2.admin == "drain"
    assert [(o.kind, o.target, o.matches) for o in snap.overrides] == [
        ("drain", "10.0.0.12:80", 1)]
    assert "drained by the operator" in render_status(snap.to_json())
    metrics = render_metrics(supervisor.snapshot).decode()
    assert ('haipvs_real_server_admin_state{rs="10.0.0.12:80",state="drain",'
            'vs="tcp/198.51.100.10:80"} 1.0') in metrics
    # A reload keeps it (the weight in the file changes, the drain stays).
    write_config(tmp_path / "haipvs.yaml", free_port(), weight2=7)
    assert (await supervisor.reload()).applied
    await asyncio.sleep(0.1)
    assert dests(kernel)["10.0.0.12:80"] == 0
    supervisor.request_shutdown()
    assert await task == 0
    # A restart reads it back before its first sync: the weight never leaves 0.
    kernel.clear_log()
    supervisor, task, sock = await start(tmp_path, kernel, weight2=7)
    await asyncio.sleep(0.2)
    assert dests(kernel)["10.0.0.12:80"] == 0 and kernel.op_log == []
    assert await cli("undrain", "10.0.0.12:80", "--socket", sock) == 0
    await until(lambda: dests(kernel)["10.0.0.12:80"] == 7)
    supervisor.request_shutdown()
    assert await task == 0


async def test_drain_wait_reports_progress_until_no_connection_is_left(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    kernel = FakeIpvsKernel()
    supervisor, task, sock = await start(tmp_path, kernel)
    await until(lambda: len(dests(kernel)) == 2)
    kernel.set_stats(VS, RS2, DestStats(active_conns=1))
    waiting = asyncio.create_task(cli("drain", "10.0.0.12", "--wait", "--interval", "0.05",
                                      "--socket", sock))
    await asyncio.sleep(0.5)
    assert not waiting.done()
    kernel.set_stats(VS, RS2, DestStats())
    assert await asyncio.wait_for(waiting, 10) == 0
    out = capsys.readouterr().out
    assert "1 connection(s) left" in out and "drained: no connection left" in out
    supervisor.request_shutdown()
    assert await task == 0


async def test_drain_wait_timeout_ends_the_wait_not_the_drain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    kernel = FakeIpvsKernel()
    supervisor, task, sock = await start(tmp_path, kernel)
    await until(lambda: len(dests(kernel)) == 2)
    kernel.set_stats(VS, RS2, DestStats(active_conns=1))  # a connection that never ends
    status = await asyncio.wait_for(
        cli("drain", "10.0.0.12", "--wait", "--timeout", "0.3", "--interval", "0.05",
            "--socket", sock), 10)
    assert status == EXIT_DRAIN_TIMED_OUT
    out = capsys.readouterr().out
    assert "1 connection(s) left" in out
    assert "timed out after 0.3s: 1 connection(s) left; the drain stays in force" in out
    assert dests(kernel)["10.0.0.12:80"] == 0  # still drained
    kernel.set_stats(VS, RS2, DestStats())
    assert await cli("drain", "10.0.0.12", "--wait", "--timeout", "5", "--interval", "0.05",
                     "--socket", sock) == 0  # empty in time: drained
    supervisor.request_shutdown()
    assert await task == 0


@pytest.mark.parametrize("value", ["0", "-1", "soon", "inf"])
async def test_drain_timeout_must_be_a_positive_number_of_seconds(
    value: str, capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        await cli("drain", "10.0.0.12", "--wait", "--timeout", value, "--socket", "/nonexistent")
    assert exit_info.value.code == 2
    assert "--timeout" in capsys.readouterr().err


async def test_bad_commands_are_refused_with_a_reason_and_change_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    kernel = FakeIpvsKernel()
    supervisor, task, sock = await start(tmp_path, kernel)
    await until(lambda: len(dests(kernel)) == 2)
    with capture_logs() as logs:
        assert await cli("drain", "10.0.0.99:80", "--socket", sock) == 1
        assert await cli("failover", "VI_1", "--socket", sock) == 1
    assert "10.0.0.99:80 is no real server of the running config" in capsys.readouterr().err
    assert [e["event"] for e in logs if e["event"].startswith("operator.")] == [
        "operator.refused", "operator.refused"]
    answer = await ask(sock, command="nonsense")
    assert answer == {"ok": False, "error": "unknown command 'nonsense'"}
    assert not (tmp_path / "state" / "overrides.json").exists()
    assert await cli("overrides", "--socket", sock) == 0
    assert "no operator override" in capsys.readouterr().out
    supervisor.request_shutdown()
    assert await task == 0


async def test_maintenance_takes_the_server_out_and_back(tmp_path: Path) -> None:
    kernel = FakeIpvsKernel()
    supervisor, task, sock = await start(tmp_path, kernel)
    await until(lambda: len(dests(kernel)) == 2)
    assert await cli("maintenance", "on", "10.0.0.11", "--socket", sock) == 0
    await until(lambda: dests(kernel) == {"10.0.0.12:80": 2})  # drain timeout 0: at once
    assert await cli("maintenance", "off", "10.0.0.11", "--socket", sock) == 0
    await until(lambda: dests(kernel) == {"10.0.0.11:80": 1, "10.0.0.12:80": 2})
    supervisor.request_shutdown()
    assert await task == 0


async def test_failover_holds_the_instance_across_a_restart_until_released(
    tmp_path: Path,
) -> None:
    kernel = FakeIpvsKernel()
    supervisor, task, sock = await start(tmp_path, kernel, extra=VRRP)
    part = FakeVrrpPart.last
    assert part is not None
    with capture_logs() as logs:
        assert await cli("failover", "VI_1", "--socket", sock) == 0
    assert part.holds == {"VI_1": f"operator failover by uid {os.getuid()}"}
    assert [e["event"] for e in logs if e["event"].startswith("operator.")] == [
        "operator.failover"]
    supervisor.request_shutdown()
    assert await task == 0
    supervisor, task, sock = await start(tmp_path, kernel, extra=VRRP)
    part = FakeVrrpPart.last
    assert part is not None and part.holds == {"VI_1": f"operator failover by uid {os.getuid()}"}
    assert await cli("failover", "VI_1", "--release", "--socket", sock) == 0
    assert part.holds == {}
    assert await cli("failover", "VI_1", "--for", "0.2", "--socket", sock) == 0
    assert part.holds != {}
    with capture_logs() as logs:
        await until(lambda: part.holds == {})
    assert [e["event"] for e in logs if e["event"].startswith("operator.")] == [
        "operator.failover.expired"]
    supervisor.request_shutdown()
    assert await task == 0


async def test_sigusr1_logs_the_state_and_the_daemon_keeps_running(tmp_path: Path) -> None:
    kernel = FakeIpvsKernel()
    supervisor, task, _sock = await start(tmp_path, kernel)
    await until(lambda: len(dests(kernel)) == 2)
    with capture_logs() as logs:
        os.kill(os.getpid(), signal.SIGUSR1)
        await until(lambda: any(e["event"] == "daemon.state_dump" for e in logs))
    (dump,) = [e for e in logs if e["event"] == "daemon.state_dump"]
    assert dump["snapshot"]["director"] == "lb-test"
    json.dumps(dump["snapshot"])  # one JSON log line
    await asyncio.sleep(0.1)
    assert not task.done()
    supervisor.request_shutdown()
    assert await task == 0



async def test_drain_director_is_refused_by_a_vrrp_pair(tmp_path: Path) -> None:
    supervisor, task, sock = await start(tmp_path, FakeIpvsKernel())
    with capture_logs() as logs:
        assert await cli("drain-director", "--socket", sock) == 1
    (refused,) = [e for e in logs if e["event"] == "operator.refused"]
    assert "announces no VIP over BGP" in refused["error"]
    assert supervisor.snapshot().overrides == ()
    supervisor.request_shutdown()
    assert await task == 0
