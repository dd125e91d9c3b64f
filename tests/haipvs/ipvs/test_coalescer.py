"""Coalescer (BoundedFrequencyRunner): coalescing, min/max interval, deadlines, errors.

Runs on looptime's virtual loop clock: intervals are exact and cost no wall time.
"""

from __future__ import annotations

import asyncio

import pytest

from haipvs.ipvs.coalescer import Coalescer

pytestmark = pytest.mark.looptime


class Recorder:
    def __init__(self) -> None:
        self.starts: list[float] = []
        self.fail = False
        self.duration = 0.0

    async def __call__(self) -> None:
        self.starts.append(asyncio.get_running_loop().time())
        if self.duration:
            await asyncio.sleep(self.duration)
        if self.fail:
            raise RuntimeError("boom")


async def run_for(coalescer: Coalescer, seconds: float) -> None:
    task = asyncio.create_task(coalescer.serve())
    await asyncio.sleep(seconds)
    coalescer.stop()
    await task


async def test_first_run_is_immediate_then_periodic_at_max_interval() -> None:
    job = Recorder()
    c = Coalescer(job, min_interval=1.0, max_interval=10.0)
    await run_for(c, 35.0)
    assert job.starts == [0.0, 10.0, 20.0, 30.0]


async def test_a_run_made_outside_serve_starts_the_intervals() -> None:
    # The programmer's first sync at start-up is awaited by the daemon itself: the loop
    # does not repeat it at once, runs max_interval after it, and a request still runs
    # min_interval after it.
    job = Recorder()
    c = Coalescer(job, min_interval=1.0, max_interval=10.0)
    await job()
    c.ran(0.0)
    await run_for(c, 25.0)
    assert job.starts == [0.0, 10.0, 20.0]
    late = Coalescer(job, min_interval=1.0, max_interval=10.0)
    job.starts.clear()
    late.ran()  # at loop time 25.0
    task = asyncio.create_task(late.serve())
    late.request()
    await asyncio.sleep(2.0)
    late.stop()
    await task
    assert job.starts == [26.0]


async def test_requests_coalesce_and_respect_min_interval() -> None:
    job = Recorder()
    c = Coalescer(job, min_interval=1.0, max_interval=100.0)
    task = asyncio.create_task(c.serve())
    await asyncio.sleep(0.25)  # first run at 0
    for _ in range(5):
        c.request()
    await asyncio.sleep(2.0)
    assert job.starts == [0.0, 1.0]  # five requests, one run, not before min_interval
    await asyncio.sleep(3.0)  # t=5.25: a request long after the last run runs at once
    c.request()
    await asyncio.sleep(0.1)
    c.stop()
    await task
    assert job.starts == [0.0, 1.0, 5.25]


async def test_request_during_a_run_causes_exactly_one_more_run() -> None:
    job = Recorder()
    job.duration = 2.0
    c = Coalescer(job, min_interval=0.5, max_interval=100.0)
    task = asyncio.create_task(c.serve())
    await asyncio.sleep(0.5)  # inside the first run
    c.request()
    c.request()
    await asyncio.sleep(10.0)
    c.stop()
    await task
    assert job.starts == [0.0, 2.0]


async def test_request_at_runs_at_the_deadline_and_earliest_wins() -> None:
    job = Recorder()
    c = Coalescer(job, min_interval=0.0, max_interval=100.0)
    task = asyncio.create_task(c.serve())
    await asyncio.sleep(1.0)
    c.request_at(7.0)
    c.request_at(4.0)
    await asyncio.sleep(10.0)
    c.stop()
    await task
    assert job.starts == [0.0, 4.0]


async def test_a_failing_job_does_not_stop_the_loop() -> None:
    job = Recorder()
    job.fail = True
    errors: list[BaseException] = []
    c = Coalescer(job, min_interval=0.0, max_interval=5.0, on_error=errors.append)
    await run_for(c, 12.0)
    assert job.starts == [0.0, 5.0, 10.0]
    assert len(errors) == 3 and c.runs == 3


def test_due_at_is_pure_arithmetic_over_recorded_times() -> None:
    c = Coalescer(Recorder(), min_interval=1.0, max_interval=10.0, clock=lambda: 0.0)
    c._last_start = 100.0
    assert c.due_at() == 110.0
    c.request_at(105.0)
    assert c.due_at() == 105.0
    c.request()
    assert c.due_at() == 101.0  # min_interval bounds an immediate request


def test_bad_intervals_raise() -> None:
    with pytest.raises(ValueError):
        Coalescer(Recorder(), min_interval=5.0, max_interval=1.0)
