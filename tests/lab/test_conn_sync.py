"""Connection sync across a failover: the sync daemon follows VRRP and connections survive.

Both directors run haipvs with ``ipvs.sync_daemon`` (keepalived ``lvs_sync_daemon``):
the supervisor follows the VRRP instance VI_WEB and runs the kernel's IPVS sync
daemon as *master* on the VRRP master and as *backup* on the VRRP backup, on the back
segment (eth1). A client holds one long-lived TCP connection through the VIP (NAT
mode; the real server answers ``/hold`` with one line per second, forever). The
master is then crashed (SIGKILL, its VIPs removed, as a dead machine would), the
backup takes over, and the very same TCP connection must keep receiving lines: the
new master knows the connection from the sync daemon, so the real server's replies
are NATed back to the client instead of being reset or dropped.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from haipvs.lab.pair import VIP, DirectorPair, PairSettings, haipvs_config, running_pair, wait_until

pytestmark = pytest.mark.lab

SYNC_ID = 51
# haipvs/supervisor.py passes "master"/"backup" strings where NetlinkIpvsKernel wants a
# genl.SyncState, and runs the kernel call from the VRRP thread: the sync daemon never
# starts (ipvs.sync_daemon.failed "'str' object has no attribute 'value'"). Both tests
# pass with the fix described in the reliability report (passed in the lab with it);
# remove these markers when the fix lands (strict: an XPASS fails the run).
SETTINGS = PairSettings(version=3, advert_interval=1.0, check_interval=0.5, check_timeout=0.4)

# One connection, one request, then every line with its arrival time (monotonic) and
# the end of the stream (EOF or error) as JSON lines.
HOLDER = """
import json, socket, sys, time
vip, out = sys.argv[1], sys.argv[2]
with open(out, "a", buffering=1) as log, socket.create_connection((vip, 80), timeout=5) as sock:
    local = sock.getsockname()
    log.write(json.dumps({"t": time.monotonic(), "event": "connected",
                          "local": list(local)}) + "\\n")
    sock.sendall(b"GET /hold HTTP/1.1\\r\\nHost: vip\\r\\n\\r\\n")
    sock.settimeout(60)
    buffered = b""
    while True:
        try:
            chunk = sock.recv(4096)
        except OSError as error:
            log.write(json.dumps({"t": time.monotonic(), "event": "error",
                                  "error": repr(error)}) + "\\n")
            break
        if not chunk:
            log.write(json.dumps({"t": time.monotonic(), "event": "eof"}) + "\\n")
            break
        buffered += chunk
        while b"\\n" in buffered:
            line, buffered = buffered.split(b"\\n", 1)
            log.write(json.dumps({"t": time.monotonic(), "event": "line",
                                  "line": line.decode(errors="replace").strip()}) + "\\n")
"""


def sync_config(name: str) -> str:
    """The pair's config plus the IPVS sync daemon following VI_WEB on the back segment."""
    text = haipvs_config(name, SETTINGS)
    assert "\nipvs:\n" in text
    return text.replace(
        "\nipvs:\n",
        f"\nipvs:\n  sync_daemon: {{interface: eth1, instance: VI_WEB, syncid: {SYNC_ID}}}\n",
    )


def sync_daemons(pair: DirectorPair, name: str) -> str:
    """ipvsadm's view of the director's sync daemons ("master sync daemon (mcast=eth1, ...")."""
    return pair.net.run(name, ["ipvsadm", "-L", "--daemon"], check=False).stdout


def connections(pair: DirectorPair, name: str) -> str:
    return pair.net.run(name, ["ipvsadm", "-Lnc"], check=False).stdout


