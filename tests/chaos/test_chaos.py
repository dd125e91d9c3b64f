"""The chaos scenarios in the lab: a real haipvs pair, real VRRP, real IPVS, a
client sending a request through the VIP every 20 ms the whole time.

Each test runs one scenario of haipvs/lab/chaos.py, which asserts what the client saw
(outage bounds) and what the directors logged (docs/operations.md event names).
They share one pair (module fixture); each scenario first restores the steady state.
"""

from __future__ import annotations

import pytest

from haipvs.lab.chaos import SCENARIOS, Scenario
from haipvs.lab.pair import DirectorPair

pytestmark = pytest.mark.lab


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario(pair: DirectorPair, scenario: Scenario) -> None:
    figures = scenario.run(pair)
    print(f"{scenario.name}: " + " ".join(f"{k}={v}" for k, v in figures.items()))
