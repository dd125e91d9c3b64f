"""The scale-out lab: a router running BIRD with ECMP over N directors, each running BIRD
and haipvs in scale-out mode (TUN, mh with mh-port and mh-fallback), and real servers.

    client 10.0.9.2 -- rtr (BIRD, AS 65000, merge paths, BFD 100 ms x 3)
                        |-- d1 10.0.1.2 (BIRD + haipvs, AS 65001) --+
                        |-- d2 10.0.2.2 ...                          |  IPIP to the reals
                        |-- rs1 10.1.1.2, rs2 10.1.2.2 (VIP on lo, tunl0 up) <-+

The routers reach the real servers directly (TUN: the director encapsulates, the real
server answers the client straight from the VIP on its lo).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from haipvs.lab.pair import wait_until
from haipvs.lab.servers import start_real_server
from haipvs.lab.topology import (
    Bridge,
    BuiltTopology,
    Endpoint,
    Host,
    Route,
    Topology,
    Veth,
    build,
)

__all__ = ["VIP", "DirectorSettings", "ScaleOutLab", "running_scaleout", "settled_counts"]

VIP = "192.0.2.10"
ROUTER_AS = 65000
DIRECTOR_AS = 65001
_NO_RP_FILTER = {
    "net.ipv4.conf.all.rp_filter": "0",
    "net.ipv4.conf.default.rp_filter": "0",
}


def scaleout_topology(directors: int, real_servers: int, *, sync_network: bool = False,
                      client_addresses: int = 1) -> Topology:
    """`sync_network`: a second link from every director to one bridge (in the router's
    namespace, not routed), the L2 segment the IPVS sync daemons' multicast needs.
    `client_addresses`: the client holds 10.0.9.2, .3, ... so its flows vary by source
    address as well as port."""
    hosts = [
        Host("rtr", sysctls={"net.ipv4.ip_forward": "1",
                             "net.ipv4.fib_multipath_hash_policy": "1"}),
        Host("client", routes=(Route("default", via="10.0.9.1"),)),
    ]
    clients = tuple(f"10.0.9.{2 + n}/24" for n in range(client_addresses))
    links = [Veth(Endpoint("client", "eth0", clients),
                  Endpoint("rtr", "c0", ("10.0.9.1/24",)))]
    for i in range(1, directors + 1):
        hosts.append(Host(f"d{i}", routes=(Route("default", via=f"10.0.{i}.1"),),
                          loopback_addresses=(f"{VIP}/32",)))
        links.append(Veth(Endpoint(f"d{i}", "eth0", (f"10.0.{i}.2/24",)),
                          Endpoint("rtr", f"d{i}", (f"10.0.{i}.1/24",))))
        if sync_network:
            links.append(Veth(Endpoint(f"d{i}", "eth1", (f"10.2.0.{i}/24",)),
                              Endpoint("rtr", f"s{i}")))
    for k in range(1, real_servers + 1):
        hosts.append(Host(f"rs{k}", routes=(Route("default", via=f"10.1.{k}.1"),),
                          loopback_addresses=(f"{VIP}/32",), tunnels=("ipip",),
                          sysctls={**_NO_RP_FILTER, "net.ipv4.conf.tunl0.rp_filter": "0"}))
        links.append(Veth(Endpoint(f"rs{k}", "eth0", (f"10.1.{k}.2/24",)),
                          Endpoint("rtr", f"rs{k}", (f"10.1.{k}.1/24",))))
    bridges = ((Bridge("rtr", "sync0", ports=tuple(f"s{i}" for i in range(1, directors + 1))),)
               if sync_network else ())
    return Topology(hosts=tuple(hosts), links=tuple(links), bridges=bridges)


def router_bird_config(directors: int) -> str:
    lines = [
        "router id 10.0.9.1;",
        "protocol device {}",
        # ECMP: one multipath route over every director announcing the VIP.
        "protocol kernel { ipv4 { export all; }; merge paths on; }",
        'protocol bfd { interface "*" { min rx interval 100 ms; min tx interval 100 ms;'
        " multiplier 3; }; }",
        f"template bgp dir {{ local as {ROUTER_AS}; ipv4 {{ import all; export none; }};"
        " bfd on; hold time 3; keepalive time 1; connect retry time 1;"
        # A director back from a failure is taken again at once, not after BIRD's
        # default 60-300 s back-off (the lab revives directors on purpose).
        " error wait time 1, 5; }",
    ]
    lines += [f"protocol bgp d{i} from dir {{ neighbor 10.0.{i}.2 as {DIRECTOR_AS}; }}"
              for i in range(1, directors + 1)]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class DirectorSettings:
    """What the directors' configs share. The defaults are the walk-through tests'; the
    bench configures five real servers (the ones not started yet are down, so at weight 0
    without mh slots until their check passes), the sync mesh, and checks that a loaded
    one-CPU guest does not flap (a flap changes one director's mh table, not the others')."""

    real_servers: int = 2
    mesh: bool = False
    check_interval: float = 0.5
    check_timeout: float = 0.4
    fall: int = 1


def director_config(i: int, workdir: Path, *, need: int, learn: float | None,
                    settings: DirectorSettings = DirectorSettings()) -> str:
    """``learn`` None: the key left out, so haipvs's default applies (the sync mesh's
    refresh period + 3 s with the mesh, else 0)."""
    reals = "\n".join(f"      - {{address: 10.1.{k}.2, port: 80}}"
                      for k in range(1, settings.real_servers + 1))
    sync = ("\n  sync_daemon: {interface: eth1, mode: mesh, syncid: 7}"
            if settings.mesh else "")
    return f"""director:
  name: d{i}
  log_format: json
