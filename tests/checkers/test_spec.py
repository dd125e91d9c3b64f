"""Spec values: validation on construction and the probe identity used for sharing and reload."""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address, IPv6Address
from typing import Any

import pytest

from checkers.spec import (
    BackendId,
    DampingSettings,
    DnsCheck,
    ExecCheck,
    FailOpenSettings,
    HttpCheck,
    SpecError,
    Target,
    TcpCheck,
    Timing,
    UdpCheck,
    check_key,
)

RS = Target(IPv4Address("10.0.0.11"), 80)
TIMING = Timing(interval=1.0, timeout=1.0, rise=2, fall=3)


def test_target_renders_as_the_rs_log_key() -> None:
    assert str(RS) == "10.0.0.11:80"
    assert str(Target(IPv6Address("2001:db8::1"), 443)) == "[2001:db8::1]:443"


def test_backend_id_renders_service_and_rs() -> None:
    backend = BackendId("web", IPv4Address("10.0.0.11"), 80)
    assert backend.rs == "10.0.0.11:80"
    assert str(backend) == "web/10.0.0.11:80"


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"interval": 0.0}, r"^interval must be > 0"),
        ({"timeout": -1.0}, r"^timeout must be > 0"),
        ({"rise": 0}, r"^rise must be >= 1"),
        ({"fall": 0}, r"^fall must be >= 1"),
        ({"fast_interval": 0.0}, r"^fast_interval must be > 0"),
        ({"down_interval": -2.0}, r"^down_interval must be > 0"),
        ({"warmup": -0.1}, r"^warmup must be >= 0"),
        ({"slow_start": -1.0}, r"^slow_start must be >= 0"),
    ],
)
def test_timing_rejects_impossible_values(kwargs: dict[str, Any], reason: str) -> None:
    with pytest.raises(SpecError, match=reason):
        dataclasses.replace(TIMING, **kwargs)


def test_ports_are_validated() -> None:
    with pytest.raises(SpecError):
        Target(IPv4Address("10.0.0.11"), 65536)
    with pytest.raises(SpecError):
        TcpCheck(TIMING, connect_port=0)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"method": "get"}, r"^bad HTTP method 'get'"),
        ({"path": "healthz"}, r"^path must start with '/'"),
        ({"path": "/a b"}, r"^path must not contain spaces"),
        ({"expect_status": ()}, r"^expect_status must not be empty"),
        ({"expect_status": ((300, 200),)}, r"^expect_status range 300-200 not in"),
        ({"expect_status": ((99, 200),)}, r"^expect_status range 99-200 not in"),
        ({"body_regex": "("}, r"^body_regex does not compile"),
        ({"body_digest": "XYZ"}, r"^body_digest must be 32 lowercase hex"),
        ({"sni": "example.org"}, r"^sni needs tls"),
        ({"verify_tls": True}, r"^verify_tls needs tls"),
        ({"host": "a\r\nX-Injected: 1"}, r"^bad Host header"),
    ],
)
def test_http_check_rejects_bad_settings(kwargs: dict[str, object], reason: str) -> None:
    with pytest.raises(SpecError, match=reason):
        HttpCheck(TIMING, tls=False, **kwargs)  # type: ignore[arg-type]


def test_http_status_ranges() -> None:
    check = HttpCheck(TIMING, tls=True, expect_status=((200, 200), (301, 302)))
    assert check.accepts_status(200)
    assert check.accepts_status(302)
    assert not check.accepts_status(201)
    assert not check.accepts_status(503)
    default = HttpCheck(TIMING, tls=False)
    assert default.accepts_status(204)
    assert not default.accepts_status(301)


def test_other_checks_validate() -> None:
    with pytest.raises(SpecError):
        ExecCheck(TIMING, command=())
    with pytest.raises(SpecError):
        DnsCheck(TIMING, query_name="example.org", expect_rcode="WHATEVER")
    with pytest.raises(SpecError):
        DnsCheck(TIMING, query_name="example.org", query_type="a")
    with pytest.raises(SpecError):
        UdpCheck(TIMING, payload=b"ping", connect_port=70000)


def test_damping_thresholds_must_make_sense() -> None:
    with pytest.raises(SpecError):
        DampingSettings(suppress_threshold=500.0, reuse_threshold=750.0)
    with pytest.raises(SpecError):
        # ceiling = 750 * 2**(10/60) ~ 842 < 2000: could never suppress
        DampingSettings(max_suppress=10.0)
    assert DampingSettings().ceiling == pytest.approx(750.0 * 32)


def test_fail_open_settings_validate() -> None:
    with pytest.raises(SpecError):
        FailOpenSettings(fail_open_ratio=1.0)
    with pytest.raises(SpecError):
        FailOpenSettings(window=0.0)


def test_check_key_ignores_tuning_but_not_probe_parameters() -> None:
    base = HttpCheck(TIMING, tls=False, path="/healthz")
    retuned = dataclasses.replace(
        base,
        timing=Timing(
            interval=5.0,
            timeout=1.0,
            rise=5,
            fall=1,
            fast_interval=0.5,
            down_interval=10.0,
            warmup=3.0,
            slow_start=30.0,
            flap_damping=DampingSettings(),
        ),
    )
    assert check_key(base, RS) == check_key(retuned, RS)
    assert hash(check_key(base, RS)) == hash(check_key(retuned, RS))

    # what changes the probe changes the key
    assert check_key(base, RS) != check_key(dataclasses.replace(base, path="/other"), RS)
    assert check_key(base, RS) != check_key(
        dataclasses.replace(base, timing=dataclasses.replace(TIMING, timeout=2.0)), RS
    )
    assert check_key(base, RS) != check_key(base, Target(IPv4Address("10.0.0.12"), 80))
    # same parameters, different kind of check
    assert check_key(TcpCheck(TIMING), RS) != check_key(UdpCheck(TIMING, payload=b""), RS)
    assert str(check_key(base, RS)) == "http/10.0.0.11:80"
