"""The migration of docs/migrating-from-keepalived.md, step 2 and 3, in the lab.

dir1 runs keepalived (master, priority 150). dir2's keepalived.conf (priority 100) is
translated by `haipvs import-keepalived`, and haipvs runs it the way the packaged
unit runs it: an unprivileged user with only the unit's capabilities (read from
packaging/haipvs.service), no new privileges, from wherever the checkout is (root's
0700 home included: haipvs.lab.unprivileged). Then:

- haipvs joins the pair as BACKUP and keepalived keeps the VIPs;
- haipvs programs the same IPVS table as keepalived (hot standby);
- keepalived stops gracefully and haipvs takes the VIPs, and the client's requests
  through the VIP are served by the real servers behind haipvs.

Both keepalived.conf files track `killall -0 haproxy` (weight -60), the most common
keepalived track script, and each director runs a `haproxy` (a copy of sleep: its
/proc comm is haproxy). The import turns the script into track_process; killing and
restarting either haproxy moves the VIPs the same way whichever daemon runs there.
Each director is pid 1 of a PID namespace of its own, with its haproxy, so neither
`killall` nor /proc shows it the other director's haproxy (the lab's network
namespaces share one PID space; two machines do not).

Each test builds and tears down its own namespaces (haipvs.lab.pair).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from haipvs.importer import run_import
from haipvs.lab.pair import VIP, DirectorPair, PairSettings, running_pair, wait_until
from haipvs.lab.unprivileged import NOBODY, unprivileged_python

pytestmark = pytest.mark.lab

UNIT = Path(__file__).resolve().parents[3] / "packaging" / "haipvs.service"
CAPABILITY_BITS = {"CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_SYS_NICE": 23}


def unit_capabilities() -> list[str]:
    """The packaged unit's AmbientCapabilities= (the daemon gets exactly these)."""
    for line in UNIT.read_text().splitlines():
        if line.startswith("AmbientCapabilities="):
            return line.partition("=")[2].split()
    raise AssertionError(f"{UNIT} sets no AmbientCapabilities=")


def keepalived_conf(priority: int) -> str:
    real_servers = "".join(
        f"""
    real_server 10.0.0.{host} 80 {{
        weight 1
        HTTP_GET {{
            url {{
                path /
                status_code 200
            }}
            connect_timeout 1
            retry 1
            delay_before_retry 1
        }}
    }}"""
        for host in (11, 12, 13)
    )
    return f"""! written like a production keepalived.conf
global_defs {{
    router_id dir{1 if priority == 150 else 2}
    script_user root
}}
vrrp_script chk_haproxy {{
    script "killall -0 haproxy"
    interval 1
    weight -60
}}
vrrp_instance VI_WEB {{
    state {"MASTER" if priority == 150 else "BACKUP"}
    interface eth0
    virtual_router_id 51
    priority {priority}
    advert_int 1
    virtual_ipaddress {{
        {VIP}/24
        10.0.0.1/24 dev eth1
    }}
    track_script {{
        chk_haproxy
    }}
}}
virtual_server {VIP} 80 {{
    delay_loop 1
    lb_algo rr
    lb_kind NAT
    protocol TCP
{real_servers}
}}
"""


def ipvs_table(pair: DirectorPair, host: str) -> set[tuple[str, ...]]:
    """`ipvsadm -Ln` as a set of (service) and (service, dest, forward, weight) rows."""
    rows: set[tuple[str, ...]] = set()
    service = ""
    for line in pair.net.run(host, ["ipvsadm", "-Ln"]).stdout.splitlines():
        words = line.split()
        if words[:1] in (["TCP"], ["UDP"]):
            service = f"{words[0]} {words[1]} {words[2]}"
            rows.add((service,))
        elif words[:1] == ["->"] and re.match(r"\d", words[1]):
            rows.add((service, words[1], words[2], words[3]))
    return rows


