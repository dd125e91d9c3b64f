"""The importer on configurations nobody wrote on purpose: every Debian sample, mutated
the way hand-edited files go wrong (a line lost or doubled, a value replaced by another
word, a brace missing). Whatever comes in, `haipvs import-keepalived` answers with an
exit status and located lines, never a traceback; and when it says 0, what it printed
is a config haipvs reads."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from haipvs.config import ConfigInvalid, load_config_text
from haipvs.importer.command import run_import

SAMPLES = Path("/usr/share/doc/keepalived/samples")

# Words an edit leaves where a value was: numbers out of every range, other keywords,
# addresses of the wrong family, masks, quotes and braces, nothing.
WORDS = ("0", "-1", "256", "65536", "4294967296", "99999999999999999999", "1.5", "nan",
         "abc", "", "{", "}", '"', "!", "#", "@", "$X", "~SEQ(1,2,3)", "::1", "fe80::1/64",
         "10.0.0.1/33", "10.0.0.256", "255.255.255.255", "0.0.0.0/0", "eth0", "MASTER",
         "on", "NAT", "DR", "TUN", "rr", "mh", "wlc", "TCP", "UDP", "SCTP", "inhibit_on_failure",
         "virtual_server", "real_server", "vrrp_instance", "include", "/nonexistent")


def _sample_texts() -> dict[str, str]:
    texts = {}
    for path in sorted(SAMPLES.glob("keepalived.conf*")):
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        texts[path.name.removesuffix(".gz")] = raw.decode("latin-1")
    return texts


TEXTS = _sample_texts() if SAMPLES.is_dir() else {}


@st.composite
def mutated(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(sorted(TEXTS)))
    lines = TEXTS[name].splitlines()
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            break
        at = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(("drop", "double", "swap", "line", "word", "words")))
        if kind == "drop":
            del lines[at]
        elif kind == "double":
            lines.insert(at, lines[at])
        elif kind == "swap":
            other = draw(st.integers(0, len(lines) - 1))
            lines[at], lines[other] = lines[other], lines[at]
        elif kind == "line":
            lines.insert(at, " ".join(draw(st.lists(st.sampled_from(WORDS), max_size=4))))
        else:
            words = lines[at].split()
            if not words:
                continue
            index = draw(st.integers(0, len(words) - 1))
            words[index] = draw(st.sampled_from(WORDS))
            if kind == "words":
                words.insert(index, draw(st.sampled_from(WORDS)))
            lines[at] = " ".join(words)
    return "\n".join(lines) + "\n"


@pytest.mark.skipif(not TEXTS, reason=f"{SAMPLES} is missing (apt-get install keepalived)")
@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=mutated())
def test_a_mutated_sample_gets_an_answer_never_a_traceback(
        tmp_path: Path, text: str) -> None:
    path = tmp_path / "keepalived.conf"
    path.write_text(text, encoding="latin-1")
    out, err = io.StringIO(), io.StringIO()
    status = run_import(str(path), out, err)
    assert status in (0, 1), err.getvalue()
    if status == 0:
        # What the importer calls a complete import is a file haipvs reads.
        try:
            load_config_text(out.getvalue(), "<import>")
        except ConfigInvalid as exc:  # pragma: no cover - the failure's message
            pytest.fail(f"exit 0, but the output does not validate: {exc.errors}")
    else:
        lines = [line for line in err.getvalue().splitlines() if line]
        assert lines, "a refusal says why"


@pytest.mark.parametrize("word", ["nan", "inf", "-inf", "1e999", "1_0"])
def test_a_number_that_is_not_finite_is_refused_at_its_line(tmp_path: Path, word: str) -> None:
    # Found by the mutations above: `persistence_timeout nan` raised a ValueError out of
    # the importer. keepalived's strtod reads none of these as a delay or a timeout.
    path = tmp_path / "keepalived.conf"
    path.write_text("virtual_server 10.10.10.2 1358 {\n"
                    "    lb_kind NAT\n"
                    f"    persistence_timeout {word}\n"
                    f"    delay_loop {word}\n"
                    "    protocol TCP\n"
                    "}\n")
    out, err = io.StringIO(), io.StringIO()
    assert run_import(str(path), out, err) == 1
    assert f"{path}:3: " in err.getvalue() and f"{word!r} is not a number" in err.getvalue()
    assert f"{path}:4: " in err.getvalue()
