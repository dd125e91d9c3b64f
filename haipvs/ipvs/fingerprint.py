"""A service's table fingerprint: what decides which real server a flow hashes to, as one
short value that directors can compare (scale-out mode: every director must build the
same ``mh`` table, or a flow the routers move to another director lands on another real
server).

Rule 1: ``fingerprint`` covers the scheduler, its flags and every dest with its weight,
in the canonical order (sorted by address and port), so two directors that programmed the
same service from the same config and health agree whatever their history.
Rule 2: the kernel's list order is reported apart (``in_canonical_order``). ``mh``
(ip_vs_mh.c) builds its lookup table walking the service's dest list, and the kernel puts
each new dest at the **head** of that list (measured in the lab and kept by the contract
suite): haipvs adds a service's dests sorted in one sync, so a cold start leaves the list in
descending order, on every director alike. A dest added later (a real server added to the
config, or deleted on failure and added back on recovery) goes to the head instead: that
director's table then differs from a freshly started one's by the order alone (measured:
a fully reversed list moved 1 of 400 sampled flows; a delete and re-add of one dest 1 of
400). Nothing short of deleting dests with live connections restores the order, so it is
reported, not repaired. In scale-out mode every service runs as with
``inhibit_on_failure`` (``haipvs.config.compile``): a dest that is down, or not yet up at
start, stays in the list at weight 0, so the first sync adds every dest and health changes
never reorder the list; only config changes do.

Pure.
"""

from __future__ import annotations

import hashlib

from haipvs.ipvs.model import DestKey, ServiceEntry

__all__ = ["fingerprint", "fingerprint_number", "in_canonical_order"]

_DIGITS = 12  # 48 bits: exact as a float in the metrics, collisions out of reach here


def fingerprint(entry: ServiceEntry) -> str:
    """Hex digest of the scheduler, flags and dests with weights in canonical order."""
    service = entry.service
    flags = service.flags
    parts = [
        service.scheduler,
        f"flags={flags.to_bits()}",
        *(
            f"{key}@{entry.dests[key].weight}"
            for key in sorted(entry.dests, key=DestKey.sort_key)
        ),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:_DIGITS]


def fingerprint_number(text: str) -> int:
    """The fingerprint as the gauge value the metrics carry (Prometheus has no strings)."""
    return int(text, 16)


def in_canonical_order(entry: ServiceEntry) -> bool:
    """The dests, in the order a dump lists them (the kernel's list), are where a cold
    start puts them: added in ascending order, each at the head, so descending."""
    listed = list(entry.dests)
    return listed == sorted(listed, key=DestKey.sort_key, reverse=True)
