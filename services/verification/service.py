"""Verification's application service: the worker's facts from its projection, then the
platform's command handler with the case's rules; designations are serialised per cohort and
fiscal year so that the quota and the budget hold under concurrent requests."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from contract.events.registry import CATALOGUE
from contract.policy import PolicyBook
from services.verification.domain import (
    CaseRules,
    CohortStanding,
    Designate,
    Designation,
    DesignationRules,
    Facts,
    Reject,
    Verify,
    allot,
)
from services.verification.write_side import DesignationCounts
from shared.db import DbConnection
from shared.eventstore import EventStore
from shared.eventstore.handler import Answer, BatchItem, CommandHandler, Handled, Respond
from shared.eventstore.store import Answered, CommandContext, IdempotencyKeyReusedError
from shared.projection.freshness import ProducerOutboxes, wait_until_caught_up
from shared.scope import AreaScope, OutsideAreaError
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
        producers: ProducerOutboxes,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        schema: str = SERVICE,
    ) -> None:
        self.pool = pool
        self.schema = schema
        self.kafka = kafka
        self.producers = producers
        self.book = book
        self.clock = clock
        self.store = EventStore(pool, schema, SERVICE, clock=clock)
        self.inline = (DesignationCounts(book),)
        self.handler = CommandHandler(self.store, pool, CATALOGUE, self.inline)
        self.offsets = OffsetWatcher(kafka)

    async def facts(self, worker_id: uuid.UUID) -> Facts:
        found = (await self.facts_of([worker_id])).get(worker_id)
        if found is None:
            raise UnknownWorkerError.no_case(worker_id)
        return found

    async def wait_for_facts(self, sources: Sequence[str]) -> None:
        """Decide only on projections that have caught up with their sources' events."""
        for projection, topics in (("cases", ("enrolment",)), ("budgets", ("billing",))):
            if set(topics) & set(sources):
                await wait_until_caught_up(
                    self.pool,
                    self.schema,
                    projection,
                    self.kafka,
                    topics,
                    watcher=self.offsets,
                    producers=self.producers,
                )

    async def facts_of(self, worker_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Facts]:
        """``facts`` of many workers in one read: those with a case."""
        rows = await self.pool.fetch(
            f"SELECT * FROM {self.schema}.cases "
            "WHERE worker_id = any($1::uuid[]) AND kelurahan_code IS NOT NULL",
            list(worker_ids),
        )
        return {
            row["worker_id"]: Facts(
                row["worker_id"],
                row["kelurahan_code"],
                row["kecamatan_code"],
                row["birth_date"],
                row["corrected_at"],
                row["died_on"],
            )
            for row in rows
        }

    async def execute(self, command: Verify | Reject, context: CommandContext) -> Handled:
        await self.wait_for_facts(("enrolment",))
        rules = CaseRules(self.book, await self.facts(command.worker_id))
        return await self.handler.handle(
            stream_of(command.worker_id),
            rules,
            command,
            context,
            worker_id=command.worker_id,
            respond=_decided(command.worker_id),
        )

    async def designate(
        self,
        designations: Sequence[tuple[Designate, CommandContext]],
        scope: AreaScope,
        answer: Answer,
        key: str | None = None,
        fingerprint: str | None = None,
    ) -> Answered:
        """Designate workers in one transaction, in order, each on its own case: the quota and
        budget each one is decided against are what those before it left. ``answer`` is given
        each worker's outcome: what was done (the first answer for a key handled before) or
        the error that refused that worker alone: unknown (UnknownWorkerError), outside
        ``scope`` (OutsideAreaError), not at the city step or not eligible, beyond the quota or
        the budget (RefusedError). Under the request's ``key`` the whole answer is recorded: a
        retry gets it again, those refused included, and designates no one more. A key
        already used for another request refuses the whole list (IdempotencyKeyReusedError)."""
        if key is not None:
            answered = await self.store.find_answer(key, fingerprint)
            if answered is not None:
                return answered
        keys = {
            context.idempotency_key: context.fingerprint
            for _, context in designations
            if context.idempotency_key is not None
        }
        for first in (await self.store.find_commands(keys) if keys else {}).values():
            if isinstance(first, IdempotencyKeyReusedError):
                raise first
        await self.wait_for_facts(("enrolment", "billing"))
        facts = await self.facts_of([command.worker_id for command, _ in designations])
        answers: dict[int, Handled | Exception] = {}
        items: list[BatchItem[Designation]] = []
        positions: list[int] = []
        for position, (command, context) in enumerate(designations):
            found = facts.get(command.worker_id)
            if found is None:
                answers[position] = UnknownWorkerError.no_case(command.worker_id)
                continue
            try:
                scope.require(found.kelurahan_code, "designate this worker")
            except OutsideAreaError as outside:
                answers[position] = outside
                continue
            positions.append(position)
            items.append(
                BatchItem(
                    stream_of(command.worker_id),
                    Designation(command, found),
                    context,
                    command.worker_id,
                    respond=_decided(command.worker_id),
                )
            )

        def in_order(handled: list[Handled | Exception]) -> Any:
            outcomes = answers | dict(zip(positions, handled, strict=True))
            return answer([outcomes[position] for position in range(len(designations))])

        async def within_standing(conn: DbConnection, indices: list[int]) -> dict[int, Exception]:
            by_cohort: dict[tuple[int, str], list[int]] = {}
            for index in indices:
                command = items[index].command.command
                by_cohort.setdefault((command.fiscal_year, command.cohort), []).append(index)
            refused: dict[int, Exception] = {}
            for cohort in sorted(by_cohort):  # one lock order: no deadlock between batches
                members = by_cohort[cohort]
                commands = [items[index].command.command for index in members]
                standing = await self._standing(conn, commands[0])
                for index, refusal in zip(
                    members, allot(commands, standing, self.book), strict=True
                ):
                    if refusal is not None:
                        refused[index] = refusal
            return refused

        return await self.handler.handle_request(
            key, fingerprint, DesignationRules(self.book), items, in_order, within_standing
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
        # The batch's designations of a cohort share its coverage start, hence its quota.
        quota = self.book.in_force(command.coverage_start).cohorts[command.cohort].default_quota
        assert counts is not None
        return CohortStanding(
            designated=counts["designated"],
            committed=counts["committed"],
            allocated=int(allocated or 0),
            quota=quota,
        )


def _decided(worker_id: uuid.UUID) -> Respond:
    return lambda result: {
        "worker_id": str(worker_id),
        "stream_version": result.last_version,
        "already_decided": False,
    }
