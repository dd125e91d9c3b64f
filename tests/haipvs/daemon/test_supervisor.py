"""The supervisor against the strict fake kernel, scripted probes and a fake VRRP part.

Real config files, real reloads, real status API on loopback; only the kernel, the
probes and the VRRP side are fakes, each of which has its own contract tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import socket
import sys
from ipaddress import ip_address
from pathlib import Path

import aiohttp
import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs
from support import FakeVrrpPart, free_port, until

import checkers
from haipvs.ipvs import FakeIpvsKernel, UpdateDest
from haipvs.status.command import render_status
from haipvs.supervisor import Supervisor

pytestmark = pytest.mark.asyncio


def write_config(path: Path, port: int, *, weight2: int = 2, extra: str = "") -> None:
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
    drain: {{timeout: 0}}
    check: {{type: tcp, interval: 0.05, timeout: 0.04, rise: 1, fall: 1}}
    real_servers:
      - {{address: 10.0.0.11, port: 80, weight: 1}}
      - {{address: 10.0.0.12, port: 80, weight: {weight2}}}
{extra}""")
    path.chmod(0o644)


@pytest.fixture
def prober() -> checkers.ScriptedProber:
    return checkers.ScriptedProber(default=checkers.ProbeResult(True, "connected", 0.001))


async def start(tmp_path: Path, kernel: FakeIpvsKernel, prober: checkers.ScriptedProber,
                **kwargs: object) -> tuple[Supervisor, asyncio.Task[int], int]:
    port = free_port()
    write_config(tmp_path / "haipvs.yaml", port, **kwargs)  # type: ignore[arg-type]
    supervisor = Supervisor(str(tmp_path / "haipvs.yaml"), kernel=kernel, prober=prober,
                            vrrp_factory=FakeVrrpPart)
    task = asyncio.create_task(supervisor.run())
    await until(lambda: supervisor.programmer is not None)
    return supervisor, task, port


def dests(kernel: FakeIpvsKernel) -> dict[str, int]:
    return {str(key): dest.weight for entry in kernel.table.values()
            for key, dest in entry.dests.items()}


async def test_healthy_backends_are_programmed_and_one_weight_reload_is_one_op(
    tmp_path: Path, prober: checkers.ScriptedProber
) -> None:
    kernel = FakeIpvsKernel()
    supervisor, task, port = await start(tmp_path, kernel, prober)
    await until(lambda: dests(kernel) == {"10.0.0.11:80": 1, "10.0.0.12:80": 2})
    kernel.clear_log()
    write_config(tmp_path / "haipvs.yaml", port, weight2=5)
    with capture_logs() as logs:
        supervisor.request_reload()
        await until(lambda: any(e["event"] == "config.reload.applied" for e in logs))
        await until(lambda: dests(kernel)["10.0.0.12:80"] == 5)
    assert [type(op) for op in kernel.op_log] == [UpdateDest]
    applied = next(e for e in logs if e["event"] == "config.reload.applied")
    assert applied["changes"] == "real_servers: 1 changed"
    supervisor.request_shutdown()
    assert await task == 0
    assert dests(kernel) == {"10.0.0.11:80": 1, "10.0.0.12:80": 5}  # kept by default


async def test_invalid_reload_changes_nothing_and_says_why(
    tmp_path: Path, prober: checkers.ScriptedProber
) -> None:
    kernel = FakeIpvsKernel()
    supervisor, task, _port = await start(tmp_path, kernel, prober)
    await until(lambda: len(dests(kernel)) == 2)
    kernel.clear_log()
    config = tmp_path / "haipvs.yaml"
    config.write_text(
        config.read_text().replace("port: 80\n    scheduler", "port: 99999\n    scheduler")
    )
    with capture_logs() as logs:
        supervisor.request_reload()
        await until(lambda: any(e["event"] == "config.reload.rejected" for e in logs))
    rejected = next(e for e in logs if e["event"] == "config.reload.rejected")
    assert any("virtual_servers[0].port: must be 0..65535" in error for error in rejected["errors"])
    assert kernel.op_log == []
    snap = supervisor.snapshot()
    assert snap.last_reload is not None and snap.last_reload.result == "rejected"
    assert snap.reloads_rejected == 1
    supervisor.request_shutdown()
    assert await task == 0


