"""The nemesis: a seeded, randomized fault schedule against a live director pair, with
invariants checked from what was observed (Jepsen's way of working), in the lab.

    python bench/nemesis.py [--seeds N|A-B|A,B,..] [--minutes M] [--seed S] [--mix ci|full]
                            [--results FILE]
    python bench/nemesis.py --sum FILE [FILE ...]

Enters the lab itself (haipvs.lab.runner). For each seed (S, S+1, ... S+N-1) a fresh
pair (haipvs.lab.pair: dir1 priority 150, dir2 100, VRRPv3 at 0.5 s adverts, three real
servers behind a NAT service checked every 0.5 s, a client sending a request through
the VIP every 20 ms, the chaos suite's config without flap damping) lives through the
faults ``haipvs.lab.nemesis.schedule.generate(seed, ...)`` draws, one every 5-20 s.
Meanwhile a probe inside each director (haipvs.lab.nemesis.probe) samples who holds
the VIP, what /status claims and the IPVS table; this process tails the daemons' logs
and samples their processes. Afterwards haipvs.lab.nemesis.invariants judges it all.

Each violation is one ``VIOLATION seed=S t=...`` line with the faults just before it;
``--seeds S-S`` (or ``--seed S``) replays that schedule. Each finished seed prints one
``SEED seed=S commit=... faults=N invariant_violations=N ...`` line and, with
``--results FILE``, appends it to FILE at once: a long run (20 seeds x 15 min) is done in
parts (``--seeds 1-3``, later ``--seeds 4-7``, ...) into one file on the same commit, and
``--sum FILE`` folds the parts into one RESULT line, refusing parts measured on another
commit, mix or seed length (haipvs.lab.nemesis.summary). The last line:
``RESULT seeds=N faults=N invariant_violations=N dual_holder_max_ms=... no_holder_max_ms=...
converge_max_ms=... rss_growth_mib_per_h=... ... commit=...``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from haipvs.lab.client import outages
from haipvs.lab.faults import (
    VRRP_GROUP,
    drop_vrrp_ingress,
    heal_tc,
    holds,
    holds_both,
    ipvs_weights,
    netem,
    process_view,
    step_realtime_clock,
    vrrp_child_pid,
    write_config,
)
from haipvs.lab.nemesis.invariants import (
    DAEMON_DIED,
    Event,
    Holders,
    Observations,
    Proc,
    Status,
    Table,
    Verdict,
    check,
    describe,
)
from haipvs.lab.nemesis.schedule import ALL_KINDS, CI_KINDS, Fault, generate
from haipvs.lab.nemesis.summary import combine, parse_seeds, seed_line
from haipvs.lab.pair import REAL_SERVERS, VIP, DirectorPair, running_pair, wait_until
from haipvs.lab.runner import rerun_in_lab_unless_ipvs
from haipvs.lab.servers import start_real_server

REPO = Path(__file__).resolve().parent.parent
import haipvs.lab.chaos as chaos_lab  # noqa: E402

DIRECTOR_NAMES = ("dir1", "dir2")
BACKENDS = {f"rs{i + 1}": address for i, address in enumerate(REAL_SERVERS)}
INTERESTING = ("vrrp.", "ipvs.", "check.", "config.reload.", "director.")


def nemesis_config(pair: DirectorPair, name: str, **changes: Any) -> str:
    """The chaos suite's config without flap damping: a backend the nemesis crashes twice
    in a row must come back on the checks' own rise, which damping would delay."""
    text: str = chaos_lab.chaos_config(name, pair.settings, pair.workdir, **changes)
    return "".join(line for line in text.splitlines(keepends=True)
                   if "flap_damping" not in line)


def fd_kinds(pid: int) -> str:
    """What a process's descriptors are: "socket=510 pipe=4 ..." (a leak's fingerprint)."""
    kinds: Counter[str] = Counter()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                kinds[target.split(":", 1)[0] if ":" in target else "file"] += 1
    return " ".join(f"{kind}={count}" for kind, count in kinds.most_common())


