"""`haipvs lab demo scaleout`: three active directors (BIRD + haipvs) behind a router
with ECMP, four real servers, one client holding long-lived connections.

It walks through the scale-out mode's life and prints, after each step, what the
client's connections saw (each sends a heartbeat every 200 ms through the directors):

1. three directors announce the VIP; the router has three next hops;
2. new connections spread over them (what each director scheduled);
3. one director dies silently (100 % packet loss): the router withdraws it (BFD);
   the connections it carried move to the others and keep flowing;
4. a fourth director joins: the router spreads over it too;
5. the operator drains a director with `haipvs drain-director`: it withdraws gracefully.

Runs inside the lab (`haipvs lab demo scaleout` boots it); exits 0 when every step held.
"""

from __future__ import annotations

import sys
import time

from haipvs.lab.demo import Timeline, step
from haipvs.lab.scaleout import ScaleOutLab, running_scaleout
from haipvs.lab.scaleout_walk import (
    MH_PORT,
    Population,
    RouteWatch,
    WalkSettings,
    address,
    bring_up,
    director_settings,
    share_spread,
    start_one,
    started_directors,
)

__all__ = ["main"]

SETTINGS = WalkSettings(connections=300, heartbeat=0.2, ramp=5.0, real_servers=5)


def client_saw(timeline: Timeline, population: Population, since: float) -> None:
    broken = population.broken_since(since)
    held = population.progress().get("connections")
    if not broken:
        timeline.say(f"  the client's {held} long-lived connections: none broken")
    else:
        text = ", ".join(f"{n} {cause}" for cause, n in sorted(broken.items()))
        timeline.say(f"  the client's {held} long-lived connections: {sum(broken.values())} "
                     f"broken ({text})")
        timeline.failures.append("connections broke")


def run_demo() -> int:
    timeline = Timeline()
    timeline.say("building the lab: router (BIRD, ECMP, BFD 100 ms x 3), four directors' "
                 "hosts, five real servers' hosts, a client")
    with running_scaleout(directors=4, real_servers=SETTINGS.real_servers, prefix="sod-",
                          settings=director_settings(SETTINGS),
                          client_addresses=SETTINGS.client_addresses) as lab:
        watch = RouteWatch(lab)
        try:
            walk(timeline, lab, watch)
        finally:
            watch.close()
    if timeline.failures:
        timeline.say(f"demo FAILED: {len(timeline.failures)} step(s) did not hold")
        return 1
    timeline.say("demo finished: every step held")
    return 0


def walk(timeline: Timeline, lab: ScaleOutLab, watch: RouteWatch) -> None:
    try:
        seconds = bring_up(lab, SETTINGS)
    except TimeoutError:
        timeline.check(False, "d1, d2, d3 announced the VIP: not within 120 s")
        return
    timeline.check(True, f"d1, d2 and d3 announced the VIP after {seconds:.1f} s; the router "
                         f"has next hops {sorted(lab.next_hops())}")

    hosts = started_directors(lab)
    before = lab.scheduled_settled(hosts, MH_PORT)
    timeline.say(f"the client opens {SETTINGS.connections} long-lived connections from "
                 f"{SETTINGS.client_addresses} addresses")
    population = Population(lab, "demo", MH_PORT, SETTINGS)
    population.wait_ramped(SETTINGS.ramp * 4 + 60)
    after = lab.scheduled_settled(hosts, MH_PORT)
    scheduled = {host: after[host] - before[host] for host in hosts}
    spread = share_spread(scheduled)
    timeline.check(spread <= 0.25, "traffic spreads: new connections scheduled per director "
                   + ", ".join(f"{h} {n}" for h, n in scheduled.items())
                   + f" (largest deviation from 1/3: {spread * 100:.0f} %)")
    client_saw(timeline, population, 0.0)

    mark = time.monotonic()
    wall = lab.silence("d3")
    timeline.say("d3 dies silently: 100 % of its packets lost (its haipvs and BIRD keep "
                 "running, unaware)")
    step(timeline, "the router withdrew d3 (BFD)",
         lambda: watch.route_without(address("d3"), wall) is not None, 30)
    landed = watch.route_without(address("d3"), wall)
    if landed is not None:
        timeline.say(f"  route changed {(landed - wall) * 1000:.0f} ms after the loss began; "
                     f"next hops now {sorted(lab.next_hops())}")
    time.sleep(3.0)
    client_saw(timeline, population, mark)

    mark = time.monotonic()
    timeline.say("d4 starts: BIRD and haipvs")
    start_one(lab, 4, SETTINGS)
    step(timeline, "d4 announced; the router spreads over d1, d2, d4",
         lambda: lab.next_hops() == {address(h) for h in ("d1", "d2", "d4")}, 120)
    time.sleep(3.0)
    client_saw(timeline, population, mark)

    mark = time.monotonic()
    wall = time.time()
    reply = lab.admin("d1", "drain-director")
    timeline.check(reply.returncode == 0,
                   f"the operator runs `haipvs drain-director` on d1: "
                   f"{(reply.stdout or reply.stderr).strip()}")
    step(timeline, "the router withdrew d1",
         lambda: watch.route_without(address("d1"), wall) is not None, 30)
    landed = watch.route_without(address("d1"), wall)
    if landed is not None:
        timeline.say(f"  route changed {(landed - wall) * 1000:.0f} ms after the command "
                     "started (its own start included)")
    time.sleep(3.0)
    timeline.say(f"  next hops now {sorted(lab.next_hops())}; d1 still runs its IPVS table")
    client_saw(timeline, population, mark)
    result = population.stop()
    timeline.say(f"the client closes its connections: {result.get('broken')} of "
                 f"{result.get('connections')} broken over the whole walk, by cause "
                 f"{result.get('causes')}")
    if result.get("broken"):
        timeline.failures.append("connections broke")


def main() -> int:
    return run_demo()


if __name__ == "__main__":
    sys.exit(main())
