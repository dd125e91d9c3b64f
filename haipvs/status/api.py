"""The status API, embedded in the daemon's event loop (aiohttp).

GET / (a read-only HTML status page, haipvs/status/page.html), GET /status (the
snapshot as JSON), GET /metrics (Prometheus text), GET /healthz,
POST /reload (validate and apply the config file, answer with the outcome).

Who may do what:

- It binds loopback by default; a non-loopback bind requires a token (the daemon
  refuses to start without one), and then every request needs it, as
  ``Authorization: Bearer TOKEN``.
- A mutation (POST /reload, and any admin action to come) always needs the token,
  loopback included: any local user or a web page in a local browser can reach
  loopback. Without a configured token, mutations are disabled (403); SIGHUP
  (``systemctl reload``) still reloads, and only root can send it.
- Browsers: a request with an ``Origin`` header is cross-origin by construction
  (no haipvs client sends one) and may not mutate; on a loopback bind, a ``Host``
  header naming anything but a loopback address is DNS rebinding and is refused.
- A malformed ``Authorization`` header (not ASCII, not ``Bearer TOKEN``) is a 400,
  a wrong token a 401: never a traceback. Tokens compare in constant time.

Descriptors: the API shares the daemon's descriptor table with the checkers, the
netlink sockets and VRRP. At most ``MAX_CONNECTIONS`` connections are open at once;
at the cap, a new connection closes the oldest idle one (no request in progress),
so a flood of idle or slow clients cannot starve ``/healthz`` or the checkers. The cap
counts the connections accepted in one batch (asyncio accepts the whole backlog at
once) and leaves out those it already closed; when a batch outnumbers every older
idle connection, its newest are refused. An
idle keep-alive connection is closed after ``KEEPALIVE_TIMEOUT`` (aiohttp's default
is an hour).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable
from importlib import resources

from aiohttp import web

from haipvs.status.metrics import render_metrics
from haipvs.status.snapshot import ReloadOutcome, Snapshot

__all__ = ["MAX_CONNECTIONS", "ReloadOutcome", "StatusApi", "is_loopback", "parse_listen"]


PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# The page may run its inline script and style and read this origin, nothing else: it
# never loads an external asset, and a value that slipped into its DOM could not either.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; "
    "style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}
#: Connections the API keeps open at once (monitoring needs a handful).
MAX_CONNECTIONS = 64
#: Idle keep-alive connections are closed after this long.
KEEPALIVE_TIMEOUT = 5.0
#: Requests in progress at shutdown get this long (aiohttp's default is 60 s, past
#: the unit's TimeoutStopSec=20s).
SHUTDOWN_TIMEOUT = 2.0
_MUTATIONS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def parse_listen(listen: str) -> tuple[str, int]:
    """"127.0.0.1:9797" or "[::1]:9797" -> (host, port)."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_part(host_header: str) -> str:
    """"127.0.0.1:9797" -> "127.0.0.1", "[::1]:9797" -> "::1", "localhost" -> itself."""
    if host_header.startswith("["):
        return host_header[1:].partition("]")[0]
    return host_header.rpartition(":")[0] if ":" in host_header else host_header


def _bearer(header: str) -> bytes | None:
    """The token of ``Bearer TOKEN`` (ASCII), or None if the header is malformed."""
    try:
        raw = header.encode("ascii")
    except UnicodeEncodeError:  # aiohttp hands undecodable bytes on as surrogates
        return None
    scheme, _, token = raw.partition(b" ")
    if scheme.lower() != b"bearer" or not token or not token.isascii() or b" " in token:
        return None
    return token


