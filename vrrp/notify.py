"""Notify hooks: run the operator's scripts when an instance changes state.

keepalived's ``notify_master`` / ``notify_backup`` / ``notify_fault`` /
``notify_stop``, with its argument convention appended to the configured argv:
``TYPE NAME STATE PRIORITY`` (for example ``INSTANCE VI_1 MASTER 150``), so
scripts written for keepalived keep working; and keepalived's generic ``notify``
script (``NotifySettings.any``), run on every change after the state's own hook.

Rules kept here:

1. Never a shell: the argv is executed as given (no quoting bugs, no injection
   through instance names), with a minimal environment.
2. In order per instance: each instance has its own queue and worker, so a
   MASTER hook never overtakes the BACKUP hook that preceded it, while a slow
   hook of one instance never delays another instance's hooks. The generic hook
   of a change queues right behind the state's own hook (keepalived's
   send_instance_notifies / send_group_notifies launch it after the notify_*
   script), so it runs after it and before the next change's hooks.
3. Never blocks the runner: :meth:`Notifier.notify` only enqueues. A hook that
   outlives ``timeout`` is killed (SIGKILL; keepalived's ``script_timeout``
   kills too) and reported.
4. Every run is one log line (``vrrp.notify.ran`` / ``vrrp.notify.failed``) and
   one :class:`NotifyResult` for whoever observes it (metrics, tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import structlog

from cleanspawn import clean_spawn
from vrrp.settings import NotifySettings

__all__ = [
    "MINIMAL_ENVIRONMENT",
    "HookKind",
    "Notifier",
    "NotifyResult",
    "generic_argv",
    "hook_argv",
    "run_argv",
]

log = structlog.get_logger()

#: What a hook or track script sees: enough to find the usual tools, nothing of
#: the daemon's own environment (keepalived also runs scripts with a reset env).
MINIMAL_ENVIRONMENT: Mapping[str, str] = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C",
}


class HookKind(enum.Enum):
    """Which hook runs; the value is the STATE word keepalived passes."""

    master = "MASTER"
    backup = "BACKUP"
    fault = "FAULT"
    stop = "STOP"


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How one argv ended: exit status (None if it never ran or was killed)."""

    returncode: int | None
    timed_out: bool
    error: str


@dataclass(frozen=True, slots=True)
class NotifyResult:
    instance: str
    kind: HookKind
    #: Which configured hook ran: the state's own (``master``...) or the generic ``any``.
    hook: str
    argv: tuple[str, ...]
    returncode: int | None
    timed_out: bool
    error: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.error


def hook_argv(
    settings: NotifySettings,
    kind: HookKind,
    instance: str,
    priority: int,
    *,
    scope: str = "INSTANCE",
) -> tuple[str, ...] | None:
    """The argv to run for ``kind``, keepalived's arguments appended, or None.

    ``scope`` GROUP: a sync group's hook, with keepalived's GROUP NAME STATE arguments.
    """
    base = {
        HookKind.master: settings.master,
        HookKind.backup: settings.backup,
        HookKind.fault: settings.fault,
        HookKind.stop: settings.stop,
    }[kind]
    if base is None:
        return None
    if scope == "GROUP":
        return (*base, "GROUP", instance, kind.value)
    return (*base, "INSTANCE", instance, kind.value, str(priority))


def generic_argv(
    settings: NotifySettings,
    kind: HookKind,
    name: str,
    priority: int,
    *,
    scope: str = "INSTANCE",
) -> tuple[str, ...] | None:
    """keepalived's generic ``notify`` script for ``kind``: the configured argv with
    ``INSTANCE|GROUP NAME STATE PRIORITY`` appended, or None if none is configured.

    keepalived 2.4.3 vrrp_notify.c notify_script_exec: always four words; an instance
    passes its effective priority, a group passes 0 (send_group_notifies).
    """
    if settings.any is None:
        return None
    return (*settings.any, scope, name, kind.value, str(priority if scope == "INSTANCE" else 0))


