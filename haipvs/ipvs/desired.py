"""The desired IPVS table: what the config and the health checks say the kernel should hold.

Rule 1: every rule that turns (service specs, health, operator overrides, drains) into rows
lives here: quorum and the sorry server, inhibit_on_failure, slow-start weight scaling, the
operator's drain and maintenance, drains at weight 0.
Rule 2: pure. No clock, no IO, no logging: the result carries *notes* (why a row is what it is)
that the planner turns into op reasons and the programmer into log lines.

keepalived options matched: ``quorum`` (the sum of the up real servers' weights, ``min_weight``,
or by choice a count of up real servers, ``min_up``) with ``hysteresis`` (``quorum_held``),
``sorry_server`` (only it while quorum is lost), ``inhibit_on_failure`` (a failed real server is
kept at weight 0 instead of removed), ``alpha`` is the checker's business (it reports the server
down until it has passed ``rise`` checks). A real server with no health entry is up, as in
keepalived for a real server without a checker.

Operator overrides (``AdminState``, set with ``haipvs drain`` / ``haipvs maintenance``), as
HAProxy's runtime API has them:

* ``DRAIN``: the real server stays in the table at weight 0. The schedulers send it no new
  connection, established ones carry on, and it stays there (weight 0) until undrained, whatever
  its connection count: the operator decides when it is empty enough (``haipvs drain --wait``).
* ``MAINTENANCE``: the real server leaves the live table, exactly as a failed check would make
  it leave: the graceful drain of ``drain.py`` keeps it at weight 0 while it has connections, up
  to the service's ``drain_timeout``, then deletes it (at once for UDP or ``drain_timeout: 0``).

Either way the server no longer counts as up for the quorum (it takes no new connection). A
server that is down stays out whatever its override. The rows carry the override as their note,
so drift repair restores weight 0 rather than the configured weight.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from checkers.slowstart import effective_weight
from haipvs.ipvs.model import (
    Dest,
    DestKey,
    IpvsTable,
    OpReason,
    Service,
    ServiceEntry,
    ServiceKey,
)

__all__ = [
    "AdminState",
    "AdminView",
    "Desired",
    "HealthKey",
    "HealthView",
    "Note",
    "NoteKey",
    "ServiceSpec",
    "build_desired",
    "desired_table",
    "quorum_held",
    "with_drains",
]

HealthKey = tuple[ServiceKey, DestKey]
NoteKey = tuple[ServiceKey, DestKey | None]


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One virtual server as the config compiler produces it.

    ``real_servers`` carry the configured weight, forwarding, thresholds and tunnel settings.
    ``min_up``: the quorum, the number of up real servers below which only ``sorry_server``
    (if any) serves; ``min_weight`` (when set, instead of ``min_up``): keepalived's quorum, the
    sum of the configured weights of the up real servers. ``hysteresis``: see ``quorum_held``.
    ``drain_timeout``: seconds a leaving real server keeps weight 0 before it is deleted even
    with open connections (0: deleted at once). UDP services never drain.
    """

    service: Service
    real_servers: tuple[Dest, ...] = ()
    min_up: int = 1
    sorry_server: Dest | None = None
    drain_timeout: float = 0.0
    inhibit_on_failure: bool = False
    min_weight: int | None = None
    hysteresis: int = 0

    def __post_init__(self) -> None:
        keys = [dest.key for dest in self.real_servers]
        if len(set(keys)) != len(keys):
            raise ValueError(f"{self.service.key}: a real server appears twice")
        if self.sorry_server is not None and self.sorry_server.key in set(keys):
            raise ValueError(f"{self.service.key}: sorry_server is also a real server")
        if self.min_up < 0:
            raise ValueError(f"{self.service.key}: min_up must be >= 0")
        if self.min_weight is not None and self.min_weight < 0:
            raise ValueError(f"{self.service.key}: min_weight must be >= 0")
        if self.hysteresis < 0:
            raise ValueError(f"{self.service.key}: hysteresis must be >= 0")
        if self.drain_timeout < 0:
            raise ValueError(f"{self.service.key}: drain_timeout must be >= 0")

    @property
    def key(self) -> ServiceKey:
        return self.service.key