async def test_restart_adopts_the_existing_table_with_zero_ops(
    tmp_path: Path, prober: checkers.ScriptedProber
) -> None:
    kernel = FakeIpvsKernel()
    supervisor, task, _ = await start(tmp_path, kernel, prober)
    await until(lambda: len(dests(kernel)) == 2)
    supervisor.request_shutdown()
    assert await task == 0
    kernel.clear_log()
    second = Supervisor(str(tmp_path / "haipvs.yaml"), kernel=kernel, prober=prober)
    task = asyncio.create_task(second.run())
    calls = len(prober.calls)
    # Every adopted real server has been checked again, and a full compare has run since.
    await until(lambda: second.programmer is not None and len(prober.calls) >= calls + 4)
    assert second.programmer is not None
    syncs = second.programmer.status().syncs
    second.programmer.request_sync("test")
    await until(lambda: second.programmer is not None and second.programmer.status().syncs > syncs)
    assert kernel.op_log == []
    second.request_shutdown()
    assert await task == 0


async def test_restart_over_a_hot_table_is_one_dump_and_no_op(
    tmp_path: Path, prober: checkers.ScriptedProber
) -> None:
    # The adoption's dump is the first sync's too, and the programmer's loop does not
    # compare again at once: until the next periodic compare (max_interval 5 s), a
    # restart reads the table once and writes nothing (the checks' first results may
    # cause fast syncs, which compare without a dump).
    kernel = FakeIpvsKernel()
    supervisor, task, _ = await start(tmp_path, kernel, prober)
    await until(lambda: len(dests(kernel)) == 2)
    supervisor.request_shutdown()
    assert await task == 0
    kernel.clear_log()
    dumps = kernel.dump_count
    second = Supervisor(str(tmp_path / "haipvs.yaml"), kernel=kernel, prober=prober,
                        vrrp_factory=FakeVrrpPart)
    calls = len(prober.calls)
    task = asyncio.create_task(second.run())
    # The checkers start after the first sync and after the programmer's loop: once each
    # real server was checked, the old loop had long made its immediate second compare.
    await until(lambda: len(prober.calls) >= calls + 2)
    assert kernel.dump_count == dumps + 1
    assert kernel.op_log == []
    second.request_shutdown()
    assert await task == 0


async def test_the_collector_is_on_once_the_daemon_has_started(
    tmp_path: Path, prober: checkers.ScriptedProber
) -> None:
    # `haipvs run` starts with the collector off (haipvs.cli): the supervisor freezes
    # what the start built and turns it on.
    gc.disable()
    try:
        supervisor, task, _ = await start(tmp_path, FakeIpvsKernel(), prober)
        await until(gc.isenabled)
        supervisor.request_shutdown()
        assert await task == 0
    finally:
        gc.enable()


async def test_a_failing_backend_leaves_and_the_api_shows_it(
    tmp_path: Path, prober: checkers.ScriptedProber
) -> None:
    kernel = FakeIpvsKernel()
    supervisor, task, port = await start(tmp_path, kernel, prober)
    await until(lambda: len(dests(kernel)) == 2)
    prober.always(checkers.Target(ip_address("10.0.0.12"), 80),
                  checkers.ProbeResult(False, "connect refused", 0.001))
    await until(lambda: list(dests(kernel)) == ["10.0.0.11:80"])
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/status") as response:
            status = await response.json()
        async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
            metrics = await response.text()
        async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
            assert response.status == 200
    schema = json.loads(Path("docs/status.schema.json").read_text())
    jsonschema.validate(status, schema)
    (web,) = status["services"]
    health = {rs["address"]: (rs["health"], rs["reason"]) for rs in web["real_servers"]}
    assert health["10.0.0.12"][0] == "down" and "connect refused" in health["10.0.0.12"][1]
    families = {family.name: family for family in text_string_to_metric_families(metrics)}
    up = {s.labels["rs"]: s.value for s in families["haipvs_check_up"].samples}
    assert up == {"10.0.0.11:80": 1.0, "10.0.0.12:80": 0.0}
    assert "haipvs_ipvs_ops" in families
    (restarts,) = families["haipvs_vrrp_process_restarts"].samples
    assert restarts.value == status["vrrp_restarts"] == 0
    (inconclusive,) = families["haipvs_check_inconclusive"].samples
    assert inconclusive.value == status["checks_inconclusive"] == 0
    text = render_status(status)
    rows = {line.split()[1]: line for line in text.splitlines() if line.startswith("  -> ")}
    assert "Masq    1/1" in rows["10.0.0.11:80"] and "up: " in rows["10.0.0.11:80"]
    assert "-/2" in rows["10.0.0.12:80"] and "down: " in rows["10.0.0.12:80"]
    assert "connect refused" in rows["10.0.0.12:80"]
    cli = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "haipvs", "status", "--api", f"127.0.0.1:{port}",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await cli.communicate()
    assert cli.returncode == 0 and b"10.0.0.12:80" in out and b"web" in out
    supervisor.request_shutdown()
    assert await task == 0


