"""``summarize(config)``: the one-line summary `haipvs check-config` prints
(the command itself is haipvs.daemon.check: it runs the daemon's gate)."""

from __future__ import annotations

from haipvs.config.model import Config

__all__ = ["count", "summarize"]


def count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def summarize(config: Config) -> str:
    """``2 vrrp instances, 3 virtual servers, 7 real servers``."""
    real_servers = sum(len(vs.real_servers) for vs in config.virtual_servers)
    return ", ".join(
        [
            count(len(config.vrrp), "vrrp instance"),
            count(len(config.virtual_servers), "virtual server"),
            count(real_servers, "real server"),
        ]
    )
