"""Declarative lab networks: namespaces as hosts, veth links, bridges, addresses,
routes and sysctls, built with pyroute2 inside the lab kernel and torn down after.

A description is plain frozen values, so a test reads like the network diagram:

    topo = Topology(
        hosts=(Host("client", routes=(Route("default", via="198.51.100.1"),)),
               Host("dir", sysctls={"net.ipv4.ip_forward": "1"}),
               Host("rs1", routes=(Route("default", via="10.0.0.1"),))),
        links=(Veth(Endpoint("client", "eth0", ("198.51.100.2/24",)),
                    Endpoint("dir", "eth0", ("198.51.100.1/24",))),
               Veth(Endpoint("rs1", "eth0", ("10.0.0.11/24",)), Endpoint("dir", "rs1"))),
        bridges=(Bridge("dir", "br0", ports=("rs1",), addresses=("10.0.0.1/24",)),),
    )
    with build(topo, prefix="t1-") as net:
        net.run("client", ["busybox", "ping", "-c1", "10.0.0.11"])

Every namespace gets `prefix` in front of its name, so parallel or leftover runs never
collide, and teardown removes exactly the namespaces this build made.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from pyroute2 import IPRoute, netns

__all__ = [
    "Bridge",
    "BuiltTopology",
    "Endpoint",
    "Host",
    "Route",
    "Topology",
    "Veth",
    "build",
]



@dataclass(frozen=True, slots=True)
class Route:
    """`dst` is a CIDR or "default"; `via` a gateway, `dev` an interface (or both)."""

    dst: str
    via: str | None = None
    dev: str | None = None


@dataclass(frozen=True, slots=True)
class Host:
    """One network namespace: a director, a real server, a client."""

    name: str
    sysctls: Mapping[str, str] = field(default_factory=dict)
    routes: tuple[Route, ...] = ()
    loopback_addresses: tuple[str, ...] = ()  # e.g. the VIP on lo of a DR/TUN real server
    tunnels: tuple[str, ...] = ()  # "ipip" brings up tunl0 (TUN real servers decapsulate)


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    ifname: str
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Veth:
    a: Endpoint
    b: Endpoint


@dataclass(frozen=True, slots=True)
class Bridge:
    host: str
    name: str
    ports: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Topology:
    hosts: tuple[Host, ...]
    links: tuple[Veth, ...] = ()
    bridges: tuple[Bridge, ...] = ()


class BuiltTopology:
    """A built network; `ns(host)` is the real namespace name of a host."""

    def __init__(self, topology: Topology, prefix: str) -> None:
        self.topology = topology
        self.prefix = prefix
        self._created: list[str] = []
        # One netlink socket per namespace while building: opening one inside a
        # namespace forks a helper (pyroute2), which is slow in an emulated guest.
        self._sockets: dict[str, IPRoute] = {}

    def ns(self, host: str) -> str:
        return self.prefix + host

    def command(self, host: str, argv: Sequence[str]) -> list[str]:
        """argv wrapped to run inside the host's namespace."""
        return ["ip", "netns", "exec", self.ns(host), *argv]

    def run(
        self, host: str, argv: Sequence[str], *, check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(host, argv), capture_output=True, text=True, check=check, timeout=timeout
        )

    def popen(self, host: str, argv: Sequence[str], **kwargs: object) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.command(host, argv), **kwargs)  # type: ignore[call-overload, no-any-return]

    def iproute(self, host: str) -> IPRoute:
        """A pyroute2 socket inside the host's namespace (close it, or use `with`)."""
        return IPRoute(netns=self.ns(host))

    def set_sysctl(self, host: str, key: str, value: str) -> None:
        _write_sysctl(self.ns(host), key, value)

    def link_set(self, host: str, ifname: str, *, up: bool) -> None:
        with self.iproute(host) as ipr:
            ipr.link("set", index=_index(ipr, ifname), state="up" if up else "down")

    def teardown(self) -> None:
        for name in reversed(self._created):
            with contextlib.suppress(OSError, FileNotFoundError):
                netns.remove(name)
        self._created.clear()

    # building -----------------------------------------------------------------

    def _socket(self, host: str) -> IPRoute:
        if host not in self._sockets:
            self._sockets[host] = self.iproute(host)
        return self._sockets[host]

    def _build(self) -> None:
        try:
            self._build_all()
        finally:
            for ipr in self._sockets.values():
                ipr.close()
            self._sockets.clear()

    def _build_all(self) -> None:
        names = {host.name for host in self.topology.hosts}
        for host in self.topology.hosts:
            name = self.ns(host.name)
            if name in netns.listnetns():
                netns.remove(name)  # a leftover from an interrupted run
            netns.create(name)
            self._created.append(name)
            # Lab addresses are unique by construction: skip IPv6 duplicate address
            # detection, or new addresses stay "tentative" and unusable for a while.
            for scope in ("default", "all"):
                with contextlib.suppress(OSError):
                    _write_sysctl(name, f"net.ipv6.conf.{scope}.accept_dad", "0")
        for link in self.topology.links:
            for end in (link.a, link.b):
                if end.host not in names:
                    raise ValueError(f"link endpoint names unknown host {end.host!r}")
            self._add_veth(link)
        for bridge in self.topology.bridges:
            self._add_bridge(bridge)
        for host in self.topology.hosts:
            self._configure_host(host)

    def _add_veth(self, link: Veth) -> None:
        # Create with unique temporary names in the root namespace, then move and rename:
        # names like eth0 are reused by every host.
        tmp_a = f"hv{os.getpid() % 10000}a{len(self._created)}{id(link) % 9973}"[:15]
        tmp_b = tmp_a[:-1] + "b" if tmp_a.endswith("a") else tmp_a[:14] + "b"
        with IPRoute() as root:
            root.link("add", ifname=tmp_a, kind="veth", peer=tmp_b)
            for tmp, end in ((tmp_a, link.a), (tmp_b, link.b)):
                root.link("set", index=_index(root, tmp), net_ns_fd=self.ns(end.host))
        for tmp, end in ((tmp_a, link.a), (tmp_b, link.b)):
            ipr = self._socket(end.host)
            index = _index(ipr, tmp)
            ipr.link("set", index=index, ifname=end.ifname)
            for address in end.addresses:
                _add_address(ipr, index, address)
            ipr.link("set", index=index, state="up")

    def _add_bridge(self, bridge: Bridge) -> None:
        ipr = self._socket(bridge.host)
        ipr.link("add", ifname=bridge.name, kind="bridge")
        index = _index(ipr, bridge.name)
        for port in bridge.ports:
            ipr.link("set", index=_index(ipr, port), master=index)
        for address in bridge.addresses:
            _add_address(ipr, index, address)
        ipr.link("set", index=index, state="up")

    def _configure_host(self, host: Host) -> None:
        name = self.ns(host.name)
        for key, value in host.sysctls.items():
            _write_sysctl(name, key, value)
        ipr = self._socket(host.name)
        lo = _index(ipr, "lo")
        ipr.link("set", index=lo, state="up")
        for address in host.loopback_addresses:
            _add_address(ipr, lo, address)
        for tunnel in host.tunnels:
            if tunnel != "ipip":
                raise ValueError(f"unsupported tunnel {tunnel!r} (only ipip)")
            ipr.link("set", index=_index(ipr, "tunl0"), state="up")
        for route in host.routes:
            _add_route(ipr, route)


