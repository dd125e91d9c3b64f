"""CheckerPool under real asyncio with virtual time (looptime) and a ScriptedProber.

Each test waits for *conditions* (a HealthChanged, N probe calls) rather than
for wall time; looptime fast-forwards the loop clock while it is idle, so the
virtual times asserted below are exact.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import random
from collections.abc import Callable, Iterator
from ipaddress import IPv4Address

import pytest
import structlog
from structlog.testing import capture_logs

from checkers.fake import ScriptedProber, fail, ok
from checkers.health import HealthChanged
from checkers.hysteresis import Reason
from checkers.pool import CheckerPool
from checkers.spec import (
    BackendId,
    CheckSpec,
    DampingSettings,
    FailOpenSettings,
    HttpCheck,
    Target,
    TcpCheck,
    Timing,
)

pytestmark = pytest.mark.looptime

TIMING = Timing(
    interval=2.0, timeout=1.0, rise=2, fall=3, fast_interval=0.5, down_interval=5.0, warmup=0.0
)
TCP = TcpCheck(TIMING)


def rs(n: int, port: int = 80) -> Target:
    return Target(IPv4Address(f"10.0.0.{n}"), port)


def backend(service: str, n: int, port: int = 80) -> BackendId:
    return BackendId(service, IPv4Address(f"10.0.0.{n}"), port)


class Recorder:
    """on_change callback that remembers (loop time, change) and can be awaited."""

    def __init__(self) -> None:
        self.changes: list[tuple[float, HealthChanged]] = []
        self._event = asyncio.Event()

    def __call__(self, change: HealthChanged) -> None:
        self.changes.append((asyncio.get_running_loop().time(), change))
        self._event.set()

    async def wait_for(
        self, predicate: Callable[[HealthChanged], bool], *, after: int = 0, within: float = 120.0
    ) -> tuple[float, HealthChanged]:
        """The first change at index >= ``after`` matching ``predicate`` (virtual timeout)."""
        async with asyncio.timeout(within):
            while True:
                for when, change in self.changes[after:]:
                    if predicate(change):
                        return when, change
                self._event.clear()
                await self._event.wait()

    async def wait_until(self, condition: Callable[[], bool], *, within: float = 120.0) -> None:
        """Return once ``condition()`` holds, re-checked after every change."""
        async with asyncio.timeout(within):
            while not condition():
                self._event.clear()
                await self._event.wait()

    def of(self, backend_id: BackendId) -> list[HealthChanged]:
        return [c for _, c in self.changes if c.backend == backend_id]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def prober() -> ScriptedProber:
    return ScriptedProber()


@pytest.fixture(autouse=True)
def _plain_structlog() -> Iterator[None]:
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


def make_pool(prober: ScriptedProber, recorder: Recorder, **kwargs: object) -> CheckerPool:
    return CheckerPool(prober, rng=random.Random(5), on_change=recorder, **kwargs)  # type: ignore[arg-type]


async def test_new_real_server_starts_down_and_rises(
    prober: ScriptedProber, recorder: Recorder
) -> None:
    pool = make_pool(prober, recorder)
    b = backend("web", 11)
    prober.script(rs(11), ok("status 200"))
    t0 = asyncio.get_running_loop().time()
    pool.update({b: (rs(11), TCP)})
    # alpha: reported down at once, before any probe
    assert recorder.of(b) == [
        HealthChanged(
            b, False, "new real server: down until 2 successes", 0.0, None, Reason.NEW_REAL_SERVER
        )
    ]
    pool.start()
    try:
        when, up = await recorder.wait_for(lambda c: c.healthy)
        assert up.reason == "2 successes: status 200"
        assert up.cause is Reason.RISE
        # warmup 0: first probe at t0; in doubt: second one fast_interval later
        assert [round(c.at - t0, 6) for c in prober.calls] == [0.0, 0.5]
        assert when - t0 == pytest.approx(0.5)
    finally:
        await pool.stop()


async def test_fall_reason_and_intervals(prober: ScriptedProber, recorder: Recorder) -> None:
    pool = make_pool(prober, recorder)
    b = backend("web", 11)
    prober.script(rs(11), ok(), ok(), ok(), fail("status 503"), fail(), fail("connect refused"))
    t0 = asyncio.get_running_loop().time()
    pool.update({b: (rs(11), TCP)})
    pool.start()
    try:
        with capture_logs() as logs:
            when, down = await recorder.wait_for(lambda c: not c.healthy, after=1)
            await prober.wait_calls(8)
        assert down.reason == "3 failures: connect refused"
        assert down.weight_factor == 0.0
        # ok@0, ok@0.5 (up), ok@2.5 (interval), fails at 4.5, 5.0, 5.5 (fastinter), then
        # downinter 5 s while settled down
        assert [round(c.at - t0, 6) for c in prober.calls[:8]] == [
            0.0,
            0.5,
            2.5,
            4.5,
            5.0,
            5.5,
            10.5,
            15.5,
        ]
        assert when - t0 == pytest.approx(5.5)
        assert {
            "event": "check.down",
            "vs": "web",
            "rs": "10.0.0.11:80",
            "reason": "3 failures: connect refused",
            "cause": "fall",
            "log_level": "info",
        } in logs
    finally:
        await pool.stop()


async def test_adopted_server_stays_up_until_its_first_result(
    prober: ScriptedProber, recorder: Recorder
) -> None:
    pool = make_pool(prober, recorder)
    good, bad = backend("web", 11), backend("web", 12)
    prober.script(rs(11), ok())
    prober.script(rs(12), fail("connect refused"))
    gate_good, gate_bad = prober.hold(rs(11)), prober.hold(rs(12))
    pool.update({good: (rs(11), TCP), bad: (rs(12), TCP)}, adopted=[good, bad])
    assert [c.healthy for c in recorder.of(good)] == [True]
    assert [c.healthy for c in recorder.of(bad)] == [True]
    assert recorder.of(bad)[0].cause is Reason.ADOPTED
    pool.start()
    try:
        await prober.wait_calls(2)
        # both probes are running and have not answered: still up, still in the table
        snap = pool.snapshot()
        assert snap.backends[good].healthy and snap.backends[bad].healthy
        gate_good.set()
        gate_bad.set()
        _, down = await recorder.wait_for(lambda c: not c.healthy)
        assert down.backend == bad
        assert down.reason == "adopted real server failed its first check: connect refused"
        # one failure was enough; the good one never changed
        assert [c.healthy for c in recorder.of(good)] == [True]
        assert pool.snapshot().backends[good].healthy
    finally:
        await pool.stop()


async def test_identical_checks_on_one_target_share_one_probe(
    prober: ScriptedProber, recorder: Recorder
) -> None:
    pool = make_pool(prober, recorder)
    web, api = backend("web", 11), backend("api", 11)
    other = backend("static", 11)
    # same probe parameters and timeout; different rise: still one probe
    api_check = TcpCheck(dataclasses.replace(TIMING, rise=1))
    http = HttpCheck(TIMING, tls=False, path="/healthz")
    prober.always(rs(11), ok())
    pool.update({web: (rs(11), TCP), api: (rs(11), api_check), other: (rs(11), http)})
    assert pool.snapshot().probes == 2
    pool.start()
    try:
        await recorder.wait_for(lambda c: c.backend == web and c.healthy)
        await prober.wait_calls(10)
        tcp_calls = [c for c in prober.calls if isinstance(c.spec, TcpCheck)]
        http_calls = [c for c in prober.calls if isinstance(c.spec, HttpCheck)]
        assert tcp_calls and http_calls
        # never two TCP probes of that target at the same instant
        assert len({c.at for c in tcp_calls}) == len(tcp_calls)
        # api (rise 1) went up on the first shared result, web (rise 2) on the second
        assert [c.healthy for c in recorder.of(api)] == [False, True]
        assert [c.healthy for c in recorder.of(web)] == [False, True]
    finally:
        await pool.stop()


async def test_reload_keeps_state_of_unchanged_checks(
    prober: ScriptedProber, recorder: Recorder
) -> None:
    pool = make_pool(prober, recorder)
    kept, removed = backend("web", 11), backend("web", 12)
    prober.always(rs(11), ok())
    prober.always(rs(12), ok())
    pool.update({kept: (rs(11), TCP), removed: (rs(12), TCP)})
    pool.start()
    try:
        await recorder.wait_for(lambda c: c.backend == kept and c.healthy)
        await recorder.wait_for(lambda c: c.backend == removed and c.healthy)
        await prober.wait_calls(len(prober.calls) + 4)  # let time pass after the rise
        before = len(recorder.changes)
        since = pool.snapshot().backends[kept].since
        assert asyncio.get_running_loop().time() > since
        # one failure is within fall=3 for a server that keeps its state
        prober.script(rs(11), fail("connect refused"), ok())
        # reload: same check with new tuning (interval, rise), one backend removed
        retuned = TcpCheck(dataclasses.replace(TIMING, interval=1.0, rise=5))
        pool.update({kept: (rs(11), retuned)})
        assert recorder.changes[before:] == []  # no flap
        snap = pool.snapshot()
        assert snap.backends[kept].healthy and snap.backends[kept].since == since
        assert removed not in snap.backends
        calls_12 = prober.calls_for(rs(12))
        calls_11 = prober.calls_for(rs(11))
        await prober.wait_calls(len(prober.calls) + 4)
        assert prober.calls_for(rs(12)) == calls_12  # the removed check stopped
        assert recorder.changes[before:] == []  # the single failure did not take it down
        # the new interval is used from the next probe on
        last = [c.at for c in prober.calls if c.target == rs(11)][calls_11 - 1 :]
        assert [round(b - a, 6) for a, b in itertools.pairwise(last)][-2:] == [1.0, 1.0]
    finally:
        await pool.stop()


async def test_changed_check_keeps_a_healthy_server_until_the_new_check_answers(
    prober: ScriptedProber, recorder: Recorder
) -> None:
    pool = make_pool(prober, recorder)
    b = backend("web", 11)
    prober.always(rs(11), ok())
    pool.update({b: (rs(11), TCP)})
    pool.start()
    try:
        await recorder.wait_for(lambda c: c.healthy)
        before = len(recorder.changes)
        http = HttpCheck(TIMING, tls=False, path="/healthz")
        prober.always(rs(11), fail("status 404"))
        pool.update({b: (rs(11), http)})
        assert recorder.changes[before:] == []
        assert pool.snapshot().backends[b].healthy
        _, down = await recorder.wait_for(lambda c: not c.healthy, after=before)
        assert down.reason == "adopted real server failed its first check: status 404"
        assert isinstance(prober.calls[-1].spec, HttpCheck)
    finally:
        await pool.stop()


async def test_warmup_spreads_the_first_probes(prober: ScriptedProber, recorder: Recorder) -> None:
    pool = make_pool(prober, recorder)
    timing = dataclasses.replace(TIMING, warmup=3.0)
    assignments: dict[BackendId, tuple[Target, CheckSpec]] = {
        backend("web", n): (rs(n), TcpCheck(timing)) for n in range(1, 201)
    }
    for n in range(1, 201):
        prober.always(rs(n), ok())
    t0 = asyncio.get_running_loop().time()
    pool.update(assignments)
    pool.start()
    try:
        # every backend rises one fast_interval after its first probe
        await recorder.wait_until(lambda: sum(c.healthy for _, c in recorder.changes) == 200)
        firsts = sorted({c.target: c.at - t0 for c in reversed(prober.calls)}.values())
        assert len(firsts) == 200
        assert firsts[0] >= 0.0
        assert firsts[-1] <= 3.0
        # never a burst: no 0.1 s slice of the warm-up holds more than 20 first probes
        slices = [0] * 31
        for at in firsts:
            slices[int(at / 0.1)] += 1
        assert max(slices) <= 20
    finally:
        await pool.stop()


async def test_concurrency_is_bounded(prober: ScriptedProber, recorder: Recorder) -> None:
    pool = make_pool(prober, recorder, max_concurrency=3)
    gates = []
    for n in range(1, 11):
        prober.always(rs(n), ok())
        gates.append(prober.hold(rs(n)))
    pool.update({backend("web", n): (rs(n), TCP) for n in range(1, 11)})
    pool.start()
    try:
        await prober.wait_calls(3)
        snap = pool.snapshot()
        assert snap.in_flight == 3
        assert snap.waiting == 7
        assert prober.max_in_flight == 3
        for gate in gates:
            gate.set()
        await prober.wait_calls(10)
        assert prober.max_in_flight == 3
        # waiting probes started late; the lateness is measured
        assert max(pool.lateness()) >= 0.0
    finally:
        await pool.stop()


async def test_fail_open_keeps_the_service_when_most_servers_fail_at_once(
    prober: ScriptedProber, recorder: Recorder
) -> None:
    timing = dataclasses.replace(TIMING, rise=1, fall=1)
    pool = make_pool(prober, recorder, fail_open=FailOpenSettings(fail_open_ratio=0.5, window=10.0))
    members = [backend("web", n) for n in range(1, 5)]
    for n in range(1, 5):
        prober.always(rs(n), ok())
    pool.update(
        {backend("web", n): (rs(n), TcpCheck(timing)) for n in range(1, 5)}, adopted=members
    )
    pool.start()
    try:
        await prober.wait_calls(4)
        before = len(recorder.changes)
        # a broken check deploy: every probe fails from now on
        for n in range(1, 5):
            prober.always(rs(n), fail("status 500"))
        with capture_logs() as logs:
            await recorder.wait_for(lambda c: c.cause is Reason.FAIL_OPEN, after=before)
            await prober.wait_calls(len(prober.calls) + 4)
        entered = [e for e in logs if e["event"] == "check.failopen.entered"]
        assert len(entered) == 1
        assert entered[0]["vs"] == "web"
        assert entered[0]["reason"].startswith("3 of 4 real servers went down within 10s")
        # the failures themselves are still logged, marked as held
        held_downs = [e for e in logs if e["event"] == "check.down" and e.get("fail_open_held")]
        assert held_downs and all(e["log_level"] == "warning" for e in held_downs)
        snap = pool.snapshot()
        assert snap.services["web"].fail_open
        assert all(snap.backends[b].healthy for b in members)
        assert all(not snap.backends[b].checked_up for b in members)
        current = pool.current()
        assert all(current[b].healthy and current[b].weight_factor == 1.0 for b in members)
        assert all(current[b].cause is Reason.FAIL_OPEN for b in members)
        # the service never emptied: replay the changes and count members in it
        in_service = {b: True for b in members}
        for _, change in recorder.changes[before:]:
            in_service[change.backend] = change.healthy
            assert any(in_service.values())
        assert all(in_service.values())

        # the checks recover: fail-open clears and nothing is left held
        for n in range(1, 5):
            prober.always(rs(n), ok())
        with capture_logs() as logs:
            await prober.wait_calls(len(prober.calls) + 8)
        assert [e["event"] for e in logs if e["event"].startswith("check.failopen")] == [
            "check.failopen.cleared"
        ]
        snap = pool.snapshot()
        assert not snap.services["web"].fail_open
        assert all(snap.backends[b].checked_up for b in members)
        assert all(c.healthy and c.cause is Reason.RISE for c in pool.current().values())
    finally:
        await pool.stop()


async def test_slow_start_reports_each_weight_step(
    prober: ScriptedProber, recorder: Recorder
) -> None:
    timing = dataclasses.replace(TIMING, rise=1, slow_start=3.0)
    pool = make_pool(prober, recorder)
    b = backend("web", 11)
    prober.always(rs(11), ok())
    pool.update({b: (rs(11), TcpCheck(timing))})
    pool.start()
    try:
        t_up, _ = await recorder.wait_for(lambda c: c.healthy)
        t_full, _ = await recorder.wait_for(lambda c: c.weight_factor == 1.0)
        ramp = [
            (round(when - t_up, 6), round(c.weight_factor, 3))
            for when, c in recorder.changes
            if c.healthy
        ]
        assert ramp == [(0.0, 0.333), (1.0, 0.667), (2.0, 1.0)]
        assert t_full - t_up == pytest.approx(2.0)
        assert recorder.changes[-1][1].cause is Reason.SLOW_START
    finally:
        await pool.stop()


async def test_flapping_backend_is_damped(prober: ScriptedProber, recorder: Recorder) -> None:
    damping = DampingSettings(half_life=30.0, max_suppress=120.0)
    timing = dataclasses.replace(TIMING, rise=1, fall=1, flap_damping=damping)
    pool = make_pool(prober, recorder)
    b = backend("web", 11)
    prober.script(rs(11), ok(), fail(), ok(), ok())
    pool.update({b: (rs(11), TcpCheck(timing))})
    pool.start()
    try:
        with capture_logs() as logs:
            await prober.wait_calls(4)
        damped = [e for e in logs if e["event"] == "check.damped"]
        assert len(damped) == 1
        assert damped[0]["rs"] == "10.0.0.11:80"
        assert damped[0]["reason"].startswith("flap damping: penalty")
        assert [c.healthy for c in recorder.of(b)] == [False, True, False]
        snap = pool.snapshot().backends[b]
        assert snap.damped and snap.checked_up is False and snap.cause is Reason.DAMPED
        # released when the penalty decays, without any new flap
        _, released = await recorder.wait_for(lambda c: c.healthy, after=3)
        assert released.cause is Reason.DAMPING_RELEASED
    finally:
        await pool.stop()


async def test_snapshot_has_history_and_latency(prober: ScriptedProber, recorder: Recorder) -> None:
    pool = make_pool(prober, recorder, history=3)
    b = backend("web", 11)
    prober.script(
        rs(11),
        ok("status 200", latency=0.01),
        fail("status 503", latency=0.2),
        ok("status 200", latency=0.03),
        ok("status 200", latency=0.04),
    )
    pool.update({b: (rs(11), TCP)})
    pool.start()
    try:
        await prober.wait_calls(5)
        status = pool.snapshot().backends[b]
        assert [(h.ok, h.detail, h.latency) for h in status.history] == [
            (False, "status 503", 0.2),
            (True, "status 200", 0.03),
            (True, "status 200", 0.04),
        ]
        assert status.last_latency == 0.04
        assert status.check == "tcp/10.0.0.11:80"
    finally:
        await pool.stop()


async def test_stop_cancels_running_probes(prober: ScriptedProber, recorder: Recorder) -> None:
    pool = make_pool(prober, recorder)
    prober.always(rs(11), ok())
    prober.hold(rs(11))
    pool.update({backend("web", 11): (rs(11), TCP)})
    pool.start()
    await prober.wait_calls(1)
    assert pool.in_flight == 1
    await pool.stop()
    assert pool.in_flight == 0
    assert prober.in_flight == 0


async def test_a_crashing_prober_counts_as_a_failed_check(recorder: Recorder) -> None:
    async def broken(spec: CheckSpec, target: Target) -> object:
        raise RuntimeError("bug")

    pool = CheckerPool(broken, rng=random.Random(1), on_change=recorder)  # type: ignore[arg-type]
    b = backend("web", 11)
    pool.update({b: (rs(11), TCP)}, adopted=[b])
    pool.start()
    try:
        with capture_logs() as logs:
            _, down = await recorder.wait_for(lambda c: not c.healthy)
        assert (
            down.reason == "adopted real server failed its first check: probe crashed: RuntimeError"
        )
        assert any(e["event"] == "check.probe.crashed" for e in logs)
    finally:
        await pool.stop()


async def test_probes_stay_on_their_grid_and_slow_ones_count_from_their_end(
    prober: ScriptedProber, recorder: Recorder
) -> None:
    pool = make_pool(prober, recorder)
    quick, slow = backend("web", 11), backend("web", 12)
    prober.always(rs(11), ok(latency=0.3))
    prober.always(rs(12), ok(latency=3.0))
    t0 = asyncio.get_running_loop().time()
    pool.update({quick: (rs(11), TCP), slow: (rs(12), TCP)}, adopted=[quick, slow])
    pool.start()
    try:
        await prober.wait_calls(9)
        quick_starts = [round(c.at - t0, 6) for c in prober.calls if c.target == rs(11)]
        slow_starts = [round(c.at - t0, 6) for c in prober.calls if c.target == rs(12)]
        # 0.3 s probes every 2 s on the grid 0, 2, 4 (not 2.3, 4.6)
        assert quick_starts[:4] == [0.0, 2.0, 4.0, 6.0]
        # 3 s probes: end + 2 s
        assert slow_starts[:3] == [0.0, 5.0, 10.0]
    finally:
        await pool.stop()


async def test_removing_a_backend_cancels_its_running_probe(
    prober: ScriptedProber, recorder: Recorder
) -> None:
    pool = make_pool(prober, recorder)
    b = backend("web", 11)
    prober.always(rs(11), ok())
    prober.hold(rs(11))
    pool.update({b: (rs(11), TCP)}, adopted=[b])
    pool.start()
    try:
        await prober.wait_calls(1)
        assert prober.in_flight == 1
        before = len(recorder.changes)
        pool.update({})
        await prober.wait_idle()  # the cancellation reached the probe
        assert prober.in_flight == 0
        assert pool.in_flight == 0
        assert pool.snapshot().backends == {}
        assert pool.snapshot().services == {}
        assert recorder.changes[before:] == []
    finally:
        await pool.stop()


async def test_stop_then_start_resumes_probing(prober: ScriptedProber, recorder: Recorder) -> None:
    pool = make_pool(prober, recorder)
    b = backend("web", 11)
    prober.always(rs(11), ok())
    pool.update({b: (rs(11), TCP)})
    pool.start()
    await recorder.wait_for(lambda c: c.healthy)
    await pool.stop()
    calls = len(prober.calls)
    pool.start()
    try:
        await prober.wait_calls(calls + 2)
        assert pool.snapshot().backends[b].healthy  # the state survived the restart
    finally:
        await pool.stop()


@pytest.mark.looptime(False)
async def test_real_tcp_probes_on_loopback(recorder: Recorder) -> None:
    """The pool with the real run_probe: a listening server rises, a closed one falls."""
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    target = Target(IPv4Address("127.0.0.1"), port)
    b = BackendId("web", IPv4Address("127.0.0.1"), port)
    timing = Timing(interval=0.05, timeout=1.0, rise=2, fall=2, warmup=0.0)
    pool = CheckerPool(rng=random.Random(1), on_change=recorder)
    pool.update({b: (target, TcpCheck(timing))})
    pool.start()
    try:
        _, up = await recorder.wait_for(lambda c: c.healthy, within=10.0)
        assert up.reason.startswith("2 successes")
        server.close()
        await server.wait_closed()
        _, down = await recorder.wait_for(lambda c: not c.healthy, after=2, within=10.0)
        assert down.reason == "2 failures: connect refused"
        history = pool.snapshot().backends[b].history
        assert history[-1].ok is False
        assert history[-1].detail == "connect refused"
    finally:
        await pool.stop()
        server.close()


async def test_a_hung_probe_is_cancelled_and_counted_as_a_failure(
    prober: ScriptedProber, recorder: Recorder
) -> None:
    pool = make_pool(prober, recorder)
    b = backend("web", 11)
    prober.always(rs(11), ok())
    prober.hold(rs(11))  # never released: the probe ignores its own timeout
    t0 = asyncio.get_running_loop().time()
    pool.update({b: (rs(11), TCP)}, adopted=[b])
    pool.start()
    try:
        with capture_logs() as logs:
            when, down = await recorder.wait_for(lambda c: not c.healthy)
        assert down.reason == (
            "adopted real server failed its first check: probe hung past its 1s timeout"
        )
        # timeout 1 s + grace 5 s, found by the sweep that runs every 5 s
        assert when - t0 == pytest.approx(10.0)
        hung = [e for e in logs if e["event"] == "check.probe.hung"]
        assert len(hung) == 1 and hung[0]["rs"] == "10.0.0.11:80"
        assert prober.in_flight == 0
    finally:
        await pool.stop()


async def test_an_injected_clock_drives_the_deadlines(
    prober: ScriptedProber, recorder: Recorder
) -> None:
    loop = asyncio.get_running_loop()

    def clock() -> float:
        return loop.time() + 5000.0  # another monotonic origin than the loop's

    pool = CheckerPool(prober, clock=clock, rng=random.Random(5), on_change=recorder)
    b = backend("web", 11)
    prober.always(rs(11), ok())
    t0 = loop.time()
    pool.update({b: (rs(11), TCP)})
    pool.start()
    try:
        await prober.wait_calls(4)
        # first probe at once, then fast_interval while rising, then interval
        assert [round(c.at - t0, 6) for c in prober.calls[:4]] == [0.0, 0.5, 2.5, 4.5]
        # the core saw the injected clock's times
        assert pool.snapshot().backends[b].since - t0 == pytest.approx(5000.5)
    finally:
        await pool.stop()


async def test_a_changed_check_keeps_the_service_fail_open_settings(
    prober: ScriptedProber, recorder: Recorder
) -> None:
    pool = make_pool(prober, recorder)
    b = backend("web", 11)
    custom = FailOpenSettings(fail_open_ratio=0.3, window=5.0, min_real_servers=1)
    pool.update({b: (rs(11), TCP)}, fail_open={"web": custom})
    http = HttpCheck(TIMING, tls=False)
    pool.update({b: (rs(11), http)})  # the only backend's check changed
    status = pool.snapshot()
    assert status.backends[b].check == "http/10.0.0.11:80"
    # the service survived the remove+add of its only backend with its settings
    assert status.services["web"].fail_open_settings == custom
    pool.update({})
    assert pool.snapshot().services == {}


@pytest.mark.parametrize(("interval", "early"), [(2.0, 0.02), (10.0, 0.05), (0.5, 0.01)])
async def test_a_start_comes_at_most_its_share_of_its_interval_early(
    interval: float, early: float
) -> None:
    # 200 probes spread at random over the interval, the pool's default batch:
    # each start may come 1 % of its interval early, between 10 and 50 ms.
    timing = Timing(interval=interval, timeout=0.5, rise=1, fall=1)
    prober = ScriptedProber(default=ok())
    pool = CheckerPool(prober, rng=random.Random(7), on_change=lambda change: None, fail_open=None)
    pool.update(
        {
            backend("web", n % 250, 80 + n // 250): (rs(n % 250, 80 + n // 250), TcpCheck(timing))
            for n in range(200)
        }
    )
    pool.start()
    try:
        await prober.wait_calls(600)  # three rounds
        tick = 1e-6  # looptime's clock resolution
        lateness = pool.lateness()
        assert all(-early - tick <= late <= tick for late in lateness)
        # the whole allowance is used: some starts come more than half of it early
        assert min(lateness) < -early / 2
        # batches cover `early` of the interval each: at most one wake-up per
        # `early` for the 200 starts of a round
        wakeups = {call.at for call in prober.calls[200:400]}
        assert len(wakeups) <= interval / early + 1
    finally:
        await pool.stop()


@pytest.mark.parametrize(("batch", "most_wakeups"), [(0.01, 100), (0.0, 200)])
async def test_probe_starts_due_within_the_batch_share_one_wake_up(
    batch: float, most_wakeups: int
) -> None:
    # 200 probes spread at random over a 1 s interval (no warmup: the spread is
    # the interval, schedule rule 1).
    timing = Timing(interval=1.0, timeout=0.5, rise=1, fall=1)
    prober = ScriptedProber(default=ok())
    pool = CheckerPool(
        prober,
        rng=random.Random(7),
        on_change=lambda change: None,
        fail_open=None,
        probe_batch=batch,
    )
    pool.update(
        {
            backend("web", n % 250, 80 + n // 250): (rs(n % 250, 80 + n // 250), TcpCheck(timing))
            for n in range(200)
        }
    )
    pool.start()
    try:
        await prober.wait_calls(600)  # three rounds
        wakeups = {call.at for call in prober.calls[:200]}
        if batch:
            assert len(wakeups) <= most_wakeups  # at most one per batch of the second
        else:
            assert len(wakeups) == most_wakeups  # one each
        # Never late, at most one batch early (a start minus its deadline).
        tick = 1e-6  # looptime's clock resolution
        assert all(-batch - tick <= late <= tick for late in pool.lateness())
        # Each probe keeps its own grid: every start of one target is a whole number
        # of intervals after its first, within a batch.
        first: dict[Target, float] = {}
        for call in prober.calls:
            at = first.setdefault(call.target, call.at)
            rounds = round(call.at - at)
            assert abs(call.at - at - rounds) <= batch + tick
    finally:
        await pool.stop()
