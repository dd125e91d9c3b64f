"""haipvs drain-director end to end: the real supervisor, its admin socket and the CLI, a
fake kernel and a fake BIRD. The drain withdraws every VIP, shows in /status, haipvs
status and the metrics, survives a reload and a restart, and undrain announces again."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import aiohttp
import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs
from support import FakeVrrpPart, free_port, until
from test_supervisor_hook import PROTOCOL, write_config

import checkers
from haipvs.bgp.fake import FakeSpeaker
from haipvs.cli import main as cli_main
from haipvs.ipvs import FakeIpvsKernel
from haipvs.status.command import render_status
from haipvs.status.metrics import render_metrics
from haipvs.supervisor import Supervisor, director_state

pytestmark = pytest.mark.asyncio


async def cli(*argv: str) -> int:
    return await asyncio.to_thread(cli_main, list(argv))


def sloppy_file(tmp_path: Path) -> Path:
    path = tmp_path / "sloppy_tcp"
    if not path.exists():
        path.write_text("0\n")
    return path


def start(tmp_path: Path, speaker: FakeSpeaker, port: int,
          ) -> tuple[Supervisor, asyncio.Task[int], str]:
    sock = str(tmp_path / "run" / "admin.sock")
    prober = checkers.ScriptedProber(default=checkers.ProbeResult(True, "connected", 0.001))
    supervisor = Supervisor(
        str(tmp_path / "haipvs.yaml"), kernel=FakeIpvsKernel(), prober=prober,
        vrrp_factory=FakeVrrpPart, bgp_speaker=lambda _socket: speaker,
        sloppy_tcp_file=str(sloppy_file(tmp_path)), bgp_vip_check=lambda _vips: {},
        overrides_file=str(tmp_path / "state" / "overrides.json"), admin_socket=sock,
    )
    return supervisor, asyncio.create_task(supervisor.run()), sock


async def status_of(port: int) -> dict[str, object]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/status") as response,
    ):
        status: dict[str, object] = await response.json()
    jsonschema.validate(status, json.loads(Path("docs/status.schema.json").read_text()))
    return status


async def test_drain_director_withdraws_persists_and_undrain_announces_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    port = free_port()
    bird_conf = tmp_path / "haipvs-bird.conf"
    write_config(tmp_path / "haipvs.yaml", port, bird_conf)
    speaker = FakeSpeaker(config_file=bird_conf)
    supervisor, task, sock = start(tmp_path, speaker, port)
    await until(lambda: os.path.exists(sock))
    with capture_logs() as logs:
        await until(lambda: speaker.announced() == {PROTOCOL})
        assert await cli("drain-director", "--socket", sock) == 0
        await until(lambda: speaker.announced() == frozenset())
    assert "director drained: every VIP withdrawn" in capsys.readouterr().out
    (line,) = [e for e in logs if e["event"] == "operator.director.drain"]
    assert (line["uid"], line["changed"]) == (os.getuid(), True)
    (withdrawn,) = [e for e in logs if e["event"] == "bgp.vip.withdrawn"]
    assert withdrawn["reason"] == "director drained by the operator"

    status = await status_of(port)
    assert status["bgp"] == {"announced": [], "drained": True,  # type: ignore[comparison-overlap]
                             "protocols": {PROTOCOL: "down"}, "speaker_error": None,
                             "withheld": {"192.0.2.10": "director drained by the operator"}}
    (override,) = status["overrides"]  # type: ignore[misc]
    assert (override["kind"], override["target"], override["uid"], override["matches"]) == (
        "drain-director", "d1", os.getuid(), 1)
    # The table's fingerprint, to compare with the other directors'.
    (service,) = status["services"]  # type: ignore[misc]
    assert service["dest_order_canonical"] is True
    assert len(service["fingerprint"]) == 12
    text = render_status(supervisor.snapshot().to_json())
    assert f"table {service['fingerprint']}" in text
    assert "Scale-out (BGP): announcing nothing" in text
    assert "drained by the operator (haipvs undrain-director to announce again)" in text
    assert "192.0.2.10 withdrawn: director drained by the operator" in text
    metrics = render_metrics(supervisor.snapshot).decode()
    assert "haipvs_bgp_director_drained 1.0" in metrics
    assert 'haipvs_operator_overrides{kind="drain-director"} 1.0' in metrics
    assert "haipvs_bgp_vip_announced{" not in metrics
    (sample,) = [sample for family in text_string_to_metric_families(metrics)
                 for sample in family.samples
                 if sample.name == "haipvs_ipvs_service_fingerprint"]
    assert sample.labels == {"vs": "tcp/192.0.2.10:80"}
    assert sample.value == int(service["fingerprint"], 16)  # exact: 48 bits
    assert 'haipvs_ipvs_service_dest_order_canonical{vs="tcp/192.0.2.10:80"} 1.0' in metrics

    # A reload keeps it; so does a restart (the gates read it before the first announce).
    assert (await supervisor.reload()).applied
    await asyncio.sleep(0.7)
    assert speaker.announced() == frozenset()
    supervisor.request_shutdown()
    assert await task == 0
    speaker = FakeSpeaker(config_file=bird_conf)
    supervisor, task, sock = start(tmp_path, speaker, port)
    await until(lambda: os.path.exists(sock))
    await until(lambda: speaker.configures >= 1)
    await until(lambda: director_state(supervisor.snapshot()).up_by_service == {
        "tcp/192.0.2.10:80": 2})
    await asyncio.sleep(0.7)  # more than a gate interval with every other gate holding
    assert speaker.announced() == frozenset()
    assert supervisor.snapshot().bgp.drained  # type: ignore[union-attr]

    with capture_logs() as logs:
        assert await cli("undrain-director", "--socket", sock) == 0
        await until(lambda: speaker.announced() == {PROTOCOL})
    assert [e["event"] for e in logs if e["event"].startswith("operator.")] == [
        "operator.director.undrain"]
    assert 'haipvs_bgp_vip_announced{vip="192.0.2.10"} 1.0' in render_metrics(
        supervisor.snapshot).decode()
    assert supervisor.snapshot().overrides == ()
    supervisor.request_shutdown()
    assert await task == 0

