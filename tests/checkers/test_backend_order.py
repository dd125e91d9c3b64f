"""Backends of one service may mix families (tun real servers): they still sort."""

from __future__ import annotations

from ipaddress import ip_address

from checkers import BackendId


def test_backends_of_both_families_sort_ipv4_first() -> None:
    v6 = BackendId("svc", ip_address("2001:db8::2"), 80)
    v4b = BackendId("svc", ip_address("10.0.0.2"), 80)
    v4a = BackendId("svc", ip_address("10.0.0.1"), 443)
    other = BackendId("a-svc", ip_address("2001:db8::1"), 80)
    assert sorted([v6, v4b, v4a, other]) == [other, v4a, v4b, v6]
