"""A script's process starts clean: none of the VRRP process's privileges or limits.

A notify hook or track script is forked from the VRRP thread, so without this it
would inherit what that thread and process hold for VRRP's sake (keepalived resets
the same for its scripts):

- **SCHED_RR** (keepalived ``vrrp_rt_priority``): a looping script would run ahead of
  every normal process. Reset to SCHED_OTHER.
- **RLIMIT_RTTIME** (``vrrp_rlimit_rttime``): back to unlimited; where the hard limit
  cannot be raised (no CAP_SYS_RESOURCE, as under the shipped unit) the soft limit
  goes up to the hard one. Under SCHED_OTHER it counts nothing anyway.
- **Ambient capabilities** (the unit's ``AmbientCapabilities``): cleared, so a script
  run by a non-root daemon does not get CAP_NET_ADMIN.
- **No parent-death signal**: a script whose caller died would run on, unowned. It
  gets SIGKILL when the thread that started it ends (PR_SET_PDEATHSIG).

The checkers package has the same helper (``checkers.spawn``): the two packages may
not import each other, and this is small enough to keep twice.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
from collections.abc import Callable

__all__ = ["script_preexec"]

_PR_SET_PDEATHSIG = 1
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_libc = ctypes.CDLL(None, use_errno=True)


def script_preexec() -> Callable[[], None]:
    """A ``preexec_fn`` for a script's Popen; call it in the parent, just before."""
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
            resource.setrlimit(resource.RLIMIT_RTTIME,
                               (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        except (OSError, ValueError):
            with contextlib.suppress(OSError, ValueError):
                resource.setrlimit(resource.RLIMIT_RTTIME, (hard, hard))

    return reset
