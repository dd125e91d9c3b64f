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
    assert complete(bash_script, "haipvs lab run --backend ") == ["auto", "native", "qemu", "uml"]
    assert complete(bash_script, "haipvs completion ") == ["bash", "zsh"]
    (tmp_path / "lb1.yaml").write_text("")
    assert complete(bash_script, "haipvs check-config lb", cwd=tmp_path) == ["lb1.yaml"]
    assert complete(bash_script, "haipvs run --config lb", cwd=tmp_path) == ["lb1.yaml"]
    assert complete(bash_script, "haipvs status --api ") == []


# Drives an interactive zsh in a pseudo-terminal (zsh/zpty): types LINE, runs completion
# with a widget, and prints each candidate zsh's compadd was given.
ZSH_CAPTURE = r"""
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "PROMPT=''; fpath=($DIR \$fpath); autoload -Uz compinit; compinit -u -d $DIR/dump"
zpty -w z 'compadd () { local -a hits; builtin compadd -O hits "$@"; local h
  for h in $hits; do print -r -- "HIT$((1))<$h>"; done; builtin compadd "$@" }'
zpty -w z 'capture-complete() { zle complete-word; print -r -- "DONE$((1+1))" }'
zpty -w z 'zle -N capture-complete; bindkey "^T" capture-complete'
zpty -w -n z "$LINE"$'\x14'
integer idle=0
while zpty -r -t z line || (( idle++ < 1000 )); do
  [[ $line == *HIT1\<* ]] && print -r -- "${${line#*HIT1<}%%>*}"
  [[ $line == *DONE2* ]] && break
  sleep 0.01
done
zpty -d z
"""


@pytest.mark.skipif(shutil.which("zsh") is None,
                    reason="zsh is not installed (apt-get install zsh; ./dev does)")
def test_zsh_completes_subcommands_options_and_choices(tmp_path: Path) -> None:
    script = tmp_path / "_haipvs"
    script.write_text(render_zsh(command_tree(build_parser())))
    subprocess.run(["zsh", "-n", str(script)], check=True, timeout=30)
    assert script.read_text().startswith("#compdef haipvs\n")
    capture = tmp_path / "capture.zsh"
    capture.write_text(ZSH_CAPTURE)

    def zsh_complete(line: str) -> list[str]:
        result = subprocess.run(["zsh", "-f", str(capture)], capture_output=True, text=True,
                                check=True, timeout=60,
                                env={"DIR": str(tmp_path), "LINE": line, "PATH": "/usr/bin:/bin",
                                     "TERM": "dumb", "HOME": str(tmp_path)})
        return sorted(set(result.stdout.split()))

    assert {"run", "check-config", "status", "lab", "schema", "completion"} <= set(
        zsh_complete("haipvs "))
    assert zsh_complete("haipvs status --") == ["--api", "--config", "--help", "--json",
                                                "--token"]
    assert zsh_complete("haipvs lab ") == ["demo", "run", "setup"]
    assert zsh_complete("haipvs lab run --backend ") == ["auto", "native", "qemu", "uml"]
    assert zsh_complete("haipvs completion ") == ["bash", "zsh"]
