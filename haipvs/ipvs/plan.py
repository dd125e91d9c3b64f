"""The plan: the minimal, ordered list of ops that turns the actual table into the desired one.

Rule 1: the diff is computed as a value before anything is applied (improving on kube-proxy's
``syncEndpoint``, which interleaves diff and side effects). Rules kept:

* minimal: an equal row costs nothing, a changed real server is exactly one op (an update in
  place, never delete + add: that would cut its connections), a removed service is one
  DeleteService (the kernel deletes its dests with it);
* ordered: add services, add dests, update services, update dests, delete dests, delete
  services; adds come before deletes so a service never passes through "no real server";
  within a group, by service then dest (deterministic for tests and logs);
* ownership: services outside ``owned`` are never touched (another tool may share the table,
  k8s ``cleanLegacyService``); planning a desired service we do not own is our misuse.

Rule 2: pure. Each op carries a reason: drift (the kernel differs from ``expected``, the table
we left after our last sync), else the note ``build_desired`` / the programmer attached,
else the default for the op kind. ``apply_ops`` replays ops on a table value: the programmer
uses it to track ``expected``, the tests to check that a plan reaches the desired table.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from haipvs.ipvs.desired import Note, NoteKey
from haipvs.ipvs.model import (
    ActualTable,
    AddDest,
    AddService,
    DeleteDest,
    DeleteService,
    Dest,
    DestKey,
    IpvsTable,
    Op,
    OpReason,
    ServiceEntry,
    ServiceKey,
    UpdateDest,
    UpdateService,
    service_differences,
)

__all__ = ["apply_op", "apply_ops", "plan_changes"]

_NO_NOTES: Mapping[NoteKey, Note] = {}


def _detail(*parts: str) -> str:
    return "; ".join(part for part in parts if part)


class _Reasons:
    """Chooses each op's reason: drift first, then notes, then the op's default."""

    __slots__ = ("expected", "notes")

    def __init__(self, expected: IpvsTable | None, notes: Mapping[NoteKey, Note]) -> None:
        self.expected = expected
        self.notes = notes

    def note(self, service: ServiceKey, dest: DestKey | None) -> Note | None:
        return self.notes.get((service, dest))

    def expected_entry(self, service: ServiceKey) -> ServiceEntry | None:
        if self.expected is None:
            return None
        return self.expected.services.get(service)


def plan_changes(
    desired: IpvsTable,
    actual: IpvsTable | ActualTable,
    owned: Collection[ServiceKey],
    *,
    expected: IpvsTable | None = None,
    notes: Mapping[NoteKey, Note] | None = None,
    only: Collection[ServiceKey] | None = None,
) -> tuple[Op, ...]:
    """The ops that make ``actual`` (restricted to ``owned``) equal to ``desired``.

    ``expected``: the table as we left it after the previous sync (None on the first sync);
    where ``actual`` differs from it, someone else changed the kernel and the op's reason is
    drift_missing / drift_changed / drift_unexpected. ``notes``: why desired rows are what
    they are (health_down, drain_started, quorum_lost...), keyed (service, dest) or
    (service, None). ``only``: compare just these services (the programmer's fast path after
    a health change: the cost follows the change, not the table).
    """
    table = actual.table if isinstance(actual, ActualTable) else actual
    owned_set = owned if isinstance(owned, set | frozenset) else frozenset(owned)
    wanted = desired.services
    actual_services = table.services
    if only is None:
        keys: Iterable[ServiceKey] = itertools.chain(
            wanted, (key for key in actual_services if key in owned_set and key not in wanted)
        )
        strangers = [key for key in wanted if key not in owned_set]
    else:
        keys = [key for key in only if key in owned_set or key in wanted]
        strangers = [key for key in keys if key in wanted and key not in owned_set]
    if strangers:
        raise ValueError(f"desired services not owned: {', '.join(map(str, strangers[:5]))}")
    reasons = _Reasons(expected, notes if notes is not None else _NO_NOTES)

    add_services: list[Op] = []
    add_dests: list[Op] = []
    update_services: list[Op] = []
    update_dests: list[Op] = []
    delete_dests: list[Op] = []
    delete_services: list[Op] = []

    for key in keys:
        want = wanted.get(key)
        have = actual_services.get(key)
        if want is None:
            if have is not None:
                delete_services.append(_delete_service(key, reasons))
            continue
        if have is None:
            add_services.append(_add_service(want, reasons))
            drift = add_services[-1].reason is OpReason.DRIFT_MISSING
            for dest in want.dests.values():
                add_dests.append(_add_dest(key, dest, reasons, service_drift=drift))
            continue
        if have == want:
            continue
        if have.service != want.service:
            update_services.append(_update_service(want, have, reasons))
        if have.dests == want.dests:
            continue
        have_dests = have.dests
        for dest_key, dest in want.dests.items():
            current = have_dests.get(dest_key)
            if current is None:
                add_dests.append(_add_dest(key, dest, reasons, service_drift=False))
            elif current != dest:
                update_dests.append(_update_dest(key, dest, current, reasons))
        want_dests = want.dests
        for dest_key in have_dests:
            if dest_key not in want_dests:
                delete_dests.append(_delete_dest(key, dest_key, reasons))

    return (
        *_sorted(add_services),
        *_sorted(add_dests),
        *_sorted(update_services),
        *_sorted(update_dests),
        *_sorted(delete_dests),
        *_sorted(delete_services),
    )


def _sort_key(op: Op) -> tuple[Any, ...]:
    dest: DestKey | None
    if isinstance(op, AddDest | UpdateDest):
        dest = op.dest.key
    elif isinstance(op, DeleteDest):
        dest = op.dest_key
    else:
        dest = None
    return (op.service_key.sort_key(), () if dest is None else dest.sort_key())


def _sorted(ops: list[Op]) -> list[Op]:
    if len(ops) > 1:
        ops.sort(key=_sort_key)
    return ops


def _add_service(want: ServiceEntry, reasons: _Reasons) -> AddService:
    key = want.service.key
    if reasons.expected_entry(key) is not None:
        return AddService(want.service, OpReason.DRIFT_MISSING, "service missing from kernel")
    note = reasons.note(key, None)
    if note is not None:
        return AddService(want.service, note.reason, note.detail)
    return AddService(want.service)


def _add_dest(
    service: ServiceKey, dest: Dest, reasons: _Reasons, *, service_drift: bool
) -> AddDest:
    expected = reasons.expected_entry(service)
    if service_drift or (expected is not None and dest.key in expected.dests):
        return AddDest(service, dest, OpReason.DRIFT_MISSING, "real server missing from kernel")
    note = reasons.note(service, dest.key)
    if note is not None:
        return AddDest(service, dest, note.reason, _detail(note.detail, f"weight {dest.weight}"))
    return AddDest(service, dest, OpReason.CONFIG_ADDED, f"weight {dest.weight}")


def _update_service(want: ServiceEntry, have: ServiceEntry, reasons: _Reasons) -> UpdateService:
    key = want.service.key
    diffs = "; ".join(service_differences(want.service, have.service))
    expected = reasons.expected_entry(key)
    if expected is not None and expected.service != have.service:
        return UpdateService(want.service, OpReason.DRIFT_CHANGED, diffs)
    note = reasons.note(key, None)
    if note is not None:
        return UpdateService(want.service, note.reason, _detail(note.detail, diffs))
    return UpdateService(want.service, OpReason.CONFIG_CHANGED, diffs)


def _update_dest(service: ServiceKey, dest: Dest, current: Dest, reasons: _Reasons) -> UpdateDest:
    differences = dest.differences(current)
    diffs = "; ".join(differences)
    expected = reasons.expected_entry(service)
    if expected is not None:
        before = expected.dests.get(dest.key)
        if before is not None and before != current:
            return UpdateDest(service, dest, OpReason.DRIFT_CHANGED, diffs)
    note = reasons.note(service, dest.key)
    if note is not None:
        return UpdateDest(service, dest, note.reason, _detail(note.detail, diffs))
    if len(differences) == 1 and differences[0].startswith("weight "):
        return UpdateDest(service, dest, OpReason.WEIGHT_CHANGED, diffs)
    return UpdateDest(service, dest, OpReason.CONFIG_CHANGED, diffs)


def _delete_dest(service: ServiceKey, dest_key: DestKey, reasons: _Reasons) -> DeleteDest:
    expected = reasons.expected_entry(service)
    if expected is not None and dest_key not in expected.dests:
        return DeleteDest(service, dest_key, OpReason.DRIFT_UNEXPECTED, "real server not ours")
    note = reasons.note(service, dest_key)
    if note is not None:
        return DeleteDest(service, dest_key, note.reason, note.detail)
    return DeleteDest(service, dest_key)


def _delete_service(key: ServiceKey, reasons: _Reasons) -> DeleteService:
    if reasons.expected is not None and key not in reasons.expected.services:
        return DeleteService(key, OpReason.DRIFT_UNEXPECTED, "service not in our table")
    note = reasons.note(key, None)
    if note is not None:
        return DeleteService(key, note.reason, note.detail)
    return DeleteService(key)


def apply_op(table: IpvsTable, op: Op) -> IpvsTable:
    """``table`` after ``op``, with the kernel's rules (ValueError where it would refuse)."""
    return apply_ops(table, (op,))


