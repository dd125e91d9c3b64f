"""ScriptedProber: a strict, observable stand-in for ``run_probe`` in pool tests.

Shipped in the package (httpcore's MockBackend idea) so that tests elsewhere (the
daemon's) can build a pool without network access and drive health changes. It only
replaces the *probe*: the pool's scheduling, rise/fall and fail-open logic run for real.

Rules kept here:

1. Results are scripted per target, consumed one per call; when a target's
   script runs out, its last result repeats (a steady state).
2. A target nobody scripted is the test's mistake: the call is recorded in
   ``unscripted`` and answered with a failure, and ``default`` (if set) is
   used instead when the test wants every target to answer.
3. Every call is recorded (time, spec, target) for assertions such as "one
   probe per identical check", and the peak concurrency is tracked.
4. Slowness: a scripted ``latency`` is awaited with ``asyncio.sleep`` (virtual
   time under looptime), and ``hold(target)`` returns an ``asyncio.Event``
   the probe waits on, to model a server that hangs until the test lets go.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from checkers.result import ProbeResult
from checkers.spec import CheckSpec, Target

__all__ = ["ProbeCall", "ScriptedProber", "fail", "ok"]


def ok(detail: str = "scripted ok", latency: float = 0.0, weight: int | None = None) -> ProbeResult:
    """A passing result."""
    return ProbeResult(True, detail, latency, weight)


def fail(detail: str = "scripted failure", latency: float = 0.0) -> ProbeResult:
    """A failing result."""
    return ProbeResult(False, detail, latency)


@dataclass(frozen=True, slots=True)
class ProbeCall:
    """One call of the prober (``at`` is the loop time when the probe started)."""

    at: float
    spec: CheckSpec
    target: Target


class ScriptedProber:
    """Answers probes from per-target scripts (see module rules)."""

    def __init__(
        self,
        *,
        default: ProbeResult | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._scripts: dict[Target, deque[ProbeResult]] = {}
        self._last: dict[Target, ProbeResult] = {}
        self._holds: dict[Target, asyncio.Event] = {}
        self._default = default
        self._clock = clock
        self.calls: list[ProbeCall] = []
        self.unscripted: list[Target] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._call_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._idle_waiters: list[asyncio.Future[None]] = []

    def script(self, target: Target, *results: ProbeResult | bool) -> None:
        """Append results for ``target`` (True/False are shorthands for ok()/fail())."""
        queue = self._scripts.setdefault(target, deque())
        for result in results:
            if isinstance(result, bool):
                queue.append(ok() if result else fail())
            else:
                queue.append(result)

    def always(self, target: Target, result: ProbeResult | bool) -> None:
        """Drop the pending script of ``target``; answer ``result`` from now on."""
        self._scripts[target] = deque()
        self._last[target] = (ok() if result else fail()) if isinstance(result, bool) else result

    def hold(self, target: Target) -> asyncio.Event:
        """Make probes of ``target`` wait until the returned event is set (rule 4)."""
        event = self._holds.get(target)
        if event is None or event.is_set():
            event = asyncio.Event()
            self._holds[target] = event
        return event

    async def wait_calls(self, count: int) -> None:
        """Return once at least ``count`` probes have started (no polling, no sleeping)."""
        if len(self.calls) >= count:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._call_waiters.append((count, future))
        await future

    async def wait_idle(self) -> None:
        """Return once no probe is running (e.g. after the pool cancelled them)."""
        if self.in_flight == 0:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._idle_waiters.append(future)
        await future

    def _wake_call_waiters(self) -> None:
        pending = []
        for count, future in self._call_waiters:
            if len(self.calls) >= count:
                if not future.done():
                    future.set_result(None)
            else:
                pending.append((count, future))
        self._call_waiters = pending

    def calls_for(self, target: Target) -> int:
        return sum(1 for call in self.calls if call.target == target)

    def _next(self, target: Target) -> ProbeResult:
        queue = self._scripts.get(target)
        if queue:
            result = queue.popleft()
            self._last[target] = result
            return result
        last = self._last.get(target)
        if last is not None:
            return last
        if self._default is not None:
            return self._default
        self.unscripted.append(target)
        return fail(f"unscripted target {target}")

    async def __call__(self, spec: CheckSpec, target: Target) -> ProbeResult:
        clock = self._clock or asyncio.get_running_loop().time
        self.calls.append(ProbeCall(clock(), spec, target))
        self._wake_call_waiters()
        result = self._next(target)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            gate = self._holds.get(target)
            if gate is not None:
                await gate.wait()
            if result.latency > 0:
                await asyncio.sleep(result.latency)
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                for future in self._idle_waiters:
                    if not future.done():
                        future.set_result(None)
                self._idle_waiters = []
        return result
