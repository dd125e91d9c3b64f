"""``net.ipv4.vs.sloppy_tcp=1``, set by haipvs in scale-out mode and read by the gates.

IPVS schedules a TCP connection only on its SYN: a packet of an established flow that the
routers' ECMP moves to another director (a director died, joined or was drained) arrives
there as a bare ACK, finds no connection entry and is answered with a RST. ``sloppy_tcp``
makes IPVS schedule mid-flow packets too; with mh every director then picks the same real
server (measured in the lab: 2 directors, 200 connections, one killed: 0 broken with it,
94 without). The sysctl exists once the ``ip_vs`` module is loaded (the programmer's first
netlink call) and is per network namespace.

Thin IO (``haipvs.ipvs.sysctl``): one small /proc file read (and written when it is not 1)
per gate evaluation, so an operator or a tool setting it back to 0 withdraws the VIPs at
the next evaluation.
"""

from __future__ import annotations

from haipvs.ipvs.sysctl import IPVS_SYSCTL_DIR, KernelSetting

__all__ = ["SLOPPY_TCP", "SloppyTcp"]

SLOPPY_TCP = f"{IPVS_SYSCTL_DIR}/sloppy_tcp"


class SloppyTcp:
    def __init__(self, path: str = SLOPPY_TCP) -> None:
        self.path = path
        self._setting = KernelSetting(
            path, event="bgp.sloppy_tcp",
            why="scale-out mode: mid-flow packets moved here by the routers must be "
                "scheduled, not reset",
            consequence="every VIP stays withdrawn until it is 1")

    def ensure(self) -> str | None:
        """Set it to 1 if it is not; None once it reads 1, else why it does not (the
        gate's words). One log line per change of that answer."""
        return self._setting.ensure("1")
