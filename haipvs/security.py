"""File security: refuse scripts and the config file that others could change.

haipvs runs these commands as root (or with NET_ADMIN). If a user other than root can
rewrite the script, or any directory on its path, that user can run code as the
director. keepalived guards against this with ``enable_script_security``
(``check_script_secure`` / ``check_security`` in keepalived's lib/notify.c); haipvs
applies the same rule always, and refuses the config instead of silently disabling
the script, so on-call sees the problem at load or reload time, not at failover.

One ownership rule (``_walk``) serves both. For a path and (when it differs) its fully
resolved path, every component from ``/`` down is checked with ``lstat`` (a symlink is
judged as a link, then its target is judged through the resolved path):

- every component must be owned by a trusted user: root for scripts; root or the
  daemon's own user for the config file (the daemon may own its config);
- a directory must not be writable by others, nor by a group other than root's
  (gid 0), unless its sticky bit is set *and* it is owned by root (``/tmp``: only
  the owner of an entry may replace it; a sticky directory owned by a user lets that
  user replace every entry, so it protects nothing); a regular file must not be
  writable by others nor by a non-root group;
- every component but the last must be a directory (or a root-owned symlink, as
  ``/bin -> usr/bin``); the last must be a regular file (or a symlink to one),
  executable by someone.

For scripts, the rest of the rule: the last component must be a regular file (or a
symlink to one), executable by someone. A bare command name (no ``/``) is looked up in
the same fixed ``PATH`` the scripts run with (vrrp.notify's and checkers.exec_probe's
minimal environment).

An interpreter runs what its argument names: ``/bin/sh /writable/x.sh`` is as unsafe as
``/writable/x.sh``. Beyond argv[0], every argument that is an absolute path naming an
existing regular file (or a link to one) is judged by the same rule, without the
executable bit (``sh x.sh`` needs none). Any argument, not only the script argument of
interpreters we know: a root-run command that reads a file others may rewrite
(``awk -f``, ``python3 -c ... /x``, a config for the script) is exposed the same way.
Relative arguments are not judged (scripts run in ``/``; write absolute paths).

Thin IO: ``os.lstat``/``os.stat`` only; no logging (the supervisor logs and refuses).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields

__all__ = [
    "SCRIPT_PATH",
    "ScriptProblem",
    "UnsafeScriptError",
    "argument_problem",
    "check_executable_safety",
    "config_file_problem",
    "path_problem",
    "resolve_command",
    "script_commands",
    "unsafe_paths",
]

#: The PATH scripts run with (vrrp/notify.py MINIMAL_ENVIRONMENT, checkers/exec_probe.py).
SCRIPT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_ROOT_UID = 0
_ROOT_GID = 0


@dataclass(frozen=True, slots=True)
class ScriptProblem:
    """Why a command is refused: ``path`` is the offending file or directory."""

    command: str
    path: str
    reason: str

    def __str__(self) -> str:
        if self.path == self.command:
            return f"{self.command}: refused: {self.reason}"
        return f"{self.command}: refused: {self.path} {self.reason}"


class UnsafeScriptError(Exception):
    """A script (or a directory on its path) may be changed by users other than root."""

    def __init__(self, problem: ScriptProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def resolve_command(argv0: str, search_path: str = SCRIPT_PATH) -> str | None:
    """The absolute path exec would run for ``argv0``, or None when nothing matches.

    Like execvp: a name with a ``/`` is taken as a path (made absolute); a bare name
    is the first executable regular file of that name in ``search_path``.
    """
    if not argv0:
        return None
    if "/" in argv0:
        return os.path.abspath(argv0)
    for directory in search_path.split(":"):
        candidate = os.path.join(directory or ".", argv0)
        try:
            info = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode) and info.st_mode & 0o111:
            return os.path.abspath(candidate)
    return None


def _components(path: str) -> list[str]:
    """"/a/b/c" -> ["/", "/a", "/a/b", "/a/b/c"] (path must be absolute and normalised)."""
    parts = [part for part in path.split("/") if part]
    return ["/"] + ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def _writable_by_others(info: os.stat_result) -> str | None:
    mode = info.st_mode
    if mode & stat.S_IWOTH:
        return f"is writable by other users (mode {stat.S_IMODE(mode):04o})"
    if mode & stat.S_IWGRP and info.st_gid != _ROOT_GID:
        # keepalived check_security: group write is fine only for root's group.
        return f"is writable by group {info.st_gid} (mode {stat.S_IMODE(mode):04o})"
    return None


def _walk(
    command: str, path: str, owners: frozenset[int] = frozenset({_ROOT_UID})
) -> ScriptProblem | None:
    components = _components(path)
    for index, component in enumerate(components):
        last = index == len(components) - 1
        try:
            info = os.lstat(component)
        except OSError as error:
            return ScriptProblem(command, component, f"cannot be read: {error.strerror}")
        mode = info.st_mode
        if not last and not (stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
            # A root-owned link (usr-merge: /bin -> usr/bin) is fine here: the
            # resolved path is walked too.
            return ScriptProblem(command, component, "is not a directory")
        if last and not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
            return ScriptProblem(command, component, "is not a regular file")
        if info.st_uid not in owners:
            trusted = "root" if owners == {_ROOT_UID} else (
                "root or uid " + ", ".join(str(uid) for uid in sorted(owners - {_ROOT_UID})))
            return ScriptProblem(command, component,
                                 f"is owned by uid {info.st_uid}, not {trusted}")
        # Only a root-owned sticky directory protects entries its owner does not own.
        sticky_directory = (stat.S_ISDIR(mode) and mode & stat.S_ISVTX
                            and info.st_uid == _ROOT_UID)
        if stat.S_ISLNK(mode) or sticky_directory:
            # A link's own mode is meaningless (its target is checked via realpath);
            # in a sticky directory others cannot replace root's entries.
            continue
        writable = _writable_by_others(info)
        if writable is not None:
            return ScriptProblem(command, component, writable)
    return None


def path_problem(command: str, search_path: str = SCRIPT_PATH) -> ScriptProblem | None:
    """Why ``command`` (argv[0]) must not be run as root, or None when it is safe."""
    path = resolve_command(command, search_path)
    if path is None:
        return ScriptProblem(command, command, "not found in PATH " + search_path)
    problem = _file_problem(command, path)
    if problem is not None:
        return problem
    real = os.path.realpath(path)
    try:
        info = os.stat(real)
    except OSError as error:
        return ScriptProblem(command, real, f"cannot be read: {error.strerror}")
    if not stat.S_ISREG(info.st_mode):
        return ScriptProblem(command, real, "is not a regular file")
    if not info.st_mode & 0o111:
        return ScriptProblem(command, real, "is not executable")
    return None


def _file_problem(
    command: str, path: str, owners: frozenset[int] = frozenset({_ROOT_UID})
) -> ScriptProblem | None:
    """The ownership rule for ``path`` and its resolved target (see the module header)."""
    path = os.path.abspath(path)
    problem = _walk(command, path, owners)
    if problem is not None:
        return problem
    real = os.path.realpath(path)
    if real != path:
        return _walk(command, real, owners)
    return None


def config_file_problem(path: str) -> ScriptProblem | None:
    """Why the config file must not be trusted, or None: owner root or the daemon's user,
    no other writer, every directory above it likewise (see the module header)."""
    problem = _file_problem(path, path, frozenset({_ROOT_UID, os.geteuid()}))
    if problem is not None:
        return problem
    if not stat.S_ISREG(os.stat(path).st_mode):
        return ScriptProblem(path, path, "is not a regular file")
    return None


def argument_problem(command: str, argument: str) -> ScriptProblem | None:
    """Why a script argument naming a file others may rewrite is refused, or None.

    Only absolute paths to existing regular files are judged (see the module header).
    """
    if not argument.startswith("/"):
        return None
    try:
        if not stat.S_ISREG(os.stat(argument).st_mode):
            return None
    except OSError:
        return None
    return _file_problem(command, argument)


def check_executable_safety(path: str, search_path: str = SCRIPT_PATH) -> None:
    """Raise :class:`UnsafeScriptError` unless ``path`` is safe to run as root."""
    problem = path_problem(path, search_path)
    if problem is not None:
        raise UnsafeScriptError(problem)


def unsafe_paths(
    argv_list: Iterable[Sequence[str]], search_path: str = SCRIPT_PATH
) -> list[str]:
    """One message per refused command among ``argv_list`` (each an argv), in order,
    each command judged once; empty when every command is safe."""
    messages: list[str] = []
    seen: set[tuple[str, ...]] = set()
    for argv in argv_list:
        if not argv or tuple(argv) in seen:
            continue
        seen.add(tuple(argv))
        problem = path_problem(argv[0], search_path)
        for argument in argv[1:]:
            problem = problem or argument_problem(argv[0], argument)
        if problem is not None and str(problem) not in messages:
            messages.append(str(problem))
    return messages


def script_commands(instances: Iterable[object], checks: Iterable[object]) -> list[tuple[str, ...]]:
    """Every argv the daemon would run: VRRP notify hooks (every argv field of the
    settings: master/backup/fault/stop and the generic one),
    track scripts, and exec checks. ``instances`` are vrrp.InstanceSettings and
    ``checks`` are checkers specs (or (target, spec) pairs, as Compiled.checks holds).
    Duck-typed so this module stays free of the packages' imports."""
    commands: list[tuple[str, ...]] = []
    for instance in instances:
        for notify in (
            getattr(instance, "notify", None),
            getattr(instance, "sync_group_notify", None),
        ):
            if notify is None:
                continue
            for hook in fields(notify):
                argv = getattr(notify, hook.name, None)
                if isinstance(argv, tuple) and argv:
                    commands.append(argv)
        for script in getattr(instance, "track_scripts", ()):
            commands.append(tuple(script.command))
    for check in checks:
        spec = check[1] if isinstance(check, tuple) else check
        command = getattr(spec, "command", None)
        if command:
            commands.append(tuple(command))
    return commands
