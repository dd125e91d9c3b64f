"""HTTP and HTTPS probe: keepalived's HTTP_GET / SSL_GET, HAProxy's `option httpchk`.

This module owns one request/response exchange with a real server: connect
(checkers/tcp.py), optionally a TLS handshake (SNI, verification against a CA
file), one HTTP/1.0 request with `Connection: close`, and the checks on the
answer: status in the expected ranges, then optionally a body regex or an MD5
digest of the body (keepalived's HTTP_GET `digest`).

Rules kept here:
- The peer's behaviour is never an exception: slow, silent, refusing, truncated
  or malformed answers become ProbeResult(ok=False) with a short detail
  ("status 503 not in 200-299", "body does not match /ok/",
  "tls: certificate verify failed ...", "response timeout after 1.0s").
- The whole exchange, TLS handshake included, ends by start + timeout.
- A response counts only when it is complete: all Content-Length bytes, or up to
  the server's close. A server that sends headers and then stalls or hangs up
  mid-body is failing (keepalived also reads to the end before it decides).
- Cheap on purpose. HTTP/1.0 keeps servers from answering chunked (RFC 9112
  §7.1: chunked is for HTTP/1.1 recipients), so the parser stays small. Plain HTTP
  runs on the bare socket of checkers/tcp.py's ProbeConnection (one epoll
  registration for the connection's life, one timer, no transport): socket,
  connect, send, epoll_ctl, recv, close, and a setsockopt (SO_LINGER 0) only
  when the checker must close first (checkers/tcp.py's header says why). TLS
  goes through asyncio's SSL transport, which is where the handshake cost lies
  anyway.
"""

from __future__ import annotations

import _socket
import asyncio
import functools
import hashlib
import re
import select
import socket
import ssl

from checkers.result import ProbeResult
from checkers.spec import HttpCheck, Target, probe_port
from checkers.tcp import (
    READABLE,
    ConnectAttempt,
    ConnectError,
    ProbeConnection,
    ProbeDone,
    await_attempt,
    describe_timeout,
    running_loop,
)

__all__ = [
    "HttpAttempt",
    "HttpPlan",
    "ResponseReader",
    "check_http",
    "format_status_ranges",
    "plan",
]

# Bodies beyond this are not kept for the regex or digest (a health page is
# small; a misconfigured path pointing at a large file must not eat memory).
MAX_BODY = 1 << 20
MAX_HEADER = 64 * 1024
#: A Content-Length of more digits (10^18 bytes) is no health-check answer.
_MAX_LENGTH_DIGITS = 18
_RECV_SIZE = 65536
_USER_AGENT = "haipvs-check"


