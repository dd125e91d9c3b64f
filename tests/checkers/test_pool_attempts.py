"""CheckerPool with the callback probes (TCP, plain HTTP): no task per probe.

Real loopback sockets for what the attempts do; a recording plan under
virtual time (looptime) for the hung-probe watchdog, which is minutes of
wall time otherwise.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from ipaddress import IPv4Address

import pytest

import checkers.pool as pool_module
from checkers.health import HealthChanged
from checkers.pool import HUNG_GRACE, WATCHDOG_PERIOD, CheckerPool
from checkers.result import ProbeResult
from checkers.spec import BackendId, CheckSpec, HttpCheck, Target, TcpCheck, Timing
from checkers.tcp import TcpAttempt

TIMING = Timing(interval=0.2, timeout=5.0, rise=1, fall=1, warmup=0.0)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
async def http_port() -> AsyncIterator[int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the TCP check resets without a request
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


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


def local(service: str, port: int) -> tuple[BackendId, Target]:
    address = IPv4Address("127.0.0.1")
    return BackendId(service, address, port), Target(address, port)


async def wait_until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.01)


async def test_tcp_and_http_checks_run_without_a_task_per_probe(
    http_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks: list[object] = []
    run_in_task = CheckerPool._run

    def recording_run(self: CheckerPool, probe: object) -> object:
        tasks.append(probe)
        return run_in_task(self, probe)  # type: ignore[arg-type]

    monkeypatch.setattr(CheckerPool, "_run", recording_run)
    changes: list[HealthChanged] = []
    pool = CheckerPool(rng=random.Random(1), on_change=changes.append, fail_open=None)
    tcp_id, target = local("tcp", http_port)
    http_id, http_target = local("http", http_port)
    specs: dict[BackendId, tuple[Target, CheckSpec]] = {
        tcp_id: (target, TcpCheck(TIMING)),
        http_id: (http_target, HttpCheck(TIMING, tls=False, path="/")),
    }
    pool.update(specs)
    pool.start()
    try:
        await wait_until(lambda: pool.probes_completed >= 10)
        assert tasks == []  # every probe ran as a callback attempt
        current = pool.current()
        assert current[tcp_id].healthy and current[tcp_id].reason == "1 success: connected"
        assert current[http_id].healthy and current[http_id].reason == "1 success: status 200"
    finally:
        await pool.stop()


async def test_removing_a_backend_closes_its_running_attempt_at_once(black_hole_port: int) -> None:
    pool = CheckerPool(rng=random.Random(1), on_change=lambda change: None, fail_open=None)
    backend, target = local("web", black_hole_port)
    pool.update({backend: (target, TcpCheck(TIMING))})
    pool.start()
    try:
        await wait_until(lambda: pool.in_flight == 1)
        fds = open_fds()
        pool.update({})
        assert pool.in_flight == 0
        assert open_fds() == fds - 1  # the probe's socket
        assert pool.probes_completed == 0  # a cancelled attempt reports nothing
    finally:
        await pool.stop()


async def test_a_removed_probe_is_freed_at_once_not_left_to_the_collector(
    http_port: int,
) -> None:
    # The daemon freezes its start-up objects (gc.freeze): anything of a removed
    # backend that only a full collection could free would leak on every reload.
    pool = CheckerPool(rng=random.Random(1), on_change=lambda change: None, fail_open=None)
    backend, target = local("web", http_port)
    pool.update({backend: (target, TcpCheck(TIMING))})
    pool.start()
    try:
        await wait_until(lambda: pool.probes_completed >= 2)
        gc.collect()
        gc.disable()
        try:
            pool.update({})
            left = [o for o in gc.get_objects() if isinstance(o, pool_module._Probe)]
        finally:
            gc.enable()
        assert left == []
    finally:
        await pool.stop()


async def test_an_attempt_starts_at_the_time_the_pool_read_for_its_batch(
    black_hole_port: int,
) -> None:
    # One clock read per wake-up, not one per check: a clock read is a system call
    # where there is no vDSO (the lab guest), as costly as the check's own calls.
    pool = CheckerPool(rng=random.Random(1), on_change=lambda change: None, fail_open=None)
    backend, target = local("web", black_hole_port)
    pool.update({backend: (target, TcpCheck(TIMING))})
    pool.start()
    try:
        await wait_until(lambda: pool.in_flight == 1)
        (probe,) = pool._probes.values()
        attempt = probe.attempt
        assert isinstance(attempt, TcpAttempt)
        assert attempt.started == probe.started_at
    finally:
        await pool.stop()


async def test_stop_closes_running_attempts_and_keeps_the_cap(black_hole_port: int) -> None:
    pool = CheckerPool(
        rng=random.Random(1), on_change=lambda change: None, fail_open=None, max_concurrency=2
    )
    # five targets (ports 1..5), each probed on the black hole (connect_port)
    spec = TcpCheck(TIMING, connect_port=black_hole_port)
    pool.update({local("web", port)[0]: (local("web", port)[1], spec) for port in range(1, 6)})
    pool.start()
    await wait_until(lambda: pool.in_flight == 2)
    await asyncio.sleep(0.05)
    snapshot = pool.snapshot()
    assert (snapshot.in_flight, snapshot.waiting) == (2, 3)
    fds = open_fds()
    await pool.stop()
    assert pool.in_flight == 0
    assert open_fds() == fds - 2


class NeverEnding:
    """A plan whose attempts never report: a probe bug the watchdog must catch."""

    def __init__(self) -> None:
        self.started = 0
        self.cancelled = 0

    def start(
        self,
        loop: asyncio.AbstractEventLoop,
        on_done: Callable[[ProbeResult], None],
        started: float | None = None,
    ) -> NeverEnding:
        self.started += 1
        return self

    def cancel(self) -> None:
        self.cancelled += 1


@pytest.mark.looptime
async def test_a_hung_attempt_is_cancelled_and_counted_as_a_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plan = NeverEnding()
    monkeypatch.setattr(pool_module, "plan_probe", lambda spec, target: plan)
    changes: list[HealthChanged] = []
    pool = CheckerPool(rng=random.Random(1), on_change=changes.append, fail_open=None)
    backend, target = local("web", 80)
    pool.update({backend: (target, TcpCheck(TIMING))}, adopted=[backend])
    pool.start()
    try:
        await asyncio.sleep(TIMING.timeout + HUNG_GRACE + 2 * WATCHDOG_PERIOD)
        assert plan.cancelled >= 1
        assert plan.started == plan.cancelled + pool.in_flight
        down = [c for c in changes if not c.healthy]
        assert down[0].reason.endswith("probe hung past its 5s timeout")
    finally:
        await pool.stop()


class Crashing:
    """A plan whose start raises, as socket(2) does when the director is out of fds."""

    def __init__(self) -> None:
        self.started = 0

    def start(
        self,
        loop: asyncio.AbstractEventLoop,
        on_done: Callable[[ProbeResult], None],
        started: float | None = None,
    ) -> NeverEnding:
        self.started += 1
        raise OSError(24, "Too many open files")


@pytest.mark.looptime
async def test_an_attempt_that_cannot_start_is_a_failed_check_and_the_pool_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plan = Crashing()
    monkeypatch.setattr(pool_module, "plan_probe", lambda spec, target: plan)
    changes: list[HealthChanged] = []
    pool = CheckerPool(rng=random.Random(1), on_change=changes.append, fail_open=None)
    backend, target = local("web", 80)
    pool.update({backend: (target, TcpCheck(TIMING))}, adopted=[backend])
    pool.start()
    try:
        await asyncio.sleep(10 * TIMING.interval)
        assert plan.started >= 5  # the schedule went on after the first crash
        assert pool.in_flight == 0
        down = [c for c in changes if not c.healthy]
        assert down[0].reason.endswith("probe crashed: OSError")
    finally:
        await pool.stop()
