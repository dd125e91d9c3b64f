"""Port factories the VRRP process test hands to its child (by "module:name")."""

from __future__ import annotations

import errno
from ipaddress import IPv4Address

from vrrp.fake import FakePorts, FakeSegment, FakeVipAddresses
from vrrp.ports import VrrpIoError


def lone_director() -> FakePorts:
    """One director alone on a segment: it becomes master after master-down."""
    return FakePorts(FakeSegment(), IPv4Address("198.51.100.1"),
                     addresses=FakeVipAddresses(["eth0"]))


def refused() -> FakePorts:
    raise VrrpIoError("open vrrp socket eth0", errno.EPERM)