class ResponseReader:
    """Incremental HTTP/1.x response reader: feed bytes, learn when it is complete.

    Pure: no IO, no clock. `feed()` and `feed_eof()` return True once the
    response is complete (or broken beyond repair: `error` is then set).
    """

    __slots__ = (
        "_head",
        "body",
        "body_seen",
        "chunked",
        "content_length",
        "done",
        "error",
        "head_scanned",
        "headers_done",
        "keep_body",
        "no_body",
        "status",
    )

    def __init__(self, *, keep_body: bool, no_body: bool = False) -> None:
        self._head = bytearray()
        # Bytes of the head searched for its end so far: each byte once or so, however
        # small the pieces it arrives in (searching the whole head again at each piece
        # made a slow server's 64 KiB head cost quadratic time).
        self.head_scanned = 0
        self.body = bytearray()
        self.body_seen = 0
        self.content_length: int | None = None
        self.chunked = False
        self.done = False
        self.error: str | None = None
        self.headers_done = False
        self.keep_body = keep_body
        self.no_body = no_body  # HEAD requests: the answer ends with its headers
        self.status = 0

    def feed(self, data: bytes) -> bool:
        if self.done:
            return True
        if not self.headers_done:
            if not self._head and (end := data.find(b"\r\n\r\n")) >= 0:
                # The usual case: the whole head in the first piece; no copies
                # into the head buffer and back.
                self.head_scanned += end + 4
                head, rest = data[:end], data[end + 4 :]
            else:
                start = max(0, len(self._head) - 3)  # the terminator may straddle two pieces
                self._head += data
                end = self._head.find(b"\r\n\r\n", start)
                self.head_scanned += (end + 4 if end >= 0 else len(self._head)) - start
                if end < 0:
                    if len(self._head) > MAX_HEADER:
                        return self._fail("response headers too large")
                    return False
                head, rest = bytes(self._head[:end]), bytes(self._head[end + 4 :])
            if not self._parse_head(head):
                return True
            self.headers_done = True
            self._head = bytearray()
            if self.no_body or self.status in (204, 304) or 100 <= self.status < 200:
                self.done = True
                return True
            data = rest
        self.body_seen += len(data)
        if self.keep_body and len(self.body) < MAX_BODY:
            self.body += data[: MAX_BODY - len(self.body)]
        if self.content_length is not None and self.body_seen >= self.content_length:
            self.done = True
        return self.done

    def feed_eof(self) -> bool:
        """The server closed its side; decide whether what came is a whole answer."""
        if self.done:
            return True
        if not self.headers_done:
            if self._head:
                return self._fail("connection closed in the response headers")
            return self._fail("connection closed without a response")
        if self.content_length is not None and self.body_seen < self.content_length:
            return self._fail(
                f"connection closed mid-body after {self.body_seen} of {self.content_length} bytes"
            )
        self.done = True
        return True

    def describe_stall(self, timeout: float) -> str:
        """What the deadline interrupted, for the failure detail."""
        after = describe_timeout(timeout)
        if not self.headers_done:
            if self._head:
                return f"timeout after {after} in the response headers"
            return f"response timeout after {after}"
        if self.content_length is not None:
            return (
                f"timeout after {after} in the body, {self.body_seen} of"
                f" {self.content_length} bytes"
            )
        return f"timeout after {after} in the body, {self.body_seen} bytes"

    def _fail(self, error: str) -> bool:
        self.error = error
        self.done = True
        return True

    def _parse_head(self, head: bytes) -> bool:
        first, _, rest = head.partition(b"\r\n")
        status_line = first.split(None, 2)
        if (
            len(status_line) < 2
            or not status_line[0].startswith(b"HTTP/")
            or len(status_line[1]) != 3
            or not status_line[1].isdigit()
        ):
            return self._fail(f"malformed status line {first[:40]!r}")
        self.status = int(status_line[1])
        # Only the two headers that frame the body matter. The usual head names
        # Content-Length once, as "\r\nContent-Length:", and no Transfer-Encoding:
        # then that line is the one a line-by-line parse would find, and a few C
        # scans find it; anything else takes the line-by-line parse.
        lower = head.lower()
        at = lower.find(b"\r\ncontent-length:")
        if b"transfer-encoding" not in lower and lower.count(b"content-length") == (at >= 0):
            if at < 0:
                return True
            start = at + 17
            end = head.find(b"\r\n", start)
            self._content_length(head[start:] if end < 0 else head[start:end])
            return True  # as after _fail: `error` and `done` say it failed
        for line in rest.split(b"\r\n") if rest else ():
            name, sep, value = line.partition(b":")
            if not sep:
                continue
            name = name.strip().lower()
            if name == b"content-length":
                if not self._content_length(value):
                    return True  # as after _fail: `error` and `done` say it failed
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                # Not allowed in an answer to HTTP/1.0; read to the close and
                # let the body checks see the chunk framing rather than guess.
                self.chunked = True
        if self.chunked:
            # RFC 9112 §6.3: Transfer-Encoding overrides Content-Length.
            self.content_length = None
        return True

    def _content_length(self, value: bytes) -> bool:
        """Take one Content-Length value; False (and failed) when it is no length."""
        text = value.strip()
        if not text.isdigit():
            self._fail(f"malformed content-length {text[:20]!r}")
            return False
        if len(text) > _MAX_LENGTH_DIGITS:  # int() refuses 4300 digits (ValueError)
            self._fail(f"content-length too large {text[:20]!r}...")
            return False
        self.content_length = int(text)
        return True


def format_status_ranges(ranges: tuple[tuple[int, int], ...]) -> str:
    """((200, 299), (302, 302)) -> "200-299,302"."""
    return ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in ranges)


@functools.lru_cache(maxsize=256)
def _compiled(body_regex: str) -> re.Pattern[bytes]:
    return re.compile(body_regex.encode())


