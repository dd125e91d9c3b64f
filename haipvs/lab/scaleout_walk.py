"""The scale-out walk: the events an operator of N active directors lives through, each
measured by what long-lived client connections saw. One home for the bench
(bench/scaleout.py), the demo (`haipvs lab demo scaleout`) and the lab test.

Every case holds two populations of long-lived connections (haipvs.lab.holders) from
the client at once: one to the haipvs service (``mh`` with mh-port and mh-fallback, port
80) and one to a reference service with ``rr`` on port 81 (same real servers, programmed
with ipvsadm beside haipvs's), so the run shows what consistent hashing saves. The cases:

* ``director_death``: a director dies silently (100 % loss on its links), the router's
  BFD session times out and BIRD drops that next hop; the director is revived and
  announced again before the next death. Several deaths give the withdraw times.
* ``backend_change``: the same death, with a real server starting at that moment (it
  was configured and down: at weight 0, no mh slots), so the surviving directors' mh
  tables change while flows move to them. Run with the IPVS sync mesh on.
* ``director_join``: a fourth director starts, announces, and the router rehashes.
* ``director_drain``: `haipvs drain-director` on one director; the router drops it.

The share of new connections each director scheduled is read from its service's
``Conns`` counter (what it chose a real server for), not from its connection entries,
which include every TCP state and, with the sync mesh, the other directors' entries.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from haipvs.bgp.bird import BirdControl, SpeakerError
from haipvs.lab.pair import wait_until
from haipvs.lab.scaleout import VIP, DirectorSettings, ScaleOutLab, running_scaleout

__all__ = [
    "CaseResult",
    "Population",
    "RouteWatch",
    "WalkOutcome",
    "WalkSettings",
    "backend_change",
    "bring_up",
    "director_death",
    "director_drain",
    "director_join",
    "enable_sync_mesh",
    "first_route_without",
    "new_connection_share",
    "p95",
    "parse_monitor_line",
    "run_walk",
    "share_spread",
]

MH_PORT = 80
RR_PORT = 81
NEED = 2
#: haipvs's default learn: none before the sync mesh, its refresh period + 3 s with it,
#: so a director that joins has heard every live connection before it announces.
LEARN: float | None = None


@dataclass(frozen=True, slots=True)
class WalkSettings:
    connections: int = 200  # the mh population
    rr_connections: int = 200  # the rr reference population
    share_connections: int = 600  # short connections whose spread over directors is counted
    heartbeat: float = 0.2
    deaths: int = 2
    ramp: float = 5.0
    client_addresses: int = 4
    directors: int = 3  # started at first; one more joins
    real_servers: int = 5  # the last one starts during the backend change
    settle: float = 2.0  # seconds of heartbeats after each event before the next


def director_settings(settings: WalkSettings, *, mesh: bool = False) -> DirectorSettings:
    # Checks a loaded one-CPU guest does not flap: a flap on one director changes its mh
    # table and not the others', which is a lab artefact, not what the case measures.
    return DirectorSettings(real_servers=settings.real_servers, mesh=mesh,
                            check_interval=1.0, check_timeout=1.0, fall=3)


def address(host: str) -> str:
    return f"10.0.{host[1:]}.2"


# -- the client's populations --------------------------------------------------------------

class Population:
    """``count`` long-lived connections held by haipvs.lab.holders in the client."""

    def __init__(self, lab: ScaleOutLab, name: str, port: int, settings: WalkSettings,
                 count: int | None = None) -> None:
        self.lab = lab
        self.name = name
        self.out = lab.workdir / f"holders-{name}-{time.monotonic_ns()}.json"
        sources = [f"10.0.9.{2 + n}" for n in range(settings.client_addresses)]
        # Not niced: with a turn's heartbeats in one io_uring submission the client
        # takes about a tenth of the guest's CPU (over half, one send each, when it was
        # niced so as not to starve the directors), and niced it woke late behind the
        # real servers' ticks, which is lateness in every heartbeat it measures.
        argv = [sys.executable, "-m", "haipvs.lab.holders",
                "--vip", VIP, "--port", str(port),
                "--count", str(count or settings.connections),
                "--heartbeat", str(settings.heartbeat),
                "--ramp", str(settings.ramp), "--out", str(self.out)]
        for source in sources:
            argv += ["--source", source]
        self.process = lab.net.popen("client", argv)

    def wait_ramped(self, timeout: float) -> None:
        ramped = Path(str(self.out) + ".ramped")
        wait_until(ramped.exists, timeout, step=0.2)

    def progress(self) -> dict[str, object]:
        """What the connections saw so far (rewritten by the client every second)."""
        try:
            found: dict[str, object] = json.loads(
                Path(str(self.out) + ".progress").read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return found

    def broken_since(self, since: float) -> dict[str, int]:
        """Breaks by cause after the monotonic time ``since``."""
        breaks = self.progress().get("breaks", [])
        assert isinstance(breaks, list)
        causes: dict[str, int] = {}
        for at, cause in breaks:
            if at >= since:
                causes[cause] = causes.get(cause, 0) + 1
        return causes

    def stop(self, timeout: float = 120.0) -> dict[str, object]:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout)
        result: dict[str, object] = json.loads(self.out.read_text())
        return result


@dataclass
class CaseResult:
    name: str
    mh: dict[str, object] = field(default_factory=dict)
    rr: dict[str, object] = field(default_factory=dict)
    withdraw_ms: list[float] = field(default_factory=list)
    detail: dict[str, object] = field(default_factory=dict)
    routes: list[str] = field(default_factory=list)  # the router's VIP route changes
    event_at: float | None = None  # monotonic time the case's event began

    def broken(self, which: str = "mh") -> int:
        got = (self.mh if which == "mh" else self.rr).get("broken", 0)
        return int(got) if isinstance(got, int) else 0

    def describe(self, which: str = "mh") -> str:
        population = self.mh if which == "mh" else self.rr
        causes = population.get("causes", {})
        assert isinstance(causes, dict)
        broken = {cause: n for cause, n in causes.items()
                  if cause not in ("ok", "connect_failed")}
        text = ", ".join(f"{n} {cause}" for cause, n in sorted(broken.items()))
        kinds = population.get("eof_kinds")
        if broken.get("eof") and isinstance(kinds, dict):
            text += " [eof: " + ", ".join(f"{n} {kind}" for kind, n in kinds.items()) + "]"
        failed = causes.get("connect_failed", 0)
        beat = population.get("heartbeat_ms")
        return (f"{which}: {self.broken(which)} of {population.get('opened')} "
                f"connections broken" + (f" ({text})" if text else "")
                + (f", {failed} never opened" if failed else "")
                + (f", heartbeat every {beat:.0f} ms (95 % within "
                   f"{population.get('heartbeat_p95_ms')} ms)" if isinstance(beat, float) else "")
                + f", {population.get('quiet')} quiet 3 s or more and recovered (longest "
                  f"{population.get('longest_gap_ms')} ms)")

    def opened(self, which: str = "mh") -> int:
        got = (self.mh if which == "mh" else self.rr).get("opened", 0)
        return int(got) if isinstance(got, int) else 0

    def report(self) -> str:
        return (f"{self.name}: {self.describe('mh')}; {self.describe('rr')}; withdraw_ms="
                f"{[round(ms) for ms in self.withdraw_ms]} detail={json.dumps(self.detail)}")


def hold_both(lab: ScaleOutLab, settings: WalkSettings, name: str,
              during: Callable[[CaseResult], None], watch: RouteWatch) -> CaseResult:
    """Open both populations, let them settle, run ``during``, settle, count. A break
    is traced: the resets every host saw for its flow and the router's route changes
    since the case began (a flow moves between directors only with one)."""
    result = CaseResult(name)
    began = time.time()
    began_monotonic = time.monotonic()
    resets = ResetCapture(lab, name)
    mh = Population(lab, f"{name}-mh", MH_PORT, settings)
    rr = Population(lab, f"{name}-rr", RR_PORT, settings, settings.rr_connections)
    try:
        limit = settings.ramp * 4 + 60
        mh.wait_ramped(limit)
        rr.wait_ramped(limit)
        time.sleep(settings.settle + 1.0)
        result.event_at = time.monotonic()
        cpu = GuestCpu()
        during(result)
        time.sleep(settings.settle)
        result.detail["guest_cpu"] = cpu.since()
    finally:
        result.mh = mh.stop()
        result.rr = rr.stop()
        resets.stop()
        lab.forget_held_connections()
    reused = reused_flows(lab, name, ((result.mh, MH_PORT), (result.rr, RR_PORT)))
    if reused:
        result.detail["reused_flows"] = reused
    if result.broken("mh"):
        result.detail["broken_flows"] = explain_broken_flows(lab, result.mh, MH_PORT)
        result.detail["table_changes"] = table_changes(lab, began)
    # A death resets rr's moved flows by the hundred (the reference breaking, as
    # expected); any other break is traced to the resets every host saw for its flow.
    if result.broken("mh") or (result.broken("rr") and name != "director_death"):
        result.detail["resets"] = resets.explain(result)
        # the routes' wall times, from the event's (taken on the monotonic clock)
        event = began + (result.event_at or began_monotonic) - began_monotonic
        result.detail["routes_in_case"] = [f"event {stamp - event:+.2f} s: {text}"
                                           for stamp, text in watch.events_since(began)]
    return result


def reused_flows(lab: ScaleOutLab, case: str,
                 populations: Sequence[tuple[dict[str, object], int]]) -> list[str]:
    """The flows of this case's populations that an earlier case had opened already
    (the same client address, port and VIP port), recorded for the next cases: a reused
    flow can meet what its predecessor left in a real server or a director."""
    found: list[str] = []
    for population, port in populations:
        flows = population.get("locals", [])
        assert isinstance(flows, list)
        for flow in flows:
            key = f"{flow}>{port}"
            earlier = lab.flows_seen.setdefault(key, case)
            if earlier != case:
                found.append(f"{key} (first in {earlier})")
    return found[:20]


class GuestCpu:
    """Where the guest's one CPU went between two readings: the kernel's split (user,
    system, softirq: the packets' path through the namespaces, idle) and the processes'
    CPU summed by role, so a heartbeat pace below the one asked says what held it."""

    ROLES = (("haipvs.lab.holders", "client"), ("haipvs.lab.servers", "real servers"),
             ("-m haipvs run", "haipvs"), ("bird", "bird"), ("tcpdump", "tcpdump"))

    def __init__(self) -> None:
        self.at = time.monotonic()
        self.kernel = self._kernel()
        self.processes = self._processes()

    @staticmethod
    def _kernel() -> list[int]:
        with open("/proc/stat") as stat:
            return [int(word) for word in stat.readline().split()[1:8]]

    @classmethod
    def _processes(cls) -> dict[int, tuple[str, int]]:
        found: dict[int, tuple[str, int]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                    errors="replace")
            except OSError:
                continue
            fields = stat.rpartition(")")[2].split()
            ticks = int(fields[11]) + int(fields[12])  # utime + stime
            role = next((name for needle, name in cls.ROLES if needle in argv), "other")
            found[int(entry.name)] = (role, ticks)
        return found

    def since(self) -> dict[str, float]:
        """Percent of the elapsed time: the kernel's split, then each role's processes."""
        elapsed = time.monotonic() - self.at
        kernel = [b - a for a, b in zip(self.kernel, self._kernel(), strict=True)]
        total = sum(kernel) or 1
        split = dict(zip(("user", "nice", "system", "idle", "iowait", "irq", "softirq"),
                         kernel, strict=True))
        shares = {name: round(100 * ticks / total, 1) for name, ticks in split.items()
                  if ticks}
        hertz = os.sysconf("SC_CLK_TCK")
        roles: dict[str, int] = {}
        for pid, (role, ticks) in self._processes().items():
            roles[role] = roles.get(role, 0) + ticks - self.processes.get(pid, (role, 0))[1]
        for role, ticks in sorted(roles.items()):
            shares[f"proc {role}"] = round(100 * ticks / hertz / max(elapsed, 1e-3), 1)
        return shares


class ResetCapture:
    """Every TCP reset each namespace's interfaces carried during a case (``tcpdump``,
    resets only: a few lines a second, not the heartbeats' ten thousand packets), so a
    broken connection says who reset it: its real server (straight to the client with
    DR/TUN), a director's own stack (a VIP it holds without the service), or the client
    (a segment for a socket it had closed already)."""

    def __init__(self, lab: ScaleOutLab, case: str) -> None:
        self.files: dict[str, Path] = {}
        self.processes: list[subprocess.Popen[bytes]] = []
        hosts = ["client", "rtr", *started_directors(lab),
                 *(name for name in lab.servers)]
        for host in hosts:
            out = lab.workdir / f"resets-{case}-{host}.txt"
            self.files[host] = out
            with out.open("wb") as sink:
                self.processes.append(lab.net.popen(
                    host, ["tcpdump", "-n", "-tt", "-l", "-i", "any",
                           "tcp[tcpflags] & tcp-rst != 0"],
                    stdout=sink, stderr=subprocess.DEVNULL))

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGINT)
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()

    def explain(self, result: CaseResult) -> list[str]:
        """For each broken flow (mh and rr, 20 at most): when it broke after the case's
        event, and every reset line any host captured for its client address and port."""
        event_at = result.event_at
        captured: dict[str, list[str]] = {}  # each host's reset lines, read once
        for host, path in self.files.items():
            try:
                captured[host] = path.read_text(errors="replace").splitlines()
            except OSError:
                continue
        lines: list[str] = []
        for which, population in (("mh", result.mh), ("rr", result.rr)):
            flows = population.get("broken_flows", [])
            assert isinstance(flows, list)
            for at, cause, flow, backend in flows[:20]:
                since = (f"{at - event_at:+.2f} s" if isinstance(event_at, float)
                         else "?")
                lines.append(f"{which} {cause} {flow} ({backend}) at event {since}")
                needle = flow.replace(":", ".") + " "
                needle_end = flow.replace(":", ".") + ":"
                for host, captured_lines in captured.items():
                    lines.extend(f"  {host}: {line}" for line in captured_lines
                                 if needle in line or needle_end in line)
        return lines[:200]


def explain_broken_flows(lab: ScaleOutLab, population: dict[str, object],
                         port: int) -> list[str]:
    """Where each director's IPVS sends each broken flow, read after the case: a real
    server's RST goes straight to the client (DR/TUN), so the director that sent the flow
    to the wrong real server still holds its entry. ``rst 10.0.9.3:41234 (rs2): d1 rs2
    ESTABLISHED, d2 rs4 ESTABLISHED, d3 -`` says d2 scheduled it anew, elsewhere."""
    flows = population.get("broken_flows", [])
    assert isinstance(flows, list)
    tables = {host: flow_entries(lab, host, port) for host in started_directors(lab)}
    lines = []
    for _at, cause, flow, backend in flows[:20]:
        where = ", ".join(f"{host} {' '.join(table[flow]) if flow in table else '-'}"
                          for host, table in tables.items())
        lines.append(f"{cause} {flow} ({backend}): {where}")
    return lines


def flow_entries(lab: ScaleOutLab, host: str, port: int) -> dict[str, tuple[str, str]]:
    """``host``'s IPVS entries for the VIP's ``port``: client flow -> (real server, state)."""
    out = lab.net.run(host, ["ipvsadm", "-Lnc"], check=False).stdout
    entries: dict[str, tuple[str, str]] = {}
    for line in out.splitlines():
        words = line.split()
        if len(words) >= 6 and words[4] == f"{VIP}:{port}":
            server = words[5].rsplit(":", 1)[0]
            name = f"rs{server.split('.')[2]}" if server.startswith("10.1.") else server
            entries[words[3]] = (name, words[2])
    return entries


TABLE_EVENTS = ("check.down", "check.up", "ipvs.dest.")


def table_changes(lab: ScaleOutLab, since: float) -> list[str]:
    """The check flips and destination changes each director logged since wall time
    ``since``: a flow scheduled afresh lands where the mh table of that moment says, and
    a director whose checks flapped had a table its peers did not."""
    found: list[str] = []
    for host in started_directors(lab):
        for line in lab.log_text(host).splitlines():
            if '"event"' not in line or not any(name in line for name in TABLE_EVENTS):
                continue
            try:
                record = json.loads(line)
                stamp = datetime.datetime.fromisoformat(str(record["timestamp"]))
            except (ValueError, KeyError, TypeError):
                continue
            if stamp.timestamp() < since:
                continue
            what = " ".join(f"{key}={record[key]}" for key in ("rs", "reason", "weight")
                            if key in record)
            found.append(f"{host} {stamp.strftime('%H:%M:%S.%f')[:-3]} "
                         f"{record['event']} {what}".rstrip())
    return found[:40]


# -- the router's view ----------------------------------------------------------------------

class RouteWatch:
    """`ip -ts monitor route` in the router: when each change of the VIP's route landed
    in its kernel (what BIRD installed after BFD or BGP told it)."""

    def __init__(self, lab: ScaleOutLab) -> None:
        self.events: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self.process = lab.net.popen(
            "rtr", ["stdbuf", "-oL", "ip", "-ts", "-o", "monitor", "route"],
            stdout=subprocess.PIPE)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        # -o: one line per change (a multipath route's next hops on the same line), so a
        # change is never seen half read.
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            event = parse_monitor_line(raw.decode(errors="replace"))
            if event is not None:
                with self._lock:
                    self.events.append(event)

    def since(self, since: float) -> list[str]:
        """The VIP's route changes after wall time ``since``, with their offsets."""
        return [f"+{(stamp - since) * 1000:.0f}ms {text}"
                for stamp, text in self.events_since(since)]

    def events_since(self, since: float) -> list[tuple[float, str]]:
        """The VIP's route changes after wall time ``since``: (wall time, route)."""
        with self._lock:
            return [(stamp, text) for stamp, text in self.events
                    if stamp >= since and VIP in text]

    def route_without(self, gone: str, since: float) -> float | None:
        """Wall time of the first new VIP route after ``since`` without next hop ``gone``."""
        with self._lock:
            events = list(self.events)
        return first_route_without(events, gone, since)

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def parse_monitor_line(line: str) -> tuple[float, str] | None:
    """One line of `ip -ts -o monitor route`: (wall time, the change on one line)."""
    head, _, rest = line.strip().partition("]")
    try:
        stamp = datetime.datetime.fromisoformat(head.lstrip("[")).timestamp()
    except ValueError:
        return None
    return stamp, " ".join(rest.replace("\\", " ").split())


def first_route_without(events: Sequence[tuple[float, str]], gone: str,
                        since: float) -> float | None:
    """The first route for the VIP installed after ``since`` whose next hops leave out
    ``gone`` (a deletion is not a route: the VIP must still be reachable)."""
    for stamp, text in events:
        if stamp < since or text.startswith("Deleted") or not text.startswith(VIP + " "):
            continue
        if " via " in text and f"via {gone} " not in text + " ":
            return stamp
    return None


# -- the cases ------------------------------------------------------------------------------

def started_directors(lab: ScaleOutLab) -> list[str]:
    return sorted(lab.daemons)


def wait_announced(lab: ScaleOutLab, hosts: Sequence[str], timeout: float = 120.0) -> float:
    wanted = {address(host) for host in hosts}

    last_look = [time.monotonic()]

    def announced() -> bool:
        dead = [name for name, process in lab.daemons.items() if process.poll() is not None]
        if dead:
            raise AssertionError(f"haipvs exited on {', '.join(dead)}")
        hops = lab.next_hops()
        if hops == wanted:
            return True
        if time.monotonic() - last_look[0] > 1.0:
            last_look[0] = time.monotonic()
            for host in hosts:
                if address(host) not in hops:
                    restart_after_flap(lab, host)
        return False

    return wait_until(announced, timeout, step=0.2)


class FlapMender:
    """Every 2 s, the router's view of its BGP sessions: a started director that is not
    silenced on purpose and whose session is down gets ``restart_after_flap``. It asks
    BIRD through its control socket (haipvs's own client), one connection for the whole
    walk: a `birdc` run is two execs, a tenth of a second of the guest's one CPU each
    round, which the connections' heartbeats need."""

    def __init__(self, lab: ScaleOutLab) -> None:
        self.lab = lab
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()

    async def _run(self) -> None:
        control = BirdControl(str(self.lab.workdir / "rtr.bird.ctl"))
        try:
            while not self._stop.is_set():
                for _ in range(10):
                    await asyncio.sleep(0.2)
                    if self._stop.is_set():
                        return
                try:
                    states = await control.protocol_states()
                except SpeakerError:
                    continue
                try:
                    self.mend(states)
                except (OSError, subprocess.SubprocessError):
                    continue
        finally:
            await control.close()

    def mend(self, states: Mapping[str, str]) -> None:
        for host, state in states.items():
            if state.startswith("up"):
                continue
            if host in self.lab.daemons and host not in self.lab.silenced:
                restart_after_flap(self.lab, host)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(30)


def restart_after_flap(lab: ScaleOutLab, host: str) -> None:
    """A director's BGP session that BFD dropped although nobody killed the director (a
    flap: the emulated guest, on a busy machine, was not scheduled for 300 ms) waits
    BIRD's `error wait time` (haipvs writes 5 s, doubling to 60 s) before it retries. The lab
    restarts it at once, as an operator would, and records it: the walk's cases measure
    deaths, joins and drains, not minutes of waiting."""
    for line in lab.birdc(host, "show", "protocols").splitlines():
        words = line.split()
        if words and words[0].startswith("haipvs_bgp_") and "Idle" in words:
            lab.birdc(host, "restart", words[0])
            lab.flaps.append(f"{time.strftime('%H:%M:%S')} {host}: {' '.join(words[5:])}")


def bring_up(lab: ScaleOutLab, settings: WalkSettings) -> float:
    """BIRD on the router and the first directors, the real servers but the last, rr
    reference services, haipvs on each director; seconds until the router has them all."""
    lab.start_bird("rtr")
    for k in range(1, settings.real_servers):
        lab.start_real_server(f"rs{k}")
    hosts = [f"d{i}" for i in range(1, settings.directors + 1)]
    for i in range(1, settings.directors + 1):
        start_one(lab, i, settings)
    return wait_announced(lab, hosts)


def start_one(lab: ScaleOutLab, i: int, settings: WalkSettings) -> None:
    host = f"d{i}"
    lab.start_bird(host)
    lab.start_director(i, need=NEED, learn=LEARN)
    # ip_vs is loaded once the first director's haipvs has talked to it.
    wait_until(lambda: lab.net.run(host, ["ipvsadm", "-Ln"], check=False).returncode == 0, 60)
    lab.add_rr_service(host, RR_PORT, settings.real_servers - 1)


def enable_sync_mesh(lab: ScaleOutLab, settings: WalkSettings) -> None:
    """Reload every director with ``ipvs.sync_daemon.mode: mesh`` and wait until each
    kernel runs the sync daemon as master and backup."""
    mesh = director_settings(settings, mesh=True)
    lab.settings = mesh
    for host in started_directors(lab):
        lab.reload_director(host, need=NEED, learn=LEARN, settings=mesh)

    def both(host: str) -> bool:
        out = lab.net.run(host, ["ipvsadm", "-L", "--daemon"], check=False).stdout
        return "master sync daemon" in out and "backup sync daemon" in out

    for host in started_directors(lab):
        wait_until(functools.partial(both, host), 60, step=0.2)
    # The reload withdraws nothing (learn is a warm-up); a BFD flap meanwhile might.
    wait_announced(lab, started_directors(lab))


def die_and_return(lab: ScaleOutLab, watch: RouteWatch, victim: str, result: CaseResult,
                   at_death: Callable[[], None] | None = None) -> None:
    before = lab.silence(victim)
    if at_death is not None:
        at_death()
    wait_until(lambda: watch.route_without(address(victim), before) is not None, 30, step=0.05)
    landed = watch.route_without(address(victim), before)
    assert landed is not None
    result.withdraw_ms.append((landed - before) * 1000)
    result.routes.extend(watch.since(before))
    time.sleep(2.0)
    # The host is back, its BIRD restarted (as after the reboot that usually ends a silent
    # death). A BIRD that stayed up would sit out its BGP `error wait time` (5 s, then
    # doubling to 60 s) after the BFD failure before it tried the router again.
    lab.kill_bird(victim)
    lab.revive(victim)
    lab.start_bird(victim)
    wait_announced(lab, started_directors(lab))


def new_connection_share(lab: ScaleOutLab, settings: WalkSettings,
                         watch: RouteWatch) -> dict[str, int]:
    """Each director's share of ``settings.share_connections`` short connections (one
    HTTP request each, 100 a second, from the client's kernel-chosen source ports): what
    each scheduled, read from its service's ``Conns`` counter before and after. A burst
    during which the router's route changed (a BFD flap) measured the flap, not the hash:
    it is run again, three times at most."""
    hosts = started_directors(lab)
    interval = 0.01
    scheduled: dict[str, int] = {}
    for attempt in range(3):
        wait_announced(lab, hosts)
        started = time.time()
        before = lab.scheduled_settled(hosts)
        client = lab.net.popen("client", [
            sys.executable, "-m", "haipvs.lab.client", "--url", f"http://{VIP}/",
            "--interval", str(interval),
            "--duration", str(settings.share_connections * interval),
            "--timeout", "5", "--out", str(lab.workdir / f"share-{attempt}.jsonl")],
            stderr=subprocess.DEVNULL)
        client.wait(settings.share_connections * interval + 120)
        after = lab.scheduled_settled(hosts)
        scheduled = {host: after[host] - before[host] for host in hosts}
        if not watch.since(started):
            break
    return scheduled


def director_death(lab: ScaleOutLab, settings: WalkSettings, watch: RouteWatch) -> CaseResult:
    """Several silent deaths in turn (d3, d2, d1, ...), each revived before the next; the
    share each director scheduled is counted over the populations' ramp."""
    hosts = started_directors(lab)
    before = lab.scheduled_settled(hosts)
    shares: dict[str, int] = {}

    def deaths(result: CaseResult) -> None:
        after = lab.scheduled_settled(hosts)
        shares.update({host: after[host] - before[host] for host in hosts})
        for n in range(settings.deaths):
            die_and_return(lab, watch, hosts[-1 - n % len(hosts)], result)
            time.sleep(settings.settle)

    result = hold_both(lab, settings, "director_death", deaths, watch)
    result.detail["scheduled"] = shares
    return result


def backend_change(lab: ScaleOutLab, settings: WalkSettings, watch: RouteWatch) -> CaseResult:
    """A death while a new real server comes up (its check passes on every director
    during the failover, so the mh tables change under the moved flows)."""
    newcomer = f"rs{settings.real_servers}"

    def change(result: CaseResult) -> None:
        die_and_return(lab, watch, started_directors(lab)[-1], result,
                       at_death=lambda: lab.start_real_server(newcomer))
        wait_until(lambda: all(weight_of(lab, host, newcomer) > 0
                               for host in started_directors(lab)), 60, step=0.2)

    return hold_both(lab, settings, "backend_change", change, watch)


def weight_of(lab: ScaleOutLab, host: str, server: str) -> int:
    out = lab.net.run(host, ["ipvsadm", "-Ln", "-t", f"{VIP}:{MH_PORT}"], check=False).stdout
    for line in out.splitlines():
        words = line.split()
        if len(words) >= 4 and words[0] == "->" and words[1] == f"10.1.{server[2:]}.2:80":
            return int(words[3])
    return 0


def director_join(lab: ScaleOutLab, settings: WalkSettings, watch: RouteWatch) -> CaseResult:
    joining = settings.directors + 1

    def join(result: CaseResult) -> None:
        start_one(lab, joining, settings)
        result.detail["announced_after_s"] = round(wait_announced(lab, started_directors(lab)), 2)
        # What the joiner knew when the routers began to send it flows: the mh
        # connections its peers' sync had given it (learn waits for the mesh's refresh).
        result.detail["joiner_knew"] = established_entries(lab, f"d{joining}", MH_PORT)

    return hold_both(lab, settings, "director_join", join, watch)


def established_entries(lab: ScaleOutLab, host: str, port: int) -> int:
    """The ESTABLISHED connection entries of the VIP's ``port`` in ``host``'s IPVS table
    (its own and the ones the sync mesh gave it)."""
    return sum(1 for _server, state in flow_entries(lab, host, port).values()
               if state == "ESTABLISHED")


def director_drain(lab: ScaleOutLab, settings: WalkSettings, watch: RouteWatch,
                   host: str = "d1") -> CaseResult:
    """`haipvs drain-director` on ``host``, as an operator runs it; undrained after."""

    def drain(result: CaseResult) -> None:
        before = time.time()
        reply = lab.admin(host, "drain-director")
        result.detail["command"] = (reply.returncode, reply.stdout.strip() or reply.stderr.strip())
        wait_until(lambda: watch.route_without(address(host), before) is not None, 30,
                   step=0.05)
        landed = watch.route_without(address(host), before)
        assert landed is not None
        result.detail["withdrawn_after_ms"] = round((landed - before) * 1000)

    result = hold_both(lab, settings, "director_drain", drain, watch)
    lab.admin(host, "undrain-director")
    return result


@dataclass
class WalkOutcome:
    cases: dict[str, CaseResult] = field(default_factory=dict)
    failure: str = ""  # why a case could not finish, with the lab's diagnosis
    flaps: list[str] = field(default_factory=list)  # BGP sessions restarted after BFD flaps
    share: dict[str, int] = field(default_factory=dict)  # new connections each scheduled


def run_walk(settings: WalkSettings, say: Callable[[str], None] = print,
             prefix: str = "sow-") -> WalkOutcome:
    """Every case in one lab, in order: deaths (no sync), the sync mesh on, backend change,
    join, drain. The cases before a failed one stand."""
    outcome = WalkOutcome()
    cases = outcome.cases
    with running_scaleout(directors=settings.directors + 1,
                          real_servers=settings.real_servers, prefix=prefix,
                          settings=director_settings(settings), sync_network=True,
                          client_addresses=settings.client_addresses) as lab:
        watch = RouteWatch(lab)
        mender: FlapMender | None = None
        try:
            seconds = bring_up(lab, settings)
            mender = FlapMender(lab)
            say(f"{settings.directors} directors announced after {seconds:.1f} s")
            outcome.share = new_connection_share(lab, settings, watch)
            say(f"{settings.share_connections} new connections, scheduled per director: "
                f"{outcome.share} (spread {share_spread(outcome.share):.3f})")
            cases["director_death"] = director_death(lab, settings, watch)
            say(cases["director_death"].report())
            enable_sync_mesh(lab, settings)
            say("sync mesh running on every director")
            cases["backend_change"] = backend_change(lab, settings, watch)
            say(cases["backend_change"].report())
            cases["director_join"] = director_join(lab, settings, watch)
            say(cases["director_join"].report())
            cases["director_drain"] = director_drain(lab, settings, watch)
            say(cases["director_drain"].report())
        except (TimeoutError, AssertionError, subprocess.SubprocessError) as error:
            outcome.failure = f"{type(error).__name__}: {error}\n{lab.diagnose()}"
        finally:
            if mender is not None:
                mender.close()
            watch.close()
            outcome.flaps = list(lab.flaps)
            say(f"BGP sessions the lab restarted after a BFD flap: {lab.flaps or 'none'}")
    return outcome


def share_spread(scheduled: dict[str, int]) -> float:
    """The largest relative deviation of one director's share from 1/N (0.1 = +-10 %)."""
    total = sum(scheduled.values())
    if not scheduled or total == 0:
        return float("nan")
    n = len(scheduled)
    return max(abs(count / total - 1 / n) * n for count in scheduled.values())


def p95(values: Sequence[float]) -> float:
    """Nearest-rank 95th percentile."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, -(-95 * len(ordered) // 100))
    return ordered[rank - 1]
