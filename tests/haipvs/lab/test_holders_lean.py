"""The lean long-lived-connection client (haipvs.lab.holders) and the real server's /hold,
on loopback: the heartbeat wheel with literal times, a line reader fed in pieces, the
silence rule, and the client as a process against a real lab server and against small
servers in this test that break connections in one known way each."""

from __future__ import annotations

import asyncio
import json
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import free_port
from test_scaleout_walk_counts import seen, until

from haipvs.lab import holders as holders_module
from haipvs.lab.holders import Connection, Holders, HoldResult, Wheel
from haipvs.lab.servers import _Held, _http_handler

COUNT = 50
HEADER = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"


# -- the wheel -----------------------------------------------------------------------------

def conn() -> Connection:
    """A connection for the wheel, which never touches its socket."""
    return Connection(sock=None, started=0.0)  # type: ignore[arg-type]


def test_a_first_heartbeat_is_due_a_period_after_the_opening_never_before() -> None:
    wheel = Wheel(now=100.0, period=0.2, slot=0.01)
    a, b = conn(), conn()
    wheel.add(a, 100.005)  # slot 10001 starts at 100.01: the heartbeat at 100.21
    wheel.add(b, 100.0)
    assert wheel.next_at() == pytest.approx(100.2)
    assert wheel.due(100.199) == []
    assert wheel.due(100.2) == [b]
    assert wheel.due(100.209) == []
    assert wheel.due(100.21) == [a]
    assert wheel.due(100.5) == [] and wheel.next_at() is None


def test_a_late_loop_keeps_the_cadence_fixed_rate() -> None:
    wheel = Wheel(now=0.0, period=0.1, slot=0.01)
    beating = conn()
    wheel.add(beating, 0.0)
    sent = []
    # woke 4.9 ms late (in the due slot), then 24.9 ms late (two slots on): the next
    # heartbeats are still due at 0.3 and 0.5, where the cadence says, not 0.1 after
    for now in (0.1, 0.2049, 0.3, 0.4249, 0.5, 0.6):
        for due in wheel.due(now):
            sent.append(now)
            wheel.again(due)
    assert sent == [0.1, 0.2049, 0.3, 0.4249, 0.5, 0.6]  # 0.5: 75.1 ms after 0.4249
    assert wheel.next_at() == pytest.approx(0.7)


def test_a_heartbeat_never_follows_a_late_one_within_half_a_period() -> None:
    wheel = Wheel(now=0.0, period=0.1, slot=0.01)
    beating = conn()
    wheel.add(beating, 0.0)
    assert wheel.due(0.1) == [beating]
    wheel.again(beating)
    assert wheel.due(0.2649) == [beating]  # 64.9 ms late: the cadence's 0.3 is too close
    wheel.again(beating)
    assert wheel.due(0.3) == [] and wheel.next_at() == pytest.approx(0.4)
    assert wheel.due(0.4) == [beating]


def test_the_interval_percentiles_count_every_heartbeat_in_10_ms_steps() -> None:
    result = HoldResult()
    assert result.gap_percentile(0.95) is None
    result.beats = 100
    result.beat_gaps.update({19: 90, 10: 5, 25: 5})  # 190-199 ms, 100-109 ms, 250-259 ms
    assert result.gap_percentile(0.05) == 110
    assert result.gap_percentile(0.5) == 200
    assert result.gap_percentile(0.95) == 200
    assert result.gap_percentile(0.96) == 260
    summary = result.summary(1)
    assert (summary["heartbeat_p5_ms"], summary["heartbeat_p95_ms"]) == (110, 200)


def test_a_loop_a_period_late_starts_afresh_instead_of_catching_up() -> None:
    wheel = Wheel(now=0.0, period=0.1, slot=0.01)
    beating = conn()
    wheel.add(beating, 0.0)
    assert wheel.due(5.003) == [beating]  # a 4.9 s stall: one heartbeat, not 49
    wheel.again(beating)
    assert wheel.due(5.099) == []
    assert wheel.due(5.1) == [beating]


def test_a_late_loop_gets_every_passed_slot_once_in_order() -> None:
    wheel = Wheel(now=0.0, period=0.1, slot=0.01)
    first, second, third = conn(), conn(), conn()
    wheel.add(second, 0.4)
    wheel.add(first, 0.0)
    wheel.add(third, 6.9)
    assert wheel.due(6.0) == [first, second]  # a 6 s stall: more slots passed than filled
    assert wheel.due(6.0) == []
    assert wheel.due(7.0) == [third]


def test_a_connection_added_after_a_stall_is_never_due_in_a_slot_handed_out() -> None:
    wheel = Wheel(now=0.0, period=0.1, slot=0.01)
    assert wheel.due(1.0) == []
    late = conn()
    wheel.add(late, 0.5)  # opened at 0.5, seen only now: not lost
    assert wheel.due(1.0) == []  # slot 100 was handed out already
    assert wheel.due(1.01) == [late]


