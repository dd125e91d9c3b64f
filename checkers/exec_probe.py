"""Exec probe: keepalived's MISC_CHECK (misc_path, misc_timeout, misc_dynamic).

This module owns running one check program to completion or to its deadline.

Rules kept here:
- argv only, never a shell: the command is a tuple of words from the config,
  so nothing in it is interpreted (no injection through addresses or names).
- A minimal, fixed environment: PATH, plus the real server's address and port
  (HAProxy's external-check passes HAPROXY_SERVER_ADDR/PORT the same way), so a
  check does not depend on whatever environment the daemon was started with.
  stdin, stdout and stderr are /dev/null; the working directory is /.
- The program runs in its own session, hence its own process group; at the
  deadline the whole group gets SIGKILL (a shell script's children included,
  as keepalived's misc_timeout kills the checker's process group), and the
  program is reaped before the probe returns (on cancellation, as soon as it
  is gone).
- Its exit is watched through a pidfd (Linux 5.3+) registered in the event loop:
  no child-watcher thread, pipe or transport per check.
- Exit status: 0 = up. With `dynamic_weight` (keepalived misc_dynamic):
  1 = down, 2..255 = up with weight = status - 2; 0 = up with the configured
  weight (ProbeResult.weight None). Without it any non-zero status is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess

from checkers.result import ProbeResult
from checkers.spec import ExecCheck, Target
from checkers.tcp import describe_timeout
from cleanspawn import clean_spawn

__all__ = ["CHECK_PATH", "check_exec", "verdict_from_status"]

CHECK_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def verdict_from_status(status: int, *, dynamic_weight: bool) -> tuple[bool, str, int | None]:
    """(ok, detail, weight) for an exit status; negative = killed by that signal.

    Pure: keepalived misc_dynamic's table lives here so it can be tested alone.
    """
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        return False, f"killed by {name}", None
    if status == 0:
        return True, "exit 0", None
    if dynamic_weight and status >= 2:
        weight = status - 2
        return True, f"exit {status}: weight {weight}", weight
    return False, f"exit {status}", None


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # the whole group is already gone
        os.killpg(pid, signal.SIGKILL)


async def _exited(loop: asyncio.AbstractEventLoop, pidfd: int, deadline: float | None) -> bool:
    """Wait until the process behind `pidfd` exits (True) or `deadline` passes (False)."""
    fut: asyncio.Future[bool] = loop.create_future()

    def on_exit() -> None:
        if not fut.done():
            fut.set_result(True)

    def on_deadline() -> None:
        if not fut.done():
            fut.set_result(False)

    loop.add_reader(pidfd, on_exit)
    timer = loop.call_at(deadline, on_deadline) if deadline is not None else None
    try:
        return await fut
    finally:
        loop.remove_reader(pidfd)
        if timer is not None:
            timer.cancel()


def _reap_later(
    loop: asyncio.AbstractEventLoop, pidfd: int, process: subprocess.Popen[bytes]
) -> None:
    """Reap a killed process once it is gone, without waiting for it here; owns `pidfd`."""

    def on_exit() -> None:
        loop.remove_reader(pidfd)
        os.close(pidfd)
        process.wait()  # it has exited: returns at once

    loop.add_reader(pidfd, on_exit)


async def check_exec(
    command: tuple[str, ...],
    timeout: float,  # noqa: ASYNC109 - the probe enforces its own deadline (see header)
    *,
    dynamic_weight: bool = False,
    address: str | None = None,
    port: int | None = None,
) -> ProbeResult:
    """Run `command` (argv, no shell); up on exit 0 (see the module header)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    env = {"PATH": CHECK_PATH}
    if address is not None:
        env["HAIPVS_RS_ADDRESS"] = address
    if port is not None:
        env["HAIPVS_RS_PORT"] = str(port)
    # Without the daemon's privileges and limits (cleanspawn): inherited when the
    # event loop's thread is already clean, so that subprocess can vfork.
    spawn = clean_spawn(command, CHECK_PATH)
    try:
        # The program's exit is watched through a pidfd (Linux 5.3+) in the event
        # loop: no child-watcher thread per check, no pipes, no transport.
        # Popen returns once the child is exec'd (it never waits for the program);
        # asyncio.create_subprocess_exec makes this same call.
        process = subprocess.Popen(  # noqa: ASYNC220
            spawn.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd="/",
            start_new_session=True,
            # When set, the reset makes syscalls only (cleanspawn): safe with threads.
            preexec_fn=spawn.preexec_fn,  # noqa: PLW1509
        )
    except OSError as exc:
        detail = f"exec {command[0]} failed: {(exc.strerror or str(exc)).lower()}"
        return ProbeResult(ok=False, detail=detail, latency=loop.time() - started)

    # Not reaped yet, so the pid is still ours: pidfd_open cannot race a reuse.
    pidfd = os.pidfd_open(process.pid)
    try:
        if not await _exited(loop, pidfd, started + timeout):
            _kill_group(process.pid)
            await _exited(loop, pidfd, None)
            process.wait()
            return ProbeResult(
                ok=False,
                detail=f"killed after timeout {describe_timeout(timeout)}",
                latency=loop.time() - started,
            )
    except asyncio.CancelledError:
        # The pool stopped or the check was removed: leave no process behind.
        _kill_group(process.pid)
        _reap_later(loop, pidfd, process)
        raise
    except BaseException:
        os.close(pidfd)
        raise
    os.close(pidfd)
    status = process.wait()  # it has exited: returns at once
    ok, detail, weight = verdict_from_status(status, dynamic_weight=dynamic_weight)
    return ProbeResult(ok=ok, detail=detail, latency=loop.time() - started, weight=weight)


async def probe(spec: ExecCheck, target: Target) -> ProbeResult:
    """The MISC_CHECK of ``spec`` for ``target`` (run_probe's entry point)."""
    return await check_exec(
        spec.command,
        spec.timing.timeout,
        dynamic_weight=spec.dynamic_weight,
        address=str(target.address),
        port=target.port,
    )
