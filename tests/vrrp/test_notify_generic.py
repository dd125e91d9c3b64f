"""keepalived's generic ``notify`` script (``NotifySettings.any``): every change, after
the state's own hook, with ``INSTANCE|GROUP NAME STATE PRIORITY`` appended."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import replace
from ipaddress import IPv4Address, ip_interface
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from vrrp.fake import FakePorts, FakeSegment, FakeVipAddresses
from vrrp.machine import InstanceReload, State, Transition, instance_reload
from vrrp.notify import HookKind, Notifier, generic_argv, hook_argv
from vrrp.service import VrrpService
from vrrp.settings import InstanceSettings, NotifySettings, VipSpec
from vrrp.status import FaultSource, InstanceStatus

VIP = ip_interface("198.51.100.10/24")
VIP2 = ip_interface("198.51.100.11/24")
A_ADDR = IPv4Address("198.51.100.1")

# Appends "<label> <the arguments haipvs appended>" to a file, after an optional pause.
RECORDER = (
    "import sys, time\n"
    "path, label, pause = sys.argv[1], sys.argv[2], float(sys.argv[3])\n"
    "time.sleep(pause)\n"
    "with open(path, 'a') as f:\n"
    "    f.write(' '.join([label, *sys.argv[4:]]) + '\\n')\n"
)


def recorder(path: Path, label: str, pause: float = 0.0) -> tuple[str, ...]:
    return (sys.executable, "-c", RECORDER, str(path), label, str(pause))


def shell_hook(path: Path, label: str) -> tuple[str, ...]:
    return ("/bin/sh", "-c", f'echo "$*" >> {path}', "hook", label)


def instance(name: str, vrid: int, vip: object, **overrides: object) -> InstanceSettings:
    values: dict[str, object] = {
        "name": name,
        "interface": "eth0",
        "vrid": vrid,
        "priority": 100,
        "version": 3,
        "advert_interval": 0.05,
        "preempt": True,
        "preempt_delay": 0.0,
        "vips": (VipSpec(vip),),  # type: ignore[arg-type]
        "garp_repeat": 1,
    }
    values.update(overrides)
    return InstanceSettings(**values)  # type: ignore[arg-type]


def test_generic_argv_appends_four_words_and_a_group_passes_priority_0() -> None:
    settings = NotifySettings(any=("/etc/keepalived/notify.sh", "extra"))
    assert generic_argv(settings, HookKind.fault, "VI_1", 150) == (
        "/etc/keepalived/notify.sh", "extra", "INSTANCE", "VI_1", "FAULT", "150",
    )
    # keepalived send_group_notifies passes 0 for a group, whatever the caller holds.
    assert generic_argv(settings, HookKind.stop, "G1", 150, scope="GROUP") == (
        "/etc/keepalived/notify.sh", "extra", "GROUP", "G1", "STOP", "0",
    )
    # The generic hook is not a state's own hook, and a state's hook is not it.
    assert hook_argv(settings, HookKind.master, "VI_1", 150) is None
    assert generic_argv(NotifySettings(master=("/bin/true",)), HookKind.master, "VI_1", 1) is None


def test_a_generic_hook_must_be_a_non_empty_argv() -> None:
    with pytest.raises(ValueError, match="any: must be None or a non-empty argv"):
        NotifySettings(any=())
    with pytest.raises(ValueError, match="any: must be None or a non-empty argv"):
        NotifySettings(any=("/bin/true", ""))


async def test_generic_runs_after_the_states_own_hook_in_order(tmp_path: Path) -> None:
    out = tmp_path / "calls"
    notifier = Notifier()
    # The state's own hook is the slow one: run concurrently, the generic one would
    # finish first, and the next change's hooks would overtake both.
    settings = NotifySettings(
        master=recorder(out, "master", 0.3),
        backup=recorder(out, "backup"),
        any=recorder(out, "any"),
        timeout=10,
    )
    with capture_logs() as logs:
        assert notifier.notify("VI_1", settings, HookKind.master, 150, vrid=51, iface="eth0")
        assert notifier.notify("VI_1", settings, HookKind.backup, 100, vrid=51, iface="eth0")
        await notifier.join()
    await notifier.close()
    assert out.read_text().splitlines() == [
        "master INSTANCE VI_1 MASTER 150",
        "any INSTANCE VI_1 MASTER 150",
        "backup INSTANCE VI_1 BACKUP 100",
        "any INSTANCE VI_1 BACKUP 100",
    ]
    assert [(r.kind, r.hook, r.ok) for r in notifier.results] == [
        (HookKind.master, "master", True),
        (HookKind.master, "any", True),
        (HookKind.backup, "backup", True),
        (HookKind.backup, "any", True),
    ]
    ran = [(e["hook"], e["to_state"]) for e in logs if e["event"] == "vrrp.notify.ran"]
    assert ran == [("master", "master"), ("any", "master"), ("backup", "backup"), ("any", "backup")]


async def test_generic_alone_runs_on_every_state_and_a_failure_names_it(tmp_path: Path) -> None:
    out = tmp_path / "calls"
    notifier = Notifier()
    settings = NotifySettings(any=recorder(out, "any"), timeout=10)
    for kind in HookKind:
        assert notifier.notify("VI_1", settings, kind, 7)
    failing = NotifySettings(master=("/bin/true",), any=("/bin/false",), timeout=10)
    with capture_logs() as logs:
        notifier.notify("VI_2", failing, HookKind.master, 7)
        await notifier.join()
    await notifier.close()
    assert out.read_text().splitlines() == [
        f"any INSTANCE VI_1 {kind.value} 7" for kind in HookKind
    ]
    (failed,) = [e for e in logs if e["event"] == "vrrp.notify.failed"]
    assert (failed["hook"], failed["reason"], failed["returncode"]) == ("any", "exit_status", 1)
    assert failed["argv"] == "/bin/false INSTANCE VI_2 MASTER 7"


def test_a_reload_that_changes_only_the_generic_hook_is_in_place() -> None:
    old = instance("VI_1", 51, VIP, notify=NotifySettings(master=("/bin/true",)))
    new = replace(old, notify=NotifySettings(master=("/bin/true",), any=("/bin/true", "x")))
    assert instance_reload(old, new) is InstanceReload.reconfigure
    grouped = replace(old, sync_group="G", sync_group_notify=NotifySettings(any=("/bin/true",)))
    regrouped = replace(grouped, sync_group_notify=NotifySettings(any=("/bin/false",)))
    assert instance_reload(grouped, regrouped) is InstanceReload.reconfigure


class Watch:
    """The transitions a service reports, and a wait for one of them."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Transition]] = []
        self.changed = asyncio.Event()

    def __call__(self, name: str, transition: Transition, status: InstanceStatus) -> None:
        self.seen.append((name, transition))
        self.changed.set()

    async def until(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(10):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

    def count(self, name: str, state: State) -> int:
        return sum(1 for n, t in self.seen if n == name and t.new is state)


@pytest.mark.looptime(False)
async def test_service_runs_the_generic_hook_on_master_backup_fault_and_stop(
    tmp_path: Path,
) -> None:
    segment = FakeSegment()
    addresses = FakeVipAddresses(["eth0"])
    record = tmp_path / "hooks"
    notify = NotifySettings(
        master=shell_hook(record, "own"),
        backup=shell_hook(record, "own"),
        fault=shell_hook(record, "own"),
        stop=shell_hook(record, "own"),
        any=shell_hook(record, "any"),
        timeout=10,
    )
    watch = Watch()
    service = VrrpService(
        [instance("VI_1", 51, VIP, notify=notify)],
        ports=lambda: FakePorts(segment, A_ADDR, addresses=addresses),
        on_transition=watch,
        realtime_priority=None,
    )
    await service.start_async()
    try:
        await watch.until(lambda: watch.count("VI_1", State.MASTER) == 1)
        runner = service.runner("VI_1")
        await asyncio.wrap_future(
            service.call(runner.set_fault(FaultSource.track, True, "test fault"))
        )
        await watch.until(lambda: watch.count("VI_1", State.FAULT) == 1)
        await asyncio.wrap_future(
            service.call(runner.set_fault(FaultSource.track, False, "test fault cleared"))
        )
        await watch.until(lambda: watch.count("VI_1", State.MASTER) == 2)
    finally:
        await service.stop_async()
    states = [t.new for _name, t in watch.seen]
    assert states[:5] == [State.BACKUP, State.MASTER, State.FAULT, State.BACKUP, State.MASTER]
    hooks = record.read_text().splitlines()
    # Each change: the state's own hook, then the generic one with the same four words.
    assert len(hooks) % 2 == 0
    pairs = list(zip(hooks[::2], hooks[1::2], strict=True))
    for own, generic in pairs:
        assert own.startswith("own INSTANCE VI_1 ") and generic.startswith("any INSTANCE VI_1 ")
        assert own.removeprefix("own ") == generic.removeprefix("any ")
    words = [generic.split() for _own, generic in pairs]
    assert [w[3] for w in words] == ["BACKUP", "MASTER", "FAULT", "BACKUP", "MASTER", "STOP"]
    assert pairs[0][1] == "any INSTANCE VI_1 BACKUP 100"
    assert pairs[1][1] == "any INSTANCE VI_1 MASTER 100"
    assert all(w[4].isdigit() for w in words)


@pytest.mark.looptime(False)
async def test_service_runs_the_groups_generic_hook_with_priority_0(tmp_path: Path) -> None:
    segment = FakeSegment()
    addresses = FakeVipAddresses(["eth0"])
    record = tmp_path / "hooks"
    group_notify = NotifySettings(
        master=shell_hook(record, "own"),
        stop=shell_hook(record, "own"),
        any=shell_hook(record, "any"),
        timeout=10,
    )
    common = {"sync_group": "G", "sync_group_notify": group_notify}
    watch = Watch()
    service = VrrpService(
        [instance("VI_1", 51, VIP, **common), instance("VI_2", 52, VIP2, **common)],
        ports=lambda: FakePorts(segment, A_ADDR, addresses=addresses),
        on_transition=watch,
        realtime_priority=None,
    )
    await service.start_async()
    try:
        await watch.until(
            lambda: all(watch.count(name, State.MASTER) == 1 for name in ("VI_1", "VI_2"))
        )
    finally:
        await service.stop_async()
    # BACKUP has no own hook here: the generic one runs alone. STOP when the daemon stops.
    assert record.read_text().splitlines() == [
        "any GROUP G BACKUP 0",
        "own GROUP G MASTER",
        "any GROUP G MASTER 0",
        "own GROUP G STOP",
        "any GROUP G STOP 0",
    ]
