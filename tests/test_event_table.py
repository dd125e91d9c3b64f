"""docs/operations.md's event table is the code's: every structlog event the daemon can
emit is in it, with the level (or levels) the code logs it at, and it lists no event the
code no longer emits.

The events are collected from the source with ``ast``: every ``log.<level>("name", ...)``
call in haipvs/, vrrp/ and checkers/ (the lab is development tooling, not the daemon).
A name passed through a variable is resolved from the string constants assigned to that
variable in the same function; the two call sites that log a name computed elsewhere
are resolved by the code that computes it (DYNAMIC below), and a new such call site
fails the test until it is added there.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OPERATIONS = ROOT / "docs" / "operations.md"
PACKAGES = ("haipvs", "vrrp", "checkers")
LEVELS = {
    "debug": "debug", "info": "info", "warning": "warning", "warn": "warning",
    "error": "error", "exception": "error", "critical": "critical",
}
# Logged by haipvs.logs for other libraries' records, at the library's own level.
NOT_A_CALL = {"library.log"}


def _constants_in(node: ast.AST) -> list[str]:
    return [
        sub.value for sub in ast.walk(node)
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str)
        and re.fullmatch(r"[a-z_]+(\.[a-z_]+)+", sub.value)
    ]


def _module(relative: str) -> ast.Module:
    return ast.parse((ROOT / relative).read_text())


def _programmer_events() -> list[str]:
    # event_name(op): the constants it returns and the values of _OP_EVENTS.
    tree = _module("haipvs/ipvs/programmer.py")
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "event_name":
            names += _constants_in(node)
        if isinstance(node, ast.AnnAssign) and ast.unparse(node.target) == "_OP_EVENTS":
            assert node.value is not None
            names += _constants_in(node.value)
    return names


def _operator_outcome_events() -> list[str]:
    # Outcome(overrides, EVENT, message, ...) in haipvs/daemon/overrides.py.
    tree = _module("haipvs/daemon/overrides.py")
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "Outcome":
            names += _constants_in(node.args[1]) if len(node.args) > 1 else []
        if isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == ["event"]:
            names += _constants_in(node.value)
    return [name for name in names if name.startswith("operator.")]


def _kernel_setting_events(suffix: str) -> Callable[[], list[str]]:
    # KernelSetting(path, event=PREFIX, ...) anywhere: it logs PREFIX.set / PREFIX.failed.
    def names() -> list[str]:
        found: list[str] = []
        for package in PACKAGES:
            for path in sorted((ROOT / package).rglob("*.py")):
                for node in ast.walk(ast.parse(path.read_text())):
                    if isinstance(node, ast.Call) and ast.unparse(node.func) == "KernelSetting":
                        found += [f"{value}.{suffix}" for keyword in node.keywords
                                  if keyword.arg == "event"
                                  for value in _constants_in(keyword.value)]
        return found
    return names


# (file, the expression passed as the event) -> the names it can take
DYNAMIC: dict[tuple[str, str], Callable[[], list[str]]] = {
    ("haipvs/ipvs/programmer.py", "event"): _programmer_events,
    ("haipvs/daemon/admin.py", "outcome.event"): _operator_outcome_events,
    ("haipvs/ipvs/sysctl.py", "f'{self.event}.set'"): _kernel_setting_events("set"),
    ("haipvs/ipvs/sysctl.py", "f'{self.event}.failed'"): _kernel_setting_events("failed"),
}


def _functions(tree: ast.AST) -> Iterator[ast.AST]:
    yield tree
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def emitted_events() -> dict[str, set[str]]:
    """event name -> the levels the code logs it at."""
    found: dict[str, set[str]] = defaultdict(set)
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = str(path.relative_to(ROOT))
            if relative.startswith("haipvs/lab/"):
                continue
            tree = ast.parse(path.read_text())
            for scope in _functions(tree):
                assigned: dict[str, list[str]] = defaultdict(list)
                for node in ast.walk(scope):
                    if isinstance(node, ast.Assign):
                        for target in node.targets:
                            if isinstance(target, ast.Name):
                                assigned[target.id] += _constants_in(node.value)
                for node in ast.walk(scope):
                    if not (
                        isinstance(node, ast.Call)
                        and isinstance(node.func, ast.Attribute)
                        and node.func.attr in LEVELS
                        and ast.unparse(node.func.value) in ("log", "self._log", "logger")
                        and node.args
                    ):
                        continue
                    level = LEVELS[node.func.attr]
                    first = node.args[0]
                    if isinstance(first, ast.Constant) and isinstance(first.value, str):
                        names = [first.value]
                    elif (relative, ast.unparse(first)) in DYNAMIC:
                        names = DYNAMIC[(relative, ast.unparse(first))]()
                    elif isinstance(first, ast.Name) and assigned.get(first.id):
                        names = assigned[first.id]
                    else:
                        raise AssertionError(
                            f"{relative}:{node.lineno}: the event {ast.unparse(first)} cannot "
                            "be resolved: log a constant, or add it to DYNAMIC"
                        )
                    for name in names:
                        found[name].add(level)
    return dict(found)


def documented_events() -> dict[str, set[str]]:
    """event name -> levels, from the tables of docs/operations.md.

    A row names one or more events (`a.b`, `c.d`; `ipvs.dest.added/updated/deleted` is
    three) and one level for all, or one level per event in the same order
    (`info / error`); a row with one event and several levels means it is logged at
    each of them.
    """
    documented: dict[str, set[str]] = {}
    in_event_table = False
    for line in OPERATIONS.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|"):
            in_event_table = False
            continue
        if cells[:2] == ["event", "level"]:
            in_event_table = True
            continue
        if not in_event_table or not cells[0].startswith("`"):
            continue
        names: list[str] = []
        for written in re.findall(r"`([^`]+)`", cells[0]):
            head, _, tail = written.partition("/")
            names.append(head)
            if tail:
                stem = head.rsplit(".", 1)[0]
                names += [f"{stem}.{leaf}" for leaf in tail.split("/")]
        levels = [level.strip() for level in cells[1].split("/")]
        if len(names) == 1:
            documented[names[0]] = set(levels)
        elif len(levels) == 1:
            documented.update({name: set(levels) for name in names})
        else:
            assert len(levels) == len(names), f"levels do not pair with events: {line}"
            documented.update({name: {level} for name, level in zip(names, levels, strict=True)})
    return documented


def test_every_emitted_event_is_documented_with_the_level_the_code_uses() -> None:
    emitted = emitted_events()
    documented = documented_events()
    missing = sorted(set(emitted) - set(documented))
    mismatched = {
        name: (sorted(levels), sorted(documented[name]))
        for name, levels in emitted.items()
        if name in documented and levels != documented[name]
    }
    assert (missing, mismatched) == ([], {}), (
        f"emitted but not in docs/operations.md: {missing}; "
        f"(code levels, documented levels): {mismatched}"
    )


def test_the_table_lists_no_event_the_code_does_not_emit() -> None:
    stale = sorted(set(documented_events()) - set(emitted_events()) - NOT_A_CALL)
    assert stale == []


def test_the_scanner_sees_the_events_it_must() -> None:
    # The scan itself: a constant, a name chosen in the function, a computed name.
    emitted = emitted_events()
    assert emitted["vrrp.transition"] == {"info"}
    assert {"check.up", "check.down"} <= set(emitted)
    assert {"ipvs.dest.added", "ipvs.drift.repaired"} <= set(emitted)
    assert "operator.drain" in emitted
