"""The admin channel: ``haipvs drain|undrain|maintenance|failover|overrides`` reach the daemon.

A Unix stream socket (HAProxy's runtime API convention), ``$RUNTIME_DIRECTORY/admin.sock``
(systemd's RuntimeDirectory=, /run/haipvs), mode 0660: only root, the daemon's user and the
members of the daemon's group may connect. That file permission is the credential. The caller's
uid, read from the socket with SO_PEERCRED, goes into every ``operator.*`` log line and into the
override it creates.

The protocol is one JSON object per line each way: a request ``{"command": "drain", "target":
"10.0.0.12:80", "service": null}`` and its answer ``{"ok": true, "message": ..., "servers":
[...]}``, or ``{"ok": false, "error": ...}``. Commands: drain, undrain, maintenance (``on``:
true or false), failover (``instance``, ``hold_for`` seconds or ``release``),
drain-director and undrain-director (scale-out mode), progress (the connections left on the
real servers a target names), overrides (the list).

``Operator`` owns the overrides of the running daemon: it loads them at start, applies a
command (the decision is ``haipvs.daemon.overrides.apply_command``), persists the result
before it takes effect, hands the IPVS part and the VRRP part their inputs, and expires
timed failover holds. The supervisor gives it the running config through callbacks.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import stat
import struct
import sys
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from haipvs.daemon.overrides import (
    FILE_NAME,
    CommandError,
    Overrides,
    OverridesInvalidError,
    ServerOverride,
    apply_command,
    load,
    parse_target,
    save,
    state_directory,
)
from haipvs.ipvs import AdminState, AdminView, DestKey, ServiceKey

__all__ = [
    "AdminServer",
    "DestProgress",
    "Operator",
    "RunningView",
    "admin_command",
    "admin_request",
    "default_socket_path",
]

log = structlog.get_logger()

SOCKET_NAME = "admin.sock"
SOCKET_MODE = 0o660
_MAX_LINE = 64 * 1024
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def default_socket_path() -> str:
    """systemd's RuntimeDirectory= (``$RUNTIME_DIRECTORY``), else /run/haipvs."""
    runtime = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0] or "/run/haipvs"
    return os.path.join(runtime, SOCKET_NAME)


# --- the daemon side ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunningView:
    """What the operator's commands may name in the running config."""

    #: each virtual server: its name and its real servers
    services: Mapping[ServiceKey, tuple[str, Collection[DestKey]]]
    instances: Collection[str]
    #: scale-out mode: the config has a bgp section (drain-director applies)
    announces: bool = False


@dataclass(frozen=True, slots=True)
class DestProgress:
    """One real server a drain names: its kernel weight (None: gone) and connections."""

    weight: int | None
    active: int
    inactive: int


