"""haipvs.ipvs.fingerprint: one value per service that directors compare, and whether the
kernel's dest list is in the order a cold start builds (mh hashes in list order)."""

from __future__ import annotations

from haipvs.ipvs.desired import ServiceSpec
from haipvs.ipvs.fake import FakeIpvsKernel
from haipvs.ipvs.fingerprint import fingerprint, fingerprint_number, in_canonical_order
from haipvs.ipvs.model import (
    AddDest,
    DeleteDest,
    Dest,
    DestKey,
    SchedFlags,
    Service,
    ServiceEntry,
    ServiceKey,
)
from haipvs.ipvs.programmer import IpvsProgrammer

VS = ServiceKey.tcp("192.0.2.10", 80)
MH = Service(VS, "mh", flags=SchedFlags(mh_port=True, mh_fallback=True))
# Numeric order, not text order: 10.1.2.2 < 10.1.10.2.
KEYS = [DestKey("10.1.10.2", 80), DestKey("10.1.2.2", 80), DestKey("10.1.2.2", 8080),
        DestKey("10.1.1.2", 80)]
SORTED = sorted(KEYS, key=DestKey.sort_key)


def entry(keys: list[DestKey], service: Service = MH, weights: dict[DestKey, int] | None = None,
          ) -> ServiceEntry:
    return ServiceEntry(service, {key: Dest(key, weight=(weights or {}).get(key, 1))
                                  for key in keys})


def test_the_fingerprint_ignores_order_and_sees_everything_that_moves_a_hash() -> None:
    base = fingerprint(entry(KEYS))
    assert len(base) == 12 and fingerprint_number(base) < 2**48
    assert fingerprint(entry(list(reversed(KEYS)))) == base
    assert fingerprint(entry(KEYS, weights={KEYS[0]: 2})) != base
    assert fingerprint(entry(KEYS, weights={KEYS[0]: 0})) != base
    assert fingerprint(entry(KEYS[1:])) != base
    assert fingerprint(entry(KEYS, service=Service(VS, "mh",
                                                   flags=SchedFlags(mh_port=True)))) != base
    assert fingerprint(entry(KEYS, service=Service(VS, "rr"))) != base


def test_canonical_order_is_descending_the_kernels_list_after_a_sorted_cold_start() -> None:
    assert in_canonical_order(entry(list(reversed(SORTED))))
    assert not in_canonical_order(entry(SORTED))
    assert not in_canonical_order(entry(KEYS))
    assert in_canonical_order(entry([]))


async def test_a_cold_start_adds_in_canonical_order_and_a_later_add_is_reported() -> None:
    # The config lists the real servers in any order; the first sync adds them sorted, so
    # two directors with the same config build the same list (and mh table).
    kernel = FakeIpvsKernel()
    programmer = IpvsProgrammer(kernel)
    programmer.set_specs([ServiceSpec(MH, tuple(Dest(key) for key in KEYS))])
    await programmer.sync()
    cold = kernel.table[VS]
    assert list(cold.dests) == list(reversed(SORTED))
    assert in_canonical_order(cold)
    other = FakeIpvsKernel()
    peer = IpvsProgrammer(other)
    peer.set_specs([ServiceSpec(MH, tuple(Dest(key) for key in reversed(KEYS)))])
    await peer.sync()
    assert list(other.table[VS].dests) == list(cold.dests)
    assert fingerprint(other.table[VS]) == fingerprint(cold)

    # A real server deleted and added back lands at the head: same set and weights (the
    # fingerprints agree), but this list is no longer the one a cold start builds.
    kernel.tamper(DeleteDest(VS, SORTED[0]))
    kernel.tamper(AddDest(VS, Dest(SORTED[0])))
    later = kernel.table[VS]
    assert fingerprint(later) == fingerprint(cold)
    assert not in_canonical_order(later)
    assert next(iter(later.dests)) == SORTED[0]
