"""`haipvs check-config FILE`: validate a file the way the daemon would, touching nothing.

The verdict is haipvs.daemon.accept's, the gate the daemon itself passes at start and at
every reload: the same file permission, script safety, API and host (interface) checks.
``--offline`` skips what depends on this host (scripts, interfaces), for a file written
for another machine.

Exit 0 with a one-line summary and any warnings; exit 1 with one line per error
(``FILE:LINE: key.path: message``), then the warnings. Everything goes to stdout so that
`haipvs check-config f | wc -l` counts the problems. The kernel, the network and the
running daemon are never contacted.
"""

from __future__ import annotations

import sys
from typing import TextIO

from haipvs.config.check import count, summarize
from haipvs.config.load import ConfigInvalid
from haipvs.daemon.accept import HostFacts, accept_config

__all__ = ["check_config_command"]


def check_config_command(
    path: str, out: TextIO | None = None, *, offline: bool = False, host: HostFacts | None = None
) -> int:
    """Validate ``path``; print the verdict; return the exit status (0 valid, 1 not).

    ``host``: the host facts to check against (default: this host)."""
    stream = out if out is not None else sys.stdout
    try:
        loaded = accept_config(path, offline=offline, host=host).loaded
    except ConfigInvalid as invalid:
        for error in invalid.errors:
            print(error, file=stream)
        for warning in invalid.warnings:
            print(warning, file=stream)
        return 1
    warnings = loaded.warnings
    suffix = f" ({count(len(warnings), 'warning')})" if warnings else ""
    print(f"{path}: ok: {summarize(loaded.config)}{suffix}", file=stream)
    for warning in warnings:
        print(warning, file=stream)
    return 0
