"""The suite pins what it means to: an error table names the reason of each row, and the
code says which rule it keeps, not which ticket asked for it."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _tracked(*patterns: str) -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", *patterns], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return [ROOT / name for name in listed]


def _pins_its_reason(call: ast.Call, function: ast.AST) -> bool:
    if any(keyword.arg == "match" for keyword in call.keywords):
        return True
    # `with pytest.raises(E) as caught:` followed by an assertion on caught.value.
    for node in ast.walk(function):
        if isinstance(node, ast.withitem) and node.context_expr is call:
            name = node.optional_vars
            if isinstance(name, ast.Name):
                return any(
                    isinstance(use, ast.Attribute) and use.attr == "value"
                    and isinstance(use.value, ast.Name) and use.value.id == name.id
                    for use in ast.walk(function)
                )
    return False


def test_every_raises_in_a_parametrized_table_pins_its_reason() -> None:
    loose: list[str] = []
    for path in _tracked("tests/*.py", "tests/**/*.py"):
        tree = ast.parse(path.read_text())
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if not any(
                isinstance(d, ast.Call) and ast.unparse(d.func).endswith("parametrize")
                for d in function.decorator_list
            ):
                continue
            for call in ast.walk(function):
                if not (isinstance(call, ast.Call) and ast.unparse(call.func) == "pytest.raises"):
                    continue
                if call.args and ast.unparse(call.args[0]).endswith("CancelledError"):
                    continue  # stopping a task, not an error row
                if not _pins_its_reason(call, function):
                    loose.append(f"{path.relative_to(ROOT)}:{call.lineno} {function.name}")
    assert loose == [], "pytest.raises in a parametrized table without match= or a reason check"


def test_no_module_or_test_points_at_a_ticket() -> None:
    ticket = re.compile(r"\b[Ii]ssues? #?\d+\b")
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in _tracked("*.py", "*.pyi", "*.sh", "dev", ".ci/run")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        # An upstream reference (acassen/keepalived#2584) names its repository: fine.
        if ticket.search(line) and not re.search(r"[\w.-]+/[\w.-]+#\d+", line)
    ]
    assert found == []


def test_no_two_test_modules_share_a_basename() -> None:
    # The test folders are not packages (rootdir-based collection): two modules named
    # alike in two folders stop the whole run at collection, in CI only if both run.
    seen: dict[str, list[str]] = {}
    for path in _tracked("tests/**/test_*.py", "tests/test_*.py"):
        seen.setdefault(path.name, []).append(str(path.relative_to(ROOT)))
    assert {name: paths for name, paths in seen.items() if len(paths) > 1} == {}
