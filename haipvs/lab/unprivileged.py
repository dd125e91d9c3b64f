"""Run this checkout's code the way the packaged unit runs the daemon: as an
unprivileged user with a given set of capabilities and no new privileges.

The checkout, its virtualenv and even the interpreter may sit where that user cannot
go: root's home is 0700 on Debian. So the command runs in a mount namespace of its
own (unshare(1)), in which the code's directory, the virtualenv and (when the user
cannot reach it) the interpreter's installation are bind-mounted below a directory
that anyone may traverse; the command then runs from there, through setpriv(1).

The interpreter is started by its real path (a virtualenv's bin/python is a symlink
to an absolute path, which may lead back into the unreachable directory); the code
and the virtualenv's site-packages come first on PYTHONPATH. The host's directories
keep their owners and modes, and the bind mounts vanish with the command (natively
as in the lab guest, whose kernel is its own).
"""

from __future__ import annotations

import os
import site
import stat
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import haipvs

__all__ = ["NOBODY", "UnprivilegedCommand", "unprivileged_python"]

NOBODY = 65534

# This checkout (or site-packages): the directory that holds haipvs, vrrp and checkers.
CODE_ROOT = Path(haipvs.__file__).resolve().parents[1]


@dataclass(frozen=True, slots=True)
class UnprivilegedCommand:
    argv: list[str]
    env: dict[str, str]
    # host directory -> where the command sees it
    views: dict[Path, Path]


def unprivileged_python(
    args: Sequence[str],
    *,
    view_dir: Path,
    capabilities: Sequence[str],
    uid: int = NOBODY,
    gid: int = NOBODY,
    env: dict[str, str] | None = None,
) -> UnprivilegedCommand:
    """``python ARGS`` with this interpreter and this code, as ``uid``:``gid`` with only
    ``capabilities`` (names as in capabilities(7), e.g. ``CAP_NET_ADMIN``) in the
    inheritable, ambient and bounding sets and ``no_new_privs`` set.

    ``view_dir`` is an empty directory the user can traverse (its parents too); the
    mount points are made in it. Run the returned argv as root.
    """
    view_dir.mkdir(parents=True, exist_ok=True)
    view_dir.chmod(0o755)
    interpreter = Path(os.path.realpath(sys.executable))
    needed = [CODE_ROOT, Path(sys.prefix)]
    if not reachable_by_anyone(interpreter):
        needed.append(Path(sys.base_prefix).resolve())
    sources: list[Path] = []
    for candidate in needed:
        if not any(candidate.is_relative_to(source) for source in sources):
            sources = [s for s in sources if not s.is_relative_to(candidate)]
            sources.append(candidate)
    views: dict[Path, Path] = {}
    mounts: list[str] = []
    for index, source in enumerate(sources):
        target = view_dir / str(index)
        target.mkdir(exist_ok=True)
        target.chmod(0o755)
        views[source] = target
        mounts += [str(source), str(target)]

    def seen_as(path: Path) -> str:
        for source, target in views.items():
            if path.is_relative_to(source):
                return str(target / path.relative_to(source))
        return str(path)

    python = seen_as(interpreter)
    packages = (
        [seen_as(Path(path)) for path in site.getsitepackages()]
        if sys.prefix != sys.base_prefix else []
    )
    environment = dict(os.environ if env is None else env)
    base = Path(sys.base_prefix).resolve()
    if base in views:
        # An interpreter built with a shared libpython finds it by an absolute RPATH,
        # which is unreachable too: the loader tries LD_LIBRARY_PATH next.
        environment["LD_LIBRARY_PATH"] = os.pathsep.join(
            part for part in (seen_as(base / "lib"), environment.get("LD_LIBRARY_PATH", ""))
            if part
        )
    environment["PYTHONPATH"] = os.pathsep.join(
        part
        for part in (seen_as(CODE_ROOT), *packages, environment.get("PYTHONPATH", ""))
        if part
    )
    caps = ",".join(
        ["-all", *(f"+{name.lower().removeprefix('cap_')}" for name in capabilities)]
    )
    # The working directory too, when it is in a view (python -m puts it on the path).
    cwd = seen_as(Path.cwd())
    bind_then_exec = (
        'while [ "$1" != "--" ]; do mount --bind "$1" "$2" || exit 126; shift 2; done; '
        'shift; cd "$1" || exit 126; shift; exec "$@"'
    )
    argv = [
        "unshare", "--mount", "--propagation", "private", "--",
        "sh", "-c", bind_then_exec, "unprivileged-view", *mounts, "--", cwd,
        "setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
        f"--inh-caps={caps}", f"--ambient-caps={caps}", f"--bounding-set={caps}",
        "--no-new-privs",
        python, *args,
    ]
    return UnprivilegedCommand(argv, environment, views)


def reachable_by_anyone(path: Path) -> bool:
    """True when every directory above ``path`` may be traversed by any user."""
    for parent in path.parents:
        try:
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
    return True