def own_machine(argv: list[str]) -> list[str]:
    """``argv`` as pid 1 of a PID namespace (with its /proc) of its own.

    The lab's directors share one PID space, and `killall -0 haproxy` on one would see
    the other's haproxy: each director gets the process view a machine of its own has.
    """
    return ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "--", *argv]


def child_of(parent: int) -> int:
    """The one child of ``parent`` (unshare --fork's and nsenter's command)."""
    found: list[int] = []

    def started() -> bool:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == parent:
                found.append(int(entry.name))
                return True
        return False

    wait_until(started, 10)
    return found[0]


@dataclass
class Machine:
    """One director's PID namespace: its keepalived or haipvs (pid 1 there) and its haproxy."""

    name: str
    process: subprocess.Popen[bytes]  # unshare, in the lab's PID space
    haproxy_binary: Path
    haproxy: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The director (keepalived or haipvs), as the lab's PID space numbers it."""
        return child_of(self.process.pid)

    def start_haproxy(self) -> None:
        # A copy of sleep named haproxy: /proc/PID/comm is "haproxy", as killall reads it.
        self.haproxy = subprocess.Popen(
            ["nsenter", f"--target={self.pid}", "--pid", "--", str(self.haproxy_binary), "infinity"]
        )
        child_of(self.haproxy.pid)

    def kill_haproxy(self) -> None:
        assert self.haproxy is not None
        os.kill(child_of(self.haproxy.pid), signal.SIGKILL)
        self.haproxy.wait(10)  # nsenter reaps it: no zombie left for killall to find
        self.haproxy = None

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM the director (a graceful stop: keepalived sends priority 0)."""
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()  # --kill-child: the namespace goes with it
                self.process.wait(5)
        if self.haproxy is not None:
            self.haproxy.wait(5)


@dataclass
class Migration:
    pair: DirectorPair
    dir1: Machine  # keepalived
    dir2: Machine  # haipvs, from dir2's keepalived.conf
    source: Path  # dir2's keepalived.conf
    findings: str  # the importer's stderr
    imported: str  # the haipvs config it wrote


@pytest.fixture
def migration() -> Iterator[Migration]:
    with running_pair(PairSettings(), prefix="mig-") as pair:
        pair.workdir.chmod(0o755)  # the unprivileged daemon reads its config there
        pair.start_real_servers()
        haproxy = pair.workdir / "haproxy"
        shutil.copy("/usr/bin/sleep", haproxy)
        machines: list[Machine] = []
        try:
            ka_conf = pair.workdir / "dir1-keepalived.conf"
            ka_conf.write_text(keepalived_conf(150))
            ka_log = (pair.workdir / "keepalived.log").open("wb")
            dir1 = Machine("dir1", pair.net.popen(
                "dir1",
                own_machine([
                    "keepalived",
                    "-n",
                    "-l",
                    "-D",
                    "-f",
                    str(ka_conf),
                    "-p",
                    str(pair.workdir / "ka.pid"),
                    "-r",
                    str(pair.workdir / "ka-vrrp.pid"),
                    "-c",
                    str(pair.workdir / "ka-check.pid"),
                ]),
                stdout=ka_log,
                stderr=subprocess.STDOUT,
            ), haproxy)
            machines.append(dir1)
            dir1.start_haproxy()

            source = pair.workdir / "dir2-keepalived.conf"
            source.write_text(keepalived_conf(100))
            out, err = io.StringIO(), io.StringIO()
            assert run_import(str(source), out, err) == 0, err.getvalue()
            config = pair.config_path("dir2")
            config.write_text(out.getvalue())
            config.chmod(0o644)

            daemon = unprivileged_python(
                ["-m", "haipvs", "run", "-c", str(config)],
                view_dir=pair.workdir / "view",
                capabilities=unit_capabilities(),
            )
            log = (pair.workdir / "dir2.log").open("wb")
            dir2 = Machine("dir2", pair.net.popen(
                "dir2", own_machine(daemon.argv), stdout=log, stderr=subprocess.STDOUT,
                env=daemon.env,
            ), haproxy)
            machines.append(dir2)
            dir2.start_haproxy()
            yield Migration(pair, dir1, dir2, source, err.getvalue(), out.getvalue())
        finally:
            for machine in reversed(machines):
                machine.stop(15)


def test_imported_config_joins_a_keepalived_pair_and_takes_over(
    migration: Migration,
) -> None:
    pair = migration.pair
    # Step 2: haipvs is backup, keepalived keeps the VIPs.
    try:
        wait_until(lambda: pair.holds_vip("dir1") and pair.vrrp_state("dir2") == "BACKUP", 90)
    except TimeoutError:
        log = (pair.workdir / "dir2.log").read_text(errors="replace")[-3000:]
        raise AssertionError(f"haipvs did not join as BACKUP; its log:\n{log}") from None
    assert not pair.holds_vip("dir2")
    assert migration.dir2.process.poll() is None, (pair.workdir / "dir2.log").read_text()
    # ...and it runs as the unit runs it (unshare, sh and setpriv exec in place, so
    # pid 1 of dir2's PID namespace is the daemon).
    status = Path(f"/proc/{migration.dir2.pid}/status").read_text()
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert fields["Uid"].split()[0] == str(NOBODY)
    expected = sum(1 << CAPABILITY_BITS[name] for name in unit_capabilities())
    assert int(fields["CapEff"], 16) == expected
    assert fields["NoNewPrivs"].strip() == "1"

    # Hot standby: the same IPVS table on both, every real server in (3 dests, weight 1).
    wait_until(
        lambda: len(ipvs_table(pair, "dir2")) == 4 and len(ipvs_table(pair, "dir1")) == 4, 60
    )
    assert ipvs_table(pair, "dir2") == ipvs_table(pair, "dir1")

    # Step 3: keepalived stops gracefully (priority 0); haipvs takes the VIPs.
    migration.dir1.stop(30)
    wait_until(lambda: pair.holds_vip("dir2") and pair.vrrp_state("dir2") == "MASTER", 30)
    assert not pair.holds_vip("dir1")

    served = {
        pair.net.run(
            "client", ["curl", "-s", "-m", "2", f"http://{VIP}/"], check=False
        ).stdout.strip()
        for _ in range(6)
    }
    assert served == {"rs1", "rs2", "rs3"}  # rr over all three, through haipvs's director
    events = pair.log_events("dir2")
    transitions = [
        (e.get("from_state"), e.get("to_state"))
        for e in events
        if e.get("event") == "vrrp.transition"
    ]
    assert transitions[-1][1] in ("master", "MASTER")


def haipvs_priority(pair: DirectorPair) -> tuple[int, list[str]] | None:
    """dir2's effective priority and what status says lowered it."""
    status = pair.status("dir2")
    if status is None or not status["instances"]:
        return None
    instance = status["instances"][0]
    return int(instance["effective_priority"]), list(instance["priority_reasons"])


