"""`haipvs plan FILE` against a running daemon (fake kernel and VRRP, real status API)."""

from __future__ import annotations

import argparse
import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from support import FakeHost, FakeVrrpPart, free_port, until

import checkers
from haipvs.config import compile_config, load_config_text
from haipvs.daemon import overrides as persisted
from haipvs.daemon.plan import EXIT_CHANGES, EXIT_INVALID, EXIT_NO_CHANGE, plan_command, render_plan
from haipvs.daemon.reload import plan_reload
from haipvs.ipvs import AdminState, FakeIpvsKernel
from haipvs.supervisor import Supervisor

HOST = FakeHost("eth0")

CONFIG = """
director: {{name: lb1, api: '127.0.0.1:{port}'}}
vrrp:
  - {{name: VI_A, interface: eth0, vrid: 1, version: 2, auth_pass: s3cret, vips: [{vips}]}}
virtual_servers:
  - name: web
    vip: 198.51.100.10
    port: 80
    real_servers:
      - {{address: 10.0.0.11, port: 80, weight: 1}}
      - {{address: 10.0.0.12, port: 80, weight: {weight}}}
"""


def text(port: int, *, weight: int = 2, vips: str = "198.51.100.10/24") -> str:
    return CONFIG.format(port=port, weight=weight, vips=vips)


@pytest_asyncio.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[int]:
    port = free_port()
    path = tmp_path / "running.yaml"
    path.write_text(text(port))
    path.chmod(0o644)
    supervisor = Supervisor(
        str(path), kernel=FakeIpvsKernel(), vrrp_factory=FakeVrrpPart, host=HOST,
        prober=checkers.ScriptedProber(default=checkers.ProbeResult(True, "ok", 0.001)),
    )
    task = asyncio.create_task(supervisor.run())
    await until(lambda: supervisor.programmer is not None)
    try:
        yield port
    finally:
        supervisor.request_shutdown()
        await task


@pytest_asyncio.fixture
async def drained_daemon(tmp_path: Path) -> AsyncIterator[int]:
    """The daemon of ``daemon`` with 10.0.0.12:80 drained by the operator (persisted, as
    `haipvs drain` leaves it)."""
    port = free_port()
    path = tmp_path / "running.yaml"
    path.write_text(text(port))
    path.chmod(0o644)
    state = tmp_path / "state" / "overrides.json"
    persisted.save(str(state), persisted.Overrides((persisted.ServerOverride(
        "10.0.0.12", 80, None, AdminState.DRAIN, 0.0, 0),)))
    supervisor = Supervisor(
        str(path), kernel=FakeIpvsKernel(), vrrp_factory=FakeVrrpPart, host=HOST,
        prober=checkers.ScriptedProber(default=checkers.ProbeResult(True, "ok", 0.001)),
        overrides_file=str(state), admin_socket=str(tmp_path / "admin.sock"),
    )
    task = asyncio.create_task(supervisor.run())
    await until(lambda: supervisor.programmer is not None)
    try:
        yield port
    finally:
        supervisor.request_shutdown()
        await task


async def plan(tmp_path: Path, port: int, content: str) -> tuple[int, list[str]]:
    candidate = tmp_path / "new.yaml"
    candidate.write_text(content)
    candidate.chmod(0o644)
    args = argparse.Namespace(file=str(candidate), api=f"127.0.0.1:{port}", token=None,
                              running=None, offline=False)
    out = io.StringIO()
    status = await asyncio.to_thread(plan_command, args, out, host=HOST)
    return status, out.getvalue().splitlines()


@pytest.mark.asyncio
async def test_an_unchanged_file_plans_nothing(tmp_path: Path, daemon: int) -> None:
    # auth_pass is redacted by GET /config and not compared: no change either.
    status, lines = await plan(tmp_path, daemon, text(daemon))
    assert status == EXIT_NO_CHANGE
    assert lines[1:] == ["summary: no changes"]


@pytest.mark.asyncio
async def test_one_weight_prints_exactly_one_ipvs_operation(tmp_path: Path, daemon: int) -> None:
    status, lines = await plan(tmp_path, daemon, text(daemon, weight=5))
    assert status == EXIT_CHANGES
    assert [line for line in lines if line.startswith("ipvs:")] == [
        "ipvs: update-dest tcp/198.51.100.10:80 10.0.0.12:80 weight=5 "
        "(weight_changed: weight 2->5)"
    ]
    assert lines[-1] == "summary: real_servers: 1 changed"


@pytest.mark.asyncio
async def test_a_new_vip_names_the_instance_and_the_vip(tmp_path: Path, daemon: int) -> None:
    status, lines = await plan(
        tmp_path, daemon, text(daemon, vips="198.51.100.10/24, 198.51.100.11/24"))
    assert status == EXIT_CHANGES
    assert "vrrp VI_A: reconfigure (vips): +198.51.100.11/24" in lines
    assert not any(line.startswith("ipvs:") for line in lines)


@pytest.mark.asyncio
async def test_an_invalid_file_prints_the_located_errors(tmp_path: Path, daemon: int) -> None:
    invalid = text(daemon).replace("port: 80\n", "port: 99999\n")
    status, lines = await plan(tmp_path, daemon, invalid)
    assert status == EXIT_INVALID
    assert lines == [f"{tmp_path / 'new.yaml'}:8: virtual_servers[0].port: must be 0..65535"]


def test_a_vip_leaving_a_master_is_a_warning() -> None:
    def compiled(vips: str) -> tuple[object, object]:
        config = load_config_text(text(1, vips=vips)).config
        return config, compile_config(config)

    reload = plan_reload(compiled("198.51.100.10/24, 198.51.100.11/24"),  # type: ignore[arg-type]
                         compiled("198.51.100.10/24"))  # type: ignore[arg-type]
    assert render_plan(reload, {"VI_A": "MASTER"})[:2] == [
        "vrrp VI_A: reconfigure (vips): -198.51.100.11/24",
        "warning: vrrp VI_A is MASTER here: 198.51.100.11/24 leave(s) this director at once",
    ]
    assert not any("warning" in line for line in render_plan(reload, {"VI_A": "BACKUP"}))


@pytest.mark.asyncio
async def test_a_weight_change_of_a_drained_real_server_prints_no_ipvs_operation(
    tmp_path: Path, drained_daemon: int,
) -> None:
    # The drain outlives the reload: 10.0.0.12 stays at weight 0, the kernel sees nothing.
    status, lines = await plan(tmp_path, drained_daemon, text(drained_daemon, weight=5))
    assert status == EXIT_CHANGES
    assert not any(line.startswith("ipvs:") for line in lines)
    assert lines[-1] == "summary: real_servers: 1 changed"
