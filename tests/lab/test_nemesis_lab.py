"""The nemesis in CI size: one seed for three minutes with the full fault mix
(haipvs.lab.nemesis.schedule.ALL_KINDS; the shuffled bag makes this seed meet 14 of the
15 kinds) against a live pair, every invariant checked.

Runs bench/nemesis.py as the bench runs it (already in the lab, so it does not re-enter
it) and reads its VIOLATION and RESULT lines: a violation fails the test with the lines
that replay it (``python bench/nemesis.py --seed 4 --minutes 3 --mix full``).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from haipvs.lab.nemesis.schedule import ALL_KINDS, generate

pytestmark = [pytest.mark.lab, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SEED, MINUTES = 4, 3.0


def test_nemesis_ci_sized_run_keeps_every_invariant() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "nemesis.py"), "--seed", str(SEED),
         "--minutes", str(MINUTES), "--mix", "full"],
        capture_output=True, text=True, timeout=900, cwd=REPO, check=False)
    lines = result.stdout.splitlines()
    results = [line for line in lines if line.startswith("RESULT ")]
    assert results, result.stdout[-3000:] + result.stderr[-3000:]
    fields = dict(re.findall(r"(\w+)=(\S+)", results[-1]))
    # The faults injected are the schedule the seed draws, in order (replayable).
    injected = [line.split()[1:3] for line in lines if line.startswith("  t=")]
    planned = generate(SEED, MINUTES * 60, ALL_KINDS)
    assert [parts[0] for parts in injected] == [f.kind for f in planned]
    assert int(fields["faults"]) == len(planned) >= 12
    # the kinds CI used to leave out are in this run
    assert {"flood", "kill_child", "api_idle", "reload_bad_interface"} <= {
        f.kind for f in planned}
    violations = [line for line in lines if line.startswith("VIOLATION ")]
    assert int(fields["invariant_violations"]) == len(violations)
    # No allowance for a starved guest: a check whose deadline fired while the checker
    # was not running is inconclusive and re-run (checkers/inconclusive.py).
    assert not violations, "\n".join(violations)
