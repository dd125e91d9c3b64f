"""IpvsProgrammer.settled, the announce gate's "IPVS table equal to the desired one":
``in_sync`` says the last sync was clean, which stays true between a health change and the
sync that applies it; ``settled`` does not (a director announced with a real server missing
from its table before this existed)."""

from __future__ import annotations

from haipvs.ipvs.desired import HealthView, ServiceSpec
from haipvs.ipvs.errors import EBUSY
from haipvs.ipvs.fake import FakeIpvsKernel
from haipvs.ipvs.model import Dest, DestKey, Service, ServiceKey
from haipvs.ipvs.programmer import IpvsProgrammer

VS = ServiceKey.tcp("192.0.2.10", 80)
RS1 = DestKey("10.1.1.2", 80)
RS2 = DestKey("10.1.2.2", 80)


async def test_settled_only_after_a_clean_sync_that_covers_every_change() -> None:
    kernel = FakeIpvsKernel()
    programmer = IpvsProgrammer(kernel)
    assert not programmer.settled  # nothing synced yet
    programmer.set_specs([ServiceSpec(Service(VS, "mh"), (Dest(RS1), Dest(RS2)))])
    programmer.set_health({(VS, RS1): HealthView(up=True), (VS, RS2): HealthView(up=False)})
    await programmer.sync()
    assert programmer.status().in_sync and programmer.settled

    programmer.update_health(VS, RS2, HealthView(up=True))
    assert programmer.status().in_sync  # stale: the change is not in the kernel yet
    assert not programmer.settled
    await programmer.sync(full=False)
    assert programmer.settled

    kernel.fail_next(EBUSY)
    programmer.update_health(VS, RS2, HealthView(up=False))
    await programmer.sync(full=False)
    assert not programmer.settled  # the sync failed: still not equal
    await programmer.sync()
    assert programmer.settled
