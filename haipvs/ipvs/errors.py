"""Errors of the IPVS programmer.

Two kinds, as in h11: ``KernelError`` is what the kernel (or the strict fake) answered to one of
our requests: it is logged, counted and retried on the next sync, never fatal. Building an
invalid value or planning against services we do not own is our own misuse and raises
``ValueError`` from the model or the planner.

Adapters convert pyroute2's ``NetlinkError`` / ``OSError`` into ``KernelError`` at their
boundary (httpcore's map_exceptions idea), so nothing above the port sees pyroute2 types.
"""

from __future__ import annotations

import errno as _errno
import os

__all__ = ["EBUSY", "EEXIST", "EINVAL", "ENOENT", "ESRCH", "IpvsError", "KernelError"]

# The errnos the kernel's IPVS netlink interface returns (net/netfilter/ipvs/ip_vs_ctl.c).
EEXIST = _errno.EEXIST  # add of an existing service or dest
ESRCH = _errno.ESRCH  # del/set/get of a missing service; add of a dest to a missing service
ENOENT = _errno.ENOENT  # del/set of a missing dest; unknown scheduler
EINVAL = _errno.EINVAL  # malformed request (fwmark/IPv6 without netmask, ...)
EBUSY = _errno.EBUSY  # concurrent dump on one netlink socket


class IpvsError(Exception):
    """Base class of the errors this package raises."""


class KernelError(IpvsError):
    """The kernel refused ``op`` on ``key`` with ``errno``.

    ``op`` is the op's name (add_service, update_service, delete_service, add_dest,
    update_dest, delete_dest, dump, set_timeouts, get_timeouts); ``key`` the rendered object
    (``tcp/198.51.100.10:80`` or ``tcp/198.51.100.10:80 10.0.0.11:80``).
    """

    def __init__(self, op: str, key: str, errno: int, message: str = "") -> None:
        self.op = op
        self.key = key
        self.errno = errno
        self.message = message or os.strerror(errno)
        super().__init__(op, key, errno, self.message)

    @property
    def errno_name(self) -> str:
        return _errno.errorcode.get(self.errno, str(self.errno))

    def __str__(self) -> str:
        return f"{self.op} {self.key}: {self.errno_name} ({self.message})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, KernelError):
            return (self.op, self.key, self.errno) == (other.op, other.key, other.errno)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.op, self.key, self.errno))
