"""Strict, observable in-memory fakes of the VRRP ports (``vrrp/ports.py``).

Shipped in the package (httpcore's ``MockBackend``, k8s ``FakeIPVS``) so that other
packages (the daemon's own tests) can test against them; tests/contract/test_vrrp_ports.py
holds them to what the Linux ports do.

Rules kept here:

1. No sockets, no netlink, no clock: the only asyncio used is futures and queues
   to wake a waiting ``receive()``; time, when recorded, comes from an injected
   ``clock``.
2. Fail the way the kernel fails: an unknown interface is ENODEV, a closed link
   is EBADF, a link that is down is ENETDOWN, and addresses are idempotent
   exactly as ``LinuxVipAddresses`` is (EEXIST on add / EADDRNOTAVAIL on delete
   are success there, so they are silent here).
3. Everything is inspectable: what was sent, what each node holds, every
   announcement, and switches to lose, partition, stall and fail.
"""

from __future__ import annotations

import asyncio
import errno
import random
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network

from vrrp.packet import VRRP_MULTICAST_V4, VRRP_MULTICAST_V6
from vrrp.ports import InstancePorts, IPAddress, LinkEvent, ReceivedAdvert, Vip, VrrpIoError
from vrrp.routes import VirtualRoute, VirtualRule
from vrrp.settings import InstanceSettings
from vrrp.vmac import BASE_SYSCTLS, VMAC_SYSCTLS, VmacSpec

__all__ = [
    "Announcement",
    "FakeAdvertLink",
    "FakeLinkMonitor",
    "FakePorts",
    "FakeRouting",
    "FakeSegment",
    "FakeVipAddresses",
    "FakeVirtualMacs",
    "RecordingAnnouncer",
    "SentAdvert",
]

_GROUPS: frozenset[IPAddress] = frozenset({VRRP_MULTICAST_V4, VRRP_MULTICAST_V6})


@dataclass(frozen=True, slots=True)
class SentAdvert:
    """One advert put on the segment (whether or not anybody received it)."""

    at: float | None
    source: IPAddress
    destination: IPAddress
    payload: bytes


class FakeSegment:
    """A shared L2 segment: every link attached to it hears multicast adverts.

    ``partition(...)`` splits it into groups that cannot hear each other,
    ``set_loss(rate, rng)`` drops a share of deliveries (seeded ``Random``),
    and ``inject(...)`` puts arbitrary bytes on the wire (the peer's garbage).
    """

    def __init__(self, *, clock: Callable[[], float] | None = None) -> None:
        self._links: list[FakeAdvertLink] = []
        self._clock = clock
        self._groups: tuple[frozenset[IPAddress], ...] | None = None
        self._loss = 0.0
        self._rng: random.Random | None = None
        self.sent: list[SentAdvert] = []
        self.lost = 0

    def attach(self, address: IPAddress) -> FakeAdvertLink:
        """A new socket of the node ``address``. Several instances of one
        director share its address: their sockets never hear each other's
        adverts (multicast loop is off on the real link)."""
        link = FakeAdvertLink(self, address)
        self._links.append(link)
        return link

    @property
    def links(self) -> tuple[FakeAdvertLink, ...]:
        return tuple(self._links)

    def partition(self, *groups: Iterable[IPAddress]) -> None:
        """Only links in the same group hear each other until ``heal()``."""
        self._groups = tuple(frozenset(group) for group in groups)

    def heal(self) -> None:
        self._groups = None

    def set_loss(self, rate: float, rng: random.Random) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"loss rate {rate} outside 0..1")
        self._loss = rate
        self._rng = rng

    def sent_by(self, source: IPAddress) -> list[SentAdvert]:
        return [advert for advert in self.sent if advert.source == source]

    def inject(
        self, payload: bytes, source: IPAddress, destination: IPAddress, *, ttl: int = 255
    ) -> None:
        """Deliver bytes from a node that is not attached (a stranger, garbage)."""
        for link in self._links:
            if link.local_address != source and self._addressed_to(link, destination):
                link.deliver(ReceivedAdvert(payload, source, destination, ttl))

    def _hears(self, sender: IPAddress, receiver: IPAddress) -> bool:
        if self._groups is None:
            return True
        return any(sender in group and receiver in group for group in self._groups)

    @staticmethod
    def _addressed_to(link: FakeAdvertLink, destination: IPAddress) -> bool:
        return destination in _GROUPS or destination == link.local_address

    def _carry(self, sender: FakeAdvertLink, payload: bytes, destination: IPAddress) -> None:
        at = self._clock() if self._clock is not None else None
        self.sent.append(SentAdvert(at, sender.local_address, destination, payload))
        for link in self._links:
            if link.local_address == sender.local_address:
                continue
            if not self._addressed_to(link, destination):
                continue
            if not self._hears(sender.local_address, link.local_address):
                continue
            if self._loss and self._rng is not None and self._rng.random() < self._loss:
                self.lost += 1
                continue
            # The wire keeps the TTL at 255: one L2 segment, no router.
            link.deliver(ReceivedAdvert(payload, sender.local_address, destination, 255))


