"""Structured logs: one JSON object per line, with the service's name, for every logger.

Standard-library loggers (ours, aiokafka's, uvicorn's) go through the same renderer, so an
operator's log pipeline sees one format. Messages carry identifiers (event, stream,
correlation, trace), never personal data: every line written while a request or a consumed
record is handled carries its ``correlation_id`` and ``trace_id``, so one command's lines are
found across the services, and its trace from any of them.
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import structlog
from structlog.types import EventDict, WrappedLogger

from shared.tracing import trace_id

CORRELATION_HEADER = "X-Correlation-ID"
_correlation: ContextVar[uuid.UUID | None] = ContextVar("correlation_id", default=None)


def correlation_id() -> uuid.UUID:
    """The correlation id of the request being handled (a new one outside any request): the
    id its events carry, returned to the caller in ``X-Correlation-ID``."""
    return _correlation.get() or uuid.uuid4()


def parse_correlation(text: str | None) -> uuid.UUID | None:
    """A caller's correlation id if it is a UUID (bounded before it is parsed), else None."""
    if not text or len(text) > 36:
        return None
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


@contextmanager
def correlated(correlation: uuid.UUID | None) -> Iterator[uuid.UUID | None]:
    """Within the block, log lines carry ``correlation`` (and commands use it, in a request)."""
    token = _correlation.set(correlation)
    try:
        with structlog.contextvars.bound_contextvars(
            correlation_id=str(correlation) if correlation else None
        ):
            yield correlation
    finally:
        _correlation.reset(token)


def _add_trace_id(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    current = trace_id()
    if current is not None:
        event["trace_id"] = current
    if event.get("correlation_id") is None:
        event.pop("correlation_id", None)
    return event


def configure(service: str, level: int = logging.INFO) -> None:
    shared_processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        _add_trace_id,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    # httpx logs every request at info: one line per cross-service decision (each asks its
    # producers first) would bury the service's own lines. Its warnings and errors still show.
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))
    structlog.configure(
        processors=[*shared_processors, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
