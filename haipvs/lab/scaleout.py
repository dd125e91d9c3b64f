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
from collections.abc import Iterator
from pathlib import Path

from haipvs.lab.pair import wait_until
from haipvs.lab.servers import start_real_server
from haipvs.lab.topology import BuiltTopology, Endpoint, Host, Route, Topology, Veth, build

__all__ = ["VIP", "ScaleOutLab", "running_scaleout"]

VIP = "192.0.2.10"
ROUTER_AS = 65000
DIRECTOR_AS = 65001
_NO_RP_FILTER = {
    "net.ipv4.conf.all.rp_filter": "0",
    "net.ipv4.conf.default.rp_filter": "0",
}


def scaleout_topology(directors: int, real_servers: int) -> Topology:
    hosts = [
        Host("rtr", sysctls={"net.ipv4.ip_forward": "1",
                             "net.ipv4.fib_multipath_hash_policy": "1"}),
        Host("client", routes=(Route("default", via="10.0.9.1"),)),
    ]
    links = [Veth(Endpoint("client", "eth0", ("10.0.9.2/24",)),
                  Endpoint("rtr", "c0", ("10.0.9.1/24",)))]
    for i in range(1, directors + 1):
        hosts.append(Host(f"d{i}", routes=(Route("default", via=f"10.0.{i}.1"),),
                          loopback_addresses=(f"{VIP}/32",)))
        links.append(Veth(Endpoint(f"d{i}", "eth0", (f"10.0.{i}.2/24",)),
                          Endpoint("rtr", f"d{i}", (f"10.0.{i}.1/24",))))
    for k in range(1, real_servers + 1):
        hosts.append(Host(f"rs{k}", routes=(Route("default", via=f"10.1.{k}.1"),),
                          loopback_addresses=(f"{VIP}/32",), tunnels=("ipip",),
                          sysctls={**_NO_RP_FILTER, "net.ipv4.conf.tunl0.rp_filter": "0"}))
        links.append(Veth(Endpoint(f"rs{k}", "eth0", (f"10.1.{k}.2/24",)),
                          Endpoint("rtr", f"rs{k}", (f"10.1.{k}.1/24",))))
    return Topology(hosts=tuple(hosts), links=tuple(links))


def router_bird_config(directors: int) -> str:
    lines = [
        "router id 10.0.9.1;",
        "protocol device {}",
        # ECMP: one multipath route over every director announcing the VIP.
        "protocol kernel { ipv4 { export all; }; merge paths on; }",
        'protocol bfd { interface "*" { min rx interval 100 ms; min tx interval 100 ms;'
        " multiplier 3; }; }",
        f"template bgp dir {{ local as {ROUTER_AS}; ipv4 {{ import all; export none; }};"
        " bfd on; hold time 3; keepalive time 1; connect retry time 1; }",
    ]
    lines += [f"protocol bgp d{i} from dir {{ neighbor 10.0.{i}.2 as {DIRECTOR_AS}; }}"
              for i in range(1, directors + 1)]
    return "\n".join(lines) + "\n"


def director_config(i: int, workdir: Path, *, need: int, learn: float) -> str:
    reals = "\n".join(f"      - {{address: 10.1.{k}.2, port: 80}}" for k in (1, 2))
    return f"""director:
  name: d{i}
  log_format: json
ipvs:
  programmer: {{min_interval: 0.05, max_interval: 10}}
virtual_servers:
  - vip: {VIP}
    port: 80
    scheduler: mh
    scheduler_flags: [mh-port, mh-fallback]
    forwarding: tun
    drain: {{timeout: 0}}
    check: {{type: http, path: /, interval: 0.5, timeout: 0.4, rise: 1, fall: 1}}
    real_servers:
{reals}
bgp:
  control_socket: {workdir}/d{i}.bird.ctl
  config_file: {workdir}/d{i}.haipvs-bird.conf
  router_id: 10.0.{i}.2
  local_as: {DIRECTOR_AS}
  neighbours: [{{address: 10.0.{i}.1, remote_as: {ROUTER_AS}}}]
  need: {need}
  learn: {learn}
"""


class ScaleOutLab:
    def __init__(self, net: BuiltTopology, workdir: Path, directors: int) -> None:
        self.net = net
        self.workdir = workdir
        self.directors = directors
        self.birds: dict[str, subprocess.Popen[bytes]] = {}
        self.daemons: dict[str, subprocess.Popen[bytes]] = {}
        self.servers: dict[str, subprocess.Popen[bytes]] = {}

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
        self.birds[host] = self.net.popen(
            host, [bird, "-f", "-c", str(main), "-s", str(socket)],
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
        self.servers[name] = start_real_server(self.net, name, name, http=["0.0.0.0:80"])

    def stop_real_server(self, name: str) -> None:
        process = self.servers.pop(name)
        process.kill()
        process.wait()

    def start_director(self, i: int, *, need: int = 2, learn: float = 1.0) -> None:
        name = f"d{i}"
        path = self.workdir / f"{name}.yaml"
        path.write_text(director_config(i, self.workdir, need=need, learn=learn))
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
    directors: int = 2, real_servers: int = 2, *, prefix: str = "so-"
) -> Iterator[ScaleOutLab]:
    workdir = Path(tempfile.mkdtemp(prefix="haipvs-scaleout-",
                                    dir=os.environ.get("TMPDIR", "/tmp")))
    with build(scaleout_topology(directors, real_servers), prefix=prefix) as net:
        lab = ScaleOutLab(net, workdir, directors)
        try:
            yield lab
        finally:
            lab.stop_all()
