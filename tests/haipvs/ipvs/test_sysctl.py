"""IPVS sysctls haipvs sets: each file written only when it differs, read back, one line
per change, and a file it cannot set named once (haipvs.ipvs.sysctl)."""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from haipvs.ipvs.sysctl import SyncRefresh


def sysctl_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "vs"
    directory.mkdir()
    (directory / "sync_period").write_text("50\n")  # the kernel's "3 50", its period
    (directory / "sync_refresh_period").write_text("0\n")
    return directory


def test_sync_refresh_sets_both_sysctls_once(tmp_path: Path) -> None:
    sysctls = sysctl_dir(tmp_path)
    refresh = SyncRefresh(str(sysctls))
    with capture_logs() as logs:
        assert refresh.ensure(5) is None
        assert refresh.ensure(5) is None
    assert [(e["event"], e["file"].rsplit("/", 1)[1], e["was"], e["value"]) for e in logs] == [
        ("ipvs.sync_refresh.set", "sync_period", "50", "0"),
        ("ipvs.sync_refresh.set", "sync_refresh_period", "0", "5")]
    assert (sysctls / "sync_period").read_text() == "0\n"
    assert (sysctls / "sync_refresh_period").read_text() == "5\n"


def test_sync_refresh_names_what_it_cannot_set_once(tmp_path: Path) -> None:
    missing = SyncRefresh(str(tmp_path / "absent"))  # no ip_vs module in this namespace
    with capture_logs() as logs:
        problem = missing.ensure(5)
        assert missing.ensure(5) == problem
    assert problem == "cannot set it: No such file or directory"
    assert [e["event"] for e in logs] == ["ipvs.sync_refresh.failed"] * 2  # one per file
