"""`haipvs status`: what an operator reads from `ipvsadm -Ln`, plus health and VRRP.

It asks the daemon's status API (GET /status) and prints, per VRRP instance, the
state, priority (and what lowered it), the master and the last transition with its
reason; per virtual service, each real server with its kernel and configured
weight, health and the reason, connections and drain progress. `--json` prints
the document as the API returns it, for scripts.

Where the API is and its token come from, first found wins: `--api`/`--token`, the
environment (`HAIPVS_API`, `HAIPVS_API_TOKEN`), the config file's `director.api` and
`director.api_token` (`--config`, default /etc/haipvs/haipvs.yaml), the built-in
default 127.0.0.1:9797. The request never goes through a proxy: the status API is
on this host or on the director's management address, never behind $http_proxy.

Exit codes (documented in --help and docs/observability.md): 0 the status was
printed; 1 the API answered with an error (401: the token); 2 a usage error (bad
arguments, an unreadable or invalid --config); 3 the daemon is unreachable
(connection refused, timeout, no route).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from haipvs.config.model import Director

__all__ = [
    "DEFAULT_CONFIG",
    "EXIT_API_ERROR",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "ApiTarget",
    "StatusError",
    "fetch_status",
    "render_status",
    "resolve_target",
    "status_command",
]

DEFAULT_CONFIG = "/etc/haipvs/haipvs.yaml"
EXIT_OK = 0
EXIT_API_ERROR = 1
EXIT_USAGE = 2  # what argparse uses for bad arguments
EXIT_UNREACHABLE = 3

EXIT_CODES_HELP = (
    "exit status: 0 printed; 1 the API answered with an error (401: wrong or missing token); "
    "2 usage error (bad arguments, unreadable or invalid --config); "
    "3 the daemon is unreachable (not running, wrong address)"
)


class StatusError(Exception):
    """A one-line message for the operator and the exit code that goes with it."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class ApiTarget:
    address: str  # HOST:PORT as given (for messages)
    connect: str  # HOST:PORT to connect to (a wildcard bind becomes loopback)
    token: str | None
    token_source: str  # where the token came from, for the 401 hint


def _connect_address(api: str) -> str:
    host, _, port = api.rpartition(":")
    bare = host.strip("[]")
    # The daemon may bind every address; this host reaches it on loopback.
    if bare in ("0.0.0.0", ""):
        return f"127.0.0.1:{port}"
    if bare == "::":
        return f"[::1]:{port}"
    return api


