"""`haipvs plan FILE`: what a reload of FILE would do, before doing it.

FILE passes the daemon's own gate (haipvs.daemon.accept); the running config comes from
the running daemon (``GET /config`` on the status API; ``--running FILE`` reads a file
instead), and the plan is the daemon's own: ``plan_reload``. Printed, one line each:

- every VRRP instance reconfigured, replaced, added or removed, with the VIPs it gains
  (``+``) and loses (``-``); a warning when a VIP leaves an instance that is MASTER here
  (the daemon's ``/status`` says which are);
- every check added, removed or changed (by real server);
- the exact IPVS operations the programmer would send, planned from the table the
  running config asks for to the one FILE asks for, under what ``/status`` reports: the
  real servers' health, the operator's overrides (``haipvs drain`` / ``maintenance``:
  a drained server whose weight changes gets no op, it stays at 0) and the graceful
  drains in progress of configured real servers. ``--running FILE`` has no daemon to ask:
  everything up, no override, no drain;
- the summary line the daemon would log, and what waits for a restart.

Exit status: 0 nothing would change; 10 a reload would change something; 1 FILE is
invalid (its located errors are printed, as check-config prints them and with its exit
status) or the running daemon cannot be read. "Changes" is not 2, as ``terraform plan
-detailed-exitcode`` has it, because 2 is already argparse's usage error here.

Secrets (``director.api_token``, VRRPv2 ``auth_pass``) never leave the daemon: ``/config``
redacts them and they are not compared.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from haipvs.config.compile import Compiled, compile_config
from haipvs.config.load import ConfigInvalid, load_config, load_config_text
from haipvs.config.model import Config
from haipvs.daemon.accept import HostFacts, accept_config
from haipvs.daemon.overrides import Overrides, ServerOverride, parse_target
from haipvs.daemon.reload import ReloadPlan, plan_reload
from haipvs.ipvs.desired import AdminState, HealthKey, HealthView
from haipvs.ipvs.model import (
    AddDest,
    AddService,
    DeleteDest,
    DeleteService,
    Dest,
    DestKey,
    Op,
    ServiceKey,
    UpdateDest,
    UpdateService,
)

__all__ = ["EXIT_CHANGES", "EXIT_INVALID", "EXIT_NO_CHANGE", "plan_command", "redacted",
           "render_plan"]

EXIT_NO_CHANGE = 0
EXIT_INVALID = 1
EXIT_CHANGES = 10

REDACTED = "redacted"  # 8 octets: still a valid auth_pass, so the YAML loads


def redacted(config: Config) -> Config:
    """``config`` with its secrets replaced by a marker (``GET /config``)."""
    director = config.director
    if director.api_token is not None:
        director = director.model_copy(update={"api_token": REDACTED})
    instances = tuple(
        instance.model_copy(update={"auth_pass": REDACTED})
        if instance.auth_pass is not None else instance
        for instance in config.vrrp
    )
    return config.model_copy(update={"director": director, "vrrp": instances})


def _with_secrets_of(running: Config, new: Config) -> Config:
    """The running config with the new file's secrets where it shows the marker: secrets
    are not compared (they never leave the daemon)."""
    director = running.director
    if director.api_token == REDACTED:
        director = director.model_copy(update={"api_token": new.director.api_token})
    passwords = {instance.name: instance.auth_pass for instance in new.vrrp}
    instances = tuple(
        instance.model_copy(update={"auth_pass": passwords.get(instance.name)})
        if instance.auth_pass == REDACTED else instance
        for instance in running.vrrp
    )
    return running.model_copy(update={"director": director, "vrrp": instances})


def _op_line(op: Op) -> str:
    if isinstance(op, AddService):
        text = f"add-service {op.service.key} scheduler={op.service.scheduler}"
    elif isinstance(op, UpdateService):
        text = f"update-service {op.service.key} scheduler={op.service.scheduler}"
    elif isinstance(op, DeleteService):
        text = f"delete-service {op.key}"
    elif isinstance(op, AddDest):
        text = f"add-dest {op.service_key} {op.dest.key} weight={op.dest.weight}"
    elif isinstance(op, UpdateDest):
        text = f"update-dest {op.service_key} {op.dest.key} weight={op.dest.weight}"
    else:
        assert isinstance(op, DeleteDest)
        text = f"delete-dest {op.service_key} {op.dest_key}"
    detail = f": {op.detail}" if op.detail else ""
    return f"ipvs: {text} ({op.reason.value}{detail})"


def render_plan(plan: ReloadPlan, states: dict[str, str] | None = None) -> list[str]:
    """The lines `haipvs plan` prints; ``states``: instance name -> VRRP state here."""
    states = states or {}
    lines: list[str] = []
    for change in plan.instances:
        what = f" ({', '.join(change.fields)})" if change.fields else ""
        vips = [f"+{vip}" for vip in change.vips_added] + [f"-{vip}" for vip in change.vips_removed]
        lines.append(f"vrrp {change.name}: {change.action}{what}"
                     + (f": {' '.join(vips)}" if vips else ""))
        if change.vips_removed and states.get(change.name) == "MASTER":
            lines.append(
                f"warning: vrrp {change.name} is MASTER here: "
                f"{', '.join(change.vips_removed)} leave(s) this director at once"
            )
    if plan.vrrp.restart:
        lines.append("warning: a sync group's members change: the VRRP service restarts "
                     "(every master resigns, the peer takes over)")
    checks = plan.delta.checks
    for key in checks.added:
        lines.append(f"check {key}: added")
    for key in checks.removed:
        lines.append(f"check {key}: removed")
    for key in checks.changed:
        lines.append(f"check {key}: changed")
    lines.extend(_op_line(op) for op in plan.ipvs_ops)
    if plan.sync_daemon != "keep":
        lines.append(f"ipvs sync daemon: {plan.sync_daemon}")
    lines.extend(f"warning: {note}" for note in plan.restart_needed)
    lines.append(f"summary: {plan.summary}")
    return lines


def _fetch(api: str, path: str, token: str | None) -> dict[str, Any]:
    # Imported here: the daemon imports this module (``redacted``) on its way to its VRRP
    # fork, and urllib pulls in http.client and the email parser (~0.1 s of a slow CPU).
    import urllib.request

    request = urllib.request.Request(f"http://{api}{path}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=5.0) as response:
        document: dict[str, Any] = json.loads(response.read())
    return document


def _health(status: dict[str, Any], compiled: Compiled) -> dict[HealthKey, HealthView]:
    """The real servers' health as the daemon reports it (a down one gets no ops)."""
    by_name = {name: key for key, name in compiled.service_names.items()}
    health: dict[HealthKey, HealthView] = {}
    for service in status.get("services", ()):
        key: ServiceKey | None = by_name.get(service.get("name"))
        if key is None:
            continue
        for rs in service.get("real_servers", ()):
            if rs.get("health") == "down":
                dest = DestKey(address=rs["address"], port=rs["port"])
                health[(key, dest)] = HealthView(up=False, reason=rs.get("reason", "down"))
    return health


