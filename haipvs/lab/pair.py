"""A director pair in the lab: the topology, the configs and the daemons.

    client 198.51.100.2 ─┐                    ┌─ rs1 10.0.0.11
                      [front bridge]       [back bridge]─ rs2 10.0.0.12
    dir1 .11 / 10.0.0.2 ─┤ (VIP .10)  (VIP 10.0.0.1) ├─ rs3 10.0.0.13
    dir2 .12 / 10.0.0.3 ─┘                    └─

Both directors run haipvs (or keepalived) with the same IPVS service (NAT, the real
servers route back through the floating gateway 10.0.0.1); VRRP decides which one
holds the VIPs. Used by `haipvs lab demo`, the daemon's lab tests and bench/failover.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute, NetlinkError

from haipvs.lab.servers import start_real_server
from haipvs.lab.topology import Bridge, BuiltTopology, Endpoint, Host, Route, Topology, Veth, build

__all__ = ["DirectorPair", "PairSettings", "pair_topology", "running_pair"]

VIP = "198.51.100.10"
GATEWAY_VIP = "10.0.0.1"
REAL_SERVERS = ("10.0.0.11", "10.0.0.12", "10.0.0.13")
DIRECTORS = {"dir1": ("198.51.100.11", "10.0.0.2"), "dir2": ("198.51.100.12", "10.0.0.3")}


def pair_topology(real_servers: int = 3) -> Topology:
    director_sysctls = {"net.ipv4.ip_forward": "1", "net.ipv4.vs.conntrack": "1"}
    hosts = [
        Host("sw"),
        Host("client"),
        *(Host(name, sysctls=director_sysctls) for name in DIRECTORS),
        *(
            Host(f"rs{i + 1}", routes=(Route("default", via=GATEWAY_VIP),))
            for i in range(real_servers)
        ),
    ]
    links = [Veth(Endpoint("client", "eth0", ("198.51.100.2/24",)), Endpoint("sw", "client"))]
    front_ports, back_ports = ["client"], []
    for name, (front, back) in DIRECTORS.items():
        links.append(Veth(Endpoint(name, "eth0", (f"{front}/24",)), Endpoint("sw", f"{name}f")))
        links.append(Veth(Endpoint(name, "eth1", (f"{back}/24",)), Endpoint("sw", f"{name}b")))
        front_ports.append(f"{name}f")
        back_ports.append(f"{name}b")
    for i in range(real_servers):
        name = f"rs{i + 1}"
        links.append(Veth(Endpoint(name, "eth0", (f"{REAL_SERVERS[i]}/24",)), Endpoint("sw", name)))
        back_ports.append(name)
    return Topology(
        hosts=tuple(hosts),
        links=tuple(links),
        bridges=(
            Bridge("sw", "front", ports=tuple(front_ports)),
            Bridge("sw", "back", ports=tuple(back_ports)),
        ),
    )


@dataclass(frozen=True, slots=True)
class PairSettings:
    version: int = 3
    advert_interval: float = 1.0
    priorities: tuple[int, int] = (150, 100)
    unicast: bool = False
    check_interval: float = 1.0
    check_timeout: float = 0.5
    rise: int = 2
    fall: int = 2
    real_servers: int = 3
    drain_timeout: float = 5.0
    implementation: str = "haipvs"  # or "keepalived": the reference, same settings


def haipvs_config(name: str, settings: PairSettings) -> str:
    _front, _back = DIRECTORS[name]
    priority = settings.priorities[0 if name == "dir1" else 1]
    peer = DIRECTORS["dir2" if name == "dir1" else "dir1"][0]
    unicast = f"\n    unicast_peers: [{peer}]" if settings.unicast else ""
    real_servers = "\n".join(
        f"      - {{address: {address}, port: 80}}"
        for address in REAL_SERVERS[: settings.real_servers]
    )
    return f"""director:
  name: {name}
  api: 127.0.0.1:9797
  log_format: json
vrrp:
  - name: VI_WEB
    interface: eth0
    vrid: 51
    priority: {priority}
    version: {settings.version}
    advert_interval: {settings.advert_interval}
    preempt: true{unicast}
    vips:
      - {VIP}/24
      - {{address: {GATEWAY_VIP}/24, interface: eth1}}
ipvs:
  programmer: {{min_interval: 0.01, max_interval: 5}}