class Observer:
    """Tails the daemons' logs and samples their processes, on one monotonic clock."""

    def __init__(self, pair: DirectorPair, start: float) -> None:
        self.pair = pair
        self.start = start
        self.events: list[Event] = []
        self.procs: list[Proc] = []
        #: director -> (most descriptors seen, when, what they were)
        self.most_fds: dict[str, tuple[int, float, str]] = {}
        self._offsets = {name: self._size(name) for name in DIRECTOR_NAMES}
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._tail, daemon=True),
                         threading.Thread(target=self._sample, daemon=True)]

    def _size(self, name: str) -> int:
        path = self.pair.workdir / f"{name}.log"
        return path.stat().st_size if path.exists() else 0

    def __enter__(self) -> Observer:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self._read_logs()

    def _read_logs(self) -> None:
        for name in DIRECTOR_NAMES:
            path = self.pair.workdir / f"{name}.log"
            if not path.exists():
                continue
            with open(path, "rb") as handle:
                handle.seek(self._offsets[name])
                data = handle.read()
            complete = data.rpartition(b"\n")[0]
            if not complete:
                continue
            self._offsets[name] += len(complete) + 1
            t = time.monotonic() - self.start
            for line in complete.splitlines():
                with contextlib.suppress(ValueError):
                    record = json.loads(line)
                    event = str(record.get("event", ""))
                    if event.startswith(INTERESTING):
                        self.events.append(Event(t, name, event, record))

    def _tail(self) -> None:
        while not self._stop.wait(0.2):
            self._read_logs()

    def _sample(self) -> None:
        # Each sample is also kept in the seed's log folder (procs.jsonl): the hygiene
        # figures (RSS slope, descriptors) can then be read again after the run.
        with open(self.pair.workdir / "procs.jsonl", "a", encoding="utf-8") as record:
            while not self._stop.wait(1.0):
                for name in DIRECTOR_NAMES:
                    process = self.pair.directors.get(name)
                    view = process_view(process.pid) if process is not None else None
                    if view is None:
                        continue
                    t = time.monotonic() - self.start
                    self.procs.append(Proc(t, name, view.pid, view.fds, view.rss_kib,
                                           view.zombies, view.scripts, view.vrrp_child,
                                           view.cpu_s))
                    record.write(json.dumps({
                        "t": round(t, 3), "director": name, "pid": view.pid,
                        "fds": view.fds, "rss_kib": view.rss_kib, "zombies": view.zombies,
                        "vrrp": view.vrrp_child, "cpu_s": round(view.cpu_s, 2)}) + "\n")
                    record.flush()
                    if view.fds > self.most_fds.get(name, (0, 0.0, ""))[0]:
                        self.most_fds[name] = (view.fds, t, fd_kinds(view.pid))


