"""The status page (GET /) in a real headless browser against a running daemon.

The daemon is the supervisor with the strict fake kernel, scripted probes and a VRRP
part that reports one instance (as in tests/haipvs/daemon), its status API on
loopback. Debian's `chromium` loads the page once, through the DevTools protocol; the
test then reads the page's DOM while the daemon's data changes: the page must show it
without being loaded again. Skipped only where chromium is not installed (./dev
installs it).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import shutil
import time
from collections.abc import AsyncIterator
from ipaddress import ip_address
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import pytest
from support import FakeVrrpPart, free_port, until

import checkers
from haipvs.ipvs import FakeIpvsKernel
from haipvs.ipvs.model import DestKey, DestStats, ServiceKey
from haipvs.status.snapshot import InstanceView, TransitionView
from haipvs.supervisor import Supervisor

PAGE = Path(__file__).resolve().parents[3] / "haipvs/status/page.html"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class ReportingVrrpPart(FakeVrrpPart):
    """A VRRP part whose instances are in the state the test sets."""

    state: ClassVar[str] = "MASTER"

    def views(self) -> tuple[InstanceView, ...]:
        return tuple(
            InstanceView(
                name=inst.name, interface=inst.interface, vrid=inst.vrid, version=inst.version,
                state=self.state, priority=inst.priority, effective_priority=inst.priority,
                priority_reasons=(), master="198.51.100.2" if self.state == "MASTER" else None,
                vips=("198.51.100.10/24",),
                last_transition=TransitionView("BACKUP", self.state, "master_down_timer", "",
                                               time.time() - 5),
            )
            for inst in self.instances
        )


CONFIG = """
director:
  name: lb-page
  api: 127.0.0.1:{port}
  log_format: json
vrrp:
  - name: VI_WEB
    interface: eth0
    vrid: 51
    priority: 150
    vips: [198.51.100.10/24]
ipvs:
  programmer: {{min_interval: 0.01, max_interval: 5}}
virtual_servers:
  - name: web
    vip: 198.51.100.10
    port: 80
    scheduler: wlc
    drain: {{timeout: 60}}
    check: {{type: tcp, interval: 0.05, timeout: 0.04, rise: 1, fall: 1}}
    real_servers:
      - {{address: 10.0.0.11, port: 80, weight: 1}}
      - {{address: 10.0.0.12, port: 80, weight: 2}}
"""

# What the test reads from the page's DOM, as one JSON string.
READ_PAGE = """JSON.stringify({
  title: document.getElementById("title").textContent,
  refreshes: Number(document.body.dataset.refreshes || 0),
  vrrp: [...document.querySelectorAll("#vrrp tbody tr")].map(
    (tr) => [...tr.cells].map((c) => c.textContent)),
  rs: Object.fromEntries([...document.querySelectorAll("tr[data-rs]")].map(
    (tr) => [tr.dataset.rs, [...tr.cells].map((c) => c.textContent)])),
  services: [...document.querySelectorAll("table[data-service]")].map((t) => t.dataset.service),
  progress: document.querySelectorAll("tr[data-rs] progress").length,
  error: document.getElementById("error").style.display === "block"
    ? document.getElementById("error").textContent : null,
})"""


class Browser:
    """One headless Chromium page, driven over the DevTools protocol's websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self._ids)
        await self._ws.send_json({"id": ident, "method": method, "params": params})
        while True:
            message = await self._ws.receive_json(timeout=30)
            if message.get("id") == ident:
                assert "error" not in message, message
                result: dict[str, Any] = message["result"]
                return result

    async def read(self) -> dict[str, Any]:
        result = await self.call("Runtime.evaluate", expression=READ_PAGE, returnByValue=True)
        if "value" not in result["result"]:
            return {}  # the page is still loading (its elements are not there yet)
        parsed: dict[str, Any] = json.loads(result["result"]["value"])
        return parsed


@contextlib.asynccontextmanager
async def headless_chromium(profile: Path) -> AsyncIterator[Browser]:
    assert CHROMIUM is not None
    process = await asyncio.create_subprocess_exec(
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", "--no-proxy-server", "--remote-debugging-port=0",
        f"--user-data-dir={profile}", "about:blank",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        await until(lambda: port_file.exists() and port_file.read_text().count("\n") >= 1, 60)
        port = port_file.read_text().splitlines()[0]
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = await response.json()
            (page,) = [t for t in targets if t["type"] == "page"]
            async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                yield Browser(ws)
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        await process.wait()


async def eventually(browser: Browser, condition: Any, timeout: float = 30.0) -> dict[str, Any]:
    """The page's data once `condition(data)` holds (the page refreshes on its own)."""
    last: dict[str, Any] = {}
    try:
        async with asyncio.timeout(timeout):
            while True:
                last = await browser.read()
                if last and condition(last):
                    return last
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"the page never showed it; last seen: {last}") from None