virtual_servers:
  - name: web
    vip: {VIP}
    port: 80
    scheduler: rr
    forwarding: nat
    drain: {{timeout: {settings.drain_timeout}}}
    check:
      type: http
      path: /
      interval: {settings.check_interval}
      timeout: {settings.check_timeout}
      rise: {settings.rise}
      fall: {settings.fall}
    real_servers:
{real_servers}
"""


def keepalived_config(name: str, settings: PairSettings, rundir: Path) -> str:
    """The same director in keepalived.conf: our yardstick in benches and interop tests."""
    priority = settings.priorities[0 if name == "dir1" else 1]
    front = DIRECTORS[name][0]
    peer = DIRECTORS["dir2" if name == "dir1" else "dir1"][0]
    unicast = (
        f"    unicast_src_ip {front}\n    unicast_peer {{\n        {peer}\n    }}\n"
        if settings.unicast else ""
    )
    checks = "\n".join(
        f"""    real_server {address} 80 {{
        weight 1
        HTTP_GET {{
            url {{
                path /
                status_code 200
            }}
            connect_timeout {settings.check_timeout}
            retry {settings.fall}
            delay_before_retry {settings.check_interval}
        }}
    }}"""
        for address in REAL_SERVERS[: settings.real_servers]
    )
    # vrrp_rlimit_rttime: keepalived's real-time VRRP child is killed by the kernel past
    # RLIMIT_RTTIME (10 ms by default), which a slow lab CPU reaches; keepalived.conf(5)
    # says to raise it on slow processors. A respawned child is not what we measure.
    return f"""global_defs {{
    router_id {name}
    script_user root
    enable_script_security
    vrrp_garp_master_delay 0
    vrrp_rlimit_rttime 5000000
}}
vrrp_instance VI_WEB {{
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority {priority}
    advert_int {settings.advert_interval}
    version {settings.version}
{unicast}    virtual_ipaddress {{
        {VIP}/24 dev eth0
        {GATEWAY_VIP}/24 dev eth1
    }}
}}
virtual_server {VIP} 80 {{
    delay_loop {settings.check_interval}
    lb_algo rr
    lb_kind NAT
    protocol TCP
{checks}
}}
"""


class DirectorPair:
    """A built pair: start/kill directors, real servers and the client; read status."""

    def __init__(self, net: BuiltTopology, settings: PairSettings, workdir: Path) -> None:
        self.net = net
        self.settings = settings
        self.workdir = workdir
        self.directors: dict[str, subprocess.Popen[bytes]] = {}
        self.servers: dict[str, subprocess.Popen[bytes]] = {}
        self.client: subprocess.Popen[bytes] | None = None
        self.client_log = workdir / "client.jsonl"

    # real servers -----------------------------------------------------------------------

    def start_real_servers(self) -> None:
        for i in range(self.settings.real_servers):
            name = f"rs{i + 1}"
            self.servers[name] = start_real_server(self.net, name, name, http=["0.0.0.0:80"])

    def stop_real_server(self, name: str) -> None:
        process = self.servers.pop(name)
        process.kill()
        process.wait()

    # directors --------------------------------------------------------------------------

    def config_path(self, name: str) -> Path:
        return self.workdir / f"{name}.yaml"

    def start_director(self, name: str) -> None:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - the daemon's stdout
        if self.settings.implementation == "keepalived":
            path = self.workdir / f"{name}.keepalived.conf"
            path.write_text(keepalived_config(name, self.settings, self.workdir))
            pids = [str(self.workdir / f"{name}.{kind}.pid") for kind in ("main", "vrrp", "check")]
            argv = ["keepalived", "-n", "-l", "-D", "-f", str(path),
                    "-p", pids[0], "-r", pids[1], "-c", pids[2]]
        else:
            path = self.config_path(name)
            if not path.exists():
                path.write_text(haipvs_config(name, self.settings))
                path.chmod(0o644)
            argv = [sys.executable, "-m", "haipvs", "run", "-c", str(path)]
        self.directors[name] = self.net.popen(
            name, argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, **self.director_directories(name)},
        )

    def director_directories(self, name: str) -> dict[str, str]:
        """Each director's state (overrides) and runtime (admin socket) directories: the
        guest's directors share one filesystem, as systemd's StateDirectory= and
        RuntimeDirectory= would not."""
        return {"STATE_DIRECTORY": str(self.workdir / f"{name}.state"),
                "RUNTIME_DIRECTORY": str(self.workdir / f"{name}.run")}

    def admin_socket(self, name: str) -> str:
        return str(self.workdir / f"{name}.run" / "admin.sock")

    def crash_director(
        self, name: str, *, link_down: bool = False, ipr: IPRoute | None = None
    ) -> None:
        """A dead machine: SIGKILL (keepalived: all its processes), and what a dead
        machine stops at once stops as fast as the lab can: its front link goes down
        first (with ``link_down``), then the daemon dies and its VIPs go (the kernel of
        a killed daemon would otherwise go on forwarding for them). One netlink socket,
        opened beforehand: an `ip` command per step costs ~100 ms in the emulated guest,
        and opening the socket itself may take as long, so a caller that times the
        crash passes one opened in advance (``ipr``, left open).
        """
        process = self.directors.pop(name)
        opened = contextlib.nullcontext(ipr) if ipr is not None else self.net.iproute(name)
        with opened as route:
            index = {ifname: route.link_lookup(ifname=ifname)[0] for ifname in ("eth0", "eth1")}
            if link_down:
                route.link("set", index=index["eth0"], state="down")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            for address, ifname in ((VIP, "eth0"), (GATEWAY_VIP, "eth1")):
                with contextlib.suppress(NetlinkError):  # not held: nothing to remove
                    route.addr("del", index=index[ifname], address=address, prefixlen=24)
        process.wait()

    def revive_link(self, name: str) -> None:
        self.net.link_set(name, "eth0", up=True)

    def stop_director(self, name: str, timeout: float = 30.0) -> None:
        process = self.directors.pop(name)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout)

    def status(self, name: str) -> dict[str, Any] | None:
        result = self.net.run(
            name, ["curl", "-s", "-m", "5", "http://127.0.0.1:9797/status"], check=False
        )
        if result.returncode != 0 or not result.stdout:
            return None
        parsed: dict[str, Any] = json.loads(result.stdout)
        return parsed

    def vrrp_state(self, name: str) -> str | None:
        status = self.status(name)
        if status is None or not status["instances"]:
            return None
        return str(status["instances"][0]["state"])

    def holds_vip(self, name: str) -> bool:
        out = self.net.run(name, ["ip", "-4", "-o", "addr", "show", "dev", "eth0"]).stdout
        return f" {VIP}/" in out

    def client_reaches_vip(self) -> bool:
        """One ping from the client to the VIP answered within a second. busybox's ping:
        the lab needs busybox-static anyway, and iputils-ping is not among ./dev's
        packages (a fresh machine without it failed here)."""
        ping = self.net.run("client", ["busybox", "ping", "-c", "1", "-W", "1", VIP],
                            check=False)
        return ping.returncode == 0

    def client_neighbour(self) -> str:
        """The client's neighbour entry for the VIP (``ip neigh``): whose MAC it uses."""
        return self.net.run("client", ["ip", "neigh", "show", VIP]).stdout

    def log_events(self, name: str) -> list[dict[str, Any]]:
        events = []
        path = self.workdir / f"{name}.log"
        if path.exists():
            for line in path.read_text(errors="replace").splitlines():
                with contextlib.suppress(ValueError):
                    events.append(json.loads(line))
        return events

    # client -----------------------------------------------------------------------------

    def start_client(self, interval: float = 0.02, timeout: float = 0.5) -> None:
        self.client = self.net.popen(
            "client",
            [sys.executable, "-m", "haipvs.lab.client", "--url", f"http://{VIP}/",
             "--interval", str(interval), "--timeout", str(timeout),
             "--out", str(self.client_log)],
            stderr=subprocess.DEVNULL,
        )

    def stop_client(self) -> None:
        if self.client is not None:
            self.client.send_signal(signal.SIGTERM)
            self.client.wait(30)
            self.client = None

    # teardown ---------------------------------------------------------------------------

    def stop_all(self) -> None:
        self.stop_client()
        for name in list(self.directors):
            with contextlib.suppress(Exception):
                self.stop_director(name, timeout=15)
        for process in [*self.directors.values(), *self.servers.values()]:
            with contextlib.suppress(Exception):
                process.kill()
                process.wait(5)
        for name in list(self.servers):
            with contextlib.suppress(Exception):
                self.stop_real_server(name)


def wait_until(condition: Callable[[], bool], timeout: float, step: float = 0.05) -> float:
    """Seconds until `condition` held; raises TimeoutError after `timeout`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"condition not met within {timeout:g} s")
        time.sleep(step)
    return time.monotonic() - started


@contextlib.contextmanager
def running_pair(settings: PairSettings, *, prefix: str = "pair-") -> Iterator[DirectorPair]:
    workdir = Path(tempfile.mkdtemp(prefix="haipvs-pair-", dir=os.environ.get("TMPDIR", "/tmp")))
    with build(pair_topology(settings.real_servers), prefix=prefix) as net:
        pair = DirectorPair(net, settings, workdir)
        try:
            yield pair
        finally:
            pair.stop_all()