@functools.lru_cache(maxsize=64)
def _tls_context(verify: bool, check_hostname: bool, ca_file: str | None) -> ssl.SSLContext:
    """One SSLContext per distinct setting: loading a CA bundle costs milliseconds."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        context.check_hostname = check_hostname
        context.verify_mode = ssl.CERT_REQUIRED
        if ca_file is not None:
            context.load_verify_locations(cafile=ca_file)
        else:
            context.load_default_certs()
    else:
        # keepalived's SSL_GET checks nothing about the certificate unless told.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


@functools.lru_cache(maxsize=4096)
def _request(method: str, path: str, host_header: str) -> bytes:
    return (
        f"{method} {path} HTTP/1.0\r\nHost: {host_header}\r\n"
        f"User-Agent: {_USER_AGENT}\r\nConnection: close\r\n\r\n"
    ).encode("latin-1")


def _host_header(address: str, port: int, tls: bool, host: str | None) -> str:
    if host is not None:
        return host
    literal = f"[{address}]" if ":" in address else address
    return literal if port == (443 if tls else 80) else f"{literal}:{port}"


class _ResponseProtocol(asyncio.Protocol):
    """Feeds a ResponseReader from an (SSL) transport; resolves `finished`."""

    def __init__(self, reader: ResponseReader, finished: asyncio.Future[str | None]) -> None:
        self.reader = reader
        self.finished = finished

    def data_received(self, data: bytes) -> None:
        if self.reader.feed(data) and not self.finished.done():
            self.finished.set_result(None)

    def eof_received(self) -> bool:
        if self.reader.feed_eof() and not self.finished.done():
            self.finished.set_result(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.finished.done():
            return
        if exc is None:
            self.reader.feed_eof()
            self.finished.set_result(None)
        elif isinstance(exc, ConnectionResetError):
            self.finished.set_result("connection reset")
        else:
            self.finished.set_result(f"connection lost: {exc}")


def _describe_tls_error(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"tls: certificate verify failed ({exc.verify_message})"
    return f"tls: {(exc.reason or str(exc)).lower().replace('_', ' ')}"


async def _exchange_tls(
    loop: asyncio.AbstractEventLoop,
    sock: socket.socket,
    *,
    request: bytes,
    reader: ResponseReader,
    deadline: float,
    timeout: float,  # noqa: ASYNC109 - only for the failure detail; deadline rules
    context: ssl.SSLContext,
    server_hostname: str,
) -> str | None:
    finished: asyncio.Future[str | None] = loop.create_future()
    transport: asyncio.Transport | None = None
    handshake_done = False
    try:
        async with asyncio.timeout_at(deadline):
            transport, _ = await loop.create_connection(
                lambda: _ResponseProtocol(reader, finished),
                sock=sock,
                ssl=context,
                server_hostname=server_hostname,
                ssl_handshake_timeout=max(deadline - loop.time(), 0.001) + 1.0,
            )
            handshake_done = True
            transport.write(request)
            return await finished
    except TimeoutError:
        if not handshake_done:
            return f"tls handshake timeout after {describe_timeout(timeout)}"
        return "timeout"
    except ssl.SSLError as exc:
        return _describe_tls_error(exc)
    except ConnectionResetError:
        return "tls: connection reset in the handshake"
    except OSError as exc:
        return f"tls: {exc.strerror or exc}".lower()
    finally:
        if transport is not None:
            transport.abort()


async def check_http(
    address: str,
    port: int,
    timeout: float,  # noqa: ASYNC109 - the probe enforces its own deadline (see header)
    *,
    tls: bool = False,
    method: str = "GET",
    path: str = "/",
    host: str | None = None,
    expect_status: tuple[tuple[int, int], ...] = ((200, 299),),
    body_regex: str | None = None,
    body_digest: str | None = None,
    sni: str | None = None,
    verify_tls: bool = False,
    ca_file: str | None = None,
) -> ProbeResult:
    """Up when the server answers `method path` completely, within `timeout`,
    with a status in `expect_status` and, if asked, a body matching
    `body_regex` (re.search) or whose MD5 hex digest equals `body_digest`.

    TLS: `sni` is sent as server name; with `verify_tls` the chain is verified
    against `ca_file` (or the system store), and the name against `sni`, else
    `host` (without either, only the chain is verified).
    """
    loop = running_loop()
    request = _request(method, path, _host_header(address, port, tls, host))
    if not tls:
        http_plan = HttpPlan(
            address,
            port,
            timeout,
            request=request,
            expect_status=expect_status,
            body_regex=body_regex,
            body_digest=body_digest,
            no_body=method == "HEAD",
        )
        return await await_attempt(lambda done: http_plan.start(loop, done))
    started = loop.time()
    deadline = started + timeout
    try:
        connection = await ProbeConnection.open(
            address, port, loop=loop, started=started, timeout=timeout
        )
    except ConnectError as exc:
        return ProbeResult(ok=False, detail=exc.detail, latency=loop.time() - started)

    reader = ResponseReader(
        keep_body=body_regex is not None or body_digest is not None,
        no_body=method == "HEAD",
    )
    try:
        check_name = sni if sni is not None else host
        context = _tls_context(verify_tls, verify_tls and check_name is not None, ca_file)
        failure = await _exchange_tls(
            loop,
            connection.detach(),
            request=request,
            reader=reader,
            deadline=deadline,
            timeout=timeout,
            context=context,
            server_hostname=sni if sni is not None else (host if verify_tls and host else ""),
        )
    finally:
        connection.close()
    return _verdict(
        reader,
        failure,
        loop.time() - started,
        timeout=timeout,
        expect_status=expect_status,
        body_regex=body_regex,
        body_digest=body_digest,
    )


def _verdict(
    reader: ResponseReader,
    failure: str | None,
    latency: float,
    *,
    timeout: float,
    expect_status: tuple[tuple[int, int], ...],
    body_regex: str | None,
    body_digest: str | None,
) -> ProbeResult:
    """The result of one exchange: the transport's failure, or the answer's checks."""
    if failure == "timeout":
        return ProbeResult(ok=False, detail=reader.describe_stall(timeout), latency=latency)
    if failure is not None:
        return ProbeResult(ok=False, detail=failure, latency=latency)
    if reader.error is not None:
        return ProbeResult(ok=False, detail=reader.error, latency=latency)
    status = reader.status
    for lo, hi in expect_status:
        if lo <= status <= hi:
            break
    else:
        return ProbeResult(
            ok=False,
            detail=f"status {status} not in {format_status_ranges(expect_status)}",
            latency=latency,
        )
    if body_regex is not None or body_digest is not None:
        body = bytes(reader.body)
        if body_regex is not None and _compiled(body_regex).search(body) is None:
            detail = f"body does not match /{body_regex}/"
            return ProbeResult(ok=False, detail=detail, latency=latency)
        if body_digest is not None:
            digest = hashlib.md5(body, usedforsecurity=False).hexdigest()
            if digest != body_digest.lower():
                return ProbeResult(
                    ok=False,
                    detail=f"body digest {digest} does not match {body_digest.lower()}",
                    latency=latency,
                )
    return ProbeResult(ok=True, detail=f"status {status}", latency=latency)


class HttpPlan:
    """A plain-HTTP check with everything per check worked out once: the request
    bytes, the address text, the answer's checks (see checkers/probe.py)."""

    __slots__ = (
        "address",
        "body_digest",
        "body_regex",
        "expect_status",
        "keep_body",
        "no_body",
        "port",
        "request",
        "timeout",
    )

    def __init__(
        self,
        address: str,
        port: int,
        timeout: float,
        *,
        request: bytes,
        expect_status: tuple[tuple[int, int], ...],
        body_regex: str | None,
        body_digest: str | None,
        no_body: bool,
    ) -> None:
        self.address = address
        self.port = port
        self.timeout = timeout
        self.request = request
        self.expect_status = expect_status
        self.body_regex = body_regex
        self.body_digest = body_digest
        self.keep_body = body_regex is not None or body_digest is not None
        self.no_body = no_body

    def start(
        self, loop: asyncio.AbstractEventLoop, on_done: ProbeDone, started: float | None = None
    ) -> ConnectAttempt:
        return HttpAttempt(loop, on_done, self, started)


