"""The scale-out walk's measuring parts, on the host: reading the router's route changes,
the share spread, the p95, and the long-lived client (haipvs.lab.holders) against a real
lab server on loopback."""

from __future__ import annotations

import datetime
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from haipvs.lab import scaleout_walk
from haipvs.lab.holders import HoldResult
from haipvs.lab.scaleout import settled_counts
from haipvs.lab.scaleout_walk import (
    established_entries,
    explain_broken_flows,
    first_route_without,
    p95,
    parse_monitor_line,
    share_spread,
    table_changes,
)

MULTIPATH = ("[2026-12-04T20:59:05.832112] 192.0.2.10 proto bird metric 32 \\"
             "\tnexthop via 10.0.1.2 dev d1 weight 1 \\\tnexthop via 10.0.3.2 dev d3 weight 1 ")


def test_a_monitor_line_gives_its_time_and_the_change_on_one_line() -> None:
    parsed = parse_monitor_line(MULTIPATH + "\n")
    assert parsed is not None
    stamp, text = parsed
    assert stamp == pytest.approx(datetime.datetime(2026, 12, 4, 20, 59, 5, 832112).timestamp())
    assert text == ("192.0.2.10 proto bird metric 32 nexthop via 10.0.1.2 dev d1 weight 1 "
                    "nexthop via 10.0.3.2 dev d3 weight 1")


@pytest.mark.parametrize("line", ["", "Deleted 192.0.2.10 proto bird", "[not a time] x"])
def test_a_line_without_a_timestamp_is_skipped(line: str) -> None:
    assert parse_monitor_line(line) is None


def test_the_withdrawal_is_the_first_route_after_the_death_without_that_next_hop() -> None:
    events = [
        (10.0, "192.0.2.10 proto bird metric 32 nexthop via 10.0.1.2 dev d1 weight 1 "
               "nexthop via 10.0.2.2 dev d2 weight 1"),  # before the death: ignored
        (20.0, "Deleted 192.0.2.10 via 10.0.1.2 dev d1"),  # a deletion is not a route
        (20.1, "192.0.2.10 proto bird metric 32 nexthop via 10.0.1.2 dev d1 weight 1 "
               "nexthop via 10.0.2.2 dev d2 weight 1"),  # still through d2
        (20.2, "192.0.2.100 via 10.0.1.2 dev d1 proto bird"),  # another address
        (20.3, "192.0.2.10 via 10.0.1.2 dev d1 proto bird metric 32"),
    ]
    assert first_route_without(events, "10.0.2.2", since=15.0) == 20.3
    assert first_route_without(events, "10.0.2.2", since=25.0) is None
    # 10.0.2.20 is not 10.0.2.2
    assert first_route_without([(1.0, "192.0.2.10 via 10.0.2.20 dev d2")], "10.0.2.2", 0) == 1.0


def test_share_spread_is_the_largest_relative_deviation_from_one_nth() -> None:
    assert share_spread({"d1": 100, "d2": 100, "d3": 100}) == 0
    # 142 / 268 / 201 of 611: d2 has 0.4386, 1/3 + 31.6 %
    assert share_spread({"d1": 142, "d2": 268, "d3": 201}) == pytest.approx(0.316, abs=1e-3)
    assert share_spread({"d1": 0, "d2": 0}) != share_spread({"d1": 0, "d2": 0})  # nan


def test_p95_is_the_nearest_rank() -> None:
    assert p95([300.0]) == 300.0
    assert p95([100.0, 500.0, 200.0]) == 500.0
    assert p95([float(n) for n in range(1, 21)]) == 19.0
    assert p95([float(n) for n in range(1, 101)]) == 95.0


def test_a_break_is_counted_by_cause_with_its_time() -> None:
    result = HoldResult()
    result.broke("ok")
    result.broke("rst")
    result.broke("rst")
    result.broke("connect_failed")  # never opened: not a broken connection
    summary = result.summary(4)
    assert summary["broken"] == 2
    assert summary["causes"] == {"ok": 1, "rst": 2, "connect_failed": 1}
    assert len(summary["breaks"]) == 2  # type: ignore[arg-type]
    assert not result.stalled_within(3.0)
    result.last_stall = time.monotonic()
    assert result.stalled_within(3.0)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.05)