@dataclass(frozen=True, slots=True)
class HealthView:
    """What the checkers say about one real server of one service.

    ``weight_factor`` in [0, 1] scales the configured weight (slow start / warmup); ``reason``
    is the checker's words ("3 failures: connect refused"), carried into the log line.
    ``weight``: a weight the check itself reported (keepalived ``misc_dynamic``,
    ``FILE_CHECK``); it replaces the configured weight while the server is up.
    """

    up: bool
    weight_factor: float = 1.0
    reason: str = ""
    weight: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight_factor <= 1.0:
            raise ValueError(f"weight_factor must be in [0, 1], got {self.weight_factor}")
        if self.weight is not None and self.weight < 0:
            raise ValueError(f"weight must be >= 0, got {self.weight}")


@dataclass(frozen=True, slots=True)
class Note:
    """Why a row of the desired table is what it is (becomes an op's reason and detail)."""

    reason: OpReason
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Desired:
    """The desired table and the notes explaining its rows (key (service, dest|None))."""

    table: IpvsTable
    notes: Mapping[NoteKey, Note] = field(default_factory=dict)
    #: Whether each service holds its quorum: pass it back as ``held`` next time.
    quorum: Mapping[ServiceKey, bool] = field(default_factory=dict)
    #: Why, in words ("3 weight up < min_weight 4"), for the log line of a change.
    quorum_detail: Mapping[ServiceKey, str] = field(default_factory=dict)


class AdminState(enum.Enum):
    """The operator's override of one real server (see the module docstring)."""

    DRAIN = "drain"
    MAINTENANCE = "maintenance"


@dataclass(frozen=True, slots=True)
class AdminView:
    """An override as the desired table sees it; ``detail`` goes into the op's reason."""

    state: AdminState
    detail: str = ""


_UP = HealthView(up=True)


def quorum_held(value: int, threshold: int, hysteresis: int, was_held: bool | None) -> bool:
    """keepalived's quorum with hysteresis (check_daemon's update_quorum_state).

    Held quorum is lost when ``value < threshold - hysteresis`` (or nothing is up at all);
    lost quorum comes back when ``value >= threshold + hysteresis``. Without history
    (``was_held`` None: a new service) the plain ``value >= threshold`` decides. A
    threshold of 0 is always held.
    """
    if threshold <= 0:
        return True
    if was_held is None:
        return value >= threshold
    if was_held:
        return not (value == 0 or value < threshold - hysteresis)
    return value >= threshold + hysteresis


def _quorum_value(spec: ServiceSpec, dests: Mapping[DestKey, Dest]) -> tuple[int, int, str, str]:
    """(measured value, threshold, unit words) of the service's quorum rule."""
    if spec.min_weight is None:
        return len(dests), spec.min_up, "up", "min_up"
    weights = {dest.key: dest.weight for dest in spec.real_servers}
    return sum(weights[key] for key in dests), spec.min_weight, "weight up", "min_weight"


def _quorum_detail(spec: ServiceSpec, dests: Mapping[DestKey, Dest], held: bool) -> str:
    value, threshold, unit, name = _quorum_value(spec, dests)
    band = f" (hysteresis {spec.hysteresis})" if spec.hysteresis else ""
    if held:
        return f"{value} {unit} >= {name} {threshold}{band}"
    return f"{value} {unit} < {name} {threshold}{band}"


