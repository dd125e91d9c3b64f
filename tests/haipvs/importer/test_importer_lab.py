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

Each test builds and tears down its own namespaces (haipvs.lab.pair).
"""

from __future__ import annotations

import io
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

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


@pytest.fixture
def migrated_pair() -> Iterator[DirectorPair]:
    with running_pair(PairSettings(), prefix="mig-") as pair:
        pair.workdir.chmod(0o755)  # the unprivileged daemon reads its config there
        pair.start_real_servers()

        ka_conf = pair.workdir / "dir1-keepalived.conf"
        ka_conf.write_text(keepalived_conf(150))
        ka_log = (pair.workdir / "keepalived.log").open("wb")
        keepalived = pair.net.popen(
            "dir1",
            [
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
            ],
            stdout=ka_log,
            stderr=subprocess.STDOUT,
        )
        pair.directors["keepalived"] = keepalived

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
        pair.directors["dir2"] = pair.net.popen(
            "dir2", daemon.argv, stdout=log, stderr=subprocess.STDOUT, env=daemon.env
        )
        try:
            yield pair
        finally:
            process = pair.directors.pop("keepalived", None)
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(15)


def test_imported_config_joins_a_keepalived_pair_and_takes_over(
    migrated_pair: DirectorPair,
) -> None:
    pair = migrated_pair
    # Step 2: haipvs is backup, keepalived keeps the VIPs.
    try:
        wait_until(lambda: pair.holds_vip("dir1") and pair.vrrp_state("dir2") == "BACKUP", 90)
    except TimeoutError:
        log = (pair.workdir / "dir2.log").read_text(errors="replace")[-3000:]
        raise AssertionError(f"haipvs did not join as BACKUP; its log:\n{log}") from None
    assert not pair.holds_vip("dir2")
    assert pair.directors["dir2"].poll() is None, (pair.workdir / "dir2.log").read_text()
    # ...and it runs as the unit runs it (ip netns exec, unshare, sh and setpriv exec
    # in place, so the process we started is the daemon).
    status = Path(f"/proc/{pair.directors['dir2'].pid}/status").read_text()
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
    keepalived = pair.directors.pop("keepalived")
    keepalived.send_signal(signal.SIGTERM)
    keepalived.wait(30)
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
