"""The nemesis in CI size: one seed for two minutes with the CI fault mix
(haipvs.lab.nemesis.schedule.CI_KINDS) against a live pair, every invariant checked.

Runs bench/nemesis.py as the bench runs it (already in the lab, so it does not re-enter
it) and reads its VIOLATION and RESULT lines: a violation fails the test with the lines
that replay it (``python bench/nemesis.py --seed N --minutes 2 --mix ci``).
"""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from haipvs.lab.nemesis.schedule import CI_KINDS, generate

pytestmark = [pytest.mark.lab, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SEED, MINUTES = 1, 2.0


def test_nemesis_ci_sized_run_keeps_every_invariant() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "nemesis.py"), "--seed", str(SEED),
         "--minutes", str(MINUTES), "--mix", "ci"],
        capture_output=True, text=True, timeout=900, cwd=REPO, check=False)
    lines = result.stdout.splitlines()
    results = [line for line in lines if line.startswith("RESULT ")]
    assert results, result.stdout[-3000:] + result.stderr[-3000:]
    fields = dict(re.findall(r"(\w+)=(\S+)", results[-1]))
    # The faults injected are the schedule the seed draws, in order (replayable).
    injected = [line.split()[1:3] for line in lines if line.startswith("  t=")]
    planned = generate(SEED, MINUTES * 60, CI_KINDS)
    assert [parts[0] for parts in injected] == [f.kind for f in planned]
    assert int(fields["faults"]) == len(planned) >= 4
    violations = [line for line in lines if line.startswith("VIOLATION ")]
    assert int(fields["invariant_violations"]) == len(violations)
    # A check that times out on one director only is the loaded one-CPU guest more often
    # than the daemon (0.4 s check timeout, six guests on two host cores): reported as a
    # warning here, counted by the bench, never hidden there.
    noise = [line for line in violations
             if " no_op_without_change: " in line and "response timeout" in line]
    for line in noise:
        warnings.warn(line, stacklevel=1)
    real = [line for line in violations if line not in noise]
    assert not real, "\n".join(real)
