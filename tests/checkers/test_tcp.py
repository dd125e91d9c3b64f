"""TCP connect probe against real sockets on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from checkers.probe import run_probe
from checkers.result import ProbeResult
from checkers.spec import Target, TcpCheck, Timing
from checkers.tcp import TcpAttempt, _readiness_of, check_tcp


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.fixture
async def accepting_port() -> AsyncIterator[int]:
    """A real server that accepts and closes every connection."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on: the kernel answers SYN with RST."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def black_hole_port() -> Iterator[int]:
    """A listener whose accept queue is full and never drained: SYNs are dropped."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(8):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    yield port
    for filler in fillers:
        filler.close()
    listener.close()


async def test_accepting_server_is_up(accepting_port: int) -> None:
    result = await check_tcp("127.0.0.1", accepting_port, 1.0)
    assert result.ok
    assert result.detail == "connected"
    assert result.latency >= 0.0
    assert result.weight is None


async def test_closed_port_is_refused(closed_port: int) -> None:
    result = await check_tcp("127.0.0.1", closed_port, 1.0)
    assert not result.ok
    assert result.detail == "connect refused"


async def test_full_backlog_times_out_with_the_configured_timeout(black_hole_port: int) -> None:
    result = await check_tcp("127.0.0.1", black_hole_port, 0.3)
    assert not result.ok
    # The probe itself ends the attempt at its deadline, not the kernel's SYN retries.
    assert result.detail == "connect timeout after 0.3s"


async def test_source_address_is_bound() -> None:
    seen: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(writer.get_extra_info("peername")[0])
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        result = await check_tcp("127.0.0.1", port, 1.0, bind_address="127.0.0.9")
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0)  # let the server's accept callback run
    finally:
        server.close()
        await server.wait_closed()
    assert result.ok
    assert seen == ["127.0.0.9"]


async def test_unusable_bind_address_is_a_failure_not_an_exception(accepting_port: int) -> None:
    result = await check_tcp("127.0.0.1", accepting_port, 1.0, bind_address="192.0.2.77")
    assert not result.ok
    assert result.detail.startswith("bind 192.0.2.77 failed")


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no ::1")
async def test_ipv6_loopback() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(handle, "::1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        up = await check_tcp("::1", port, 1.0)
    finally:
        server.close()
        await server.wait_closed()
    refused = await check_tcp("::1", port, 1.0)
    assert up.ok
    assert not refused.ok
    assert refused.detail == "connect refused"


async def test_probe_leaves_no_time_wait_behind() -> None:
    # SO_LINGER 0: the checker closes first with an RST, so the director does
    # not keep a TIME_WAIT socket per check. The server holds its side open so
    # that the checker is the active closer.
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        results = [await check_tcp("127.0.0.1", port, 1.0) for _ in range(20)]
        table = Path("/proc/net/tcp").read_text()
        rows = [line.split() for line in table.splitlines()[1:]]
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
    assert all(r.ok for r in results)
    port_hex = f"{port:04X}"
    # Any checker-side socket still in the table (FIN_WAIT2, TIME_WAIT...) is a leak.
    lingering = [r[3] for r in rows if r[2].endswith(":" + port_hex)]
    assert lingering == []


async def test_cancellation_propagates_and_closes(black_hole_port: int) -> None:
    task = asyncio.ensure_future(check_tcp("127.0.0.1", black_hole_port, 30.0))
    for _ in range(5):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_run_probe_dispatches_a_tcp_check_with_connect_port(accepting_port: int) -> None:
    timing = Timing(interval=1.0, timeout=0.5, rise=1, fall=1)
    target = Target(IPv4Address("127.0.0.1"), 1)  # port 1: nothing listens there
    via_connect_port = await run_probe(TcpCheck(timing, connect_port=accepting_port), target)
    on_target_port = await run_probe(TcpCheck(timing), target)
    assert via_connect_port.ok
    assert on_target_port.detail == "connect refused"


async def test_run_probe_refuses_a_spec_it_does_not_know() -> None:
    # Our own misuse (a new spec type without a probe) raises; it is not a check failure.
    with pytest.raises(TypeError, match="no probe for check spec str"):
        await run_probe("tcp", Target(IPv4Address("127.0.0.1"), 80))  # type: ignore[arg-type]


async def test_attempts_of_different_timeouts_share_one_timer_and_each_expires_on_its_own(
    black_hole_port: int,
) -> None:
    later, sooner = await asyncio.gather(
        check_tcp("127.0.0.1", black_hole_port, 0.4), check_tcp("127.0.0.1", black_hole_port, 0.2)
    )
    assert (later.detail, sooner.detail) == (
        "connect timeout after 0.4s",
        "connect timeout after 0.2s",
    )
    assert later.latency >= 0.4 and sooner.latency >= 0.2
    assert not later.ok and not sooner.ok
    # Nothing live: the deadline FIFOs are dropped and the loop timer cancelled.
    readiness = _readiness_of(asyncio.get_running_loop())
    assert readiness._deadlines == {} and readiness._timer is None


async def test_finished_attempts_release_their_deadlines(accepting_port: int) -> None:
    results = [await check_tcp("127.0.0.1", accepting_port, 30.0) for _ in range(3)]
    assert [r.detail for r in results] == ["connected"] * 3
    readiness = _readiness_of(asyncio.get_running_loop())
    assert readiness._deadlines == {} and readiness._timer is None


async def test_an_attempt_reports_once_and_never_from_its_constructor() -> None:
    loop = asyncio.get_running_loop()
    results: list[ProbeResult] = []
    attempt = TcpAttempt(
        loop, results.append, "127.0.0.1", 1, timeout=1.0, bind_address="192.0.2.77"
    )
    assert results == []  # the caller has not stored the attempt yet
    await asyncio.sleep(0)
    assert [r.detail for r in results] == [
        "bind 192.0.2.77 failed: cannot assign requested address"
    ]
    attempt.cancel()  # after the result: nothing more
    await asyncio.sleep(0)
    assert len(results) == 1


@pytest.mark.looptime
async def test_a_cancelled_attempt_reports_nothing_and_closes(black_hole_port: int) -> None:
    loop = asyncio.get_running_loop()
    results: list[ProbeResult] = []
    attempt = TcpAttempt(loop, results.append, "127.0.0.1", black_hole_port, timeout=0.1)
    sock = attempt.sock
    assert sock is not None
    attempt.cancel()
    assert sock.fileno() == -1
    await asyncio.sleep(0.3)  # past its deadline, in virtual loop time
    assert results == []


async def test_the_deadline_timer_skips_attempts_that_ended(
    accepting_port: int, black_hole_port: int
) -> None:
    # Healthy servers answer long before their deadline: the one loop timer is for
    # the oldest attempt still running, not a wake-up per start at each deadline.
    loop = asyncio.get_running_loop()
    results: list[ProbeResult] = []
    timeout = 0.3
    first = TcpAttempt(loop, results.append, "127.0.0.1", black_hole_port, timeout=timeout)
    for _ in range(2):
        await asyncio.sleep(0.05)
        TcpAttempt(loop, results.append, "127.0.0.1", accepting_port, timeout=timeout)
    await asyncio.sleep(0.05)
    last = TcpAttempt(loop, results.append, "127.0.0.1", black_hole_port, timeout=timeout)
    async with asyncio.timeout(10):
        while len(results) < 3:  # the two connected, then the first one's timeout
            await asyncio.sleep(0.01)
    assert [r.detail for r in results] == ["connected", "connected", "connect timeout after 0.3s"]
    readiness = _readiness_of(loop)
    assert readiness._timer is not None
    assert readiness._timer_at == last.started + timeout
    assert first.sock is None
    last.cancel()
