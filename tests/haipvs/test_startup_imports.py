"""What the daemon's path to BACKUP and to a hot IPVS table imports, in a fresh interpreter.

Every module loaded before the VRRP process is BACKUP and the table is adopted is start-up
time (bench/startup.py; in the lab guest a large library costs 0.2-0.3 s). These tests
hold the libraries that path does not need out of it: each runs the import (or the start
step) in a fresh interpreter and names the top-level packages that were loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys


def _loaded(code: str) -> set[str]:
    probe = (
        "import json, sys\n"
        f"{code}\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True, timeout=120)
    return set(json.loads(result.stdout.splitlines()[-1]))


def _packages(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def test_checker_pool_loads_no_dns_library() -> None:
    # dnspython is loaded by the first DNS check, not by the pool the daemon builds
    # before its first IPVS sync.
    loaded = _loaded("import checkers.pool")
    assert "checkers.pool" in loaded
    assert "dns" not in _packages(loaded)
    assert "checkers.dns" not in loaded
    # (the DNS probe itself still runs through run_probe: tests/checkers/test_dns.py)

