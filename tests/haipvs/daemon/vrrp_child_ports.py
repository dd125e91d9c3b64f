"""Port factories the VRRP process test hands to its child (by "module:name")."""

from __future__ import annotations

import errno
from ipaddress import IPv4Address

from vrrp.fake import FakePorts, FakeSegment, FakeVipAddresses
from vrrp.ports import InstancePorts, VrrpIoError
from vrrp.settings import InstanceSettings


def lone_director() -> FakePorts:
    """One director alone on a segment: it becomes master after master-down."""
    return FakePorts(FakeSegment(), IPv4Address("198.51.100.1"),
                     addresses=FakeVipAddresses(["eth0"]))


def refused() -> FakePorts:
    raise VrrpIoError("open vrrp socket eth0", errno.EPERM)


class _NoEth7(FakePorts):
    async def __call__(self, settings: InstanceSettings) -> InstancePorts:
        if settings.interface == "eth7":
            raise VrrpIoError("open vrrp socket eth7", errno.ENODEV)
        return await super().__call__(settings)


def no_eth7() -> FakePorts:
    """A lone director whose host has no eth7: an instance there cannot start."""
    return _NoEth7(FakeSegment(), IPv4Address("198.51.100.1"),
                   addresses=FakeVipAddresses(["eth0"]))
