"""Type stub and lazy-export table of haipvs.importer: the names below are imported on first
use (lazy_loader.attach_stub), so importing one pure submodule loads no IO module."""

from .command import import_keepalived_command as import_keepalived_command
from .command import run_import as run_import
from .parser import FileSource as FileSource
from .parser import FilesystemSource as FilesystemSource
from .parser import KeepalivedSyntaxError as KeepalivedSyntaxError
from .parser import Location as Location
from .parser import ParsedConfig as ParsedConfig
from .parser import Skipped as Skipped
from .parser import Statement as Statement
from .parser import parse_file as parse_file
from .parser import parse_text as parse_text
from .translate import Finding as Finding
from .translate import Severity as Severity
from .translate import Translation as Translation
from .translate import render_yaml as render_yaml
from .translate import translate as translate

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
