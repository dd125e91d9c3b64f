"""What a reload changes: old config + new config -> added / removed / changed / unchanged.

Rule 1: every object is compared by its identity key, never by its position in the file
(keepalived's ``clear_diff_services`` / ``migrate_checkers``, seesaw's ``serviceKey``):

- VRRP instance: (interface, vrid, family); renaming it is a change, not a new instance.
- sync group: its name.
- virtual service: (protocol, vip, port), or (family, fwmark).
- real server: (service key, address, port), with the port the kernel sees.
- check: (real server key, the check's settings). A check whose settings changed is a new
  check; one whose settings are equal keeps its running state (rise/fall counters), so a
  reload does not make servers flap.

Rule 2: each kind compares only its own settings. A service whose real servers changed is
not "changed" itself (its real servers are), and a real server whose check changed is not
changed either (its check is). So each change reaches exactly one owner on reload.

Pure: no IO, no clock, no logging.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import Generic, TypeVar

from checkers.spec import endpoint_label
from haipvs.config.model import (
    Check,
    Config,
    Director,
    Family,
    IpvsSettings,
    Protocol,
    RealServer,
    SyncGroup,
    VirtualServer,
    VrrpInstance,
)
from haipvs.ipvs.model import service_label

__all__ = [
    "Changed",
    "CheckKey",
    "ConfigDelta",
    "InstanceKey",
    "KindDelta",
    "RealServerKey",
    "ServiceKey",
    "check_key",
    "diff_configs",
    "instance_key",
    "real_server_key",
    "service_key",
]

K = TypeVar("K")
V = TypeVar("V")


class _CachedHash:
    """Keys are hashed many times per diff (10,000 real servers: ~1M hashes of addresses and
    models); each key computes its hash once, at construction."""

    __slots__ = ()

    def _fields(self) -> tuple[object, ...]:
        raise NotImplementedError

    def _remember_hash(self) -> None:
        object.__setattr__(self, "_hash", hash(self._fields()))

    def __hash__(self) -> int:
        return self._hash  # type: ignore[attr-defined,no-any-return]


@dataclass(frozen=True, slots=True, order=True)
class InstanceKey(_CachedHash):
    interface: str
    vrid: int
    family: Family
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._remember_hash()

    def _fields(self) -> tuple[object, ...]:
        return (self.interface, self.vrid, self.family)

    __hash__ = _CachedHash.__hash__

    def __str__(self) -> str:
        return f"{self.interface}/{self.vrid}/{self.family.value}"


@dataclass(frozen=True, slots=True)
class ServiceKey(_CachedHash):
    """(protocol, vip, port) for an address service; (family, fwmark) for a fwmark service."""

    family: Family
    protocol: Protocol | None = None
    vip: IPv4Address | IPv6Address | None = None
    port: int | None = None
    fwmark: int | None = None
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._remember_hash()

    def _fields(self) -> tuple[object, ...]:
        return (self.family, self.protocol, self.vip, self.port, self.fwmark)

    __hash__ = _CachedHash.__hash__

    def __str__(self) -> str:
        # The `vs` log key, from its one renderer.
        return service_label(
            None if self.protocol is None else self.protocol.value,
            self.vip,
            self.port,
            self.fwmark,
            ipv6=self.family is Family.IPV6,
        )


@dataclass(frozen=True, slots=True)
class RealServerKey(_CachedHash):
    service: ServiceKey
    address: IPv4Address | IPv6Address
    port: int
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._remember_hash()

    def _fields(self) -> tuple[object, ...]:
        return (self.service, self.address, self.port)

    __hash__ = _CachedHash.__hash__

    @property
    def rs(self) -> str:
        """The ``rs`` log key: ``10.0.0.11:80``, ``[2001:db8::11]:80``."""
        return endpoint_label(self.address, self.port)

    def __str__(self) -> str:
        return f"{self.service}/{self.rs}"


@dataclass(frozen=True, slots=True)
class CheckKey(_CachedHash):
    real_server: RealServerKey
    check: Check
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._remember_hash()

    def _fields(self) -> tuple[object, ...]:
        return (self.real_server, self.check)

    __hash__ = _CachedHash.__hash__

    def __str__(self) -> str:
        return f"{self.real_server}/{self.check.type}"


@dataclass(frozen=True, slots=True)
class Changed(Generic[V]):
    old: V
    new: V

    @property
    def fields(self) -> tuple[str, ...]:
        """The top-level keys whose values differ, in model order (for people: logs and
        `haipvs plan`). What a reload does with a VRRP instance is not decided here but by
        the one rule the VRRP side executes, ``vrrp.instance_reload`` (through
        haipvs.daemon.reload.plan_reload)."""
        names = getattr(type(self.new), "model_fields", None)
        if names is None:
            return ()
        return tuple(name for name in names if getattr(self.old, name) != getattr(self.new, name))


@dataclass(frozen=True, slots=True)
class KindDelta(Generic[K, V]):
    """One kind of object: the keys on each side, with their values.

    ``added`` and ``unchanged`` hold the new values, ``removed`` the old ones, ``changed``
    both. Mappings keep the file's order (the old file's for ``removed``).
    """

    added: Mapping[K, V]
    removed: Mapping[K, V]
    changed: Mapping[K, Changed[V]]
    unchanged: Mapping[K, V]

    @property
    def is_empty(self) -> bool:
        """True when nothing was added, removed or changed."""
        return not (self.added or self.removed or self.changed)


@dataclass(frozen=True, slots=True)
class ConfigDelta:
    director: Changed[Director] | None
    vrrp_instances: KindDelta[InstanceKey, VrrpInstance]
    sync_groups: KindDelta[str, SyncGroup]
    virtual_services: KindDelta[ServiceKey, VirtualServer]
    real_servers: KindDelta[RealServerKey, RealServer]
    checks: KindDelta[CheckKey, Check]
    ipvs: Changed[IpvsSettings] | None

    @property
    def is_empty(self) -> bool:
        return (
            self.director is None
            and self.ipvs is None
            and self.vrrp_instances.is_empty
            and self.sync_groups.is_empty
            and self.virtual_services.is_empty
            and self.real_servers.is_empty
            and self.checks.is_empty
        )


def instance_key(instance: VrrpInstance) -> InstanceKey:
    return InstanceKey(instance.interface, instance.vrid, instance.family)


def service_key(virtual_server: VirtualServer) -> ServiceKey:
    family = virtual_server.service_family
    if virtual_server.fwmark is not None:
        return ServiceKey(family=family, fwmark=virtual_server.fwmark)
    if virtual_server.vip is None or virtual_server.port is None:
        raise ValueError(f"virtual server {virtual_server.name!r} has neither vip+port nor fwmark")
    return ServiceKey(
        family=family,
        protocol=virtual_server.protocol,
        vip=virtual_server.vip,
        port=virtual_server.port,
    )


def real_server_key(virtual_server: VirtualServer, real_server: RealServer) -> RealServerKey:
    return RealServerKey(
        service_key(virtual_server),
        real_server.address,
        virtual_server.real_server_port(real_server),
    )


def check_key(virtual_server: VirtualServer, real_server: RealServer) -> CheckKey | None:
    """The key of the check that decides this real server's health; None: no check."""
    check = virtual_server.real_server_check(real_server)
    if check is None:
        return None
    return CheckKey(real_server_key(virtual_server, real_server), check)