def build_desired(
    specs: Mapping[ServiceKey, ServiceSpec] | tuple[ServiceSpec, ...] | list[ServiceSpec],
    health: Mapping[HealthKey, HealthView],
    *,
    admin: Mapping[HealthKey, AdminView] | None = None,
    held: Mapping[ServiceKey, bool] | None = None,
) -> Desired:
    """The live desired table (no drains) and its notes. See ``with_drains`` for drains.

    ``admin``: the operator's overrides by (service, real server); see the module docstring.
    ``held``: each service's quorum as the previous call returned it (``Desired.quorum``);
    hysteresis needs it. A service missing from it is decided without history.
    """
    overrides = admin or {}
    items = specs.values() if isinstance(specs, Mapping) else specs
    services: dict[ServiceKey, ServiceEntry] = {}
    notes: dict[NoteKey, Note] = {}
    quorum: dict[ServiceKey, bool] = {}
    quorum_detail: dict[ServiceKey, str] = {}
    for spec in items:
        key = spec.service.key
        if key in services:
            raise ValueError(f"service {key} specified twice")
        dests: dict[DestKey, Dest] = {}
        down: list[tuple[Dest, HealthView]] = []
        drained: list[tuple[Dest, AdminView]] = []
        for dest in spec.real_servers:
            view = health.get((key, dest.key), _UP)
            override = overrides.get((key, dest.key))
            if override is not None and override.state is AdminState.MAINTENANCE:
                # Out of the live table: drain.py drains its connections, then deletes it.
                notes[(key, dest.key)] = Note(OpReason.OPERATOR_MAINTENANCE, override.detail)
                continue
            if not view.up:
                down.append((dest, view))
                continue
            if override is not None:  # DRAIN: kept at weight 0 below, not counted as up
                drained.append((dest, override))
                continue
            base = dest.weight if view.weight is None else view.weight
            weight = effective_weight(base, view.weight_factor)
            if weight != dest.weight:
                notes[(key, dest.key)] = (
                    Note(OpReason.SLOW_START, f"weight factor {view.weight_factor:g}")
                    if base == dest.weight
                    else Note(OpReason.CHECK_WEIGHT, f"check weight {base}: {view.reason}")
                )
                dests[dest.key] = dataclasses.replace(dest, weight=weight)
            else:
                dests[dest.key] = dest
        for dest, view in down:
            notes[(key, dest.key)] = Note(OpReason.HEALTH_DOWN, view.reason)
        for dest, override in drained:
            notes[(key, dest.key)] = Note(OpReason.OPERATOR_DRAIN, override.detail)
        # Drained and down servers are not up: only `dests` counts, before the weight-0
        # rows (inhibit_on_failure, operator drain) are added back below.
        value, threshold, _, _ = _quorum_value(spec, dests)
        holds = quorum_held(value, threshold, spec.hysteresis, (held or {}).get(key))
        detail = _quorum_detail(spec, dests, held=holds)
        quorum[key] = holds
        quorum_detail[key] = detail
        if not holds:
            # keepalived quorum: below it the sorry server alone serves; real servers that are
            # still up leave (graceful drain applies), or stay at weight 0 with inhibit.
            lost: dict[DestKey, Dest] = {}
            for dest in spec.real_servers:
                if dest.key in dests:
                    notes[(key, dest.key)] = Note(OpReason.QUORUM_LOST, detail)
                if spec.inhibit_on_failure:
                    lost[dest.key] = dataclasses.replace(dest, weight=0)
            if spec.sorry_server is not None:
                lost[spec.sorry_server.key] = spec.sorry_server
                notes[(key, spec.sorry_server.key)] = Note(OpReason.QUORUM_LOST, detail)
            services[key] = ServiceEntry(spec.service, lost)
            continue
        for dest, _view in down:
            if spec.inhibit_on_failure:
                # keepalived inhibit_on_failure: keep the dest, weight 0, connections survive.
                dests[dest.key] = dataclasses.replace(dest, weight=0)
        for dest, _override in drained:
            dests[dest.key] = dataclasses.replace(dest, weight=0)
        if spec.sorry_server is not None:
            notes[(key, spec.sorry_server.key)] = Note(OpReason.QUORUM_REGAINED, detail)
        services[key] = ServiceEntry(spec.service, dests)
    return Desired(IpvsTable(services), notes, quorum, quorum_detail)


def with_drains(table: IpvsTable, drains: Mapping[HealthKey, Dest]) -> IpvsTable:
    """``table`` plus the draining dests (weight 0) of services it still has.

    A draining dest whose service left the table is dropped: deleting the service deletes its
    dests, there is nothing left to drain into. A dest the table already has is not draining
    (it came back) and the table's version wins.
    """
    if not drains:
        return table
    services = dict(table.services)
    touched: dict[ServiceKey, dict[DestKey, Dest]] = {}
    for (service, dest_key), dest in drains.items():
        entry = services.get(service)
        if entry is None or dest_key in entry.dests:
            continue
        dests = touched.get(service)
        if dests is None:
            dests = touched[service] = dict(entry.dests)
        dests[dest_key] = dest if dest.weight == 0 else dataclasses.replace(dest, weight=0)
    for service, dests in touched.items():
        services[service] = ServiceEntry(services[service].service, dests)
    return IpvsTable(services)


def desired_table(
    specs: Mapping[ServiceKey, ServiceSpec] | tuple[ServiceSpec, ...] | list[ServiceSpec],
    health: Mapping[HealthKey, HealthView],
    drains: Mapping[HealthKey, Dest] | None = None,
    *,
    admin: Mapping[HealthKey, AdminView] | None = None,
) -> IpvsTable:
    """The table the kernel should hold: live rows from specs + health under the operator's
    overrides (``admin``), plus draining dests."""
    return with_drains(build_desired(specs, health, admin=admin).table, drains or {})
