"""Suite-wide rules: tests marked `lab` run only where the kernel has IPVS.

The lab runner (`haipvs lab run`) sets HAIPVS_IN_LAB=1 inside the guest; on a host
whose own kernel has IPVS, HAIPVS_LAB_NATIVE=1 says the same. Everywhere else a lab
test is skipped with the command that runs it, never silently passed.
"""

from __future__ import annotations

import os

import pytest


def _in_lab() -> bool:
    return os.environ.get("HAIPVS_IN_LAB") == "1" or os.environ.get("HAIPVS_LAB_NATIVE") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _in_lab():
        return
    skip = pytest.mark.skip(
        reason="needs a kernel with IPVS: run with `haipvs lab run -- pytest -m lab`"
    )
    for item in items:
        if item.get_closest_marker("lab") is not None:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _daemon_directories(tmp_path_factory: pytest.TempPathFactory,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A daemon started by a test keeps its overrides and admin socket in a directory of its
    own (systemd's StateDirectory= / RuntimeDirectory= variables), never /var/lib or /run."""
    base = tmp_path_factory.mktemp("daemon")
    monkeypatch.setenv("STATE_DIRECTORY", str(base / "state"))
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(base / "run"))
