"""HTTP/HTTPS probe against real servers on loopback.

Servers: fine, slow (answers after the probe's timeout), refusing (closed
port), black-holed (accepts, never answers), half-answering (headers then a
stall, or a close mid-body), wrong status, and TLS with a CA made here with
trustme (SNI, verification success and failure).
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from ipaddress import IPv4Address
from pathlib import Path

import pytest
import trustme
from hypothesis import example, given, settings
from hypothesis import strategies as st

from checkers.http import HttpAttempt, ResponseReader, check_http, format_status_ranges
from checkers.http import plan as http_plan
from checkers.probe import run_probe
from checkers.result import ProbeResult
from checkers.spec import HttpCheck, Target, Timing

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
TlsServer = tuple[ssl.SSLContext, list[str | None]]


class Server:
    """A loopback HTTP server whose behaviour is the handler; records requests."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.server_names: list[str | None] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(
        self, handler: Handler, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None
    ) -> Server:
        async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self._writers.append(writer)
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (ConnectionError, asyncio.IncompleteReadError):
                return  # the probe gave up first (or never sent a request)
            self.requests.append(head)
            await handler(reader, writer)

        self._server = await asyncio.start_server(wrapped, host, 0, ssl=tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        for writer in self._writers:
            writer.transport.abort()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


def answer(status: str, body: bytes, *, length: int | None = None) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        size = len(body) if length is None else length
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    return handler


def stall_after(data: bytes) -> Handler:
    """Send `data`, then hold the connection open forever (until the test ends)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()
        await asyncio.Event().wait()

    return handler


def close_after(data: bytes) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()
        writer.close()

    return handler


Serve = Callable[..., Awaitable[Server]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[Server] = []

    async def start(handler: Handler, **kwargs: object) -> Server:
        server = await Server().start(handler, **kwargs)  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


# -- plain HTTP ---------------------------------------------------------------


async def test_fine_server_is_up_and_request_is_well_formed(serve: Serve) -> None:
    server = await serve(answer("200 OK", b"ok"))
    result = await check_http("127.0.0.1", server.port, 1.0, path="/healthz", host="web.example")
    assert result.ok, result.detail
    assert result.detail == "status 200"
    request = server.requests[0]
    assert request.startswith(b"GET /healthz HTTP/1.0\r\n")
    assert b"\r\nHost: web.example\r\n" in request
    assert b"\r\nConnection: close\r\n" in request


async def test_default_host_header_is_the_address_and_port(serve: Serve) -> None:
    server = await serve(answer("200 OK", b"ok"))
    await check_http("127.0.0.1", server.port, 1.0)
    assert f"\r\nHost: 127.0.0.1:{server.port}\r\n".encode() in server.requests[0]


async def test_wrong_status_names_the_expected_ranges(serve: Serve) -> None:
    server = await serve(answer("503 Service Unavailable", b"busy"))
    result = await check_http("127.0.0.1", server.port, 1.0)
    assert not result.ok
    assert result.detail == "status 503 not in 200-299"


async def test_status_ranges_and_single_codes(serve: Serve) -> None:
    server = await serve(answer("302 Found", b""))
    ranges = ((200, 200), (301, 302))
    assert (await check_http("127.0.0.1", server.port, 1.0, expect_status=ranges)).ok
    result = await check_http("127.0.0.1", server.port, 1.0, expect_status=((200, 200),))
    assert result.detail == "status 302 not in 200"
    assert format_status_ranges(((200, 299), (404, 404))) == "200-299,404"


async def test_body_regex(serve: Serve) -> None:
    server = await serve(answer("200 OK", b'{"state": "serving"}'))
    assert (await check_http("127.0.0.1", server.port, 1.0, body_regex=r'"serv\w+"')).ok
    result = await check_http("127.0.0.1", server.port, 1.0, body_regex="ok")
    assert not result.ok
    assert result.detail == "body does not match /ok/"


async def test_body_digest_like_keepalived_http_get(serve: Serve) -> None:
    body = b"<html>healthy</html>"
    server = await serve(answer("200 OK", body))
    good = hashlib.md5(body).hexdigest()
    assert (await check_http("127.0.0.1", server.port, 1.0, body_digest=good)).ok
    bad = hashlib.md5(b"other").hexdigest()
    result = await check_http("127.0.0.1", server.port, 1.0, body_digest=bad)
    assert not result.ok
    assert result.detail == f"body digest {good} does not match {bad}"


async def test_body_read_to_close_without_content_length(serve: Serve) -> None:
    server = await serve(close_after(b"HTTP/1.0 200 OK\r\n\r\nall good here"))
    assert (await check_http("127.0.0.1", server.port, 1.0, body_regex="good")).ok


async def test_head_request_ends_with_the_headers(serve: Serve) -> None:
    # A HEAD answer carries Content-Length but no body: waiting for it would time out.
    server = await serve(stall_after(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n"))
    result = await check_http("127.0.0.1", server.port, 1.0, method="HEAD")
    assert result.ok, result.detail
    assert server.requests[0].startswith(b"HEAD / HTTP/1.0\r\n")


async def test_refusing_server(serve: Serve) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = await check_http("127.0.0.1", port, 1.0)
    assert not result.ok
    assert result.detail == "connect refused"


async def test_slow_server_answers_after_the_timeout(serve: Serve) -> None:
    answered_late = asyncio.Event()

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answered_late.wait()  # released only after the probe has given up
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")

    server = await serve(slow)
    result = await check_http("127.0.0.1", server.port, 0.3)
    answered_late.set()
    assert not result.ok
    assert result.detail == "response timeout after 0.3s"


async def test_black_holed_server_accepts_and_never_answers(serve: Serve) -> None:
    server = await serve(stall_after(b""))
    result = await check_http("127.0.0.1", server.port, 0.2)
    assert not result.ok
    assert result.detail == "response timeout after 0.2s"


async def test_half_answering_server_stalls_mid_headers(serve: Serve) -> None:
    server = await serve(stall_after(b"HTTP/1.1 200 OK\r\nContent-"))
    result = await check_http("127.0.0.1", server.port, 0.2)
    assert result.detail == "timeout after 0.2s in the response headers"


async def test_half_answering_server_stalls_mid_body(serve: Serve) -> None:
    server = await serve(stall_after(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789"))
    result = await check_http("127.0.0.1", server.port, 0.2)
    assert not result.ok
    assert result.detail == "timeout after 0.2s in the body, 10 of 100 bytes"


async def test_half_answering_server_closes_mid_body(serve: Serve) -> None:
    server = await serve(answer("200 OK", b"0123456789", length=100))
    result = await check_http("127.0.0.1", server.port, 1.0)
    assert not result.ok
    assert result.detail == "connection closed mid-body after 10 of 100 bytes"


async def test_server_closing_without_answer(serve: Serve) -> None:
    server = await serve(close_after(b""))
    result = await check_http("127.0.0.1", server.port, 1.0)
    assert result.detail == "connection closed without a response"


async def test_garbage_instead_of_http(serve: Serve) -> None:
    server = await serve(close_after(b"SSH-2.0-OpenSSH_9.2\r\n\r\n"))
    result = await check_http("127.0.0.1", server.port, 1.0)
    assert not result.ok
    assert result.detail.startswith("malformed status line")


async def test_ipv6_literal_and_host_header(serve: Serve) -> None:
    try:
        server = await serve(answer("200 OK", b"ok"), host="::1")
    except OSError:
        pytest.skip("no ::1")
    result = await check_http("::1", server.port, 1.0)
    assert result.ok, result.detail
    assert f"\r\nHost: [::1]:{server.port}\r\n".encode() in server.requests[0]


# -- the response reader alone (no IO) ----------------------------------------


def test_reader_completes_on_content_length_across_chunks() -> None:
    reader = ResponseReader(keep_body=True)
    assert not reader.feed(b"HTTP/1.1 200 OK\r\nContent-Le")
    assert not reader.feed(b"ngth: 4\r\n\r\nab")
    assert reader.feed(b"cd")
    assert (reader.status, bytes(reader.body), reader.error) == (200, b"abcd", None)


def test_reader_rejects_bad_content_length() -> None:
    reader = ResponseReader(keep_body=False)
    assert reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n")
    assert reader.error == "malformed content-length b'-1'"


def test_reader_refuses_a_content_length_too_long_for_int() -> None:
    # Python's int() refuses 4300 digits with a ValueError, which escaped the probe.
    reader = ResponseReader(keep_body=False)
    assert reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: " + b"9" * 4300 + b"\r\n\r\n")
    assert reader.error == "content-length too large b'99999999999999999999'..."
    reader = ResponseReader(keep_body=False)
    assert not reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 999999999999999999\r\n\r\n")
    assert reader.error is None and reader.content_length == 10**18 - 1


def test_reader_searches_each_head_byte_once_however_it_arrives() -> None:
    head = b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 60_000 + b"\r\nContent-Length: 0\r\n\r\n"
    reader = ResponseReader(keep_body=False)
    done = [reader.feed(head[i : i + 1]) for i in range(len(head))]
    assert done[-1] and not any(done[:-1]) and reader.error is None
    # The end marker may straddle two pieces: at most 3 bytes are searched again each time.
    assert reader.head_scanned <= 4 * len(head)


def test_reader_finds_a_terminator_split_across_pieces() -> None:
    for cut in range(1, 4):
        reader = ResponseReader(keep_body=False)
        message = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
        assert not reader.feed(message[: len(message) - cut])
        assert reader.feed(message[len(message) - cut :])
        assert reader.status == 200 and reader.error is None


def test_reader_204_has_no_body() -> None:
    reader = ResponseReader(keep_body=False)
    assert reader.feed(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert reader.error is None


# -- HTTPS --------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_server_context(ca: trustme.CA) -> TlsServer:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("rs1.example", "127.0.0.1").configure_cert(context)
    seen_names: list[str | None] = []

    def record_sni(sslobj: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        seen_names.append(name)

    context.sni_callback = record_sni
    return context, seen_names


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


async def test_https_without_verification(serve: Serve, tls_server_context: TlsServer) -> None:
    context, seen_names = tls_server_context
    server = await serve(answer("200 OK", b"ok"), tls=context)
    result = await check_http("127.0.0.1", server.port, 2.0, tls=True, body_regex="^ok$")
    assert result.ok, result.detail
    assert seen_names == [None]  # no SNI unless configured


async def test_https_sends_sni_and_verifies_against_the_ca_file(
    serve: Serve, tls_server_context: TlsServer, ca_file: str
) -> None:
    context, seen_names = tls_server_context
    server = await serve(answer("200 OK", b"ok"), tls=context)
    result = await check_http(
        "127.0.0.1",
        server.port,
        2.0,
        tls=True,
        sni="rs1.example",
        verify_tls=True,
        ca_file=ca_file,
    )
    assert result.ok, result.detail
    assert seen_names == ["rs1.example"]
    assert f"\r\nHost: 127.0.0.1:{server.port}\r\n".encode() in server.requests[0]


async def test_https_verification_fails_with_another_ca(
    serve: Serve, tls_server_context: TlsServer, tmp_path: Path
) -> None:
    context, _ = tls_server_context
    server = await serve(answer("200 OK", b"ok"), tls=context)
    stranger = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(stranger))
    result = await check_http(
        "127.0.0.1",
        server.port,
        2.0,
        tls=True,
        sni="rs1.example",
        verify_tls=True,
        ca_file=str(stranger),
    )
    assert not result.ok
    assert result.detail.startswith("tls: certificate verify failed")


async def test_https_verification_fails_on_a_name_mismatch(
    serve: Serve, tls_server_context: TlsServer, ca_file: str
) -> None:
    context, _ = tls_server_context
    server = await serve(answer("200 OK", b"ok"), tls=context)
    result = await check_http(
        "127.0.0.1",
        server.port,
        2.0,
        tls=True,
        sni="rs2.example",
        verify_tls=True,
        ca_file=ca_file,
    )
    assert not result.ok
    assert result.detail.startswith("tls: certificate verify failed")
    assert "rs2.example" in result.detail


async def test_https_against_a_plain_http_server() -> None:
    # A plain server that answers whatever arrives, before any request: a TLS
    # client reads "HTTP/1.0 ..." where a ServerHello should be.
    async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    raw = await asyncio.start_server(plain, "127.0.0.1", 0)
    port = raw.sockets[0].getsockname()[1]
    try:
        result = await check_http("127.0.0.1", port, 1.0, tls=True)
    finally:
        raw.close()
        await raw.wait_closed()
    assert not result.ok
    assert result.detail.startswith("tls: "), result.detail


async def test_https_handshake_stall(serve: Serve) -> None:
    # Accepts TCP, never speaks TLS (a plain server waiting for a request).
    stall = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await stall.wait()

    raw = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = raw.sockets[0].getsockname()[1]
    try:
        result = await check_http("127.0.0.1", port, 0.3, tls=True)
    finally:
        stall.set()
        raw.close()
        await raw.wait_closed()
    assert result.detail == "tls handshake timeout after 0.3s"


async def test_https_wrong_status(serve: Serve, tls_server_context: TlsServer) -> None:
    context, _ = tls_server_context
    server = await serve(answer("500 Internal Server Error", b"x"), tls=context)
    result = await check_http("127.0.0.1", server.port, 2.0, tls=True)
    assert result.detail == "status 500 not in 200-299"


async def test_run_probe_dispatches_an_http_check(serve: Serve) -> None:
    server = await serve(answer("200 OK", b"ready"))
    timing = Timing(interval=1.0, timeout=1.0, rise=1, fall=1)
    target = Target(IPv4Address("127.0.0.1"), server.port)
    check = HttpCheck(timing, tls=False, path="/ready", host="app.example", body_regex="ready")
    result = await run_probe(check, target)
    assert result.ok, result.detail
    assert server.requests[0].startswith(b"GET /ready HTTP/1.0\r\nHost: app.example\r\n")


async def test_server_that_answers_before_the_request_arrives() -> None:
    # The answer can arrive with the connect's own readiness edge: it must not be lost.
    async def eager(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nearly")
        await writer.drain()
        writer.close()

    raw = await asyncio.start_server(eager, "127.0.0.1", 0)
    port = raw.sockets[0].getsockname()[1]
    try:
        results = [await check_http("127.0.0.1", port, 1.0, body_regex="early") for _ in range(20)]
    finally:
        raw.close()
        await raw.wait_closed()
    assert [r.detail for r in results if not r.ok] == []


async def test_black_holed_server_with_a_full_backlog() -> None:
    # A listener whose accept queue is full: the kernel drops our SYN, nothing answers.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        result = await check_http("127.0.0.1", port, 0.3)
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
    assert not result.ok
    assert result.detail == "connect timeout after 0.3s"


def test_reader_lets_chunked_override_content_length() -> None:
    # RFC 9112 §6.3: with both headers the length comes from the close, not Content-Length.
    reader = ResponseReader(keep_body=True)
    assert not reader.feed(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok"
    )
    assert reader.feed_eof()
    assert (reader.error, bytes(reader.body)) == (None, b"2\r\nok")


def _reference_framing(head: bytes) -> tuple[int | None, bool, str | None]:
    """The head's framing as a line-by-line parse finds it (the reader's older form)."""
    length: int | None = None
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        name = name.strip().lower()
        if name == b"content-length":
            text = value.strip()
            if not text.isdigit():
                return length, chunked, f"malformed content-length {text[:20]!r}"
            if len(text) > 18:
                return length, chunked, f"content-length too large {text[:20]!r}..."
            length = int(text)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    return (None if chunked else length), chunked, None


_HEAD_PIECES = st.sampled_from(
    [
        b"\r\n",
        b"\r",
        b"\n",
        b" ",
        b"\t",
        b"\x0b",
        b":",
        b"5",
        b"-1",
        b"12",
        b"x",
        b"chunked",
        b"Content-Length",
        b"content-LENGTH",
        b"Transfer-Encoding",
        b"X-Content-Length",
        b"gzip",
    ]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(_HEAD_PIECES, max_size=24))
@example([b"Content-Length", b"\r\n", b":", b"5"])  # no header name across a line end
@example([b"\r", b"Content-Length", b"\r", b":", b"12", b"\r", b"x"])
@example([b"x", b"\r\n", b" ", b"\r\n", b"Transfer-Encoding", b":", b"chunked"])
def test_reader_finds_the_framing_headers_as_a_line_by_line_parse_does(
    pieces: list[bytes],
) -> None:
    head = b"HTTP/1.1 200 OK\r\n" + b"".join(pieces)
    reader = ResponseReader(keep_body=False)
    reader._parse_head(head)
    length, chunked, error = _reference_framing(head)
    assert (reader.content_length, reader.chunked, reader.error) == (length, chunked, error)


async def test_a_request_sent_at_connect_time_waits_for_the_answer_only() -> None:
    # Over loopback the handshake is done when connect() returns: the request goes at
    # once and the socket is watched for reading only (no wake-up for the writable edge).
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    spec = HttpCheck(Timing(interval=1.0, timeout=5.0, rise=1, fall=1), tls=False, path="/")
    plan = http_plan(spec, Target(IPv4Address("127.0.0.1"), port))
    assert plan is not None
    done: asyncio.Future[ProbeResult] = loop.create_future()
    attempt = plan.start(loop, done.set_result)
    try:
        assert isinstance(attempt, HttpAttempt)
        assert attempt._sent and not attempt._connecting
        result = await asyncio.wait_for(done, 10)
        assert (result.ok, result.detail) == (True, "status 200")
    finally:
        server.close()
        await server.wait_closed()


async def _how_the_checker_closed(hang_up_first: bool) -> tuple[ProbeResult, str, list[str]]:
    """One plain HTTP check against a server that hangs up after its answer (or
    holds the connection open); what the server then saw of the checker's close
    ("fin" or "rst"), and the checker-side sockets left in /proc/net/tcp."""
    seen: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
        if hang_up_first:
            writer.write_eof()  # our FIN goes with the answer; the socket stays readable
        try:
            rest = await reader.read()
            seen.set_result("fin" if rest == b"" else f"data {rest!r}")
        except ConnectionResetError:
            seen.set_result("rst")
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        result = await check_http("127.0.0.1", port, 5.0)
        how = await asyncio.wait_for(seen, 10)
        rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
    finally:
        server.close()
        await server.wait_closed()
    # the checker's side of the connection: remote address is the server's port
    lingering = [row[3] for row in rows if row[2].endswith(f":{port:04X}")]
    return result, how, lingering


async def test_a_server_that_hangs_up_first_gets_a_plain_close() -> None:
    # Its FIN came with the answer: the checker is the passive closer, so a plain
    # close leaves no TIME_WAIT on the director and saves the SO_LINGER call.
    result, how, lingering = await _how_the_checker_closed(hang_up_first=True)
    assert result.ok
    assert how == "fin"
    assert "06" not in lingering  # no TIME_WAIT (state 06) on the checker's side


async def test_a_server_that_holds_the_connection_gets_a_reset() -> None:
    # The answer is complete (Content-Length) before any FIN: the checker closes
    # first, with an RST, and keeps no TIME_WAIT.
    result, how, lingering = await _how_the_checker_closed(hang_up_first=False)
    assert result.ok
    assert how == "rst"
    assert lingering == []
