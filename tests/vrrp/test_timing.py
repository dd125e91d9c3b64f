"""RFC 5798 §6.1 / RFC 3768 §6.1 timer formulas, with the RFCs' own numbers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vrrp.timing import master_down_interval, skew_time


def test_v3_priority_100_at_one_second() -> None:
    # (256 - 100) * 1.0 / 256 = 0.609375; 3 * 1.0 + 0.609375.
    assert skew_time(100, 1.0, 3) == 0.609375
    assert master_down_interval(100, 1.0, 3) == 3.609375


def test_v3_skew_scales_with_the_master_interval() -> None:
    # RFC 5798 §6.1: Skew_Time = ((256 - Priority) * Master_Adver_Interval) / 256.
    assert skew_time(100, 0.1, 3) == pytest.approx(0.0609375)
    assert master_down_interval(100, 0.1, 3) == pytest.approx(0.3609375)
    assert master_down_interval(150, 0.5, 3) == pytest.approx(1.5 + 106 * 0.5 / 256)


def test_v2_skew_is_in_seconds_whatever_the_interval() -> None:
    # RFC 3768 §6.1: Skew_Time = (256 - Priority) / 256 seconds.
    assert skew_time(100, 3.0, 2) == 0.609375
    assert master_down_interval(100, 3.0, 2) == 9.609375
    assert master_down_interval(100, 3.0, 3) == 9 + 156 * 3 / 256


def test_owner_priority_waits_least() -> None:
    assert skew_time(255, 1.0, 3) == 1 / 256
    assert skew_time(1, 1.0, 2) == 255 / 256


@given(
    st.integers(1, 254),
    st.integers(1, 4095).map(lambda cs: cs / 100),
    st.sampled_from([2, 3]),
)
def test_a_higher_priority_always_takes_over_first(
    priority: int, interval: float, version: int
) -> None:
    assert master_down_interval(priority + 1, interval, version) < master_down_interval(
        priority, interval, version
    )
    # The skew never reaches one interval, so a backup never beats a master's advert
    # by more than the advert it missed (RFC 5798 §6.1 rationale).
    assert skew_time(priority, interval, version) < (1.0 if version == 2 else interval)


@pytest.mark.parametrize(
    ("priority", "interval", "version", "reason"),
    [
        (0, 1.0, 3, r"^priority: 0 outside 1\.\.255"),
        (256, 1.0, 3, r"^priority: 256 outside 1\.\.255"),
        (100, 0.0, 3, r"^advert_interval: 0\.0 must be > 0"),
        (100, -1.0, 2, r"^advert_interval: -1\.0 must be > 0"),
        (100, 1.0, 4, r"^version: 4 must be 2 or 3"),
    ],
)
def test_misuse_raises(priority: int, interval: float, version: int, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        skew_time(priority, interval, version)
    with pytest.raises(ValueError, match=reason):
        master_down_interval(priority, interval, version)
