"""A VRRP thread that dies inside a live VRRP process: the process must exit so
that the daemon respawns it, instead of living on with VIPs and no adverts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from ipaddress import ip_interface
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from support import until

from haipvs.daemon.vrrp_process import THREAD_DIED_EXIT, VrrpProcessPart
from vrrp.settings import InstanceSettings, VipSpec

pytestmark = pytest.mark.looptime(False)

HERE = Path(__file__).parent


@pytest.fixture(autouse=True)
def child_imports_the_factories(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    path = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", path)
    yield


async def test_a_dead_vrrp_thread_ends_its_process_and_the_daemon_respawns_it() -> None:
    """Old code: the thread logged vrrp.service.failed and the process lived on,
    MASTER in /status forever, its VIPs up, no adverts and no restart."""
    settings = InstanceSettings(
        name="VI_WEB", interface="eth0", vrid=51, priority=100, version=3,
        advert_interval=0.05, preempt=True, preempt_delay=0.0,
        vips=(VipSpec(ip_interface("198.51.100.10/24")),), garp_repeat=1,
    )
    states: list[str] = []
    part = VrrpProcessPart([settings], lambda _n, _o, new, _r, _d: states.append(new),
                           ports="vrrp_dying_thread_ports:dies_as_master")
    with capture_logs() as logs:
        await part.start()
        try:
            first = part.pid
            await until(lambda: any(e["event"] == "vrrp.process.died" for e in logs), 30)
            died = next(e for e in logs if e["event"] == "vrrp.process.died")
            assert died["pid"] == first
            assert died["exit"] == f"exit status {THREAD_DIED_EXIT}"
            await until(lambda: part.pid not in (None, first), 30)
            assert "MASTER" in states
        finally:
            await part.stop()
