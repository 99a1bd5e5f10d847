"""Structured logging for every process: JSON (production) or text.

structlog's contextvars carry ``run_id``, ``workflow``, ``step`` and ``attempt``
into every line written while a step runs (bound by the step protocol), and
``request_id`` into every line written while a request is served. Plain
``logging`` calls from libraries go through the same renderer.
"""

from __future__ import annotations

import logging
import sys

import structlog

_configured: tuple[str, str] | None = None

SHARED_PROCESSORS: list[structlog.types.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure_logging(log_format: str = "json", level: str = "info", *, force: bool = False) -> None:
    global _configured
    if _configured == (log_format, level) and not force:
        return
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            # below the level, stop before building the event (context merge,
            # timestamp): a worker at WARNING skips its two INFO lines per step
            structlog.stdlib.filter_by_level,
            *SHARED_PROCESSORS,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=SHARED_PROCESSORS,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_stepwise", False):
            root.removeHandler(old)
    handler._stepwise = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    _configured = (log_format, level)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]