def held(pair: DirectorPair, path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def body(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The lines after the HTTP response head (the real server's one name per second)."""
    lines = [r for r in records if r["event"] == "line"]
    blank = next((i for i, r in enumerate(lines) if r["line"] == ""), None)
    return [] if blank is None else lines[blank + 1 :]


def start_pair(built: DirectorPair, *, with_sync: bool) -> None:
    if with_sync:
        for name in ("dir1", "dir2"):
            path = built.config_path(name)
            path.write_text(sync_config(name))
            path.chmod(0o644)
    built.start_real_servers()
    built.start_director("dir1")
    built.start_director("dir2")
    wait_until(lambda: built.holds_vip("dir1") and built.vrrp_state("dir2") == "BACKUP", 90)
    wait_until(lambda: all(built.net.run(name, ["ipvsadm", "-Ln"]).stdout.count("Masq") == 3
                           for name in ("dir1", "dir2")), 60)


@pytest.fixture(scope="module")
def pair() -> Iterator[DirectorPair]:
    with running_pair(SETTINGS, prefix="sync-") as built:
        start_pair(built, with_sync=True)
        yield built


def sync_events(pair: DirectorPair) -> str:
    """The daemons' sync-daemon log lines, for failure messages."""
    return "\n".join(
        f"{name}: {event}" for name in ("dir1", "dir2") for event in pair.log_events(name)
        if "sync_daemon" in event["event"] or event["event"] == "vrrp.transition"
    )


@dataclass
class Held:
    """One long-lived connection through the VIP, held by a process in the client."""

    pair: DirectorPair
    out: Path
    process: subprocess.Popen[bytes]

    def records(self) -> list[dict[str, Any]]:
        return held(self.pair, self.out)

    def lines(self) -> list[dict[str, Any]]:
        return body(self.records())

    @property
    def client_port(self) -> int:
        connected = next(r for r in self.records() if r["event"] == "connected")
        return int(connected["local"][1])


@contextlib.contextmanager
def holding(pair: DirectorPair, name: str) -> Iterator[Held]:
    out = pair.workdir / f"{name}.jsonl"
    process = pair.net.popen("client", [sys.executable, "-c", HOLDER, VIP, str(out)],
                             stderr=subprocess.DEVNULL)
    try:
        connection = Held(pair, out, process)
        wait_until(lambda: len(connection.lines()) >= 3, 30)
        yield connection
    finally:
        process.kill()
        process.wait()


def crash_master(pair: DirectorPair) -> tuple[float, float]:
    """SIGKILL dir1 and remove its VIPs; (monotonic time of the takeover, seconds it took)."""
    crashed_at = time.monotonic()
    pair.crash_director("dir1")
    wait_until(lambda: pair.holds_vip("dir2"), 20)
    now = time.monotonic()
    return now, now - crashed_at


def test_each_director_runs_the_sync_daemon_its_vrrp_state_calls_for(pair: DirectorPair) -> None:
    try:
        wait_until(lambda: "master sync daemon" in sync_daemons(pair, "dir1")
                   and "backup sync daemon" in sync_daemons(pair, "dir2"), 20)
    except TimeoutError:
        pytest.fail(f"sync daemons: dir1={sync_daemons(pair, 'dir1')!r} "
                    f"dir2={sync_daemons(pair, 'dir2')!r}\n{sync_events(pair)}")
    assert f"syncid={SYNC_ID}" in sync_daemons(pair, "dir1")
    assert "mcast=eth1" in sync_daemons(pair, "dir1")
    assert "master sync daemon" not in sync_daemons(pair, "dir2")
    started = [e for e in pair.log_events("dir1") if e["event"] == "ipvs.sync_daemon.started"]
    assert started and started[-1]["state"] == "master"


def test_a_long_lived_connection_survives_the_master_crash(pair: DirectorPair) -> None:
    with holding(pair, "synced") as connection:
        port = connection.client_port
        # The backup learned the connection from the master's sync daemon.
        wait_until(lambda: f":{port}" in connections(pair, "dir2"), 20)
        entry = next(line for line in connections(pair, "dir2").splitlines()
                     if f":{port}" in line)
        assert "ESTABLISHED" in entry, entry
        server = connection.lines()[0]["line"]
        assert re.fullmatch(r"rs\d", server), server

        lines_before = len(connection.lines())
        _at, took_over = crash_master(pair)
        # The same connection keeps receiving, through the new master.
        wait_until(lambda: len(connection.lines()) >= lines_before + 5, 40)
        records = connection.records()
        assert not [r for r in records if r["event"] in ("eof", "error")], records[-5:]
        # Every line from the one real server, over the one connection.
        assert {r["line"] for r in body(records)} == {server}
        assert sum(r["event"] == "connected" for r in records) == 1
        arrivals = [r["t"] for r in body(records)]
        gap = max(b - a for a, b in itertools.pairwise(arrivals))
        print(f"RESULT conn_sync_takeover_s={took_over:.2f} conn_sync_longest_gap_s={gap:.2f} "
              f"lines={len(arrivals)}")
        assert f":{port}" in connections(pair, "dir2")
        started = [e for e in pair.log_events("dir2") if e["event"] == "ipvs.sync_daemon.started"]
        assert started and started[-1]["state"] == "master"


def test_control_without_the_sync_daemon_the_connection_stalls() -> None:
    # What the sync daemon buys: with the same crash and no sync, the new master has
    # no IPVS entry for the connection, so nothing reaches the client any more.
    with running_pair(SETTINGS, prefix="nosync-") as pair:
        start_pair(pair, with_sync=False)
        with holding(pair, "unsynced") as connection:
            port = connection.client_port
            assert f":{port}" not in connections(pair, "dir2")
            took_over_at, _took = crash_master(pair)
            time.sleep(10.0)  # ten of the real server's lines, had they got through
            late = [r for r in connection.lines() if r["t"] > took_over_at]
            assert late == [], late
