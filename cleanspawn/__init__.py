"""A script's process starts clean: none of its caller's privileges or limits.

Exec checks (checkers), notify hooks and track scripts (vrrp) are started from a
daemon, so without this they would inherit what that daemon holds (keepalived
resets the same for its scripts):

- **A real-time policy** (keepalived ``vrrp_rt_priority``; the VRRP thread runs
  SCHED_RR): a looping script would run ahead of every normal process. SCHED_OTHER.
- **RLIMIT_RTTIME** (keepalived ``vrrp_rlimit_rttime``): back to unlimited; where the
  hard limit cannot be raised (no CAP_SYS_RESOURCE, as under the shipped unit) the
  soft limit goes up to the hard one. Under SCHED_OTHER it counts nothing anyway.
- **Ambient capabilities** (the unit's ``AmbientCapabilities``): cleared, so a script
  run by a non-root daemon does not get CAP_NET_ADMIN.
- **A parent-death signal**: a script whose caller died would run on, unowned. It
  gets SIGKILL when the thread that started it ends (PR_SET_PDEATHSIG).

Two ways to get there, chosen per spawn by :func:`clean_spawn`:

- **Inherit** (about 4.5 ms natively from a 120 MB daemon): when the calling thread
  is already SCHED_OTHER and its RLIMIT_RTTIME soft limit is already unlimited (the
  daemon's main process, where exec checks run: only the VRRP process is real-time),
  the child inherits exactly what the reset would give, so no Python has to run in
  it and ``subprocess`` can vfork instead of copying the daemon. What needs the child
  itself is done by two small programs exec'd in it before the script (same pid):
  util-linux ``setpriv --ambient-caps -all --pdeathsig KILL``, then ``/bin/sh``
  checking that its parent is still the caller (else exit 127: the caller died
  before the signal was armed) and exec'ing the script (same argv, PATH searched in
  the script's environment as before).
- **Reset** (about 7.6 ms: a full fork of the daemon, Python in the child): otherwise
  (a real-time thread, a finite RLIMIT_RTTIME, no usable setpriv, or a command that
  does not resolve, so that ``Popen`` reports the exec error itself), a ``preexec_fn``
  resets all four in the forked child.

The vrrp and checkers packages may not import each other: both import this one,
which imports neither.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import resource
import shutil
import signal
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = [
    "PARENT_CHECK",
    "SETPRIV_OPTIONS",
    "CleanSpawn",
    "clean_spawn",
    "inherits_clean",
    "script_preexec",
]

_PR_SET_PDEATHSIG = 1
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
# Where setpriv is looked for: the system's own directories, never the script's PATH.
_SYSTEM_PATH = "/usr/bin:/bin:/usr/sbin:/sbin"
SETPRIV_OPTIONS = ("--ambient-caps", "-all", "--pdeathsig", "KILL", "--")
# Run by sh after setpriv armed the signal: "$1" is the caller's pid, the rest the script.
PARENT_CHECK = 'test "$PPID" = "$1" || exit 127; shift; exec "$@"'


@dataclass(frozen=True, slots=True)
class CleanSpawn:
    """What to hand to ``Popen`` / ``create_subprocess_exec`` for one script."""

    argv: tuple[str, ...]
    # None on the inherit path (subprocess may then vfork)
    preexec_fn: Callable[[], None] | None


def inherits_clean(policy: int, rttime_soft: int) -> bool:
    """Would a child of this thread start as the reset leaves it (SCHED_OTHER, no
    RLIMIT_RTTIME)? The two are inherited through fork and exec unchanged."""
    return policy == os.SCHED_OTHER and rttime_soft == resource.RLIM_INFINITY


@functools.cache
def _wrapper() -> tuple[str, ...] | None:
    """The argv prefix of the inherit path, up to the caller's pid; None if it does not
    work here (checked once by running it)."""
    setpriv = shutil.which("setpriv", path=_SYSTEM_PATH)
    sh = shutil.which("sh", path=_SYSTEM_PATH)
    true = shutil.which("true", path=_SYSTEM_PATH)
    if setpriv is None or sh is None or true is None:
        return None
    prefix = (setpriv, *SETPRIV_OPTIONS, sh, "-c", PARENT_CHECK, "cleanspawn")
    try:
        done = subprocess.run(
            [*prefix, str(os.getpid()), true],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    # An older setpriv (before util-linux 2.33: no --pdeathsig) exits non-zero.
    return prefix if done.returncode == 0 else None


def clean_spawn(argv: Sequence[str], path: str) -> CleanSpawn:
    """How to start ``argv`` clean from the calling thread (see the module header).

    ``path`` is the PATH the script runs with (its ``env``): a command that does not
    resolve in it takes the reset path, so that ``Popen`` raises the exec error
    (FileNotFoundError, PermissionError) in the caller as before.
    """
    command = tuple(argv)
    wrapper = _wrapper()
    try:
        policy = os.sched_getscheduler(0)
    except OSError:
        policy = -1
    rttime_soft, _ = resource.getrlimit(resource.RLIMIT_RTTIME)
    if (
        wrapper is not None
        and command
        and inherits_clean(policy, rttime_soft)
        and shutil.which(command[0], path=path) is not None
    ):
        return CleanSpawn((*wrapper, str(os.getpid()), *command), None)
    return CleanSpawn(command, script_preexec())


_libc = ctypes.CDLL(None, use_errno=True)


def script_preexec() -> Callable[[], None]:
    """A ``preexec_fn`` that resets all four; call it in the parent, just before."""
    parent = os.getpid()
    normal = os.sched_param(0)
    _, hard = resource.getrlimit(resource.RLIMIT_RTTIME)

    def reset() -> None:
        # In the forked child, before exec: syscalls only (other threads' locks may be
        # held at fork time), every failure ignored (the script runs regardless).
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the prctl took effect
            os._exit(127)
        _libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_OTHER, normal)
        try:
            resource.setrlimit(
                resource.RLIMIT_RTTIME, (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
            )
        except (OSError, ValueError):
            with contextlib.suppress(OSError, ValueError):
                resource.setrlimit(resource.RLIMIT_RTTIME, (hard, hard))

    return reset
