"""Exec probe: real processes, argv without a shell, timeout kills the group."""

from __future__ import annotations

import asyncio
import os
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from checkers.exec_probe import check_exec, verdict_from_status
from checkers.probe import run_probe
from checkers.spec import ExecCheck, Target, Timing

SH = "/bin/sh"


async def test_exit_zero_is_up() -> None:
    result = await check_exec((SH, "-c", "exit 0"), 2.0)
    assert result.ok
    assert result.detail == "exit 0"
    assert result.weight is None


async def test_non_zero_exit_is_down_and_named() -> None:
    result = await check_exec((SH, "-c", "exit 2"), 2.0)
    assert not result.ok
    assert result.detail == "exit 2"


@pytest.mark.parametrize(
    ("status", "ok", "detail", "weight"),
    [
        (0, True, "exit 0", None),
        (1, False, "exit 1", None),
        (2, True, "exit 2: weight 0", 0),
        (7, True, "exit 7: weight 5", 5),
        (255, True, "exit 255: weight 253", 253),
    ],
)
async def test_misc_dynamic_weight_from_exit_status(
    status: int, ok: bool, detail: str, weight: int | None
) -> None:
    result = await check_exec((SH, "-c", f"exit {status}"), 2.0, dynamic_weight=True)
    assert (result.ok, result.detail, result.weight) == (ok, detail, weight)


def test_verdict_table_without_dynamic_weight() -> None:
    assert verdict_from_status(7, dynamic_weight=False) == (False, "exit 7", None)
    assert verdict_from_status(-9, dynamic_weight=False) == (False, "killed by SIGKILL", None)


async def test_killed_by_a_signal() -> None:
    result = await check_exec((SH, "-c", "kill -TERM $$"), 2.0)
    assert not result.ok
    assert result.detail == "killed by SIGTERM"


async def _wait_gone(pid: int) -> None:
    """Wait for `pid` to terminate, through a pidfd (no polling)."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    gone: asyncio.Future[None] = loop.create_future()

    def on_exit() -> None:
        if not gone.done():
            gone.set_result(None)

    loop.add_reader(pidfd, on_exit)
    try:
        # A hang guard only: with the group killed this returns at once.
        async with asyncio.timeout(10):
            await gone
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)


async def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    script = f"sleep 60 & echo $! > {pidfile}; wait"
    result = await check_exec((SH, "-c", script), 0.5)
    assert not result.ok
    assert result.detail == "killed after timeout 0.5s"
    await _wait_gone(int(pidfile.read_text()))  # the shell's child went with it


async def test_argv_is_not_interpreted_by_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "injected"
    result = await check_exec(("/bin/echo", f"$(touch {marker})", ";", "touch", str(marker)), 2.0)
    assert result.ok
    assert not marker.exists()


async def test_minimal_environment_carries_the_real_server(tmp_path: Path) -> None:
    os.environ["HAIPVS_TEST_LEAK"] = "1"
    try:
        script = (
            'test "$HAIPVS_RS_ADDRESS" = 10.0.0.11 && test "$HAIPVS_RS_PORT" = 8080'
            ' && test -z "$HAIPVS_TEST_LEAK" && test "$(pwd)" = / && command -v sh'
        )
        result = await check_exec((SH, "-c", script), 2.0, address="10.0.0.11", port=8080)
    finally:
        del os.environ["HAIPVS_TEST_LEAK"]
    assert result.ok, result.detail


async def test_missing_program_is_a_failure_not_an_exception() -> None:
    result = await check_exec(("/nonexistent/check-db",), 2.0)
    assert not result.ok
    assert result.detail == "exec /nonexistent/check-db failed: no such file or directory"


async def test_run_probe_dispatches_an_exec_check() -> None:
    timing = Timing(interval=1.0, timeout=2.0, rise=1, fall=1)
    check = ExecCheck(timing, (SH, "-c", "exit $((HAIPVS_RS_PORT - 75))"), dynamic_weight=True)
    result = await run_probe(check, Target(IPv4Address("10.0.0.11"), 80))
    assert (result.ok, result.weight) == (True, 3)


async def test_cancelled_check_kills_and_reaps_its_program(tmp_path: Path) -> None:
    fifo = tmp_path / "started"
    os.mkfifo(fifo)
    task = asyncio.ensure_future(check_exec((SH, "-c", f"echo $$ > {fifo}; exec sleep 60"), 30.0))
    # The program announces its pid through the fifo: read it as it arrives.
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    loop = asyncio.get_running_loop()
    announced: asyncio.Future[int] = loop.create_future()
    received = bytearray()

    def on_readable() -> None:
        received.extend(os.read(reader, 64))
        if received.endswith(b"\n") and not announced.done():
            announced.set_result(int(received))

    loop.add_reader(reader, on_readable)
    try:
        async with asyncio.timeout(10):  # a hang guard only
            pid = await announced
    finally:
        loop.remove_reader(reader)
        os.close(reader)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await _wait_gone(pid)