class HttpAttempt(ConnectAttempt):
    """One plain HTTP exchange on the bare socket, driven by its readiness edges.

    Connected: send the request (a fresh socket's buffer takes it whole; a
    partial send waits for the next writable edge), then read until EAGAIN at
    each readable edge (edge-triggered) and feed the ResponseReader; the
    answer is judged once the reader is done.
    """

    __slots__ = ("_out", "_sent", "plan", "reader")

    # The server hangs up after its answer (`Connection: close`), usually with it.
    RST_AT_OPEN = False

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_done: ProbeDone,
        plan: HttpPlan,
        started: float | None = None,
    ):
        self.plan = plan
        self.reader = ResponseReader(keep_body=plan.keep_body, no_body=plan.no_body)
        self._out: memoryview | None = None
        self._sent = False
        super().__init__(
            loop, on_done, plan.address, plan.port, timeout=plan.timeout, started=started
        )

    def _early(self, sock: _socket.socket) -> bool:
        # Over loopback or a LAN the handshake is often complete when connect()
        # returns: the request goes now, not one wake-up later at the writable edge,
        # and the socket is watched for the answer only. Still connecting: EAGAIN,
        # and the request goes at the writable edge as before.
        request = self.plan.request
        try:
            sent = sock.send(request)
        except BlockingIOError:
            return False
        except OSError as exc:
            # The connect failed (refused...): this send took its error from the
            # socket, so the failed edge that follows reports it from here.
            self.early_errno = exc.errno or 0
            return False
        self._sent = True
        if sent < len(request):
            self._out = memoryview(request)[sent:]
            return False  # the rest at the writable edge
        return True

    def _connected(self, events: int) -> None:
        if not self._sent:
            self._out = memoryview(self.plan.request)
            self._sent = True
        self._readable(events)

    def _readable(self, events: int) -> None:
        sock = self.sock
        assert sock is not None
        out = self._out
        if out is not None:
            try:
                out = out[sock.send(out) :]
            except BlockingIOError:
                pass
            except OSError as exc:
                self._end(f"send failed: {exc.strerror or exc}".lower())
                return
            self._out = out if out else None
            if self._out is not None:
                return  # the rest goes at the next writable edge
        if not events & READABLE:
            return
        if events & select.EPOLLRDHUP:
            self.peer_closed = True  # its FIN came: a plain close leaves no TIME_WAIT
        reader = self.reader
        while True:
            try:
                data = sock.recv(_RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionResetError:
                self._end("connection reset")
                return
            except OSError as exc:
                self._end(f"receive failed: {exc.strerror or exc}".lower())
                return
            if not data:
                self.peer_closed = True
            if reader.feed(data) if data else reader.feed_eof():
                self._end(None)
                return

    def _timed_out(self) -> str:
        return self.reader.describe_stall(self.timeout)

    def _end(self, failure: str | None) -> None:
        plan = self.plan
        self.finish_with(
            _verdict(
                self.reader,
                failure,
                self.elapsed(),
                timeout=plan.timeout,
                expect_status=plan.expect_status,
                body_regex=plan.body_regex,
                body_digest=plan.body_digest,
            )
        )


def plan(spec: HttpCheck, target: Target) -> HttpPlan | None:
    """The callback form of a plain-HTTP check; None for TLS (asyncio's SSL transport)."""
    if spec.tls:
        return None
    address = str(target.address)
    port = probe_port(spec, target)
    return HttpPlan(
        address,
        port,
        spec.timing.timeout,
        request=_request(spec.method, spec.path, _host_header(address, port, False, spec.host)),
        expect_status=spec.expect_status,
        body_regex=spec.body_regex,
        body_digest=spec.body_digest,
        no_body=spec.method == "HEAD",
    )


async def probe(spec: HttpCheck, target: Target) -> ProbeResult:
    """The HTTP_GET / SSL_GET of ``spec`` against ``target`` (run_probe's entry point)."""
    return await check_http(
        str(target.address),
        probe_port(spec, target),
        spec.timing.timeout,
        tls=spec.tls,
        method=spec.method,
        path=spec.path,
        host=spec.host,
        expect_status=spec.expect_status,
        body_regex=spec.body_regex,
        body_digest=spec.body_digest,
        sni=spec.sni,
        verify_tls=spec.verify_tls,
        ca_file=spec.ca_file,
    )
