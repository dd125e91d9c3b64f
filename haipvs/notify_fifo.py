"""keepalived's notify FIFO: one ordered stream of state changes, in keepalived's line format.

Tools written for keepalived read ``notify_fifo`` (its sample_notify_fifo.sh, monitoring
plugins) line by line; haipvs writes the same lines to the same kind of FIFO, so they
keep working after a migration:

    INSTANCE "VI_1" MASTER 150          a VRRP instance's new state and its priority
    GROUP "G1" BACKUP                   a sync group's new state
    VS [198.51.100.10]:tcp:80 DOWN      a virtual service lost (or regained) its quorum
    RS [10.0.0.11]:tcp:80 [198.51.100.10]:tcp:80 UP   a real server's health

Ordering: the daemon's supervisor is the one writer (VRRP transitions reach it from the
VRRP process, health changes from the checker pool), so the lines are in the order the
daemon learnt of the changes.

Never block, never die: the FIFO is opened non-blocking for writing. With no reader
(ENXIO) or a full pipe (EAGAIN) a line is dropped and counted, and the next line tries
again; a line is at most PIPE_BUF bytes, so it is written whole or not at all (pipe(7)).
Formatting is pure; the writer is a thin adapter.
"""

from __future__ import annotations

import errno
import os
import select
import stat
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address, ip_address

from haipvs.ipvs.model import DestKey, ServiceKey

__all__ = [
    "NotifyFifo",
    "endpoint",
    "group_line",
    "instance_line",
    "real_server_endpoint",
    "rs_line",
    "service_endpoint",
    "vs_line",
]

IPAddress = IPv4Address | IPv6Address


def _quoted(name: str) -> str:
    # keepalived quotes instance and group names; a name cannot hold a quote (config rule).
    return '"' + name.replace('"', "") + '"'


def endpoint(address: IPAddress | None, protocol: str, port: int, fwmark: int = 0) -> str:
    """keepalived's service text: ``[198.51.100.10]:tcp:80``, ``FWM:7`` for a fwmark."""
    if fwmark:
        return f"FWM:{fwmark}"
    return f"[{address}]:{protocol}:{port}"


def service_endpoint(key: ServiceKey) -> str:
    """``[198.51.100.10]:tcp:80`` (``FWM:7``) for an IPVS service key."""
    if key.fwmark:
        return endpoint(None, "", 0, fwmark=key.fwmark)
    assert key.protocol is not None and key.address is not None
    return endpoint(ip_address(key.address), key.protocol.name.lower(), key.port)


def real_server_endpoint(service: ServiceKey, dest: DestKey) -> str:
    """A real server in keepalived's form, with its service's protocol."""
    protocol = "tcp" if service.protocol is None else service.protocol.name.lower()
    return endpoint(ip_address(dest.address), protocol, dest.port)


def instance_line(name: str, state: str, priority: int) -> str:
    return f"INSTANCE {_quoted(name)} {state.upper()} {priority}\n"


def group_line(name: str, state: str) -> str:
    return f"GROUP {_quoted(name)} {state.upper()}\n"


def vs_line(service: str, up: bool) -> str:
    return f"VS {service} {'UP' if up else 'DOWN'}\n"


def rs_line(real_server: str, service: str, up: bool) -> str:
    return f"RS {real_server} {service} {'UP' if up else 'DOWN'}\n"


class NotifyFifo:
    """Writes lines to the FIFO at ``path`` (made, mode 0600, if absent)."""

    def __init__(self, path: str, *, on_drop: Callable[[str, int], None] | None = None) -> None:
        self.path = path
        self._fd: int | None = None
        self._on_drop = on_drop
        self.written = 0
        self.dropped = 0

    def ensure(self) -> None:
        """Make the FIFO if it does not exist; refuse a path that is something else."""
        try:
            mode = os.lstat(self.path).st_mode
        except FileNotFoundError:
            os.mkfifo(self.path, 0o600)
            return
        if not stat.S_ISFIFO(mode):
            raise OSError(errno.EEXIST, f"{self.path} exists and is not a FIFO")

    def _open(self) -> int | None:
        try:
            return os.open(self.path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno in (errno.ENXIO, errno.ENOENT):
                return None  # nobody reads yet (or the FIFO was removed): drop
            raise

    def write(self, line: str) -> bool:
        """Write one line whole, or drop it; True when it was written."""
        data = line.encode()
        if len(data) > select.PIPE_BUF:
            data = data[: select.PIPE_BUF - 1] + b"\n"
        if self._fd is None:
            self._fd = self._open()
        if self._fd is None:
            return self._dropped(line, errno.ENXIO)
        try:
            os.write(self._fd, data)
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                # The reader went away: reopen on the next line.
                self.close()
            if exc.errno not in (errno.EAGAIN, errno.EPIPE):
                raise
            return self._dropped(line, exc.errno)
        self.written += 1
        return True

    def _dropped(self, line: str, code: int) -> bool:
        self.dropped += 1
        if self._on_drop is not None:
            self._on_drop(line, code)
        return False

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
