"""The rendered BIRD configuration: its shape, and BIRD's own parser accepts it."""

from __future__ import annotations

import shutil
import subprocess
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest

from haipvs.bgp.snippet import BfdTimers, BirdSettings, Neighbour, protocol_name, render_bird_config

SETTINGS = BirdSettings(
    router_id=IPv4Address("192.0.2.11"),
    local_as=65011,
    neighbours=(
        Neighbour(IPv4Address("192.0.2.1"), 65000),
        Neighbour(IPv4Address("192.0.2.2"), 65000),
    ),
    vips=(IPv6Address("2001:db8::10"), IPv4Address("198.51.100.10")),
    bfd=BfdTimers(interval_ms=100, multiplier=3),
)


def test_protocol_names_are_bird_symbols() -> None:
    assert protocol_name(IPv4Address("198.51.100.10")) == "haipvs_vip_198_51_100_10"
    assert protocol_name(IPv6Address("2001:db8::10")) == "haipvs_vip_2001_db8__10"


def test_each_vip_is_a_disabled_static_and_each_neighbour_exports_only_them() -> None:
    text = render_bird_config(SETTINGS)
    static4 = text.index("protocol static haipvs_vip_198_51_100_10 {")
    assert "route 198.51.100.10/32 blackhole;" in text[static4:]
    assert "route 2001:db8::10/128 blackhole;" in text
    assert text.count("  disabled;") == 2
    assert text.index("haipvs_vip_198_51_100_10") < text.index("haipvs_vip_2001_db8__10")
    assert text.count("protocol bgp ") == 2
    assert text.count("bfd on;") == 2
    assert text.count('export where proto ~ "haipvs_vip_*";') == 4  # two families each
    assert "min rx interval 100 ms;" in text and "multiplier 3;" in text


def test_without_bfd_there_is_no_bfd_protocol() -> None:
    text = render_bird_config(
        BirdSettings(IPv4Address("192.0.2.11"), 65011, SETTINGS.neighbours, SETTINGS.vips, bfd=None)
    )
    assert "bfd" not in text


@pytest.mark.skipif(shutil.which("bird") is None, reason="BIRD 2 is not installed")
def test_bird_parses_the_rendered_config(tmp_path: Path) -> None:
    config = tmp_path / "bird.conf"
    config.write_text(render_bird_config(SETTINGS))
    parsed = subprocess.run(
        ["bird", "-p", "-c", str(config)], capture_output=True, text=True, check=False
    )
    assert parsed.returncode == 0, parsed.stderr


def test_a_failed_session_restarts_after_error_wait_not_bird_s_minute() -> None:
    # BIRD's default `error wait time 60,300` kept a healthy director out of the routers'
    # ECMP for a minute after one BFD flap in the lab; each session carries ours.
    text = render_bird_config(SETTINGS)
    assert text.count("  error wait time 5,60;") == 2
    custom = BirdSettings(
        SETTINGS.router_id, 65011, SETTINGS.neighbours, SETTINGS.vips, error_wait=(2, 30)
    )
    assert "  error wait time 2,30;" in render_bird_config(custom)
