"""IPVS sysctls haipvs sets: each file written only when it differs, read back, one line
per change, and a file it cannot set named once (haipvs.ipvs.sysctl)."""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from haipvs.ipvs.sysctl import SyncRefresh


def sysctl_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "vs"
    directory.mkdir()
    (directory / "sync_threshold").write_text("3\t50\n")  # as the kernel prints it
    (directory / "sync_refresh_period").write_text("0\n")
    return directory


def test_sync_refresh_sets_both_sysctls_once(tmp_path: Path) -> None:
    sysctls = sysctl_dir(tmp_path)
    refresh = SyncRefresh(str(sysctls))
    with capture_logs() as logs:
        assert refresh.ensure(5) is None
        assert refresh.ensure(5) is None
    assert [(e["event"], e["file"].rsplit("/", 1)[1], e["was"], e["value"]) for e in logs] == [
        ("ipvs.sync_refresh.set", "sync_threshold", "3\t50", "3 0"),
        ("ipvs.sync_refresh.set", "sync_refresh_period", "0", "5")]
    assert (sysctls / "sync_threshold").read_text() == "3 0\n"
    assert (sysctls / "sync_refresh_period").read_text() == "5\n"


def test_sync_refresh_names_what_it_cannot_set_once(tmp_path: Path) -> None:
    missing = SyncRefresh(str(tmp_path / "absent"))  # no ip_vs module in this namespace
    with capture_logs() as logs:
        problem = missing.ensure(5)
        assert missing.ensure(5) == problem
    assert problem == "cannot set it: No such file or directory"
    assert [e["event"] for e in logs] == ["ipvs.sync_refresh.failed"] * 2  # one per file


def test_a_tuned_threshold_is_kept_and_a_tab_separated_read_back_is_the_same(
    tmp_path: Path,
) -> None:
    sysctls = sysctl_dir(tmp_path)
    (sysctls / "sync_threshold").write_text("5\t80\n")
    assert SyncRefresh(str(sysctls)).ensure(5) is None
    assert (sysctls / "sync_threshold").read_text() == "5 0\n"
    (sysctls / "sync_threshold").write_text("5\t0\n")  # the kernel prints a tab
    with capture_logs() as logs:
        assert SyncRefresh(str(sysctls)).ensure(5) is None
    assert logs == []  # nothing written: it already reads as wanted
    assert (sysctls / "sync_threshold").read_text() == "5\t0\n"
