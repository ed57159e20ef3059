"""Verification's application service: loads a case and the worker's facts, decides with the
pure domain, and appends; designations are serialised per cohort and fiscal year so that the
quota and the budget hold under concurrent requests."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import asyncpg

from services.verification.domain import (
    Case,
    CohortStanding,
    Command,
    Designate,
    Facts,
    decide,
    designation_cost,
    evolve,
)
from shared.db import DbConnection
from shared.events.registry import parse
from shared.eventstore import AppendResult, EventStore
from shared.eventstore.migrations import Migration
from shared.eventstore.store import CommandContext, to_new_events
from shared.policy import PolicyBook
from shared.projection.freshness import wait_until_caught_up
from shared.settings import KafkaSettings
from shared.topic_reader import OffsetWatcher

SERVICE = "verification"

WRITE_MODEL = (
    Migration(
        "designation_counts",
        """
        -- Designations per cohort and year, locked by each designation: quota and budget hold.
        CREATE TABLE {schema}.designation_counts (
            fiscal_year integer NOT NULL,
            cohort      text NOT NULL,
            designated  integer NOT NULL DEFAULT 0,
            committed   bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (fiscal_year, cohort)
        );
        """,
    ),
)

STAGE_SQL = """
    CASE
        WHEN last_outcome = 'rejected' AND (corrected_at IS NULL OR corrected_at <= decided_at)
            THEN 'rejected'
        WHEN last_outcome = 'rejected' OR last_level IS NULL THEN 'kelurahan'
        WHEN last_level = 'kelurahan' THEN 'kecamatan'
        WHEN last_level = 'kecamatan' THEN 'city'
        ELSE 'designated'
    END
"""


class UnknownWorkerError(LookupError):
    pass


def stream_of(worker_id: uuid.UUID) -> str:
    return f"case-{worker_id}"


class VerificationService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        kafka: KafkaSettings,
        book: PolicyBook,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        schema: str = SERVICE,
    ) -> None:
        self.pool = pool
        self.schema = schema
        self.kafka = kafka
        self.book = book
        self.clock = clock
        self.store = EventStore(pool, schema, SERVICE, clock=clock)
        self.offsets = OffsetWatcher(kafka)

    async def facts(self, worker_id: uuid.UUID) -> Facts:
        row = await self.pool.fetchrow(
            f"SELECT * FROM {self.schema}.cases "
            "WHERE worker_id = $1 AND kelurahan_code IS NOT NULL",
            worker_id,
        )
        if row is None:
            raise UnknownWorkerError(f"no case for worker {worker_id}: not registered (yet)")
        return Facts(
            worker_id,
            row["kelurahan_code"],
            row["kecamatan_code"],
            row["birth_date"],
            row["corrected_at"],
        )

    async def load(self, worker_id: uuid.UUID) -> tuple[Case, int]:
        case, version = Case(), 0
        for stored in await self.store.read_stream(stream_of(worker_id)):
            envelope, data = parse(stored.envelope)
            case, version = evolve(case, data, envelope.recorded_at), version + 1
        return case, version

    async def wait_for_facts(self, sources: Sequence[str]) -> None:
        """Decide only on projections that have caught up with their sources' events."""
        for projection, topics in (("cases", ("enrolment",)), ("budgets", ("billing",))):
            if set(topics) & set(sources):
                await wait_until_caught_up(
                    self.pool, self.schema, projection, self.kafka, topics, watcher=self.offsets
                )

    async def execute(self, command: Command, context: CommandContext) -> AppendResult:
        await self.wait_for_facts(
            ("enrolment", "billing") if isinstance(command, Designate) else ("enrolment",)
        )
        facts = await self.facts(command.worker_id)
        case, version = await self.load(command.worker_id)
        async with self.pool.acquire() as conn, conn.transaction():
            standing = (
                await self._standing(conn, command) if isinstance(command, Designate) else None
            )
            events = to_new_events(
                decide(command, case, facts, self.book, standing), command.worker_id
            )
            result = await self.store.append_within(
                conn, stream_of(command.worker_id), version, events, context
            )
            if isinstance(command, Designate) and not result.duplicate:
                await conn.execute(
                    f"UPDATE {self.schema}.designation_counts SET designated = designated + 1, "
                    "committed = committed + $3 WHERE fiscal_year = $1 AND cohort = $2",
                    command.fiscal_year,
                    command.cohort,
                    designation_cost(command.cover_months, self.book, command.coverage_start),
                )
        return result

    async def _standing(self, conn: DbConnection, command: Designate) -> CohortStanding:
        await conn.execute(
            f"INSERT INTO {self.schema}.designation_counts (fiscal_year, cohort) VALUES ($1, $2) "
            "ON CONFLICT DO NOTHING",
            command.fiscal_year,
            command.cohort,
        )
        counts = await conn.fetchrow(
            f"SELECT designated, committed FROM {self.schema}.designation_counts "
            "WHERE fiscal_year = $1 AND cohort = $2 FOR UPDATE",
            command.fiscal_year,
            command.cohort,
        )
        allocated = await conn.fetchval(
            f"SELECT allocated FROM {self.schema}.budgets WHERE fiscal_year = $1 AND cohort = $2",
            command.fiscal_year,
            command.cohort,
        )
        quota = self.book.in_force(command.coverage_start).cohorts[command.cohort].default_quota
        assert counts is not None
        return CohortStanding(
            designated=counts["designated"],
            committed=counts["committed"],
            allocated=int(allocated or 0),
            quota=quota,
        )
