"""Coalescer: run one async job on request, at least ``min_interval`` and at most ``max_interval``
apart (k8s pkg/util/async BoundedFrequencyRunner).

Rules kept:

* requests coalesce: any number of ``request()`` calls while a run is pending or in progress
  cause exactly one more run;
* two runs start at least ``min_interval`` apart (a flapping backend cannot make the programmer
  hammer the kernel), and at most ``max_interval`` apart (the periodic full compare that repairs
  drift even when nothing asks for it);
* ``request_at(when)`` asks for a run at an absolute time (a drain deadline); the earliest
  wanted time wins;
* runs never overlap, and a run that raises does not stop the loop: the error goes to
  ``on_error`` and the next run happens on schedule;
* ``ran()`` records a run its owner made itself (the programmer's first sync at start-up):
  the intervals count from it, so ``serve()`` does not repeat it at once.

The decision of when to run is ``due_at()`` (pure arithmetic over the recorded times); the
asyncio part only waits for the earlier of that deadline and a new request. The clock is
injected and defaults to the running loop's ``time`` (tests use looptime's virtual loop time).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable

__all__ = ["Coalescer"]


class Coalescer:
    """Bounded-frequency runner for one job; see the module docstring."""

    def __init__(
        self,
        job: Callable[[], Awaitable[None]],
        *,
        min_interval: float = 0.05,
        max_interval: float = 10.0,
        clock: Callable[[], float] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        if min_interval < 0 or max_interval <= 0 or min_interval > max_interval:
            raise ValueError("need 0 <= min_interval <= max_interval and max_interval > 0")
        self._job = job
        self.min_interval = min_interval
        self.max_interval = max_interval
        self._clock = clock
        self._on_error = on_error
        self._last_start = -math.inf
        self._wanted_at: float | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self.runs = 0
        self.running = False

    def now(self) -> float:
        if self._clock is not None:
            return self._clock()
        return asyncio.get_running_loop().time()

    def request(self) -> None:
        """Run as soon as the minimum interval allows."""
        self._want(-math.inf)

    def request_at(self, when: float) -> None:
        """Run at ``when`` (loop-clock seconds) or earlier if something else asks."""
        self._want(when)

    def _want(self, when: float) -> None:
        if self._wanted_at is None or when < self._wanted_at:
            self._wanted_at = when
        if self._wake is not None:
            self._wake.set()

    def due_at(self) -> float:
        """When the next run should start: the wanted time bounded by min and max interval."""
        periodic = self._last_start + self.max_interval
        if self._wanted_at is None:
            return periodic
        return min(periodic, max(self._wanted_at, self._last_start + self.min_interval))

    def ran(self, at: float | None = None) -> None:
        """A run of the job made outside ``serve()``, started at ``at`` (default: now):
        the next starts ``min_interval`` after it on request, ``max_interval`` without."""
        self._last_start = self.now() if at is None else at

    def stop(self) -> None:
        """Make ``serve()`` return after the run in progress, if any."""
        self._stopping = True
        if self._wake is not None:
            self._wake.set()

    async def serve(self) -> None:
        """Run the job on schedule until ``stop()``."""
        self._wake = asyncio.Event()
        self._stopping = False
        while not self._stopping:
            delay = self.due_at() - self.now()
            if delay > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)
                continue
            await self._run_once()

    async def _run_once(self) -> None:
        self._last_start = self.now()
        self._wanted_at = None
        self.running = True
        try:
            await self._job()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the loop must survive any job failure
            if self._on_error is None:
                raise
            self._on_error(error)
        finally:
            self.running = False
            self.runs += 1
