"""What the README, the man page and packaging/README.md say is what the code does.

Each test reads a claim out of the document and checks it against the code (or the
tool that measures it), so a change to either side that breaks the claim fails here.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAN = ROOT / "packaging" / "haipvs.1"
README = ROOT / "README.md"
PACKAGING_README = ROOT / "packaging" / "README.md"
UNIT = ROOT / "packaging" / "haipvs.service"

# The man page's example of a check-config error, and the file that produces it.
BAD_PORT_YAML = """\
director:
  name: d
virtual_servers:
  - name: web
    vip: 198.51.100.10
    port: 80
    real_servers:
      - {address: 10.0.0.11, port: 80}
      - {address: 10.0.0.12, port: 70000}
"""


def test_the_man_pages_check_config_example_is_what_check_config_prints(
    tmp_path: Path,
) -> None:
    match = re.search(r'for example\n\.BR "(haipvs\.yaml:[^"]+)"', MAN.read_text())
    assert match is not None, "the man page lost its check-config example"
    example = match.group(1).replace("\\-", "-")
    (tmp_path / "haipvs.yaml").write_text(BAD_PORT_YAML)
    result = subprocess.run(
        [sys.executable, "-m", "haipvs", "check-config", "haipvs.yaml"],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=60,
    )
    assert result.returncode == 1
    assert example in (result.stdout + result.stderr).splitlines()


def _lab_run_choices() -> list[str]:
    result = subprocess.run(
        [sys.executable, "-m", "haipvs", "lab", "run", "--help"],
        capture_output=True, text=True, check=True, timeout=60,
    )
    match = re.search(r"--backend \{([^}]+)\}", result.stdout)
    assert match is not None, result.stdout
    return match.group(1).split(",")


def test_the_man_page_lists_the_lab_backends_the_cli_accepts() -> None:
    match = re.search(r"\\-\\-backend\n\.RB \{ ([^}]+) \}", MAN.read_text())
    assert match is not None
    assert match.group(1).split(" | ") == _lab_run_choices()
    assert "uml" in _lab_run_choices()  # the guest the docs describe as the default


def test_the_man_page_documents_every_import_keepalived_option() -> None:
    text = MAN.read_text()
    assert "\\-\\-config\\-id" in text
    assert "VRRP authentication)" not in text  # PASS is translated, AH is what is refused


def _unit_capabilities() -> list[str]:
    for line in UNIT.read_text().splitlines():
        if line.startswith("AmbientCapabilities="):
            return line.partition("=")[2].split()
    raise AssertionError("the unit sets no AmbientCapabilities=")


def test_the_readme_names_exactly_the_units_capabilities() -> None:
    match = re.search(r"own user with only ((?:CAP_\w+(?:, | and )?)+)", README.read_text())
    assert match is not None
    named = re.findall(r"CAP_\w+", match.group(1))
    assert sorted(named) == sorted(_unit_capabilities())


def _documented_exposures() -> set[str]:
    readme = re.findall(r"exposure \*\*([0-9.]+) ", README.read_text())
    packaging = re.findall(r"Overall exposure level for haipvs.service: ([0-9.]+) ",
                           PACKAGING_README.read_text())
    return set(readme) | set(packaging)


def test_the_readme_and_packaging_readme_give_the_same_exposure() -> None:
    assert len(_documented_exposures()) == 1


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze")
def test_the_documented_exposure_is_what_systemd_analyze_measures(tmp_path: Path) -> None:
    unit = tmp_path / "haipvs.service"  # the name systemd-analyze reports
    unit.write_text(UNIT.read_text())
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(unit)],
        capture_output=True, text=True, check=False, timeout=120,
    )
    match = re.search(r"Overall exposure level for haipvs.service: ([0-9.]+) ", result.stdout)
    assert match is not None, result.stdout + result.stderr
    assert _documented_exposures() == {match.group(1)}


def test_the_readmes_links_lead_to_files_of_the_repo() -> None:
    links = re.findall(r"\]\(([^)#:]+)\)", README.read_text())
    assert "docs/architecture.md" in links and "docs/benchmarks.md" in links
    assert [link for link in links if not (ROOT / link).exists()] == []


def test_docs_benchmarks_describes_every_bench() -> None:
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    benches = sorted(path.name for path in (ROOT / "bench").glob("*.py"))
    assert [name for name in benches if f"`bench/{name}`" not in text] == []
