"""Scale-out bench (lab): 3 directors (BIRD + haipvs, TUN, mh with mh-port, sloppy_tcp=1)
behind a BIRD router with ECMP and BFD 100 ms x 3; long-lived TCP connections with
heartbeats; one director dies silently (100 % egress loss on its only link).

Measured so far: connections broken by the death (by cause), how long the router took to
drop the dead director's next hop (polled with `ip route`, about 0.1 s resolution in the
emulated guest), and each director's share of the connections before the death. Not yet:
the backend change, join and drain cases, and the rr reference.

Ends with ``RESULT directors=3 connections=N broken_director_death=B withdraw_ms=MS
director_share_spread=S``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from haipvs.lab.pair import wait_until
from haipvs.lab.runner import rerun_in_lab_unless_ipvs
from haipvs.lab.scaleout import VIP, ScaleOutLab, running_scaleout

REPO = Path(__file__).resolve().parent.parent
DIRECTORS = 3


def connections(lab: ScaleOutLab, host: str) -> int:
    """The director's IPVS connection entries for the VIP, whatever their TCP state."""
    out = lab.net.run(host, ["ipvsadm", "-Lnc"], check=False).stdout
    return sum(1 for line in out.splitlines() if f"{VIP}:80" in line)


def director_death(lab: ScaleOutLab, count: int, heartbeat: float) -> dict[str, object]:
    lab.start_bird("rtr")
    hosts = [f"d{i}" for i in range(1, DIRECTORS + 1)]
    for host in hosts:
        lab.start_bird(host)
    lab.start_real_servers(2)
    for i in range(1, DIRECTORS + 1):
        lab.start_director(i, need=1, learn=1.0)
    everyone = {f"10.0.{i}.2" for i in range(1, DIRECTORS + 1)}
    wait_until(lambda: lab.next_hops() == everyone, 120, step=0.2)
    for host in hosts:
        lab.net.set_sysctl(host, "net.ipv4.vs.sloppy_tcp", "1")
    ramp, duration = 4.0, 20.0
    out = lab.workdir / "holders.json"
    client = lab.net.popen("client", [
        sys.executable, "-m", "haipvs.lab.holders", "--vip", VIP, "--count", str(count),
        "--heartbeat", str(heartbeat), "--duration", str(duration), "--ramp", str(ramp),
        "--out", str(out)])
    time.sleep(ramp + 2.0)
    shares = {host: connections(lab, host) for host in hosts}
    victim = hosts[-1]
    started = time.monotonic()
    lab.net.run(victim, ["tc", "qdisc", "add", "dev", "eth0", "root", "netem", "loss", "100%"])
    wait_until(lambda: f"10.0.{DIRECTORS}.2" not in lab.next_hops(), 30, step=0.01)
    withdraw_ms = (time.monotonic() - started) * 1000
    client.wait(duration + 60)
    result: dict[str, object] = json.loads(out.read_text())
    result.update(withdraw_ms=withdraw_ms, shares=shares)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=300)
    parser.add_argument("--heartbeat", type=float, default=0.2)
    args = parser.parse_args(argv)
    rerun = rerun_in_lab_unless_ipvs(__file__, sys.argv[1:] if argv is None else argv,
                                     timeout=900, cwd=str(REPO))
    if rerun is not None:
        return rerun
    with running_scaleout(directors=DIRECTORS, real_servers=2, prefix="sob-") as lab:
        try:
            death = director_death(lab, args.connections, args.heartbeat)
        except (TimeoutError, subprocess.SubprocessError) as error:
            print(f"# failed: {error}\n{lab.diagnose()}")
            print("RESULT directors=3 error=1")
            return 1
    print("# director death:", json.dumps(death))
    shares = death["shares"]
    assert isinstance(shares, dict)
    total = sum(shares.values()) or 1
    spread = max(abs(n / total - 1 / DIRECTORS) * DIRECTORS for n in shares.values())
    print(f"RESULT directors={DIRECTORS} connections={death['connections']} "
          f"broken_director_death={death['broken']} withdraw_ms={death['withdraw_ms']:.0f} "
          f"director_share_spread={spread:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
