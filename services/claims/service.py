"""Claims' application service: file and decide at once, wait on arrears, pay.

A claim filed while the worker's premiums were in arrears (grace) waits; when billing records a
payment for that worker, ``services.claims.reactions`` decides the waiting claims again in the
transaction that consumes the payment, so the heir never files twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import asyncpg

from contract.events.claims import (
    ChildPersonal,
    ChildrenPersonal,
    ClaimantPersonal,
    ClaimDocuments,
    ClaimFiled,
)
from contract.events.registry import CATALOGUE, parse
from contract.policy import PolicyBook
from contract.policy.membership import standing_on
from services.claims.benefits import Child
from services.claims.domain import (
    Approved,
    ApproveInstalment,
    Claim,
    ClaimRules,
    Decision,
    Facts,
    FileClaim,
    PayClaim,
    Rejected,
    WorkerClaims,
    benefit_item,
    claim_filed,
    decide_claim,
    evolve_worker_claims,
    malformed,
)
from services.claims.write_side import ClaimRegistry
from shared.business_calendar import business_day
from shared.db import DbConnection
from shared.decisions import Recorded, RefusedError
from shared.eventstore import EventStore
from shared.eventstore.handler import CommandHandler, Handled
from shared.eventstore.store import CommandContext
from shared.keystore import KeyStore
from shared.projection.freshness import ProducerOutboxes, wait_until_caught_up
from shared.sealing import open_sealed, seal
from shared.settings import KafkaSettings
from shared.topic_reader import OffsetWatcher

SERVICE = "claims"


class ClaimsService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        kafka: KafkaSettings,
        keys: KeyStore,
        book: PolicyBook,
        producers: ProducerOutboxes,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        schema: str = SERVICE,
    ) -> None:
        self.pool = pool
        self.kafka = kafka
        self.producers = producers
        self.keys = keys
        self.book = book
        self.clock = clock
        self.schema = schema
        self.store = EventStore(pool, schema, SERVICE, clock=clock)
        self.inline = (ClaimRegistry(),)
        self.handler = CommandHandler(self.store, pool, CATALOGUE, self.inline)
        self.rules = ClaimRules(book)
        self.offsets = OffsetWatcher(kafka)

    async def facts(self, conn: DbConnection, claim: Claim, as_of: datetime | None = None) -> Facts:
        """The worker's facts as read, or only those recorded by ``as_of`` (the envelopes'
        recorded_at): what a rejection revised could have been decided on. A row kept before
        its projection recorded when (not yet rebuilt) counts as known all along."""
        known = "({column} IS NULL OR $2::timestamptz IS NULL OR {column} <= $2)"
        covered = await conn.fetch(
            f"SELECT start_date, CASE WHEN {known.format(column='ended_recorded_at')} "
            f"THEN coalesce(ended_on, end_date) ELSE end_date END AS last "
            f"FROM {self.schema}.coverages "
            f"WHERE worker_id = $1 AND {known.format(column='recorded_at')}",
            claim.worker_id,
            as_of,
        )
        paid = [
            r["period"]
            for r in await conn.fetch(
                f"SELECT period FROM {self.schema}.paid_months "
                f"WHERE worker_id = $1 AND {known.format(column='recorded_at')}",
                claim.worker_id,
                as_of,
            )
        ]
        worker_claims = WorkerClaims()
        for stored in await self.store.read_about(
            claim.worker_id, ("ClaimFiled", "ClaimApproved"), conn
        ):
            envelope, data = parse(stored.envelope)
            if as_of is None or envelope.recorded_at <= as_of:
                worker_claims = evolve_worker_claims(
                    worker_claims, Recorded(data, envelope.recorded_at)
                )
        policy = self.book.governing(claim.incident_date)
        standing = standing_on(
            claim.incident_date,
            [(r["start_date"], r["last"]) for r in covered],
            paid,
            policy.grace_months,
        )
        return Facts(
            status=standing.status,
            paid_months=len(paid),
            arrears=standing.arrears,
            death=worker_claims.death_other_than(claim.claim_id),
        )

    async def claim_as_filed(self, conn: DbConnection, claim_id: uuid.UUID) -> Claim:
        """The claim as its stream's filing tells it, with the children's details opened (none
        once the worker is erased), to be decided again."""
        first, *_ = await self.store.read_stream(stream_of(claim_id), conn)
        envelope, filed = parse(first.envelope)
        assert isinstance(filed, ClaimFiled)  # every claim's stream begins with its filing
        children: tuple[Child, ...] = ()
        if filed.children is not None:
            key = await self.keys.get(filed.children.key_id, conn)
            opened = open_sealed(filed.children, key, ChildrenPersonal)
            if isinstance(opened, ChildrenPersonal):
                children = tuple(
                    Child(f"child-{n}", c.birth_date, c.school_level)
                    for n, c in enumerate(opened.children, start=1)
                )
        return claim_filed(filed, business_day(envelope.occurred_at), children)

    async def file(
        self,
        claim: Claim,
        claimant: ClaimantPersonal,
        children: list[ChildPersonal],
        documents: list[str],
        context: CommandContext,
    ) -> Handled:
        """File a claim and decide it at once; ``response`` is the answer (``claim_answer``)."""
        problems = malformed(claim)
        if problems:
            raise RefusedError(problems)
        for projection, source in (("coverages", "enrolment"), ("paid_months", "billing")):
            await wait_until_caught_up(
                self.pool,
                self.schema,
                projection,
                self.kafka,
                [source],
                watcher=self.offsets,
                producers=self.producers,
            )
        key_id, key = await self.keys.get_or_create(claim.worker_id)
        filed = ClaimFiled(
            claim_id=claim.claim_id,
            worker_id=claim.worker_id,
            benefit=claim.benefit,
            kind=claim.kind,
            incident_date=claim.incident_date,
            claimant=seal(claimant, key_id, key),
            children=seal(ChildrenPersonal(children=children), key_id, key) if children else None,
            sealed_documents=(
                seal(ClaimDocuments(titles=documents), key_id, key) if documents else None
            ),
            accident_benefit=claim.accident_benefit,
            months_incapacitated=claim.months_incapacitated,
            medical_costs=claim.medical_costs,
        )
        decided: list[Decision] = []

        async def with_facts(conn: DbConnection) -> FileClaim:
            # One decision at a time per worker: the duplicate-death rule then holds.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", str(claim.worker_id))
            facts = await self.facts(conn, claim)
            decided[:] = [decide_claim(claim, facts, self.book)]
            return FileClaim(claim, filed, facts, self.clock())

        return await self.handler.handle(
            stream_of(claim.claim_id),
            self.rules,
            with_facts,
            context,
            worker_id=claim.worker_id,
            respond=lambda _: claim_answer(claim.claim_id, decided[0]),
        )

    async def approve_instalment(
        self,
        claim_id: uuid.UUID,
        child: str,
        school_year: str,
        married: bool,
        working: bool,
        context: CommandContext,
    ) -> Handled:
        """A later school year of a scholarship award, once it has begun; then paid as any
        approval (``pay`` with its amount)."""
        now = self.clock()
        command = ApproveInstalment(
            claim_id, child, school_year, business_day(now), married, working, now
        )
        return await self.handler.handle(
            stream_of(claim_id),
            self.rules,
            command,
            context,
            respond=lambda _: {
                "claim_id": str(claim_id),
                "status": "approved",
                "child": child,
                "school_year": school_year,
            },
        )

    async def pay(
        self,
        claim_id: uuid.UUID,
        payment_ref: str,
        paid_on: date,
        amount: int,
        context: CommandContext,
    ) -> Handled:
        """Record the payment of an approved claim, decided on the claim's own stream."""

        command = PayClaim(claim_id, payment_ref, paid_on, amount, self.clock())
        return await self.handler.handle(
            stream_of(claim_id),
            self.rules,
            command,
            context,
            respond=lambda _: {"claim_id": str(claim_id), "status": "paid"},
        )


def stream_of(claim_id: uuid.UUID) -> str:
    return f"claim-{claim_id}"


def claim_answer(claim_id: uuid.UUID, decision: Decision) -> dict[str, Any]:
    """What filing a claim answers: its decision in plain words."""
    answer: dict[str, Any] = {"claim_id": str(claim_id)}
    if isinstance(decision, Approved):
        return answer | {
            "status": "approved",
            "items": [benefit_item(i).model_dump(mode="json") for i in decision.items],
            "total": decision.total,
            "open_instalments": [
                benefit_item(i).model_dump(mode="json") for i in decision.open_instalments
            ],
            "explanation": decision.note,
        }
    if isinstance(decision, Rejected):
        return answer | {
            "status": "rejected",
            "reasons": list(decision.reasons),
            "explanation": decision.note,
        }
    return answer | {"status": "pending", "explanation": decision.note}
