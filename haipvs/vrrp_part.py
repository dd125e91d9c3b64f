"""The supervisor's VRRP part: vrrp.VrrpService behind the supervisor's VrrpPart port.

VRRP runs in its own thread and event loop (vrrp.VrrpService), and the daemon runs
this adapter in a process of its own (haipvs.vrrp_process). This adapter turns
its transitions into the supervisor's callback, its status into InstanceViews, and
a reload into the least disruptive change:

- unchanged instances are not touched (the supervisor does not call `update`
  unless the VRRP part of the config changed);
- when the set of instances, their identity (interface, vrid, family) or their VIPs
  are unchanged and only tunables differ (priority, intervals, preempt...), each
  changed instance is reconfigured in place, keeping its state and VIPs;
- otherwise the VRRP service restarts: masters resign with a priority-0 advert, so
  the peer takes over at once, and the new instances start as BACKUP.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

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

    async def stop(self) -> None:
        await self._service.stop_async()

    async def update(self, instances: Sequence[vrrp.InstanceSettings]) -> None:
        new = tuple(instances)
        old_by_name = {settings.name: settings for settings in self._instances}
        same_shape = set(old_by_name) == {settings.name for settings in new} and all(
            old_by_name[s.name].key == s.key
            and old_by_name[s.name].vips == s.vips
            and old_by_name[s.name].version == s.version
            and old_by_name[s.name].sync_group == s.sync_group
            and old_by_name[s.name].track_interfaces == s.track_interfaces
            and old_by_name[s.name].track_scripts == s.track_scripts
            for s in new
        )
        in_place = same_shape
        if in_place:
            for settings in new:
                if old_by_name[settings.name] != settings:
                    await asyncio.wrap_future(self._service.call(self._reconfigure(settings)))
                    log.info("vrrp.instance.reconfigured", instance=settings.name,
                             vrid=settings.vrid, iface=settings.interface,
                             reason="config_changed")
            self._instances = new
            return
        log.info("vrrp.service.restarting", reason="instances, VIPs or tracking changed",
                 instances=len(new))
        await self._service.stop_async()
        self._instances = new
        self._service = self._new_service()
        await self._service.start_async()

    async def _reconfigure(self, settings: vrrp.InstanceSettings) -> None:
        runner = self._service.runner(settings.name)
        await runner.reconfigure(settings)

    def loop_lag(self) -> float:
        return self._service.loop_lag.last

    def restarts(self) -> int:
        return 0  # in-process: nothing restarts it; see haipvs.vrrp_process

    def views(self) -> tuple[InstanceView, ...]:
        if not self._service.running:
            return ()
        settings = {s.name: s for s in self._instances}
        views = []
        for status in self._service.status():
            configured = settings.get(status.name)
            priority = configured.priority if configured else status.effective_priority
            reasons = list(status.faults)
            if status.effective_priority != priority:
                reasons.append(f"tracking {status.effective_priority - priority:+d}")
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
