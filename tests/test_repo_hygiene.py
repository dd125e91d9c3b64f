"""The repository carries itself: no tracked file names a path outside it.

A test or doc that reads a directory of the machine it was written on, a home directory
or a sibling of the checkout works on one machine only, and a reference to a document
that is not in the repo is one no reader can follow. Data the tests need lives in
tests/data; the reasons live in docs/.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Built from pieces so that this file does not match itself.
FORBIDDEN = re.compile(
    "|".join(
        [
            r"(?<![\w.~-])/" + "work(?:/|\\b)",  # the machine the project was written on
            r"(?<![\w.~-])/" + "home/",  # someone's home directory
            r"\.\./" + "shared\\b",  # a sibling directory of the checkout
            "design" + r"\.md",  # the design notes, not shipped
            r"[\w-]+-" + r"notes\.md",  # measurement notes, not shipped
        ]
    )
)


def tracked_files() -> list[Path]:
    result = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False
    )
    if result.returncode != 0:  # not a git checkout (an unpacked source tree)
        return [
            path for path in ROOT.rglob("*")
            if path.is_file() and not {".git", ".venv", "dist"} & set(path.parts)
        ]
    return [ROOT / name for name in result.stdout.decode().split("\0") if name]


def offending_lines(text: str) -> list[tuple[int, str]]:
    return [
        (number, line.strip())
        for number, line in enumerate(text.splitlines(), 1)
        if FORBIDDEN.search(line)
    ]


def test_no_tracked_file_names_a_path_outside_the_repo() -> None:
    found = []
    for path in tracked_files():
        if path.suffix == ".pcap" or not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        found += [f"{path.relative_to(ROOT)}:{n}: {line}" for n, line in offending_lines(text)]
    assert found == []


@pytest.mark.parametrize(
    "line",
    [
        'CAPTURES = Path("/' + 'work/shared/captures")',
        "see ../" + "shared/notes",
        "cd /" + "home/someone/haipvs",
        "(design" + ".md §3.6)",
        "(pyroute2-ipvs-" + "notes.md §2)",
    ],
)
def test_the_check_finds_what_it_looks_for(line: str) -> None:
    assert offending_lines(line) == [(1, line)]


@pytest.mark.parametrize(
    "line",
    [
        "ProtectHome=yes",
        "tests/data/captures/vrrp-v2-adverts.pcap",
        "the network/work split",
        "root's 0700 home directory",
        "~/work/x is a user path",
    ],
)
def test_the_check_leaves_ordinary_text_alone(line: str) -> None:
    assert offending_lines(line) == []
