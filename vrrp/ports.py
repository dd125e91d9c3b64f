"""The kernel behind narrow Protocols: what the VRRP runner needs from the host.

Rules kept here (each kernel facility behind a narrow Protocol with a strict fake):

1. Interface declarations and the value types they exchange, nothing else: no IO.
   The real implementations live in ``vrrp/linux.py`` and the strict in-memory
   fakes in ``vrrp/fake.py``; the runner only ever sees these Protocols.
2. Values are our own (``ipaddress`` objects, bytes, enums), never pyroute2
   messages or socket tuples.
3. Every kernel failure surfaces as :class:`VrrpIoError` carrying the operation and
   the errno, so the runner can turn it into ``set_fault(...)`` (IO failures are
   inputs to the core, adapters never decide policy).
"""

from __future__ import annotations

import errno as errno_module
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
)
from typing import Protocol, runtime_checkable

from vrrp.errors import MalformedAdvert, VrrpError
from vrrp.routes import VirtualRoute, VirtualRule
from vrrp.settings import InstanceSettings
from vrrp.vmac import VmacSpec

__all__ = [
    "AdvertLink",
    "Announcer",
    "IPAddress",
    "InstancePorts",
    "LinkEvent",
    "LinkMonitor",
    "PortsProvider",
    "ReceivedAdvert",
    "Vip",
    "VipAddresses",
    "VirtualMacs",
    "VirtualRouting",
    "VrrpIoError",
]

IPAddress = IPv4Address | IPv6Address
Vip = IPv4Interface | IPv6Interface


class VrrpIoError(VrrpError):
    """A kernel operation failed: ``op`` names it, ``errno`` is the kernel's code.

    The same error kinds come out of the real ports and the fakes, so a test that
    passes against the fake sees what the kernel would have said.
    """

    def __init__(self, op: str, errno: int, detail: str = "") -> None:
        self.op = op
        self.errno = errno
        self.detail = detail
        name = errno_module.errorcode.get(errno, str(errno))
        super().__init__(f"{op}: {name}" + (f" ({detail})" if detail else ""))


@dataclass(frozen=True, slots=True)
class ReceivedAdvert:
    """One protocol-112 datagram as it came off the wire, before any decoding.

    ``payload`` is the VRRP message only (the IPv4 header already stripped by
    the link); ``ttl`` is the IPv4 TTL or the IPv6 hop limit, which the runner
    checks against 255 (RFC 5798 §7.1, RFC 3768 §7.1) so that the fake and the
    real link are held to the same rule (waived, as keepalived does, for
    unicast adverts from a configured unicast peer: they may be routed).
    ``header_error`` is set when the link could not even read the IP header:
    the runner counts it under its reason.
    """

    payload: bytes
    source: IPAddress
    destination: IPAddress
    ttl: int
    header_error: MalformedAdvert | None = None


class AdvertLink(Protocol):
    """Send and receive VRRP payloads on one interface for one address family."""

    @property
    def local_address(self) -> IPAddress:
        """The primary address adverts leave from (RFC 5798 §5.1.1.1 / §5.1.2.1)."""
        ...

    async def send(self, payload: bytes, destination: IPAddress) -> None:
        """Send one VRRP payload; the link adds the IP header (TTL/hop limit 255)."""
        ...

    async def receive(self) -> ReceivedAdvert:
        """Wait for the next advert; never returns our own multicast echo."""
        ...

    @property
    def connected_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        """The interface's subnets when the link was opened (empty: unknown).
        A multicast advert from a source on none of them is dropped."""
        ...

    def pending(self, limit: int) -> list[ReceivedAdvert]:
        """Up to ``limit`` adverts already waiting in the socket, without blocking.

        The runner calls this before acting on a timer: an advert that arrived
        while the loop was busy must count before the master is declared dead.
        Bounded, so a flood cannot hold the timer back for long.
        """
        ...

    def close(self) -> None:
        """Release the socket; idempotent."""
        ...