def seen(progress: Path) -> dict[str, object]:
    """The client's progress file (rewritten every second; absent or half written: {})."""
    try:
        found: dict[str, object] = json.loads(progress.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return found


def test_holders_stop_on_sigterm_with_every_connection_ok(tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "haipvs.lab.servers", "--name", "rsB",
                               "--http", f"127.0.0.1:{port}"], stdout=subprocess.PIPE)
    out = tmp_path / "held.json"
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == b"ready"
        holders = subprocess.Popen([
            sys.executable, "-m", "haipvs.lab.holders", "--vip", "127.0.0.1", "--port",
            str(port), "--count", "3", "--heartbeat", "0.1", "--ramp", "0.1",
            "--out", str(out)])
        progress = Path(str(out) + ".progress")
        until(lambda: seen(progress).get("backends") == {"rsB": 3})
        holders.send_signal(signal.SIGTERM)
        assert holders.wait(30) == 0
    finally:
        server.kill()
        server.wait()
    result = json.loads(out.read_text())
    interval = result.pop("heartbeat_ms")
    shortest, longest = result.pop("heartbeat_p5_ms"), result.pop("heartbeat_p95_ms")
    assert 50 <= shortest <= longest  # never within half a period of the previous one
    assert result.pop("beats") > 0
    assert result.pop("longest_gap_ms") < 3000
    flows = result.pop("locals")
    assert len(set(flows)) == 3 and all(flow.startswith("127.0.0.1:") for flow in flows)
    assert result == {"connections": 3, "opened": 3, "broken": 0, "causes": {"ok": 3},
                      "backends": {"rsB": 3}, "breaks": [], "broken_flows": [], "quiet": 0,
                      "eof_kinds": {}}
    assert interval >= 100  # one heartbeat per 0.1 s at most


def test_holders_hold_connections_and_count_the_ones_a_dead_server_broke(
        tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "haipvs.lab.servers", "--name", "rsA",
                               "--http", f"127.0.0.1:{port}"], stdout=subprocess.PIPE)
    out = tmp_path / "held.json"
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == b"ready"
        holders = subprocess.Popen([
            sys.executable, "-m", "haipvs.lab.holders", "--vip", "127.0.0.1", "--port",
            str(port), "--source", "127.0.0.1", "--count", "5", "--heartbeat", "0.1",
            "--ramp", "0.2", "--out", str(out)])
        progress = Path(str(out) + ".progress")
        until(lambda: seen(progress).get("backends") == {"rsA": 5})
        assert seen(progress)["broken"] == 0
        server.kill()
        server.wait()
        # Every connection broke, so the client has nothing left to hold: it writes its
        # summary and exits.
        assert holders.wait(30) == 0
    finally:
        server.kill()
        server.wait()
    result = json.loads(out.read_text())
    assert result["connections"] == 5
    assert result["broken"] == 5
    assert set(result["causes"]) <= {"eof", "rst"}, result
    # each eof says what it was (a killed server's kernel sends a FIN or a RST)
    assert sum(result["eof_kinds"].values()) == result["causes"].get("eof", 0), result


class TablesOnly:
    """What explain_broken_flows and table_changes read of a lab: each director's
    `ipvsadm -Lnc` and log, as the lab's kernel and daemons print them."""

    CONNECTIONS = {
        "d1": "IPVS connection entries\npro expire state       source             virtual"
              "            destination\n"
              "TCP 14:58  ESTABLISHED 10.0.9.3:41234     192.0.2.10:80      10.1.2.2:80\n"
              "TCP 14:58  ESTABLISHED 10.0.9.3:41234     192.0.2.10:81      10.1.3.2:81\n",
        "d2": "IPVS connection entries\npro expire state       source             virtual"
              "            destination\n"
              "TCP 14:59  ESTABLISHED 10.0.9.3:41234     192.0.2.10:80      10.1.4.2:80\n",
        "d3": "IPVS connection entries\n",
    }
    LOG = "\n".join([
        '{"rs": "10.1.5.2:80", "event": "check.up", "timestamp": "2026-12-05T09:14:09.5Z"}',
        '{"rs": "10.1.5.2:80", "weight": 1, "reason": "health_up", "event": '
        '"ipvs.dest.added", "timestamp": "2026-12-05T09:14:10.25Z"}',
        '{"event": "bgp.vip.announced", "timestamp": "2026-12-05T09:14:11Z"}',
        'not json "event" check.down',
    ])

    def __init__(self) -> None:
        self.daemons = {"d1": None, "d2": None, "d3": None}
        self.net = self

    def run(self, host: str, argv: list[str],
            check: bool = True) -> subprocess.CompletedProcess[str]:
        assert argv == ["ipvsadm", "-Lnc"]
        return subprocess.CompletedProcess(argv, 0, self.CONNECTIONS[host], "")

    def log_text(self, name: str) -> str:
        return self.LOG if name == "d2" else ""


def test_a_broken_flow_is_traced_to_the_director_that_sent_it_elsewhere() -> None:
    lab = TablesOnly()
    population = {"broken_flows": [[12.5, "rst", "10.0.9.3:41234", "rs2"]]}
    assert explain_broken_flows(lab, population, 80) == [  # type: ignore[arg-type]
        "rst 10.0.9.3:41234 (rs2): d1 rs2 ESTABLISHED, d2 rs4 ESTABLISHED, d3 -"]
    # the same entries count what a joiner knew: the VIP's port only
    assert established_entries(lab, "d1", 80) == 1  # type: ignore[arg-type]
    assert established_entries(lab, "d3", 80) == 0  # type: ignore[arg-type]
    since = datetime.datetime(2026, 12, 5, 9, 14, 10, tzinfo=datetime.UTC).timestamp()
    assert table_changes(lab, since) == [  # type: ignore[arg-type]
        "d2 09:14:10.250 ipvs.dest.added rs=10.1.5.2:80 reason=health_up weight=1"]