def diff_configs(old: Config, new: Config) -> ConfigDelta:
    """Compare two validated configs by identity key; ``diff_configs(c, c).is_empty``."""
    return ConfigDelta(
        director=None if old.director == new.director else Changed(old.director, new.director),
        vrrp_instances=_diff(_keyed(old.vrrp, instance_key), _keyed(new.vrrp, instance_key)),
        sync_groups=_diff(
            _keyed(old.sync_groups, _group_name), _keyed(new.sync_groups, _group_name)
        ),
        virtual_services=_diff(
            _keyed(old.virtual_servers, service_key),
            _keyed(new.virtual_servers, service_key),
            same=_same_service,
        ),
        real_servers=_diff(_real_servers(old), _real_servers(new)),
        checks=_diff(_checks(old), _checks(new)),
        ipvs=None if old.ipvs == new.ipvs else Changed(old.ipvs, new.ipvs),
    )


def _group_name(group: SyncGroup) -> str:
    return group.name


def _keyed(items: Iterable[V], key: Callable[[V], K]) -> dict[K, V]:
    result: dict[K, V] = {}
    for item in items:
        identity = key(item)
        if identity in result:
            # A validated config has unique keys; two equal keys are the caller's bug.
            raise ValueError(f"two objects share the key {identity}")
        result[identity] = item
    return result


def _service_settings(virtual_server: VirtualServer) -> VirtualServer:
    # Real servers and checks are their own kinds (rule 2).
    return virtual_server.model_copy(update={"real_servers": (), "check": None})


def _same_service(old: VirtualServer, new: VirtualServer) -> bool:
    return _service_settings(old) == _service_settings(new)


def _real_servers(config: Config) -> dict[RealServerKey, RealServer]:
    result: dict[RealServerKey, RealServer] = {}
    for virtual_server in config.virtual_servers:
        service = service_key(virtual_server)
        for real_server in virtual_server.real_servers:
            port = virtual_server.real_server_port(real_server)
            key = RealServerKey(service, real_server.address, port)
            if key in result:
                raise ValueError(f"two real servers share the key {key}")
            # Compared as the kernel sees them: the port and forwarding they get from the
            # service are resolved, and the check is left to its own kind.
            result[key] = real_server.model_copy(
                update={
                    "check": None,
                    "port": port,
                    "forwarding": virtual_server.real_server_forwarding(real_server),
                }
            )
    return result


def _checks(config: Config) -> dict[CheckKey, Check]:
    result: dict[CheckKey, Check] = {}
    for virtual_server in config.virtual_servers:
        service = service_key(virtual_server)
        for real_server in virtual_server.real_servers:
            check = virtual_server.real_server_check(real_server)
            if check is not None:
                port = virtual_server.real_server_port(real_server)
                result[CheckKey(RealServerKey(service, real_server.address, port), check)] = check
    return result


def _equal(old: V, new: V) -> bool:
    return old == new


def _diff(
    old: Mapping[K, V], new: Mapping[K, V], same: Callable[[V, V], bool] = _equal
) -> KindDelta[K, V]:
    added: dict[K, V] = {}
    changed: dict[K, Changed[V]] = {}
    unchanged: dict[K, V] = {}
    for key, value in new.items():
        if key not in old:
            added[key] = value
        elif same(old[key], value):
            unchanged[key] = value
        else:
            changed[key] = Changed(old[key], value)
    removed = {key: value for key, value in old.items() if key not in new}
    return KindDelta(added=added, removed=removed, changed=changed, unchanged=unchanged)