# -- reading and the silence rule, on a socket pair -----------------------------------------

@pytest.fixture
def held() -> Iterator[tuple[Holders, Connection, socket.socket]]:
    """One open connection of a client (nothing connects: a socket pair stands in)."""
    ours, server = socket.socketpair()
    holders = Holders(("127.0.0.1", 1), socket.AF_INET, [], count=0, heartbeat=0.2,
                      ramp=0.0, result=HoldResult())
    ours.setblocking(False)
    connection = Connection(ours, started=0.0, open=True, last_line=0.0)
    holders.live.add(connection)
    holders.selector.register(ours, selectors.EVENT_READ, connection)
    yield holders, connection, server
    server.close()
    holders.selector.close()


def test_lines_split_anywhere_name_the_backend_once(
        held: tuple[Holders, Connection, socket.socket]) -> None:
    holders, connection, server = held
    for at, chunk in enumerate([b"HTTP/1.1 200 OK\r\nContent-Type: te", b"xt/plain\r\n\r",
                                b"\nrs", b"A\nrsA\n", b"rsA", b"\n"]):
        server.send(chunk)
        holders.read(connection, 1.0 + at)
    assert connection.first == "rsA" and not connection.ended
    assert holders.result.backends == {"rsA": 1}
    assert connection.last_line == 6.0
    server.send(b"rsA\nrsB\nrsA\n")
    holders.read(connection, 7.0)
    assert connection.ended
    assert holders.result.causes == {"wrong_backend": 1}


def test_a_fin_before_the_header_ended_says_so(
        held: tuple[Holders, Connection, socket.socket]) -> None:
    holders, connection, server = held
    server.send(b"HTTP/1.1 200 OK\r\n")
    holders.read(connection, 1.0)
    server.shutdown(socket.SHUT_WR)
    holders.read(connection, 2.0)
    assert holders.result.causes == {"eof": 1}
    assert holders.result.eof_kinds == {"FIN in the header": 1}


def test_silence_counts_from_the_last_line_or_the_loops_last_stall(
        held: tuple[Holders, Connection, socket.socket]) -> None:
    holders, connection, _ = held
    connection.first = "rsA"
    connection.last_line = 100.0
    holders.result.last_stall = 105.0  # the client itself ran late at 105
    holders.check_silence(114.0)  # 14 s since the line, 9 s since the stall
    assert not connection.ended
    holders.check_silence(115.5)  # 10.5 s of silence while the loop kept time
    assert connection.ended
    assert holders.result.causes == {"timeout": 1}


def test_a_connection_that_never_named_its_backend_gets_twice_the_silence(
        held: tuple[Holders, Connection, socket.socket]) -> None:
    holders, connection, _ = held
    connection.last_line = 100.0  # opened at 100, no header yet
    holders.check_silence(119.5)
    assert not connection.ended
    holders.check_silence(120.5)
    assert holders.result.causes == {"timeout": 1}


def test_a_gap_counts_as_quiet_unless_the_loop_stalled_in_it(
        held: tuple[Holders, Connection, socket.socket]) -> None:
    holders, connection, server = held
    server.send(HEADER + b"rsA\n")
    holders.read(connection, 1.0)
    holders.result.last_stall = 2.0
    server.send(b"rsA\n")
    holders.read(connection, 6.0)  # 5 s, but the loop stalled at 2: not counted
    assert holders.result.quiet == 0 and holders.result.longest_gap == 0
    server.send(b"rsA\n")
    holders.read(connection, 9.5)  # 3.5 s while the loop kept time
    assert holders.result.quiet == 1 and holders.result.longest_gap == 3.5
    server.send(b"rsA\n")
    holders.read(connection, 13.5)  # quiet again: the same connection counts once
    assert holders.result.quiet == 1 and holders.result.longest_gap == 4.0
    assert not connection.ended


def test_a_connect_that_never_completes_fails_after_30_s(
        held: tuple[Holders, Connection, socket.socket]) -> None:
    holders, connection, _ = held
    connection.open = False
    connection.started = 50.0
    holders.check_silence(79.0)
    assert not connection.ended
    holders.check_silence(80.5)
    assert holders.result.causes == {"connect_failed": 1}
    assert holders.result.summary(1)["broken"] == 0


# -- the client as a process ----------------------------------------------------------------

# free_port, until and seen: the same helpers as the client's other process tests.
def start_client(port: int, out: Path, *, count: int = COUNT) -> subprocess.Popen[bytes]:
    return subprocess.Popen([
        sys.executable, "-m", "haipvs.lab.holders", "--vip", "127.0.0.1", "--port", str(port),
        "--source", "127.0.0.1", "--count", str(count), "--heartbeat", "0.05",
        "--ramp", "0.5", "--out", str(out)])