def test_a_killall_track_script_moves_the_vip_as_keepalived_moves_it(
    migration: Migration,
) -> None:
    """Both directors' keepalived.conf track `killall -0 haproxy` with weight -60.

    -60 rather than keepalived's default weight 0 (FAULT): it shows the priority
    arithmetic (150 - 60 = 90 on dir1, 100 - 60 = 40 on dir2) and that each side reacts
    to the other's lowered priority, and a director whose haproxy died stays the pair's
    last resort (with FAULT on both, the VIPs would sit on neither).
    """
    pair, dir1, dir2 = migration.pair, migration.dir1, migration.dir2

    # The import: the script became a native track_process, nothing of it dropped.
    source_lines = migration.source.read_text().splitlines()
    about_the_script = {
        number
        for number, line in enumerate(source_lines, start=1)
        if "chk_haproxy" in line or "killall" in line
    }
    findings = [
        line
        for line in migration.findings.splitlines()
        if line.startswith(f"{migration.source}:")
        and int(line.split(":")[1]) in about_the_script
    ]
    script_line = source_lines.index('    script "killall -0 haproxy"') + 1
    assert findings == [
        f"{migration.source}:{script_line}: "
        "note: script: `killall -0 haproxy` becomes track_process 'haproxy' (read from /proc)"
    ], migration.findings
    (instance,) = yaml.safe_load(migration.imported)["vrrp"]
    assert instance["track"] == {
        "processes": [
            {"name": "chk_haproxy", "process": "haproxy", "interval": 1, "weight": -60}
        ]
    }

    # keepalived (150) is master, haipvs (100) backup, both haproxies run.
    try:
        wait_until(
            lambda: pair.holds_vip("dir1")
            and pair.vrrp_state("dir2") == "BACKUP"
            and haipvs_priority(pair) == (100, []),
            90,
        )
    except TimeoutError:
        log = (pair.workdir / "dir2.log").read_text(errors="replace")[-3000:]
        raise AssertionError(f"haipvs did not join as BACKUP; its log:\n{log}") from None

    # keepalived's haproxy dies: keepalived drops to 150 - 60 = 90 and haipvs (100,
    # preempt as keepalived's default) takes the VIPs.
    dir1.kill_haproxy()
    wait_until(lambda: pair.holds_vip("dir2") and pair.vrrp_state("dir2") == "MASTER", 30)
    wait_until(lambda: not pair.holds_vip("dir1"), 10)
    keepalived_log = (pair.workdir / "keepalived.log").read_text(errors="replace")
    assert re.search(r"VI_WEB\) Changing effective priority from 150 to 90", keepalived_log), (
        keepalived_log[-3000:]
    )

    # haipvs's haproxy dies: haipvs drops to 100 - 60 = 40, below keepalived's 90,
    # and the VIPs move back to keepalived, as they moved off it.
    dir2.kill_haproxy()
    wait_until(lambda: pair.holds_vip("dir1") and pair.vrrp_state("dir2") == "BACKUP", 30)
    assert not pair.holds_vip("dir2")
    assert haipvs_priority(pair) == (40, ["process chk_haproxy not running (0) -60"])
    events = pair.log_events("dir2")
    tracked = [
        (e["process"], e["to_state"], e["count"], e["weight"])
        for e in events
        if e["event"] == "vrrp.track.process"
    ]
    assert tracked[-1] == ("chk_haproxy", "not_running", 0, -60)
    lowered = [e for e in events if e["event"] == "vrrp.priority.changed"][-1]
    assert (lowered["from_priority"], lowered["to_priority"]) == (100, 40)
    assert "chk_haproxy" in lowered["reason"], lowered

    # haipvs's haproxy starts again: back to 100 > 90, haipvs preempts keepalived.
    dir2.start_haproxy()
    wait_until(lambda: pair.holds_vip("dir2") and pair.vrrp_state("dir2") == "MASTER", 30)
    wait_until(lambda: not pair.holds_vip("dir1"), 10)
    assert haipvs_priority(pair) == (100, [])
    events = pair.log_events("dir2")
    tracked = [
        (e["process"], e["to_state"], e["count"])
        for e in events
        if e["event"] == "vrrp.track.process"
    ]
    assert tracked[-1] == ("chk_haproxy", "running", 1)

    # keepalived's haproxy starts again: back to 150, keepalived preempts haipvs.
    dir1.start_haproxy()
    wait_until(lambda: pair.holds_vip("dir1") and pair.vrrp_state("dir2") == "BACKUP", 30)
    assert not pair.holds_vip("dir2")
    transitions = [
        (e["from_state"], e["to_state"])
        for e in pair.log_events("dir2")
        if e["event"] == "vrrp.transition"
    ]
    assert transitions[-4:] == [
        ("backup", "master"), ("master", "backup"), ("backup", "master"), ("master", "backup")
    ], transitions
