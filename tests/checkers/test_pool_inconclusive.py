"""CheckerPool and checkers/inconclusive.py: a timeout seen by a loop that was not running
moves neither rise nor fall; a real timeout still counts.

Virtual time (looptime) for the pool's schedule; one test freezes a real loop with a
blocking call, as SIGSTOP or a starved host does, and drives a callback attempt whose
deadline is a loop timer like the TCP probe's.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterator
from ipaddress import IPv4Address

import pytest
import structlog
from structlog.testing import capture_logs

import checkers.pool as pool_module
from checkers.fake import ScriptedProber, fail, ok
from checkers.health import HealthChanged
from checkers.inconclusive import LATE_BOUND
from checkers.pool import CheckerPool
from checkers.result import ProbeResult
from checkers.spec import BackendId, Target, TcpCheck, Timing

TIMING = Timing(interval=2.0, timeout=1.0, rise=1, fall=1, warmup=0.0)
TCP = TcpCheck(TIMING)
TARGET = Target(IPv4Address("10.0.0.11"), 80)
BACKEND = BackendId("web", IPv4Address("10.0.0.11"), 80)
# a timeout reported this long after it was due: the loop was stopped meanwhile
PAUSE = 5.0


@pytest.fixture(autouse=True)
def _plain_structlog() -> Iterator[None]:
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


def late_timeout() -> ProbeResult:
    return fail("connect timeout after 1.0s", latency=TIMING.timeout + PAUSE)


def on_time_timeout() -> ProbeResult:
    return fail("connect timeout after 1.0s", latency=TIMING.timeout)


async def run_pool(prober: ScriptedProber, calls: int) -> tuple[list[HealthChanged], float]:
    changes: list[HealthChanged] = []
    pool = CheckerPool(prober, rng=random.Random(1), on_change=changes.append, fail_open=None)
    t0 = asyncio.get_running_loop().time()
    pool.update({BACKEND: (TARGET, TCP)}, adopted=[BACKEND])
    pool.start()
    try:
        await prober.wait_calls(calls)
        await prober.wait_idle()
    finally:
        await pool.stop()
    return changes, t0


@pytest.mark.looptime
async def test_a_timeout_whose_deadline_fired_late_is_re_run_at_once_and_counts_nothing() -> None:
    prober = ScriptedProber()
    prober.script(TARGET, late_timeout(), ok("status 200"))
    with capture_logs() as logs:
        changes, t0 = await run_pool(prober, 3)
    assert [c for c in changes if not c.healthy] == []  # fall 1, and no fall counted
    # the re-run starts when the late result arrives, not an interval later; then the grid
    assert [round(c.at - t0, 6) for c in prober.calls[:3]] == [0.0, 6.0, 8.0]
    lines = [e for e in logs if e["event"] == "check.inconclusive"]
    assert len(lines) == 1
    assert lines[0]["rs"] == "10.0.0.11:80"
    assert "fired 5.0s late" in lines[0]["reason"]


@pytest.mark.looptime
async def test_a_timeout_on_time_still_counts_as_a_failure() -> None:
    prober = ScriptedProber()
    prober.script(TARGET, on_time_timeout())
    changes, t0 = await run_pool(prober, 2)
    down = [c for c in changes if not c.healthy]
    assert [c.reason for c in down] == [
        "adopted real server failed its first check: connect timeout after 1.0s"]
    # no re-run: the next probe is on the grid
    assert [round(c.at - t0, 6) for c in prober.calls[:2]] == [0.0, 2.0]


@pytest.mark.looptime
async def test_a_re_run_that_is_late_again_counts_so_a_starved_daemon_converges() -> None:
    prober = ScriptedProber()
    prober.always(TARGET, late_timeout())
    with capture_logs() as logs:
        changes, t0 = await run_pool(prober, 2)
    down = [c for c in changes if not c.healthy]
    assert [c.reason for c in down] == [
        "adopted real server failed its first check: connect timeout after 1.0s"]
    assert [round(c.at - t0, 6) for c in prober.calls[:2]] == [0.0, 6.0]
    assert len([e for e in logs if e["event"] == "check.inconclusive"]) == 1


@pytest.mark.looptime
async def test_under_a_lasting_stall_a_dead_server_still_falls_each_round() -> None:
    # fall 2: each scheduled probe runs twice and counts once; the server still falls
    timing = Timing(interval=2.0, timeout=1.0, rise=1, fall=2, warmup=0.0)
    prober = ScriptedProber()
    prober.script(TARGET, ok(), late_timeout())  # up, then every answer comes 5 s late
    changes: list[HealthChanged] = []
    pool = CheckerPool(prober, rng=random.Random(1), on_change=changes.append, fail_open=None)
    t0 = asyncio.get_running_loop().time()
    pool.update({BACKEND: (TARGET, TcpCheck(timing))}, adopted=[BACKEND])
    pool.start()
    try:
        async with asyncio.timeout(120):
            while not any(not c.healthy for c in changes):
                await prober.wait_calls(len(prober.calls) + 1)
        down = [c for c in changes if not c.healthy]
        assert down[0].reason == "2 failures: connect timeout after 1.0s"
        # ok at 0; late at 2, its re-run at 8 counts (1); late at 16, re-run at 22 counts (2)
        assert [round(c.at - t0, 6) for c in prober.calls[:5]] == [0.0, 2.0, 8.0, 16.0, 22.0]
        assert pool.late_deadlines.inconclusive == 4
    finally:
        await pool.stop()


class FrozenOnce:
    """A callback plan like the TCP probe's: its deadline is a loop timer at start +
    timeout, and its latency is measured when that timer runs. The first attempt freezes
    the loop (a blocking call: what SIGSTOP or a starved host does to the daemon) past
    its deadline; the server answers every later attempt at once."""

    FREEZE = 4 * LATE_BOUND + 0.2

    def __init__(self) -> None:
        self.started = 0

    def start(
        self,
        loop: asyncio.AbstractEventLoop,
        on_done: Callable[[ProbeResult], None],
        started: float | None = None,
    ) -> FrozenOnce:
        self.started += 1
        begin = loop.time() if started is None else started
        if self.started == 1:
            def expired() -> None:
                on_done(ProbeResult(False, "connect timeout after 0.05s", loop.time() - begin))

            loop.call_at(begin + 0.05, expired)
            loop.call_soon(time.sleep, self.FREEZE)
        else:
            loop.call_soon(on_done, ProbeResult(True, "connected", 0.0))
        return self

    def cancel(self) -> None:
        pass


async def test_a_pool_whose_loop_froze_past_a_deadline_counts_no_fall(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plan = FrozenOnce()
    monkeypatch.setattr(pool_module, "plan_probe", lambda spec, target: plan)
    changes: list[HealthChanged] = []
    pool = CheckerPool(rng=random.Random(1), on_change=changes.append, fail_open=None)
    # an hour between scheduled probes: a second start within the test is the re-run
    timing = Timing(interval=3600.0, timeout=0.05, rise=1, fall=1, warmup=0.0)
    pool.update({BACKEND: (TARGET, TcpCheck(timing))}, adopted=[BACKEND])
    pool.start()
    try:
        async with asyncio.timeout(30):
            while pool.probes_completed < 1 or pool.in_flight:
                await asyncio.sleep(0.01)
        assert plan.started == 2
        assert [c for c in changes if not c.healthy] == []
        assert pool.late_deadlines.inconclusive == 1
    finally:
        await pool.stop()


class NeverEnding:
    """A plan whose attempts never report: a probe bug the hung-probe watchdog catches."""

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
async def test_a_watchdog_round_that_fires_late_judges_no_probe_hung(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The pool's clock jumps 20 s at loop time 1 (the daemon was stopped): its first
    # watchdog round fires 20 s late and must not call a 5 s probe "hung" for the time
    # nobody ran; the next round, on time, does.
    plan = NeverEnding()
    monkeypatch.setattr(pool_module, "plan_probe", lambda spec, target: plan)
    loop = asyncio.get_running_loop()
    jump = 0.0

    def clock() -> float:
        return loop.time() + jump

    timing = Timing(interval=2.0, timeout=5.0, rise=1, fall=1, warmup=0.0)
    pool = CheckerPool(clock=clock, rng=random.Random(1), on_change=lambda c: None,
                       fail_open=None)
    pool.update({BACKEND: (TARGET, TcpCheck(timing))}, adopted=[BACKEND])
    pool.start()
    try:
        await asyncio.sleep(1.0)
        jump = 20.0
        await asyncio.sleep(pool_module.WATCHDOG_PERIOD)  # the late round ran at 5
        assert (plan.started, plan.cancelled) == (1, 0)
        await asyncio.sleep(pool_module.WATCHDOG_PERIOD)  # the round at 10, on time
        assert plan.cancelled == 1
    finally:
        await pool.stop()
