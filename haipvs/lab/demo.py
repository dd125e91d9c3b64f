"""`haipvs lab demo`: two real haipvs directors, three real servers, one client.

It walks through what on-call cares about and prints a short timeline, each step
with what the client measured (it sends a new HTTP request to the VIP every 20 ms):

1. the pair comes up: dir1 (priority 150) becomes MASTER, dir2 (100) BACKUP;
2. a real server fails: its check fails, it is drained and removed;
3. the master crashes (SIGKILL, VIPs gone): the backup takes over;
4. the old master returns: it preempts, the backup steps down.

Runs inside the lab (`haipvs lab demo` boots it); exits 0 when every step held.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from haipvs.lab.client import Outage, outages, read_samples
from haipvs.lab.pair import DirectorPair, PairSettings, running_pair, wait_until

__all__ = ["main"]

SETTINGS = PairSettings(
    version=3, advert_interval=0.5, check_interval=0.5, check_timeout=0.4, rise=2, fall=2,
    drain_timeout=2.0,
)


class Timeline:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.failures: list[str] = []

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {text}", flush=True)

    def check(self, ok: bool, text: str) -> None:
        self.say(("ok    " if ok else "FAILED ") + text)
        if not ok:
            self.failures.append(text)


def client_outages(pair: DirectorPair, since: float) -> list[Outage]:
    samples = [s for s in read_samples(str(pair.client_log)) if s.t >= since]
    return outages(samples)


def describe(found: list[Outage]) -> str:
    if not found:
        return "the client saw no failed request"
    worst = max(found, key=lambda o: o.seconds)
    failed = sum(o.failed_requests for o in found)
    return f"the client saw {failed} failed requests, longest outage {worst.seconds * 1000:.0f} ms"


def step(timeline: Timeline, what: str, condition: Callable[[], bool], timeout: float) -> float:
    try:
        seconds = wait_until(condition, timeout)
    except TimeoutError:
        timeline.check(False, f"{what}: not within {timeout:g} s")
        return -1.0
    timeline.check(True, f"{what} after {seconds:.2f} s")
    return seconds


def run_demo() -> int:
    timeline = Timeline()
    timeline.say("building the lab: client, two directors, three real servers")
    with running_pair(SETTINGS, prefix="demo-") as pair:
        pair.start_real_servers()
        pair.start_director("dir1")
        pair.start_director("dir2")
        timeline.say("haipvs started on dir1 (priority 150) and dir2 (priority 100), VRRPv3 0.5 s")
        step(timeline, "dir1 is MASTER and holds the VIP", lambda: pair.holds_vip("dir1"), 60)
        step(
            timeline, "dir2 is BACKUP with a hot IPVS table",
            lambda: pair.vrrp_state("dir2") == "BACKUP" and "10.0.0.13:80" in pair.net.run(
                "dir2", ["ipvsadm", "-Ln"]).stdout,
            30,
        )
        pair.start_client()
        step(timeline, "the client gets answers through the VIP",
             lambda: pair.client_log.exists() and any(
                 s.ok for s in read_samples(str(pair.client_log))), 30)

        mark = time.monotonic()
        pair.stop_real_server("rs2")
        timeline.say("rs2 stops answering")
        step(timeline, "rs2 drained and removed from dir1's IPVS table",
             lambda: "10.0.0.12:80" not in pair.net.run("dir1", ["ipvsadm", "-Ln"]).stdout, 30)
        time.sleep(1.0)
        timeline.say("  " + describe(client_outages(pair, mark)))

        mark = time.monotonic()
        pair.crash_director("dir1")
        timeline.say("dir1 crashes (SIGKILL, its VIPs gone with it)")
        step(timeline, "dir2 took over the VIP", lambda: pair.holds_vip("dir2"), 30)
        step(timeline, "the client is answered again",
             lambda: any(s.ok and s.t > mark for s in read_samples(str(pair.client_log))), 30)
        time.sleep(1.0)
        timeline.say("  " + describe(client_outages(pair, mark)))

        mark = time.monotonic()
        pair.start_director("dir1")
        timeline.say("dir1 returns")
        step(timeline, "dir1 preempted and is MASTER again", lambda: pair.holds_vip("dir1"), 60)
        step(timeline, "dir2 stepped down to BACKUP and released the VIP",
             lambda: not pair.holds_vip("dir2"), 30)
        time.sleep(1.0)
        timeline.say("  " + describe(client_outages(pair, mark)))
        pair.stop_client()
        lines = [
            f"{e.get('director')}: {e['event']} {e.get('from_state', '')}->{e.get('to_state', '')} "
            f"reason={e.get('reason')} {e.get('detail', '')}".rstrip()
            for name in ("dir1", "dir2") for e in pair.log_events(name)
            if e.get("event") == "vrrp.transition"
        ]
        timeline.say("what the directors logged about VRRP (one line per transition):")
        for line in lines:
            print("    " + line)
    if timeline.failures:
        timeline.say(f"demo FAILED: {len(timeline.failures)} step(s) did not hold")
        return 1
    timeline.say("demo finished: every step held")
    return 0


def main() -> int:
    return run_demo()


if __name__ == "__main__":
    sys.exit(main())
