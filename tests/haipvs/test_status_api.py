"""The status API under a hostile client: descriptors, credentials, bad headers."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import socket
from collections.abc import Iterator

import pytest
from support import free_port, until

from haipvs.config import ConfigInvalid, load_config_text
from haipvs.status.api import MAX_CONNECTIONS, ReloadOutcome, StatusApi
from haipvs.status.snapshot import Snapshot

pytestmark = pytest.mark.looptime(False)


def no_snapshot() -> Snapshot:
    raise AssertionError("the snapshot must not be read")


class Reloads:
    def __init__(self) -> None:
        self.count = 0

    async def __call__(self) -> ReloadOutcome:
        self.count += 1
        return ReloadOutcome(True, (), "no changes")


async def request(port: int, raw: bytes) -> tuple[int, bytes]:
    """Send one raw HTTP/1.1 request; the status code and the whole answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(65536), 20)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return int(answer.split(b" ", 2)[1]), answer


def http(method: str, port: int, *headers: bytes, host: bytes | None = None) -> bytes:
    lines = [f"{method} /{'reload' if method == 'POST' else 'healthz'} HTTP/1.1".encode(),
             b"Host: " + (host if host is not None else f"127.0.0.1:{port}".encode()),
             b"Content-Length: 0", b"Connection: close", *headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


@contextlib.asynccontextmanager
async def running(api: StatusApi):  # type: ignore[no-untyped-def]
    await api.start()
    try:
        yield api
    finally:
        await api.stop()


# --- descriptors -------------------------------------------------------------------------


@pytest.fixture
def descriptors() -> Iterator[int]:
    """How many idle clients this process can hold (2,000 where the limits allow)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2_000 + 512
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    available = resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 512
    try:
        yield min(2_000, available)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_idle_connections_past_the_cap_do_not_starve_healthz(descriptors: int) -> None:
    assert descriptors >= MAX_CONNECTIONS * 4
    port = free_port()
    api = StatusApi(f"127.0.0.1:{port}", snapshot=no_snapshot, reload=Reloads())
    idle: list[socket.socket] = []
    async with running(api):
        try:
            loop = asyncio.get_running_loop()
            for _ in range(descriptors):
                sock = socket.socket()
                sock.setblocking(False)
                idle.append(sock)
                await loop.sock_connect(sock, ("127.0.0.1", port))
            # Over the cap, each connection closes the oldest idle one; the newest of a
            # batch accepted at once are refused when the older ones are all gone.
            await until(lambda: api.evicted + api.refused >= descriptors - MAX_CONNECTIONS, 30)
            status, answer = await request(port, http("GET", port))
            assert status == 200 and answer.endswith(b"ok\n")
            assert api._runner is not None and api._runner.server is not None
            assert len(api._runner.server.connections) <= MAX_CONNECTIONS
        finally:
            for sock in idle:
                sock.close()


async def test_a_burst_of_connections_accepted_at_once_stays_under_the_cap() -> None:
    """asyncio accepts every connection waiting in the backlog in one wake-up and asks
    the protocol factory for all of them before any is made: the cap must count those,
    and must not "evict" a connection it already closed (it stays listed until its
    connection_lost, a tick later). Bursts of 90 connections queued while the loop is
    busy once let a daemon hold 545 sockets behind a cap of 64."""
    port = free_port()
    api = StatusApi(f"127.0.0.1:{port}", snapshot=no_snapshot, reload=Reloads())
    idle: list[socket.socket] = []
    async with running(api):
        assert api._runner is not None and api._runner.server is not None
        server = api._runner.server
        try:
            for _ in range(4):
                # Connected by the kernel (the listen backlog is 100) while the loop
                # cannot run: the next wake-up accepts all 90 at once.
                idle += [socket.create_connection(("127.0.0.1", port)) for _ in range(90)]
                opened = len(idle)
                await until(lambda: api.evicted + api.refused + len(server.connections)
                            >= opened, 30)  # noqa: B023 (read before the next round)
                await asyncio.sleep(0.05)  # the evicted ones' connection_lost
                assert len(server.connections) <= MAX_CONNECTIONS
            status, answer = await request(port, http("GET", port))
            assert status == 200 and answer.endswith(b"ok\n")
        finally:
            for sock in idle:
                sock.close()


async def test_an_idle_connection_is_closed_after_the_keepalive_timeout() -> None:
    port = free_port()
    api = StatusApi(f"127.0.0.1:{port}", snapshot=no_snapshot, reload=Reloads(),
                    keepalive_timeout=0.2)
    async with running(api):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            assert await asyncio.wait_for(reader.read(1), 20) == b""  # closed by the server
        finally:
            writer.close()


# --- credentials -------------------------------------------------------------------------


async def test_reload_needs_a_token_even_on_loopback() -> None:
    port, reloads = free_port(), Reloads()
    async with running(StatusApi(f"127.0.0.1:{port}", snapshot=no_snapshot, reload=reloads)):
        status, answer = await request(port, http("POST", port))
        assert status == 403 and b"api_token" in answer
        assert (await request(port, http("GET", port)))[0] == 200  # reads stay open
    assert reloads.count == 0


async def test_reload_with_the_token_works_and_without_it_does_not() -> None:
    port, reloads = free_port(), Reloads()
    api = StatusApi(f"127.0.0.1:{port}", snapshot=no_snapshot, reload=reloads, token="s3cret")
    async with running(api):
        assert (await request(port, http("POST", port)))[0] == 401
        assert (await request(port, http("POST", port, b"Authorization: Bearer nope")))[0] == 401
        assert reloads.count == 0
        assert (await request(port, http("POST", port, b"Authorization: Bearer s3cret")))[0] == 200
    assert reloads.count == 1


async def test_cross_origin_and_rebound_requests_are_refused() -> None:
    port, reloads = free_port(), Reloads()
    api = StatusApi(f"127.0.0.1:{port}", snapshot=no_snapshot, reload=reloads, token="s3cret")
    good = b"Authorization: Bearer s3cret"
    async with running(api):
        status, _ = await request(port, http("POST", port, good, b"Origin: http://evil.example"))
        assert status == 403
        status, _ = await request(port, http("POST", port, good, host=b"evil.example:9797"))
        assert status == 403
        status, _ = await request(port, http("GET", port, good, host=b"evil.example"))
        assert status == 403
        assert (await request(port, http("GET", port, good, host=b"localhost:9797")))[0] == 200
        assert (await request(port, http("GET", port, good, host=b"[::1]:9797")))[0] == 200
    assert reloads.count == 0


@pytest.mark.parametrize("header", [
    b"Authorization: Bearer \xff\xfe\xfd",
    b"Authorization: Bearer s3cr\xc3\xa9t",
    b"Authorization: Basic czNjcmV0",
    b"Authorization: Bearer",
    b"Authorization: s3cret",
])
async def test_a_malformed_authorization_header_is_a_400_not_a_traceback(header: bytes) -> None:
    port, reloads = free_port(), Reloads()
    api = StatusApi(f"127.0.0.1:{port}", snapshot=no_snapshot, reload=reloads, token="s3cret")
    async with running(api):
        for method in ("GET", "POST"):
            status, answer = await request(port, http(method, port, header))
            assert status == 400, answer
            assert b"Traceback" not in answer
    assert reloads.count == 0


@pytest.mark.parametrize("token", ["' '", "'\\t  '", "'two words'"])
def test_a_blank_or_spaced_token_is_refused_with_its_line(token: str) -> None:
    with pytest.raises(ConfigInvalid) as refused:
        load_config_text(f"director:\n  name: d1\n  api_token: {token}\n", "haipvs.yaml")
    assert [str(error) for error in refused.value.errors] == [
        "haipvs.yaml:3: director.api_token: must be printable ASCII with no whitespace "
        "(a bearer token)"
    ]
