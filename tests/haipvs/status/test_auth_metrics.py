"""auth_hmac verdicts in /metrics and /status: one counter per verdict."""

from __future__ import annotations

import dataclasses

from status_sample import sample_snapshot

from haipvs.status.metrics import render_metrics


def test_auth_verdicts_are_one_counter_each() -> None:
    snapshot = sample_snapshot()
    (instance,) = snapshot.instances
    with_auth = dataclasses.replace(
        snapshot,
        instances=(
            dataclasses.replace(
                instance,
                auth_verdicts={"ok": 30, "invalid_hmac": 2, "replay": 1},
                adverts_dropped={"auth_invalid_hmac": 2, "auth_replay": 1},
            ),
        ),
    )
    text = render_metrics(lambda: with_auth).decode()
    for verdict, count in (("ok", 30), ("invalid_hmac", 2), ("replay", 1)):
        assert (
            'haipvs_vrrp_auth_verdicts_total{instance="VI_PUBLIC",interface="eth0",'
            f'verdict="{verdict}",vrid="51"}} {count}.0'
        ) in text
    assert 'reason="auth_replay",vrid="51"} 1.0' in text
    assert with_auth.to_json()["instances"][0]["auth_verdicts"]["replay"] == 1
    # Without auth_hmac there is no such sample.
    plain = render_metrics(sample_snapshot).decode()
    assert "haipvs_vrrp_auth_verdicts_total{" not in plain
