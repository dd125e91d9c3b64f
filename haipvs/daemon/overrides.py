"""Operator overrides: drained and in-maintenance real servers, failover holds.

What ``haipvs drain``, ``haipvs maintenance`` and ``haipvs failover`` change, as one frozen value.

Rule 1: every operator decision lives here: what a command does to the overrides, what it may
name (a real server of the running config, a VRRP instance that exists), and how the overrides
map onto the IPVS table (``resolve``: (service, real server) -> ``AdminView``, which
``haipvs.ipvs.desired`` applies) and onto VRRP (``active_holds``).
Rule 2: pure. Time is the ``now`` argument (wall-clock seconds: holds and ``since`` survive a
restart); the file IO (``load`` / ``save``) is two small functions at the end.

Semantics, as an LVS operator expects them (HAProxy's runtime API ``set server ... state``):

* **drain** ``ADDR[:PORT] [--service NAME]``: weight 0, the real server stays in the table;
  established connections carry on, new ones go to the others. It stays at weight 0 until
  ``undrain``, even once empty: the operator watches the connections fall (``--wait``).
* **maintenance on**: the real server leaves the table. Its connections are drained first, as
  for a failed check (weight 0 until they end or the service's ``drain_timeout`` passes), then
  it is deleted. ``maintenance off`` brings it back (its check decides whether it serves).
* **drain-director** (scale-out mode, a ``bgp`` section): this director withdraws every VIP
  it announces (the announce gate's "drained by the operator", ``haipvs.bgp.gate``); the
  routers move new flows to the other directors, and the flows already here keep arriving
  on whichever director ECMP picks (mh + connection sync serve them there). The IPVS table
  stays as it is. ``undrain-director`` ends it: each VIP is announced again once its gates
  hold. Refused in a VRRP pair (there, ``failover`` moves the VIPs).
* **failover INSTANCE**: a master resigns (priority-0 advert, RFC 5798 §6.4.3: the peer takes
  over after its skew time) and the instance is *held*: it advertises priority 1 so it never
  preempts back. It still takes over if the peer dies (priority 1 is still a backup). The hold
  lasts until ``failover --release INSTANCE`` or the ``--for SECONDS`` given.

Without a port an override covers every port of the address; without a service, every
virtual server that has the real server. Overrides survive reload and restart (persisted by
the supervisor); one that no longer matches the config is kept, and shown as matching nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import os
import tempfile
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from haipvs.ipvs import AdminState, AdminView, DestKey, ServiceKey

__all__ = [
    "FILE_NAME",
    "CommandError",
    "DirectorDrain",
    "InstanceHold",
    "Outcome",
    "Overrides",
    "OverridesInvalidError",
    "ServerOverride",
    "apply_command",
    "load",
    "parse_target",
    "save",
    "state_directory",
]

FILE_NAME = "overrides.json"
_FORMAT = 1


class CommandError(ValueError):
    """An operator command that cannot apply; the message is what the CLI prints."""


class OverridesInvalidError(ValueError):
    """The persisted overrides file cannot be read; the message names the file and the spot."""


def parse_target(text: str) -> tuple[str, int | None]:
    """``10.0.0.11:80``, ``10.0.0.11``, ``[2001:db8::11]:80`` or ``2001:db8::11``."""
    host, port_text = text, ""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise CommandError(f"{text!r}: expected [IPV6]:PORT")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    try:
        address = str(ipaddress.ip_address(host))
    except ValueError:
        raise CommandError(f"{text!r}: not an IP address (ADDR or ADDR:PORT)") from None
    if not port_text:
        return address, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise CommandError(f"{text!r}: the port must be 1-65535")
    return address, int(port_text)


def _show(address: str, port: int | None) -> str:
    shown = f"[{address}]" if ":" in address and port is not None else address
    return shown if port is None else f"{shown}:{port}"


@dataclass(frozen=True, slots=True)
class ServerOverride:
    """One real server (or every port of an address) drained or in maintenance."""

    address: str
    port: int | None
    service: str | None  # a virtual server's name; None: every virtual server
    state: AdminState
    since: float
    uid: int

    @property
    def target(self) -> tuple[str, int | None, str | None]:
        return (self.address, self.port, self.service)

    def describe(self) -> str:
        where = f" in {self.service}" if self.service is not None else ""
        return f"{_show(self.address, self.port)}{where}"

    def matches(self, service: str, dest: DestKey) -> bool:
        return (
            dest.address == self.address
            and (self.port is None or dest.port == self.port)
            and (self.service is None or service == self.service)
        )


@dataclass(frozen=True, slots=True)
class InstanceHold:
    """A VRRP instance held as backup after ``haipvs failover``."""

    instance: str
    since: float
    until: float | None  # None: until released
    uid: int

    def active(self, now: float) -> bool:
        return self.until is None or now < self.until


@dataclass(frozen=True, slots=True)
class DirectorDrain:
    """This director taken out of the routers' ECMP by ``haipvs drain-director``."""

    since: float
    uid: int

    def reason(self) -> str:
        return f"haipvs drain-director by uid {self.uid}"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a command did: the new overrides, the ``operator.*`` event and its one line."""

    overrides: Overrides
    event: str
    message: str
    changed: bool


@dataclass(frozen=True, slots=True)
class Overrides:
    servers: tuple[ServerOverride, ...] = ()
    holds: tuple[InstanceHold, ...] = ()
    director: DirectorDrain | None = None  # scale-out mode: withdrawn from the routers

    def server(self, address: str, port: int | None, service: str | None) -> ServerOverride | None:
        for entry in self.servers:
            if entry.target == (address, port, service):
                return entry
        return None

    def hold(self, instance: str) -> InstanceHold | None:
        for entry in self.holds:
            if entry.instance == instance:
                return entry
        return None

    def active_holds(self, now: float) -> dict[str, str]:
        """Held instances -> the reason their priority is held down (VRRP's input)."""
        return {
            hold.instance: f"operator failover by uid {hold.uid}"
            for hold in self.holds
            if hold.active(now)
        }

    def expired(self, now: float) -> tuple[InstanceHold, ...]:
        return tuple(hold for hold in self.holds if not hold.active(now))

    def without_expired(self, now: float) -> Overrides:
        return dataclasses.replace(
            self, holds=tuple(hold for hold in self.holds if hold.active(now))
        )

    def next_expiry(self, now: float) -> float | None:
        ends = [h.until for h in self.holds if h.until is not None and h.until > now]
        return min(ends) if ends else None

    def resolve(
        self, services: Mapping[ServiceKey, tuple[str, Collection[DestKey]]]
    ) -> dict[tuple[ServiceKey, DestKey], AdminView]:
        """The overrides on the running config: (service, real server) -> AdminView.

        ``services``: each virtual server's name and its real servers. Maintenance wins over
        drain when two overrides cover one real server (the stronger action)."""
        admin: dict[tuple[ServiceKey, DestKey], AdminView] = {}
        for key, (name, dests) in services.items():
            for dest in dests:
                for entry in self.servers:
                    if not entry.matches(name, dest):
                        continue
                    current = admin.get((key, dest))
                    if current is not None and current.state is AdminState.MAINTENANCE:
                        continue
                    verb = "drain" if entry.state is AdminState.DRAIN else "maintenance"
                    admin[(key, dest)] = AdminView(
                        entry.state, f"haipvs {verb} {entry.describe()} by uid {entry.uid}"
                    )
        return admin

    def matched(
        self,
        entry: ServerOverride,
        services: Mapping[ServiceKey, tuple[str, Collection[DestKey]]],
    ) -> list[tuple[ServiceKey, DestKey]]:
        return [
            (key, dest)
            for key, (name, dests) in services.items()
            for dest in dests
            if entry.matches(name, dest)
        ]

    # --- persistence --------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "servers": [
                {"address": s.address, "port": s.port, "service": s.service,
                 "state": s.state.value, "since": s.since, "uid": s.uid}
                for s in self.servers
            ],
            "holds": [
                {"instance": h.instance, "since": h.since, "until": h.until, "uid": h.uid}
                for h in self.holds
            ],
            "director": None if self.director is None
            else {"since": self.director.since, "uid": self.director.uid},
        }

    @classmethod
    def from_json(cls, doc: object, where: str = "overrides") -> Overrides:
        if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
            raise OverridesInvalidError(
                f"{where}: not a haipvs overrides document (format {_FORMAT})"
            )
        servers: list[ServerOverride] = []
        holds: list[InstanceHold] = []
        director: DirectorDrain | None = None
        try:
            for index, item in enumerate(doc.get("servers", [])):
                at = f"{where}: servers[{index}]"
                address, port = parse_target(str(item["address"]))
                if port is not None:
                    raise OverridesInvalidError(f"{at}: address carries a port")
                port = item["port"]
                if port is not None and (not isinstance(port, int) or not 0 < port < 65536):
                    raise OverridesInvalidError(f"{at}: port {port!r} is not 1-65535")
                service = item["service"]
                if service is not None and not isinstance(service, str):
                    raise OverridesInvalidError(f"{at}: service must be a name or null")
                servers.append(ServerOverride(
                    address, port, service, AdminState(item["state"]),
                    float(item["since"]), int(item["uid"]),
                ))
            for item in doc.get("holds", []):
                until = item["until"]
                holds.append(InstanceHold(
                    str(item["instance"]), float(item["since"]),
                    None if until is None else float(until), int(item["uid"]),
                ))
            drain = doc.get("director")  # absent in files written before it existed
            if drain is not None:
                if not isinstance(drain, dict):
                    raise OverridesInvalidError(f"{where}: director must be an object or null")
                director = DirectorDrain(float(drain["since"]), int(drain["uid"]))
        except OverridesInvalidError:
            raise
        except (KeyError, TypeError, ValueError, CommandError) as error:
            raise OverridesInvalidError(f"{where}: bad entry: {error}") from None
        return cls(tuple(servers), tuple(holds), director)


