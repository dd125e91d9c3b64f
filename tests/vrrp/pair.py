"""A pure, deterministic fake segment joining VrrpMachines (h11 ConnectionPair, aioquic roundtrip).

Every advert really goes through the codec: the sender's ``SendAdvert`` becomes
bytes with :func:`encode_advert` (source = the machine's address, destination =
the multicast group or each unicast peer) and the receiver gets
:func:`decode_advert` of those bytes. Time is a number the test moves with
:meth:`Segment.run_until`; nothing sleeps and no event loop exists.

The segment plays the runner's part: it calls ``on_timer`` at exactly the
deadline each machine reports, and executes actions in order (VIPs and
announcements are recorded per node so tests can assert "exactly one holds the VIP").
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, ip_address

from vrrp.errors import MalformedAdvert
from vrrp.machine import (
    Action,
    AdvertDropped,
    Announce,
    InstallVips,
    RemoveVips,
    SendAdvert,
    State,
    Transition,
    VrrpMachine,
)
from vrrp.packet import (
    VRRP_MULTICAST_V4,
    VRRP_MULTICAST_V6,
    Advertisement,
    decode_advert,
    encode_advert,
)
from vrrp.settings import InstanceSettings, VipSpec

IPAddress = IPv4Address | IPv6Address


@dataclass
class Node:
    """One director on the segment: its machine and what its runner would have done."""

    name: str
    machine: VrrpMachine
    vips_installed: bool = False
    alive: bool = True
    connected: bool = True
    actions: list[tuple[float, Action]] = field(default_factory=list)
    sent: list[tuple[float, Advertisement]] = field(default_factory=list)
    received: list[tuple[float, Advertisement]] = field(default_factory=list)
    announcements: list[float] = field(default_factory=list)

    @property
    def address(self) -> IPAddress:
        return self.machine.source_address

    @property
    def state(self) -> State:
        return self.machine.state

    def transitions(self) -> list[tuple[float, Transition]]:
        return [(t, a) for t, a in self.actions if isinstance(a, Transition)]

    def drops(self) -> list[AdvertDropped]:
        return [a for _t, a in self.actions if isinstance(a, AdvertDropped)]

    def last_transition_at(self) -> float:
        return self.transitions()[-1][0]


@dataclass(order=True)
class _Delivery:
    at: float
    seq: int
    to: Node = field(compare=False)
    payload: bytes = field(compare=False)
    source: IPAddress = field(compare=False)
    destination: IPAddress = field(compare=False)


class Segment:
    """A LAN (or a unicast mesh) of nodes with an optional one-way latency."""

    def __init__(self, *nodes: Node, latency: float = 0.0) -> None:
        self.nodes = list(nodes)
        self.latency = latency
        self.now = 0.0
        self._queue: list[_Delivery] = []
        self._seq = itertools.count()

    # --- driving --------------------------------------------------------------------

    def start(self, node: Node, at: float | None = None) -> None:
        """Start ``node`` at ``at`` (default: now), after everything due before then."""
        if at is not None:
            self.run_until(at)
        self._execute(node, node.machine.start(self.now))

    def start_all(self, at: float = 0.0) -> None:
        for node in self.nodes:
            self.start(node, at)

    def run_until(self, until: float) -> None:
        """Fire every timer and delivery up to and including ``until``, in time order."""
        while True:
            candidates: list[tuple[float, int, Node | None]] = []
            for index, candidate in enumerate(self.nodes):
                deadline = candidate.machine.next_deadline() if candidate.alive else None
                if deadline is not None:
                    candidates.append((deadline, index, candidate))
            if self._queue:
                candidates.append((self._queue[0].at, -1, None))
            if not candidates:
                break
            at, _index, due = min(candidates, key=lambda c: (c[0], c[1]))
            if at > until:
                break
            self._advance_to(at)
            if due is None:
                delivery = heapq.heappop(self._queue)
                self._receive(delivery)
            else:
                self._execute(due, due.machine.on_timer(at))
        self._advance_to(until)

    def set_priority(self, node: Node, effective: int, reason: str = "test") -> None:
        self._execute(node, node.machine.set_priority(effective, reason, self.now))

    def set_fault(self, node: Node, on: bool, reason: str = "test") -> None:
        self._execute(node, node.machine.set_fault(on, reason, self.now))

    def resign(self, node: Node, reason: str = "test") -> None:
        self._execute(node, node.machine.resign(reason, self.now))

    def shutdown(self, node: Node) -> None:
        self._execute(node, node.machine.shutdown(self.now))

    def crash(self, node: Node) -> None:
        """The process dies (SIGKILL) and its VIPs vanish: no priority-0 advert."""
        node.alive = False
        node.vips_installed = False

    def inject(self, node: Node, advert: Advertisement, source: IPAddress) -> tuple[Action, ...]:
        """Hand ``node`` an advert from a router that is not on the segment."""
        actions = node.machine.on_advert(advert, source, self.now)
        self._execute(node, actions)
        return actions

    # --- queries --------------------------------------------------------------------

    def masters(self) -> list[Node]:
        return [n for n in self.nodes if n.alive and n.state is State.MASTER]

    def vip_holders(self) -> list[Node]:
        return [n for n in self.nodes if n.vips_installed]

    # --- internals ------------------------------------------------------------------

    def _advance_to(self, at: float) -> None:
        assert at >= self.now, f"time runs forward only ({at} < {self.now})"
        self.now = at

    def _execute(self, node: Node, actions: tuple[Action, ...]) -> None:
        for action in actions:
            node.actions.append((self.now, action))
            if isinstance(action, SendAdvert):
                self._send(node, node.machine.build_advert(action.priority))
            elif isinstance(action, InstallVips):
                node.vips_installed = True
            elif isinstance(action, RemoveVips):
                node.vips_installed = False
            elif isinstance(action, Announce):
                node.announcements.append(self.now)

    def _destinations(self, settings: InstanceSettings) -> tuple[IPAddress, ...]:
        if settings.unicast_peers:
            return settings.unicast_peers
        return (VRRP_MULTICAST_V4 if settings.family == 4 else VRRP_MULTICAST_V6,)

    def _send(self, sender: Node, advert: Advertisement) -> None:
        sender.sent.append((self.now, advert))
        if not (sender.alive and sender.connected):
            return
        for destination in self._destinations(sender.machine.settings):
            payload = encode_advert(advert, sender.address, destination)
            for node in self.nodes:
                if node is sender:
                    continue
                if destination.is_multicast or destination == node.address:
                    heapq.heappush(
                        self._queue,
                        _Delivery(
                            self.now + self.latency,
                            next(self._seq),
                            node,
                            payload,
                            sender.address,
                            destination,
                        ),
                    )

    def _receive(self, delivery: _Delivery) -> None:
        node = delivery.to
        if not (node.alive and node.connected):
            return
        try:
            advert = decode_advert(delivery.payload, delivery.source, delivery.destination)
        except MalformedAdvert as error:  # pragma: no cover - our own encoder made the bytes
            raise AssertionError(f"segment produced undecodable bytes: {error}") from error
        node.received.append((self.now, advert))
        self._execute(node, node.machine.on_advert(advert, delivery.source, self.now))


# --- factories ------------------------------------------------------------------------------

DEFAULTS: dict[str, object] = {
    "name": "VI_1",
    "interface": "eth0",
    "vrid": 51,
    "priority": 100,
    "version": 3,
    "advert_interval": 1.0,
    "preempt": True,
    "preempt_delay": 0.0,
}


def make_settings(vips: tuple[VipSpec, ...] | None = None, **overrides: object) -> InstanceSettings:
    values = {**DEFAULTS, **overrides}
    values["vips"] = vips if vips is not None else (VipSpec(IPv4Interface("198.51.100.10/24")),)
    return InstanceSettings(**values)  # type: ignore[arg-type]


def make_node(name: str, address: str, **overrides: object) -> Node:
    """A node named ``name`` whose primary address is ``address``; settings overridden by kwargs."""
    settings = make_settings(**overrides)  # type: ignore[arg-type]
    return Node(name, VrrpMachine(settings, primary_address=ip_address(address)))
