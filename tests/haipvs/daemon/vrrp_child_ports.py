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


def leaky() -> FakePorts:
    """A lone director whose socket to the daemon is also held by a long-lived script.

    Its death gives the daemon no end of stream: only the process's exit tells.
    """
    import os
    import subprocess
    import sys

    fd = int(sys.argv[1])
    script = subprocess.Popen(["sleep", "60"], pass_fds=(fd,), start_new_session=True)
    with open(os.environ["HAIPVS_TEST_LEAK_PIDFILE"], "w") as pidfile:
        pidfile.write(str(script.pid))
    return lone_director()


class _NoEth7(FakePorts):
    async def __call__(self, settings: InstanceSettings) -> InstancePorts:
        if settings.interface == "eth7":
            raise VrrpIoError("open vrrp socket eth7", errno.ENODEV)
        return await super().__call__(settings)


def no_eth7() -> FakePorts:
    """A lone director whose host has no eth7: an instance there cannot start."""
    return _NoEth7(FakeSegment(), IPv4Address("198.51.100.1"),
                   addresses=FakeVipAddresses(["eth0"]))


def crash() -> FakePorts:
    """The VRRP process dies while it starts, before it can answer."""
    import os

    os._exit(3)


def collector_state() -> FakePorts:
    """A lone director that first writes whether the garbage collector is on."""
    import gc
    import os

    with open(os.environ["HAIPVS_TEST_GC_FILE"], "w") as out:
        out.write(str(gc.isenabled()))
    return lone_director()
