"""VRRP failover outage, haipvs vs keepalived, in the lab.

    python bench/failover.py [--trials 5]   # enters the lab itself (about 25 min)

A director pair (haipvs.lab.pair: dir1 priority 150, dir2 priority 100, the NAT
service of the lab, three real servers) serves a client that opens a new
HTTP connection to the VIP every 10 ms. The outage of one trial is the gap
between the last success before the event and the first success after it.

Scenarios, each run --trials times for haipvs and, in the same run, keepalived
with the same settings:

- v2_crash: VRRPv2 at 1 s adverts, the master is SIGKILLed (all its processes),
  its VIPs removed and its front link taken down (a dead machine). Where in its
  advert interval the master dies decides most of the outage (Master_Down_Interval
  minus the time since its last advert), so it is not left to chance: trial i of
  n crashes the master (i + 0.5)/n of an interval after one of its adverts (read
  off the wire by a watcher on the client's segment), the same phases for haipvs
  and keepalived, and what remains between them is their own reaction time;
- v3_crash: the same with VRRPv3 at 0.1 s adverts;
- v2_graceful / v3_graceful: the master gets SIGTERM (priority-0 advert).

The outage is measured on answers: the longest silence between two consecutive
successful answers around the event (``answer_gap``). The send-time gap of
``haipvs.lab.client.outages()`` (last success before to first success after, by
when requests were sent) is reported too, as ``*_send_ms``: in the emulated
guest the client itself is sometimes starved of CPU and sends in bursts, which
inflates the answer gap of a handover that failed no request at all.

The last line is ``RESULT ...`` with the medians, the haipvs/keepalived ratios,
for the crashes the mean difference of the paired trials (haipvs minus keepalived at
the same phase; negative: haipvs took over sooner) and, for reference, the RFC
expectations (crash: Master_Down_Interval minus
0..1 advert interval; graceful: Skew_Time).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from haipvs.lab.client import Sample, outages, read_samples
from haipvs.lab.pair import (
    DIRECTORS,
    VIP,
    DirectorPair,
    PairSettings,
    running_pair,
    wait_until,
)
from haipvs.lab.runner import rerun_in_lab_unless_ipvs
from vrrp.timing import master_down_interval, skew_time


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    version: int
    advert_interval: float
    crash: bool

    def expected(self) -> str:
        backup = 100
        if self.crash:
            # The master dies somewhere between two adverts: the backup's timer
            # has already run for 0..1 interval of its Master_Down_Interval.
            high = master_down_interval(backup, self.advert_interval, self.version)
            return f"{high - self.advert_interval:.2f}-{high:.2f}s"
        return f"{skew_time(backup, self.advert_interval, self.version):.3f}s"


SCENARIOS = (
    Scenario("v2_crash", 2, 1.0, crash=True),
    Scenario("v3_crash", 3, 0.1, crash=True),
    Scenario("v2_graceful", 2, 1.0, crash=False),
    Scenario("v3_graceful", 3, 0.1, crash=False),
)


# Writes to argv[2] the CLOCK_MONOTONIC time (shared by every process of the guest)
# of the last VRRP advert from argv[1] seen on the client's segment. Started before
# the client, so its start-up costs the emulated CPU nothing around the event.
ADVERT_WATCHER = """
import os, socket, sys, time
source, path = socket.inet_aton(sys.argv[1]), sys.argv[2]
with socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800)) as sock:
    while True:
        packet = sock.recv(2048)
        if len(packet) >= 20 and packet[9] == 112 and packet[12:16] == source:
            with open(path + ".new", "w") as out:
                out.write(repr(time.monotonic()))
            os.replace(path + ".new", path)
"""


def watch_adverts(pair: DirectorPair) -> tuple[subprocess.Popen[bytes], Path]:
    """Start the advert watcher on the client's segment; (process, its file)."""
    path = pair.workdir / "last-advert"
    path.unlink(missing_ok=True)
    process = pair.net.popen("client", [sys.executable, "-c", ADVERT_WATCHER,
                                        DIRECTORS["dir1"][0], str(path)])
    return process, path


def crash_at_phase(pair: DirectorPair, last_advert: Path, interval: float, phase: float) -> float:
    """SIGKILL dir1 ``phase`` seconds after one of its adverts; the time of the crash."""
    # Opened before the clock starts: in the busy guest it can take longer than the
    # rest of the interval, and the crash would then come after the next advert.
    with pair.net.iproute("dir1") as ipr:
        wait_until(last_advert.exists, 30)
        target = float(last_advert.read_text()) + phase
        while target < time.monotonic() + 0.05:  # adverts are periodic: a later one
            target += interval
        time.sleep(target - time.monotonic())
        crashed = time.monotonic()
        pair.crash_director("dir1", link_down=True, ipr=ipr)
    return crashed


def client_reaches_vip(pair: DirectorPair) -> bool:
    result = pair.net.run(
        "client", ["curl", "-s", "-m", "1", f"http://{VIP}/"], check=False, timeout=10
    )
    return result.returncode == 0 and result.stdout.strip().startswith("rs")


def answer_gap(samples: Sequence[Sample], event_at: float) -> float:
    """The longest time without any answer around the event, by completion time.

    Requests sent while no director answers ARP wait in the client's neighbour
    queue and succeed once the new master's gratuitous ARP arrives, so counting
    by send time (``outages()``) hides most of a takeover; the silence between
    two consecutive answers does not.
    """
    done = sorted(sample.t + sample.ms / 1000 for sample in samples if sample.ok)
    gaps = [
        later - earlier
        for earlier, later in itertools.pairwise(done)
        if later >= event_at and earlier <= event_at + 60
    ]
    return max(gaps, default=0.0)