class Operator:
    """The overrides of the running daemon (see the module docstring)."""

    def __init__(
        self,
        *,
        path: str | None = None,
        running: Callable[[], RunningView],
        set_admin: Callable[[Mapping[tuple[ServiceKey, DestKey], AdminView]], None],
        set_holds: Callable[[Mapping[str, str]], Awaitable[None]],
        progress: Callable[[], Awaitable[Mapping[tuple[ServiceKey, DestKey], DestProgress]]],
        on_director: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path or os.path.join(state_directory(), FILE_NAME)
        self._running = running
        self._set_admin = set_admin
        self._set_holds = set_holds
        self._progress = progress
        self._on_director = on_director  # the announce gates read ``overrides.director``
        self._clock = clock
        self._overrides = Overrides()
        self._lock = asyncio.Lock()
        self._expiry: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def overrides(self) -> Overrides:
        return self._overrides

    def load(self) -> None:
        """At start: the persisted overrides. A damaged file is set aside and logged, never
        fatal: the director must come up (its VIPs matter more than one drain)."""
        try:
            self._overrides = load(self.path)
        except OverridesInvalidError as error:
            aside = f"{self.path}.damaged"
            with contextlib.suppress(OSError):
                os.replace(self.path, aside)
            log.error("operator.overrides.unreadable", file=self.path, error=str(error),
                      moved_to=aside, reason="starting without overrides")
            self._overrides = Overrides()
            return
        if self._overrides.servers or self._overrides.holds or self._overrides.director:
            log.info("operator.overrides.loaded", file=self.path,
                     servers=len(self._overrides.servers), holds=len(self._overrides.holds),
                     director_drained=self._overrides.director is not None)

    def apply_ipvs(self) -> None:
        """Give the IPVS part the overrides on the running config (start-up and reload)."""
        self._set_admin(self._overrides.resolve(self._running().services))

    async def apply_vrrp(self) -> None:
        """Give the VRRP part the active holds (start-up, reload, a hold's end)."""
        now = self._clock()
        await self._set_holds(self._overrides.active_holds(now))
        self._arm_expiry(now)

    def _arm_expiry(self, now: float) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        at = self._overrides.next_expiry(now)
        if at is not None:
            self._expiry = asyncio.get_running_loop().call_later(at - now, self._expire_soon)

    def _expire_soon(self) -> None:
        task = asyncio.get_running_loop().create_task(self._expire(), name="operator-expiry")
        self._tasks.add(task)  # referenced until done: the loop keeps only weak ones
        task.add_done_callback(self._tasks.discard)

    async def _expire(self) -> None:
        async with self._lock:
            now = self._clock()
            ended = self._overrides.expired(now)
            if not ended:
                return
            kept = self._overrides.without_expired(now)
            with contextlib.suppress(OSError):
                save(self.path, kept)  # a stale hold left in the file expires again at start
            self._overrides = kept
            for hold in ended:
                log.info("operator.failover.expired", instance=hold.instance, uid=hold.uid,
                         detail=f"{hold.instance}: hold ended; it may preempt again")
            await self.apply_vrrp()

    def stop(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()

    async def handle(self, request: Mapping[str, Any], uid: int) -> dict[str, Any]:
        """One admin request from ``uid``; the answer to send back."""
        command = request.get("command")
        if command == "overrides":
            return {"ok": True, "overrides": self._overrides.to_json()}
        if command == "progress":
            try:
                return {"ok": True, "servers": await self._servers(request)}
            except CommandError as error:
                return {"ok": False, "error": str(error)}
        async with self._lock:
            running = self._running()
            try:
                outcome = apply_command(self._overrides, request, uid=uid, now=self._clock(),
                                        services=running.services, instances=running.instances,
                                        announces=running.announces)
            except CommandError as error:
                log.warning("operator.refused", command=str(command), uid=uid, error=str(error))
                return {"ok": False, "error": str(error)}
            if outcome.changed:
                try:
                    # Persisted first: an override that would not survive a restart is refused.
                    save(self.path, outcome.overrides)
                except OSError as error:
                    log.error("operator.persist_failed", command=str(command), uid=uid,
                              file=self.path, error=str(error))
                    return {"ok": False, "error": f"cannot persist the overrides in "
                                                  f"{self.path}: {error.strerror}"}
                self._overrides = outcome.overrides
                if command == "failover":
                    try:
                        await self.apply_vrrp()
                    except Exception as error:  # the VRRP process refused: say so
                        log.error("operator.failover.failed", uid=uid, error=str(error))
                        return {"ok": False, "error": f"VRRP: {error}"}
                elif command in _DIRECTOR_COMMANDS:
                    if self._on_director is not None:
                        self._on_director()
                else:
                    self.apply_ipvs()
            fields = _fields(request)
            servers = self._named_servers(request, running.services) if outcome.changed else []
            if not servers:
                log.info(outcome.event, uid=uid, detail=outcome.message,
                         changed=outcome.changed, **fields)
            # One line per real server the command changed, with the `vs` and `rs` keys
            # every other line about that server carries (check.*, ipvs.*, the drain).
            for key, dest in servers:
                log.info(outcome.event, uid=uid, detail=outcome.message,
                         changed=outcome.changed, vs=str(key), rs=str(dest), **fields)
        answer: dict[str, Any] = {"ok": True, "message": outcome.message}
        if command != "failover" and command not in _DIRECTOR_COMMANDS:
            answer["servers"] = await self._servers(request)
        return answer

    def _named_servers(
        self,
        request: Mapping[str, Any],
        services: Mapping[ServiceKey, tuple[str, Collection[DestKey]]],
    ) -> list[tuple[ServiceKey, DestKey]]:
        """The (service, real server) pairs a drain or maintenance command names."""
        if request.get("command") not in ("drain", "undrain", "maintenance"):
            return []
        address, port = parse_target(str(request.get("target", "")))
        service = request.get("service")
        probe = ServerOverride(address, port, None if service is None else str(service),
                               AdminState.DRAIN, 0.0, 0)
        return self._overrides.matched(probe, services)

    async def _servers(self, request: Mapping[str, Any]) -> list[dict[str, Any]]:
        address, port = parse_target(str(request.get("target", "")))
        service = request.get("service")
        # A probe override: which rows the target names (its state plays no part).
        probe = ServerOverride(address, port, None if service is None else str(service),
                               AdminState.DRAIN, 0.0, 0)
        services = self._running().services
        progress = await self._progress()
        rows = []
        for key, dest in self._overrides.matched(probe, services):
            seen = progress.get((key, dest), DestProgress(None, 0, 0))
            rows.append({"service": services[key][0], "vs": str(key), "rs": str(dest),
                         "weight": seen.weight, "active": seen.active,
                         "inactive": seen.inactive})
        return rows


_DIRECTOR_COMMANDS = ("drain-director", "undrain-director")


def _fields(request: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("target", "service", "instance", "hold_for", "release", "on")
    return {key: request[key] for key in keys if request.get(key) is not None}


class AdminServer:
    """The Unix socket; each line a JSON request, answered by ``handler(request, uid)``."""

    def __init__(
        self,
        path: str,
        handler: Callable[[Mapping[str, Any], int], Awaitable[dict[str, Any]]],
    ) -> None:
        self.path = path
        self._handler = handler
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        directory = os.path.dirname(self.path)
        os.makedirs(directory, mode=0o750, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            # A socket left by a daemon that died; never remove anything else.
            if stat.S_ISSOCK(os.lstat(self.path).st_mode):
                os.unlink(self.path)
        old_umask = os.umask(0o117)  # born 0660: no window where others may connect
        try:
            self._server = await asyncio.start_unix_server(
                self._client, path=self.path, limit=_MAX_LINE
            )
        finally:
            os.umask(old_umask)
        os.chmod(self.path, SOCKET_MODE)
        log.info("operator.admin.listening", socket=self.path, mode=oct(SOCKET_MODE))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        _pid, uid, _gid = _PEERCRED.unpack(
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
        )
        try:
            while line := await reader.readline():
                try:
                    request = json.loads(line)
                    if not isinstance(request, dict):
                        raise ValueError("a request is a JSON object")
                    answer = await self._handler(request, uid)
                except ValueError as error:
                    answer = {"ok": False, "error": f"bad request: {error}"}
                except Exception as error:  # a failing command never kills the daemon
                    log.exception("operator.command_failed", uid=uid)
                    answer = {"ok": False, "error": f"internal error: {error!r}"}
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


# --- the command line side ----------------------------------------------------------------------


def admin_request(path: str, request: Mapping[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """Send one request, return the answer (OSError: the daemon cannot be reached)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(json.dumps(dict(request)).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("the daemon closed the connection")
            data += chunk
    answer: dict[str, Any] = json.loads(data)
    return answer


def _show_servers(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        weight = "gone" if row["weight"] is None else f"weight {row['weight']}"
        print(f"  {row['rs']} in {row['service']} ({row['vs']}): {weight}, "
              f"active {row['active']}, inactive {row['inactive']}")


def _request_of(args: argparse.Namespace) -> dict[str, Any]:
    command = args.command
    if command in ("drain", "undrain"):
        return {"command": command, "target": args.target, "service": args.service}
    if command == "maintenance":
        return {"command": "maintenance", "target": args.target, "service": args.service,
                "on": args.state == "on"}
    if command == "failover":
        return {"command": "failover", "instance": args.instance, "hold_for": args.hold_for,
                "release": bool(args.release)}
    if command in _DIRECTOR_COMMANDS:
        return {"command": command}
    return {"command": "overrides"}


def admin_command(args: argparse.Namespace) -> int:
    """``haipvs drain|undrain|maintenance|failover|drain-director|undrain-director|overrides``:
    0 done, 1 refused, 2 no daemon, 3 ``drain --wait --timeout`` ran out with connections
    left."""
    path = args.socket or default_socket_path()
    request = _request_of(args)
    try:
        answer = admin_request(path, request)
    except (OSError, ValueError) as error:
        print(f"haipvs {args.command}: cannot reach the daemon at {path}: {error}",
              file=sys.stderr)
        return 2
    if not answer.get("ok"):
        print(f"haipvs {args.command}: {answer.get('error')}", file=sys.stderr)
        return 1
    if args.command == "overrides":
        if getattr(args, "json", False):
            print(json.dumps(answer["overrides"], indent=2))
        else:
            _show_overrides(answer["overrides"])
        return 0
    print(answer["message"])
    rows = answer.get("servers")
    if rows is not None:
        _show_servers(rows)
    if getattr(args, "wait", False):
        return _wait_empty(path, request, args.interval, getattr(args, "timeout", None))
    return 0


#: ``drain --wait --timeout``: connections were still left when the time was up. The drain
#: stays in force (weight 0); only the wait ended. 1 and 2 are taken (refused, no daemon).
EXIT_DRAIN_TIMED_OUT = 3


def _wait_empty(
    path: str,
    request: Mapping[str, Any],
    interval: float,
    timeout: float | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """``drain --wait``: report the connections left until every named server has none
    (0), or until ``timeout`` seconds have passed (``EXIT_DRAIN_TIMED_OUT``)."""
    deadline = None if timeout is None else clock() + timeout
    last: list[tuple[Any, ...]] = []
    while True:
        try:
            answer = admin_request(path, {**request, "command": "progress"})
        except (OSError, ValueError) as error:
            print(f"haipvs drain: lost the daemon: {error}", file=sys.stderr)
            return 2
        if not answer.get("ok"):
            print(f"haipvs drain: {answer.get('error')}", file=sys.stderr)
            return 1
        rows = answer["servers"]
        counts = [(r["rs"], r["service"], r["active"], r["inactive"]) for r in rows]
        left = sum(r["active"] + r["inactive"] for r in rows)
        if counts != last:
            print(f"{left} connection(s) left")
            _show_servers(rows)
            last = counts
        if left == 0:
            print("drained: no connection left")
            return 0
        now = clock()
        if deadline is not None and now >= deadline:
            print(f"timed out after {timeout:g}s: {left} connection(s) left; the drain "
                  f"stays in force (haipvs undrain ends it)")
            return EXIT_DRAIN_TIMED_OUT
        sleep(interval if deadline is None else max(0.0, min(interval, deadline - now)))


def _show_overrides(doc: Mapping[str, Any]) -> None:
    now = time.time()
    director = doc.get("director")
    if not doc["servers"] and not doc["holds"] and director is None:
        print("no operator override")
    if director is not None:
        print(f"{'director':<12} drained: every VIP withdrawn from the routers, by uid "
              f"{director['uid']}, {int(now - director['since'])}s ago")
    for entry in doc["servers"]:
        address, port = entry["address"], entry["port"]
        target = address if port is None else (
            f"[{address}]:{port}" if ":" in address else f"{address}:{port}")
        where = f" in {entry['service']}" if entry["service"] else ""
        print(f"{entry['state']:<12} {target}{where}  by uid {entry['uid']}, "
              f"{int(now - entry['since'])}s ago")
    for hold in doc["holds"]:
        until = "until released" if hold["until"] is None else \
            f"{max(0, int(hold['until'] - now))}s left"
        print(f"{'failover':<12} {hold['instance']} held as backup, {until}, "
              f"by uid {hold['uid']}")

