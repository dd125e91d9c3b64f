"""The pure cores really are pure: importing one in a fresh interpreter loads no IO module.

import-linter's "pure cores do no IO" contract sees only each module's own imports; a
package ``__init__`` that re-exported the IO parts used to load asyncio, socket and
pyroute2 behind ``import vrrp.machine`` without the contract noticing. The package
``__init__`` files now export lazily (``__init__.pyi``), and this test runs each module
named by that contract in a fresh interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IO_MODULES = frozenset({"asyncio", "socket", "pyroute2", "aiohttp", "structlog", "subprocess"})
# pydantic imports importlib.metadata, which loads email.utils and with it `socket`
# (name resolution helpers, never called): that import is pydantic's, not ours.
PYDANTIC_BROUGHT = frozenset({"socket"})


def _pure_modules() -> list[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for contract in pyproject["tool"]["importlinter"]["contracts"]:
        if contract["name"].startswith("pure cores do no IO"):
            return list(contract["source_modules"])
    raise AssertionError("pyproject.toml has no 'pure cores do no IO' contract")


def _loaded_after_import(module: str) -> set[str]:
    probe = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        "print(json.dumps(sorted(name.split('.')[0] for name in sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return set(json.loads(result.stdout))


@pytest.mark.parametrize("module", _pure_modules())
def test_pure_module_loads_no_io(module: str) -> None:
    loaded = _loaded_after_import(module)
    allowed = PYDANTIC_BROUGHT if "pydantic" in loaded else frozenset()
    assert sorted((loaded & IO_MODULES) - allowed) == [], f"{module} loads IO modules"


def test_lazy_package_still_exports_its_names() -> None:
    loaded = _loaded_after_import("vrrp")
    assert "asyncio" not in loaded
    import vrrp

    assert vrrp.VrrpService.__module__ == "vrrp.service"
    assert "VrrpMachine" in dir(vrrp)
