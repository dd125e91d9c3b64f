"""The compiled scale-out settings: what the BGP part needs, free of the YAML models (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from haipvs.bgp.snippet import BirdSettings

__all__ = ["ScaleOutPlan", "VipPlan"]

IPAddress = IPv4Address | IPv6Address


@dataclass(frozen=True, slots=True)
class VipPlan:
    """One announced VIP: its gate's ``need`` and ``learn``, and the services on it
    (their ``/status`` keys, ``tcp/198.51.100.10:80``)."""

    need: int
    learn: float
    services: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ScaleOutPlan:
    bird: BirdSettings
    control_socket: str
    config_file: str
    max_loop_lag: float
    vips: Mapping[IPAddress, VipPlan]
    withdraw_grace: float = 1.0