async def run_argv(
    argv: Sequence[str], kill_after: float, environment: Mapping[str, str] = MINIMAL_ENVIRONMENT
) -> RunOutcome:
    """Run ``argv`` without a shell; kill it once ``kill_after`` seconds have passed.

    Shared by notify hooks and track scripts: stdin, stdout and stderr are
    /dev/null so a chatty or interactive script cannot block on a pipe.
    """
    # Without the VRRP process's privileges and limits (cleanspawn).
    spawn = clean_spawn(argv, environment.get("PATH", ""))
    try:
        process = await asyncio.create_subprocess_exec(
            *spawn.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env=dict(environment),
            cwd="/",
            start_new_session=True,
            preexec_fn=spawn.preexec_fn,  # SCHED_OTHER, no ambient caps... (cleanspawn)
        )
    except OSError as exc:
        return RunOutcome(None, False, f"{type(exc).__name__}: {exc.strerror or exc}")
    try:
        returncode = await asyncio.wait_for(process.wait(), kill_after)
    except TimeoutError:
        # The whole session, so a shell script's children die with it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 9)
        await process.wait()
        return RunOutcome(None, True, "")
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 9)
        raise
    return RunOutcome(returncode, False, "")


@dataclass(frozen=True, slots=True)
class _Job:
    instance: str
    kind: HookKind
    hook: str
    argv: tuple[str, ...]
    timeout: float
    vrid: int | None
    iface: str | None


class Notifier:
    """Queues hooks per instance and runs them one at a time, in order.

    Must be used from one event loop (the one that called :meth:`notify` first
    owns the workers). ``on_result`` sees every :class:`NotifyResult`.
    """

    def __init__(
        self,
        *,
        on_result: Callable[[NotifyResult], None] | None = None,
        environment: Mapping[str, str] = MINIMAL_ENVIRONMENT,
    ) -> None:
        self._on_result = on_result
        self._environment = dict(environment)
        self._queues: dict[str, asyncio.Queue[_Job]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self.results: list[NotifyResult] = []

    def notify(
        self,
        instance: str,
        settings: NotifySettings | None,
        kind: HookKind,
        priority: int,
        *,
        vrid: int | None = None,
        iface: str | None = None,
        scope: str = "INSTANCE",
    ) -> bool:
        """Enqueue the hook for ``kind`` and then the generic one, those configured;
        True if any was queued.

        A sync group's hooks (``scope`` GROUP) queue under the group's name.
        """
        if settings is None:
            return False
        jobs = [
            _Job(instance, kind, hook, argv, settings.timeout, vrid, iface)
            for hook, argv in (
                (kind.name, hook_argv(settings, kind, instance, priority, scope=scope)),
                ("any", generic_argv(settings, kind, instance, priority, scope=scope)),
            )
            if argv is not None
        ]
        if not jobs:
            return False
        key = instance if scope == "INSTANCE" else f"{scope.lower()}:{instance}"
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = asyncio.Queue()
            self._workers[key] = asyncio.get_running_loop().create_task(
                self._work(queue), name=f"vrrp-notify-{key}"
            )
        for job in jobs:
            queue.put_nowait(job)
        return True

    async def _work(self, queue: asyncio.Queue[_Job]) -> None:
        while True:
            job = await queue.get()
            try:
                outcome = await run_argv(job.argv, job.timeout, self._environment)
                self._report(job, outcome)
            finally:
                queue.task_done()

    def _report(self, job: _Job, outcome: RunOutcome) -> None:
        result = NotifyResult(
            job.instance,
            job.kind,
            job.hook,
            job.argv,
            outcome.returncode,
            outcome.timed_out,
            outcome.error,
        )
        self.results.append(result)
        fields = {
            "instance": job.instance,
            "vrid": job.vrid,
            "iface": job.iface,
            "to_state": job.kind.value.lower(),
            "hook": job.hook,
            "argv": " ".join(job.argv),
        }
        if result.ok:
            log.info("vrrp.notify.ran", returncode=0, **fields)
        elif outcome.timed_out:
            log.warning("vrrp.notify.failed", reason="timeout", timeout=job.timeout, **fields)
        elif outcome.error:
            log.warning("vrrp.notify.failed", reason="exec_failed", detail=outcome.error, **fields)
        else:
            log.warning(
                "vrrp.notify.failed", reason="exit_status", returncode=outcome.returncode, **fields
            )
        if self._on_result is not None:
            self._on_result(result)

    async def join(self) -> None:
        """Wait until every queued hook has run (used by graceful stop and tests)."""
        for queue in list(self._queues.values()):
            await queue.join()

    async def close(self) -> None:
        """Stop the workers; a hook still running is killed by its cancellation."""
        for task in self._workers.values():
            task.cancel()
        for task in self._workers.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers.clear()
        self._queues.clear()
