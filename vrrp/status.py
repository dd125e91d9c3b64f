"""What the VRRP runners and service report: fault sources, counters, status snapshots.

Plain values, shared by the instance adapter (``vrrp.runner``), the service
(``vrrp.service``) and their callers (status API, metrics).
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from vrrp.auth_hmac import AuthVerdict
from vrrp.errors import DropReason
from vrrp.machine import State, VrrpMachine
from vrrp.ports import IPAddress
from vrrp.settings import InstanceSettings

__all__ = ["FaultSource", "InstanceStatus", "LoopLag", "RunnerCounters", "StatusSource"]


class FaultSource(enum.Enum):
    """Who holds a fault on the instance; the machine sees only "any fault"."""

    track = "track"
    io = "io"
    sync_group = "sync_group"


@dataclass(slots=True)
class RunnerCounters:
    """Per-instance counters for metrics (monotonic, never reset)."""

    adverts_sent: int = 0
    adverts_received: int = 0
    send_errors: int = 0
    io_errors: int = 0
    announce_errors: int = 0
    #: virtual routes / rules that could not be installed or removed (vrrp.route.failed)
    route_errors: int = 0
    transitions: int = 0
    address_mismatches: int = 0
    dropped: Counter[DropReason] = field(default_factory=Counter)
    #: auth_hmac verdicts of accepted adverts (ok, unsigned); refusals are in ``dropped``.
    auth_accepted: Counter[AuthVerdict] = field(default_factory=Counter)

    @property
    def adverts_dropped(self) -> int:
        return sum(self.dropped.values())

    def auth_verdicts(self) -> dict[str, int]:
        """Every auth_hmac verdict seen, by name (keepalived's auth_ext_* statistics)."""
        verdicts = {verdict.value: n for verdict, n in self.auth_accepted.items()}
        for reason, n in self.dropped.items():
            if reason.value.startswith("auth_"):
                verdicts[reason.value.removeprefix("auth_")] = n
        return verdicts


class StatusSource(Protocol):
    """What a status snapshot reads: an instance runner (``vrrp.runner.InstanceRunner``)."""

    @property
    def name(self) -> str: ...
    @property
    def settings(self) -> InstanceSettings: ...
    @property
    def faults(self) -> Mapping[FaultSource, str]: ...
    @property
    def machine(self) -> VrrpMachine: ...
    @property
    def counters(self) -> RunnerCounters: ...



@dataclass(frozen=True, slots=True)
class InstanceStatus:
    """A thread-safe snapshot of one instance, for status, metrics and callbacks."""

    name: str
    vrid: int
    interface: str
    state: State
    effective_priority: int
    master_source: IPAddress | None
    master_priority: int | None
    faults: tuple[str, ...]
    adverts_sent: int
    adverts_received: int
    adverts_dropped: dict[str, int]
    io_errors: int
    transitions: int
    #: auth_hmac verdict counts (empty without auth_hmac): ok, unsigned, missing, ...
    auth_verdicts: dict[str, int] = field(default_factory=dict)
    #: what set ``effective_priority`` (VrrpMachine.priority_reason)
    priority_reason: str = ""
    #: virtual routes / rules the kernel refused (RunnerCounters.route_errors)
    route_errors: int = 0

    @classmethod
    def of(cls, runner: StatusSource) -> InstanceStatus:
        machine, counters = runner.machine, runner.counters
        return cls(
            name=runner.name,
            vrid=runner.settings.vrid,
            interface=runner.settings.interface,
            state=machine.state,
            effective_priority=machine.effective_priority,
            master_source=machine.master_source,
            master_priority=machine.master_priority,
            faults=tuple(f"{source.value}: {why}" for source, why in runner.faults.items()),
            adverts_sent=counters.adverts_sent,
            adverts_received=counters.adverts_received,
            adverts_dropped={reason.value: n for reason, n in counters.dropped.items()},
            io_errors=counters.io_errors,
            transitions=counters.transitions,
            auth_verdicts=counters.auth_verdicts(),
            priority_reason=machine.priority_reason,
            route_errors=counters.route_errors,
        )


@dataclass(frozen=True, slots=True)
class LoopLag:
    """How late the VRRP event loop ran a timer: the last and worst delay, in seconds."""

    last: float
    worst: float
    samples: int
