"""VrrpProcessPart: VRRP in a child process, driven over its socket (fake ports)."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from ipaddress import ip_interface
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from support import until

from haipvs.daemon.vrrp_process import RT_CPU_LIMIT_US, VrrpProcessError, VrrpProcessPart
from haipvs.status.snapshot import InstanceView
from vrrp.settings import InstanceSettings, VipSpec

pytestmark = pytest.mark.looptime(False)

HERE = Path(__file__).parent
PORTS = "vrrp_child_ports:lone_director"


@pytest.fixture(autouse=True)
def child_imports_the_factories(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    path = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", path)
    yield


def instance(priority: int = 100) -> InstanceSettings:
    return InstanceSettings(
        name="VI_WEB", interface="eth0", vrid=51, priority=priority, version=3,
        advert_interval=0.05, preempt=True, preempt_delay=0.0,
        vips=(VipSpec(ip_interface("198.51.100.10/24")),), garp_repeat=1,
    )


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


async def test_transitions_status_reload_and_graceful_stop_cross_the_process() -> None:
    seen: list[tuple[str, str, str, str]] = []
    part = VrrpProcessPart(
        [instance()], lambda name, old, new, reason, _detail: seen.append((name, old, new, reason)),
        ports=PORTS,
    )
    await part.start()
    try:
        child = part.pid
        assert child is not None and child != os.getpid()
        # keepalived's vrrp_rlimit_rttime: a spinning real-time VRRP thread is stopped.
        limits = Path(f"/proc/{child}/limits").read_text()
        assert any(line.startswith("Max realtime timeout") and line.split()[3:5]
                   == [str(limit) for limit in RT_CPU_LIMIT_US] for line in limits.splitlines())
        await until(lambda: any(new == "MASTER" for _, _, new, _ in seen), 20)
        assert seen[0][:3] == ("VI_WEB", "INIT", "BACKUP")
        await until(lambda: bool(part.views()) and part.views()[0].state == "MASTER", 20)
        (view,) = part.views()
        assert (view.name, view.vrid, view.priority, view.vips) == (
            "VI_WEB", 51, 100, ("198.51.100.10/24",))
        assert view.last_transition is not None and view.last_transition.to_state == "MASTER"
        sent = view.adverts_sent
        await until(lambda: part.views()[0].adverts_sent > sent, 20)  # counters keep coming
        # A reload that changes a tunable is applied in place in the same process.
        await part.update([instance(priority=120)])
        await until(lambda: part.views()[0].priority == 120, 20)
        assert part.views()[0].state == "MASTER" and part.pid == child
    finally:
        await part.stop()
    assert part.views() == () and part.pid is None
    assert not alive(child)
    assert seen[-1][2] == "INIT"  # the graceful stop resigned (RFC 5798 §6.4.3)


async def test_a_failing_update_leaves_the_process_running_what_it_ran() -> None:
    # An instance this host cannot bring up (no eth7): the update fails, the child keeps
    # running the instances it had, and an update back to them is a no-op, not a restart.
    seen: list[tuple[str, str]] = []
    part = VrrpProcessPart([instance()], lambda name, _o, new, _r, _d: seen.append((name, new)),
                           ports="vrrp_child_ports:no_eth7")
    await part.start()
    try:
        child = part.pid
        await until(lambda: ("VI_WEB", "MASTER") in seen, 20)
        bad = dataclasses.replace(instance(), name="VI_BAD", interface="eth7", vrid=52)
        with pytest.raises(VrrpProcessError, match="eth7"):
            await part.update([instance(), bad])
        await part.update([instance()])
        await until(lambda: [v.name for v in part.views()] == ["VI_WEB"], 20)
        assert part.views()[0].state == "MASTER" and part.pid == child
        assert seen[-1] == ("VI_WEB", "MASTER")  # no transition on the way
    finally:
        await part.stop()


async def test_a_start_failure_is_reported_with_its_cause() -> None:
    part = VrrpProcessPart([instance()], lambda *_: None, ports="vrrp_child_ports:refused")
    with pytest.raises(VrrpProcessError, match="open vrrp socket eth0"):
        await part.start()
    assert part.pid is None


async def test_a_dead_vrrp_process_is_logged_and_started_again() -> None:
    states: list[str] = []
    part = VrrpProcessPart([instance()], lambda _n, _o, new, _r, _d: states.append(new),
                           ports=PORTS)
    await part.start()
    try:
        first = part.pid
        assert first is not None
        await until(lambda: "MASTER" in states, 20)
        with capture_logs() as logs:
            os.kill(first, signal.SIGKILL)
            await until(lambda: part.pid not in (None, first) and states.count("MASTER") == 2, 20)
        (died,) = [entry for entry in logs if entry["event"] == "vrrp.process.died"]
        assert died["exit"] == "killed by SIGKILL" and died["pid"] == first
        assert died["restarts"] == part.restarts() == 1
        assert any(entry["event"] == "vrrp.process.started" for entry in logs)
    finally:
        await part.stop()


def test_the_vrrp_process_resigns_when_the_daemon_dies(tmp_path: Path) -> None:
    # The daemon is SIGKILLed (the OOM killer, say): the kernel's PR_SET_PDEATHSIG
    # tells the VRRP process, which stops gracefully instead of holding the VIPs.
    script = textwrap.dedent(f"""
        import asyncio, sys
        sys.path[:0] = [{str(HERE)!r}, {str(HERE.parent.parent)!r}]
        from test_vrrp_process import instance, PORTS
        from haipvs.daemon.vrrp_process import VrrpProcessPart

        async def main():
            part = VrrpProcessPart([instance()], lambda *a: None, ports=PORTS)
            await part.start()
            print("vrrp pid", part.pid, flush=True)
            await asyncio.sleep(3600)

        asyncio.run(main())
    """)
    daemon = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert daemon.stdout is not None
    line, deadline = b"", time.monotonic() + 30
    while not line.startswith(b"vrrp pid "):
        assert select.select([daemon.stdout], [], [], deadline - time.monotonic())[0], (
            "no VRRP process within 30 s")
        line = daemon.stdout.readline()
        assert line, "the daemon ended before starting VRRP"
    child = int(line.split()[-1])
    assert alive(child)
    daemon.kill()
    # The child shares the daemon's stdout: the pipe ends when the child has exited.
    after = daemon.communicate(timeout=30)[0].decode()
    deadline = time.monotonic() + 20
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)
    assert "reason=shutdown" in after and "vrrp.process.stopped" in after


async def test_a_failing_transition_callback_does_not_stop_the_messages() -> None:
    calls: list[str] = []

    def follower(_name: str, _old: str, new: str, _reason: str, _detail: str) -> None:
        calls.append(new)
        if new == "BACKUP":
            raise RuntimeError("a bug in the follower")

    part = VrrpProcessPart([instance()], follower, ports=PORTS)
    with capture_logs() as logs:
        await part.start()
        try:
            await until(lambda: "MASTER" in calls, 20)
            await until(lambda: bool(part.views()) and part.views()[0].state == "MASTER", 20)
        finally:
            await part.stop()
    assert calls[:2] == ["BACKUP", "MASTER"]
    assert [entry["event"] for entry in logs].count("vrrp.process.callback_failed") == 1


def reaped(pid: int) -> bool:
    """Gone from the process table: not running and no zombie either."""
    return not Path(f"/proc/{pid}").exists()


def says_master(views: tuple[InstanceView, ...]) -> bool:
    return any(view.state == "MASTER" for view in views)


async def test_a_child_that_dies_with_a_message_unread_is_noticed_reaped_and_respawned() -> None:
    # A stream socket closed with unread data gives its peer ECONNRESET, not an end of
    # stream: the daemon must count that as the child's death too.
    part = VrrpProcessPart([instance()], lambda *_: None, ports=PORTS)
    await part.start()
    try:
        first = part.pid
        assert first is not None
        await until(lambda: says_master(part.views()), 20)
        with capture_logs() as logs:
            os.kill(first, signal.SIGSTOP)
            update = asyncio.create_task(part.update([instance(priority=101)]))
            await asyncio.sleep(0.2)  # the update is in the stopped child's socket, unread
            os.kill(first, signal.SIGKILL)
            with pytest.raises(VrrpProcessError):
                await update
            await until(lambda: any(e["event"] == "vrrp.process.died" for e in logs), 20)
            assert not says_master(part.views())  # a dead child is no MASTER
            await until(lambda: part.pid not in (None, first) and says_master(part.views()), 20)
        (died,) = [entry for entry in logs if entry["event"] == "vrrp.process.died"]
        assert died["pid"] == first and died["exit"] == "killed by SIGKILL"
        await until(lambda: reaped(first), 20)
    finally:
        await part.stop()


async def test_a_child_whose_socket_outlives_it_is_noticed_by_its_exit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A script the child started holds the socket open: no end of stream ever comes,
    # the process's exit (pidfd) is the only sign.
    pidfile = tmp_path / "script.pid"
    monkeypatch.setenv("HAIPVS_TEST_LEAK_PIDFILE", str(pidfile))
    part = VrrpProcessPart([instance()], lambda *_: None, ports="vrrp_child_ports:leaky")
    await part.start()
    script = int(pidfile.read_text())
    try:
        first = part.pid
        assert first is not None
        await until(lambda: says_master(part.views()), 20)
        with capture_logs() as logs:
            os.kill(first, signal.SIGKILL)
            await until(lambda: any(e["event"] == "vrrp.process.died" for e in logs), 20)
            assert not says_master(part.views())
        (died,) = [entry for entry in logs if entry["event"] == "vrrp.process.died"]
        assert died["noticed"] == "process exit"
        await until(lambda: reaped(first), 20)
        await until(lambda: part.pid not in (None, first), 20)
    finally:
        os.kill(script, signal.SIGKILL)
        await part.stop()


async def test_the_respawn_wait_doubles_for_a_child_that_keeps_dying() -> None:
    # The child reports its status every half second; that report used to reset the
    # wait, so it never doubled.
    part = VrrpProcessPart([instance()], lambda *_: None, ports=PORTS)
    await part.start()
    try:
        with capture_logs() as logs:
            for restarts in (1, 2):
                before = part.pid
                assert before is not None
                await until(lambda: bool(part.views()), 20)
                os.kill(before, signal.SIGKILL)
                await until(lambda r=restarts, b=before: part.restarts() == r  # type: ignore[misc]
                            and part.pid not in (None, b), 30)
        waits = [e["restart_in_s"] for e in logs if e["event"] == "vrrp.process.died"]
        assert waits == [1.0, 2.0]
    finally:
        await part.stop()


async def test_a_failover_hold_crosses_the_process_and_outlives_a_respawn() -> None:
    seen: list[tuple[str, str, str]] = []
    part = VrrpProcessPart([instance()], lambda _n, old, new, reason, _d: seen.append(
        (old, new, reason)), ports=PORTS)
    await part.start()
    try:
        await until(lambda: ("BACKUP", "MASTER", "master_down_timer") in seen, 20)
        await part.set_holds({"VI_WEB": "operator failover by uid 0"})
        await until(lambda: ("MASTER", "BACKUP", "operator_failover") in seen, 20)
        await until(lambda: bool(part.views()) and part.views()[0].priority_reasons == (
            "held as backup by haipvs failover",), 20)
        assert part.views()[0].effective_priority == 1
        first = part.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        await until(lambda: part.pid not in (None, first), 20)
        # The new process is held again before anyone asks.
        await until(lambda: bool(part.views()) and part.views()[0].effective_priority == 1, 20)
        await part.set_holds({})
        await until(lambda: bool(part.views()) and part.views()[0].effective_priority == 100, 20)
        assert part.views()[0].priority_reasons == ()
    finally:
        await part.stop()


async def test_the_first_process_is_forked_from_the_daemon_and_a_respawn_is_a_new_one() -> None:
    seen: list[str] = []
    part = VrrpProcessPart([instance()], lambda _n, _o, new, _r, _d: seen.append(new),
                           ports=PORTS, fork_first=True)
    await part.start()
    try:
        first = part.pid
        assert first is not None
        # Forked: the same executable image, no new interpreter command line.
        assert Path(f"/proc/{first}/cmdline").read_bytes() == Path(
            f"/proc/{os.getpid()}/cmdline").read_bytes()
        assert Path(f"/proc/{first}/comm").read_text() == "haipvs-vrrp\n"  # named all the same
        await until(lambda: "MASTER" in seen, 20)
        # The daemon's own signals are untouched by the child: SIGTERM to the child is
        # the child's graceful stop, and this process (the "daemon") carries on.
        with capture_logs() as logs:
            os.kill(first, signal.SIGKILL)
            await until(lambda: part.pid not in (None, first) and seen.count("MASTER") == 2, 20)
        assert any(e["event"] == "vrrp.process.died" for e in logs)
        second = part.pid
        assert second is not None
        assert b"child_main" in Path(f"/proc/{second}/cmdline").read_bytes()  # exec'd
        assert Path(f"/proc/{second}/comm").read_text() == "haipvs-vrrp\n"
    finally:
        await part.stop()


async def test_a_forked_process_collects_garbage_though_the_daemon_starts_without(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `haipvs run` starts with the collector off until it has started (haipvs.cli); the
    # VRRP process it forks runs as long as the daemon and turns it on at once.
    path = tmp_path / "gc"
    monkeypatch.setenv("HAIPVS_TEST_GC_FILE", str(path))
    gc.disable()
    try:
        part = VrrpProcessPart([instance()], lambda *_: None,
                               ports="vrrp_child_ports:collector_state", fork_first=True)
        await part.start()
        try:
            await until(path.exists, 20)
        finally:
            await part.stop()
    finally:
        gc.enable()
    assert path.read_text() == "True"


async def test_the_vrrp_process_ignores_packages_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "python -c" puts the working directory first on sys.path: a vrrp/ or haipvs/
    # folder there would be imported by the root-owned VRRP process.
    marker = tmp_path / "imported"
    for package in ("vrrp", "haipvs"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text(
            f"open({str(marker)!r}, 'a').write({package!r})\n")
    monkeypatch.chdir(tmp_path)
    part = VrrpProcessPart([instance()], lambda *_: None, ports=PORTS)
    await part.start()
    try:
        await until(lambda: says_master(part.views()), 20)
    finally:
        await part.stop()
    assert not marker.exists()


async def test_a_forked_process_stops_gracefully_and_leaves_the_daemon_alone() -> None:
    seen: list[tuple[str, str]] = []
    part = VrrpProcessPart([instance()], lambda _n, old, new, _r, _d: seen.append((old, new)),
                           ports=PORTS, fork_first=True)
    await part.start()
    child = part.pid
    assert child is not None
    await until(lambda: ("BACKUP", "MASTER") in seen, 20)
    os.kill(child, signal.SIGTERM)  # a signal to the child must not reach our event loop
    await until(lambda: ("MASTER", "BACKUP") in seen or not alive(child), 20)
    await part.stop()
    assert not alive(child)


async def test_a_child_that_dies_while_starting_is_one_start_failure_not_a_respawn() -> None:
    # Its death is the start's error, reported to the caller; no respawn loop may
    # start behind the caller's back as well.
    part = VrrpProcessPart([instance()], lambda *_: None, ports="vrrp_child_ports:crash")
    with capture_logs() as logs:
        with pytest.raises(VrrpProcessError, match="ended"):
            await part.start()
        await asyncio.sleep(1.5)  # past the first respawn wait: a rogue respawn shows
    assert part.pid is None and part.restarts() == 0
    assert [e["event"] for e in logs if e["event"].startswith("vrrp.process")] == []
    await part.stop()


async def test_the_vips_of_a_dead_child_are_removed_before_it_is_respawned() -> None:
    # The kernel as the dead child left it: its VIP still on eth0 (a fake with the real
    # port's contract); the daemon removes it when it notices the death, and says so.
    from vrrp.fake import FakeVipAddresses

    kernel = FakeVipAddresses(["eth0"])
    vip = ip_interface("198.51.100.10/24")
    part = VrrpProcessPart([instance()], lambda *_: None, ports=PORTS, addresses=kernel)
    await part.start()
    try:
        first = part.pid
        assert first is not None
        await until(lambda: says_master(part.views()), 20)
        await kernel.add("eth0", vip)
        with capture_logs() as logs:
            os.kill(first, signal.SIGKILL)
            await until(lambda: any(e["event"] == "vrrp.process.died" for e in logs), 20)
        assert kernel.held("eth0") == ()
        (died,) = [entry for entry in logs if entry["event"] == "vrrp.process.died"]
        assert died["vips_released"] == ["198.51.100.10/24 dev eth0"]
        assert "release_errors" not in died
        await until(lambda: part.pid not in (None, first) and says_master(part.views()), 20)
    finally:
        await part.stop()


async def test_a_vip_that_cannot_be_removed_is_reported_and_the_child_still_respawns() -> None:
    from vrrp.fake import FakeVipAddresses

    kernel = FakeVipAddresses([])  # eth0 is gone: every request fails with ENODEV
    part = VrrpProcessPart([instance()], lambda *_: None, ports=PORTS, addresses=kernel)
    await part.start()
    try:
        first = part.pid
        assert first is not None
        await until(lambda: says_master(part.views()), 20)
        with capture_logs() as logs:
            os.kill(first, signal.SIGKILL)
            await until(lambda: any(e["event"] == "vrrp.process.died" for e in logs), 20)
        (died,) = [entry for entry in logs if entry["event"] == "vrrp.process.died"]
        assert died["vips_released"] == [] and "no such interface" in died["release_errors"][0]
        await until(lambda: part.pid not in (None, first) and says_master(part.views()), 20)
    finally:
        await part.stop()