# --- commands ---------------------------------------------------------------------------------


def apply_command(
    overrides: Overrides,
    request: Mapping[str, Any],
    *,
    uid: int,
    now: float,
    services: Mapping[ServiceKey, tuple[str, Collection[DestKey]]],
    instances: Collection[str],
    announces: bool = False,
) -> Outcome:
    """One admin command (drain, undrain, maintenance, failover, drain-director,
    undrain-director) against the overrides.

    ``services``: the running config's virtual servers (name, real servers); ``instances``:
    its VRRP instance names; ``announces``: the running config has a ``bgp`` section. Raises
    CommandError for a command that names nothing real.
    """
    command = request.get("command")
    if command in ("drain-director", "undrain-director"):
        return _director_command(overrides, command == "drain-director", uid=uid, now=now,
                                 announces=announces)
    if command in ("drain", "undrain", "maintenance"):
        return _server_command(overrides, request, str(command), uid=uid, now=now,
                               services=services)
    if command == "failover":
        return _failover(overrides, request, uid=uid, now=now, instances=instances)
    raise CommandError(f"unknown command {command!r}")


def _server_command(
    overrides: Overrides,
    request: Mapping[str, Any],
    command: str,
    *,
    uid: int,
    now: float,
    services: Mapping[ServiceKey, tuple[str, Collection[DestKey]]],
) -> Outcome:
    address, port = parse_target(str(request.get("target", "")))
    service = request.get("service")
    if service is not None:
        service = str(service)
        if service not in {name for name, _ in services.values()}:
            raise CommandError(f"no virtual server named {service!r}")
    if command == "maintenance":
        on = request.get("on")
        if not isinstance(on, bool):
            raise CommandError("maintenance needs on or off")
        state, verb = AdminState.MAINTENANCE, "maintenance"
        adding = on
    else:
        state, verb, adding = AdminState.DRAIN, "drain", command == "drain"
    probe = ServerOverride(address, port, service, state, now, uid)
    current = overrides.server(address, port, service)
    others = tuple(s for s in overrides.servers if s.target != probe.target)
    if adding:
        if not overrides.matched(probe, services):
            raise CommandError(f"{probe.describe()} is no real server of the running config")
        if current is not None and current.state is state:
            return Outcome(overrides, f"operator.{verb}", f"{probe.describe()}: already {verb}"
                           f"{'ed' if state is AdminState.DRAIN else ''}", changed=False)
        event = "operator.drain" if state is AdminState.DRAIN else "operator.maintenance.on"
        replaced = "" if current is None else f" (was {current.state.value})"
        return Outcome(dataclasses.replace(overrides, servers=(*others, probe)), event,
                       f"{probe.describe()}: {state.value}{replaced}", changed=True)
    event = "operator.undrain" if state is AdminState.DRAIN else "operator.maintenance.off"
    if current is None or current.state is not state:
        if current is not None:
            raise CommandError(f"{probe.describe()} is in {current.state.value}, not "
                               f"{state.value}")
        return Outcome(overrides, event, f"{probe.describe()}: no {state.value} to undo",
                       changed=False)
    return Outcome(dataclasses.replace(overrides, servers=others), event,
                   f"{probe.describe()}: {state.value} ended", changed=True)


