"""VRRP soak: no false takeover while the daemon is busy checking.

    python bench/vrrp_soak.py [--duration 600]   # enters the lab itself

The lab director pair (haipvs.lab.pair topology) runs the full haipvs daemon on
both directors with VRRPv3 at 0.05 s adverts (dir1 priority 150, dir2 100) and a
virtual server of --real-servers HTTP real servers (one lab host listening on
that many ports) checked every second, which keeps the lab's one CPU busy.
Nothing fails during the run, so any change of VRRP state after the initial
election is a false takeover (the backup believed the master dead, or the
master stepped down).

The last line is ``RESULT false_takeovers=N ...`` with the worst VRRP event-loop
lag the daemons reported, from their logs.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from haipvs.lab.pair import PairSettings, haipvs_config, running_pair, wait_until
from haipvs.lab.runner import rerun_in_lab_unless_ipvs


def soak_config(name: str, settings: PairSettings, ports: Sequence[int]) -> str:
    """The pair's daemon config with the real servers replaced by ``ports`` on rs1."""
    text = haipvs_config(name, settings)
    head, _, _ = text.partition("    real_servers:\n")
    servers = "\n".join(f"      - {{address: 10.0.0.11, port: {port}}}" for port in ports)
    return f"{head}    real_servers:\n{servers}\n"


def transitions(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [event for event in events if event.get("event") == "vrrp.transition"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600.0)
    parser.add_argument("--real-servers", type=int, default=1000)
    parser.add_argument("--advert-interval", type=float, default=0.05)
    args = parser.parse_args(argv)
    rerun = rerun_in_lab_unless_ipvs(__file__, sys.argv[1:] if argv is None else argv,
                                     timeout=max(1200.0, args.duration + 600))
    if rerun is not None:
        return rerun
    settings = PairSettings(
        version=3,
        advert_interval=args.advert_interval,
        real_servers=1,
        check_interval=1.0,
        check_timeout=1.0,
    )
    ports = [10000 + i for i in range(args.real_servers)]
    # One lab host listens on every port and each daemon keeps a connection per
    # check: well beyond the default 1024 descriptors. Children inherit this.
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # The saturated real server may hold many accepted connections at once (each
    # daemon opens 1,000 a second): room for several seconds of backlog.
    wanted = max(64 * args.real_servers, 65536)
    try:  # root may raise the hard limit too
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(wanted, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with running_pair(settings, prefix="soak-") as pair:
        argv_server = [sys.executable, "-m", "haipvs.lab.servers", "--name", "rs1"]
        for port in ports:
            argv_server += ["--http", f"0.0.0.0:{port}"]
        server = pair.net.popen("rs1", argv_server, stdout=subprocess.PIPE)
        pair.servers["rs1"] = server
        assert server.stdout is not None
        if server.stdout.readline().strip() != b"ready":
            print("real server did not start", file=sys.stderr)
            return 1
        for name in ("dir1", "dir2"):
            pair.config_path(name).write_text(soak_config(name, settings, ports))
        pair.start_director("dir2")
        pair.start_director("dir1")
        # Settled means both VRRP instances are up and in their roles: a daemon that
        # starts slowly would otherwise log its start-up (init -> backup) in the soak.
        wait_until(lambda: pair.holds_vip("dir1") and not pair.holds_vip("dir2")
                   and pair.vrrp_state("dir1") == "MASTER"
                   and pair.vrrp_state("dir2") == "BACKUP", 120, step=0.2)
        settled = {name: len(transitions(pair.log_events(name))) for name in ("dir1", "dir2")}
        print(f"elected: dir1 master; soaking {args.duration:g} s with "
              f"{args.real_servers} real servers checked every second", flush=True)
        started = time.monotonic()
        holders_wrong = 0
        worst = {"vrrp_loop_lag_ms": 0.0, "loop_lag_ms": 0.0}
        samples = 0
        while time.monotonic() - started < args.duration:
            time.sleep(5)
            # The guest is saturated on purpose: a probe that times out is
            # skipped, never a reason to stop the soak.
            with contextlib.suppress(subprocess.SubprocessError):
                if not pair.holds_vip("dir1") or pair.holds_vip("dir2"):
                    holders_wrong += 1
            # The status API's lag is the last sample of each loop: the VRRP
            # thread's own loop and the main loop that runs the checkers.
            for name in ("dir1", "dir2"):
                with contextlib.suppress(subprocess.SubprocessError, ValueError):
                    status = pair.status(name) or {}
                    samples += 1
                    for key, seen in list(worst.items()):
                        worst[key] = max(seen, float(status.get(key, 0.0)))
        false_takeovers = 0
        for name in ("dir1", "dir2"):
            later = transitions(pair.log_events(name))[settled[name]:]
            for event in later:
                print(f"{name}: {event.get('from_state')} -> {event.get('to_state')} "
                      f"reason={event.get('reason')} {event.get('detail', '')}", flush=True)
            false_takeovers += len(later)
    print(
        f"RESULT false_takeovers={false_takeovers} vip_misplaced_samples={holders_wrong} "
        f"duration_s={args.duration:g} real_servers={args.real_servers} "
        f"advert_interval={args.advert_interval:g} "
        f"worst_vrrp_loop_lag_ms={worst['vrrp_loop_lag_ms']:.1f} "
        f"worst_main_loop_lag_ms={worst['loop_lag_ms']:.1f} status_samples={samples}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
