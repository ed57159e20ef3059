"""``audit as-of``: the programme's state rebuilt from the topics into scratch schemas of its
own, as known at a transaction time or as true on a business date, then asked the auditors'
questions. The live projections are not touched.

Every figure keeps the query that produced it and the topic offsets the rebuild read up to, so
that another auditor can reproduce it from the topics alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from contract.events.registry import CATALOGUE
from services.catalog import projection_named
from shared.business_calendar import business_day
from shared.privileges import audit_scratch_schema
from shared.projection.replay import History, rebuild_into
from shared.settings import KafkaSettings
from shared.topic_reader import end_offsets

# The projections the auditors' questions read, as (service, projection).
SOURCES = (
    ("enrolment", "workers"),
    ("billing", "coverages"),
    ("billing", "premiums"),
    ("billing", "allocations"),
    ("claims", "claims"),
)
QUESTIONS: Mapping[str, str] = {
    "workers by status and cohort": (
        "SELECT status, coalesce(cohort, '-') AS cohort, count(*) AS workers "
        "FROM {enrolment_workers}.workers GROUP BY 1, 2 ORDER BY 1, 2"
    ),
    "premiums due and paid": (
        "SELECT fiscal_year, cohort, count(*) AS months, sum(amount) AS invoiced, "
        "coalesce(sum(amount) FILTER (WHERE paid_on IS NOT NULL), 0) AS paid, "
        "coalesce(sum(amount) FILTER (WHERE paid_on IS NULL), 0) AS arrears "
        "FROM {billing_premiums}.premiums GROUP BY 1, 2 ORDER BY 1, 2"
    ),
    "claims open and decided": (
        "SELECT status, benefit, count(*) AS claims, coalesce(sum(total), 0) AS amount "
        "FROM {claims_claims}.claims GROUP BY 1, 2 ORDER BY 1, 2"
    ),
}


@dataclass(frozen=True)
class Moment:
    """What the state is as of: recorded by ``known_at`` and/or happened by ``true_on``."""

    known_at: datetime | None = None
    true_on: date | None = None

    def describe(self) -> str:
        parts = []
        if self.known_at:
            parts.append(f"as known at {self.known_at.isoformat()}")
        if self.true_on:
            parts.append(f"as true on {self.true_on.isoformat()}")
        return ", ".join(parts) or "as the topics stand"


@dataclass(frozen=True)
class Figure:
    question: str
    query: str
    columns: list[str]
    rows: list[list[Any]]


@dataclass
class State:
    label: str
    moment: Moment
    schemas: dict[str, str]
    offsets: dict[str, int] = field(default_factory=dict)  # "topic/partition" -> end offset read
    figures: dict[str, Figure] = field(default_factory=dict)


async def rebuild(
    pool: asyncpg.Pool,
    kafka: KafkaSettings,
    label: str,
    moment: Moment,
    progress: Callable[[int], None] = lambda _: None,
) -> State:
    """The auditors' projections rebuilt under ``label`` as of ``moment``; then the answers."""
    ends = await end_offsets(kafka, sorted(_source_topics(kafka)))
    state = State(
        label,
        moment,
        {f"{s}_{p}": audit_scratch_schema(label, s, p) for s, p in SOURCES},
        {f"{tp.topic}/{tp.partition}": end for tp, end in sorted(ends.items())},
    )
    history = History(known_at=moment.known_at, true_on=moment.true_on)
    for service, name in SOURCES:
        projection = projection_named(service, name)
        await rebuild_into(
            pool,
            state.schemas[f"{service}_{name}"],
            projection,
            CATALOGUE,
            kafka,
            history,
            progress,
        )
    for question, query in QUESTIONS.items():
        state.figures[question] = await ask(pool, question, query.format(**state.schemas))
    return state


def _source_topics(kafka: KafkaSettings) -> set[str]:
    return {
        kafka.events_topic(source)
        for service, name in SOURCES
        for source in projection_named(service, name).sources
    }


async def ask(pool: asyncpg.Pool, question: str, query: str) -> Figure:
    async with pool.acquire() as conn:
        statement = await conn.prepare(query)
        rows = await statement.fetch()
        columns = [attribute.name for attribute in statement.get_attributes()]
    return Figure(question, query, columns, [[_plain(v) for v in r.values()] for r in rows])


def _plain(value: Any) -> Any:
    """JSON-friendly: dates as ISO text, sums of money (numeric) as whole rupiah."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value.isoformat() if isinstance(value, date | datetime) else value


@dataclass(frozen=True)
class Change:
    question: str
    key: list[Any]
    before: list[Any] | None
    after: list[Any] | None


def differences(a: State, b: State) -> list[Change]:
    """Rows of each answer that differ between two states, keyed by their leading text columns:
    pure."""
    changes = []
    for question, figure in b.figures.items():
        width = _key_width(figure)
        before = {tuple(r[:width]): r[width:] for r in a.figures[question].rows}
        after = {tuple(r[:width]): r[width:] for r in figure.rows}
        for key in sorted(before.keys() | after.keys(), key=str):
            if before.get(key) != after.get(key):
                changes.append(Change(question, list(key), before.get(key), after.get(key)))
    return changes


def _key_width(figure: Figure) -> int:
    keys = {"status", "cohort", "fiscal_year", "benefit"}
    return sum(1 for c in figure.columns if c in keys)


def explaining_events(
    envelopes: Sequence[dict[str, Any]], a: Moment, b: Moment
) -> list[dict[str, Any]]:
    """The events that are in state ``b`` and not in state ``a``: pure."""

    def included(envelope: dict[str, Any], moment: Moment) -> bool:
        if moment.known_at and datetime.fromisoformat(envelope["recorded_at"]) > moment.known_at:
            return False
        occurred = business_day(datetime.fromisoformat(envelope["occurred_at"]))
        return not (moment.true_on and occurred > moment.true_on)

    return [e for e in envelopes if included(e, b) and not included(e, a)]
