"""net.ipv4.vs.sloppy_tcp in scale-out mode: haipvs sets it, and the gates keep every VIP
withdrawn (saying why) while it cannot."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from support import FakeVrrpPart, free_port, until
from test_supervisor_hook import write_config

import checkers
from haipvs.bgp.fake import FakeSpeaker
from haipvs.bgp.sloppy import SloppyTcp
from haipvs.ipvs import FakeIpvsKernel
from haipvs.status.command import render_status
from haipvs.supervisor import Supervisor


@pytest.mark.parametrize("before", ["0\n", "1\n"])
def test_sloppy_tcp_is_set_to_one_with_one_line_when_it_was_not(
    tmp_path: Path, before: str
) -> None:
    path = tmp_path / "sloppy_tcp"
    path.write_text(before)
    sloppy = SloppyTcp(str(path))
    with capture_logs() as logs:
        assert sloppy.ensure() is None
        assert sloppy.ensure() is None
    assert path.read_text() == "1\n"
    expected = [] if before == "1\n" else [("bgp.sloppy_tcp.set", "0")]
    assert [(e["event"], e["was"]) for e in logs] == expected


def test_a_sysctl_that_cannot_be_set_is_the_gates_reason_logged_once(tmp_path: Path) -> None:
    # No ip_vs module (or another namespace's /proc): the file is not there.
    sloppy = SloppyTcp(str(tmp_path / "vs" / "sloppy_tcp"))
    with capture_logs() as logs:
        problem = sloppy.ensure()
        assert sloppy.ensure() == problem
    assert problem == "cannot set it: No such file or directory"
    assert [(e["event"], e["error"]) for e in logs] == [("bgp.sloppy_tcp.failed", problem)]
    # Fixed behind haipvs's back: the next evaluation says so.
    (tmp_path / "vs").mkdir()
    (tmp_path / "vs" / "sloppy_tcp").write_text("1\n")
    assert sloppy.ensure() is None


@pytest.mark.asyncio
async def test_the_director_never_announces_while_sloppy_tcp_cannot_be_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    bird_conf = tmp_path / "haipvs-bird.conf"
    write_config(tmp_path / "haipvs.yaml", free_port(), bird_conf)
    speaker = FakeSpeaker(config_file=bird_conf)
    missing = tmp_path / "vs" / "sloppy_tcp"
    supervisor = Supervisor(
        str(tmp_path / "haipvs.yaml"), kernel=FakeIpvsKernel(),
        prober=checkers.ScriptedProber(default=checkers.ProbeResult(True, "connected", 0.001)),
        vrrp_factory=FakeVrrpPart, bgp_speaker=lambda _socket: speaker,
        sloppy_tcp_file=str(missing), admin_socket=str(tmp_path / "admin.sock"),
        bgp_vip_check=lambda _vips: {},
        overrides_file=str(tmp_path / "overrides.json"),
    )
    # The daemon logs JSON lines to stdout (it configures logging itself).
    task = asyncio.create_task(supervisor.run())
    await until(lambda: speaker.configures >= 1)
    reason = ("net.ipv4.vs.sloppy_tcp is not 1 (cannot set it: No such file or "
              "directory): a flow the routers move here would arrive as a bare ACK and "
              "be reset")
    await until(lambda: supervisor.snapshot().bgp is not None
                and supervisor.snapshot().bgp.withheld  # type: ignore[union-attr]
                == {"192.0.2.10": reason})
    await asyncio.sleep(0.7)  # more than a gate interval, the real servers up
    assert speaker.announced() == frozenset()
    assert f"192.0.2.10 withdrawn: {reason}" in render_status(
        supervisor.snapshot().to_json())
    # Once the sysctl exists (ip_vs loaded, say), haipvs sets it and announces.
    missing.parent.mkdir()
    missing.write_text("0\n")
    await until(lambda: speaker.announced() == {"haipvs_vip_192_0_2_10"})
    assert missing.read_text() == "1\n"
    supervisor.request_shutdown()
    assert await task == 0
    events = [json.loads(line)["event"] for line in capsys.readouterr().out.splitlines()
              if line.startswith("{")]
    assert events.count("bgp.sloppy_tcp.failed") == 1
    assert events.count("bgp.sloppy_tcp.set") == 1
