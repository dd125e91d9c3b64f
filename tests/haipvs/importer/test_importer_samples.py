"""Every sample configuration Debian's keepalived package ships, which nobody here wrote.

Each one either converts to a config that validates with haipvs.config, or fails with
a clear list of the keywords that cannot be expressed. The table below is
what was measured; a change in either direction (a sample that stops converting, or
one that starts converting without the table being updated) fails the test, so the
importer's coverage is a recorded, reviewed number.
"""

from __future__ import annotations

import gzip
import io
import shutil
from collections import Counter
from pathlib import Path

import pytest

from haipvs.config import load_config_text
from haipvs.importer import (
    KeepalivedSyntaxError,
    Severity,
    parse_file,
    render_yaml,
    run_import,
    translate,
)

SAMPLES = Path("/usr/share/doc/keepalived/samples")

# sample -> the keywords that make the import fail (empty: converts and validates)
EXPECTED: dict[str, tuple[str, ...]] = {
    "keepalived.conf.HTTP_GET.port": (),
    "keepalived.conf.IPv6": (),
    "keepalived.conf.PING_CHECK": (),
    "keepalived.conf.SMTP_CHECK": (),
    "keepalived.conf.SSL_GET": ("authentication",),
    "keepalived.conf.UDP_CHECK": (),
    "keepalived.conf.conditional_conf": (),
    "keepalived.conf.fwmark": (),
    "keepalived.conf.inhibit": (),
    "keepalived.conf.misc_check": (),
    "keepalived.conf.misc_check_arg": (),
    "keepalived.conf.quorum": (),
    "keepalived.conf.sample": (),
    "keepalived.conf.status_code": (),
    "keepalived.conf.track_interface": (),
    "keepalived.conf.virtual_server_group": (),
    "keepalived.conf.virtualhost": (),
    "keepalived.conf.vrrp": (),
    "keepalived.conf.vrrp.localcheck": (),
    "keepalived.conf.vrrp.lvs_syncd": (),
    "keepalived.conf.vrrp.routes": (),
    "keepalived.conf.vrrp.rules": (),
    "keepalived.conf.vrrp.scripts": (),
    "keepalived.conf.vrrp.static_ipaddress": (),
    "keepalived.conf.vrrp.sync": (),
}
CONVERTED = 24
FAILED = 1
# Every finding over all samples, by severity (measured): a keyword that moves from
# dropped to unsupported, or one that stops being reported, changes these.
FINDINGS = {Severity.NOTE: 43, Severity.DROPPED: 81, Severity.UNSUPPORTED: 1}


def _samples(directory: Path, work: Path) -> dict[str, Path]:
    """keepalived.conf.* files, gunzipped into `work` when the package compressed them."""
    found: dict[str, Path] = {}
    for path in sorted(directory.glob("keepalived.conf*")):
        if path.suffix == ".gz":
            plain = work / path.stem
            with gzip.open(path) as src, plain.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            found[path.stem] = plain
        else:
            found[path.name] = path
    return found


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if not SAMPLES.is_dir():
        pytest.skip(f"{SAMPLES} is missing (apt-get install keepalived)")
    return _samples(SAMPLES, tmp_path_factory.mktemp("samples"))


def test_every_sample_converts_or_lists_its_unsupported_keywords(
    samples: dict[str, Path],
) -> None:
    outcome: dict[str, tuple[str, ...]] = {}
    severities: Counter[Severity] = Counter()
    lines = []
    for name, path in samples.items():
        try:
            parsed = parse_file(str(path))
        except KeepalivedSyntaxError as exc:  # would be listed as a failure of its own
            outcome[name] = (f"syntax: {exc}",)
            continue
        translation = translate(parsed, name)
        severities.update(f.severity for f in translation.findings)
        # The translated part validates in every case, the failed ones included: what
        # is printed is always a config check-config reads, with the gaps as comments.
        loaded = load_config_text(render_yaml(translation), f"{name}.yaml")
        unsupported = tuple(sorted({f.keyword for f in translation.unsupported}))
        # Located and named: every reason points into the sample, at a line.
        for finding in translation.unsupported:
            assert finding.location.file == str(path) and finding.location.line > 0
            assert finding.keyword and finding.message
        outcome[name] = unsupported
        config = loaded.config
        verdict = "converts" if not unsupported else "fails: " + ", ".join(unsupported)
        lines.append(
            f"{name:42} {len(config.vrrp)} vrrp, {len(config.virtual_servers):2} vs  {verdict}"
        )
    converted = sum(1 for keywords in outcome.values() if not keywords)
    print(
        "\nkeepalived samples:",
        len(outcome),
        "converted:",
        converted,
        "failed:",
        len(outcome) - converted,
    )
    print("findings:", ", ".join(f"{severities[s]} {s.value}" for s in Severity))
    print("\n".join(lines))
    assert outcome == EXPECTED
    assert (converted, len(outcome) - converted) == (CONVERTED, FAILED)
    assert dict(severities) == FINDINGS


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_command_exit_status_matches_the_table(samples: dict[str, Path], name: str) -> None:
    if name not in samples:
        pytest.fail(f"{name} is no longer shipped; update EXPECTED")
    out, err = io.StringIO(), io.StringIO()
    status = run_import(str(samples[name]), out, err)
    assert status == (1 if EXPECTED[name] else 0), err.getvalue()
    if EXPECTED[name]:
        # The clear list: each unsupported keyword, by name, on the last lines of stderr.
        summary = err.getvalue().splitlines()
        listed = next(line for line in summary if "resolve these keywords first" in line)
        assert listed.endswith(", ".join(EXPECTED[name]))


def test_conditional_sample_with_its_config_id(samples: dict[str, Path]) -> None:
    # Imported as keepalived runs it (`keepalived -i high`), only the namespace the
    # instance ran in remains; use_vmac becomes vmac.
    translation = translate(
        parse_file(str(samples["keepalived.conf.conditional_conf"]), config_id="high"), "c"
    )
    assert sorted({f.keyword for f in translation.unsupported}) == ["net_namespace"]
    (instance,) = translation.config["vrrp"]
    assert instance["vmac"] == {}  # use_vmac without a name: vrrp.1
    assert instance["priority"] == 190  # 170 + the eth2 weight of 20, folded
    assert instance["track"]["scripts"][0]["command"] == [
        "/etc/keepalived/scripts/check_high_VI_0.sh"
    ]


def test_gzipped_samples_are_read(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    with gzip.open(source / "keepalived.conf.zipped.gz", "wt") as handle:
        handle.write("global_defs {\n router_id z\n}\n")
    found = _samples(source, tmp_path)
    assert list(found) == ["keepalived.conf.zipped"]
    assert translate(parse_file(str(found["keepalived.conf.zipped"]))).config["director"] == {
        "name": "z"
    }