def _director_command(
    overrides: Overrides, drain: bool, *, uid: int, now: float, announces: bool
) -> Outcome:
    current = overrides.director
    if not drain:
        # Allowed in any mode: a drain persisted under a bgp config must be removable
        # after a reload to a VRRP pair.
        if current is None:
            return Outcome(overrides, "operator.director.undrain",
                           "this director is not drained", changed=False)
        return Outcome(dataclasses.replace(overrides, director=None),
                       "operator.director.undrain",
                       "director drain ended: each VIP is announced again once its gates "
                       "hold", changed=True)
    if not announces:
        raise CommandError("this director announces no VIP over BGP (no bgp section in the "
                           "running config): in a VRRP pair, use haipvs failover INSTANCE")
    if current is not None:
        return Outcome(overrides, "operator.director.drain",
                       f"already drained (by uid {current.uid})", changed=False)
    return Outcome(dataclasses.replace(overrides, director=DirectorDrain(now, uid)),
                   "operator.director.drain",
                   "director drained: every VIP withdrawn from the routers, which send "
                   "its flows to the other directors", changed=True)


def _failover(
    overrides: Overrides,
    request: Mapping[str, Any],
    *,
    uid: int,
    now: float,
    instances: Collection[str],
) -> Outcome:
    instance = str(request.get("instance", ""))
    if instance not in instances:
        raise CommandError(f"no VRRP instance named {instance!r}")
    others = tuple(h for h in overrides.holds if h.instance != instance)
    if request.get("release"):
        if overrides.hold(instance) is None:
            return Outcome(overrides, "operator.failover.released",
                           f"{instance}: not held", changed=False)
        return Outcome(dataclasses.replace(overrides, holds=others),
                       "operator.failover.released", f"{instance}: hold released; it may "
                       "preempt again", changed=True)
    hold_for = request.get("hold_for")
    if hold_for is not None and (not isinstance(hold_for, int | float) or hold_for <= 0):
        raise CommandError("--for needs a positive number of seconds")
    until = None if hold_for is None else now + float(hold_for)
    hold = InstanceHold(instance, now, until, uid)
    held = "until released" if until is None else f"for {until - now:g} s"
    return Outcome(dataclasses.replace(overrides, holds=(*others, hold)), "operator.failover",
                   f"{instance}: resigning, held as backup {held}", changed=True)


# --- the file ---------------------------------------------------------------------------------


def state_directory() -> str:
    """systemd's StateDirectory= (``$STATE_DIRECTORY``), else /var/lib/haipvs."""
    return os.environ.get("STATE_DIRECTORY", "").split(":")[0] or "/var/lib/haipvs"


def load(path: str) -> Overrides:
    """The persisted overrides; none if the file does not exist."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return Overrides()
    except OSError as error:
        raise OverridesInvalidError(f"{path}: {error.strerror}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as error:
        raise OverridesInvalidError(f"{path}:{error.lineno}:{error.colno}: {error.msg}") from None
    return Overrides.from_json(doc, path)


def save(path: str, overrides: Overrides) -> None:
    """Write atomically: a temporary file in the same directory, fsync, rename, fsync the dir.

    A crash at any point leaves either the old file or the new one, never half of one."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o750, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".overrides.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(overrides.to_json(), handle, indent=1, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
