"""The chaos pair's config (haipvs.lab.chaos.chaos_config) is what the daemon would run.

These run anywhere (no lab): a config the loader refuses would make every lab
scenario fail at start-up for a reason that is not the scenario's, and the settings
the scenarios rely on (damping, notify timeout, programmer interval, tracking) must
reach the compiled parts with the values the assertions assume.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from haipvs.config import ConfigInvalid
from haipvs.config.compile import compile_config
from haipvs.config.load import load_config_text
from haipvs.lab.chaos import (
    ADVERT_INTERVAL,
    DAMPING,
    NOTIFY_TIMEOUT,
    PROGRAMMER_MAX_INTERVAL,
    SETTINGS,
    chaos_config,
    ipvs_line_weights,
    probe_times,
)


@pytest.mark.parametrize("name", ["dir1", "dir2"])
def test_the_chaos_config_loads_and_compiles_with_the_scenarios_settings(
    name: str, tmp_path: Path
) -> None:
    compiled = compile_config(load_config_text(chaos_config(name, SETTINGS, tmp_path)).config)
    (instance,) = compiled.instances
    assert instance.priority == (150 if name == "dir1" else 100)
    assert instance.advert_interval == ADVERT_INTERVAL
    assert {track.name: track.weight for track in instance.track_interfaces} == {
        "eth0": 0, "eth1": 0}
    assert instance.notify is not None and instance.notify.timeout == NOTIFY_TIMEOUT
    assert instance.notify.master is not None
    assert instance.notify.master[0] == str(tmp_path / "hang-notify.sh")
    assert compiled.max_interval == PROGRAMMER_MAX_INTERVAL
    specs = [spec for _target, spec in compiled.checks.values()]
    assert len(specs) == SETTINGS.real_servers
    for spec in specs:
        damping = spec.timing.flap_damping
        assert damping is not None
        assert damping.half_life == DAMPING["half_life"]
        assert damping.max_suppress == DAMPING["max_suppress"]


def test_the_weight_variant_changes_only_rs2(tmp_path: Path) -> None:
    base = chaos_config("dir1", SETTINGS, tmp_path)
    changed = chaos_config("dir1", SETTINGS, tmp_path, rs2_weight=3)
    diff = [(a, b) for a, b in zip(base.splitlines(), changed.splitlines(), strict=True)
            if a != b]
    assert diff == [("      - {address: 10.0.0.12, port: 80, weight: 1}",
                     "      - {address: 10.0.0.12, port: 80, weight: 3}")]


def test_the_invalid_reload_file_of_scenario_6_is_refused_for_its_scheduler(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigInvalid) as refused:
        load_config_text(chaos_config("dir2", SETTINGS, tmp_path, scheduler="fastest"))
    assert [error.key_path for error in refused.value.errors] == ["virtual_servers[0].scheduler"]


def test_probe_times_reads_tcpdump_lines_per_source() -> None:
    output = (
        b"1700000000.100000 IP 10.0.0.2.41000 > 10.0.0.11.80: tcp 0\n"
        b"1700000000.350000 IP 10.0.0.3.52000 > 10.0.0.11.80: tcp 0\n"
        b"1700000000.600000 IP 10.0.0.2.41002 > 10.0.0.11.80: tcp 0\n"
        b"tcpdump: verbose output suppressed\n"
    )
    assert probe_times(output) == {"10.0.0.2": [1700000000.1, 1700000000.6],
                                    "10.0.0.3": [1700000000.35]}


def test_ipvs_weights_reads_the_masq_rows_of_ipvsadm() -> None:
    listing = """IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  198.51.100.10:80 rr
  -> 10.0.0.11:80                 Masq    1      0          3
  -> 10.0.0.12:80                 Masq    3      1          0
"""
    assert ipvs_line_weights(listing) == {"10.0.0.11": 1, "10.0.0.12": 3}
