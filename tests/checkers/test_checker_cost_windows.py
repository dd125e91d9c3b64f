"""bench/checker_cost.py: a lab window below 99 % of its schedule is not averaged in."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "checker_cost.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("checker_cost_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_a_late_window_is_counted_but_left_out_of_the_cost(bench: ModuleType) -> None:
    # 1,000 checks/s scheduled, 10 s windows: 9,900 checks is the 99 % line.
    windows = {
        "keepalived": [(4.0, 9950), (6.0, 5000), (5.0, 10000)],
        "haipvs": [(2.0, 10000), (2.2, 10000), (9.0, 9899)],
    }
    result = bench.summarize_windows("tcp", windows, 10.0, 1000.0)
    assert result["keepalived_tcp_windows"] == 3
    assert result["keepalived_tcp_on_schedule_windows"] == 2
    assert result["haipvs_tcp_on_schedule_windows"] == 2
    # medians over the kept windows only: (0.402, 0.5) and (0.2, 0.22)
    assert result["keepalived_tcp_ms_per_check"] == pytest.approx((4.0 / 9950 + 0.5e-3) / 2 * 1e3)
    assert result["haipvs_tcp_ms_per_check"] == pytest.approx(0.21)
    assert result["tcp_cpu_ratio"] == pytest.approx(0.21 / result["keepalived_tcp_ms_per_check"])
    # the share is over every window: the late one shows there
    assert result["keepalived_tcp_scheduled_share"] == pytest.approx(0.995)


def test_no_window_on_schedule_leaves_the_ratio_missing(bench: ModuleType) -> None:
    windows = {"keepalived": [(6.0, 5000)], "haipvs": [(2.0, 10000)]}
    result = bench.summarize_windows("http", windows, 10.0, 1000.0)
    assert result["keepalived_http_on_schedule_windows"] == 0
    assert "keepalived_http_ms_per_check" not in result
    assert "http_cpu_ratio" not in result