class VipAddresses(Protocol):
    """The addresses the master owns. Idempotent like ``ip addr`` with ``replace``:
    adding a present address or removing an absent one succeeds."""

    async def add(self, interface: str, vip: Vip) -> None: ...

    async def remove(self, interface: str, vip: Vip) -> None: ...

    async def list(self, interface: str) -> tuple[Vip, ...]: ...


class VirtualRouting(Protocol):
    """The routes and policy rules the master owns (keepalived ``virtual_routes`` /
    ``virtual_rules``, ``vrrp.routes``).

    Idempotent like :class:`VipAddresses`: adding a route or rule that is present
    already, identical, succeeds (the kernel's EEXIST), and removing an absent one
    succeeds (ESRCH / ENOENT), because after a restart or a split brain the kernel may
    already be in the state asked for. A *different* route holding the same key (prefix,
    table, metric) fails with EEXIST: it is not ours to shadow or remove. A route whose
    ``dev`` (or a next hop's) does not exist fails with ENODEV; a rule's ``iif`` /
    ``oif`` need not exist (the kernel keeps the rule inactive until it does).
    """

    async def add_route(self, route: VirtualRoute) -> None: ...

    async def remove_route(self, route: VirtualRoute) -> None: ...

    async def add_rule(self, rule: VirtualRule) -> None: ...

    async def remove_rule(self, rule: VirtualRule) -> None: ...

    async def present(self, item: VirtualRoute | VirtualRule) -> bool:
        """Whether this route or rule is installed now (the fields it sets match)."""
        ...


class VirtualMacs(Protocol):
    """The macvlan interfaces of ``use_vmac`` (``vrrp.vmac``).

    ``ensure`` creates the macvlan (private mode, the virtual MAC, up, IPv6 off, the
    sysctls keepalived sets on it and on its base) or accepts an identical one left by
    an earlier run; a link of that name that is something else fails with EEXIST, a
    missing base interface with ENODEV. ``remove`` deletes it and puts the base's
    sysctls back; an absent one succeeds.
    """

    async def ensure(self, spec: VmacSpec) -> None: ...

    async def remove(self, spec: VmacSpec) -> None: ...

    async def present(self, spec: VmacSpec) -> bool:
        """Whether a macvlan with this name, base and MAC exists and is up."""
        ...


class Announcer(Protocol):
    """Tell the segment where the VIPs now live: gratuitous ARP for IPv4
    (RFC 5798 §6.4.2, keepalived ``garp_master_*``), unsolicited neighbour
    advertisements with the override flag for IPv6 (RFC 4861 §7.2.6)."""

    async def announce(self, interface: str, vips: Sequence[Vip]) -> None: ...


@dataclass(frozen=True, slots=True)
class LinkEvent:
    """A tracked interface changed its operational state."""

    interface: str
    up: bool


@runtime_checkable
class LinkMonitor(Protocol):
    """Operational state of interfaces (keepalived ``track_interface``)."""

    async def is_up(self, interface: str) -> bool: ...

    async def subscribe(self) -> AsyncIterator[LinkEvent]:
        """Start listening now; the iterator yields each later change of oper
        state, in order, for every interface. Subscribe before reading the
        initial states with :meth:`is_up` so no change falls in between."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class InstancePorts:
    """The ports one instance runs on (built per instance by a ports factory)."""

    link: AdvertLink
    addresses: VipAddresses
    announcer: Announcer
    #: None: the instance has no virtual routes or rules to install.
    routing: VirtualRouting | None = None


class PortsProvider(Protocol):
    """Builds each instance's ports; one per :class:`~vrrp.service.VrrpService`,
    created inside the service's own event loop (sockets belong to a loop)."""

    @property
    def monitor(self) -> LinkMonitor | None:
        """The link monitor for tracked interfaces (None: cannot track)."""
        ...

    async def __call__(self, settings: InstanceSettings) -> InstancePorts: ...

    async def release(self) -> None:
        """Undo what building the ports set up on the host besides sockets (the
        ``use_vmac`` macvlans), once every instance has stopped. Tries every one, then
        raises the first :class:`VrrpIoError` (a macvlan left behind is taken over by
        the next start, which finds it identical)."""
        ...

    def close(self) -> None: ...