@contextlib.contextmanager
def build(topology: Topology, *, prefix: str = "lab-") -> Iterator[BuiltTopology]:
    """Build the network, yield it, and always tear it down."""
    built = BuiltTopology(topology, prefix)
    try:
        built._build()
        yield built
    finally:
        built.teardown()


def _index(ipr: IPRoute, ifname: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise LookupError(f"no interface {ifname!r}")
    return int(found[0])


def _add_address(ipr: IPRoute, index: int, cidr: str) -> None:
    interface = ipaddress.ip_interface(cidr)
    ipr.addr(
        "add",
        index=index,
        address=str(interface.ip),
        prefixlen=interface.network.prefixlen,
        **({"nodad": True} if interface.version == 6 else {}),
    )


def _add_route(ipr: IPRoute, route: Route) -> None:
    spec: dict[str, object] = {}
    if route.dst == "default":
        family_probe = route.via or "0.0.0.0"
        spec["dst"] = "::/0" if ":" in family_probe else "0.0.0.0/0"
    else:
        spec["dst"] = route.dst
    if route.via:
        spec["gateway"] = route.via
    if route.dev:
        spec["oif"] = _index(ipr, route.dev)
    ipr.route("add", **spec)


def _write_sysctl(namespace: str, key: str, value: str) -> None:
    # /proc/sys/net resolves the namespace of the task that opens it, so switch in.
    path = "/proc/sys/" + key.replace(".", "/")
    netns.pushns(namespace)
    try:
        with open(path, "w") as handle:
            handle.write(value)
    finally:
        netns.popns()
