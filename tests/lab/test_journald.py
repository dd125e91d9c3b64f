"""The journal files each haipvs line at its own priority: `journalctl -p err` finds errors.

Lab only (the guest has its own /run, so a journald started here is private to it):
`.venv/bin/haipvs lab run -- .venv/bin/pytest -m lab tests/lab/test_journald.py`.
Where a journald already runs (a native lab on a systemd host) the test uses it.
A program logs through haipvs.logs with its stdout on journald's stream socket, the
way systemd connects a service (systemd-cat makes the connection; JOURNAL_STREAM is
set from the socket, as systemd sets it); journalctl then reads the entries back.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from haipvs.lab.pair import wait_until

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(shutil.which("systemd-cat") is None or shutil.which("journalctl") is None,
                       reason="needs systemd-cat and journalctl (the systemd package)"),
]

JOURNALD = Path("/lib/systemd/systemd-journald")
STDOUT_SOCKET = Path("/run/systemd/journal/stdout")

PROGRAM = r"""
import asyncio
import aiohttp
from aiohttp import web
import structlog
from haipvs.logs import configure_logging

configure_logging(director="lb-journal", log_format="json", level="info")
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

asyncio.run(main())
"""


def _listening(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def journald() -> Iterator[None]:
    if STDOUT_SOCKET.exists() and _listening(STDOUT_SOCKET):
        yield  # the host's own journald
        return
    if not JOURNALD.exists():
        pytest.skip(f"no journald at {JOURNALD}")
    process = subprocess.Popen([str(JOURNALD)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: STDOUT_SOCKET.exists() and _listening(STDOUT_SOCKET), 30)
        yield
    finally:
        process.terminate()
        process.wait(30)
        with contextlib.suppress(OSError):
            shutil.rmtree("/run/systemd/journal")


def test_errors_reach_the_journal_at_err_and_each_entry_is_one_json_object(
    journald: None, tmp_path: Path
) -> None:
    tag = f"haipvs-test-{uuid.uuid4().hex[:8]}"
    script = tmp_path / "program.py"
    script.write_text(PROGRAM)
    # systemd would set JOURNAL_STREAM for a service; systemd-cat does not, so set it
    # from the stream socket on the shell's fd 1 (its device and inode, sd-daemon(3));
    # /proc/$$: inside $(...) fd 1 is the substitution's pipe.
    subprocess.run(
        ["systemd-cat", "-t", tag, "sh", "-c",
         'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/$$/fd/1) exec "$0" "$1"',
         sys.executable, str(script)],
        check=True, timeout=120,
    )

    def entries(*options: str) -> list[dict[str, str]]:
        out = subprocess.run(["journalctl", "--no-pager", "-o", "json", "-t", tag, *options],
                             capture_output=True, text=True, check=False, timeout=30).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    wait_until(lambda: len(entries()) >= 4, 30)
    time.sleep(0.5)  # room for a stray line that should not be there
    everything = entries()
    assert everything, "nothing reached the journal"
    for entry in everything:
        document = json.loads(entry["MESSAGE"])  # the <N> prefix was stripped by journald
        assert {"director", "event", "level", "timestamp"} <= document.keys()
    by_event = {json.loads(e["MESSAGE"])["event"]: e["PRIORITY"] for e in everything
                if json.loads(e["MESSAGE"])["event"] != "library.log"}
    assert by_event == {"director.started": "6", "check.down": "4", "ipvs.op.failed": "3"}
    errors = [json.loads(entry["MESSAGE"]) for entry in entries("-p", "err")]
    assert [(e["event"], e.get("logger")) for e in errors] == [
        ("ipvs.op.failed", None), ("library.log", "aiohttp.server")]
    assert "RuntimeError: handler bug" in errors[1]["exception"]
