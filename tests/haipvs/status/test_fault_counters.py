"""Counters of faults that leave no state behind: the kernel refusing a virtual route, a
probe not counted because the checker was not running. Each is in /metrics and /status."""

from __future__ import annotations

import dataclasses

from status_sample import sample_snapshot

from haipvs.status.metrics import render_metrics


def test_route_errors_are_counted_per_instance() -> None:
    snapshot = sample_snapshot()
    (instance,) = snapshot.instances
    failing = dataclasses.replace(
        snapshot, instances=(dataclasses.replace(instance, route_errors=2),))
    text = render_metrics(lambda: failing).decode()
    assert ('haipvs_vrrp_route_errors_total{instance="VI_PUBLIC",interface="eth0",'
            'vrid="51"} 2.0') in text
    assert failing.to_json()["instances"][0]["route_errors"] == 2


def test_inconclusive_probes_are_counted() -> None:
    late = dataclasses.replace(sample_snapshot(), checks_inconclusive=7)
    text = render_metrics(lambda: late).decode()
    assert "haipvs_check_inconclusive_total 7.0" in text
    assert late.to_json()["checks_inconclusive"] == 7
