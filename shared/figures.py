"""The programme's figures as metrics: gauges refreshed from a service's projections by a
background job, so a dashboard shows the programme (covered workers, premiums against the
budget, claims waiting) without any personal data leaving the database."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from prometheus_client import Gauge

from shared.db import CONNECTION_LOST
from shared.retries import wait_or_stop

log = logging.getLogger(__name__)
UNAVAILABLE: tuple[type[Exception], ...] = (*CONNECTION_LOST, asyncpg.PostgresError)


@dataclass(frozen=True)
class Figure:
    """A gauge and the query that gives it: one row per series, the gauge's label values in
    order and then the value (``{schema}`` is the service's schema)."""

    gauge: Gauge
    sql: str


async def refresh(pool: asyncpg.Pool, schema: str, figures: Sequence[Figure]) -> None:
    rows = [await pool.fetch(f.sql.replace("{schema}", schema)) for f in figures]
    # Replaced without an await in between: a scrape never sees a figure half refreshed.
    for figure, found in zip(figures, rows, strict=True):
        figure.gauge.clear()
        for row in found:
            *labels, value = tuple(row)
            figure.gauge.labels(*(str(label) for label in labels)).set(float(value or 0))


def figures_job(
    pool: asyncpg.Pool, schema: str, figures: Sequence[Figure], interval: float = 60.0
) -> Callable[[asyncio.Event], Coroutine[Any, Any, None]]:
    """A background job of the service refreshing ``figures`` every ``interval`` seconds."""

    async def programme_figures(stop: asyncio.Event) -> None:
        while True:
            try:
                await refresh(pool, schema, figures)
            except UNAVAILABLE as error:  # the next round tries again
                log.warning("programme figures of %s not refreshed: %s", schema, error)
            if await wait_or_stop(stop, interval):
                return

    return programme_figures
