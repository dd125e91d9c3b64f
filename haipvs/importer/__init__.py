"""haipvs.importer: translate keepalived.conf into the haipvs YAML config (issue 8).

Public API (other packages import only from here):

- ``parse_file(path, *, source=None, config_id=None) -> ParsedConfig`` and
  ``parse_text(text, name, *, source=None, config_id=None)``: keepalived syntax only
  (blocks, ``include`` globs, comments, ``@ID`` lines, ``$NAME`` definitions), raising
  ``KeepalivedSyntaxError(location, message)``.
- ``translate(parsed, source) -> Translation(config, findings, source, anchors)``: the
  YAML as plain data and every keyword that did not translate exactly, as
  ``Finding(location, keyword, severity, message, anchor)``.
- ``render_yaml(translation) -> str``: the YAML text with the findings as comments.
- ``import_keepalived_command(args) -> int``: ``haipvs import-keepalived FILE``.
"""

from __future__ import annotations

from haipvs.importer.command import import_keepalived_command, run_import
from haipvs.importer.parser import (
    FileSource,
    FilesystemSource,
    KeepalivedSyntaxError,
    Location,
    ParsedConfig,
    Skipped,
    Statement,
    parse_file,
    parse_text,
)
from haipvs.importer.translate import Finding, Severity, Translation, render_yaml, translate

__all__ = [
    "FileSource",
    "FilesystemSource",
    "Finding",
    "KeepalivedSyntaxError",
    "Location",
    "ParsedConfig",
    "Severity",
    "Skipped",
    "Statement",
    "Translation",
    "import_keepalived_command",
    "parse_file",
    "parse_text",
    "render_yaml",
    "run_import",
    "translate",
]
