"""Graceful drain of leaving real servers (k8s graceful_termination.go; keepalived has none).

Rule 1: every drain decision lives here. A real server that leaves the live desired table
(health down, removed from the config, quorum lost) while the kernel still has it with open
connections is kept at weight 0: the schedulers send it no new connections, established ones
continue. It is deleted when its active + inactive connections reach 0 or when its drain
deadline passes. A UDP service, a service with ``drain_timeout`` 0 and a dest with no
connections skip the drain and are deleted at once. A draining dest that comes back (it is in
the live table again) leaves the drain and is restored in place (an update, never a re-add).

Rule 2: pure. Time is the ``now`` argument (monotonic seconds); the tracker reports its next
deadline and never sleeps. Events are returned as values for the programmer to log.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from haipvs.ipvs.desired import HealthKey, Note, NoteKey
from haipvs.ipvs.model import ActualTable, Dest, DestKey, IpvsTable, OpReason, ServiceKey

__all__ = ["Drain", "DrainEvent", "DrainEventKind", "DrainTracker"]


@dataclass(frozen=True, slots=True)
class Drain:
    """One dest in drain: kept at weight 0 in ``service`` until ``deadline``."""

    service: ServiceKey
    dest: Dest
    started: float
    deadline: float
    cause: OpReason
    cause_detail: str = ""

    @property
    def key(self) -> HealthKey:
        return (self.service, self.dest.key)


class DrainEventKind(enum.Enum):
    STARTED = "started"
    FINISHED = "finished"  # connections reached 0 or deadline passed: delete it now
    CANCELLED = "cancelled"  # it came back: restore it in place
    ABANDONED = "abandoned"  # its service or the dest itself vanished meanwhile


@dataclass(frozen=True, slots=True)
class DrainEvent:
    kind: DrainEventKind
    drain: Drain
    detail: str = ""

    @property
    def note(self) -> Note:
        """The reason the ops this event causes carry."""
        if self.kind is DrainEventKind.STARTED:
            cause = self.drain.cause.value
            extra = f": {self.drain.cause_detail}" if self.drain.cause_detail else ""
            return Note(OpReason.DRAIN_STARTED, f"{cause}{extra}; {self.detail}")
        if self.kind is DrainEventKind.FINISHED:
            return Note(OpReason.DRAIN_FINISHED, self.detail)
        return Note(OpReason.DRAIN_CANCELLED, self.detail)


class DrainTracker:
    """The set of dests in drain; see the module docstring."""

    def __init__(self) -> None:
        self._drains: dict[HealthKey, Drain] = {}

    @property
    def drains(self) -> Mapping[HealthKey, Drain]:
        return self._drains

    def is_draining(self, service: ServiceKey, dest: DestKey) -> bool:
        return (service, dest) in self._drains

    def draining_dests(self) -> dict[HealthKey, Dest]:
        """What ``desired.with_drains`` overlays on the live table."""
        return {key: drain.dest for key, drain in self._drains.items()}

    def next_deadline(self) -> float | None:
        if not self._drains:
            return None
        return min(drain.deadline for drain in self._drains.values())

    def forget(self, keys: Iterable[HealthKey]) -> None:
        for key in keys:
            self._drains.pop(key, None)

    def update(
        self,
        live: IpvsTable,
        actual: ActualTable,
        drain_timeouts: Mapping[ServiceKey, float],
        now: float,
        notes: Mapping[NoteKey, Note] | None = None,
        *,
        stats_known: bool = True,
        services: Collection[ServiceKey] | None = None,
    ) -> tuple[DrainEvent, ...]:
        """Advance the drains to ``now`` given the live desired table and the kernel's state.

        ``drain_timeouts`` is per service (ServiceSpec.drain_timeout); ``notes`` (from
        ``build_desired``) say why a dest left, for the drain's cause.

        ``stats_known=False`` when ``actual`` is our own record of the table rather than a
        fresh dump (the programmer's fast path): connection counts are then unknown, so a
        leaving dest always starts a drain (never deleted on a guess of zero connections) and
        drains end only at their deadline, until a dump brings real counts. ``services``
        limits the search for newly leaving dests to these services (those that changed).
        """
        events: list[DrainEvent] = []
        ended: set[HealthKey] = set()  # finished now: deleted by this plan, not drained again
        current = actual.table.services
        for key, drain in list(self._drains.items()):
            service, dest_key = key
            live_entry = live.services.get(service)
            actual_entry = current.get(service)
            if live_entry is not None and dest_key in live_entry.dests:
                del self._drains[key]
                events.append(DrainEvent(DrainEventKind.CANCELLED, drain, "back in service"))
                continue
            if (
                live_entry is None
                or actual_entry is None
                or dest_key not in actual_entry.dests
            ):
                del self._drains[key]
                events.append(DrainEvent(DrainEventKind.ABANDONED, drain, "gone from table"))
                continue
            connections = actual.stats_of(service, dest_key).connections if stats_known else -1
            if connections == 0 or now >= drain.deadline:
                ended.add(key)
            if connections == 0:
                del self._drains[key]
                events.append(DrainEvent(DrainEventKind.FINISHED, drain, "connections 0"))
            elif now >= drain.deadline:
                del self._drains[key]
                waited = drain.deadline - drain.started
                counted = f"connections {connections}" if stats_known else "connections unknown"
                events.append(
                    DrainEvent(
                        DrainEventKind.FINISHED, drain, f"drain timeout {waited:g}s, {counted}"
                    )
                )
        scan = live.services if services is None else services
        for service in scan:
            live_entry = live.services.get(service)
            if live_entry is None:
                continue
            actual_entry = current.get(service)
            if actual_entry is None or actual_entry.dests.keys() <= live_entry.dests.keys():
                continue
            timeout = drain_timeouts.get(service, 0.0)
            if timeout <= 0 or service.is_udp:
                # UDP has no connection end to wait for (k8s deletes UDP at once); a zero
                # timeout is keepalived's immediate removal.
                continue
            for dest_key, dest in actual_entry.dests.items():
                key = (service, dest_key)
                if dest_key in live_entry.dests or key in self._drains or key in ended:
                    continue
                if stats_known:
                    connections = actual.stats_of(service, dest_key).connections
                    if connections == 0:
                        continue  # nothing to wait for: the planner deletes it now
                    counted = f"connections {connections}"
                else:
                    counted = "connections not yet counted"
                note = (notes or {}).get((service, dest_key))
                drain = Drain(
                    service=service,
                    dest=dest if dest.weight == 0 else dataclasses.replace(dest, weight=0),
                    started=now,
                    deadline=now + timeout,
                    cause=note.reason if note is not None else OpReason.CONFIG_REMOVED,
                    cause_detail=note.detail if note is not None else "",
                )
                self._drains[drain.key] = drain
                events.append(DrainEvent(DrainEventKind.STARTED, drain, counted))
        return tuple(events)