class FakeAdvertLink:
    """One node's socket on a :class:`FakeSegment` (``AdvertLink``)."""

    def __init__(self, segment: FakeSegment, address: IPAddress) -> None:
        self._segment = segment
        self._address = address
        self._inbox: deque[ReceivedAdvert] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self.up = True
        self.stalled = False
        self.received = 0
        #: What the "kernel" reports as the interface's subnets (tests set it).
        self.connected: tuple[IPv4Network | IPv6Network, ...] = ()
        #: errnos the next sends fail with, in order (ENOBUFS: a full qdisc).
        self.send_failures: deque[int] = deque()

    @property
    def local_address(self) -> IPAddress:
        return self._address

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def connected_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        return self.connected

    def fail_sends(self, *errnos: int) -> None:
        """The next ``len(errnos)`` sends fail with these errnos, as the kernel's
        ``sendto`` does on a full queue (ENOBUFS) or a busy socket (EAGAIN)."""
        self.send_failures.extend(errnos)

    def deliver(self, advert: ReceivedAdvert) -> None:
        """The segment hands a datagram to this node's socket buffer."""
        if self._closed or not self.up:
            return
        self._inbox.append(advert)
        if not self.stalled:
            self._wake()

    def stall(self, on: bool) -> None:
        """While stalled, datagrams wait in the socket and ``receive()`` is not
        woken: the picture of an event loop too busy to poll its socket."""
        self.stalled = on
        if not on and self._inbox:
            self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _check_open(self, op: str) -> None:
        if self._closed:
            raise VrrpIoError(op, errno.EBADF, f"link {self._address} is closed")

    async def send(self, payload: bytes, destination: IPAddress) -> None:
        self._check_open("send")
        if not self.up:
            raise VrrpIoError("send", errno.ENETDOWN, f"link {self._address} is down")
        if self.send_failures:
            code = self.send_failures.popleft()
            raise VrrpIoError(f"send {destination}", code, errno.errorcode.get(code, ""))
        self._segment._carry(self, payload, destination)

    def pending(self, limit: int) -> list[ReceivedAdvert]:
        self._check_open("receive")
        waiting = [self._inbox.popleft() for _ in range(min(limit, len(self._inbox)))]
        self.received += len(waiting)
        return waiting

    async def receive(self) -> ReceivedAdvert:
        while True:
            self._check_open("receive")
            if self._inbox and not self.stalled:
                self.received += 1
                return self._inbox.popleft()
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._inbox.clear()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(
                VrrpIoError("receive", errno.EBADF, f"link {self._address} closed")
            )