class _RefusedError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class StatusApi:
    def __init__(
        self,
        listen: str,
        *,
        snapshot: Callable[[], Snapshot],
        reload: Callable[[], Awaitable[ReloadOutcome]],
        token: str | None = None,
        before: Callable[[], Awaitable[None]] | None = None,
        max_connections: int = MAX_CONNECTIONS,
        keepalive_timeout: float = KEEPALIVE_TIMEOUT,
        running_config: Callable[[], dict[str, str]] | None = None,
    ) -> None:
        self.host, self.port = parse_listen(listen)
        self._loopback = is_loopback(self.host)
        if not self._loopback and not token:
            raise ValueError(
                f"director.api {listen} is not loopback: set director.api_token to protect it"
            )
        self._snapshot = snapshot
        self._reload = reload
        self._token = token.encode() if token else None
        self._before = before
        self._max_connections = max_connections
        self._keepalive_timeout = keepalive_timeout
        self._running_config = running_config
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self._busy: set[object] = set()  # connections with a request in progress
        # Closed by the cap, still listed until their connection_lost (a tick later).
        self._closing: set[object] = set()
        self._accepting = 0  # made by the factory, not yet listed (one batch of accepts)
        self.evicted = 0  # idle connections closed at the cap (for tests and metrics)
        self.refused = 0  # connections refused at the cap, every older one busy or closing

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/", self._page)
        app.router.add_get("/status", self._status)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_post("/reload", self._reload_handler)
        if self._running_config is not None:
            app.router.add_get("/config", self._config_handler)
        return app

    async def start(self) -> None:
        runner = web.AppRunner(self.app(), access_log=None,
                               keepalive_timeout=self._keepalive_timeout,
                               shutdown_timeout=SHUTDOWN_TIMEOUT)
        await runner.setup()
        self._runner = runner
        server = runner.server
        assert server is not None
        loop = asyncio.get_running_loop()

        def connection() -> asyncio.BaseProtocol:
            if self._open(server) >= self._max_connections and not self._evict(server):
                self.refused += 1
                return _Refused()
            # asyncio accepts every connection waiting in the backlog at one wake-up and
            # calls this factory for all of them before any connection_made: count them
            # until they are listed. The decrement runs at the next tick, just before
            # their connection_made and before any later batch is accepted.
            self._accepting += 1
            loop.call_soon(self._accepted)
            return server()

        self._server = await loop.create_server(connection, self.host, self.port,
                                                reuse_address=True)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _accepted(self) -> None:
        self._accepting -= 1

    def _open(self, server: web.Server) -> int:
        """Connections open or being opened, those already closed by the cap left out
        (they stay in ``server.connections`` until their connection_lost, a tick later)."""
        listed = server.connections
        self._closing.intersection_update(listed)  # gone since: forget them
        return len(listed) - len(self._closing) + self._accepting

    def _evict(self, server: web.Server) -> bool:
        """Close the oldest idle connection to make room; False if all are busy (or
        not yet made: a connection of the same batch cannot be closed before it is)."""
        for handler in server.connections:  # oldest first
            if handler not in self._busy and handler not in self._closing:
                self._closing.add(handler)
                handler.force_close()
                self.evicted += 1
                return True
        return False

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        protocol = request.protocol
        self._busy.add(protocol)
        try:
            self._check(request)
            return await handler(request)
        except _RefusedError as problem:
            return web.json_response({"error": str(problem)}, status=problem.status)
        finally:
            self._busy.discard(protocol)

    def _check(self, request: web.Request) -> None:
        host = request.headers.get("Host")
        if self._loopback and host is not None and not is_loopback(_host_part(host)):
            # DNS rebinding: a page of some.site whose name now resolves to 127.0.0.1.
            raise _RefusedError(403, f"Host {host!r} is not this loopback API")
        mutation = request.method in _MUTATIONS
        if mutation and "Origin" in request.headers:
            raise _RefusedError(403, "cross-origin requests may not change anything")
        header = request.headers.get("Authorization")
        if self._token is None:
            if mutation:
                raise _RefusedError(403, f"{request.method} {request.path} is disabled: "
                                    "set director.api_token (SIGHUP reloads without one)")
            return
        if header is None:
            raise _RefusedError(401, "missing API token")
        given = _bearer(header)
        if given is None:
            raise _RefusedError(400, "malformed Authorization header: expected 'Bearer TOKEN'")
        if not hmac.compare_digest(given, self._token):
            raise _RefusedError(401, "wrong API token")

    async def _page(self, _request: web.Request) -> web.Response:
        page = resources.files("haipvs.status").joinpath("page.html").read_text("utf-8")
        return web.Response(text=page, content_type="text/html", headers=PAGE_HEADERS)

    async def _status(self, _request: web.Request) -> web.Response:
        if self._before is not None:
            await self._before()
        return web.Response(
            text=json.dumps(self._snapshot().to_json(), indent=1),
            content_type="application/json",
        )

    async def _metrics(self, _request: web.Request) -> web.Response:
        if self._before is not None:
            await self._before()
        body = render_metrics(self._snapshot)
        return web.Response(body=body, headers={"Content-Type": PROMETHEUS_CONTENT_TYPE})

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _config_handler(self, _request: web.Request) -> web.Response:
        # Read-only: the config the daemon runs, secrets redacted (`haipvs plan`).
        assert self._running_config is not None
        return web.json_response(self._running_config())

    async def _reload_handler(self, _request: web.Request) -> web.Response:
        outcome = await self._reload()
        return web.json_response(
            {
                "applied": outcome.applied,
                "errors": list(outcome.errors),
                "summary": outcome.summary,
            },
            status=200 if outcome.applied else 422,
        )


class _Refused(asyncio.Protocol):
    """A connection over the cap with every open one busy: closed at once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