@pytest.fixture
def real_server() -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "haipvs.lab.servers", "--name", "rsA",
                               "--http", f"127.0.0.1:{port}"], stdout=subprocess.PIPE)
    assert server.stdout is not None and server.stdout.readline().strip() == b"ready"
    yield port, server
    server.kill()
    server.wait()


def unread_by_server(port: int) -> list[int]:
    """The receive queue of each established socket whose local port is ``port``."""
    queues = []
    for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = row.split()
        local_port = int(fields[1].rpartition(":")[2], 16)
        if local_port == port and fields[3] == "01":
            queues.append(int(fields[4].partition(":")[2], 16))
    return queues


def test_50_connections_hold_with_heartbeats_until_sigterm(
        tmp_path: Path, real_server: tuple[int, subprocess.Popen[bytes]]) -> None:
    port, _ = real_server
    out = tmp_path / "held.json"
    client = start_client(port, out)
    try:
        progress = Path(str(out) + ".progress")
        until(lambda: seen(progress).get("backends") == {"rsA": COUNT})
        until(Path(str(out) + ".ramped").exists)
        # the server leaves the heartbeats unread: every held socket has some waiting
        until(lambda: len(unread_by_server(port)) == COUNT
              and min(unread_by_server(port)) > 0)
        client.send_signal(signal.SIGTERM)
        assert client.wait(30) == 0
    finally:
        client.kill()
    result = json.loads(out.read_text())
    assert result["heartbeat_ms"] >= 50  # a heartbeat never goes early
    assert result["beats"] >= COUNT  # one each at least: the server's queues held them
    assert {key: result[key] for key in ("connections", "opened", "broken", "causes",
                                         "backends", "breaks", "eof_kinds")} == {
        "connections": COUNT, "opened": COUNT, "broken": 0, "causes": {"ok": COUNT},
        "backends": {"rsA": COUNT}, "breaks": [], "eof_kinds": {}}


def test_a_killed_server_resets_every_connection_it_left_heartbeats_unread_in(
        tmp_path: Path, real_server: tuple[int, subprocess.Popen[bytes]]) -> None:
    """The kernel closes a killed process's sockets; one with unread data is closed
    with a RST, not a FIN (RFC 1122 4.2.2.13; Linux does so): /hold never reads the
    heartbeats, so every connection that sent one is reset, and counted ``rst``."""
    port, server = real_server
    out = tmp_path / "held.json"
    client = start_client(port, out)
    try:
        until(lambda: seen(Path(str(out) + ".progress")).get("backends") == {"rsA": COUNT})
        until(lambda: len(unread_by_server(port)) == COUNT
              and min(unread_by_server(port)) > 0)
        server.kill()
        server.wait()
        # every connection broke: the client has nothing left to hold and exits
        assert client.wait(30) == 0
    finally:
        client.kill()
    result = json.loads(out.read_text())
    assert result["opened"] == COUNT
    assert result["causes"] == {"rst": COUNT}, result
    assert result["broken"] == COUNT and len(result["breaks"]) == COUNT
    assert result["eof_kinds"] == {}
    # each broken flow by the client's address and port, with the backend it had
    flows = result["broken_flows"]
    assert {(cause, backend) for _, cause, _, backend in flows} == {("rst", "rsA")}
    assert len({flow for _, _, flow, _ in flows}) == COUNT
    assert all(flow.startswith("127.0.0.1:") for _, _, flow, _ in flows)


class SmallServer:
    """A /hold server in this test: it answers every request with the header and the
    line ``rsA``, then does ``then`` to the connection."""

    def __init__(self, then: Callable[[socket.socket], None]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=COUNT)
        self.port = int(self.listener.getsockname()[1])
        self.then = then
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        self.listener.settimeout(60)
        for _ in range(COUNT):
            sock, _ = self.listener.accept()
            self.accepted.append(sock)
            sock.settimeout(30)
            request = b""
            while b"\r\n\r\n" not in request:
                request += sock.recv(4096)
            sock.sendall(HEADER + b"rsA\n")
            self.then(sock)

    def close(self) -> None:
        self.thread.join(60)
        for sock in self.accepted:
            sock.close()
        self.listener.close()