def apply_ops(table: IpvsTable, ops: Iterable[Op]) -> IpvsTable:
    """``table`` after ``ops`` in order; copies only the rows the ops touch."""
    services: dict[ServiceKey, ServiceEntry] = dict(table.services)
    copied: set[ServiceKey] = set()

    def dests_of(key: ServiceKey, what: str) -> dict[DestKey, Dest]:
        entry = services.get(key)
        if entry is None:
            raise ValueError(f"{what}: no service {key}")
        if key not in copied:
            entry = ServiceEntry(entry.service, dict(entry.dests))
            services[key] = entry
            copied.add(key)
        dests = entry.dests
        assert isinstance(dests, dict)
        return dests

    for op in ops:
        if isinstance(op, AddService):
            if op.service.key in services:
                raise ValueError(f"add_service: {op.service.key} exists")
            services[op.service.key] = ServiceEntry(op.service, {})
            copied.add(op.service.key)
        elif isinstance(op, UpdateService):
            entry = services.get(op.service.key)
            if entry is None:
                raise ValueError(f"update_service: no service {op.service.key}")
            services[op.service.key] = ServiceEntry(op.service, entry.dests)
        elif isinstance(op, DeleteService):
            if op.key not in services:
                raise ValueError(f"delete_service: no service {op.key}")
            del services[op.key]
            copied.discard(op.key)
        elif isinstance(op, AddDest):
            dests = dests_of(op.service_key, "add_dest")
            if op.dest.key in dests:
                raise ValueError(f"add_dest: {op.dest.key} exists in {op.service_key}")
            dests[op.dest.key] = op.dest
        elif isinstance(op, UpdateDest):
            dests = dests_of(op.service_key, "update_dest")
            if op.dest.key not in dests:
                raise ValueError(f"update_dest: no {op.dest.key} in {op.service_key}")
            dests[op.dest.key] = op.dest
        else:
            dests = dests_of(op.service_key, "delete_dest")
            if op.dest_key not in dests:
                raise ValueError(f"delete_dest: no {op.dest_key} in {op.service_key}")
            del dests[op.dest_key]
    return IpvsTable(services)
