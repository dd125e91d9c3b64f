"""A port factory for the VRRP process test: the VRRP thread dies of a bug once
the instance is master (a datagram the receive path cannot handle)."""

from __future__ import annotations

from ipaddress import IPv4Address

from vrrp.fake import FakePorts, FakeSegment, FakeVipAddresses
from vrrp.packet import VRRP_MULTICAST_V4
from vrrp.ports import InstancePorts, IPAddress, ReceivedAdvert
from vrrp.settings import InstanceSettings


class _DyingPorts(FakePorts):
    async def __call__(self, settings: InstanceSettings) -> InstancePorts:
        ports = await super().__call__(settings)
        link = ports.link
        send = link.send
        sent = 0

        async def counting_send(payload: bytes, destination: IPAddress) -> None:
            nonlocal sent
            await send(payload, destination)
            sent += 1
            if sent == 3:  # master for a while: now the bug
                bad = ReceivedAdvert(None, IPv4Address("198.51.100.2"),  # type: ignore[arg-type]
                                     VRRP_MULTICAST_V4, 255)
                link.deliver(bad)  # type: ignore[attr-defined]

        link.send = counting_send  # type: ignore[method-assign]
        return ports


def dies_as_master() -> FakePorts:
    return _DyingPorts(FakeSegment(), IPv4Address("198.51.100.1"),
                       addresses=FakeVipAddresses(["eth0"]))
