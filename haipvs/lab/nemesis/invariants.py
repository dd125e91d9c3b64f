"""The nemesis's invariants: timestamped observations in, violations and figures out.

Pure: the executor samples the lab (who holds the VIP on each director, what /status
claims, the IPVS tables, the daemons' log events, their processes) and stamps every
observation with one monotonic clock, seconds since the run started; nothing here reads
a clock, so every rule is tested with literal times (tests/haipvs/lab/test_nemesis.py).

The bounds are those of a pair with 0.5 s VRRPv3 adverts (master-down 1.8 s for the
backup at priority 100, RFC 5798 §6.1) and 0.5 s checks with rise/fall 2.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from haipvs.lab.client import Sample, outages
from haipvs.lab.nemesis.schedule import KINDS, Fault

__all__ = [
    "DAEMON_DIED",
    "Bounds",
    "Event",
    "Holders",
    "Observations",
    "Proc",
    "Status",
    "Table",
    "Verdict",
    "Violation",
    "check",
    "cpu_share",
    "describe",
    "guest_stalls",
]

IPVS_OP_PREFIXES = ("ipvs.service.", "ipvs.dest.")
CHECK_FLIPS = ("check.down", "check.up")
# Faults after which the IPVS table may rightly change: a backend went or came, a
# reload changed a weight, a daemon started afresh, the table was damaged on purpose.
CHANGES_TABLE = ("backend_crash", "reload_valid", "kill_daemon", "ipvs_drift")
STOPS = ("stop_daemon", "stop_child", "kill_daemon")
# Faults aimed at the daemons' CPU or descriptors: a check flip there is the finding.
STARVES = ("flood", "api_idle")
# An event is stamped when the log line is read, a fault when its action returned:
# a line the fault caused can be stamped a little before the fault.
SLOP = 0.5
#: Logged by the executor (not the daemon) when it finds a daemon it did not kill dead.
DAEMON_DIED = "nemesis.daemon.died"


@dataclass(frozen=True, slots=True)
class Bounds:
    dual_holder_connected: float = 1.0  # two holders while the directors can talk
    single_after_heal: float = 1.5  # one holder this long after a separation ends
    no_holder: float = 3.3
    status_truthful: float = 2.0
    backend_leaves: float = 3.5
    backend_returns: float = 3.0
    drift_repaired: float = 3.5  # the programmer's 2 s max interval plus one pass
    change_grace: float = 6.0  # IPVS ops may follow a changing fault this long
    clock_grace: float = 2.0
    corroborated: float = 1.5  # both directors' check.down this close: the backend stalled
    # The client sends every 20 ms whether or not earlier requests answered: a gap this
    # long between two sends means nothing in the guest ran (the host starved it), so
    # the backends, in the same guest, could not answer a 0.4 s check either.
    guest_stall: float = 0.25
    # how far before a check.down a guest stall explains it: fall 2 at the 0.5 s fast
    # interval, the 0.4 s timeout, and the log tail's own lag
    stall_lookback: float = 2.5
    # Under a fault aimed at the daemons' CPU (flood, api_idle) a guest stall excuses a
    # check flip only if the flipping director's daemon (with its VRRP child) used less
    # than this share of the one CPU meanwhile: then it was not what starved the guest.
    daemon_cpu_share: float = 0.5
    child_died_logged: float = 5.0
    reload_settles: float = 5.0
    zombie: float = 3.0
    script_timeout: float = 1.0
    script_slack: float = 2.0
    fds: int = 400
    # The client answered again this long after the faults around its outage ended: the
    # VIP's holder re-elected (single_after_heal) and the neighbours' caches moved to it
    # (the chaos suite's partition bound; a stale cache lasts tens of seconds).
    client_after_fault: float = 5.0
    rss_growth_mib_per_h: float = 20.0
    rss_min_span: float = 600.0  # shorter series are start-up noise, reported only


@dataclass(frozen=True, slots=True)
class Holders:
    t: float
    director: str
    holds: bool  # the front VIP is on its eth0


@dataclass(frozen=True, slots=True)
class Status:
    t: float
    director: str
    #: the first instance's state; "NO_INSTANCE": /status answered with none (the VRRP
    #: process is down: it claims nothing); None: /status did not answer
    state: str | None


@dataclass(frozen=True, slots=True)
class Table:
    t: float
    director: str
    weights: Mapping[str, int]  # real server address -> weight


@dataclass(frozen=True, slots=True)
class Event:
    t: float  # when the line was read (log timestamps follow the stepped realtime clock)
    director: str
    event: str
    fields: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Proc:
    t: float
    director: str
    pid: int
    fds: int
    rss_kib: int
    zombies: int
    scripts: frozenset[int] = frozenset()  # descendants other than the VRRP child
    #: The VRRP child then, if it was named yet: a respawned child is a plain descendant
    #: until it names itself (seconds on a starved guest), not a script.
    vrrp: int | None = None
    #: CPU seconds the daemon and its VRRP child had used (user + system)
    cpu_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Observations:
    faults: Sequence[Fault]  # as injected: actual start and hold
    holders: Sequence[Holders] = ()
    statuses: Sequence[Status] = ()
    tables: Sequence[Table] = ()
    events: Sequence[Event] = ()
    procs: Sequence[Proc] = ()
    backends: Mapping[str, str] = field(default_factory=dict)  # rs name -> address
    end: float = 0.0  # the last time observed
    # each request the lab client sent (on a fixed schedule, open loop), timed from the
    # run's start, and whether it was answered
    client_requests: Sequence[Sample] = ()


@dataclass(frozen=True, slots=True)
class Violation:
    t: float
    invariant: str
    what: str


@dataclass(frozen=True, slots=True)
class Verdict:
    violations: tuple[Violation, ...]
    figures: Mapping[str, float]


def describe(violation: Violation, seed: int, faults: Sequence[Fault], last: int = 3) -> str:
    """One line an operator can replay: the seed, the time, the faults just before."""
    before = [f for f in faults if f.at <= violation.t][-last:]
    recent = "; ".join(f.describe() for f in before) or "none yet"
    return (f"VIOLATION seed={seed} t={violation.t:.1f}s {violation.invariant}: "
            f"{violation.what} | last faults: {recent} | replay: --seed {seed}")


def check(obs: Observations, bounds: Bounds = Bounds()) -> Verdict:
    figures: dict[str, float] = {}
    found: list[Violation] = []
    found += _one_holder(obs, bounds, figures)
    found += _status(obs, bounds)
    found += _child_restarts(obs, bounds)
    found += _convergence(obs, bounds, figures)
    stalls = _backend_stalls(obs, bounds, figures)
    found += _quiet_ipvs(obs, bounds, stalls)
    found += _reloads(obs, bounds)
    found += _hygiene(obs, bounds, figures)
    found += _clock(obs, bounds, stalls)
    found += _client_answered(obs, bounds, figures)
    found += [Violation(e.t, "daemon_alive", f"{e.director}'s daemon exited on its own "
                                             f"({e.fields.get('exit', '?')})")
              for e in obs.events if e.event == DAEMON_DIED]
    return Verdict(tuple(sorted(found, key=lambda v: v.t)), figures)


# --------------------------------------------------------------------- helpers

def _episodes(obs: Observations, count_is: int) -> list[tuple[float, float]]:
    """[start, end) while exactly `count_is` directors hold the VIP (known for all)."""
    current: dict[str, bool] = {}
    directors = {h.director for h in obs.holders}
    found: list[tuple[float, float]] = []
    start: float | None = None
    for sample in sorted(obs.holders, key=lambda h: h.t):
        current[sample.director] = sample.holds
        if len(current) < len(directors):
            continue
        inside = sum(current.values()) == count_is
        if inside and start is None:
            start = sample.t
        elif not inside and start is not None:
            found.append((start, sample.t))
            start = None
    if start is not None:
        found.append((start, max(obs.end, start)))
    return found


def _first(events: Iterable[Event], director: str, name: str, after: float) -> float | None:
    times = [e.t for e in events if e.director == director and e.event == name and e.t >= after]
    return min(times, default=None)


def _effective_end(fault: Fault, obs: Observations) -> float:
    """When a fault's effect on the pair ends: a killed daemon is back when its /status
    answers again; a killed VRRP child when the daemon logged its new one."""
    if fault.kind == "kill_daemon":
        back = [s.t for s in obs.statuses if s.director == fault.target and s.t > fault.end
                and s.state is not None]
        return min(back, default=obs.end)
    if fault.kind == "kill_child":
        started = _first(obs.events, fault.target, "vrrp.process.started", fault.at)
        return started if started is not None else obs.end
    return fault.end


def _windows(obs: Observations, kinds: Iterable[str]) -> list[tuple[float, float, Fault]]:
    chosen = set(kinds)
    return [(f.at, _effective_end(f, obs), f) for f in obs.faults if f.kind in chosen]


# --------------------------------------------------------------------- invariants

def _one_holder(obs: Observations, bounds: Bounds, figures: dict[str, float]) -> list[Violation]:
    found: list[Violation] = []
    separations = _windows(obs, [k.name for k in KINDS.values() if k.separates])
    worst_connected = 0.0
    for start, end in _episodes(obs, 2):
        overlapping = [(a, b) for a, b, _f in separations if a <= end and start < b]
        if overlapping:
            # Began while the directors could not talk: it must end soon after they can.
            # One that began after they could again (a new VRRP process preempting the
            # peer, RFC 5798 §6.4.2: a Master_Down_Interval after it started) is an
            # episode between connected directors, bounded as one.
            healed = max(b for _a, b in overlapping)
            if end > healed + bounds.single_after_heal:
                found.append(Violation(healed + bounds.single_after_heal, "one_holder",
                                       f"two VIP holders {end - healed:.2f} s after the "
                                       f"directors could talk again (bound "
                                       f"{bounds.single_after_heal:g} s)"))
            continue
        worst_connected = max(worst_connected, end - start)
        if end - start > bounds.dual_holder_connected:
            found.append(Violation(start, "one_holder",
                                   f"two VIP holders for {end - start:.2f} s while the "
                                   f"directors could talk (bound "
                                   f"{bounds.dual_holder_connected:g} s)"))
    worst_none = 0.0
    for start, end in _episodes(obs, 0):
        worst_none = max(worst_none, end - start)
        if end - start > bounds.no_holder:
            found.append(Violation(start, "availability",
                                   f"no VIP holder for {end - start:.2f} s (bound "
                                   f"{bounds.no_holder:g} s)"))
    figures["dual_holder_max_ms"] = round(worst_connected * 1000)
    figures["no_holder_max_ms"] = round(worst_none * 1000)
    return found


def _status(obs: Observations, bounds: Bounds) -> list[Violation]:
    found: list[Violation] = []
    for director in sorted({s.director for s in obs.statuses}):
        holds = sorted((h.t, h.holds) for h in obs.holders if h.director == director)
        since: float | None = None
        claimed = ""
        for status in sorted((s for s in obs.statuses if s.director == director),
                             key=lambda s: s.t):
            if status.state is None:
                continue
            actual = [held for t, held in holds if t <= status.t]
            if not actual:
                continue
            truthful = (status.state == "MASTER") == actual[-1]
            if truthful:
                if since is not None and status.t - since > bounds.status_truthful:
                    found.append(_untruthful(director, since, status.t, claimed, bounds))
                since = None
            elif since is None:
                since, claimed = status.t, status.state
        if since is not None and obs.end - since > bounds.status_truthful:
            found.append(_untruthful(director, since, obs.end, claimed, bounds))
    return found


def _untruthful(director: str, since: float, until: float, claimed: str,
                bounds: Bounds) -> Violation:
    holding = "does not hold" if claimed == "MASTER" else "holds"
    return Violation(since, "truthful_status",
                     f"{director} /status said {claimed} while it {holding} the VIP for "
                     f"{until - since:.2f} s (bound {bounds.status_truthful:g} s)")


def _child_restarts(obs: Observations, bounds: Bounds) -> list[Violation]:
    found: list[Violation] = []
    kills = [f for f in obs.faults if f.kind == "kill_child"]
    explained: set[float] = set()
    for fault in kills:
        died = [e for e in obs.events if e.director == fault.target
                and e.event == "vrrp.process.died"
                and fault.at - SLOP <= e.t <= fault.at + bounds.child_died_logged]
        if died:
            explained.add(died[0].t)
        else:
            found.append(Violation(fault.at, "child_restarts",
                                   f"{fault.target}'s VRRP child was killed and no "
                                   f"vrrp.process.died followed within "
                                   f"{bounds.child_died_logged:g} s (not respawned?)"))
    for event in obs.events:
        if event.event == "vrrp.process.died" and event.t not in explained:
            found.append(Violation(event.t, "child_restarts",
                                   f"{event.director}'s VRRP child died with no kill injected"
                                   f" ({event.fields.get('exit', '?')})"))
    return found


def _table_series(obs: Observations, director: str) -> list[Table]:
    return sorted((t for t in obs.tables if t.director == director), key=lambda t: t.t)


def _convergence(obs: Observations, bounds: Bounds,
                 figures: dict[str, float]) -> list[Violation]:
    found: list[Violation] = []
    worst = 0.0
    directors = sorted({t.director for t in obs.tables})
    busy = _windows(obs, STOPS)
    for fault in obs.faults:
        if fault.kind not in ("backend_crash", "ipvs_drift"):
            continue
        for director in directors:
            if fault.kind == "ipvs_drift" and director != fault.target:
                continue
            if any(f.target == director and a <= fault.end + bounds.backend_leaves and
                   fault.at <= b for a, b, f in busy):
                continue  # a stopped or dead daemon programs nothing
            series = _table_series(obs, director)
            if fault.kind == "backend_crash":
                address = obs.backends.get(fault.target, fault.target)
                gone = [t.t for t in series if fault.at <= t.t
                        and t.weights.get(address, 0) == 0]
                if fault.duration >= bounds.backend_leaves:
                    left = gone[0] - fault.at if gone else None
                    if left is None or left > bounds.backend_leaves:
                        found.append(Violation(fault.at, "ipvs_convergence",
                                               f"{fault.target} down, still in {director}'s "
                                               f"table after {bounds.backend_leaves:g} s"))
                    else:
                        worst = max(worst, left)
                back = [t.t for t in series if t.t >= fault.end
                        and t.weights.get(address, 0) > 0]
                returned = back[0] - fault.end if back else None
                if returned is None or returned > bounds.backend_returns:
                    found.append(Violation(fault.end, "ipvs_convergence",
                                           f"{fault.target} back, not in {director}'s table "
                                           f"within {bounds.backend_returns:g} s"
                                           + (f" (after {returned:.2f} s)" if returned else "")))
                else:
                    worst = max(worst, returned)
            else:
                before = [t for t in series if t.t < fault.at]
                if not before:
                    continue
                wanted = dict(before[-1].weights)
                # From the end of the fault's window (the drift is in the kernel by then),
                # timed from the first sample that shows the drift: ipvsadm itself may take
                # seconds in the loaded guest before its change lands (seed 12 of bf6a1a8:
                # the table cleared late in a 2.0 s command, repaired 1.85 s later).
                # A drift repaired before any sample saw it is timed from the start.
                repaired = [t.t for t in series if t.t >= fault.end and dict(t.weights) == wanted]
                seen = [t.t for t in series if fault.at <= t.t and dict(t.weights) != wanted
                        and (not repaired or t.t < repaired[0])]
                landed = seen[0] if seen else fault.at
                took = repaired[0] - landed if repaired else None
                if took is None or took > bounds.drift_repaired:
                    found.append(Violation(fault.at, "drift_repaired",
                                           f"{director}'s table not repaired within "
                                           f"{bounds.drift_repaired:g} s"))
                else:
                    worst = max(worst, took)
    figures["converge_max_ms"] = round(worst * 1000)
    return found


def _client_answered(obs: Observations, bounds: Bounds,
                     figures: dict[str, float]) -> list[Violation]:
    """Whatever a fault did, the client is answered again soon after it ends: an outage
    may last as long as the faults it overlaps, plus ``client_after_fault``. One no fault
    explains may last ``client_after_fault``. (The VIP holders alone do not show this: a
    split brain that healed to one holder can leave the neighbours on the other's MAC.)"""
    found: list[Violation] = []
    worst_after = 0.0
    windows = _windows(obs, KINDS)
    for outage in outages(obs.client_requests, end=obs.end):
        start, end = outage.start, outage.end
        ends = [until for at, until, _fault in windows if at <= end and until >= start]
        healed = max([start, *ends])
        worst_after = max(worst_after, end - healed)
        if end - healed > bounds.client_after_fault:
            cause = (f"{end - healed:.2f} s after the faults around it ended" if ends
                     else f"for {end - start:.2f} s with no fault around it")
            found.append(Violation(healed + bounds.client_after_fault, "client_answered",
                                   f"the client was not answered from t={start:.1f}s "
                                   f"until t={end:.1f}s: {cause} (bound "
                                   f"{bounds.client_after_fault:g} s)"))
    figures["client_unanswered_after_fault_max_ms"] = round(worst_after * 1000)
    return found


def guest_stalls(sends: Sequence[float], bound: float) -> list[tuple[float, float]]:
    """The gaps longer than `bound` between two consecutive client sends: windows in
    which the guest did not run the client, nor anything else in it."""
    ordered = sorted(sends)
    return [(a, b) for a, b in itertools.pairwise(ordered) if b - a > bound]


def cpu_share(procs: Sequence[Proc], director: str, start: float, end: float) -> float | None:
    """The share of one CPU `director`'s daemon and VRRP child used from `start` to
    `end`, from the samples around that window (one a second); None without two.
    A restart resets the counters: a step down counts as nothing used."""
    series = sorted((p for p in procs if p.director == director
                     and start - 1.5 <= p.t <= end + 1.5), key=lambda p: p.t)
    if len(series) < 2 or series[-1].t <= series[0].t:
        return None
    used = sum(max(0.0, b.cpu_s - a.cpu_s) for a, b in itertools.pairwise(series))
    return used / (series[-1].t - series[0].t)


def _stalled(obs: Observations, flip: Event, bounds: Bounds,
             stalls: Sequence[tuple[float, float]] = ()) -> bool:
    """The backend (or the whole guest) stalled, a change in the world rather than in a
    daemon: both directors saw the same backend go down at about the same time, or the
    guest itself stopped running (a gap in the client's sends) shortly before the
    check.down. Not while a fault aims at the daemons' CPU or descriptors: there, that
    is the finding."""
    if flip.event != "check.down":
        return False
    if any(a - SLOP <= flip.t <= b + bounds.clock_grace
           for a, b, _f in _windows(obs, STARVES)):
        share = cpu_share(obs.procs, flip.director, flip.t - bounds.stall_lookback, flip.t)
        if share is None or share >= bounds.daemon_cpu_share:
            return False
    if any(a <= flip.t and b >= flip.t - bounds.stall_lookback for a, b in stalls):
        return True
    return any(e.event == "check.down" and e.director != flip.director
               and e.fields.get("rs") == flip.fields.get("rs")
               and abs(e.t - flip.t) <= bounds.corroborated for e in obs.events)


def _backend_stalls(obs: Observations, bounds: Bounds,
                    figures: dict[str, float]) -> list[Event]:
    """The check events a stall explains (a backend both directors saw stall, or the
    guest not running the client), once for every invariant that excuses them."""
    gaps = guest_stalls([s.t for s in obs.client_requests], bounds.guest_stall)
    stalls = [e for e in obs.events if _stalled(obs, e, bounds, gaps)]
    figures["backend_stalls"] = len({(e.fields.get("rs"), round(e.t)) for e in stalls})
    figures["guest_stalls"] = len(gaps)
    figures["guest_stall_max_ms"] = round(max((b - a for a, b in gaps), default=0.0) * 1000)
    return stalls


def _quiet_ipvs(obs: Observations, bounds: Bounds, stalls: Sequence[Event]) -> list[Violation]:
    """No IPVS op when nothing changed: every op follows a fault that changes the table,
    or a backend that both directors saw stall (``stalls``)."""
    found: list[Violation] = []
    allowed = [(a, b + bounds.change_grace) for a, b, _f in _windows(obs, CHANGES_TABLE)]
    for event in obs.events:
        if not event.event.startswith(IPVS_OP_PREFIXES):
            continue
        if any(a - SLOP <= event.t <= b for a, b in allowed):
            continue
        rs = event.fields.get("rs", "")
        why = [e for e in obs.events if e.director == event.director
               and e.event in CHECK_FLIPS and e.fields.get("rs") == rs
               and event.t - 5.0 <= e.t <= event.t]
        if any(e in stalls for e in why):
            continue
        # The check.down that started the sequence says why (a drain, then a re-add).
        downs = [e for e in why if e.event == "check.down"]
        shown = downs[-1] if downs else why[-1] if why else None
        cause = f" (after {shown.event} {_summary(shown)})" if shown else ""
        found.append(Violation(event.t, "no_op_without_change",
                               f"{event.director} logged {event.event} {rs} with nothing "
                               f"changed{cause}"))
    return found


def _reloads(obs: Observations, bounds: Bounds) -> list[Violation]:
    found: list[Violation] = []
    for fault in obs.faults:
        if fault.kind not in ("reload_valid", "reload_invalid", "reload_bad_interface"):
            continue
        window = [e for e in obs.events if e.director == fault.target
                  and fault.at - SLOP <= e.t <= fault.at + bounds.reload_settles]
        names = [e.event for e in window]
        if fault.kind != "reload_valid":
            if "config.reload.applied" in names:
                found.append(Violation(fault.at, "config_integrity",
                                       f"{fault.target} applied an invalid config"))
            if "config.reload.rejected" not in names:
                found.append(Violation(fault.at, "config_integrity",
                                       f"{fault.target} logged no config.reload.rejected "
                                       f"within {bounds.reload_settles:g} s"))
        elif "config.reload.applied" not in names:
            seen = ", ".join(names) or "no event"
            found.append(Violation(fault.at, "config_integrity",
                                   f"{fault.target} did not apply a valid reload within "
                                   f"{bounds.reload_settles:g} s ({seen})"))
        # The daemon the signal reached: from its last (re)start before the reload to the
        # next one after it, which a later fault or the executor caused, not the reload.
        lives = _daemon_restarts(obs, fault.target)
        since = max((up for _, up in lives if up <= fault.at), default=float("-inf"))
        until = min((down for down, _ in lives if down > fault.at), default=float("inf"))
        # A daemon still starting when the signal came (a slow host can take 15 s) logs
        # its first director.started in the window: not a restart.
        up = any(e.director == fault.target and e.event == "director.started"
                 and since <= e.t < fault.at - SLOP for e in obs.events) or since < 0
        restarted = up and any(e.event == "director.started" for e in window)
        pids = sorted((p.t, p.pid) for p in obs.procs if p.director == fault.target
                      and since <= p.t < until)
        before = [pid for t, pid in pids if t < fault.at]
        after = [pid for t, pid in pids if t > fault.at + bounds.reload_settles]
        if restarted or (before and after and before[-1] != after[0]):
            found.append(Violation(fault.at, "config_integrity",
                                   f"{fault.target}'s daemon restarted on a reload"))
    return found


def _daemon_restarts(obs: Observations, director: str) -> list[tuple[float, float]]:
    """(went down, started again) for `director`'s daemon: an injected kill (restarted at
    its end), or a death the executor found (restarted at once)."""
    lives = [(f.at, f.end) for f in obs.faults
             if f.kind == "kill_daemon" and f.target == director]
    lives += [(e.t, e.t) for e in obs.events
              if e.director == director and e.event == DAEMON_DIED]
    return sorted(lives)


def _hygiene(obs: Observations, bounds: Bounds, figures: dict[str, float]) -> list[Violation]:
    found: list[Violation] = []
    stops = _windows(obs, STOPS)
    # The bound is judged on the series of one process that last rss_min_span; a daemon
    # or VRRP child the nemesis kills sooner gives only shorter ones, whose slope is
    # mostly start-up (imports, first allocations): reported apart, never as the judged
    # figure, with the number of series judged, so a run that judged none says so.
    # Of a long series only the later half is judged: a process's first minutes under the
    # nemesis also set its high-water marks, once each (the first burst of 600 idle API
    # connections grows the heap by ~0.6 MiB that later bursts reuse; the first reload
    # builds the config models), and a 30-minute soak of one daemon under every fault but
    # a kill grew 20-24 MiB/h over its first 5-10 minutes and 0.4-1.6 MiB/h over the 20
    # after (docs/reliability.md, "The RSS soak"). A leak grows in both halves alike.
    # The whole series' slope is reported beside it.
    worst_growth = 0.0
    worst_whole_growth = 0.0
    worst_short_growth = 0.0
    judged = 0
    for director in sorted({p.director for p in obs.procs}):
        series = sorted((p for p in obs.procs if p.director == director), key=lambda p: p.t)
        zombie_since: float | None = None
        reported_zombie = False
        over_fds = False
        seen: dict[int, tuple[float, float]] = {}
        for sample in series:
            if sample.zombies:
                zombie_since = sample.t if zombie_since is None else zombie_since
                if sample.t - zombie_since > bounds.zombie and not reported_zombie:
                    found.append(Violation(zombie_since, "hygiene",
                                           f"{director}: {sample.zombies} zombie(s) for more "
                                           f"than {bounds.zombie:g} s"))
                    reported_zombie = True
            else:
                zombie_since, reported_zombie = None, False
            if sample.fds > bounds.fds and not over_fds:
                found.append(Violation(sample.t, "hygiene",
                                       f"{director}: {sample.fds} open descriptors (bound "
                                       f"{bounds.fds})"))
            over_fds = sample.fds > bounds.fds
            for pid in sample.scripts:
                first, _last = seen.get(pid, (sample.t, sample.t))
                seen[pid] = (first, sample.t)
        limit = bounds.script_timeout + bounds.script_slack
        children = {sample.vrrp for sample in series}
        for pid, (first, last) in sorted(seen.items()):
            if pid in children:
                continue
            stopped = any(f.target == director and a <= last and first <= b
                          for a, b, f in stops)
            if last - first > limit and not stopped:
                found.append(Violation(first, "hygiene",
                                       f"{director}: script pid {pid} ran {last - first:.1f} s, "
                                       f"past its {bounds.script_timeout:g} s timeout"))
        for pid in sorted({p.pid for p in series}):
            points = [(p.t, p.rss_kib / 1024) for p in series if p.pid == pid]
            span = points[-1][0] - points[0][0] if points else 0.0
            if span < 60.0:
                continue
            whole = _slope(points) * 3600
            if span < bounds.rss_min_span:
                worst_short_growth = max(worst_short_growth, whole)
                continue
            judged += 1
            worst_whole_growth = max(worst_whole_growth, whole)
            middle = points[0][0] + span / 2
            growth = _slope([point for point in points if point[0] >= middle]) * 3600
            worst_growth = max(worst_growth, growth)
            if growth > bounds.rss_growth_mib_per_h:
                found.append(Violation(points[-1][0], "hygiene",
                                       f"{director} pid {pid}: RSS grows {growth:.1f} MiB/h "
                                       f"over the later {span / 2:.0f} s of its {span:.0f} s "
                                       f"(bound {bounds.rss_growth_mib_per_h:g}; "
                                       f"{whole:.1f} MiB/h over the whole)"))
    figures["rss_growth_mib_per_h"] = round(worst_growth, 1)
    figures["rss_growth_whole_series_mib_per_h"] = round(worst_whole_growth, 1)
    figures["rss_series_judged"] = judged
    figures["rss_growth_short_series_mib_per_h"] = round(worst_short_growth, 1)
    return found


def _slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    if var == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var


def _explained_by_a_stall(obs: Observations, event: Event,
                          stalls: Sequence[Event]) -> bool:
    """A check flip or IPVS op that follows (within 5 s, same director and real server)
    a check.down the world explains (see _stalled): the stall's doing, and its return."""
    rs = event.fields.get("rs")
    return any(s.director == event.director and s.fields.get("rs") == rs
               and s.t <= event.t <= s.t + 5.0 for s in stalls)


def _clock(obs: Observations, bounds: Bounds, stalls: Sequence[Event]) -> list[Violation]:
    found: list[Violation] = []
    steps = [f for f in obs.faults if f.kind == "clock_step"]
    # Another fault in progress (a kill, a partition, a crash...) moves things by itself:
    # what it moves is judged by the other invariants, not blamed on the clock. Its window
    # is the fault's effective one (a killed daemon until its status answers again).
    others = [(a, b) for a, b, f in _windows(obs, KINDS) if f.kind != "clock_step"]
    for fault in steps:
        for event in obs.events:
            if not fault.at <= event.t <= fault.end + bounds.clock_grace:
                continue
            if _explained_by_a_stall(obs, event, stalls):
                continue
            if any(a <= event.t <= b + bounds.clock_grace for a, b in others):
                continue
            if (event.event == "vrrp.transition" or event.event in CHECK_FLIPS
                    or event.event.startswith(IPVS_OP_PREFIXES)):
                found.append(Violation(event.t, "clock",
                                       f"{event.director} logged {event.event} "
                                       f"{_summary(event)} after a realtime step of "
                                       f"{fault.params.get('step_s', 0):+g} s"))
    return found


def _summary(event: Event) -> str:
    keys = ("from_state", "to_state", "reason", "rs", "weight", "detail", "error")
    return " ".join(f"{k}={event.fields[k]}" for k in keys if k in event.fields)
