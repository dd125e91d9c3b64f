"""Small lab real servers that answer with their own name.

    python -m haipvs.lab.servers --name rs1 --http 0.0.0.0:80 --tcp 0.0.0.0:9000

- HTTP: every request gets `200` with the body "<name>\\n" and `Connection: close`
  (so each client request is a new connection, which IPVS schedules afresh);
  `/slow?s=2` answers after 2 s; `/hold` keeps the connection open and sends one
  line per second (a long-lived connection for drain and sync tests; SIGUSR1 aborts
  every held connection, between a lab's cases). A held
  connection is not read any more: what its client sends (the scale-out client's
  heartbeats) stays in the kernel's receive buffer, so thousands of them cost no
  wake-up per heartbeat, and one tick a second writes the line to all of them.
- TCP: accepts, writes "<name>\\n", closes.
- UDP: answers each datagram with "<name>\\n".

It prints "ready" on stdout once every listener is bound, so a harness can wait for it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import select
import signal
import subprocess
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from haipvs.lab.uring import SendRing

if TYPE_CHECKING:
    from haipvs.lab.topology import BuiltTopology

__all__ = ["main", "serve", "start_real_server"]


def _split(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


class _Held:
    """The `/hold` connections of one server, written to by one tick a second: in one
    io_uring submission where the kernel allows it (haipvs.lab.uring: the scale-out lab
    holds thousands, and in its guest each ``send`` is a trap costing tens of µs)."""

    def __init__(self, name: str, *, use_ring: bool = True) -> None:
        self.line = f"{name}\n".encode()
        self.writers: set[asyncio.StreamWriter] = set()
        self.ring = SendRing[asyncio.StreamWriter].open(self.line) if use_ring else None

    def add(self, writer: asyncio.StreamWriter) -> None:
        transport = writer.transport
        if isinstance(transport, asyncio.ReadTransport):
            # Never read again: the client's bytes wait in the kernel's receive buffer
            # (a heartbeat every 0.2 s is 18 KB an hour) instead of waking this process.
            transport.pause_reading()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + self.line)
        self.writers.add(writer)

    def tick(self) -> None:
        """One line to every held connection; one whose write failed (the transport
        closed itself on the error, or the ring's send returned an error) is dropped.
        Through the ring, a connection whose transport still buffers bytes gets its line
        through the transport too (its bytes stay in order), and a line a full send
        buffer refused is not sent (the client reads on; the next tick's line follows)."""
        ring = self.ring
        for writer in list(self.writers):
            transport = writer.transport
            if transport.is_closing():
                self.writers.discard(writer)
                writer.close()
            elif ring is None or transport.get_write_buffer_size():
                writer.write(self.line)
            else:
                fd = writer.get_extra_info("socket").fileno()
                while not ring.queue(fd, writer):
                    self.submit()
        if ring is not None:
            self.submit()

    def submit(self) -> None:
        assert self.ring is not None
        self.ring.submit()
        for writer, sent in self.ring.reap():
            if sent < 0 and sent != -errno.EAGAIN:
                writer.transport.abort()  # reset or closed by the client: is_closing next

    def forget(self) -> None:
        """Abort every held connection (SIGUSR1): a lab case's client has closed them all,
        but a connection whose reset a director sent elsewhere (a moved rr flow) stays
        here, written to and retransmitted for minutes, taking the next case's CPU."""
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.tick()


async def _http_handler(
    name: str, held: _Held, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10.0)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
        writer.close()
        return
    line = request.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split()
    path = parts[1] if len(parts) > 1 else "/"
    if path.startswith("/hold"):
        held.add(writer)  # the tick writes to it from now on, and closes it
        return
    try:
        if path.startswith("/slow"):
            seconds = float(path.partition("s=")[2] or "1")
            await asyncio.sleep(seconds)
        body = f"{name}\n".encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def _tcp_handler(
    name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    with contextlib.suppress(OSError):
        writer.write(f"{name}\n".encode())
        await writer.drain()
    writer.close()


class _UdpNameProtocol(asyncio.DatagramProtocol):
    def __init__(self, name: str) -> None:
        self.name = name.encode() + b"\n"
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport is not a DatagramTransport subclass
        # on Python 3.11 (it only quacks like one), so no isinstance check here.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if self.transport is not None:
            self.transport.sendto(self.name, addr)


async def serve(name: str, http: Sequence[str], tcp: Sequence[str], udp: Sequence[str]) -> None:
    loop = asyncio.get_running_loop()
    servers: list[asyncio.Server] = []
    held = _Held(name)
    ticking = asyncio.create_task(held.run())
    for endpoint in http:
        host, port = _split(endpoint)
        servers.append(
            await asyncio.start_server(
                lambda r, w: _http_handler(name, held, r, w),
                host, port, reuse_address=True, backlog=1024,
            )
        )
    for endpoint in tcp:
        host, port = _split(endpoint)
        servers.append(
            await asyncio.start_server(
                lambda r, w: _tcp_handler(name, r, w), host, port, reuse_address=True, backlog=1024
            )
        )
    for endpoint in udp:
        host, port = _split(endpoint)
        await loop.create_datagram_endpoint(lambda: _UdpNameProtocol(name), local_addr=(host, port))
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, held.forget)
    print("ready", flush=True)
    await stop.wait()
    ticking.cancel()
    for server in servers:
        server.close()


def start_real_server(
    net: BuiltTopology,
    host: str,
    name: str,
    *,
    http: Sequence[str] = (),
    tcp: Sequence[str] = (),
    udp: Sequence[str] = (),
    ready_timeout: float = 60.0,
) -> subprocess.Popen[bytes]:
    """Start a real server process in `host`'s namespace and wait until it listens."""
    argv = [sys.executable, "-m", "haipvs.lab.servers", "--name", name]
    for flag, endpoints in (("--http", http), ("--tcp", tcp), ("--udp", udp)):
        for endpoint in endpoints:
            argv += [flag, endpoint]
    process = net.popen(host, argv, stdout=subprocess.PIPE)
    assert process.stdout is not None
    ready = select.select([process.stdout], [], [], ready_timeout)[0]
    if not ready or process.stdout.readline().strip() != b"ready":
        process.kill()
        raise RuntimeError(f"real server {name} in {host} did not start")
    return process


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="a lab real server that answers with its name")
    parser.add_argument("--name", required=True)
    parser.add_argument("--http", action="append", default=[], metavar="HOST:PORT")
    parser.add_argument("--tcp", action="append", default=[], metavar="HOST:PORT")
    parser.add_argument("--udp", action="append", default=[], metavar="HOST:PORT")
    args = parser.parse_args(argv)
    if not (args.http or args.tcp or args.udp):
        parser.error("give at least one --http, --tcp or --udp listener")
    asyncio.run(serve(args.name, args.http, args.tcp, args.udp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
