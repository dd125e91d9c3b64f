"""The Prometheus alerting rules: promtool's own unit tests, and the metric names.

`promtool test rules` runs tests/haipvs/status/alerts_test.yml (one group per alert);
it is skipped only where promtool is not installed (Debian's `prometheus` package;
./dev installs it, so CI always runs it).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from status_sample import sample_snapshot

from haipvs.status.metrics import render_metrics

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "etc/prometheus/haipvs-alerts.yml"
TESTS = Path(__file__).with_name("alerts_test.yml")


def rules() -> list[dict[str, object]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_every_alert_has_a_promtool_case_that_fires() -> None:
    fired = {
        case["alertname"]
        for group in yaml.safe_load(TESTS.read_text())["tests"]
        for case in group["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert fired == {rule["alert"] for rule in rules()}


def test_the_rules_use_only_metrics_haipvs_exports() -> None:
    exposition = render_metrics(lambda: sample_snapshot(down=True)).decode()
    exported = set()
    for family in text_string_to_metric_families(exposition):
        exported.update(sample.name for sample in family.samples)
    used = {name for rule in rules() for name in re.findall(r"haipvs_\w+", str(rule["expr"]))}
    assert used and used <= exported, used - exported


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool is not installed (apt-get install prometheus; ./dev does)")
def test_promtool_checks_and_unit_tests_every_alert(tmp_path: Path) -> None:
    check = subprocess.run(["promtool", "check", "rules", str(RULES)],
                           check=False, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    descriptions = {rule["alert"]: rule["annotations"]["description"] for rule in rules()}  # type: ignore[index]
    assert not any("{{" in text for text in descriptions.values())
    document = yaml.safe_load(TESTS.read_text())
    for group in document["tests"]:
        for case in group["alert_rule_test"]:
            for alert in case["exp_alerts"]:
                alert["exp_annotations"]["description"] = descriptions[case["alertname"]]
    shutil.copy(RULES, tmp_path / "haipvs-alerts.yml")
    (tmp_path / "alerts_test.yml").write_text(yaml.safe_dump(document, sort_keys=False))
    result = subprocess.run(["promtool", "test", "rules", "alerts_test.yml"], cwd=tmp_path,
                            check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


DASHBOARD = ROOT / "etc/grafana/haipvs-dashboard.json"


def dashboard_queries() -> list[str]:
    document = json.loads(DASHBOARD.read_text())
    # Grafana's variables, as a single-director selection would expand them.
    return [
        target["expr"].replace("$job", "haipvs").replace("$director", "lb1:9797")
        for panel in document["panels"]
        for target in panel["targets"]
    ]


def test_the_dashboard_uses_only_metrics_haipvs_exports() -> None:
    exposition = render_metrics(lambda: sample_snapshot(down=True)).decode()
    exported = set()
    for family in text_string_to_metric_families(exposition):
        exported.update(sample.name for sample in family.samples)
    used = {name for query in dashboard_queries() for name in re.findall(r"haipvs_\w+", query)}
    assert used and used <= exported, used - exported


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool is not installed (apt-get install prometheus; ./dev does)")
def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    # promtool parses recording rules' expressions: the queries, as recording rules.
    rules_file = tmp_path / "dashboard-queries.yml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{index}", "expr": query}
        for index, query in enumerate(dashboard_queries())
    ]}]}))
    check = subprocess.run(["promtool", "check", "rules", str(rules_file)],
                           check=False, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
