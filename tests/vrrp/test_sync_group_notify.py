"""keepalived's sync group notify_master/backup/fault: once per change of the group's state."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from ipaddress import IPv4Address, ip_interface
from pathlib import Path

import pytest

from vrrp.fake import FakePorts, FakeSegment, FakeVipAddresses
from vrrp.machine import State, Transition, build_advert
from vrrp.notify import HookKind, hook_argv
from vrrp.packet import VRRP_MULTICAST_V4, encode_advert
from vrrp.service import VrrpService
from vrrp.settings import InstanceSettings, NotifySettings, VipSpec
from vrrp.status import InstanceStatus

VIP = ip_interface("198.51.100.10/24")
VIP2 = ip_interface("198.51.100.11/24")
A_ADDR = IPv4Address("198.51.100.1")
B_ADDR = IPv4Address("198.51.100.2")


def instance(name: str, vrid: int, vip: object, **overrides: object) -> InstanceSettings:
    values: dict[str, object] = {
        "name": name,
        "interface": "eth0",
        "vrid": vrid,
        "priority": 150,
        "version": 3,
        "advert_interval": 0.05,
        "preempt": True,
        "preempt_delay": 0.0,
        "vips": (VipSpec(vip),),  # type: ignore[arg-type]
        "garp_repeat": 1,
    }
    values.update(overrides)
    return InstanceSettings(**values)  # type: ignore[arg-type]


def test_group_hooks_carry_keepalived_group_arguments() -> None:
    settings = NotifySettings(master=("/usr/local/bin/announce", "up"))
    assert hook_argv(settings, HookKind.master, "G", 0, scope="GROUP") == (
        "/usr/local/bin/announce",
        "up",
        "GROUP",
        "G",
        "MASTER",
    )
    assert hook_argv(settings, HookKind.master, "VI_1", 150) == (
        "/usr/local/bin/announce",
        "up",
        "INSTANCE",
        "VI_1",
        "MASTER",
        "150",
    )


@pytest.mark.looptime(False)
async def test_group_hooks_run_once_per_group_change(tmp_path: Path) -> None:
    segment = FakeSegment()
    addresses = FakeVipAddresses(["eth0"])
    record = tmp_path / "hooks"
    hook = ("/bin/sh", "-c", f'echo "$*" >> {record}', "hook")
    group_notify = NotifySettings(master=hook, backup=hook, fault=hook, timeout=10)
    common = {"sync_group": "G", "sync_group_notify": group_notify}
    first = instance("VI_1", 51, VIP, **common)
    second = instance("VI_2", 52, VIP2, **common)
    seen: list[tuple[str, Transition]] = []
    changed = asyncio.Event()

    def on_transition(name: str, transition: Transition, status: InstanceStatus) -> None:
        seen.append((name, transition))
        changed.set()

    async def until(predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(10):
            while not predicate():
                changed.clear()
                await changed.wait()

    def reached(name: str, state: State, old: State | None = None) -> bool:
        return any(n == name and t.new is state and (old is None or t.old is old) for n, t in seen)

    def hooks() -> list[str]:
        return record.read_text().splitlines() if record.exists() else []

    async def peer_masters_vi_1() -> None:
        payload = encode_advert(build_advert(first, 200), B_ADDR, VRRP_MULTICAST_V4)
        while True:
            segment.inject(payload, B_ADDR, VRRP_MULTICAST_V4)
            await asyncio.sleep(0.05)

    service = VrrpService(
        [first, second],
        ports=lambda: FakePorts(segment, A_ADDR, addresses=addresses),
        on_transition=on_transition,
        realtime_priority=None,
    )
    await service.start_async()
    try:
        await until(lambda: reached("VI_1", State.MASTER) and reached("VI_2", State.MASTER))
        peer = service.call(peer_masters_vi_1())
        await until(lambda: reached("VI_2", State.BACKUP, old=State.MASTER))
        peer.cancel()
        async with asyncio.timeout(10):
            while len(hooks()) < 3:
                await asyncio.sleep(0.01)
    finally:
        await service.stop_async()
    # Both members start BACKUP, become MASTER, and follow VI_1 out: three group
    # changes, each hook once however many members moved. (Once the peer is silent the
    # group may take MASTER back before the service stops: a fourth change.)
    assert hooks()[:3] == ["GROUP G BACKUP", "GROUP G MASTER", "GROUP G BACKUP"]
    assert all(a != b for a, b in zip(hooks(), hooks()[1:], strict=False))
