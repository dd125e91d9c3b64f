"""Shell completion generated from the parser: bash completes for real, zsh parses."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from haipvs.cli import build_parser
from haipvs.completion import command_tree, render_bash, render_zsh


@pytest.fixture(scope="module")
def bash_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("completion") / "haipvs.bash"
    printed = subprocess.run([sys.executable, "-m", "haipvs", "completion", "bash"],
                             capture_output=True, text=True, check=True, timeout=60).stdout
    assert printed == render_bash(command_tree(build_parser()))
    path.write_text(printed)
    return path


def complete(script: Path, line: str, cwd: Path | None = None) -> list[str]:
    """What bash offers for `line` (the cursor at its end), as the shell would ask."""
    program = f"""
source {script}
COMP_LINE={line!r}
read -r -a COMP_WORDS <<< "$COMP_LINE"
[[ $COMP_LINE == *' ' ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
_haipvs
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    result = subprocess.run(["bash", "-c", program], capture_output=True, text=True,
                            check=True, timeout=30, cwd=cwd)
    return sorted(filter(None, result.stdout.splitlines()))


def test_bash_completes_subcommands_options_choices_and_files(
    bash_script: Path, tmp_path: Path
) -> None:
    assert {"run", "check-config", "status", "lab", "schema", "completion"} <= set(
        complete(bash_script, "haipvs "))
    assert complete(bash_script, "haipvs check-") == ["check-config"]
    assert complete(bash_script, "haipvs status --") == ["--api", "--config", "--help",
                                                          "--json", "--token"]
    assert complete(bash_script, "haipvs lab ") == ["demo", "run", "setup"]
    assert complete(bash_script, "haipvs lab run --backend ") == ["auto", "native", "qemu"]
    assert complete(bash_script, "haipvs completion ") == ["bash", "zsh"]
    (tmp_path / "lb1.yaml").write_text("")
    assert complete(bash_script, "haipvs check-config lb", cwd=tmp_path) == ["lb1.yaml"]
    assert complete(bash_script, "haipvs run --config lb", cwd=tmp_path) == ["lb1.yaml"]
    assert complete(bash_script, "haipvs status --api ") == []


@pytest.mark.skipif(shutil.which("zsh") is None,
                    reason="zsh is not installed (apt-get install zsh; ./dev does)")
def test_zsh_script_parses_and_defines_a_function_per_command(tmp_path: Path) -> None:
    script = tmp_path / "_haipvs"
    script.write_text(render_zsh(command_tree(build_parser())))
    subprocess.run(["zsh", "-n", str(script)], check=True, timeout=30)
    # Load it as compinit would (autoload from fpath) and list what it defines.
    program = (f"fpath=({tmp_path} $fpath); autoload -Uz compinit; compinit -u -d "
               f"{tmp_path}/zcompdump; autoload -Uz _haipvs; "
               "functions _haipvs >/dev/null && print ok")
    result = subprocess.run(["zsh", "-f", "-c", program], capture_output=True, text=True,
                            check=False, timeout=30)
    assert result.stdout.strip() == "ok", result.stderr
    text = script.read_text()
    for name in ("_haipvs_status", "_haipvs_lab_run", "_haipvs_check_config"):
        assert f"{name}() {{" in text
    assert text.startswith("#compdef haipvs\n")
