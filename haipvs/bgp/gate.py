"""The announce gate: when a director may announce a VIP to its routers (scale-out mode).

In scale-out mode several directors are active at once behind the routers' ECMP; a VIP is
announced over BGP by every director that can serve it, and withdrawn by each one the
moment it cannot. A withdrawn route costs nothing (the routers spread the flows over the
others); a route announced by a director that cannot serve black-holes a share of every
client's connections. So the gate is conservative: all of these must hold.

1. The VIP is a usable address of this director (``haipvs.bgp.local``: on ``lo``; an IPv6
   VIP elsewhere not held tentative by duplicate address detection), or IPVS never sees
   the packets the routers send; and ``need``: every virtual service on the VIP has at
   least ``need`` real servers up (Seesaw's watermarks, vc5's ``need``).
2. The IPVS table is programmed and equal to the desired one (no pending or failed op):
   a director must not attract flows it would schedule from a stale table; and
   ``net.ipv4.vs.sloppy_tcp`` is 1 (haipvs sets it, ``haipvs.bgp.sloppy``): without it a
   flow the routers move here arrives as a bare ACK and is reset.
3. The control loop is not stalled (its lag under ``max_loop_lag``): a stalled daemon
   can neither check nor repair, and may be seconds from being killed by its watchdog.
4. The operator has not drained the director (``haipvs drain-director``, maintenance).
5. ``learn``: the director has been up for ``learn`` seconds, so that connection sync
   from its peers has arrived before flows do (vc5's ``learn``). A warm-up: once a VIP
   has been announced in this daemon's life, ``learn`` no longer holds it back. A reload
   that starts the sync mesh on a serving director restarts the count of what it has
   learnt, but withdrawing then would move its own flows to peers that have not heard of
   them, and a fleet reloaded together would withdraw the VIP everywhere at once.
6. The daemon is not stopping: on SIGTERM every VIP is withdrawn before anything else.

Pure: the inputs carry the time; the result names every blocker, in the order above, so
the log line says why (``bgp.vip.withdrawn vip=198.51.100.10 reason="need 2 real servers
up on tcp/198.51.100.10:80, 1 up"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address

__all__ = ["AnnounceGates", "GateChange", "GateInputs", "GateVerdict", "VipInputs", "verdict"]

IPAddress = IPv4Address | IPv6Address


@dataclass(frozen=True, slots=True)
class VipInputs:
    """What one VIP's gate reads: its services' up counts (service label -> up) and ``need``."""

    up_by_service: Mapping[str, int]
    need: int = 1
    learn: float | None = None  # this VIP's own warm-up; None: the director's
    unusable: str | None = None  # why this host cannot take the VIP's packets; None: it can

    def __post_init__(self) -> None:
        if self.need < 0:
            raise ValueError(f"need must be >= 0, got {self.need}")


@dataclass(frozen=True, slots=True)
class GateInputs:
    """The director-wide conditions, read at ``now`` (seconds on the daemon's clock)."""

    now: float
    started_at: float
    learn: float
    table_in_sync: bool
    loop_lag: float
    max_loop_lag: float
    drained: bool = False
    stopping: bool = False
    sloppy_tcp: str | None = None  # why net.ipv4.vs.sloppy_tcp is not 1; None: it is


@dataclass(frozen=True, slots=True)
class GateVerdict:
    announce: bool
    blockers: tuple[str, ...] = ()

    @property
    def reason(self) -> str:
        return "; ".join(self.blockers) if self.blockers else "all gates hold"


def verdict(vip: VipInputs, director: GateInputs, *, warmed_up: bool = False) -> GateVerdict:
    """Announce only when every gate of the module docstring holds; ``warmed_up``: this
    VIP was announced before in this daemon's life, so ``learn`` is over for it."""
    blockers: list[str] = []
    if vip.unusable is not None:
        blockers.append(vip.unusable)
    if not vip.up_by_service:
        blockers.append("no virtual service on this VIP")
    for service, up in sorted(vip.up_by_service.items()):
        if up < vip.need:
            blockers.append(f"need {vip.need} real servers up on {service}, {up} up")
    if not director.table_in_sync:
        blockers.append("IPVS table not yet equal to the desired one")
    if director.sloppy_tcp is not None:
        blockers.append(
            f"net.ipv4.vs.sloppy_tcp is not 1 ({director.sloppy_tcp}): a flow the routers "
            "move here would arrive as a bare ACK and be reset"
        )
    if director.loop_lag > director.max_loop_lag:
        blockers.append(
            f"control loop stalled ({director.loop_lag:.2f} s > {director.max_loop_lag:g} s)"
        )
    if director.drained:
        blockers.append("director drained by the operator")
    learned = director.now - director.started_at
    learn = director.learn if vip.learn is None else vip.learn
    if learned < learn and not warmed_up:
        blockers.append(f"learning connection state ({learned:.1f} s of {learn:g} s)")
    if director.stopping:
        blockers.append("shutting down")
    return GateVerdict(announce=not blockers, blockers=tuple(blockers))


@dataclass(frozen=True, slots=True)
class GateChange:
    """A VIP whose verdict flipped: what to tell the speaker and the log."""

    vip: IPAddress
    announce: bool
    reason: str


@dataclass
class AnnounceGates:
    """The last verdict per VIP; ``evaluate`` returns only the flips (edge-triggered), so
    the speaker is told once per change and the log has one line per change."""

    _announced: dict[IPAddress, bool] = field(default_factory=dict)
    _why_not: dict[IPAddress, str] = field(default_factory=dict)
    _warmed_up: set[IPAddress] = field(default_factory=set)  # announced once: learn is over

    def evaluate(
        self, vips: Mapping[IPAddress, VipInputs], director: GateInputs
    ) -> list[GateChange]:
        changes: list[GateChange] = []
        for vip in sorted(vips, key=lambda address: (address.version, address)):
            result = verdict(vips[vip], director, warmed_up=vip in self._warmed_up)
            if result.announce:
                self._warmed_up.add(vip)
                self._why_not.pop(vip, None)
            else:
                self._why_not[vip] = result.reason
            if self._announced.get(vip, False) != result.announce:
                self._announced[vip] = result.announce
                changes.append(GateChange(vip, result.announce, result.reason))
        for gone in set(self._why_not) - set(vips):
            del self._why_not[gone]
        for gone in sorted(set(self._announced) - set(vips), key=lambda a: (a.version, a)):
            if self._announced.pop(gone):
                changes.append(GateChange(gone, False, "VIP removed from the config"))
        return changes

    def afresh(self) -> AnnounceGates:
        """Gates that evaluate every VIP again (the speaker was reconfigured and withdrew
        them all) but remember which VIPs are past their warm-up."""
        return AnnounceGates(_warmed_up=set(self._warmed_up))

    def forget(self, vip: IPAddress) -> None:
        """The speaker failed to apply a change: evaluate it again next time."""
        self._announced.pop(vip, None)

    def withheld(self) -> dict[IPAddress, str]:
        """Each VIP the last evaluation kept withdrawn, with every blocker."""
        return dict(self._why_not)

    def announced(self) -> frozenset[IPAddress]:
        return frozenset(vip for vip, on in self._announced.items() if on)
