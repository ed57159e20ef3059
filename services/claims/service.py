"""Claims' application service: file and decide at once, wait on arrears, pay.

A claim filed while the worker's premiums were in arrears (grace) waits; when billing records a
payment for that worker, ``reconsider`` decides the waiting claims again in the transaction
that consumes the payment, so the heir never files twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import orjson

from services.claims.benefits import Child
from services.claims.domain import (
    Approved,
    Claim,
    Death,
    Decision,
    Facts,
    Pending,
    Rejected,
    decide_claim,
    malformed,
)
from shared.db import DbConnection
from shared.decisions import RefusedError
from shared.events.claims import (
    BenefitItem,
    ChildPersonal,
    ChildrenPersonal,
    ClaimantPersonal,
    ClaimApproved,
    ClaimFiled,
    ClaimPaid,
    ClaimRejected,
)
from shared.events.personal import KeyStore, seal
from shared.eventstore import EventStore, NewEvent
from shared.eventstore.migrations import Migration
from shared.eventstore.store import CommandContext
from shared.policy import PolicyBook
from shared.policy.eligibility import Problem
from shared.policy.membership import standing_on
from shared.projection.freshness import wait_until_caught_up
from shared.settings import KafkaSettings
from shared.topic_reader import OffsetWatcher

SERVICE = "claims"

WRITE_MODEL = (
    Migration(
        "worker_claims",
        """
        -- Every claim with what deciding it again needs (no personal data), and its outcome.
        CREATE TABLE {schema}.worker_claims (
            claim_id   uuid PRIMARY KEY,
            worker_id  uuid NOT NULL,
            claim      jsonb NOT NULL,
            status     text NOT NULL,     -- pending, approved, rejected, paid
            total      bigint,
            death_date date,
            benefit    text NOT NULL
        );
        CREATE INDEX ON {schema}.worker_claims (worker_id, status);
        """,
    ),
)


def claim_to_json(claim: Claim) -> str:
    return orjson.dumps(asdict(claim), default=str).decode()


def claim_from_json(raw: str) -> Claim:
    data: dict[str, Any] = orjson.loads(raw)
    children = tuple(
        Child(c["ref"], date.fromisoformat(c["birth_date"]), c["school_level"])
        for c in data.pop("children")
    )
    return Claim(
        **{
            **data,
            "claim_id": uuid.UUID(data["claim_id"]),
            "worker_id": uuid.UUID(data["worker_id"]),
            "incident_date": date.fromisoformat(data["incident_date"]),
            "filed_on": date.fromisoformat(data["filed_on"]),
            "children": children,
        }
    )


class ClaimsService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        kafka: KafkaSettings,
        keys: KeyStore,
        book: PolicyBook,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        schema: str = SERVICE,
    ) -> None:
        self.pool = pool
        self.kafka = kafka
        self.keys = keys
        self.book = book
        self.clock = clock
        self.schema = schema
        self.store = EventStore(pool, schema, SERVICE, clock=clock)
        self.offsets = OffsetWatcher(kafka)

    async def facts(self, conn: DbConnection, claim: Claim) -> Facts:
        covered = await conn.fetch(
            f"SELECT start_date, coalesce(ended_on, end_date) AS last FROM {self.schema}.coverages "
            "WHERE worker_id = $1",
            claim.worker_id,
        )
        paid = [
            r["period"]
            for r in await conn.fetch(
                f"SELECT period FROM {self.schema}.paid_months WHERE worker_id = $1",
                claim.worker_id,
            )
        ]
        death = await conn.fetchrow(
            f"SELECT benefit, death_date FROM {self.schema}.worker_claims WHERE worker_id = $1 "
            "AND death_date IS NOT NULL AND status IN ('approved', 'paid') AND claim_id <> $2",
            claim.worker_id,
            claim.claim_id,
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
            death=Death(death["benefit"], death["death_date"]) if death else None,
        )

    async def file(
        self,
        claim: Claim,
        claimant: ClaimantPersonal,
        children: list[ChildPersonal],
        documents: list[str],
        context: CommandContext,
    ) -> Decision:
        problems = malformed(claim)
        if problems:
            raise RefusedError(problems)
        for projection, source in (("coverages", "enrolment"), ("paid_months", "billing")):
            await wait_until_caught_up(
                self.pool, self.schema, projection, self.kafka, [source], watcher=self.offsets
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
            documents=documents,
            accident_benefit=claim.accident_benefit,
            months_incapacitated=claim.months_incapacitated,
            medical_costs=claim.medical_costs,
        )
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", str(claim.worker_id))
            decision = decide_claim(claim, await self.facts(conn, claim), self.book)
            at = self.clock()
            events = [
                NewEvent("ClaimFiled", filed.model_dump(mode="json"), at, worker_id=claim.worker_id)
            ]
            events += self._decision_events(claim, decision, at)
            await self.store.append_within(conn, f"claim-{claim.claim_id}", 0, events, context)
            await conn.execute(
                f"INSERT INTO {self.schema}.worker_claims VALUES ($1, $2, $3, $4, $5, $6, $7)",
                claim.claim_id,
                claim.worker_id,
                claim_to_json(claim),
                _status(decision),
                decision.total if isinstance(decision, Approved) else None,
                decision.death_date if isinstance(decision, Approved) else None,
                claim.benefit,
            )
        return decision

    async def reconsider(self, conn: DbConnection, worker_id: uuid.UUID) -> list[Decision]:
        """Decide again the worker's claims that wait on arrears (after a payment)."""
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", str(worker_id))
        rows = await conn.fetch(
            f"SELECT claim FROM {self.schema}.worker_claims WHERE worker_id = $1 "
            "AND status = 'pending'",
            worker_id,
        )
        decisions: list[Decision] = []
        for row in rows:
            claim = claim_from_json(row["claim"])
            decision = decide_claim(claim, await self.facts(conn, claim), self.book)
            if isinstance(decision, Pending):
                continue
            events = self._decision_events(claim, decision, self.clock())
            context = CommandContext("system", "system", uuid.uuid4())
            await self.store.append_within(conn, f"claim-{claim.claim_id}", 1, events, context)
            await conn.execute(
                f"UPDATE {self.schema}.worker_claims SET status = $2, total = $3, death_date = $4 "
                "WHERE claim_id = $1",
                claim.claim_id,
                _status(decision),
                decision.total if isinstance(decision, Approved) else None,
                decision.death_date if isinstance(decision, Approved) else None,
            )
            decisions.append(decision)
        return decisions

    async def pay(
        self,
        claim_id: uuid.UUID,
        payment_ref: str,
        paid_on: date,
        amount: int,
        context: CommandContext,
    ) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"SELECT worker_id, status, total FROM {self.schema}.worker_claims "
                "WHERE claim_id = $1 FOR UPDATE",
                claim_id,
            )
            if row is None:
                raise RefusedError([Problem("claim_id", "no such claim")], conflict=True)
            if row["status"] != "approved":
                raise RefusedError(
                    [Problem("claim_id", f"the claim is {row['status']}, not approved")],
                    conflict=True,
                )
            if amount != row["total"]:
                raise RefusedError(
                    [
                        Problem(
                            "amount", f"Rp{amount:,} differs from the approved Rp{row['total']:,}"
                        )
                    ]
                )
            paid = ClaimPaid(
                claim_id=claim_id,
                worker_id=row["worker_id"],
                amount=amount,
                payment_ref=payment_ref,
                paid_on=paid_on,
            )
            event = NewEvent(
                "ClaimPaid", paid.model_dump(mode="json"), self.clock(), worker_id=row["worker_id"]
            )
            await self.store.append_within(conn, f"claim-{claim_id}", None, [event], context)
            await conn.execute(
                f"UPDATE {self.schema}.worker_claims SET status = 'paid' WHERE claim_id = $1",
                claim_id,
            )

    def _decision_events(self, claim: Claim, decision: Decision, at: datetime) -> list[NewEvent]:
        if isinstance(decision, Approved):
            data: ClaimApproved | ClaimRejected = ClaimApproved(
                claim_id=claim.claim_id,
                worker_id=claim.worker_id,
                items=[
                    BenefitItem(code=i.code, amount=i.amount, description=i.description)
                    for i in decision.items
                ],
                total=decision.total,
                death_date=decision.death_date,
                policy_note=decision.note,
            )
            kind = "ClaimApproved"
        elif isinstance(decision, Rejected):
            data = ClaimRejected(
                claim_id=claim.claim_id,
                worker_id=claim.worker_id,
                reasons=list(decision.reasons),
                policy_note=decision.note,
            )
            kind = "ClaimRejected"
        else:
            return []
        return [
            NewEvent(
                kind,
                data.model_dump(mode="json"),
                at,
                worker_id=claim.worker_id,
                policy_version=decision.policy_version,
            )
        ]


def _status(decision: Decision) -> str:
    if isinstance(decision, Approved):
        return "approved"
    return "rejected" if isinstance(decision, Rejected) else "pending"
