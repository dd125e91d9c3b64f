"""Logging: structlog configured once, one event per line.

Every line carries `director`, `event`, `level` and `timestamp`; the event names are
the contract on-call engineers grep and alert on (listed in docs/operations.md).
JSON when stdout is not a terminal (or when the config says so), a console renderer
for a person at a terminal.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

import structlog

__all__ = ["LoggingSettings", "configure_logging", "current_logging"]

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


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


def configure_logging(*, director: str, log_format: str | None, level: str = "info") -> None:
    """Configure structlog for the daemon. `log_format`: "json", "console" or None (auto)."""
    global _current  # noqa: PLW0603 - one logging configuration per process, like structlog's
    _current = LoggingSettings(director, log_format, level)
    as_json = log_format == "json" or (log_format is None and not sys.stdout.isatty())

    def add_director(
        _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        # A processor, not a contextvar: VRRP runs in its own thread, and every line of
        # every thread must say which director wrote it.
        event_dict.setdefault("director", director)
        return event_dict

    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_director,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=False,
    )