def test_the_page_is_self_contained() -> None:
    text = PAGE.read_text()
    # No external asset: no URL, no src= or href= at all; one inline script and style.
    assert not re.search(r"https?://|\bsrc=|\bhref=|@import", text)
    assert text.count("<script>") == 1 and text.count("<style>") == 1
    # Data is put in with textContent, never parsed as HTML.
    assert "innerHTML" not in text and "insertAdjacentHTML" not in text


@pytest.mark.skipif(CHROMIUM is None,
                    reason="chromium is not installed (apt-get install chromium; ./dev does)")
async def test_the_page_shows_the_daemon_and_updates_when_a_backend_goes_down(
    tmp_path: Path,
) -> None:
    prober = checkers.ScriptedProber(default=checkers.ProbeResult(True, "connected", 0.001))
    port = free_port()
    config = tmp_path / "haipvs.yaml"
    config.write_text(CONFIG.format(port=port))
    config.chmod(0o644)
    ReportingVrrpPart.state = "MASTER"
    kernel = FakeIpvsKernel()
    supervisor = Supervisor(str(config), kernel=kernel, prober=prober,
                            vrrp_factory=ReportingVrrpPart)
    task = asyncio.create_task(supervisor.run())
    try:
        await until(lambda: sum(len(entry.dests) for entry in kernel.table.values()) == 2, 10)
        async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{port}/"
        ) as response:
            assert response.status == 200
            assert response.content_type == "text/html"
            assert "default-src 'none'" in response.headers["Content-Security-Policy"]
        async with headless_chromium(tmp_path / "profile") as browser:
            await browser.call("Page.navigate", url=f"http://127.0.0.1:{port}/")
            page = await eventually(browser, lambda d: len(d["rs"]) == 2)
            assert page["title"] == "haipvs lb-page"
            assert page["services"] == ["tcp/198.51.100.10:80"]
            (vrrp_row,) = page["vrrp"]
            assert vrrp_row[:4] == ["VI_WEB", "51", "eth0", "MASTER"]
            assert "BACKUP → MASTER, master_down_timer" in vrrp_row[7]
            up = page["rs"]["10.0.0.12:80"]
            assert up[0:3] == ["10.0.0.12:80", "Masq", "up"] and up[5] == "2 / 2"
            refreshes = page["refreshes"]

            # A real change in the daemon: the backend (with clients on it, so its
            # drain lasts) fails its check; VRRP goes BACKUP.
            kernel.set_stats(ServiceKey.tcp("198.51.100.10", 80), DestKey("10.0.0.12", 80),
                             DestStats(active_conns=4, inactive_conns=1))
            prober.always(checkers.Target(ip_address("10.0.0.12"), 80),
                          checkers.ProbeResult(False, "connect refused", 0.001))
            ReportingVrrpPart.state = "BACKUP"
            page = await eventually(browser, lambda d: d["rs"]["10.0.0.12:80"][2] == "down"
                                    and d["rs"]["10.0.0.12:80"][6] == "4")
            down = page["rs"]["10.0.0.12:80"]
            assert "connect refused" in down[3]
            assert down[5] == "0 / 2"  # weight 0 in the kernel: draining
            assert down[6:8] == ["4", "1"]
            assert "health_down" in down[9] and "s left" in down[9] and page["progress"] == 1
            assert page["rs"]["10.0.0.11:80"][2] == "up"
            assert page["refreshes"] > refreshes  # the same page, refreshed by itself
            assert page["vrrp"][0][3] == "BACKUP"
            assert page["error"] is None

            # The daemon stops: the page keeps the last data and says it is stale.
            supervisor.request_shutdown()
            assert await asyncio.wait_for(task, 30) == 0
            page = await eventually(browser, lambda d: d["error"] is not None)
            assert page["error"].startswith("cannot read the daemon's status")
            assert page["rs"]["10.0.0.12:80"][2] == "down"
    finally:
        if not task.done():
            supervisor.request_shutdown()
            assert await asyncio.wait_for(task, 30) == 0