class Nemesis:
    """One seed's run: the pair, its schedule, and the injected faults as they happened."""

    def __init__(self, pair: DirectorPair, seed: int) -> None:
        self.pair = pair
        self.seed = seed
        self.start = 0.0
        self.injected: list[Fault] = []
        self.weights = dict.fromkeys(DIRECTOR_NAMES, 1)

    def now(self) -> float:
        return time.monotonic() - self.start

    def good(self, name: str) -> str:
        return nemesis_config(self.pair, name, rs2_weight=self.weights[name])

    def daemon_pid(self, name: str) -> int | None:
        process = self.pair.directors.get(name)
        return process.pid if process is not None and process.poll() is None else None

    def inject(self, fault: Fault) -> Fault:
        """Run one fault (held for its duration); the fault as it actually happened."""
        pair, name, held = self.pair, fault.target, fault.duration
        kind = fault.kind
        params = dict(fault.params)
        at = end = 0.0
        if kind in ("kill_daemon",):
            process = pair.directors.pop(name)
            os.kill(process.pid, signal.SIGKILL)
            at = self.now()
            process.wait()
            time.sleep(held)
            pair.start_director(name)
            end = self.now()
        elif kind in ("kill_child", "stop_daemon", "stop_child"):
            pid = self.daemon_pid(name)
            if kind != "stop_daemon":
                pid = vrrp_child_pid(pid) if pid is not None else None
            if pid is None:
                params["skipped"] = 1.0
                at = end = self.now()
            elif kind == "kill_child":
                os.kill(pid, signal.SIGKILL)
                at = end = self.now()
            else:
                os.kill(pid, signal.SIGSTOP)
                at = self.now()
                try:
                    time.sleep(held)
                finally:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGCONT)
                end = self.now()
        elif kind == "partition":
            for director in DIRECTOR_NAMES:
                drop_vrrp_ingress(pair, director)
            at = self.now()
            time.sleep(held)
            for director in DIRECTOR_NAMES:
                heal_tc(pair, director)
            end = self.now()
        elif kind == "netem":
            netem(pair, name, loss_pct=params["loss_pct"], delay_ms=params["delay_ms"])
            at = self.now()
            time.sleep(held)
            heal_tc(pair, name)
            end = self.now()
        elif kind == "link_flap":
            pair.net.link_set(name, "eth0", up=False)
            at = self.now()
            time.sleep(held)
            pair.net.link_set(name, "eth0", up=True)
            end = self.now()
        elif kind == "clock_step":
            with step_realtime_clock(params["step_s"]):
                at = self.now()
                time.sleep(held)
            end = self.now()
        elif kind in ("reload_valid", "reload_invalid", "reload_bad_interface"):
            if kind == "reload_valid":
                self.weights[name] = int(params["rs2_weight"])
                write_config(pair, name, self.good(name))
            elif kind == "reload_invalid":  # an unknown scheduler: refused with its line
                write_config(pair, name, nemesis_config(pair, name, scheduler="fastest",
                                                        rs2_weight=self.weights[name]))
            else:  # valid to check-config; this host has no eth9 for the VRRP instance
                good = self.good(name)
                bad = good.replace("    interface: eth0\n    vrid:",
                                   "    interface: eth9\n    vrid:")
                assert bad != good, "the instance's interface line moved"
                write_config(pair, name, bad)
            process = pair.directors[name]
            process.send_signal(signal.SIGHUP)
            at = end = self.now()
            if kind != "reload_valid":
                time.sleep(3.0)  # read by then; a later restart must find a good file
                write_config(pair, name, self.good(name))
        elif kind == "backend_crash":
            pair.stop_real_server(name)
            at = self.now()
            time.sleep(held)
            pair.servers[name] = start_real_server(pair.net, name, name, http=["0.0.0.0:80"])
            end = self.now()
        elif kind == "api_idle":
            at = self.now()  # the descriptors count from the first connection on
            helper = pair.net.popen(
                name, [sys.executable, "-m", "haipvs.lab.faults", "idle",
                       "--count", str(int(params["connections"]))],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            assert helper.stdout is not None and helper.stdin is not None
            if select.select([helper.stdout], [], [], 60)[0]:
                opened = helper.stdout.readline().split()
                params["opened"] = float(opened[1]) if len(opened) == 2 else 0.0
            time.sleep(held)
            helper.stdin.close()
            helper.wait(30)
            end = self.now()
        elif kind == "flood":
            destination = VRRP_GROUP if name == "group" else VIP
            at = self.now()
            result = pair.net.run("client", [
                sys.executable, "-m", "haipvs.lab.faults", "flood", "--dst", destination,
                "--seconds", str(held), "--pps", "2000", "--seed", str(self.seed)],
                check=False, timeout=held + 60)
            sent = result.stdout.split()
            params["sent"] = float(sent[1]) if len(sent) == 2 else 0.0
            end = self.now()
        elif kind == "ipvs_drift":
            # The window is the command's whole run: the table sampled before it is the
            # one to be repaired back to. Stamped after it (as it was), a probe sample of
            # the cleared table taken while ipvsadm still ran came before the fault and
            # was taken for the wanted table, which the repair then never matched.
            at = self.now()
            pair.net.run(name, ["ipvsadm", "-C"])
            end = self.now()
        else:
            raise ValueError(f"no executor for fault kind {kind!r}")
        actual = Fault(round(at, 2), kind, name, round(end - at, 2), params)
        self.injected.append(actual)
        return actual

    def wait_until(self, at: float, observer: Observer) -> None:
        """Sleep until `at`, restarting (and recording) any daemon found dead that no
        fault killed, as systemd's Restart= would."""
        while (left := at - self.now()) > 0:
            time.sleep(min(left, 0.5))
            for name in DIRECTOR_NAMES:
                process = self.pair.directors.get(name)
                if process is None or process.poll() is None:
                    continue
                observer.events.append(Event(self.now(), name, DAEMON_DIED,
                                             {"exit": f"status {process.returncode}"}))
                print(f"# t={self.now():.1f}s {name}'s daemon exited on its own "
                      f"(status {process.returncode}): restarted", flush=True)
                self.pair.directors.pop(name)
                write_config(self.pair, name, self.good(name))
                self.pair.start_director(name)

    def heal(self) -> None:
        """Leave nothing broken (a fault interrupted half-way)."""
        for name in DIRECTOR_NAMES:
            heal_tc(self.pair, name)
            with contextlib.suppress(Exception):
                self.pair.net.link_set(name, "eth0", up=True)
            pid = self.daemon_pid(name)
            if pid is not None:
                child = vrrp_child_pid(pid)
                for target in (pid, child):
                    if target is not None:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(target, signal.SIGCONT)


@contextlib.contextmanager
def probes(pair: DirectorPair) -> Iterator[dict[str, Path]]:
    paths = {name: pair.workdir / f"{name}.probe.jsonl" for name in DIRECTOR_NAMES}
    started = {name: pair.net.popen(
        name, [sys.executable, "-m", "haipvs.lab.nemesis.probe", "--out", str(path)],
        stderr=subprocess.DEVNULL) for name, path in paths.items()}
    try:
        yield paths
    finally:
        for process in started.values():
            process.send_signal(signal.SIGTERM)
        for process in started.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def read_probes(paths: dict[str, Path], start: float) -> tuple[list[Holders], list[Status],
                                                                list[Table]]:
    holders: list[Holders] = []
    statuses: list[Status] = []
    tables: list[Table] = []
    for name, path in paths.items():
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            t = float(record["t"]) - start
            if t < 0:
                continue
            if record["k"] == "addr":
                holders.append(Holders(t, name, bool(record["holds"])))
            elif record["k"] == "status":
                statuses.append(Status(t, name, record["state"]))
            elif record["k"] == "ipvs":
                tables.append(Table(t, name, {str(k): int(v) for k, v in record["w"].items()}))
    return holders, statuses, tables


def settle(pair: DirectorPair, timeout: float = 180.0) -> None:
    """dir1 MASTER with both VIPs, dir2 BACKUP, every real server on both tables."""
    wanted = dict.fromkeys(REAL_SERVERS[: pair.settings.real_servers], 1)
    wait_until(lambda: holds_both(pair, "dir1") and not holds(pair, "dir2")
               and pair.vrrp_state("dir2") == "BACKUP", timeout, step=0.5)
    wait_until(lambda: ipvs_weights(pair, "dir1") == wanted
               and ipvs_weights(pair, "dir2") == wanted, timeout, step=0.5)


def run_seed(seed: int, seconds: float, kinds: Sequence[str]) -> tuple[Verdict, list[Fault],
                                                                      dict[str, float]]:
    schedule = generate(seed, seconds, kinds)
    print(f"# seed {seed}: {len(schedule)} faults over {seconds:g} s", flush=True)
    with running_pair(chaos_lab.SETTINGS, prefix="nem-") as pair:
        hang = pair.workdir / "hang-notify.sh"
        hang.write_text(chaos_lab.HANG_SCRIPT)
        hang.chmod(0o755)
        nemesis = Nemesis(pair, seed)
        for name in DIRECTOR_NAMES:
            write_config(pair, name, nemesis.good(name))
        pair.start_real_servers()
        pair.start_director("dir1")
        pair.start_director("dir2")
        pair.start_client(interval=0.02)
        settle(pair)
        with probes(pair) as paths:
            time.sleep(2.0)  # the probes' first samples
            nemesis.start = time.monotonic()
            with Observer(pair, nemesis.start) as observer:
                try:
                    for fault in schedule:
                        nemesis.wait_until(fault.at, observer)
                        try:
                            actual = nemesis.inject(fault)
                        except Exception as error:  # reported; the run goes on
                            print(f"# {fault.describe()} could not be injected: "
                                  f"{type(error).__name__}: {error}", flush=True)
                            nemesis.heal()
                            continue
                        print(f"  {actual.describe()}", flush=True)
                    nemesis.wait_until(seconds, observer)
                finally:
                    nemesis.heal()
                end = nemesis.now()
        holders, statuses, tables = read_probes(paths, nemesis.start)
        pair.stop_client()
        samples = [s for s in chaos_lab.client_samples(pair, nemesis.start)]
        outage, failed = chaos_lab.worst_outage(pair, nemesis.start)
        gaps = sorted(outages(samples), key=lambda gap: gap.seconds)
        if gaps:
            print(f"# seed {seed}: longest client outage {gaps[-1].seconds * 1000:.0f} ms "
                  f"from t={gaps[-1].start - nemesis.start:.1f}s", flush=True)
        for name, (count, at, kinds) in sorted(observer.most_fds.items()):
            print(f"# seed {seed}: {name} most descriptors {count} at t={at:.1f}s: {kinds}",
                  flush=True)
        obs = Observations(faults=tuple(nemesis.injected), holders=holders, statuses=statuses,
                           tables=tables, events=observer.events, procs=observer.procs,
                           backends=BACKENDS, end=end,
                           client_requests=tuple(replace(s, t=s.t - nemesis.start)
                                                 for s in samples))
        verdict = check(obs)
        extra: dict[str, float] = {"client_outage_max_ms": round(outage * 1000),
                 "client_failed": failed, "client_requests": len(samples)}
        print(f"# seed {seed}: logs in {pair.workdir}", flush=True)
    return verdict, nemesis.injected, extra


def git_commit() -> str:
    """The commit measured: HEAD, with ``-dirty`` when tracked files differ from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True,
                              text=True, check=False).stdout.strip()
    head = git("rev-parse", "--short=12", "HEAD") or "unknown"
    return head + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def result_line(seeds: Sequence[int], run: dict[str, str], figures: dict[str, float]) -> str:
    counted = ("faults", "invariant_violations")
    rest = " ".join(f"{key}={value:g}" for key, value in figures.items()
                    if key not in counted and not key.startswith("violations_"))
    per_invariant = " ".join(f"{key}={value:g}" for key, value in sorted(figures.items())
                             if key.startswith("violations_"))
    contiguous = list(seeds) == list(range(min(seeds), max(seeds) + 1))
    span = (f"{min(seeds)}-{max(seeds)}" if contiguous and len(seeds) > 1
            else ",".join(map(str, seeds)))
    return (f"RESULT seeds={len(seeds)} faults={figures.get('faults', 0):g} "
            f"invariant_violations={figures.get('invariant_violations', 0):g} {rest} "
            f"{per_invariant} seed_numbers={span} mix={run['mix']} "
            f"minutes_per_seed={run['minutes_per_seed']} commit={run['commit']}"
            ).replace("  ", " ")


def sum_results(files: Sequence[Path]) -> int:
    """The RESULT line of every SEED line in `files` (parts of one long run)."""
    lines = [(f"{path}:{number}", line) for path in files
             for number, line in enumerate(path.read_text().splitlines(), 1)]
    try:
        seeds, run, figures = combine(lines)
    except ValueError as error:
        print(f"nemesis --sum: {error}", file=sys.stderr)
        return 2
    print(result_line(seeds, run, figures), flush=True)
    return 0 if figures.get("invariant_violations", 0) == 0 else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1",
                        help="a count of seeds from --seed on (3), a range (8-14) or a list "
                             "(1,4,9)")
    parser.add_argument("--minutes", type=float, default=5.0, help="per seed")
    parser.add_argument("--seed", type=int, default=1, help="the first seed of a count")
    parser.add_argument("--mix", choices=("ci", "full"), default="full")
    parser.add_argument("--kinds", nargs="*", choices=ALL_KINDS,
                        help="only these fault kinds (overrides --mix)")
    parser.add_argument("--logs", type=Path, default=None,
                        help="a directory where each seed's pair keeps its logs (default: "
                             "the lab guest's own /tmp, gone when the guest ends)")
    parser.add_argument("--results", type=Path, default=None,
                        help="append each finished seed's SEED line to this file (keep it "
                             "outside /tmp: the lab guest mounts its own)")
    parser.add_argument("--sum", type=Path, nargs="+", metavar="FILE",
                        help="no run: print the RESULT line of the SEED lines in these files")
    parser.add_argument("--commit", help=argparse.SUPPRESS)  # set before entering the lab
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(raw)
    if args.sum:
        return sum_results(args.sum)
    try:
        seeds = parse_seeds(args.seeds, args.seed)
    except ValueError as error:
        parser.error(str(error))
    budget = len(seeds) * (args.minutes * 60 + 240) + 300
    # The guest runs from the repository: paths given relative to here must still hold.
    for option in ("--results", "--logs"):
        value = getattr(args, option[2:])
        if value is not None:
            raw += [option, str(value.resolve())]
    if args.commit is None:
        raw += ["--commit", git_commit()]
    rerun = rerun_in_lab_unless_ipvs(__file__, raw, timeout=budget, cwd=str(REPO))
    if rerun is not None:
        return rerun
    kinds = args.kinds or (CI_KINDS if args.mix == "ci" else ALL_KINDS)
    run = {"commit": args.commit or git_commit(),
           "mix": "custom" if args.kinds else args.mix,
           "minutes_per_seed": f"{args.minutes:g}"}
    if args.logs is not None:  # the guest mounts its own /tmp, gone with the guest
        args.logs.mkdir(parents=True, exist_ok=True)
        os.environ["TMPDIR"] = str(args.logs.resolve())
    lines: list[tuple[str, str]] = []
    for seed in seeds:
        started = time.monotonic()
        verdict, injected, extra = run_seed(seed, args.minutes * 60, kinds)
        for violation in verdict.violations:
            print(describe(violation, seed, injected), flush=True)
        per_invariant = Counter(v.invariant for v in verdict.violations)
        figures: dict[str, float] = {
            "faults": len(injected), "invariant_violations": len(verdict.violations),
            **verdict.figures, **extra,
            **{f"violations_{key}": count for key, count in sorted(per_invariant.items())},
            "lab_seconds": round(time.monotonic() - started)}
        line = seed_line(seed, run, figures)
        print(line, flush=True)
        if args.results is not None:
            with open(args.results, "a", encoding="utf-8") as handle:
                handle.write(line + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        lines.append(("this run", line))
    done, _, totals = combine(lines)
    print(result_line(done, run, totals), flush=True)
    return 0 if totals.get("invariant_violations", 0) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