def _director_from(path: str, *, explicit: bool) -> Director | None:
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        if explicit:
            raise StatusError(
                f"haipvs status: config file {path} does not exist", EXIT_USAGE
            ) from None
        return None
    except PermissionError:
        if explicit:
            raise StatusError(
                f"haipvs status: cannot read {path} (permission denied): run as root, or "
                "pass --api and --token", EXIT_USAGE
            ) from None
        return None
    except OSError as error:
        raise StatusError(f"haipvs status: cannot read {path}: {error}", EXIT_USAGE) from None
    try:
        raw = yaml.safe_load(text)
        section = raw.get("director") if isinstance(raw, dict) else None
        # Only the director section: the status of a running daemon must stay readable
        # while someone edits (and breaks) another part of the file.
        return Director.model_validate(section or {})
    except (yaml.YAMLError, ValidationError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise StatusError(
            f"haipvs status: {path}: cannot read director.api from it ({first}); "
            "fix it (haipvs check-config) or pass --api", EXIT_USAGE
        ) from None


def resolve_target(
    *,
    api: str | None,
    token: str | None,
    config: str | None,
    environ: dict[str, str] | None = None,
) -> ApiTarget:
    env = dict(os.environ) if environ is None else environ
    director = _director_from(config or DEFAULT_CONFIG, explicit=config is not None)
    config_name = config or DEFAULT_CONFIG
    address = api or env.get("HAIPVS_API") or (director.api if director else None) or (
        Director().api)
    if token:
        chosen, source = token, "--token"
    elif env.get("HAIPVS_API_TOKEN"):
        chosen, source = env["HAIPVS_API_TOKEN"], "$HAIPVS_API_TOKEN"
    elif director is not None and director.api_token:
        chosen, source = director.api_token, f"director.api_token in {config_name}"
    else:
        chosen, source = None, "none"
    return ApiTarget(address, _connect_address(address), chosen, source)


# No ProxyHandler: urllib would otherwise honour $http_proxy even for 127.0.0.1.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch_status(target: ApiTarget, timeout: float = 5.0) -> dict[str, Any]:
    request = urllib.request.Request(f"http://{target.connect}/status")
    if target.token:
        request.add_header("Authorization", f"Bearer {target.token}")
    where = target.address if target.address == target.connect else (
        f"{target.address} (as {target.connect})")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as error:
        if error.code == 401:
            hint = (
                "no token was given: pass --token, set $HAIPVS_API_TOKEN, or run as a user "
                "who can read director.api_token in the config (--config)"
                if target.token is None
                else f"the token from {target.token_source} is not the daemon's "
                "director.api_token"
            )
            raise StatusError(
                f"haipvs status: the status API at {where} refused the request (401): {hint}",
                EXIT_API_ERROR,
            ) from None
        raise StatusError(
            f"haipvs status: the status API at {where} answered HTTP {error.code} "
            f"{error.reason}", EXIT_API_ERROR
        ) from None
    except urllib.error.URLError as error:
        reason = error.reason
        if isinstance(reason, ConnectionRefusedError):
            text = "connection refused: is haipvs running (systemctl status haipvs), " \
                "and is director.api this address?"
        elif isinstance(reason, (TimeoutError, socket.timeout)):
            text = f"no answer within {timeout:.0f} s"
        else:
            text = str(getattr(reason, "strerror", None) or reason)
        raise StatusError(
            f"haipvs status: cannot reach the status API at {where}: {text}", EXIT_UNREACHABLE
        ) from None
    except (TimeoutError, ConnectionError, http.client.HTTPException, OSError) as error:
        raise StatusError(
            f"haipvs status: cannot reach the status API at {where}: "
            f"{type(error).__name__}: {error}", EXIT_UNREACHABLE
        ) from None
    try:
        document: dict[str, Any] = json.loads(body)
    except ValueError:
        raise StatusError(
            f"haipvs status: the status API at {where} did not answer JSON: is it haipvs?",
            EXIT_API_ERROR,
        ) from None
    return document


FORWARDING = {"masq": "Masq", "droute": "Route", "tunnel": "Tunnel", "local": "Local"}


def _ago(at: float | None, now: float) -> str:
    if at is None:
        return "never"
    seconds = max(0, int(now - at))
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m ago"


def render_status(doc: dict[str, Any], now: float | None = None) -> str:
    now = time.time() if now is None else now
    out: list[str] = []
    reload = doc.get("last_reload")
    reload_text = "none" if reload is None else (
        f"{reload['result']} {_ago(reload['at'], now)}"
        + (f" ({reload['summary']})" if reload.get("summary") else "")
        + (f": {len(reload['errors'])} error(s)" if reload.get("errors") else "")
    )
    out.append(
        f"director {doc['director']} (haipvs {doc['version']}), up since "
        f"{_ago(doc['started_at'], now)}, config {doc['config_file']}, last reload {reload_text}"
    )
    out.append("")
    out.append("VRRP")
    if not doc["instances"]:
        out.append("  (no VRRP instance: a single director)")
    for inst in doc["instances"]:
        lowered = f", lowered by {', '.join(inst['priority_reasons'])}" if inst[
            "priority_reasons"] else ""
        out.append(
            f"  {inst['name']:<12} vrid {inst['vrid']:<3} {inst['interface']:<8} "
            f"{inst['state']:<7} priority {inst['effective_priority']}"
            f" (configured {inst['priority']}{lowered})  master {inst['master'] or '-'}"
        )
        out.append(f"  {'':<12} vips {', '.join(inst['vips'])}")
        last = inst.get("last_transition")
        if last is not None:
            out.append(
                f"  {'':<12} last transition {_ago(last['at'], now)}: "
                f"{last['from_state']} -> {last['to_state']}, {last['reason']}"
                + (f" ({last['detail']})" if last["detail"] else "")
            )
        dropped = sum(inst["adverts_dropped"].values())
        out.append(
            f"  {'':<12} adverts sent {inst['adverts_sent']}, received "
            f"{inst['adverts_received']}, dropped {dropped}"
            + (f" {inst['adverts_dropped']}" if dropped else "")
        )
    prog = doc["programmer"]
    sync = "in sync" if prog["in_sync"] else "NOT in sync"
    error = f", last error: {prog['last_error']}" if prog["last_error"] else ""
    out.append("")
    out.append(
        f"IPVS ({sync}, {prog['syncs']} syncs, last {_ago(prog['last_sync_at'], now)}, "
        f"{prog['drift_repairs']} drift repairs, {prog['ops_failed']} failed ops{error})"
    )
    out.append("Prot LocalAddress:Port Scheduler   -> RemoteAddress:Port  Forward Weight "
               "ActiveConn InActConn  Health")
    for service in doc["services"]:
        proto, _, address = service["key"].partition("/")
        flags = []
        if not service["in_kernel"]:
            flags.append("NOT IN KERNEL")
        if service["fail_open"]:
            flags.append("FAIL-OPEN: keeping the last known-good set")
        if service["sorry_active"]:
            flags.append(f"quorum lost: sorry server {service['sorry_server']}")
        if service.get("fingerprint"):
            # Compare it across directors: equal means they hash flows alike.
            order = "" if service.get("dest_order_canonical") else \
                ", real servers not in cold-start order"
            flags.append(f"table {service['fingerprint']}{order}")
        out.append(
            f"{proto.upper():<4} {address:<22} {service['scheduler']:<5} ({service['name']})"
            + (f"  {'; '.join(flags)}" if flags else "")
        )
        for rs in service["real_servers"]:
            weight = "-" if rs["kernel_weight"] is None else str(rs["kernel_weight"])
            drain = ""
            if rs["drain"] is not None:
                left = max(0.0, rs["drain"]["deadline"] - now)
                drain = f", draining ({rs['drain']['cause']}, {left:.0f}s left)"
            held = ", held by fail-open" if rs["fail_open_held"] else ""
            admin = rs.get("admin")
            if admin is not None:
                held += (", drained by the operator" if admin == "drain"
                         else ", in maintenance by the operator")
            latency = "" if rs["latency_ms"] is None else f", {rs['latency_ms']:.1f} ms"
            out.append(
                f"  -> {rs['address'] + ':' + str(rs['port']):<21} "
                f"{FORWARDING.get(rs['forwarding'], rs['forwarding']):<7} "
                f"{weight + '/' + str(rs['weight']):<6} {rs['active_conns']:<10} "
                f"{rs['inactive_conns']:<10} {rs['health']}: {rs['reason']}{latency}{drain}{held}"
            )
    out.extend(_scale_out_lines(doc.get("bgp")))
    overrides = doc.get("overrides") or []
    if overrides:
        out.append("")
        out.append("Operator overrides (haipvs overrides; undo with undrain, maintenance off, "
                   "failover --release, undrain-director)")
    for override in overrides:
        where = f" in {override['service']}" if override["service"] else ""
        until = "" if override["kind"] != "failover" else (
            ", held as backup until released" if override["until"] is None
            else f", held as backup {max(0, int(override['until'] - now))}s more")
        stale = "" if override["matches"] else ", matches nothing in the running config"
        out.append(f"  {override['kind']:<12} {override['target']}{where}, by uid "
                   f"{override['uid']} {_ago(override['since'], now)}{until}{stale}")
    return "\n".join(out) + "\n"


def _scale_out_lines(bgp: dict[str, Any] | None) -> list[str]:
    """Scale-out mode: what this director announces to its routers, and why not."""
    if bgp is None:
        return []
    announced = ", ".join(bgp["announced"]) or "nothing"
    out = ["", f"Scale-out (BGP): announcing {announced}"]
    if bgp["drained"]:
        out.append("  drained by the operator (haipvs undrain-director to announce again)")
    for vip, reason in sorted(bgp.get("withheld", {}).items()):
        out.append(f"  {vip} withdrawn: {reason}")
    if bgp.get("speaker_error"):
        out.append(f"  BIRD: {bgp['speaker_error']}")
    for name, state in sorted(bgp.get("protocols", {}).items()):
        out.append(f"  {name:<28} {state}")
    return out


def status_command(args: argparse.Namespace) -> int:
    try:
        target = resolve_target(
            api=args.api, token=args.token, config=getattr(args, "config", None)
        )
        doc = fetch_status(target)
    except StatusError as error:
        print(str(error), file=sys.stderr)
        return error.code
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        sys.stdout.write(render_status(doc))
    return EXIT_OK
