"""Long-lived TCP connections through a VIP, each with heartbeats, broken ones counted by
cause (the scale-out bench's client).

Each connection asks a lab real server for ``/hold`` (one line with the server's name every
second, straight back to the client with DR/TUN) and sends one heartbeat byte every
``--heartbeat`` seconds the other way, through the routers and a director, so a director
that loses the flow answers it with a RST. A connection is broken by ``rst`` (reset),
``eof``, ``timeout`` (no line for 3 s) or ``wrong_backend`` (a line from another real
server than the first). The summary is one JSON object written to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from collections.abc import Sequence

__all__ = ["main"]

SILENCE = 3.0


async def _hold(vip: str, heartbeat: float, until: float, causes: Counter[str],
                backends: Counter[str]) -> None:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(vip, 80), 10)
    except (OSError, TimeoutError):
        causes["connect_failed"] += 1
        return
    writer.write(b"GET /hold HTTP/1.1\r\nHost: vip\r\n\r\n")
    first: str | None = None

    async def beat() -> None:
        while True:
            await asyncio.sleep(heartbeat)
            writer.write(b"h")
            await writer.drain()

    beats = asyncio.create_task(beat())
    cause = "ok"
    try:
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), SILENCE * 2)
        while time.monotonic() < until:
            line = await asyncio.wait_for(reader.readline(), SILENCE)
            if not line:
                cause = "eof"
                break
            name = line.decode(errors="replace").strip()
            if first is None:
                first = name
                backends[name] += 1
            elif name != first:
                cause = "wrong_backend"
                break
    except TimeoutError:
        cause = "timeout"
    except (ConnectionResetError, BrokenPipeError):
        cause = "rst"
    except (OSError, asyncio.IncompleteReadError):
        cause = "eof"
    if beats.done() and beats.exception() is not None and cause == "ok":
        cause = "rst"
    beats.cancel()
    writer.close()
    causes[cause] += 1


async def _run(vip: str, count: int, heartbeat: float, duration: float, ramp: float) -> dict[
        str, object]:
    causes: Counter[str] = Counter()
    backends: Counter[str] = Counter()
    until = time.monotonic() + duration
    tasks = []
    for _ in range(count):
        tasks.append(asyncio.create_task(_hold(vip, heartbeat, until, causes, backends)))
        await asyncio.sleep(ramp / count)
    await asyncio.gather(*tasks)
    broken = sum(n for cause, n in causes.items() if cause != "ok")
    return {"connections": count, "broken": broken, "causes": dict(causes),
            "backends": dict(backends)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vip", required=True)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--heartbeat", type=float, default=0.2)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--ramp", type=float, default=3.0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    result = asyncio.run(_run(args.vip, args.count, args.heartbeat, args.duration, args.ramp))
    with open(args.out, "w") as handle:
        json.dump(result, handle)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