ipvs:
  programmer: {{min_interval: 0.05, max_interval: 10}}{sync}
virtual_servers:
  - vip: {VIP}
    port: 80
    scheduler: mh
    scheduler_flags: [mh-port, mh-fallback]
    forwarding: tun
    drain: {{timeout: 0}}
    check: {{type: http, path: /, interval: {settings.check_interval}, \
timeout: {settings.check_timeout}, rise: 1, fall: {settings.fall}}}
    real_servers:
{reals}
bgp:
  control_socket: {workdir}/d{i}.bird.ctl
  config_file: {workdir}/d{i}.haipvs-bird.conf
  router_id: 10.0.{i}.2
  local_as: {DIRECTOR_AS}
  neighbours: [{{address: 10.0.{i}.1, remote_as: {ROUTER_AS}}}]
  need: {need}
""" + ("" if learn is None else f"  learn: {learn}\n")


# The kernel's estimator folds the per-CPU counters into the ones ipvsadm reads on a 2 s
# tick: a read right after a burst misses up to 2 s of it, and the next read before a
# burst catches up on it. Ten bursts of 600 connections read at once summed 423 to 640.
COUNTER_TICK = 2.0


def settled_counts(read: Callable[[], dict[str, int]], *, quiet: float = COUNTER_TICK + 0.5,
                   step: float = 0.5, timeout: float = 30.0,
                   clock: Callable[[], float] = time.monotonic,
                   sleep: Callable[[float], None] = time.sleep) -> dict[str, int]:
    """``read()`` once it has returned the same counts for ``quiet`` seconds, longer than
    the kernel's counter tick (no new connections arrive meanwhile: the caller's burst is
    over). Raises TimeoutError if they still move after ``timeout``."""
    started = clock()
    last = read()
    unchanged_since = started
    while clock() - unchanged_since < quiet:
        if clock() - started > timeout:
            raise TimeoutError(f"IPVS counters still moving after {timeout:g} s: {last}")
        sleep(step)
        now = read()
        if now != last:
            last, unchanged_since = now, clock()
    return last


class ScaleOutLab:
    def __init__(self, net: BuiltTopology, workdir: Path, directors: int,
                 settings: DirectorSettings = DirectorSettings()) -> None:
        self.net = net
        self.workdir = workdir
        self.directors = directors
        self.settings = settings
        self.sync_network = any(link.a.ifname == "eth1" for link in net.topology.links)
        self.birds: dict[str, subprocess.Popen[bytes]] = {}
        self.daemons: dict[str, subprocess.Popen[bytes]] = {}
        self.servers: dict[str, subprocess.Popen[bytes]] = {}
        self.flaps: list[str] = []  # BGP sessions the lab restarted after a BFD flap
        self.silenced: set[str] = set()  # hosts whose packets are dropped on purpose
        # each client flow ("address:port>VIP port") the walk's populations opened, by case
        self.flows_seen: dict[str, str] = {}

    # BIRD ---------------------------------------------------------------------------------

    def start_bird(self, host: str) -> None:
        socket = self.workdir / f"{host}.bird.ctl"
        main = self.workdir / f"{host}.bird.conf"
        if host == "rtr":
            main.write_text(router_bird_config(self.directors))
        else:
            # haipvs writes the rest and asks BIRD to re-read it.
            generated = self.workdir / f"{host}.haipvs-bird.conf"
            if not generated.exists():
                # BIRD refuses a config without a protocol ("No protocol is specified").
                generated.write_text(f"router id 10.0.{host[1:]}.2;\nprotocol device {{}}\n")
            main.write_text(f'include "{generated}";\n')
        with contextlib.suppress(FileNotFoundError):
            socket.unlink()
        bird = shutil.which("bird") or "/usr/sbin/bird"
        # Real-time priority: in the lab every BIRD, haipvs and the client share one
        # emulated CPU, and a busy client starves BIRD past BFD's 300 ms detection time,
        # which then drops healthy directors. On real hardware each BIRD has its host.
        self.birds[host] = self.net.popen(
            host, ["chrt", "-f", "50", bird, "-f", "-c", str(main), "-s", str(socket)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_until(socket.exists, 30)

    def kill_bird(self, host: str) -> None:
        process = self.birds.pop(host)
        process.kill()
        process.wait()

    def birdc(self, host: str, *command: str) -> str:
        socket = self.workdir / f"{host}.bird.ctl"
        return self.net.run(host, ["birdc", "-s", str(socket), *command], check=False).stdout

    # the network --------------------------------------------------------------------------

    def next_hops(self) -> set[str]:
        """The directors the router sends the VIP to."""
        out = self.net.run("rtr", ["ip", "-4", "route", "show", f"{VIP}/32"]).stdout
        return {word_after for word, word_after in zip(out.split(), out.split()[1:], strict=False)
                if word == "via"}

    def ipvs_dests(self, host: str) -> int:
        out = self.net.run(host, ["ipvsadm", "-Ln"], check=False).stdout
        return sum(1 for line in out.splitlines() if line.strip().startswith("->")
                   and "RemoteAddress" not in line)

    # processes ----------------------------------------------------------------------------

    def start_real_servers(self, count: int = 2) -> None:
        for k in range(1, count + 1):
            self.start_real_server(f"rs{k}")

    def start_real_server(self, name: str) -> None:
        # :81 serves the rr reference service the bench programs beside haipvs's own.
        self.servers[name] = start_real_server(self.net, name, name,
                                               http=["0.0.0.0:80", "0.0.0.0:81"])

    def forget_held_connections(self) -> None:
        """Every real server aborts its `/hold` connections (after a case's clients
        closed theirs: the ones whose close never reached it would live on for minutes)."""
        for process in self.servers.values():
            process.send_signal(signal.SIGUSR1)

    def stop_real_server(self, name: str) -> None:
        process = self.servers.pop(name)
        process.kill()
        process.wait()

    def start_director(self, i: int, *, need: int = 2, learn: float | None = 1.0) -> None:
        name = f"d{i}"
        path = self.workdir / f"{name}.yaml"
        path.write_text(director_config(i, self.workdir, need=need, learn=learn,
                                        settings=self.settings))
        path.chmod(0o644)
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - the daemon's stdout
        env = {**os.environ, "STATE_DIRECTORY": str(self.workdir / f"{name}.state"),
               "RUNTIME_DIRECTORY": str(self.workdir / f"{name}.run")}
        self.daemons[name] = self.net.popen(
            name, [sys.executable, "-m", "haipvs", "run", "-c", str(path),
                   "--remove-ipvs-on-exit"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env,
        )

    def stop_director(self, name: str, timeout: float = 30.0) -> int:
        process = self.daemons.pop(name)
        process.send_signal(signal.SIGTERM)
        return process.wait(timeout)

    def log_text(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    def reload_director(self, name: str, *, need: int, learn: float | None,
                        settings: DirectorSettings) -> None:
        """A new config and SIGHUP, as an operator reloads."""
        path = self.workdir / f"{name}.yaml"
        path.write_text(director_config(int(name[1:]), self.workdir, need=need, learn=learn,
                                        settings=settings))
        self.daemons[name].send_signal(signal.SIGHUP)

    def admin(self, name: str, *argv: str) -> subprocess.CompletedProcess[str]:
        """`haipvs ARGV` against the director's admin socket, as an operator runs it."""
        sock = self.workdir / f"{name}.run" / "admin.sock"
        return subprocess.run([sys.executable, "-m", "haipvs", *argv, "--socket", str(sock)],
                              capture_output=True, text=True, timeout=30, check=False)

    def silence(self, host: str) -> float:
        """A silent death: every packet the host sends is lost (haipvs and BIRD keep
        running, unaware; the router's BFD session times out). Returns the wall time just
        before the loss began on the router link: one netlink call from here, not a `tc`
        process (which takes 50-100 ms to start in the emulated guest)."""
        self.silenced.add(host)
        with self.net.iproute(host) as ipr:
            links = [(name, ipr.link_lookup(ifname=name)[0]) for name in self._links(host)]
            started = time.time()
            for name, index in sorted(links, key=lambda link: link[0] != "eth0"):
                if name == "eth0":
                    started = time.time()
                ipr.tc("add", "netem", index, loss=100)
        return started

    def revive(self, host: str) -> None:
        for ifname in self._links(host):
            self.net.run(host, ["tc", "qdisc", "del", "dev", ifname, "root"], check=False)
        self.silenced.discard(host)

    def _links(self, host: str) -> list[str]:
        return ["eth0", "eth1"] if self.sync_network else ["eth0"]

    def add_rr_service(self, host: str, port: int, real_servers: int) -> None:
        """The reference the bench compares mh with: the same real servers behind an rr
        service on another port, programmed with ipvsadm beside haipvs's own (haipvs
        never touches a service it does not own)."""
        service = f"{VIP}:{port}"
        self.net.run(host, ["ipvsadm", "-A", "-t", service, "-s", "rr"])
        for k in range(1, real_servers + 1):
            self.net.run(host, ["ipvsadm", "-a", "-t", service, "-r", f"10.1.{k}.2:{port}",
                                "-i", "-w", "1"])

    def scheduled(self, host: str, port: int = 80) -> int:
        """The connections this director's IPVS scheduled for the service since it was
        created (the service's ``Conns`` counter: only connections this director chose a
        real server for, not the entries connection sync copied from the others)."""
        out = self.net.run(host, ["ipvsadm", "-Ln", "--stats", "--exact", "-t",
                                  f"{VIP}:{port}"], check=False).stdout
        for line in out.splitlines():
            words = line.split()
            if len(words) >= 3 and words[0] in ("TCP", "UDP") and words[1] == f"{VIP}:{port}":
                return int(words[2])
        return 0

    def scheduled_settled(self, hosts: Sequence[str], port: int = 80) -> dict[str, int]:
        """:meth:`scheduled` for each host, read once the counters have stopped moving
        (see :func:`settled_counts`)."""
        return settled_counts(lambda: {host: self.scheduled(host, port) for host in hosts})

    def diagnose(self) -> str:
        """What a failed walk-through needs to be read: BIRD's view on every host, the
        router's route, each daemon's bgp lines and last words."""
        parts = [f"route: {self.net.run('rtr', ['ip', 'route'], check=False).stdout}"]
        for host in ["rtr", *(f"d{i}" for i in range(1, self.directors + 1))]:
            parts.append(f"--- {host} birdc show protocols\n"
                         + self.birdc(host, "show", "protocols", "all"))
        for i in range(1, self.directors + 1):
            name = f"d{i}"
            path = self.workdir / f"{name}.log"
            lines = path.read_text(errors="replace").splitlines() if path.exists() else []
            chosen = [line for line in lines if "bgp." in line or "error" in line]
            parts.append(f"--- {name} log\n" + "\n".join((chosen + lines[-5:])[-40:]))
            parts.append(f"--- {name} ipvsadm\n"
                         + self.net.run(name, ["ipvsadm", "-Ln"], check=False).stdout)
        return "\n".join(parts)

    def stop_all(self) -> None:
        for group in (self.daemons, self.birds, self.servers):
            for process in group.values():
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                process.wait()
            group.clear()


@contextlib.contextmanager
def running_scaleout(
    directors: int = 2, real_servers: int = 2, *, prefix: str = "so-",
    settings: DirectorSettings | None = None, sync_network: bool = False,
    client_addresses: int = 1,
) -> Iterator[ScaleOutLab]:
    workdir = Path(tempfile.mkdtemp(prefix="haipvs-scaleout-",
                                    dir=os.environ.get("TMPDIR", "/tmp")))
    chosen = settings or DirectorSettings(real_servers=real_servers)
    topology = scaleout_topology(directors, real_servers, sync_network=sync_network,
                                 client_addresses=client_addresses)
    with build(topology, prefix=prefix) as net:
        lab = ScaleOutLab(net, workdir, directors, chosen)
        try:
            yield lab
        finally:
            lab.stop_all()