def _overrides(status: dict[str, Any]) -> Overrides:
    """The operator's drains and maintenance as ``/status`` lists them (failover holds
    change no IPVS op)."""
    servers: list[ServerOverride] = []
    for view in status.get("overrides", ()):
        kind = view.get("kind")
        if kind not in (AdminState.DRAIN.value, AdminState.MAINTENANCE.value):
            continue
        address, port = parse_target(str(view["target"]))
        servers.append(ServerOverride(address, port, view.get("service"), AdminState(kind),
                                      float(view.get("since", 0.0)), int(view.get("uid", 0))))
    return Overrides(tuple(servers))


def _drains(status: dict[str, Any], compiled: Compiled) -> dict[HealthKey, Dest]:
    """The configured real servers ``/status`` shows in a graceful drain (weight 0)."""
    by_name = {name: key for key, name in compiled.service_names.items()}
    configured = {(spec.key, dest.key): dest
                  for spec in compiled.services for dest in spec.real_servers}
    drains: dict[HealthKey, Dest] = {}
    for service in status.get("services", ()):
        key: ServiceKey | None = by_name.get(service.get("name"))
        if key is None:
            continue
        for rs in service.get("real_servers", ()):
            dest = configured.get((key, DestKey(address=rs["address"], port=rs["port"])))
            if rs.get("drain") and dest is not None:
                drains[(key, dest.key)] = dest
    return drains


def plan_command(args: Any, out: TextIO | None = None, *, host: HostFacts | None = None) -> int:
    stream = out if out is not None else sys.stdout
    try:
        new = accept_config(args.file, offline=args.offline, host=host)
    except ConfigInvalid as invalid:
        for error in invalid.errors:
            print(error, file=stream)
        return EXIT_INVALID
    status: dict[str, Any] = {}
    try:
        if args.running is not None:
            running_config = load_config(args.running).config
            source = args.running
        else:
            document = _fetch(args.api, "/config", args.token)
            running_config = load_config_text(document["yaml"], document["file"]).config
            source = f"{document['file']} (running, via {args.api})"
            status = _fetch(args.api, "/status", args.token)
    except ConfigInvalid as invalid:
        for error in invalid.errors:
            print(f"running config: {error}", file=stream)
        return EXIT_INVALID
    except (OSError, ValueError, KeyError) as error:  # urllib's URLError is an OSError
        print(f"haipvs plan: cannot read the running config: {error}", file=stream)
        return EXIT_INVALID
    running_config = _with_secrets_of(running_config, new.config)
    running = compile_config(running_config, hostname=new.compiled.director)
    plan = plan_reload(
        (running_config, running),
        (new.config, new.compiled),
        health=_health(status, running),
        overrides=_overrides(status),
        drains=_drains(status, running),
    )
    states = {view["name"]: view["state"] for view in status.get("instances", ())}
    print(f"plan: {args.file} against {source}", file=stream)
    for line in render_plan(plan, states):
        print(line, file=stream)
    return EXIT_NO_CHANGE if plan.is_empty else EXIT_CHANGES
