"""Scale-out mode in the lab: two directors, each with BIRD and haipvs, behind a router
running BIRD with ECMP and BFD (haipvs.lab.scaleout). One topology, one walk through:

1. the VIP is announced only once the gates hold (both real servers in the IPVS table,
   ``need: 2``, after ``learn``), and the router then has one next hop per director;
2. a real server dies: below ``need``, both directors withdraw (the route goes), and
   announce again when it is back;
3. BIRD dies on one director: the router drops that next hop (BFD), haipvs says so
   (``bgp.speaker.failed``), keeps running, and re-announces once BIRD is back;
4. SIGTERM: the router's route to the director is gone while its IPVS table is still
   there (the withdrawal comes first), and the table goes after.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from haipvs.lab.pair import wait_until
from haipvs.lab.scaleout import VIP, ScaleOutLab, running_scaleout

pytestmark = pytest.mark.lab


def events(lab: ScaleOutLab, name: str) -> list[dict[str, Any]]:
    found = []
    for line in lab.log_text(name).splitlines():
        with_json = line.strip()
        if not with_json.startswith("{"):
            continue
        try:
            found.append(json.loads(with_json))
        except ValueError:
            continue
    return found


def named(lab: ScaleOutLab, host: str, event: str) -> list[dict[str, Any]]:
    return [e for e in events(lab, host) if e.get("event") == event]


def test_scale_out_gates_failures_and_shutdown_order() -> None:
    with running_scaleout(directors=2, real_servers=2) as lab:
        try:
            walk_through(lab)
        except (AssertionError, TimeoutError) as failure:
            raise AssertionError(f"{failure}\n{lab.diagnose()}") from failure


def walk_through(lab: ScaleOutLab) -> None:
    lab.start_bird("rtr")
    for host in ("d1", "d2"):
        lab.start_bird(host)
    lab.start_real_servers(2)
    for i in (1, 2):
        lab.start_director(i, need=2, learn=1.0)
    wait_until(lambda: lab.next_hops() == {"10.0.1.2", "10.0.2.2"}, 90, step=0.2)
    # Exists once ip_vs is loaded (by the directors' first netlink call): a flow the
    # routers move to another director arrives as a bare ACK and must be scheduled.
    for host in ("d1", "d2"):
        lab.net.set_sysctl(host, "net.ipv4.vs.sloppy_tcp", "1")

    # 1. announced after the gates held: both real servers were in the table.
    for host in ("d1", "d2"):
        stream = events(lab, host)
        names = [e.get("event") for e in stream]
        announced = names.index("bgp.vip.announced")
        added = [i for i, name in enumerate(names) if name == "ipvs.dest.added"]
        assert len(added) >= 2 and max(added[:2]) < announced, names
        assert names.index("bgp.config.applied") < announced
    reply = lab.net.run("client", ["curl", "-s", "-m", "5", f"http://{VIP}/"]).stdout
    assert reply.strip().startswith("rs"), reply

    # 2. a real server dies: need 2 no longer holds anywhere.
    lab.stop_real_server("rs2")
    wait_until(lambda: lab.next_hops() == set(), 30, step=0.1)
    withdrawn = named(lab, "d1", "bgp.vip.withdrawn")
    assert "need 2 real servers up on tcp/192.0.2.10:80, 1 up" in withdrawn[-1]["reason"]
    lab.start_real_server("rs2")
    wait_until(lambda: lab.next_hops() == {"10.0.1.2", "10.0.2.2"}, 60, step=0.2)

    # 3. BIRD dies on d2: BFD takes the next hop away; haipvs reports and carries on.
    lab.kill_bird("d2")
    wait_until(lambda: lab.next_hops() == {"10.0.1.2"}, 30, step=0.05)
    wait_until(lambda: bool(named(lab, "d2", "bgp.speaker.failed")), 30)
    failed = named(lab, "d2", "bgp.speaker.failed")[-1]
    assert failed["code"] in (104, 111), failed  # ECONNRESET, ECONNREFUSED
    time.sleep(2)
    assert lab.daemons["d2"].poll() is None
    lab.start_bird("d2")
    wait_until(lambda: lab.next_hops() == {"10.0.1.2", "10.0.2.2"}, 60, step=0.2)

    # 4. SIGTERM on d1: the route to d1 goes while d1's IPVS table is still there.
    assert lab.ipvs_dests("d1") == 2
    process = lab.daemons["d1"]
    process.send_signal(15)
    seen_table_when_withdrawn: int | None = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if "10.0.1.2" not in lab.next_hops():
            seen_table_when_withdrawn = lab.ipvs_dests("d1")
            break
        time.sleep(0.02)
    assert process.wait(30) == 0
    lab.daemons.pop("d1")
    assert seen_table_when_withdrawn == 2
    assert lab.ipvs_dests("d1") == 0  # --remove-ipvs-on-exit, after the withdrawal
    assert lab.next_hops() == {"10.0.2.2"}
    last = named(lab, "d1", "bgp.vip.withdrawn")[-1]
    assert last["reason"] == "shutting down"
