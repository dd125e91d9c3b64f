"""The keepalived build helper: where the binary is looked for, how a source is unpacked."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from haipvs.lab import keepalived_build


def test_built_keepalived_is_found_only_when_executable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HAIPVS_LAB_CACHE", str(tmp_path))
    assert keepalived_build.built_keepalived() is None
    binary = tmp_path / "keepalived-2.4.3" / "install" / "sbin" / "keepalived"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    assert keepalived_build.built_keepalived() is None  # not executable
    binary.chmod(0o755)
    assert keepalived_build.built_keepalived() == binary


def test_a_release_tarball_is_unpacked_without_its_top_directory(tmp_path: Path) -> None:
    source = tmp_path / "keepalived-2.4.3"
    (source / "keepalived").mkdir(parents=True)
    (source / "configure.ac").write_text("AC_INIT\n")
    tarball = tmp_path / "ka.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(source, arcname="keepalived-2.4.3")
    dest = tmp_path / "src"
    keepalived_build._unpack(tarball, dest)
    assert sorted(p.name for p in dest.iterdir()) == ["configure.ac", "keepalived"]
    # A directory is copied as it is, and a second unpack starts clean.
    keepalived_build._unpack(source, dest)
    assert (dest / "configure.ac").read_text() == "AC_INIT\n"
