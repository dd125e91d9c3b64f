"""VRRP timer formulas: RFC 5798 §6.1 (VRRPv3) and RFC 3768 §6.1 (VRRPv2).

All values are seconds as floats. The two versions differ only in Skew_Time:

- VRRPv2 (RFC 3768 §6.1): Skew_Time = (256 - Priority) / 256 seconds, whatever
  the advertisement interval.
- VRRPv3 (RFC 5798 §6.1): Skew_Time = ((256 - Priority) * Master_Adver_Interval) / 256,
  where a backup's Master_Adver_Interval is the interval *the master advertises*
  (RFC 5798 §6.4.2), not its own configured one.

Master_Down_Interval = 3 * interval + Skew_Time in both.

Pure module: no IO, no clock, no logging.
"""

from __future__ import annotations

__all__ = ["master_down_interval", "skew_time"]


def _check(priority: int, advert_interval: float, version: int) -> None:
    # Our own misuse raises: a priority 0 router never waits (it is resigning),
    # and a zero interval would make every backup take over at once.
    if not 1 <= priority <= 255:
        raise ValueError(f"priority: {priority} outside 1..255")
    if not advert_interval > 0:
        raise ValueError(f"advert_interval: {advert_interval} must be > 0")
    if version not in (2, 3):
        raise ValueError(f"version: {version} must be 2 or 3")


def skew_time(priority: int, advert_interval: float, version: int) -> float:
    """Seconds a backup of ``priority`` waits on top of 3 intervals (higher priority waits less).

    ``advert_interval`` is Master_Adver_Interval for VRRPv3 and is unused by the
    VRRPv2 formula (still validated, so callers cannot pass nonsense).
    """
    _check(priority, advert_interval, version)
    if version == 2:
        return (256 - priority) / 256
    return (256 - priority) * advert_interval / 256


def master_down_interval(priority: int, advert_interval: float, version: int) -> float:
    """Seconds of master silence after which a backup of ``priority`` takes over."""
    return 3 * advert_interval + skew_time(priority, advert_interval, version)
