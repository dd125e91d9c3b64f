"""The lab itself: a client reaches two real servers through an IPVS NAT service.

This is the lab's NAT topology, programmed through pyroute2's IPVS classes directly
(not through haipvs) so that it proves the lab and nothing else.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time

import pytest
from pyroute2 import IPVS, IPVSDest, IPVSService

from haipvs.lab.servers import start_real_server
from haipvs.lab.topology import Bridge, Endpoint, Host, Route, Topology, Veth, build

pytestmark = pytest.mark.lab

VIP = "198.51.100.10"

NAT_TOPOLOGY = Topology(
    hosts=(
        Host("client", routes=(Route("default", via="198.51.100.1"),)),
        Host("dir", sysctls={"net.ipv4.ip_forward": "1"}, loopback_addresses=(f"{VIP}/32",)),
        Host("rs1", routes=(Route("default", via="10.0.0.1"),)),
        Host("rs2", routes=(Route("default", via="10.0.0.1"),)),
    ),
    links=(
        Veth(Endpoint("client", "eth0", ("198.51.100.2/24",)),
             Endpoint("dir", "eth0", ("198.51.100.1/24",))),
        Veth(Endpoint("rs1", "eth0", ("10.0.0.11/24",)), Endpoint("dir", "rs1")),
        Veth(Endpoint("rs2", "eth0", ("10.0.0.12/24",)), Endpoint("dir", "rs2")),
    ),
    bridges=(Bridge("dir", "br0", ports=("rs1", "rs2"), addresses=("10.0.0.1/24",)),),
)


def test_nat_service_alternates_between_real_servers_and_counts_them() -> None:
    with build(NAT_TOPOLOGY, prefix="smoke-") as net:
        servers = [
            start_real_server(net, "rs1", "rs1", http=["0.0.0.0:80"]),
            start_real_server(net, "rs2", "rs2", http=["0.0.0.0:80"]),
        ]
        try:
            with IPVS(netns=net.ns("dir")) as ipvs:
                service = IPVSService(addr=VIP, port=80, protocol=socket.IPPROTO_TCP,
                                      sched_name="rr")
                ipvs.service("add", service=service)
                for address in ("10.0.0.11", "10.0.0.12"):
                    ipvs.dest("add", service=service,
                              dest=IPVSDest(addr=address, port=80, fwd_method=0, weight=1))
            answers = []
            for _ in range(4):
                result = net.run("client", ["curl", "-s", "-m", "5", f"http://{VIP}/"],
                                 check=False)
                if result.returncode != 0:  # no curl on this machine: use Python
                    result = net.run("client", [
                        "python3", "-c",
                        "import urllib.request,sys;"
                        f"sys.stdout.write(urllib.request.urlopen('http://{VIP}/',"
                        "timeout=5).read().decode())",
                    ])
                answers.append(result.stdout.strip())
            assert answers in (["rs2", "rs1", "rs2", "rs1"], ["rs1", "rs2", "rs1", "rs2"])
            # The kernel folds its per-CPU counters into what it reports every 2 s
            # (the rate estimator's timer): wait for them rather than read them once.
            deadline = time.monotonic() + 10.0
            while True:
                stats = net.run("dir", ["ipvsadm", "-Ln", "--stats"]).stdout
                conns = [int(m) for m in re.findall(r"->\s+10\.0\.0\.1[12]:80\s+(\d+)", stats)]
                if conns == [2, 2] or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert conns == [2, 2], stats
        finally:
            for server in servers:
                server.terminate()
                try:
                    server.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    server.kill()
