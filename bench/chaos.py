"""The chaos scenarios (tests/chaos) with their figures, in the lab.

    .venv/bin/python bench/chaos.py [--scenarios NAME ...] [--flap-seconds 20]

Runs where the kernel has IPVS; on a host without it, re-executes itself inside
``haipvs lab run`` (a guest kernel with IPVS). One haipvs director pair
(haipvs.lab.pair, VRRPv3 at 0.5 s, dir1 priority 150, dir2 100, three real servers,
a client sending a request through the VIP every 20 ms) lives through every
scenario of haipvs/lab/chaos.py in turn; each restores the steady state first,
injects its fault, asserts the outcome and returns its figures.

One line per scenario (``ok`` or ``FAILED`` with the reason, then its figures),
the VRRP adverts each director dropped by reason, and a final line
``RESULT scenarios_passed=N scenarios_total=N <scenario>_<figure>=... ...``.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from haipvs.lab.runner import rerun_in_lab_unless_ipvs

REPO = Path(__file__).resolve().parent.parent

# Figures worth a place on the RESULT line (the per-scenario lines have them all).
HEADLINE = {
    "master_sigkill": ("outage_ms",),
    "master_link_down": ("outage_ms",),
    "master_lossy_uplink": ("ok_share", "transitions"),
    "partition": ("converged_ms", "client_recovered_ms"),
    "backend_flapping": ("rs3_check_transitions", "other_backend_events"),
    "drift_repair": ("clear_repaired_ms", "delete_repaired_ms", "clear_repairs",
                     "delete_repairs"),
    "sighup_storm": ("reloads_applied", "same_file_reloads_applied", "same_file_ipvs_ops"),
    "invalid_reload_failover": ("outage_ms",),
    "hanging_notify": ("killed_after_ms",),
    "blackhole_target": ("other_checks_schedule_share",),
    "stalled_backup": ("false_takeovers",),
}




def main(argv: Sequence[str] | None = None) -> int:
    import haipvs.lab.chaos as chaos_lab  # after the lab re-exec: it needs the guest


    names = [scenario.name for scenario in chaos_lab.SCENARIOS]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="*", default=names, choices=names)
    parser.add_argument("--flap-seconds", type=float, default=chaos_lab.FLAP_SECONDS)
    args = parser.parse_args(argv)
    rerun = rerun_in_lab_unless_ipvs(__file__, sys.argv[1:] if argv is None else argv,
                                     timeout=1500, cwd=str(REPO))
    if rerun is not None:
        return rerun
    selected = [s for s in chaos_lab.SCENARIOS if s.name in args.scenarios]
    passed = 0
    fields: list[str] = []
    started = time.monotonic()
    with chaos_lab.chaos_pair(prefix="bch-") as pair:
        print(f"# pair up in {time.monotonic() - started:.1f} s, logs in {pair.workdir}",
              flush=True)
        for scenario in selected:
            began = time.monotonic()
            try:
                if scenario.name == "backend_flapping":
                    figures = chaos_lab.scenario_backend_flapping(pair, args.flap_seconds)
                else:
                    figures = scenario.run(pair)
            except Exception as error:  # a failed scenario is a figure too
                print(f"FAILED {scenario.name} ({scenario.what}): "
                      f"{type(error).__name__}: {error}", flush=True)
                traceback.print_exc(limit=3)
                measured = getattr(error, "figures", {})
                if measured:
                    print("       measured: " + " ".join(
                        f"{key}={value}" for key, value in measured.items()), flush=True)
                fields.append(f"{scenario.name}=failed")
                fields += [f"{scenario.name}_{key}={measured[key]}"
                           for key in HEADLINE.get(scenario.name, ()) if key in measured]
                continue
            passed += 1
            took = time.monotonic() - began
            print(f"ok     {scenario.name} ({scenario.what}) in {took:.0f} s: "
                  + " ".join(f"{key}={value}" for key, value in figures.items()), flush=True)
            fields += [f"{scenario.name}_{key}={figures[key]}"
                       for key in HEADLINE.get(scenario.name, ()) if key in figures]
        drops: dict[str, int] = {}
        for name in chaos_lab.DIRECTORS:
            status = pair.status(name)
            instances = status["instances"] if status else []
            for instance in instances:
                for reason, count in instance.get("adverts_dropped", {}).items():
                    drops[reason] = drops.get(reason, 0) + int(count)
            print(f"# {name} adverts dropped by reason: "
                  f"{instances[0].get('adverts_dropped') if instances else 'no status'}")
        fields += [f"drops_{reason}={count}" for reason, count in sorted(drops.items())]
    fields.append(f"lab_seconds={time.monotonic() - started:.0f}")
    print(f"RESULT scenarios_passed={passed} scenarios_total={len(selected)} "
          + " ".join(fields), flush=True)
    return 0 if passed == len(selected) else 1


if __name__ == "__main__":
    sys.exit(main())
