"""Start-up and graceful hand-over times, haipvs vs keepalived, in the lab.

    python bench/startup.py [--trials 3]   # enters the lab itself

A director pair per implementation (haipvs.lab.pair: dir1 priority 150, dir2 priority
100, the NAT service, three real servers), both built in the same boot; the trials
alternate between them (haipvs then keepalived, then the other way round), so a host
busy with other work slows both alike. Each trial, for each implementation:

- **start-up**: dir1 is master; dir2's IPVS table is flushed, then dir2 is started. The
  time runs from its exec to the moment it is BACKUP (its log says so) *and* its IPVS table
  holds every real server (a hot standby: a takeover would forward at once).
- **hand-over**: dir1 gets SIGTERM (a graceful stop: priority-0 advert). The time runs from
  the signal to dir2 holding the VIP (seen through a netlink socket opened beforehand, in
  dir2's namespace, polled every 5 ms).

Bytecode: an installed haipvs has it (pip and packaging/build-deb.sh compile at install
time), so the bench compiles the packages it runs (haipvs, vrrp, checkers and the
interpreter's site-packages) before it measures, as ``compileall`` at install would. An
environment with ``PYTHONDONTWRITEBYTECODE`` (the lab inherits the caller's) would
otherwise compile every module from source at every start: ~2.5 s of the guest's CPU that
no installation pays. keepalived, a C binary, has nothing to compile.

Like keepalived without ``alpha``, haipvs runs with ``alpha: false`` here: real servers are
up from the start until a check fails. The watcher starts no process while it waits (an
exec costs ~0.1 s of the guest's one CPU). The last line is ``RESULT
startup_ms=... startup_keepalived_ms=... startup_ratio=... handover_ms=...
handover_keepalived_ms=... handover_ratio=... trials=N floor_...`` with medians over the
trials.

The floor, measured in the same boot once the pairs are gone (each the lowest of five
runs, no ``ip netns exec``): ``floor_interpreter_ms``, this interpreter doing nothing
(``python -c pass``); ``floor_asyncio_ms``, importing asyncio; ``floor_cores_ms``,
importing only the pure cores a start needs before BACKUP with a hot table (the VRRP
codec and machine, the IPVS planner and its netlink codec: no IO, no event loop, no
logger, no config); ``floor_keepalived_exec_ms``, ``keepalived --version``; and
``floor_ratio``, floor_cores_ms over keepalived's median start-up: the ratio a start
would have that did nothing but import those cores.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import contextlib
import json
import statistics
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from pyroute2 import IPRoute

from haipvs.ipvs.netlink import NetlinkIpvsKernel
from haipvs.lab.pair import (
    GATEWAY_VIP,
    REAL_SERVERS,
    VIP,
    DirectorPair,
    PairSettings,
    haipvs_config,
    running_pair,
    wait_until,
)
from haipvs.lab.runner import rerun_in_lab_unless_ipvs

IMPLEMENTATIONS = ("haipvs", "keepalived")


def is_backup(pair: DirectorPair, name: str, implementation: str) -> bool:
    path = pair.workdir / f"{name}.log"
    if not path.exists():
        return False
    text = path.read_text(errors="replace")
    if implementation == "keepalived":
        return "Entering BACKUP STATE" in text
    for line in text.splitlines():
        if '"vrrp.transition"' not in line:
            continue
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            if str(event.get("to_state", "")).lower() == "backup":
                return True
    return False


async def start_and_watch(pair: DirectorPair, implementation: str) -> tuple[float, float]:
    """Start dir2; how long until it was BACKUP, and until its table was hot. Both are
    watched without starting a process (its log file; a netlink socket opened in its
    namespace beforehand), every 10 ms: an exec per look would take the starting daemon's
    CPU in the one-CPU guest."""
    backup_at = hot_at = 0.0
    async with NetlinkIpvsKernel(netns=pair.net.ns("dir2")) as kernel:
        started = time.monotonic()
        pair.start_director("dir2")
        while not (backup_at and hot_at):
            if time.monotonic() - started > 120:
                raise TimeoutError(f"{implementation} dir2: backup={bool(backup_at)} "
                                   f"hot={bool(hot_at)} after 120 s")
            if not backup_at and is_backup(pair, "dir2", implementation):
                backup_at = time.monotonic()
            if not hot_at:
                table = (await kernel.dump()).table
                weighted = sum(1 for entry in table.values() for dest in entry.dests.values()
                               if dest.weight > 0)
                if weighted == len(REAL_SERVERS):
                    hot_at = time.monotonic()
            await asyncio.sleep(0.01)
    return backup_at - started, hot_at - started


def holds_vip(ipr: IPRoute, index: int) -> bool:
    return any(message.get_attr("IFA_ADDRESS") == VIP for message in ipr.get_addr(index=index))


def one_trial(pair: DirectorPair, log: Callable[[str], None]) -> tuple[float, float]:
    implementation = pair.settings.implementation
    pair.start_director("dir1")
    try:
        wait_until(lambda: pair.holds_vip("dir1"), 90, step=0.2)
        pair.net.run("dir2", ["ipvsadm", "-C"], check=False)
        (pair.workdir / "dir2.log").unlink(missing_ok=True)
        backup, hot = asyncio.run(start_and_watch(pair, implementation))
        startup = max(backup, hot)
        time.sleep(2.0)  # settled: dir2 has heard dir1's adverts for a while
        with pair.net.iproute("dir2") as ipr:
            index = ipr.link_lookup(ifname="eth0")[0]
            sent = time.monotonic()
            pair.directors["dir1"].terminate()
            while not holds_vip(ipr, index):
                if time.monotonic() - sent > 30:
                    raise TimeoutError(f"{implementation} dir2 did not take the VIP")
                time.sleep(0.005)
            handover = time.monotonic() - sent
        pair.directors.pop("dir1").wait(30)
        log(f"{implementation}: start-up {startup * 1000:.0f} ms (backup after "
            f"{backup * 1000:.0f} ms, table hot after {hot * 1000:.0f} ms), "
            f"hand-over {handover * 1000:.0f} ms")
        return startup, handover
    finally:
        for name in list(pair.directors):
            with contextlib.suppress(Exception):
                pair.stop_director(name, timeout=30)
        for name in ("dir1", "dir2"):
            for address, iface in ((f"{VIP}/24", "eth0"), (f"{GATEWAY_VIP}/24", "eth1")):
                pair.net.run(name, ["ip", "addr", "del", address, "dev", iface], check=False)
            pair.net.run(name, ["ipvsadm", "-C"], check=False)


@contextlib.contextmanager
def ready_pair(implementation: str) -> Iterator[DirectorPair]:
    settings = PairSettings(version=3, advert_interval=1.0, implementation=implementation)
    with running_pair(settings, prefix=f"su-{implementation[:2]}-") as pair:
        if implementation == "haipvs":
            # keepalived's default (no `alpha`): a real server is up until its checker
            # says otherwise, so keepalived's table is hot at once. haipvs defaults to
            # alpha; the same behaviour is `alpha: false`, for a like-for-like start-up.
            for name in ("dir1", "dir2"):
                path = pair.config_path(name)
                path.write_text(haipvs_config(name, settings).replace(
                    "      type: http\n", "      type: http\n      alpha: false\n"))
                path.chmod(0o644)
        pair.start_real_servers()
        yield pair


def run(trials: int, log: Callable[[str], None]) -> dict[str, list[tuple[float, float]]]:
    """Both pairs built side by side; the trials alternate between the implementations
    (and which goes first), so a busy host slows both alike, not whichever ran last."""
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in IMPLEMENTATIONS}
    with contextlib.ExitStack() as stack:
        pairs = {name: stack.enter_context(ready_pair(name)) for name in IMPLEMENTATIONS}
        for trial in range(trials):
            order = IMPLEMENTATIONS if trial % 2 == 0 else IMPLEMENTATIONS[::-1]
            for name in order:
                results[name].append(one_trial(pairs[name], log))
    return results


FLOORS = {
    "interpreter": [sys.executable, "-c", "pass"],
    "asyncio": [sys.executable, "-c", "import asyncio"],
    "cores": [sys.executable, "-c",
              "import vrrp.machine, vrrp.packet, haipvs.ipvs.genl, haipvs.ipvs.plan"],
    "keepalived_exec": ["keepalived", "--version"],
}


def floor(argv: Sequence[str], runs: int = 5) -> float:
    """The lowest wall time of ``runs`` executions of argv, in seconds: what the guest
    cannot do faster (its noise only adds)."""
    best = float("inf")
    for _ in range(runs):
        started = time.monotonic()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        best = min(best, time.monotonic() - started)
    return best


def compile_bytecode() -> None:
    """What an installation does once: the .pyc of every module the daemon imports
    (stale or missing ones only; a no-op when they are current)."""
    import checkers
    import haipvs
    import vrrp

    directories = {str(Path(package.__file__).parent)
                   for package in (haipvs, vrrp, checkers)}
    directories.add(sysconfig.get_paths()["purelib"])
    for directory in sorted(directories):
        if not compileall.compile_dir(directory, quiet=1, workers=1):
            print(f"# bytecode: some files in {directory} do not compile", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args(argv)
    compile_bytecode()
    rerun = rerun_in_lab_unless_ipvs(__file__, sys.argv[1:] if argv is None else argv,
                                     timeout=2400)
    if rerun is not None:
        return rerun

    def log(line: str) -> None:
        print(line, flush=True)

    medians: dict[str, tuple[float, float]] = {}
    for implementation, results in run(args.trials, log).items():
        medians[implementation] = (
            statistics.median(startup for startup, _ in results),
            statistics.median(handover for _, handover in results),
        )
    floors = {name: floor(argv) for name, argv in FLOORS.items()}
    ours, theirs = medians["haipvs"], medians["keepalived"]
    print(f"RESULT startup_ms={ours[0] * 1000:.0f} startup_keepalived_ms={theirs[0] * 1000:.0f} "
          f"startup_ratio={ours[0] / theirs[0]:.2f} handover_ms={ours[1] * 1000:.0f} "
          f"handover_keepalived_ms={theirs[1] * 1000:.0f} "
          f"handover_ratio={ours[1] / theirs[1]:.2f} trials={args.trials} "
          + " ".join(f"floor_{name}_ms={seconds * 1000:.0f}" for name, seconds in floors.items())
          + f" floor_ratio={floors['cores'] / theirs[0]:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