class FakeVipAddresses:
    """The addresses of one node, per interface (``VipAddresses``).

    ``ops`` logs every successful change as ``(op, interface, vip)`` so tests can
    assert which changes ran; ``fail_next(op, errno)`` makes the next such
    operation fail as the kernel would.
    """

    def __init__(self, interfaces: Iterable[str]) -> None:
        self._addresses: dict[str, list[Vip]] = {name: [] for name in interfaces}
        self._failures: dict[str, deque[int]] = {}
        self.ops: list[tuple[str, str, Vip]] = []

    def fail_next(self, op: str, code: int) -> None:
        if op not in ("add", "remove", "list"):
            raise ValueError(f"unknown op {op!r}")
        self._failures.setdefault(op, deque()).append(code)

    def add_interface(self, name: str) -> None:
        """A new interface (a macvlan) appeared on the node."""
        self._addresses.setdefault(name, [])

    def remove_interface(self, name: str) -> None:
        """The interface is gone, and its addresses with it."""
        self._addresses.pop(name, None)

    def held(self, interface: str | None = None) -> tuple[Vip, ...]:
        """What the node holds now (on one interface, or everywhere)."""
        if interface is not None:
            return tuple(self._addresses[interface])
        return tuple(vip for vips in self._addresses.values() for vip in vips)

    def _enter(self, op: str, interface: str, vip: Vip | None) -> list[Vip]:
        failures = self._failures.get(op)
        if failures:
            code = failures.popleft()
            raise VrrpIoError(f"addr {op} {vip or ''} dev {interface}".strip(), code, "injected")
        if interface not in self._addresses:
            raise VrrpIoError(f"addr {op} dev {interface}", errno.ENODEV, "no such interface")
        return self._addresses[interface]

    async def add(self, interface: str, vip: Vip) -> None:
        present = self._enter("add", interface, vip)
        if vip not in present:
            present.append(vip)
            self.ops.append(("add", interface, vip))

    async def remove(self, interface: str, vip: Vip) -> None:
        present = self._enter("remove", interface, vip)
        if vip in present:
            present.remove(vip)
            self.ops.append(("remove", interface, vip))

    async def list(self, interface: str) -> tuple[Vip, ...]:
        return tuple(self._enter("list", interface, None))


class FakeRouting:
    """The routes and rules of one node (``VirtualRouting``), failing as the kernel does.

    Adding an identical route or rule again and removing an absent one succeed (the
    Linux port maps EEXIST / ESRCH / ENOENT so); a different route with the same key
    (prefix, table, effective metric) is EEXIST; a route through an interface that does
    not exist is ENODEV (rules name interfaces without needing them). ``ops`` logs every
    change as ``(op, route or rule)``; ``fail_next(op, errno)`` injects a failure.
    """

    _OPS = ("add_route", "remove_route", "add_rule", "remove_rule")

    def __init__(self, interfaces: Iterable[str]) -> None:
        self._interfaces = set(interfaces)
        self.routes: list[VirtualRoute] = []
        self.rules: list[VirtualRule] = []
        self._failures: dict[str, deque[int]] = {}
        self.ops: list[tuple[str, VirtualRoute | VirtualRule]] = []

    def fail_next(self, op: str, code: int) -> None:
        if op not in self._OPS:
            raise ValueError(f"unknown op {op!r}")
        self._failures.setdefault(op, deque()).append(code)

    def remove_interface(self, name: str) -> None:
        """The device went away: the kernel flushes the routes through it."""
        self._interfaces.discard(name)
        self.routes = [route for route in self.routes if name not in _devices(route)]

    def _enter(self, op: str, item: VirtualRoute | VirtualRule) -> None:
        failures = self._failures.get(op)
        if failures:
            raise VrrpIoError(f"{op} {item.describe()}", failures.popleft(), "injected")

    async def add_route(self, route: VirtualRoute) -> None:
        self._enter("add_route", route)
        for device in _devices(route):
            if device not in self._interfaces:
                raise VrrpIoError(f"route add {route.describe()}", errno.ENODEV, "no such device")
        if route in self.routes:
            return
        if any(held.key == route.key for held in self.routes):
            raise VrrpIoError(
                f"route add {route.describe()}", errno.EEXIST, "another route has this key"
            )
        self.routes.append(route)
        self.ops.append(("add_route", route))

    async def remove_route(self, route: VirtualRoute) -> None:
        self._enter("remove_route", route)
        if route in self.routes:
            self.routes.remove(route)
            self.ops.append(("remove_route", route))

    async def add_rule(self, rule: VirtualRule) -> None:
        self._enter("add_rule", rule)
        if rule not in self.rules:
            self.rules.append(rule)
            self.ops.append(("add_rule", rule))

    async def remove_rule(self, rule: VirtualRule) -> None:
        self._enter("remove_rule", rule)
        if rule in self.rules:
            self.rules.remove(rule)
            self.ops.append(("remove_rule", rule))

    async def present(self, item: VirtualRoute | VirtualRule) -> bool:
        if isinstance(item, VirtualRoute):
            return item in self.routes
        return item in self.rules


