"""A lab client that sends a new HTTP request at a fixed rate and records each answer.

    python -m haipvs.lab.client --url http://198.51.100.10/ --interval 0.01 --out log.jsonl

Each request is a new TCP connection (so IPVS schedules each one), started on its
own schedule whether or not earlier ones have answered. One JSON object per request
goes to --out: {"t": send time (monotonic), "ok": bool, "server": name or null,
"error": text or null, "ms": latency}. It runs until --duration passes or SIGTERM.

`outages()` turns such a record into the gaps an operator cares about: the time
between the last success before a failure and the first success after it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TextIO

__all__ = ["Outage", "Sample", "main", "outages", "read_samples"]


@dataclass(frozen=True, slots=True)
class Sample:
    t: float
    ok: bool
    server: str | None
    error: str | None
    ms: float


@dataclass(frozen=True, slots=True)
class Outage:
    start: float  # the last success before the gap
    end: float  # the first success after it
    failed_requests: int

    @property
    def seconds(self) -> float:
        return self.end - self.start


def outages(samples: Iterable[Sample], *, min_failed: int = 1,
            end: float | None = None) -> list[Outage]:
    """Gaps with at least `min_failed` failed requests between two successes; with `end`
    (when the record stops), also one still open then, ending at `end`."""
    ordered = sorted(samples, key=lambda s: s.t)
    found: list[Outage] = []
    last_ok: float | None = None
    failed = 0
    for sample in ordered:
        if sample.ok:
            if last_ok is not None and failed >= min_failed:
                found.append(Outage(last_ok, sample.t, failed))
            last_ok, failed = sample.t, 0
        else:
            failed += 1
    if end is not None and last_ok is not None and failed >= min_failed:
        found.append(Outage(last_ok, max(end, last_ok), failed))
    return found


def read_samples(path: str) -> list[Sample]:
    """The samples written so far (none before the client's first answer; a line the
    client is still writing is skipped)."""
    samples: list[Sample] = []
    try:
        with open(path) as handle:
            for line in handle:
                with contextlib.suppress(ValueError, TypeError):
                    samples.append(Sample(**json.loads(line)))
    except FileNotFoundError:
        pass
    return samples


async def _request(
    host: str, port: int, path: str, limit: float
) -> tuple[str | None, str | None]:
    try:
        async with asyncio.timeout(limit):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(
                    f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
                )
                data = await reader.read(4096)
            finally:
                writer.close()
    except TimeoutError:
        return None, "timeout"
    except OSError as error:
        return None, error.strerror or type(error).__name__
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        return None, head.split(b"\r\n", 1)[0].decode("latin-1") or "empty reply"
    return body.decode("latin-1").strip() or None, None


async def run_client(
    url: str, interval: float, duration: float, limit: float, out: TextIO
) -> None:
    parsed = urllib.parse.urlsplit(url)
    host = parsed.hostname or "127.0.0.1"
    port = parsed.port or 80
    path = parsed.path or "/"
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    pending: set[asyncio.Task[None]] = set()

    async def one(started: float) -> None:
        server, error = await _request(host, port, path, limit)
        sample = Sample(started, error is None, server, error, (loop.time() - started) * 1000)
        out.write(json.dumps(_as_dict(sample)))
        out.write("\n")
        out.flush()

    deadline = loop.time() + duration
    next_at = loop.time()
    print("ready", file=sys.stderr, flush=True)
    while not stop.is_set() and loop.time() < deadline:
        task = asyncio.create_task(one(time.monotonic()))
        pending.add(task)
        task.add_done_callback(pending.discard)
        next_at += interval
        delay = next_at - loop.time()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
    if pending:
        await asyncio.wait(pending, timeout=limit + 1.0)


def _as_dict(sample: Sample) -> dict[str, object]:
    return {"t": sample.t, "ok": sample.ok, "server": sample.server, "error": sample.error,
            "ms": sample.ms}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="send HTTP requests at a fixed rate")
    parser.add_argument("--url", required=True)
    parser.add_argument("--interval", type=float, default=0.01)
    parser.add_argument("--duration", type=float, default=3600.0)
    parser.add_argument("--timeout", type=float, default=1.0)
    parser.add_argument("--out", default="-")
    args = parser.parse_args(argv)
    out = sys.stdout if args.out == "-" else open(args.out, "a")  # noqa: SIM115
    try:
        asyncio.run(run_client(args.url, args.interval, args.duration, args.timeout, out))
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