async def test_many_reload_signals_collapse_and_the_last_file_wins(
    tmp_path: Path, prober: checkers.ScriptedProber
) -> None:
    kernel = FakeIpvsKernel()
    supervisor, task, port = await start(tmp_path, kernel, prober)
    await until(lambda: len(dests(kernel)) == 2)
    write_config(tmp_path / "haipvs.yaml", port, weight2=7)
    with capture_logs() as logs:
        for _ in range(100):
            supervisor.request_reload()
        await until(lambda: dests(kernel).get("10.0.0.12:80") == 7)
        await asyncio.sleep(0)
    applied = [e for e in logs if e["event"] == "config.reload.applied"]
    assert len(applied) == 1
    supervisor.request_shutdown()
    assert await task == 0


async def test_systemd_hears_ready_reloading_and_stopping(
    tmp_path: Path, prober: checkers.ScriptedProber, monkeypatch: pytest.MonkeyPatch
) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(tmp_path / "notify"))
    listener.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    kernel = FakeIpvsKernel()
    supervisor, task, _port = await start(tmp_path, kernel, prober)
    await until(lambda: len(dests(kernel)) == 2)
    supervisor.request_reload()
    await until(lambda: supervisor.snapshot().reloads_applied == 1)
    supervisor.request_shutdown()
    assert await task == 0
    messages = []
    with contextlib.suppress(BlockingIOError):
        while True:
            messages.append(listener.recv(4096).decode())
    listener.close()
    firsts = [message.splitlines()[0] for message in messages]
    assert firsts == ["READY=1", "RELOADING=1", "READY=1", "STOPPING=1"]


async def test_a_reload_parses_the_file_off_the_event_loop(
    tmp_path: Path, prober: checkers.ScriptedProber, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A big or hostile file (a YAML alias bomb) must not stall the loop that pings the
    # watchdog and serves /healthz: the parse waits here until the loop has run
    # something, which only happens when the parse is off the loop.
    import threading

    import haipvs.daemon.accept as gate_module  # the reload's gate reads the file

    kernel = FakeIpvsKernel()
    supervisor, task, port = await start(tmp_path, kernel, prober)
    await until(lambda: len(dests(kernel)) == 2)
    parsing, loop_ran = threading.Event(), threading.Event()
    real_load = gate_module.load_config

    def load_waiting_for_the_loop(path: str) -> object:
        parsing.set()
        assert loop_ran.wait(20), "the event loop was blocked while the file parsed"
        return real_load(path)

    monkeypatch.setattr(gate_module, "load_config", load_waiting_for_the_loop)
    write_config(tmp_path / "haipvs.yaml", port, weight2=7)
    with capture_logs() as logs:
        supervisor.request_reload()
        await until(parsing.is_set, 30)
        loop_ran.set()
        await until(lambda: any(e["event"] == "config.reload.applied" for e in logs), 30)
    supervisor.request_shutdown()
    assert await task == 0


async def test_a_reload_with_no_descriptor_left_is_rejected_not_fatal(
    tmp_path: Path, prober: checkers.ScriptedProber, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Descriptors exhausted (by a flood of API clients, say): SIGHUP's RELOADING=1 to
    # systemd and the file's open both fail with EMFILE. The daemon must live on.
    import errno
    import os
    import resource

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(tmp_path / "notify"))
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    kernel = FakeIpvsKernel()
    supervisor, task, _port = await start(tmp_path, kernel, prober)
    await until(lambda: len(dests(kernel)) == 2)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    held: list[int] = []
    with capture_logs() as logs:
        resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 8, hard))
        try:
            try:
                while True:
                    held.append(os.open("/dev/null", os.O_RDONLY))
            except OSError as error:
                assert error.errno == errno.EMFILE
            supervisor.request_reload()
            await until(lambda: supervisor.snapshot().reloads_rejected == 1, 30)
        finally:
            for fd in held:
                os.close(fd)
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert not task.done()
    (rejected,) = [e for e in logs if e["event"] == "config.reload.rejected"]
    assert any("Too many open files" in error for error in rejected["errors"])
    supervisor.request_shutdown()
    assert await task == 0
    listener.close()