class FakeVirtualMacs:
    """The macvlans of one node (``VirtualMacs``), failing as the kernel does.

    ``interfaces`` are the node's other links (a name among them is EEXIST; a base
    not among them is ENODEV). ``sysctls`` holds what was set, per interface, and a
    base's values go back to ``base_defaults`` on remove. The addresses fake learns
    about each macvlan so VIPs can be added to it.
    """

    def __init__(
        self, interfaces: Iterable[str], *, addresses: FakeVipAddresses | None = None
    ) -> None:
        self._interfaces = set(interfaces)
        self._addresses = addresses
        self.links: dict[str, VmacSpec] = {}
        self.sysctls: dict[str, dict[str, int]] = {}
        self.base_defaults: dict[str, int] = {"arp_ignore": 0, "arp_filter": 0, "arp_announce": 0}
        self.ops: list[tuple[str, str]] = []

    async def ensure(self, spec: VmacSpec) -> None:
        if spec.parent not in self._interfaces:
            raise VrrpIoError(f"vmac add {spec.describe()}", errno.ENODEV, "no such device")
        held = self.links.get(spec.name)
        if held == spec:
            return
        if held is not None or spec.name in self._interfaces:
            raise VrrpIoError(
                f"vmac add {spec.describe()}", errno.EEXIST, "another link has this name"
            )
        self.links[spec.name] = spec
        self.sysctls[spec.name] = dict(VMAC_SYSCTLS)
        self.sysctls.setdefault(spec.parent, {}).update(BASE_SYSCTLS)
        if self._addresses is not None:
            self._addresses.add_interface(spec.name)
        self.ops.append(("add", spec.name))

    async def remove(self, spec: VmacSpec) -> None:
        if self.links.get(spec.name) != spec:
            return
        del self.links[spec.name]
        del self.sysctls[spec.name]
        if not any(link.parent == spec.parent for link in self.links.values()):
            self.sysctls[spec.parent].update(self.base_defaults)
        if self._addresses is not None:
            self._addresses.remove_interface(spec.name)
        self.ops.append(("remove", spec.name))

    async def present(self, spec: VmacSpec) -> bool:
        return self.links.get(spec.name) == spec


def _devices(route: VirtualRoute) -> set[str]:
    named = {route.dev} | {hop.dev for hop in route.nexthops}
    return {device for device in named if device is not None}


@dataclass(frozen=True, slots=True)
class Announcement:
    at: float | None
    interface: str
    vips: tuple[Vip, ...]


class RecordingAnnouncer:
    """Records every GARP / unsolicited NA burst (``Announcer``)."""

    def __init__(self, *, clock: Callable[[], float] | None = None) -> None:
        self._clock = clock
        self._failures: deque[int] = deque()
        self.announcements: list[Announcement] = []

    def fail_next(self, code: int) -> None:
        self._failures.append(code)

    async def announce(self, interface: str, vips: Sequence[Vip]) -> None:
        if self._failures:
            raise VrrpIoError(f"announce {interface}", self._failures.popleft(), "injected")
        at = self._clock() if self._clock is not None else None
        self.announcements.append(Announcement(at, interface, tuple(vips)))


