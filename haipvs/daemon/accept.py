"""The one gate a config file passes before the daemon runs it.

``accept_config(path)`` loads, validates and compiles the file, then makes every check
the daemon needs before it may act on it:

- the file itself: refused when users other than its owner may rewrite it (the daemon
  runs what it says as root);
- every script it names (notify hooks, track scripts, exec checks): keepalived's
  ``enable_script_security``, always on (haipvs.security holds the rule);
- the API rules (a non-loopback ``director.api`` needs a token) are config rules and
  come with loading;
- host facts, where they apply: every interface the VRRP side binds or routes through (an
  instance's interface, a VIP's ``interface``, a virtual route's ``dev``) and the sync
  daemon's interface exist on this host.
  A tracked interface may be missing (it counts as down, like keepalived's).

`haipvs check-config`, the daemon's start and every reload (SIGHUP or ``POST /reload``)
call this function, so they cannot disagree: a file check-config accepts, the daemon
accepts, and the reverse. Every refusal is a located ``FILE:LINE: key.path: message``.
``offline=True`` skips what depends on this host (the scripts and the interfaces:
check-config ``--offline``, for a file meant for another machine).

Thin IO: ``os.stat`` of the file and the scripts, ``if_nametoindex`` for interfaces.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from haipvs.config.compile import Compiled, compile_config
from haipvs.config.load import FILE_PATH, ConfigError, ConfigInvalid, LoadedConfig, load_config
from haipvs.config.model import Config, KeyPath, format_key_path
from haipvs.security import config_file_problem, script_commands, unsafe_paths

__all__ = [
    "Accepted",
    "HostFacts",
    "LinuxHost",
    "UnsafeConfigFileError",
    "accept_config",
    "check_file_safety",
    "interface_paths",
    "script_paths",
]


class UnsafeConfigFileError(Exception):
    """The config file may be changed by users other than root: refused."""


def check_file_safety(path: str) -> None:
    """Refuse a config file others may change (haipvs.security, the scripts' rule)."""
    problem = config_file_problem(path)
    if problem is not None:
        raise UnsafeConfigFileError(str(problem))


class HostFacts(Protocol):
    """What the gate asks of the host it runs on."""

    def has_interface(self, name: str) -> bool: ...


class LinuxHost:
    """This host, as the calling process sees it: ``if_nametoindex`` answers for the
    network namespace the process runs in (``/sys/class/net`` shows the namespace that
    mounted it, which ``ip netns exec`` and plain ``setns`` callers do not share)."""

    def has_interface(self, name: str) -> bool:
        try:
            socket.if_nametoindex(name)
        except OSError:
            return False
        return True


@dataclass(frozen=True, slots=True)
class Accepted:
    """A file that passed every check: what the daemon runs."""

    path: str
    loaded: LoadedConfig
    compiled: Compiled

    @property
    def config(self) -> Config:
        return self.loaded.config


def _notify_hooks(notify: object) -> Iterator[tuple[str, tuple[str, ...]]]:
    """Every configured hook of a ``notify`` mapping: each of its argv fields (master...,
    the generic ``any``), so a hook added to the model is checked without a list here."""
    for hook in getattr(type(notify), "model_fields", {}):
        argv = getattr(notify, hook, None)
        if isinstance(argv, tuple) and argv:
            yield hook, argv


def script_paths(config: Config) -> Iterator[tuple[KeyPath, tuple[str, ...]]]:
    """Every argv the daemon would run, with the key path that names it."""
    for index, instance in enumerate(config.vrrp):
        for hook, argv in _notify_hooks(instance.notify):
            yield ("vrrp", index, "notify", hook), argv
        for number, script in enumerate(instance.track.scripts):
            yield ("vrrp", index, "track", "scripts", number, "command"), tuple(script.command)
    for index, group in enumerate(config.sync_groups):
        for hook, argv in _notify_hooks(group.notify):
            yield ("sync_groups", index, "notify", hook), argv
    for index, service in enumerate(config.virtual_servers):
        command = getattr(service.check, "command", None)
        if command:
            yield ("virtual_servers", index, "check", "command"), tuple(command)
        quorum = getattr(service, "quorum", None)
        for hook in ("up", "down"):
            quorum_argv = getattr(quorum, hook, None)
            if quorum_argv:
                yield ("virtual_servers", index, "quorum", hook), tuple(quorum_argv)
        for number, real_server in enumerate(service.real_servers):
            command = getattr(real_server.check, "command", None)
            if command:
                yield (
                    ("virtual_servers", index, "real_servers", number, "check", "command"),
                    tuple(command),
                )


def interface_paths(config: Config) -> Iterator[tuple[KeyPath, str]]:
    """Every interface the daemon binds or configures, with the key path that names it.

    A virtual route's ``dev`` (and each nexthop's) is one: the kernel refuses a route to a
    device it does not have (ENODEV), so the route would fail at every takeover. A VMAC
    macvlan an instance creates itself (``vmac``) is not on the host before the daemon
    runs and is not asked for. A rule's ``iif``/``oif`` is not either: the kernel keeps a
    rule by the device's name and applies it once such a device appears.
    """
    created = {name for instance in config.vrrp if (name := instance.vmac_name) is not None}
    for index, instance in enumerate(config.vrrp):
        yield ("vrrp", index, "interface"), instance.interface
        for number, vip in enumerate(instance.vips):
            if vip.interface is not None:
                yield ("vrrp", index, "vips", number), vip.interface
        for number, route in enumerate(instance.routes):
            if route.dev is not None and route.dev not in created:
                yield ("vrrp", index, "routes", number, "dev"), route.dev
            for hop, nexthop in enumerate(route.nexthops):
                if nexthop.dev is not None and nexthop.dev not in created:
                    yield ("vrrp", index, "routes", number, "nexthops", hop, "dev"), nexthop.dev
    daemon = config.ipvs.sync_daemon
    if daemon is not None:
        yield ("ipvs", "sync_daemon", "interface"), daemon.interface


def accept_config(
    path: str,
    *,
    hostname: str | None = None,
    host: HostFacts | None = None,
    offline: bool = False,
) -> Accepted:
    """Load, compile and check ``path``; raise :class:`ConfigInvalid` with every refusal.

    ``host``: the host facts to check (default: this Linux host); ``offline`` skips them
    and the scripts, which are this host's files too.
    """
    try:
        os.stat(path)
    except OSError as error:
        reason = error.strerror or str(error)
        raise ConfigInvalid([ConfigError(path, 1, FILE_PATH, f"cannot read: {reason}")]) from None
    problem = config_file_problem(path)
    if problem is not None:
        where = "" if problem.path == path else f"{problem.path} "
        message = f"refused: {where}{problem.reason}"
        raise ConfigInvalid([ConfigError(path, 1, FILE_PATH, message)])
    loaded = load_config(path)
    config = loaded.config
    errors: list[ConfigError] = []

    def locate(key_path: KeyPath, message: str) -> ConfigError:
        return ConfigError(path, loaded.line_of(key_path), format_key_path(key_path), message)

    judged: dict[tuple[str, ...], list[str]] = {}
    located: set[str] = set()
    for key_path, argv in () if offline else script_paths(config):
        if argv not in judged:
            judged[argv] = unsafe_paths([argv])
        for message in judged[argv]:
            errors.append(locate(key_path, message))
            located.add(message)
    compiled = compile_config(config, hostname=hostname or socket.gethostname())
    if not offline:
        # Every command the daemon runs, as its parts list them: one a newer part runs
        # that script_paths does not name yet is still refused, at the file's first line.
        everything = [*script_commands(compiled.instances, compiled.checks.values()),
                      *compiled.quorum_argvs]
        for message in unsafe_paths(everything):
            if message not in located:
                errors.append(ConfigError(path, 1, FILE_PATH, message))
    if not offline:
        facts = host if host is not None else LinuxHost()
        for key_path, interface in interface_paths(config):
            if not facts.has_interface(interface):
                errors.append(locate(key_path, f"no interface {interface} on this host"))
    if errors:
        errors.sort(key=lambda error: error.line)
        raise ConfigInvalid(errors, loaded.warnings)
    return Accepted(path, loaded, compiled)
