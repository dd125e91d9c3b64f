"""A graceful stop fits in the unit's TimeoutStopSec, or systemd SIGKILLs it midway
(the VIPs then stay up on this director until the peer's master-down timer)."""

from __future__ import annotations

import re
from pathlib import Path

from haipvs.daemon import vrrp_process
from haipvs.status import api

UNIT = Path(__file__).parents[3] / "packaging" / "haipvs.service"
#: The rest of a stop (kill and reap the VRRP process, checkers, IPVS removal) gets this.
REST = 5.0


def test_the_internal_stop_timeouts_fit_under_timeout_stop_sec() -> None:
    match = re.search(r"^TimeoutStopSec=(\d+)s$", UNIT.read_text(), re.MULTILINE)
    assert match is not None, f"{UNIT}: no TimeoutStopSec"
    budget = float(match.group(1))
    # The VRRP process's resignation (request and exit, one budget), then the API's
    # in-flight requests: one after the other in the supervisor's shutdown.
    assert budget >= vrrp_process.STOP_TIMEOUT + api.SHUTDOWN_TIMEOUT + REST
