"""`haipvs import-keepalived FILE > haipvs.yaml`: the command around the importer.

The YAML goes to stdout and everything the operator must read goes to stderr, one
line per finding in the compiler style `FILE:LINE: severity: keyword: message`, so
`> haipvs.yaml` keeps a clean file and the terminal shows the warnings.

Exit status:
  0  translated; every finding is a note or a dropped feature, and the output
     validates with the config package (as `haipvs check-config` would).
  1  something must be resolved first: a keyword that cannot be expressed
     (UNSUPPORTED), a keepalived syntax error, or output that does not validate.
     The YAML is still printed when there is one, with the findings as comments.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, TextIO

from haipvs.importer.parser import KeepalivedSyntaxError, parse_file
from haipvs.importer.translate import Severity, Translation, render_yaml, source_of, translate

if TYPE_CHECKING:
    from haipvs.config import ConfigError, ConfigWarning

__all__ = ["import_keepalived_command", "run_import"]

PROG = "haipvs import-keepalived"


def _report(translation: Translation, err: TextIO) -> None:
    for finding in translation.findings:
        print(
            f"{finding.location}: {finding.severity.value}: {finding.keyword}: {finding.message}",
            file=err,
        )
    counts = {s: 0 for s in Severity}
    for finding in translation.findings:
        counts[finding.severity] += 1
    print(
        f"{PROG}: {counts[Severity.UNSUPPORTED]} unsupported, "
        f"{counts[Severity.DROPPED]} dropped, {counts[Severity.NOTE]} notes",
        file=err,
    )


def run_import(path: str, out: TextIO, err: TextIO, *, config_id: str | None = None) -> int:
    """Translate `path`, print YAML on `out` and findings on `err`; the exit status."""
    try:
        parsed = parse_file(path, config_id=config_id)
    except KeepalivedSyntaxError as exc:
        print(f"{exc.location}: error: {exc.message}", file=err)
        return 1
    translation = translate(parsed, path)
    text = render_yaml(translation)
    out.write(text)
    _report(translation, err)
    status = 0
    if translation.unsupported:
        keywords = sorted({f.keyword for f in translation.unsupported})
        print(
            f"{PROG}: the import is incomplete; resolve these keywords first: "
            + ", ".join(keywords),
            file=err,
        )
        status = 1
    # Validate exactly what was printed, as `haipvs check-config` will read it.
    from haipvs.config import ConfigInvalid, load_config_text

    # Its errors are about the output; each is printed at the keepalived statement the
    # item came from, with the output line as a second reference.
    try:
        loaded = load_config_text(text, "<import>")
    except ConfigInvalid as exc:
        print(f"{PROG}: the translated config does not validate:", file=err)
        for error in exc.errors:
            print(_located(translation, path, "error", error), file=err)
        return 1
    for warning in loaded.warnings:
        print(_located(translation, path, "warning", warning), file=err)
    return status


def _located(
    translation: Translation, path: str, severity: str, problem: ConfigError | ConfigWarning
) -> str:
    where = source_of(translation, problem.key_path) or f"{path}:1"
    return (
        f"{where}: {severity}: {problem.key_path}: {problem.message} (output line {problem.line})"
    )


def import_keepalived_command(args: argparse.Namespace) -> int:
    """Entry point wired in haipvs/cli.py (args.file; args.config_id when given)."""
    config_id: str | None = getattr(args, "config_id", None)
    return run_import(args.file, sys.stdout, sys.stderr, config_id=config_id)