def test_the_flap_mender_restarts_only_a_started_unsilenced_director_that_is_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    restarted: list[str] = []
    monkeypatch.setattr(scaleout_walk, "restart_after_flap",
                        lambda lab, host: restarted.append(host))
    mender = scaleout_walk.FlapMender.__new__(scaleout_walk.FlapMender)
    mender.lab = SimpleNamespace(daemons={"d1": None, "d2": None, "d3": None},  # type: ignore[assignment]
                                 silenced={"d3"})
    mender.mend({"device1": "up", "bfd1": "up", "d1": "up Established",
                 "d2": "start Active", "d3": "start Connect", "d4": "start Idle"})
    assert restarted == ["d2"]  # d3 is silenced on purpose, d4 has not started


def test_a_broken_flow_is_traced_to_every_reset_captured_for_its_address_and_port(
    tmp_path: Path,
) -> None:
    capture = scaleout_walk.ResetCapture.__new__(scaleout_walk.ResetCapture)
    (tmp_path / "client").write_text(
        "1796478656.095890 eth0  In  IP 192.0.2.10.81 > 10.0.9.3.33417: Flags [R], seq 9\n"
        "1796478656.095891 eth0  In  IP 192.0.2.10.81 > 10.0.9.3.334170: Flags [R], seq 9\n")
    (tmp_path / "rs2").write_text(
        "1796478656.095884 eth0  Out IP 192.0.2.10.81 > 10.0.9.3.33417: Flags [R], seq 9\n"
        "1796478655.264437 tunl0 In  IP 10.0.9.3.33417 > 192.0.2.10.81: Flags [R], seq 7\n")
    capture.files = {"client": tmp_path / "client", "rs2": tmp_path / "rs2",
                     "d1": tmp_path / "missing"}
    result = scaleout_walk.CaseResult("director_join", event_at=100.0)
    result.rr = {"broken_flows": [(52.0, "rst", "10.0.9.3:33417", "rs3")]}
    assert capture.explain(result) == [
        "rr rst 10.0.9.3:33417 (rs3) at event -48.00 s",
        "  client: 1796478656.095890 eth0  In  IP 192.0.2.10.81 > 10.0.9.3.33417: "
        "Flags [R], seq 9",
        "  rs2: 1796478656.095884 eth0  Out IP 192.0.2.10.81 > 10.0.9.3.33417: "
        "Flags [R], seq 9",
        "  rs2: 1796478655.264437 tunl0 In  IP 10.0.9.3.33417 > 192.0.2.10.81: "
        "Flags [R], seq 7",
    ]


def test_a_flow_an_earlier_case_opened_is_reported_as_reused_with_that_case() -> None:
    lab = SimpleNamespace(flows_seen={})
    first = scaleout_walk.reused_flows(lab, "director_death",  # type: ignore[arg-type]
                                       [({"locals": ["10.0.9.3:40001"]}, 81)])
    later = scaleout_walk.reused_flows(lab, "director_join",  # type: ignore[arg-type]
                                       [({"locals": ["10.0.9.3:40001", "10.0.9.3:40003"]}, 81),
                                        ({"locals": ["10.0.9.3:40001"]}, 80)])
    assert first == []
    # the same address and port to the other VIP port is another flow
    assert later == ["10.0.9.3:40001>81 (first in director_death)"]


class CounterTicks:
    """ipvsadm's counters as the lab's kernel shows them: the connections scheduled are
    folded into what a read sees only on the estimator's 2 s tick."""

    def __init__(self, arrivals: dict[float, int]) -> None:
        self.now = 0.0
        self.arrivals = arrivals  # time -> connections scheduled then
        self.reads: list[float] = []

    def read(self) -> dict[str, int]:
        self.reads.append(self.now)
        tick = (self.now // 2.0) * 2.0
        return {"d1": sum(n for at, n in self.arrivals.items() if at <= tick)}

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_counters_are_read_once_they_have_stood_still_longer_than_the_kernel_tick() -> None:
    # A burst that ended at 5.25 s: an immediate read shows the 4.0 s tick's 400, not 600.
    counters = CounterTicks({1.0: 200, 3.0: 200, 5.25: 200})
    counters.now = 5.5
    assert counters.read() == {"d1": 400}
    assert settled_counts(counters.read, clock=lambda: counters.now,
                          sleep=counters.sleep) == {"d1": 600}
    # The read at 6.0 saw that tick's 600; the last one 2.5 s later.
    assert counters.reads[-1] == 8.5


def test_counters_that_never_settle_are_an_error_not_a_figure() -> None:
    counters = CounterTicks({float(t): 1 for t in range(100)})
    with pytest.raises(TimeoutError, match="still moving after 30 s"):
        settled_counts(counters.read, clock=lambda: counters.now, sleep=counters.sleep)