class FakeLinkMonitor:
    """Interface oper states under the test's control (``LinkMonitor``)."""

    def __init__(self, states: dict[str, bool] | None = None) -> None:
        self._states: dict[str, bool] = dict(states or {})
        self._subscribers: list[asyncio.Queue[LinkEvent | VrrpIoError | None]] = []
        #: errnos the next subscribe() calls fail with, in order.
        self.subscribe_failures: deque[int] = deque()

    def set_link(self, interface: str, up: bool) -> None:
        """Change an interface's state; subscribers see only real changes."""
        if self._states.get(interface) is up:
            return
        self._states[interface] = up
        for queue in self._subscribers:
            queue.put_nowait(LinkEvent(interface, up))

    async def is_up(self, interface: str) -> bool:
        # An interface the monitor never heard of is down, as NetlinkLinkMonitor
        # reports a missing device (ENODEV).
        return self._states.get(interface, False)

    def overflow(self, lost: dict[str, bool] | None = None) -> None:
        """The kernel dropped broadcasts (ENOBUFS on a full netlink socket):
        ``lost`` changes happen without events, and every subscription fails as
        ``NetlinkLinkMonitor`` fails, with ENOBUFS."""
        self._states.update(lost or {})
        for queue in self._subscribers:
            queue.put_nowait(VrrpIoError("link monitor", errno.ENOBUFS, "No buffer space"))

    async def subscribe(self) -> AsyncIterator[LinkEvent]:
        if self.subscribe_failures:
            raise VrrpIoError("link monitor bind", self.subscribe_failures.popleft())
        queue: asyncio.Queue[LinkEvent | VrrpIoError | None] = asyncio.Queue()
        self._subscribers.append(queue)
        return self._drain(queue)

    async def _drain(
        self, queue: asyncio.Queue[LinkEvent | VrrpIoError | None]
    ) -> AsyncIterator[LinkEvent]:
        try:
            while (event := await queue.get()) is not None:
                if isinstance(event, VrrpIoError):
                    raise event
                yield event
        finally:
            self._subscribers.remove(queue)

    def close(self) -> None:
        for queue in self._subscribers:
            queue.put_nowait(None)


class FakePorts:
    """A ``PortsProvider`` for one director on a :class:`FakeSegment`: every
    instance gets its own link from ``address``; VIPs, announcer and link
    monitor (and routes) are shared, as on one machine."""

    def __init__(
        self,
        segment: FakeSegment,
        address: IPAddress,
        *,
        addresses: FakeVipAddresses,
        announcer: RecordingAnnouncer | None = None,
        monitor: FakeLinkMonitor | None = None,
        routing: FakeRouting | None = None,
        vmacs: FakeVirtualMacs | None = None,
    ) -> None:
        self.segment = segment
        self.address = address
        self.addresses = addresses
        self.announcer = announcer or RecordingAnnouncer()
        self._monitor = monitor
        self.routing = routing
        self.vmacs = vmacs
        self.links: dict[str, FakeAdvertLink] = {}

    @property
    def monitor(self) -> FakeLinkMonitor | None:
        return self._monitor

    async def __call__(self, settings: InstanceSettings) -> InstancePorts:
        spec = settings.vmac_spec
        if spec is not None:
            if self.vmacs is None:
                raise VrrpIoError(f"vmac add {spec.describe()}", errno.EOPNOTSUPP, "no vmacs")
            await self.vmacs.ensure(spec)
        link = self.segment.attach(self.address)
        self.links[settings.name] = link
        return InstancePorts(link, self.addresses, self.announcer, self.routing)

    async def release(self) -> None:
        if self.vmacs is None:
            return
        for spec in list(self.vmacs.links.values()):
            await self.vmacs.remove(spec)

    def close(self) -> None:
        for link in self.links.values():
            link.close()
