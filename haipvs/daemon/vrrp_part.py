"""The supervisor's VRRP part: vrrp.VrrpService behind the supervisor's VrrpPart port.

VRRP runs in its own thread and event loop (vrrp.VrrpService), and the daemon runs
this adapter in a process of its own (haipvs.daemon.vrrp_process). This adapter turns
its transitions into the supervisor's callback, its status into InstanceViews, and
a reload into the plan of vrrp.plan_instances (the one rule, which the daemon's
reload plan shows too), executed instance by instance:

- unchanged instances are not touched;
- changed tunables, VIPs or tracking are applied in place: the state stays, a
  master adds (and announces) new VIPs and drops removed ones at once, tracking
  weights are applied again to a new priority;
- added instances start, removed ones resign (priority-0 advert) and drop their
  VIPs, a new identity (interface, vrid, family), version or sync group replaces
  the instance;
- only a change in the membership of a sync group restarts the VRRP service
  (masters resign with a priority-0 advert, so the peer takes over at once).

A failing step raises after the adapter has caught up with what runs, so the
caller can update back to the running config.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence

import structlog

import vrrp
from haipvs.status.snapshot import InstanceView, TransitionView

__all__ = ["LinuxVrrpPart"]

log = structlog.get_logger()

TransitionCallback = Callable[[str, str, str, str, str], None]


class LinuxVrrpPart:
    def __init__(
        self,
        instances: Sequence[vrrp.InstanceSettings],
        on_transition: TransitionCallback,
        *,
        ports: Callable[[], vrrp.PortsProvider] | None = None,
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._on_failure = on_failure
        self._instances = tuple(instances)
        self._on_transition = on_transition
        self._ports = ports
        self._last: dict[str, TransitionView] = {}
        self._holds: dict[str, str] = {}
        self._service = self._new_service()

    def _new_service(self) -> vrrp.VrrpService:
        return vrrp.VrrpService(
            self._instances,
            ports=self._ports,
            on_transition=self._transitioned,
            on_failure=self._on_failure,
        )

    async def start(self) -> None:
        await self._service.start_async()
        await self._apply_holds({})

    async def stop(self) -> None:
        await self._service.stop_async()

    async def update(self, instances: Sequence[vrrp.InstanceSettings]) -> None:
        new = tuple(instances)
        plan = vrrp.plan_instances(self._instances, new)
        if not plan.changed:
            self._instances = new
            return
        if plan.restart or not self._service.running:
            log.info("vrrp.service.restarting", reason="a sync group's members changed",
                     instances=len(new))
            await self._service.stop_async()
            self._instances = new
            self._service = self._new_service()
            await self._service.start_async()
            await self._apply_holds({})
            return
        try:
            await asyncio.wrap_future(self._service.call(self._service.apply(plan)))
        finally:
            # What runs now, even after a failed step: the next update plans from it.
            self._instances = self._service.instances
        # An added or replaced instance gets its operator hold (a held one is a no-op).
        await self._apply_holds({})

    async def set_holds(self, holds: Mapping[str, str]) -> None:
        """``haipvs failover`` holds: instance name -> reason (see InstanceRunner)."""
        before, self._holds = self._holds, dict(holds)
        await self._apply_holds(before)

    async def _apply_holds(self, before: Mapping[str, str]) -> None:
        names = {settings.name for settings in self._instances}
        for name in sorted((set(before) | set(self._holds)) & names):
            if before.get(name) != self._holds.get(name) or not before:
                runner = self._service.runner(name)
                await asyncio.wrap_future(
                    self._service.call(runner.hold_for_operator(self._holds.get(name)))
                )

    def loop_lag(self) -> float:
        return self._service.loop_lag.last

    def restarts(self) -> int:
        return 0  # in-process: nothing restarts it; see haipvs.daemon.vrrp_process

    def views(self) -> tuple[InstanceView, ...]:
        if not self._service.running:
            return ()
        settings = {s.name: s for s in self._instances}
        views = []
        for status in self._service.status():
            configured = settings.get(status.name)
            priority = configured.priority if configured else status.effective_priority
            reasons = list(status.faults)
            if status.name in self._holds:
                reasons.append("held as backup by haipvs failover")
            elif status.effective_priority != priority:
                # The tracked items that moved it, by name ("process chk_haproxy not
                # running (0) -60"), as the vrrp.priority.changed line says.
                reasons.append(
                    status.priority_reason
                    or f"tracking {status.effective_priority - priority:+d}"
                )
            views.append(InstanceView(
                name=status.name,
                interface=status.interface,
                vrid=status.vrid,
                version=configured.version if configured else 3,
                state=status.state.value,
                priority=priority,
                effective_priority=status.effective_priority,
                priority_reasons=tuple(reasons),
                master=None if status.master_source is None else str(status.master_source),
                vips=tuple(str(vip.address) for vip in configured.vips) if configured else (),
                last_transition=self._last.get(status.name),
                transitions=status.transitions,
                adverts_sent=status.adverts_sent,
                adverts_received=status.adverts_received,
                adverts_dropped=dict(status.adverts_dropped),
                auth_verdicts=dict(status.auth_verdicts),
                route_errors=status.route_errors,
            ))
        return tuple(views)

    def _transitioned(
        self, name: str, transition: vrrp.Transition, status: vrrp.InstanceStatus
    ) -> None:
        view = TransitionView(
            from_state=transition.old.value,
            to_state=transition.new.value,
            reason=transition.reason.value,
            detail=transition.detail,
            at=time.time(),
        )
        self._last[name] = view
        self._on_transition(name, view.from_state, view.to_state, view.reason, view.detail)
