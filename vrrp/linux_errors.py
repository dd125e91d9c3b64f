"""Errors and device lookups shared by the VRRP process's Linux adapters (``vrrp.linux``
and ``vrrp.linux_routing``): the one rule that turns a kernel error into ``VrrpIoError``."""

from __future__ import annotations

import errno
import socket
import sys

from vrrp.ports import VrrpIoError

__all__ = ["IFF_UP", "ifindex", "io_error"]

IFF_UP = 0x1  # include/uapi/linux/if.h


def io_error(op: str, exc: BaseException) -> VrrpIoError:
    """Map the kernel's error onto ours (op + errno), keeping the message."""
    # pyroute2 is imported only by the adapters that use it (the link monitor): an error
    # can only be its NetlinkError once it was.
    netlink = sys.modules.get("pyroute2.netlink.exceptions")
    if netlink is not None and isinstance(exc, netlink.NetlinkError):
        return VrrpIoError(op, int(exc.code), str(exc))
    if isinstance(exc, OSError):
        return VrrpIoError(op, exc.errno or errno.EIO, exc.strerror or str(exc))
    return VrrpIoError(op, errno.EIO, repr(exc))


def ifindex(interface: str) -> int:
    try:
        return socket.if_nametoindex(interface)
    except OSError as exc:
        # if_nametoindex() reports a missing device without an errno.
        raise VrrpIoError(f"ifindex {interface}", exc.errno or errno.ENODEV, str(exc)) from exc
