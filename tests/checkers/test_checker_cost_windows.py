"""bench/checker_cost.py: a lab round with a window below 99 % of its schedule is not
averaged in; system calls per check from `strace -c`."""

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


def test_a_late_window_leaves_its_whole_round_out(bench: ModuleType) -> None:
    # 1,000 checks/s scheduled, 10 s windows: 9,900 checks is the 99 % line.
    rounds = [
        {"keepalived": (4.0, 9950), "haipvs": (2.0, 10000)},
        # keepalived late: haipvs's window of the same (busy) moment goes too
        {"keepalived": (6.0, 5000), "haipvs": (9.0, 10000)},
        {"keepalived": (5.0, 10000), "haipvs": (2.2, 10000)},
        # haipvs late: keepalived's window goes too
        {"keepalived": (1.0, 10000), "haipvs": (9.0, 9899)},
    ]
    result = bench.summarize_rounds("tcp", rounds, 10.0, 1000.0)
    assert result["tcp_rounds"] == 4
    assert result["tcp_rounds_on_schedule"] == 2
    assert result["keepalived_tcp_windows"] == 4
    assert result["keepalived_tcp_on_schedule_windows"] == 3
    assert result["haipvs_tcp_on_schedule_windows"] == 3
    # medians over the kept rounds only: (0.402, 0.5) and (0.2, 0.22)
    keepalived_ms = (4.0 / 9950 + 0.5e-3) / 2 * 1e3
    assert result["keepalived_tcp_ms_per_check"] == pytest.approx(keepalived_ms)
    assert result["haipvs_tcp_ms_per_check"] == pytest.approx(0.21)
    assert result["tcp_cpu_ratio"] == pytest.approx(0.21 / keepalived_ms)
    assert result["tcp_paired_ratio_median"] == pytest.approx(
        (0.2 / (4.0 / 9950 * 1e3) + 0.22 / 0.5) / 2
    )
    # the share is over every window: the late one shows there
    assert result["keepalived_tcp_scheduled_share"] == pytest.approx(0.9975)


def test_no_round_on_schedule_leaves_the_ratio_missing(bench: ModuleType) -> None:
    rounds = [{"keepalived": (6.0, 5000), "haipvs": (2.0, 10000)}]
    result = bench.summarize_rounds("http", rounds, 10.0, 1000.0)
    assert result["http_rounds_on_schedule"] == 0
    assert result["haipvs_http_on_schedule_windows"] == 1
    assert "keepalived_http_ms_per_check" not in result
    assert "haipvs_http_ms_per_check" not in result
    assert "http_cpu_ratio" not in result


STRACE_SUMMARY = """\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 46.81    0.081890          16      5001      5001 connect
 17.43    0.030502           6      5001           sendto
  0.50    0.000900           1      2500           epoll_wait
  0.01    0.000010           5         2           mmap
------ ----------- ----------- --------- --------- ----------------
100.00    0.113302           9     12504      5001 total
"""


def test_the_strace_summary_gives_calls_per_system_call(bench: ModuleType) -> None:
    calls = bench.parse_strace_summary(STRACE_SUMMARY)
    assert calls == {"connect": 5001, "sendto": 5001, "epoll_wait": 2500, "mmap": 2}


def test_system_calls_are_divided_by_the_checks_the_server_saw(bench: ModuleType) -> None:
    calls = {"connect": 5000, "epoll_wait": 2500, "mmap": 2, "socket": 4000}
    figures = bench.syscalls_per_check("haipvs", "http", calls, 5000)
    assert figures == {
        "haipvs_http_syscalls_per_check": pytest.approx(2.3004),
        # the traced window saw 4,000 checks start: 11,502 calls over 4,000
        "haipvs_http_syscalls_per_socket": pytest.approx(11502 / 4000),
        "haipvs_http_sc_connect": 1.0,
        "haipvs_http_sc_socket": 0.8,
        "haipvs_http_sc_epoll_wait": 0.5,
        "haipvs_http_sc_mmap": pytest.approx(0.0004),
    }
