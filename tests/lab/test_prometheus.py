"""A real Prometheus server scrapes a running director and evaluates haipvs's alerts.

Lab only: `.venv/bin/haipvs lab run -- .venv/bin/pytest -m lab tests/lab/test_prometheus.py`.
One director of the lab pair runs with its real servers; Debian's `prometheus` runs in
the director's namespace, scrapes GET /metrics every second and loads
etc/prometheus/haipvs-alerts.yml. A healthy director fires nothing; a real server
that stops makes HaipvsBackendDown fire. The rule's `for: 1m` is cut to 2 s here to
keep the run short (promtool's unit tests check the real durations). Every query of
the Grafana dashboard is then run against the live data.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from haipvs.lab.pair import REAL_SERVERS, DirectorPair, PairSettings, running_pair, wait_until

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(
        shutil.which("prometheus") is None,
        reason="prometheus is not installed (apt-get install prometheus; ./dev does)",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = PairSettings(check_interval=0.5, check_timeout=0.4, rise=1, fall=1)
PROMETHEUS = "127.0.0.1:9090"


@pytest.fixture(scope="module")
def director() -> Iterator[DirectorPair]:
    with running_pair(SETTINGS, prefix="prm-") as pair:
        pair.start_real_servers()
        pair.start_director("dir1")
        wait_until(lambda: pair.vrrp_state("dir1") == "MASTER", 90)
        yield pair


@pytest.fixture(scope="module")
def prometheus(director: DirectorPair) -> Iterator[DirectorPair]:
    work = director.workdir / "prometheus"
    work.mkdir()
    rules = yaml.safe_load((ROOT / "etc/prometheus/haipvs-alerts.yml").read_text())
    for rule in rules["groups"][0]["rules"]:
        if rule["alert"] == "HaipvsBackendDown":
            rule["for"] = "2s"
    (work / "rules.yml").write_text(yaml.safe_dump(rules))
    (work / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(work / "rules.yml")],
        "scrape_configs": [
            {"job_name": "haipvs", "static_configs": [{"targets": ["127.0.0.1:9797"]}]}
        ],
    }))
    log = (work / "prometheus.log").open("ab")
    process = director.net.popen(
        "dir1",
        ["prometheus", f"--config.file={work / 'prometheus.yml'}",
         f"--storage.tsdb.path={work / 'data'}", f"--web.listen-address={PROMETHEUS}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        wait_until(lambda: _value(director, 'up{job="haipvs"}') == 1.0, 120, step=0.5)
        yield director
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def _api(pair: DirectorPair, path: str, query: str | None = None) -> Any:
    argv = ["curl", "-s", "-m", "5", "-G", "-w", "\n%{http_code}",
            f"http://{PROMETHEUS}/api/v1/{path}"]
    if query is not None:
        argv += ["--data-urlencode", f"query={query}"]
    result = pair.net.run("dir1", argv, check=False)
    if result.returncode != 0 or not result.stdout:
        return None
    body, _, status = result.stdout.rpartition("\n")
    if status == "503":
        # Prometheus answers "Service Unavailable" (plain text) until its TSDB has opened;
        # on a loaded guest that takes seconds after the port is already listening.
        return None
    return json.loads(body)


def _value(pair: DirectorPair, query: str) -> float | None:
    answer = _api(pair, "query", query)
    if not answer or answer["status"] != "success" or not answer["data"]["result"]:
        return None
    return float(answer["data"]["result"][0]["value"][1])


def _alerts(pair: DirectorPair) -> list[dict[str, Any]]:
    answer = _api(pair, "alerts")
    return [] if not answer else list(answer["data"]["alerts"])


def _evaluations_done(pair: DirectorPair, after: float) -> bool:
    answer = _api(pair, "rules")
    if not answer:
        return False
    (group,) = answer["data"]["groups"]
    last = group["lastEvaluation"]
    return not last.startswith("0001") and _rfc3339(last) > after


def _rfc3339(text: str) -> float:
    # "2026-12-04T14:10:31.123456789Z": whole seconds are enough here.
    return datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()


def test_a_healthy_director_fires_nothing_and_a_stopped_backend_fires_backend_down(
    prometheus: DirectorPair,
) -> None:
    pair = prometheus
    wait_until(lambda: _value(pair, "sum(haipvs_check_up)") == 3.0, 60, step=0.5)
    settled = time.time()
    # A few rounds of evaluation with every check up: nothing pending, nothing firing.
    wait_until(lambda: _evaluations_done(pair, settled + 3), 60, step=0.5)
    assert _alerts(pair) == []
    pair.stop_real_server("rs2")

    def fired() -> list[dict[str, Any]]:
        return [a for a in _alerts(pair)
                if a["labels"]["alertname"] == "HaipvsBackendDown" and a["state"] == "firing"]

    wait_until(lambda: bool(fired()), 90, step=0.5)
    (alert,) = fired()
    assert alert["labels"]["rs"] == f"{REAL_SERVERS[1]}:80"
    assert alert["labels"]["severity"] == "warning"
    assert alert["annotations"]["summary"] == (
        f"real server {REAL_SERVERS[1]}:80 of {alert['labels']['vs']} is down")
    # The other real servers stay up: the service is served, no critical alert.
    assert not [a for a in _alerts(pair)
                if a["labels"]["alertname"] == "HaipvsServiceAllBackendsDown"]


def test_every_dashboard_query_runs_against_the_live_director(prometheus: DirectorPair) -> None:
    document = json.loads((ROOT / "etc/grafana/haipvs-dashboard.json").read_text())
    empty: list[str] = []
    for panel in document["panels"]:
        for target in panel["targets"]:
            query = target["expr"].replace("$job", "haipvs").replace("$director", ".*")
            answer = _api(prometheus, "query", query)
            assert answer is not None and answer["status"] == "success", (query, answer)
            if not answer["data"]["result"]:
                empty.append(query)
    # Only the rate/increase panels may be empty this early, and the "down" table.
    assert all("[" in query or "== 0" in query for query in empty), empty
