"""Long-lived TCP connections through a VIP, each with heartbeats, broken ones counted by
cause (the scale-out bench's and demo's client).

Each connection asks a lab real server for ``/hold`` (one line with the server's name every
second, straight back to the client with DR/TUN) and sends one heartbeat byte every
``--heartbeat`` seconds the other way, through the routers and a director, so a director
that loses the flow answers it with a RST. A connection is broken by ``rst`` (reset),
``eof``, ``timeout`` (no line for 3 s) or ``wrong_backend`` (a line from another real
server than the first); ``connect_failed`` counts connections that never opened.

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

SILENCE = 3.0


@dataclass
class HoldResult:
    causes: Counter[str] = field(default_factory=Counter)
    backends: Counter[str] = field(default_factory=Counter)
    breaks: list[tuple[float, str]] = field(default_factory=list)

    def broke(self, cause: str) -> None:
        self.causes[cause] += 1
        if cause != "ok":
            self.breaks.append((time.monotonic(), cause))

    def summary(self, count: int) -> dict[str, object]:
        broken = sum(n for cause, n in self.causes.items() if cause != "ok")
        return {"connections": count, "broken": broken, "causes": dict(self.causes),
                "backends": dict(self.backends), "breaks": self.breaks}


async def _hold(vip: str, port: int, source: str | None, *, heartbeat: float,
                stop: asyncio.Event, result: HoldResult) -> None:
    local = (source, 0) if source else None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(vip, port, local_addr=local), 10)
    except (OSError, TimeoutError):
        result.broke("connect_failed")
        return
    writer.write(b"GET /hold HTTP/1.1\r\nHost: vip\r\n\r\n")
    first: str | None = None

    async def beat() -> None:
        while True:
            await asyncio.sleep(heartbeat)
            writer.write(b"h")
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
                line_task.cancel()
                if stop.is_set():
                    break
                raise TimeoutError
            line = line_task.result()
            if not line:
                cause = "eof"
                break
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
    except (OSError, asyncio.IncompleteReadError):
        cause = "eof"
    if beats.done() and not beats.cancelled() and beats.exception() is not None \
            and cause == "ok":
        cause = "rst"
    beats.cancel()
    stopped.cancel()
    writer.close()
    result.broke(cause)


async def _run(vip: str, port: int, sources: Sequence[str], *, count: int, heartbeat: float,
               duration: float, ramp: float, ramped: Path, progress: Path) -> dict[str, object]:
    result = HoldResult()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.call_later(duration, stop.set)
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
