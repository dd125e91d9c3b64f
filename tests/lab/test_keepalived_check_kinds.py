"""keepalived's PING_CHECK, SMTP_CHECK and notify_fifo through the whole daemon, in the lab.

One haipvs director of the lab pair (dir1) with the three real servers: 10.0.0.12 carries
a ``ping`` check and 10.0.0.13 an ``smtp`` check (a small SMTP responder on port 25 of
its namespace) instead of the service's HTTP check. A real server that stops answering
echo, or whose SMTP service dies, leaves the kernel table (drained, then removed) and
comes back when it answers again: the same rise/fall machinery as every check.

With ``notify_fifo``, the director writes keepalived's lines in the order it learnt of
the changes: the pair's real VRRP transitions (start-up, a FAULT on a link loss, the
return and the preemption) arrive in that order, beside the real servers' lines.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys

import pytest

from haipvs.lab.pair import DirectorPair, PairSettings, haipvs_config, running_pair, wait_until

pytestmark = pytest.mark.lab

SETTINGS = PairSettings(version=3, check_interval=0.5, check_timeout=0.4, drain_timeout=1.0)

# A minimal SMTP server (RFC 5321 greeting, HELO, QUIT): what SMTP_CHECK talks to.
SMTP_SERVER = """
import asyncio
async def session(reader, writer):
    writer.write(b"220 rs3 ESMTP lab\\r\\n")
    while line := await reader.readline():
        verb = line[:4].upper()
        writer.write(b"221 bye\\r\\n" if verb == b"QUIT" else b"250 rs3\\r\\n")
        await writer.drain()
        if verb == b"QUIT":
            break
    writer.close()
async def main():
    server = await asyncio.start_server(session, "0.0.0.0", 25)
    print("ready", flush=True)
    await server.serve_forever()
asyncio.run(main())
"""


def weight_of(pair: DirectorPair, address: str) -> str | None:
    table = pair.net.run("dir1", ["ipvsadm", "-Ln"]).stdout
    match = re.search(rf"^\s*->\s*{re.escape(address)}:80\s+Masq\s+(\d+)", table, re.MULTILINE)
    return None if match is None else match.group(1)


def start_smtp(pair: DirectorPair) -> None:
    process = pair.net.popen("rs3", [sys.executable, "-c", SMTP_SERVER], stdout=-1)
    assert process.stdout is not None and process.stdout.readline().strip() == b"ready"
    pair.servers["smtp"] = process


def test_ping_and_smtp_checks_remove_a_dead_real_server_and_bring_it_back() -> None:
    with running_pair(SETTINGS, prefix="kck-") as pair:
        config = haipvs_config("dir1", SETTINGS).replace(
            "- {address: 10.0.0.12, port: 80}",
            "- {address: 10.0.0.12, port: 80, check: "
            "{type: ping, interval: 0.5, timeout: 0.4, rise: 2, fall: 2}}",
        ).replace(
            "- {address: 10.0.0.13, port: 80}",
            "- {address: 10.0.0.13, port: 80, check: "
            "{type: smtp, port: 25, interval: 0.5, timeout: 0.4, rise: 2, fall: 2}}",
        )
        path = pair.config_path("dir1")
        path.write_text(config)
        path.chmod(0o644)
        pair.start_real_servers()
        start_smtp(pair)
        pair.start_director("dir1")
        wait_until(lambda: weight_of(pair, "10.0.0.12") == "1"
                   and weight_of(pair, "10.0.0.13") == "1", 90)

        # PING_CHECK: rs2 stops answering echo (its HTTP still answers): it leaves.
        pair.net.run("rs2", ["sysctl", "-q", "-w", "net.ipv4.icmp_echo_ignore_all=1"])
        wait_until(lambda: weight_of(pair, "10.0.0.12") is None, 20)
        pair.net.run("rs2", ["sysctl", "-q", "-w", "net.ipv4.icmp_echo_ignore_all=0"])
        wait_until(lambda: weight_of(pair, "10.0.0.12") == "1", 20)

        # SMTP_CHECK: rs3's mail service dies (its HTTP still answers): it leaves.
        pair.stop_real_server("smtp")
        wait_until(lambda: weight_of(pair, "10.0.0.13") is None, 20)
        start_smtp(pair)
        wait_until(lambda: weight_of(pair, "10.0.0.13") == "1", 20)

        downs = {str(e.get("rs")): str(e) for e in pair.log_events("dir1")
                 if e.get("event") == "check.down"}
        assert set(downs) == {"10.0.0.12:80", "10.0.0.13:80"}, downs
        assert weight_of(pair, "10.0.0.11") == "1"  # the HTTP-checked one never moved


def test_notify_fifo_carries_the_pair_s_transitions_in_order() -> None:
    with running_pair(SETTINGS, prefix="kff-") as pair:
        fifo = pair.workdir / "notify.fifo"
        os.mkfifo(fifo, 0o600)
        # Held open before the daemon starts, as keepalived's FIFO readers do.
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        received = b""

        def lines() -> list[str]:
            nonlocal received
            with contextlib.suppress(BlockingIOError):
                while chunk := os.read(reader, 65536):
                    received += chunk
            return received.decode().splitlines()

        try:
            config = haipvs_config("dir1", SETTINGS).replace(
                "  log_format: json\n", f"  log_format: json\n  notify_fifo: {fifo}\n", 1
            )
            for name in ("dir1", "dir2"):
                path = pair.config_path(name)
                path.write_text(config if name == "dir1" else haipvs_config(name, SETTINGS))
                path.chmod(0o644)
            pair.start_real_servers()
            pair.start_director("dir2")
            pair.start_director("dir1")
            wait_until(lambda: 'INSTANCE "VI_WEB" MASTER 150' in lines(), 90)
            # Real servers start down (no alpha) and come up after `rise` checks.
            wait_until(lambda: sum(line.startswith("RS ") and line.endswith(" UP")
                                   for line in lines()) == 3, 30)

            # The VRRP interface goes down: FAULT; back up: BACKUP, then MASTER again
            # (priority 150 preempts dir2's 100).
            pair.net.link_set("dir1", "eth0", up=False)
            wait_until(lambda: 'INSTANCE "VI_WEB" FAULT 150' in lines(), 30)
            pair.revive_link("dir1")
            wait_until(lambda: lines().count('INSTANCE "VI_WEB" MASTER 150') == 2, 60)

            instance = [line for line in lines() if line.startswith("INSTANCE ")]
            assert instance == [
                'INSTANCE "VI_WEB" BACKUP 150',
                'INSTANCE "VI_WEB" MASTER 150',
                'INSTANCE "VI_WEB" FAULT 150',
                'INSTANCE "VI_WEB" BACKUP 150',
                'INSTANCE "VI_WEB" MASTER 150',
            ]
            # The same order as the daemon's own transition log.
            logged = [str(e.get("to_state")).upper() for e in pair.log_events("dir1")
                      if e.get("event") == "vrrp.transition"]
            assert logged == [line.split()[2] for line in instance]
            for rs in ("10.0.0.11", "10.0.0.12", "10.0.0.13"):
                server = f"RS [{rs}]:tcp:80 [198.51.100.10]:tcp:80"
                assert [line for line in lines() if line.startswith(server)] == [
                    f"{server} DOWN", f"{server} UP"
                ]
            service = [line for line in lines() if line.startswith("VS ")]
            assert service == ["VS [198.51.100.10]:tcp:80 DOWN", "VS [198.51.100.10]:tcp:80 UP"]
        finally:
            os.close(reader)
