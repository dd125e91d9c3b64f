"""What a reload does: ``plan_reload(running, new) -> ReloadPlan``, frozen and pure.

The supervisor executes a plan and `haipvs plan FILE` prints one; both come from this
function, so what the operator is shown is what the daemon does. A plan holds:

- ``delta``: the config diff by identity key (haipvs.config.diff), for the summary;
- ``vrrp``: per VRRP instance keep / reconfigure in place / replace / add / remove,
  the rule of vrrp.plan_instances (the one the VRRP process executes), with the VIPs
  each instance gains and loses;
- ``checks_changed`` / ``services_changed``: the checker pool and the IPVS programmer
  get the new specs (unchanged checks keep their state: diff.py's rule 1);
- ``ipvs_ops``: the IPVS operations the programmer would send, planned by
  haipvs.ipvs.plan from the old desired table to the new one under the same health, the
  same operator overrides (``haipvs drain`` / ``maintenance``, resolved against each
  config: they outlive reloads) and the same graceful drains in progress, all through
  the desired table's own rule (haipvs.ipvs.desired.desired_table);
- ``sync_daemon``: keep, apply (new settings: restart in the role its instance's
  state gives), or stop;
- ``restart_needed``: changes a reload cannot apply (the API address), named for the log;
- ``summary``: the one line of ``config.reload.applied``.

Pure: no IO, no clock, no logging.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from haipvs.config.diff import ConfigDelta, KindDelta, diff_configs
from haipvs.config.model import Config
from haipvs.daemon.overrides import Overrides
from haipvs.ipvs.desired import HealthKey, HealthView, ServiceSpec, desired_table
from haipvs.ipvs.model import Dest, DestKey, IpvsTable, Op, ServiceKey
from haipvs.ipvs.plan import plan_changes
from vrrp.machine import InstancesPlan, InstanceStep, plan_instances, vip_changes
from vrrp.settings import InstanceSettings


class Compiled(Protocol):
    """What a plan reads of haipvs.config.compile.Compiled (that module pulls in the IO
    side of vrrp and checkers; this one stays pure)."""

    @property
    def instances(self) -> tuple[InstanceSettings, ...]: ...

    @property
    def services(self) -> tuple[ServiceSpec, ...]: ...

    @property
    def checks(self) -> Mapping[Any, Any]: ...

    @property
    def timeouts(self) -> object: ...

    @property
    def sync_daemon(self) -> object: ...

    @property
    def owned(self) -> frozenset[ServiceKey]: ...

    @property
    def service_names(self) -> Mapping[ServiceKey, str]: ...


def served(compiled: Compiled) -> dict[ServiceKey, tuple[str, tuple[DestKey, ...]]]:
    """Each virtual server's name and real servers: what an operator override matches
    (``Overrides.resolve``) and what ``haipvs drain`` may name."""
    return {
        spec.key: (compiled.service_names[spec.key],
                   tuple(dest.key for dest in spec.real_servers))
        for spec in compiled.services
    }

__all__ = ["InstanceChange", "ReloadPlan", "plan_reload", "served", "summarize_delta"]


@dataclass(frozen=True, slots=True)
class InstanceChange:
    """One VRRP instance's part of a reload, for people: what and which VIPs."""

    name: str
    action: str  # keep | reconfigure | replace | add | remove
    fields: tuple[str, ...]  # the settings that differ (reconfigure, replace)
    vips_added: tuple[str, ...]
    vips_removed: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    delta: ConfigDelta
    vrrp: InstancesPlan
    instances: tuple[InstanceChange, ...]
    start_vrrp: bool  # no VRRP ran, the new config has instances
    checks_changed: bool
    services_changed: bool
    timeouts_changed: bool
    ipvs_ops: tuple[Op, ...]
    sync_daemon: str  # keep | apply | stop
    restart_needed: tuple[str, ...]
    summary: str

    @property
    def vrrp_changed(self) -> bool:
        return bool(self.vrrp.changed)

    @property
    def is_empty(self) -> bool:
        return self.delta.is_empty and not self.vrrp_changed


