"""Verification's application service: the worker's facts from its projection, then the
platform's command handler with the case's rules; designations are serialised per cohort and
fiscal year so that the quota and the budget hold under concurrent requests."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

import asyncpg

from services.verification.domain import (
    CaseRules,
    CohortStanding,
    Command,
    Designate,
    Facts,
)
from services.verification.write_side import DesignationCounts
from shared.db import DbConnection
from shared.eventstore import EventStore
from shared.eventstore.handler import CommandHandler, Handled
from shared.eventstore.store import CommandContext
from shared.policy import PolicyBook
from shared.projection.freshness import wait_until_caught_up
from shared.settings import KafkaSettings
from shared.topic_reader import OffsetWatcher

SERVICE = "verification"

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
    @classmethod
    def no_case(cls, worker_id: uuid.UUID) -> UnknownWorkerError:
        """What a caller gets for a worker without a case, or with one out of their reach."""
        return cls(f"no case for worker {worker_id}: not registered (yet)")


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
        self.inline = (DesignationCounts(book),)
        self.handler = CommandHandler(self.store, pool, self.inline)
        self.offsets = OffsetWatcher(kafka)

    async def facts(self, worker_id: uuid.UUID) -> Facts:
        row = await self.pool.fetchrow(
            f"SELECT * FROM {self.schema}.cases "
            "WHERE worker_id = $1 AND kelurahan_code IS NOT NULL",
            worker_id,
        )
        if row is None:
            raise UnknownWorkerError.no_case(worker_id)
        return Facts(
            worker_id,
            row["kelurahan_code"],
            row["kecamatan_code"],
            row["birth_date"],
            row["corrected_at"],
            row["died_on"],
        )

    async def wait_for_facts(self, sources: Sequence[str]) -> None:
        """Decide only on projections that have caught up with their sources' events."""
        for projection, topics in (("cases", ("enrolment",)), ("budgets", ("billing",))):
            if set(topics) & set(sources):
                await wait_until_caught_up(
                    self.pool, self.schema, projection, self.kafka, topics, watcher=self.offsets
                )

    async def execute(self, command: Command, context: CommandContext) -> Handled:
        await self.wait_for_facts(
            ("enrolment", "billing") if isinstance(command, Designate) else ("enrolment",)
        )
        rules = CaseRules(self.book, await self.facts(command.worker_id))

        async def with_standing(conn: DbConnection) -> Command:
            if isinstance(command, Designate):
                return replace(command, standing=await self._standing(conn, command))
            return command

        return await self.handler.handle(
            stream_of(command.worker_id),
            rules,
            with_standing,
            context,
            worker_id=command.worker_id,
            respond=lambda result: {
                "worker_id": str(command.worker_id),
                "stream_version": result.last_version,
                "already_decided": False,
            },
        )

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
