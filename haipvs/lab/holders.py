"""Long-lived TCP connections through a VIP, each with heartbeats, broken ones counted by
cause (the scale-out bench's and demo's client).

Each connection asks a lab real server for ``/hold`` (one line with the server's name every
second, straight back to the client with DR/TUN) and sends one heartbeat byte every
``--heartbeat`` seconds the other way, through the routers and a director, so a director
that loses the flow answers it with a RST. A connection is broken by ``rst`` (reset),
``eof``, ``timeout`` (no line for 10 s) or ``wrong_backend`` (a line from another real
server than the first); ``connect_failed`` counts connections that never opened (not
broken: the lab could not take them), ``heartbeat_ms`` is the mean interval the
heartbeats really kept (a starved client sends them late), ``quiet`` the connections
that went 3 s without a line and recovered, ``longest_gap_ms`` the longest such gap. A
silence while this client's own event loop was stalled (more than 1 s late) is not
counted: on a starved CPU the client, not the connection, stopped reading.

The connections are opened over ``--ramp`` seconds, from the ``--source`` addresses in
turn (the kernel picks each source port), so the routers' L4 ECMP hash sees many
distinct flows. Once every connection was attempted, ``--out``.ramped is written; the
connections are held until ``--duration`` passes or SIGTERM (``--out``.progress holds the
summary so far, rewritten every second), then one JSON summary goes to ``--out``: counts
by cause, the first backend of each connection, and the monotonic time of every break (so
a caller can tell which event broke what).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["HoldResult", "main"]

# A connection silent this long is dead (a black hole the routers never healed): TCP
# itself backs off its retransmissions after a loss of a few hundred ms, so a live
# connection can go quiet for 2 or 3 s and recover. Shorter silences are counted apart.
SILENCE = 10.0
QUIET = 3.0


@dataclass
class HoldResult:
    causes: Counter[str] = field(default_factory=Counter)
    backends: Counter[str] = field(default_factory=Counter)
    breaks: list[tuple[float, str]] = field(default_factory=list)

    last_stall: float = float("-inf")  # monotonic time the event loop last ran late

    def stalled_within(self, seconds: float) -> bool:
        return time.monotonic() - self.last_stall < seconds

    opened: int = 0
    eof_kinds: Counter[str] = field(default_factory=Counter)  # what each `eof` was
    quiet: int = 0  # connections that once went QUIET seconds without a line and recovered
    longest_gap: float = 0.0  # seconds, the longest silence a connection recovered from
    beats: int = 0  # heartbeats sent
    held_seconds: float = 0.0  # summed over the connections that ended

    def broke(self, cause: str) -> None:
        self.causes[cause] += 1
        if cause not in ("ok", "connect_failed"):
            self.breaks.append((time.monotonic(), cause))

    def summary(self, count: int) -> dict[str, object]:
        """``broken`` counts connections that opened and then broke; one that never
        opened (``connect_failed``: the lab could not take it) is counted apart."""
        broken = sum(n for cause, n in self.causes.items()
                     if cause not in ("ok", "connect_failed"))
        interval = self.held_seconds / self.beats * 1000 if self.beats else None
        return {"connections": count, "opened": self.opened, "broken": broken,
                "causes": dict(self.causes), "backends": dict(self.backends),
                "breaks": self.breaks, "heartbeat_ms": interval, "quiet": self.quiet,
                "longest_gap_ms": round(self.longest_gap * 1000),
                "eof_kinds": dict(self.eof_kinds)}


async def _hold(vip: str, port: int, source: str | None, *, heartbeat: float,
                stop: asyncio.Event, result: HoldResult) -> None:
    local = (source, 0) if source else None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(vip, port, local_addr=local), 30)
    except (OSError, TimeoutError):
        result.broke("connect_failed")
        return
    result.opened += 1
    opened = time.monotonic()
    writer.write(b"GET /hold HTTP/1.1\r\nHost: vip\r\n\r\n")
    first: str | None = None
    last_line = time.monotonic()
    was_quiet = False

    async def beat() -> None:
        while True:
            await asyncio.sleep(heartbeat)
            writer.write(b"h")
            result.beats += 1
            await writer.drain()

    beats = asyncio.create_task(beat())
    stopped = asyncio.create_task(stop.wait())
    cause = "ok"
    try:
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), SILENCE * 2)
        while not stop.is_set():
            line_task = asyncio.create_task(reader.readline())
            done, _ = await asyncio.wait({line_task, stopped}, timeout=SILENCE,
                                         return_when=asyncio.FIRST_COMPLETED)
            if line_task not in done:
                await asyncio.sleep(0.3)  # the lag watch runs first, if it was late too
                done = {line_task} if line_task.done() else done
            while line_task not in done and not stop.is_set() and result.stalled_within(SILENCE):
                # The silence may be this client's own: a starved event loop reads
                # nothing. Only a silence while the loop kept time counts.
                done, _ = await asyncio.wait({line_task, stopped}, timeout=SILENCE,
                                             return_when=asyncio.FIRST_COMPLETED)
            if line_task not in done:
                line_task.cancel()
                if stop.is_set():
                    break
                raise TimeoutError
            line = line_task.result()
            if not line:
                cause = "eof"
                result.eof_kinds["FIN"] += 1
                break
            gap = time.monotonic() - last_line
            last_line = time.monotonic()
            if first is not None and not result.stalled_within(gap + 0.5):
                result.longest_gap = max(result.longest_gap, gap)
                if gap >= QUIET and not was_quiet:
                    was_quiet = True
                    result.quiet += 1
            name = line.decode(errors="replace").strip()
            if first is None:
                first = name
                result.backends[name] += 1
            elif name != first:
                cause = "wrong_backend"
                break
    except TimeoutError:
        cause = "timeout"
    except (ConnectionResetError, BrokenPipeError):
        cause = "rst"
    except (OSError, asyncio.IncompleteReadError) as error:
        cause = "eof"
        # Which end: a FIN mid-header, a socket error (its errno name), ...
        errno_name = getattr(error, "errno", None)
        result.eof_kinds[type(error).__name__ + (f" {errno_name}" if errno_name else "")] += 1
    if beats.done() and not beats.cancelled() and beats.exception() is not None \
            and cause == "ok":
        cause = "rst"
    beats.cancel()
    stopped.cancel()
    writer.close()
    result.held_seconds += time.monotonic() - opened
    result.broke(cause)


async def _run(vip: str, port: int, sources: Sequence[str], *, count: int, heartbeat: float,
               duration: float, ramp: float, ramped: Path, progress: Path) -> dict[str, object]:
    result = HoldResult()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.call_later(duration, stop.set)

    async def watch_lag() -> None:
        while True:
            before = loop.time()
            await asyncio.sleep(0.1)
            if loop.time() - before > 1.0:
                result.last_stall = time.monotonic()

    lag = asyncio.create_task(watch_lag())
    tasks = []
    for n in range(count):
        source = sources[n % len(sources)] if sources else None
        tasks.append(asyncio.create_task(
            _hold(vip, port, source, heartbeat=heartbeat, stop=stop, result=result)))
        await asyncio.sleep(ramp / count)
    # A marker for the caller: every connection was attempted (tiny and once, so the
    # blocking write does not matter).
    ramped.write_text(f"{count}\n")  # noqa: ASYNC240
    held = asyncio.gather(*tasks)
    while not held.done():
        # What the connections saw so far, for a caller that reports as it goes (the
        # demo); small, once a second.
        progress.write_text(json.dumps(result.summary(count)))  # noqa: ASYNC240
        await asyncio.wait({held}, timeout=1.0)
    lag.cancel()
    return result.summary(count)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vip", required=True)
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--source", action="append", default=[],
                        help="a local address to open connections from (repeat; in turn)")
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--heartbeat", type=float, default=0.2)
    parser.add_argument("--duration", type=float, default=3600.0)
    parser.add_argument("--ramp", type=float, default=3.0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    result = asyncio.run(_run(args.vip, args.port, args.source, count=args.count,
                              heartbeat=args.heartbeat, duration=args.duration, ramp=args.ramp,
                              ramped=Path(args.out + ".ramped"),
                              progress=Path(args.out + ".progress")))
    with open(args.out + ".tmp", "w") as handle:
        json.dump(result, handle)
    os.replace(args.out + ".tmp", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
