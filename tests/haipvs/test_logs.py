"""Log lines under systemd: journal priorities and Python's own logging as JSON.

Each case runs a small program in a child interpreter, because logging is
process-wide state; its stdout is a file, and JOURNAL_STREAM names that file the
way systemd names the journal stream (DEVICE:INODE, sd-daemon(3)).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PROGRAM = r"""
import asyncio, gc, sys
import aiohttp
from aiohttp import web
import structlog
from haipvs.logs import configure_logging

configure_logging(director="lb-test", log_format="json", level="info")
log = structlog.get_logger()
log.info("director.started", real_servers=2)
log.warning("check.down", rs="10.0.0.12:80")
log.error("ipvs.op.failed", reason="No such file or directory")

async def boom(_request):
    raise RuntimeError("handler bug")

async def main():
    app = web.Application()
    app.router.add_get("/", boom)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/") as response:
            assert response.status == 500
    await runner.cleanup()

    async def fails():
        raise ValueError("nobody awaited me")
    task = asyncio.ensure_future(fails())
    await asyncio.sleep(0)
    del task
    gc.collect()

asyncio.run(main())
"""


def run(tmp_path: Path, *, journal: bool) -> list[str]:
    out = tmp_path / "stdout"
    out.touch()
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    if journal:
        stat = out.stat()
        env["JOURNAL_STREAM"] = f"{stat.st_dev}:{stat.st_ino}"
    with out.open("w") as stdout:
        subprocess.run([sys.executable, "-c", PROGRAM], stdout=stdout, env=env, check=True,
                       timeout=60)
    return out.read_text().splitlines()


def parse(line: str) -> tuple[int | None, dict[str, object]]:
    if line.startswith("<"):
        priority, _, rest = line[1:].partition(">")
        return int(priority), json.loads(rest)
    return None, json.loads(line)


def test_on_the_journal_stream_each_line_carries_its_syslog_priority(tmp_path: Path) -> None:
    lines = [parse(line) for line in run(tmp_path, journal=True)]
    by_event = {event["event"]: priority for priority, event in lines}
    # sd-daemon(3): SD_INFO "<6>", SD_WARNING "<4>", SD_ERR "<3>"; what journalctl -p err finds.
    assert by_event["director.started"] == 6
    assert by_event["check.down"] == 4
    assert by_event["ipvs.op.failed"] == 3
    assert all(priority is not None for priority, _ in lines)


def test_off_the_journal_stream_lines_are_plain_json(tmp_path: Path) -> None:
    # A redirect to a file, or a pipe into jq: JOURNAL_STREAM does not name it.
    lines = [parse(line) for line in run(tmp_path, journal=False)]
    assert lines and all(priority is None for priority, _ in lines)


def test_aiohttp_and_asyncio_logging_arrive_as_one_json_object_with_the_same_keys(
    tmp_path: Path,
) -> None:
    lines = [parse(line) for line in run(tmp_path, journal=True)]
    keys = {"director", "event", "level", "timestamp"}
    own = next(event for _, event in lines if event["event"] == "ipvs.op.failed")
    assert keys <= own.keys()
    library = [(priority, event) for priority, event in lines if event["event"] == "library.log"]
    by_logger = {event["logger"]: (priority, event) for priority, event in library}
    assert {"aiohttp.server", "asyncio"} <= by_logger.keys()
    for logger in ("aiohttp.server", "asyncio"):
        priority, event = by_logger[logger]
        assert keys <= event.keys()
        assert event["director"] == "lb-test" and event["level"] == "error" and priority == 3
        assert isinstance(event["timestamp"], str) and event["timestamp"].endswith("Z")
    assert "Error handling request" in str(by_logger["aiohttp.server"][1]["message"])
    assert "RuntimeError: handler bug" in str(by_logger["aiohttp.server"][1]["exception"])
    assert "never retrieved" in str(by_logger["asyncio"][1]["message"])
    assert "ValueError: nobody awaited me" in str(by_logger["asyncio"][1]["exception"])
