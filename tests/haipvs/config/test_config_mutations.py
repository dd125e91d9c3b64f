"""The gate and the reload planner on files nobody wrote on purpose: every shipped example,
mutated the way hand edits go wrong (a line lost, doubled or swapped, a value replaced by
another word, an indent off). Whatever comes in, the gate answers with the file accepted or
with located errors, never another exception; and every file it accepts can be planned as a
reload from the example (what `haipvs plan` and a reload do), without an exception either."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from haipvs.config import ConfigInvalid
from haipvs.daemon.accept import Accepted, accept_config
from haipvs.daemon.reload import plan_reload

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted([ROOT / "etc" / "haipvs.yaml", *(ROOT / "etc" / "examples").glob("*.yaml")])
TEXTS = {path.name: path.read_text() for path in EXAMPLES}

# Values an edit leaves behind: out of every range, of the wrong kind, YAML's own tricks.
WORDS = ("0", "-1", "256", "65536", "4294967296", "1e999", ".nan", ".inf", "1.5", "true",
         "null", "~", "''", '""', "[]", "{}", "[1, 2]", "{a: 1}", "abc", "&a x", "*a",
         "!!binary AA==",
         "::1", "fe80::1/64", "10.0.0.1/33", "10.0.0.256", "0.0.0.0/0", "198.51.100.10:80",
         "eth0", "mh", "dr", "nat", "tun", "udp", "2001:db8::1", "'1s'", "10ms", "-", ":")

_SCALAR = re.compile(r"^(\s*(?:- )?[A-Za-z_]+:\s)(.+)$")


@st.composite
def mutated(draw: st.DrawFn) -> str:
    lines = TEXTS[draw(st.sampled_from(sorted(TEXTS)))].splitlines()
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(("drop", "double", "swap", "value", "indent")))
        if kind == "drop":
            del lines[at]
        elif kind == "double":
            lines.insert(at, lines[at])
        elif kind == "swap":
            other = draw(st.integers(0, len(lines) - 1))
            lines[at], lines[other] = lines[other], lines[at]
        elif kind == "indent":
            lines[at] = draw(st.sampled_from(("", "  ", "    "))) + lines[at].lstrip()
        else:
            match = _SCALAR.match(lines[at])
            if match:
                lines[at] = match.group(1) + draw(st.sampled_from(WORDS))
        if not lines:
            lines = [""]
    return "\n".join(lines) + "\n"


def _accepted(path: Path) -> Accepted | None:
    try:
        return accept_config(str(path), offline=True)
    except ConfigInvalid as refused:
        assert refused.errors, "a refusal says why"
        for error in refused.errors:
            assert error.file == str(path) and error.line >= 1, error
            assert str(error).startswith(f"{path}:{error.line}: "), error
        return None


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=mutated())
def test_a_mutated_example_is_accepted_or_refused_at_its_lines(tmp_path: Path, text: str) -> None:
    path = tmp_path / "haipvs.yaml"
    path.write_text(text)
    path.chmod(0o644)
    new = _accepted(path)
    event("refused" if new is None else "accepted")
    if new is None:
        return
    for example in EXAMPLES:
        running = accept_config(str(example), offline=True)
        plan = plan_reload((running.config, running.compiled), (new.config, new.compiled))
        assert plan.summary