def _instance_change(step: InstanceStep) -> InstanceChange:
    old, new = step.old, step.new
    fields: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    if old is not None and new is not None:
        fields = tuple(
            name for name in old.__dataclass_fields__ if getattr(old, name) != getattr(new, name)
        )
        if step.action == "replace":
            added = tuple(str(vip.address) for vip in new.vips)
            removed = tuple(str(vip.address) for vip in old.vips)
        else:
            gained, lost = vip_changes(old, new)
            added = tuple(str(vip.address) for vip in gained)
            removed = tuple(str(vip.address) for vip in lost)
    elif new is not None:
        added = tuple(str(vip.address) for vip in new.vips)
    elif old is not None:
        removed = tuple(str(vip.address) for vip in old.vips)
    return InstanceChange(step.name, step.action, fields, added, removed)


def plan_reload(
    running: tuple[Config, Compiled],
    new: tuple[Config, Compiled],
    *,
    health: Mapping[HealthKey, HealthView] | None = None,
    overrides: Overrides | None = None,
    drains: Mapping[HealthKey, Dest] | None = None,
) -> ReloadPlan:
    """The plan that takes the daemon from ``running`` to ``new`` (each a config and its
    compilation). The IPVS operations are planned under what the programmer builds its
    table with: ``health``, the real servers' health now (missing: up); ``overrides``, the
    operator's drains and maintenance (resolved against each config); ``drains``, the
    dests in a graceful drain now (weight 0, kept while their service is)."""
    old_config, old = running
    new_config, compiled = new
    delta = diff_configs(old_config, new_config)
    instances = plan_instances(old.instances, compiled.instances)
    services_changed = not (
        delta.virtual_services.is_empty and delta.real_servers.is_empty
    ) or old.services != compiled.services
    checks_changed = not delta.checks.is_empty or old.checks != compiled.checks
    views = health or {}
    operator = overrides or Overrides()

    def table(config: Compiled) -> IpvsTable:
        admin = operator.resolve(served(config))
        return desired_table(config.services, views, drains, admin=admin)

    ops = plan_changes(table(compiled), table(old), old.owned | compiled.owned)
    if old.sync_daemon == compiled.sync_daemon:
        sync = "keep"
    elif compiled.sync_daemon is None:
        sync = "stop"
    else:
        sync = "apply"
    restart_needed = tuple(
        f"director.{name}: takes effect at the next restart"
        for name in ("api", "api_token")
        if getattr(old_config.director, name) != getattr(new_config.director, name)
    )
    return ReloadPlan(
        delta=delta,
        vrrp=instances,
        instances=tuple(_instance_change(step) for step in instances.changed),
        start_vrrp=not old.instances and bool(compiled.instances),
        checks_changed=checks_changed,
        services_changed=services_changed,
        timeouts_changed=old.timeouts != compiled.timeouts,
        ipvs_ops=ops,
        sync_daemon=sync,
        restart_needed=restart_needed,
        summary=summarize_delta(delta),
    )


def summarize_delta(delta: ConfigDelta) -> str:
    """"real_servers: 1 changed; checks: 1 added" - what on-call reads in the log line."""
    kinds: Mapping[str, KindDelta[Any, Any]] = {
        "vrrp_instances": delta.vrrp_instances,
        "sync_groups": delta.sync_groups,
        "virtual_servers": delta.virtual_services,
        "real_servers": delta.real_servers,
        "checks": delta.checks,
    }
    parts = []
    for name, kind in kinds.items():
        counts = [
            f"{len(items)} {bucket}"
            for bucket, items in (
                ("added", kind.added), ("removed", kind.removed), ("changed", kind.changed)
            )
            if items
        ]
        if counts:
            parts.append(f"{name}: {', '.join(counts)}")
    if delta.director is not None:
        parts.append("director: changed")
    if delta.ipvs is not None:
        parts.append("ipvs: changed")
    return "; ".join(parts) or "no changes"