def one_trial(
    pair: DirectorPair, scenario: Scenario, phase: float, log: Callable[[str], None]
) -> tuple[float, float]:
    """Start both directors, fail dir1 as the scenario says (a crash ``phase``
    seconds after an advert); return the outage by answers and by send time (s)."""
    pair.start_director("dir2")
    pair.start_director("dir1")
    watcher: subprocess.Popen[bytes] | None = None
    try:
        wait_until(lambda: pair.holds_vip("dir1") and not pair.holds_vip("dir2"), 90, step=0.2)
        wait_until(lambda: client_reaches_vip(pair), 60, step=0.2)
        watcher, last_advert = watch_adverts(pair)
        with contextlib.suppress(FileNotFoundError):
            pair.client_log.unlink()
        pair.start_client(interval=0.01)
        time.sleep(1.5)
        if scenario.crash:
            event_at = crash_at_phase(pair, last_advert, scenario.advert_interval, phase)
        else:
            event_at = time.monotonic()
            pair.stop_director("dir1")
        wait_until(lambda: pair.holds_vip("dir2"), 60, step=0.02)
        time.sleep(1.5)
        pair.stop_client()
        samples = read_samples(str(pair.client_log))
        gaps = [gap for gap in outages(samples) if gap.end >= event_at]
        by_send = gaps[0].seconds if gaps else 0.0
        outage = answer_gap(samples, event_at)
        at = f" at phase {phase * 1000:.0f} ms" if scenario.crash else ""
        log(f"{scenario.name} {pair.settings.implementation}{at}: outage {outage * 1000:.0f} ms "
            f"(by send time {by_send * 1000:.0f} ms, "
            f"{gaps[0].failed_requests if gaps else 0} failed requests)")
        return outage, by_send
    finally:
        pair.stop_client()
        if watcher is not None:
            watcher.kill()
            watcher.wait()
        for name in list(pair.directors):
            with contextlib.suppress(Exception):
                pair.stop_director(name, timeout=20)
        with contextlib.suppress(Exception):
            pair.revive_link("dir1")
        for name in ("dir1", "dir2"):
            for address, iface in ((f"{VIP}/24", "eth0"), ("10.0.0.1/24", "eth1")):
                pair.net.run(name, ["ip", "addr", "del", address, "dev", iface], check=False)
            pair.net.run(name, ["ipvsadm", "-C"], check=False)


def run_scenario(scenario: Scenario, implementation: str, trials: int,
                 log: Callable[[str], None]) -> list[tuple[float, float]]:
    settings = PairSettings(
        version=scenario.version,
        advert_interval=scenario.advert_interval,
        implementation=implementation,
    )
    results: list[tuple[float, float]] = []
    with running_pair(settings, prefix=f"fo-{implementation[:2]}-") as pair:
        pair.start_real_servers()
        for trial in range(trials):
            phase = (trial + 0.5) / trials * scenario.advert_interval
            results.append(one_trial(pair, scenario, phase, log))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--scenarios", nargs="*", default=[s.name for s in SCENARIOS])
    args = parser.parse_args(argv)
    rerun = rerun_in_lab_unless_ipvs(__file__, sys.argv[1:] if argv is None else argv,
                                     timeout=2700)
    if rerun is not None:
        return rerun

    def log(line: str) -> None:
        print(line, flush=True)

    medians: dict[str, float] = {}
    answers: dict[str, list[float]] = {}
    for scenario in SCENARIOS:
        if scenario.name not in args.scenarios:
            continue
        for implementation in ("haipvs", "keepalived"):
            trials = run_scenario(scenario, implementation, args.trials, log)
            values = [by_answers for by_answers, _ in trials]
            answers[f"{scenario.name}_{implementation}"] = values
            median = statistics.median(values)
            medians[f"{scenario.name}_{implementation}"] = median
            medians[f"{scenario.name}_{implementation}_send"] = statistics.median(
                by_send for _, by_send in trials
            )
            log(f"{scenario.name} {implementation}: median {median * 1000:.0f} ms over "
                f"{len(values)} trials {[round(v * 1000) for v in values]} "
                f"(RFC: {scenario.expected()})")
    fields: list[str] = []
    for scenario in SCENARIOS:
        ours = medians.get(f"{scenario.name}_haipvs")
        theirs = medians.get(f"{scenario.name}_keepalived")
        if ours is None or theirs is None:
            continue
        ratio = ours / theirs if theirs > 0 else float("inf")
        ours_send = medians[f"{scenario.name}_haipvs_send"]
        theirs_send = medians[f"{scenario.name}_keepalived_send"]
        fields += [f"{scenario.name}_ms={ours * 1000:.0f}",
                   f"{scenario.name}_keepalived_ms={theirs * 1000:.0f}",
                   f"{scenario.name}_ratio={ratio:.2f}",
                   f"{scenario.name}_send_ms={ours_send * 1000:.0f}",
                   f"{scenario.name}_keepalived_send_ms={theirs_send * 1000:.0f}"]
        if scenario.crash:
            # Trial i of both ran at the same phase: the mean of the paired differences
            # is their difference in reaction time, without the phase's spread.
            pairs = zip(answers[f"{scenario.name}_haipvs"],
                        answers[f"{scenario.name}_keepalived"], strict=True)
            paired = statistics.mean(ours_i - theirs_i for ours_i, theirs_i in pairs)
            fields.append(f"{scenario.name}_paired_diff_ms={paired * 1000:+.0f}")
    fields.append(f"trials={args.trials}")
    print("RESULT " + " ".join(fields), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