@pytest.mark.parametrize(("then", "causes", "kinds"), [
    # another real server's name on the same connection (a director that moved the flow)
    (lambda sock: sock.sendall(b"rsB\n"), {"wrong_backend": COUNT}, {}),
    # the server ends its side: a FIN, whatever the client sent is left alone
    (lambda sock: sock.shutdown(socket.SHUT_WR), {"eof": COUNT}, {"FIN": COUNT}),
], ids=["wrong_backend", "fin"])
def test_a_server_that_breaks_every_connection_one_way_is_counted_by_that_cause(
        tmp_path: Path, then: Callable[[socket.socket], None], causes: dict[str, int],
        kinds: dict[str, int]) -> None:
    server = SmallServer(then)
    out = tmp_path / "held.json"
    client = start_client(server.port, out)
    try:
        assert client.wait(60) == 0  # every connection broke: the client exits
    finally:
        client.kill()
        server.close()
    result = json.loads(out.read_text())
    assert result["opened"] == COUNT and result["backends"] == {"rsA": COUNT}
    assert result["causes"] == causes and result["eof_kinds"] == kinds
    assert result["broken"] == COUNT


def test_a_closed_port_fails_every_connect_and_breaks_none(tmp_path: Path) -> None:
    out = tmp_path / "held.json"
    client = start_client(free_port(), out)
    try:
        assert client.wait(60) == 0
    finally:
        client.kill()
    result = json.loads(out.read_text())
    assert result["causes"] == {"connect_failed": COUNT}
    assert result["opened"] == 0 and result["broken"] == 0 and result["breaks"] == []
    assert Path(str(out) + ".ramped").read_text() == f"{COUNT}\n"


def test_a_server_that_goes_silent_times_out_every_connection(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In this process, with SILENCE made short: no second line ever comes."""
    monkeypatch.setattr(holders_module, "SILENCE", 1.5)
    server = SmallServer(lambda sock: None)
    holders = Holders(("127.0.0.1", server.port), socket.AF_INET, ["127.0.0.1"], count=COUNT,
                      heartbeat=0.05, ramp=0.5, result=HoldResult())
    try:
        result = holders.run(time.monotonic() + 120, ramped=tmp_path / "ramped",
                             progress=tmp_path / "progress")
    finally:
        server.close()
    assert result["opened"] == COUNT and result["backends"] == {"rsA": COUNT}
    assert result["causes"] == {"timeout": COUNT}


def sockets_of(pid: int) -> int:
    return sum(1 for fd in Path(f"/proc/{pid}/fd").iterdir()
               if fd.readlink().name.startswith("socket:"))


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_hold_drops_the_connections_its_clients_closed(
        real_server: tuple[int, subprocess.Popen[bytes]], reset: bool) -> None:
    """/hold no longer reads, so it learns of a closed connection from its next write
    (a reset one at once, one closed with a FIN from the RST its next line draws)."""
    port, server = real_server
    idle = sockets_of(server.pid)
    clients = []
    for _ in range(20):
        client = socket.create_connection(("127.0.0.1", port), timeout=30)
        client.sendall(b"GET /hold HTTP/1.1\r\nHost: vip\r\n\r\n")
        clients.append(client)
    for client in clients:
        got = b""
        while not got.endswith(b"\r\n\r\nrsA\n"):
            got += client.recv(4096)
    until(lambda: sockets_of(server.pid) == idle + 20)
    for client in clients:
        if reset:  # SO_LINGER 0: close() sends a RST
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        client.close()
    until(lambda: sockets_of(server.pid) == idle)
    assert server.poll() is None


@pytest.mark.parametrize("use_ring", [True, False], ids=["io_uring", "send"])
async def test_the_tick_writes_every_held_connection_and_drops_the_ones_that_failed(
        use_ring: bool) -> None:
    held = _Held("rsA", use_ring=use_ring)
    server = await asyncio.start_server(lambda r, w: _http_handler("rsA", held, r, w),
                                        "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    streams = []
    for _ in range(10):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /hold HTTP/1.1\r\nHost: vip\r\n\r\n")
        assert await reader.readuntil(b"\r\n\r\nrsA\n")
        streams.append((reader, writer))
    assert len(held.writers) == 10
    held.tick()
    for reader, _ in streams:
        assert await reader.readline() == b"rsA\n"
    for _, writer in streams[:4]:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        writer.close()  # a RST: the server's next write to it fails
    deadline = time.monotonic() + 30
    while len(held.writers) > 6:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
        held.tick()
    assert len(held.writers) == 6
    for reader, _ in streams[4:]:
        assert (await reader.readuntil(b"rsA\n")).endswith(b"rsA\n")
    for _, writer in streams[4:]:
        writer.close()
    server.close()


async def test_forget_aborts_every_held_connection() -> None:
    held = _Held("rsA")
    server = await asyncio.start_server(lambda r, w: _http_handler("rsA", held, r, w),
                                        "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /hold HTTP/1.1\r\nHost: vip\r\n\r\n")
    assert await reader.readuntil(b"\r\n\r\nrsA\n")
    held.forget()
    assert held.writers == set()
    try:  # closed at once: a FIN, or a RST had our bytes been waiting unread there
        got = await asyncio.wait_for(reader.read(10), 10)
    except ConnectionResetError:
        got = b""
    assert got == b""
    writer.close()
    server.close()
