"""`haipvs status`: what an operator reads from `ipvsadm -Ln`, plus health and VRRP.

It asks the daemon's status API (GET /status) and prints, per VRRP instance, the
state, priority (and what lowered it), the master and the last transition with its
reason; per virtual service, each real server with its kernel and configured
weight, health and the reason, connections and drain progress. `--json` prints
the document as the API returns it, for scripts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from typing import Any

__all__ = ["render_status", "status_command"]

FORWARDING = {"masq": "Masq", "droute": "Route", "tunnel": "Tunnel", "local": "Local"}


def fetch_status(api: str, token: str | None, timeout: float = 5.0) -> dict[str, Any]:
    request = urllib.request.Request(f"http://{api}/status")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        document: dict[str, Any] = json.loads(response.read())
    return document


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
    overrides = doc.get("overrides") or []
    if overrides:
        out.append("")
        out.append("Operator overrides (haipvs overrides; undo with undrain, maintenance off, "
                   "failover --release)")
    for override in overrides:
        where = f" in {override['service']}" if override["service"] else ""
        until = "" if override["kind"] != "failover" else (
            ", held as backup until released" if override["until"] is None
            else f", held as backup {max(0, int(override['until'] - now))}s more")
        stale = "" if override["matches"] else ", matches nothing in the running config"
        out.append(f"  {override['kind']:<12} {override['target']}{where}, by uid "
                   f"{override['uid']} {_ago(override['since'], now)}{until}{stale}")
    return "\n".join(out) + "\n"


def status_command(args: argparse.Namespace) -> int:
    try:
        doc = fetch_status(args.api, args.token)
    except (urllib.error.URLError, OSError, ValueError) as error:
        print(f"haipvs status: cannot read the status API at {args.api}: {error}",
              file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        sys.stdout.write(render_status(doc))
    return 0
