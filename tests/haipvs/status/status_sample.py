"""A small but complete status snapshot, shared by the status tests."""

from __future__ import annotations

import time

from haipvs.status.snapshot import (
    DrainView,
    InstanceView,
    ProgrammerView,
    RealServerView,
    ServiceView,
    Snapshot,
    TransitionView,
)


def sample_snapshot(*, down: bool = False) -> Snapshot:
    now = time.time()
    return Snapshot(
        director="lb-test",
        version="0.0.0",
        started_at=now - 60,
        config_file="/etc/haipvs/haipvs.yaml",
        instances=(
            InstanceView(
                name="VI_PUBLIC", interface="eth0", vrid=51, version=3, state="MASTER",
                priority=150, effective_priority=150, priority_reasons=(), master="10.0.0.2",
                vips=("198.51.100.10/24",),
                last_transition=TransitionView("BACKUP", "MASTER", "master_down_timer",
                                               "", now - 30),
                transitions=2, adverts_sent=30, adverts_received=1,
                adverts_dropped={"wrong_vrid": 2},
            ),
        ),
        services=(
            ServiceView(
                name="web", key="tcp/198.51.100.10:80", scheduler="wlc", in_kernel=True,
                real_servers=(
                    RealServerView("10.0.0.11", 80, 1, 1, "masq", "up", "connected", now - 50,
                                   1.5, active_conns=7, inactive_conns=3),
                    RealServerView("10.0.0.12", 80, 2, None if down else 2, "masq",
                                   "down" if down else "up",
                                   "connect refused" if down else "connected", now - 5,
                                   None if down else 2.0,
                                   drain=DrainView(now - 5, now + 25, "check down")
                                   if down else None),
                ),
                fingerprint="00c0ffee1234", dest_order_canonical=True,
            ),
        ),
        programmer=ProgrammerView(True, 3, now - 1, 0.001, None, None, {"add_dest": 2}, 0, 0),
        last_reload=None,
    )
