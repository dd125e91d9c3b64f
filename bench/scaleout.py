"""Scale-out bench (lab): 3 directors (BIRD + haipvs, TUN, mh with mh-port and mh-fallback,
sloppy_tcp=1) behind a BIRD router with L4 ECMP and BFD 100 ms x 3, five real servers;
long-lived TCP connections with heartbeats from a client with several source addresses.

The cases (haipvs.lab.scaleout_walk), each with its own populations of connections to the
mh service and, as the reference that breaks, to an rr service on the same real servers:

1. director death: one director at a time dies silently (100 % loss on its links) and
   comes back, ``--deaths`` times; the router's route change is timed with
   ``ip -ts monitor route`` from the moment the loss was applied;
2. the IPVS sync mesh is turned on (reload), then a death while the fifth real server
   comes up (the mh tables change during the failover);
3. a fourth director joins;
4. a director is drained with ``haipvs drain-director``.

Each director's share of new connections is what it scheduled (its service's ``Conns``
counter) of a burst of short connections (one request each, 100 a second) before the
first case. Ends with ``RESULT directors=3
connections=N broken_director_death=.. broken_backend_change=.. broken_director_join=..
broken_director_drain=.. withdraw_p95_ms=.. director_share_spread=.. rr_broken_...
heartbeat_ms=.. heartbeat_p95_ms=..``: the heartbeats' pace in the slowest case (the mean
interval the mh connections kept, and the interval 95 % of heartbeats went within).
``--ci`` is the lab test's size (fewer connections, two deaths).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

from haipvs.lab.runner import rerun_in_lab_unless_ipvs
from haipvs.lab.scaleout_walk import WalkSettings, p95, run_walk, share_spread

REPO = Path(__file__).resolve().parent.parent
# The rr reference is smaller in the full run: with both at 2,000 the one emulated CPU
# could not open them (most connects timed out) nor keep the heartbeats' pace.
FULL = WalkSettings(connections=2000, rr_connections=500, heartbeat=0.2, deaths=6, ramp=60.0,
                    share_connections=3000)
CI = WalkSettings(connections=150, rr_connections=150, heartbeat=0.2, deaths=2, ramp=4.0,
                  share_connections=600)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ci", action="store_true", help="the lab test's size")
    parser.add_argument("--connections", type=int, default=None)
    parser.add_argument("--deaths", type=int, default=None)
    parser.add_argument("--rr-connections", type=int, default=None)
    parser.add_argument("--share", type=int, default=None,
                        help="short connections for the share spread")
    args = parser.parse_args(argv)
    rerun = rerun_in_lab_unless_ipvs(__file__, sys.argv[1:] if argv is None else argv,
                                     timeout=3000, cwd=str(REPO))
    if rerun is not None:
        return rerun
    settings = CI if args.ci else FULL
    settings = dataclasses.replace(
        settings, connections=args.connections or settings.connections,
        rr_connections=args.rr_connections or args.connections or settings.rr_connections,
        deaths=args.deaths or settings.deaths,
        share_connections=args.share or settings.share_connections)
    outcome = run_walk(settings, lambda line: print(f"# {line}", flush=True), prefix="sob-")
    cases = outcome.cases
    if outcome.failure:
        print(f"# failed: {outcome.failure}")
        print(f"RESULT directors={settings.directors} error=1")
        return 1
    death = cases["director_death"]
    scheduled = outcome.share
    withdraws = death.withdraw_ms + cases["backend_change"].withdraw_ms
    keys = {
        "directors": settings.directors,
        # the mh connections the client held through the deaths (opened, of those tried)
        "connections": death.opened("mh"),
        **{f"broken_{name}": case.broken("mh") for name, case in cases.items()},
        "withdraw_p95_ms": f"{p95(withdraws):.0f}",
        "director_share_spread": f"{share_spread(scheduled):.3f}",
        **{f"rr_broken_{name}": case.broken("rr") for name, case in cases.items()},
        "rr_connections": death.opened("rr"),
        # the slowest case's pace: the mean interval each mh connection kept, and the
        # interval 95 % of the heartbeats went within
        "heartbeat_ms": f"{max(_number(c.mh, 'heartbeat_ms') for c in cases.values()):.0f}",
        "heartbeat_p95_ms": f"{max(_number(c.mh, 'heartbeat_p95_ms') for c in cases.values()):.0f}",
        "lab_bfd_flaps": len(outcome.flaps),
    }
    for case in cases.values():
        for change in case.routes:
            print(f"# {case.name} route: {change}")
    print(f"# new connections scheduled per director: {scheduled} (during the first ramp: "
          f"{death.detail.get('scheduled')}); "
          f"withdraw times (ms): {sorted(round(ms) for ms in withdraws)}")
    print("RESULT " + " ".join(f"{key}={value}" for key, value in keys.items()))
    return 0


def _number(population: dict[str, object], key: str) -> float:
    value = population.get(key)
    return float(value) if isinstance(value, (int, float)) else 0.0


if __name__ == "__main__":
    raise SystemExit(main())
