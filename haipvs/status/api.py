"""The status API, embedded in the daemon's event loop (aiohttp AppRunner + TCPSite).

GET /status (the snapshot as JSON), GET /metrics (Prometheus text), GET /healthz,
POST /reload (validate and apply the config file, answer with the outcome).
It binds loopback by default; a non-loopback bind requires a token, sent as
`Authorization: Bearer TOKEN` (the supervisor refuses to start without one).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from haipvs.status.metrics import render_metrics
from haipvs.status.snapshot import Snapshot

__all__ = ["ReloadOutcome", "StatusApi", "is_loopback", "parse_listen"]

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    applied: bool
    errors: tuple[str, ...]
    summary: str


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


class StatusApi:
    def __init__(
        self,
        listen: str,
        *,
        snapshot: Callable[[], Snapshot],
        reload: Callable[[], Awaitable[ReloadOutcome]],
        token: str | None = None,
        before: Callable[[], Awaitable[None]] | None = None,
        running_config: Callable[[], dict[str, str]] | None = None,
    ) -> None:
        self.host, self.port = parse_listen(listen)
        if not is_loopback(self.host) and not token:
            raise ValueError(
                f"director.api {listen} is not loopback: set director.api_token to protect it"
            )
        self._snapshot = snapshot
        self._reload = reload
        self._token = token
        self._before = before
        self._running_config = running_config
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/status", self._status)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_post("/reload", self._reload_handler)
        if self._running_config is not None:
            app.router.add_get("/config", self._config_handler)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _auth(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if self._token is not None:
            given = request.headers.get("Authorization", "")
            expected = f"Bearer {self._token}"
            if not hmac.compare_digest(given.encode(), expected.encode()):
                return web.json_response({"error": "missing or wrong API token"}, status=401)
        return await handler(request)

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
