"""`haipvs --version` and `haipvs version` print the installed package's version."""

from __future__ import annotations

from importlib.metadata import version

import pytest

from haipvs.cli import main


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"haipvs {version('haipvs')}\n"
    assert main(["version"]) == 0
    assert capsys.readouterr().out == f"haipvs {version('haipvs')}\n"
