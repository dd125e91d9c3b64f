"""Scale-out gates in the lab, beside test_scaleout's walk-through: two directors with BIRD
and haipvs behind a router running BIRD with ECMP and BFD (haipvs.lab.scaleout).

1. ``learn``: a director announces only once its warm-up has passed, although every other
   gate held long before; haipvs set ``net.ipv4.vs.sloppy_tcp`` to 1 before announcing;
   both directors report the same table fingerprint, in canonical order;
2. ``haipvs drain-director``: the router loses that next hop while the director's IPVS table
   stays; the drain survives a restart (the restarted daemon never announces); ``haipvs
   undrain-director`` brings the next hop back;
3. BIRD refuses a command (``configure`` of a file it cannot parse): one
   ``bgp.speaker.failed`` line with BIRD's code and words, the daemon keeps running and
   retries, and once the file is fixed the VIP is announced again;
4. the VIP leaves a director's lo: that director withdraws, and announces once it is back;
5. sloppy_tcp set back to 0 by someone else is set again.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import time
from typing import Any

import pytest

from haipvs.lab.pair import wait_until
from haipvs.lab.scaleout import VIP, ScaleOutLab, running_scaleout

pytestmark = pytest.mark.lab

BOTH = {"10.0.1.2", "10.0.2.2"}
LEARN = 4.0


def events(lab: ScaleOutLab, host: str, event: str) -> list[dict[str, Any]]:
    found = []
    for line in lab.log_text(host).splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("event") == event:
            found.append(entry)
    return found


def at(entry: dict[str, Any]) -> float:
    return datetime.datetime.fromisoformat(entry["timestamp"]).timestamp()


def admin(lab: ScaleOutLab, host: str, *argv: str) -> subprocess.CompletedProcess[str]:
    sock = lab.workdir / f"{host}.run" / "admin.sock"
    return subprocess.run([sys.executable, "-m", "haipvs", *argv, "--socket", str(sock)],
                          capture_output=True, text=True, timeout=30, check=False)


def test_learn_director_drain_and_a_refusing_bird() -> None:
    with running_scaleout(directors=2, real_servers=2, prefix="bg-") as lab:
        try:
            walk_through(lab)
        except (AssertionError, TimeoutError) as failure:
            raise AssertionError(f"{failure}\n{lab.diagnose()}") from failure


def walk_through(lab: ScaleOutLab) -> None:
    for host in ("rtr", "d1", "d2"):
        lab.start_bird(host)
    lab.start_real_servers(2)
    for i in (1, 2):
        lab.start_director(i, need=2, learn=LEARN)
    wait_until(lambda: lab.next_hops() == BOTH, 90, step=0.2)
    # haipvs set sloppy_tcp itself (the kernel's default is 0), before it announced.
    for host in ("d1", "d2"):
        value = lab.net.run(host, ["sysctl", "-n", "net.ipv4.vs.sloppy_tcp"]).stdout.strip()
        assert value == "1", (host, value)
        (set_line,) = events(lab, host, "bgp.sloppy_tcp.set")
        assert set_line["was"] == "0"
        assert at(set_line) <= at(events(lab, host, "bgp.vip.announced")[0])

    # 1. learn: both real servers were in the table within about a second; the announcement
    # waited for the warm-up, counted from the BGP part's start (its first configure).
    for host in ("d1", "d2"):
        configured = at(events(lab, host, "bgp.config.applied")[0])
        announced = at(events(lab, host, "bgp.vip.announced")[0])
        dests_added = [at(e) for e in events(lab, host, "ipvs.dest.added")]
        assert max(dests_added[:2]) < configured + LEARN - 1.0, (dests_added, configured)
        assert announced >= configured + LEARN - 0.1, (announced - configured)

    # The two directors programmed the same table, real servers in the same kernel order:
    # the same fingerprint, canonical order (mh hashes alike on both).
    tables = {}
    for host in ("d1", "d2"):
        status = json.loads(lab.net.run(
            host, ["curl", "-s", "-m", "5", "http://127.0.0.1:9797/status"]).stdout)
        (service,) = status["services"]
        tables[host] = (service["fingerprint"], service["dest_order_canonical"])
    assert tables["d1"] == tables["d2"] and tables["d1"][1] is True, tables

    # 2. drain-director on d1: the router keeps only d2; d1 still programs its table.
    drained = admin(lab, "d1", "drain-director")
    assert drained.returncode == 0, drained.stderr
    assert "director drained: every VIP withdrawn from the routers" in drained.stdout
    wait_until(lambda: lab.next_hops() == {"10.0.2.2"}, 30, step=0.05)
    (line,) = events(lab, "d1", "operator.director.drain")
    assert line["uid"] == 0 and line["changed"] is True
    assert events(lab, "d1", "bgp.vip.withdrawn")[-1]["reason"] == \
        "director drained by the operator"
    assert lab.ipvs_dests("d1") == 2
    reply = lab.net.run("client", ["curl", "-s", "-m", "5", f"http://{VIP}/"]).stdout
    assert reply.strip().startswith("rs"), reply  # served by d2
    listed = admin(lab, "d1", "overrides")
    assert "drained: every VIP withdrawn from the routers, by uid 0" in listed.stdout

    # ... and a restart keeps it: the new daemon programs its table, passes learn, and
    # does not announce.
    assert lab.stop_director("d1") == 0
    starts = len(events(lab, "d1", "bgp.config.applied"))
    lab.start_director(1, need=2, learn=1.0)
    wait_until(lambda: len(events(lab, "d1", "bgp.config.applied")) > starts, 60)
    wait_until(lambda: lab.ipvs_dests("d1") == 2, 60)
    time.sleep(3.0)  # learn (1 s) and several gate evaluations
    assert lab.next_hops() == {"10.0.2.2"}
    loaded = events(lab, "d1", "operator.overrides.loaded")[-1]
    assert loaded["director_drained"] is True

    undrained = admin(lab, "d1", "undrain-director")
    assert undrained.returncode == 0, undrained.stderr
    wait_until(lambda: lab.next_hops() == BOTH, 30, step=0.05)
    assert [e["changed"] for e in events(lab, "d1", "operator.director.undrain")] == [True]

    # 3. BIRD on d2 refuses the next configure: its main file no longer parses. A reload
    # that changes the generated part (the hold time) makes haipvs ask for it.
    main = lab.workdir / "d2.bird.conf"
    good = main.read_text()
    main.write_text(good + "this is not a bird statement;\n")
    config = lab.workdir / "d2.yaml"
    config.write_text(config.read_text() + "  hold_time: 9\n")
    lab.daemons["d2"].send_signal(1)  # SIGHUP: reload
    wait_until(lambda: any(e["code"] == 8002 for e in events(lab, "d2", "bgp.speaker.failed")),
               30)
    failed = next(e for e in events(lab, "d2", "bgp.speaker.failed") if e["code"] == 8002)
    assert failed["op"] == "configure" and "d2.bird.conf" in failed["error"], failed
    assert failed["retry_in"] > 0
    time.sleep(2.0)  # several retries, each refused
    assert lab.daemons["d2"].poll() is None
    # BIRD kept its running config, the static enabled: the router still has both.
    assert lab.next_hops() == BOTH
    assert len([e for e in events(lab, "d2", "bgp.speaker.failed") if e["code"] == 8002]) >= 2
    applied = len(events(lab, "d2", "bgp.config.applied"))
    main.write_text(good)
    wait_until(lambda: len(events(lab, "d2", "bgp.config.applied")) > applied, 30)
    # configure disabled the static again; the gates announce it afresh.
    assert "hold time 9;" in (lab.workdir / "d2.haipvs-bird.conf").read_text()
    wait_until(lambda: lab.next_hops() == BOTH, 30, step=0.1)
    assert events(lab, "d2", "bgp.vip.announced")[-1]["timestamp"] > failed["timestamp"]

    # 4. The VIP leaves d2's lo: d2 cannot take its packets, so it withdraws (the router
    # keeps d1) and says why; back on lo, announced again.
    lab.net.run("d2", ["ip", "addr", "del", f"{VIP}/32", "dev", "lo"])
    wait_until(lambda: lab.next_hops() == {"10.0.1.2"}, 30, step=0.05)
    assert events(lab, "d2", "bgp.vip.withdrawn")[-1]["reason"] == \
        f"{VIP} is not an address of this director (put it on lo)"
    lab.net.run("d2", ["ip", "addr", "add", f"{VIP}/32", "dev", "lo"])
    wait_until(lambda: lab.next_hops() == BOTH, 30, step=0.05)

    # 5. sloppy_tcp set back to 0 behind haipvs's back: set again at the next evaluation.
    lab.net.set_sysctl("d1", "net.ipv4.vs.sloppy_tcp", "0")
    wait_until(lambda: len(events(lab, "d1", "bgp.sloppy_tcp.set")) >= 2, 30)
    assert lab.net.run("d1", ["sysctl", "-n", "net.ipv4.vs.sloppy_tcp"]).stdout.strip() == "1"
