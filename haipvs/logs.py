"""Logging: structlog configured once, one event per line.

Every line carries `director`, `event`, `level` and `timestamp`; the event names are
the contract on-call engineers grep and alert on (listed in docs/operations.md).
JSON when stdout is not a terminal (or when the config says so), a console renderer
for a person at a terminal.

Two things make the lines usable under systemd:

- Journal priority. journald reads a service's stdout as a stream and, with the
  unit's default `SyslogLevelPrefix=yes` (systemd.exec(5)), takes a leading `<N>`
  as the line's syslog priority and strips it (sd-daemon(3), SD_ERR is "<3>").
  Without it every line lands at info and `journalctl -p err` shows nothing. The
  prefix is written only when stdout *is* the journal stream: systemd sets
  `JOURNAL_STREAM=DEVICE:INODE` for it, and sd-daemon(3) says to compare that with
  fstat() of the descriptor, so a shell redirect or a pipe to `jq` stays plain JSON.
- Python's own logging. aiohttp ("Error handling request") and asyncio ("Task
  exception was never retrieved") log through the stdlib; a handler on the root
  logger formats those records with structlog's ProcessorFormatter, so they are one
  JSON object with the same keys, as event `library.log` with `logger` and `message`.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import IO, Any, TextIO

import structlog

__all__ = [
    "JOURNAL_PRIORITY",
    "LoggingSettings",
    "configure_logging",
    "current_logging",
    "stream_is_journal",
]

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

# syslog(3) priorities, as sd-daemon(3)'s SD_* prefixes spell them.
JOURNAL_PRIORITY = {
    "debug": 7,
    "info": 6,
    "notice": 5,
    "warning": 4,
    "warn": 4,
    "error": 3,
    "exception": 3,
    "critical": 2,
}

# The event of a line that came through Python's logging module (aiohttp, asyncio).
LIBRARY_EVENT = "library.log"


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    """What configure_logging was given: the VRRP process logs exactly like its parent."""

    director: str
    log_format: str | None
    level: str


_current: LoggingSettings | None = None


def current_logging() -> LoggingSettings | None:
    """The settings of the last configure_logging call in this process, if any."""
    return _current


def stream_is_journal(stream: IO[str], environ: MutableMapping[str, str] | None = None) -> bool:
    """True when `stream` is the journal stream systemd connected (sd-daemon(3))."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    try:
        expected = (int(device), int(inode))
        stat = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        # No variable, a malformed one, or a stream without a descriptor (a test's
        # StringIO): not the journal.
        return False
    return (stat.st_dev, stat.st_ino) == expected


def _prefixer(enabled: bool) -> Any:
    def prefix(_logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> Any:
        # Runs before the renderer: it records the priority; the wrapper below writes it.
        if enabled:
            level = str(event_dict.get("level", method)).lower()
            event_dict["_journal_priority"] = JOURNAL_PRIORITY.get(level, 6)
        return event_dict

    return prefix


class _PrefixedRenderer:
    """Render with `inner`, then put journald's `<N>` in front when one was recorded."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __call__(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> Any:
        priority = event_dict.pop("_journal_priority", None)
        rendered = self._inner(logger, method, event_dict)
        if priority is None:
            return rendered
        # One record is one line for journald: a multi-line console rendering (a
        # traceback) would lose the priority after its first line, JSON never has one.
        return f"<{priority}>{rendered}"


def _add_library_fields(
    logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    # A stdlib record: its text becomes `message`, the event is one fixed name an
    # operator can grep for, and `logger` says which library spoke.
    record = event_dict.get("_record")
    event_dict["message"] = event_dict.get("event")
    event_dict["event"] = LIBRARY_EVENT
    if isinstance(record, logging.LogRecord):
        event_dict["logger"] = record.name
    return event_dict


def configure_logging(
    *, director: str, log_format: str | None, level: str = "info", stream: TextIO | None = None
) -> None:
    """Configure structlog for the daemon. `log_format`: "json", "console" or None (auto).

    `stream` defaults to sys.stdout (at call time). Python's logging is routed to the
    same stream and formatter.
    """
    global _current  # noqa: PLW0603 - one logging configuration per process, like structlog's
    _current = LoggingSettings(director, log_format, level)
    out: TextIO = sys.stdout if stream is None else stream
    tty = out.isatty()
    as_json = log_format == "json" or (log_format is None and not tty)
    journal = stream_is_journal(out)

    def add_director(
        _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        # A processor, not a contextvar: VRRP runs in its own thread, and every line of
        # every thread must say which director wrote it.
        event_dict.setdefault("director", director)
        return event_dict

    renderer: Any = _PrefixedRenderer(
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=tty)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        add_director,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    threshold = _LEVELS.get(level, logging.INFO)
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            _prefixer(journal),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, _add_library_fields, structlog.processors.format_exc_info],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _prefixer(journal),
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    handler.set_name("haipvs")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "haipvs"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(threshold)
