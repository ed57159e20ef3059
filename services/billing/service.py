"""Billing's application service: budgets, monthly runs and payments, each a command through
the platform's handler (the budget's and the invoice's rules), and the budget report."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime

import asyncpg

from services.billing.budget import AllocateBudget, BudgetRules
from services.billing.invoicing import (
    CoverageLine,
    InvoiceLine,
    InvoiceRules,
    PayInvoice,
    RunBilling,
    decide_invoice,
    month_bounds,
)
from services.billing.write_side import Invoices
from shared.db import DbConnection
from shared.events.types import Premium
from shared.eventstore import AppendResult, EventStore
from shared.eventstore.handler import CommandHandler, Handled
from shared.eventstore.store import CommandContext
from shared.policy import PolicyBook
from shared.policy.membership import Standing, standing_on
from shared.projection.freshness import wait_until_caught_up
from shared.settings import KafkaSettings
from shared.topic_reader import OffsetWatcher

SERVICE = "billing"


class BillingService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        kafka: KafkaSettings,
        book: PolicyBook,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        new_id: Callable[[], uuid.UUID] = uuid.uuid4,
        schema: str = SERVICE,
    ) -> None:
        self.pool = pool
        self.kafka = kafka
        self.new_id = new_id
        self.offsets = OffsetWatcher(kafka)
        self.schema = schema
        self.book = book
        self.clock = clock
        self.store = EventStore(pool, schema, SERVICE, clock=clock)
        self.handler = CommandHandler(self.store, pool, (Invoices(),))
        self.budgets = BudgetRules(book)
        self.invoices = InvoiceRules()

    async def allocate(self, command: AllocateBudget, context: CommandContext) -> Handled:
        # All allocations of a year form one stream, in the order the city made them.
        return await self.handler.handle(
            f"budget-{command.fiscal_year}",
            self.budgets,
            command,
            context,
            respond=lambda result: {
                "stream_id": result.stream_id,
                "stream_version": result.last_version,
            },
        )

    async def run_billing(self, period: str, context: CommandContext) -> Handled:
        """Invoice every worker covered on any day of ``period`` and not invoiced for it yet;
        ``response`` is the InvoiceIssued."""
        await wait_until_caught_up(
            self.pool, self.schema, "coverages", self.kafka, ["enrolment"], watcher=self.offsets
        )
        first, last = month_bounds(period)
        invoice_id = self.new_id()
        runs: list[RunBilling] = []

        async def with_lines(conn: DbConnection) -> RunBilling:
            # One run at a time per period: the check for existing lines then holds.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"billing:{period}")
            rows = await conn.fetch(
                f"SELECT c.* FROM {self.schema}.coverages c WHERE c.start_date <= $2 "
                "AND coalesce(c.ended_on, c.end_date) >= $1 AND NOT EXISTS (SELECT 1 FROM "
                f"{self.schema}.invoice_lines l WHERE l.worker_id = c.worker_id AND l.period = $3) "
                "ORDER BY c.worker_id",
                first,
                last,
                period,
            )
            supplementary = bool(
                await conn.fetchval(
                    f"SELECT 1 FROM {self.schema}.invoices WHERE period = $1 LIMIT 1", period
                )
            )
            lines = tuple(
                CoverageLine(
                    r["worker_id"],
                    r["coverage_id"],
                    r["cohort"],
                    r["fiscal_year"],
                    Premium(total=r["monthly_premium"], jkk=r["premium_jkk"], jkm=r["premium_jkm"]),
                )
                for r in rows
            )
            policy = self.book.in_force(first).version
            runs[:] = [RunBilling(invoice_id, period, lines, supplementary, self.clock(), policy)]
            return runs[0]

        def issued(_: AppendResult) -> object:
            run = runs[0]
            invoice = decide_invoice(invoice_id, period, list(run.lines), run.supplementary)[1]
            return invoice.model_dump(mode="json")

        return await self.handler.handle(
            f"invoice-{invoice_id}",
            self.invoices,
            with_lines,
            context,
            respond=issued,
        )

    async def pay(
        self,
        invoice_id: uuid.UUID,
        payment_ref: str,
        paid_on: date,
        amount: int,
        payer: str,
        context: CommandContext,
    ) -> Handled:
        """Record the city's payment of an invoice: PremiumPaid for each worker-month on it."""

        async def with_invoice(conn: DbConnection) -> PayInvoice:
            invoice = await conn.fetchrow(
                f"SELECT paid_on FROM {self.schema}.invoices WHERE invoice_id = $1 FOR UPDATE",
                invoice_id,
            )
            used = await conn.fetchval(
                f"SELECT 1 FROM {self.schema}.invoices WHERE payment_ref = $1", payment_ref
            )
            rows = await conn.fetch(
                f"SELECT * FROM {self.schema}.invoice_lines WHERE invoice_id = $1", invoice_id
            )
            lines = tuple(
                InvoiceLine(
                    r["worker_id"],
                    r["period"],
                    r["cohort"],
                    r["fiscal_year"],
                    Premium(total=r["total"], jkk=r["jkk"], jkm=r["jkm"]),
                )
                for r in rows
            )
            already_paid = bool(invoice and invoice["paid_on"])
            at = self.clock()
            return PayInvoice(
                invoice_id, payment_ref, paid_on, amount, payer, at, lines, already_paid, bool(used)
            )

        return await self.handler.handle(
            f"invoice-{invoice_id}",
            self.invoices,
            with_invoice,
            context,
            respond=lambda result: {
                "invoice_id": str(invoice_id),
                "worker_months_paid": len(result.event_ids),
            },
        )

    async def standing(self, worker_id: uuid.UUID, on: date) -> Standing:
        covered = await self.pool.fetch(
            f"SELECT start_date, coalesce(ended_on, end_date) AS last FROM {self.schema}.coverages "
            "WHERE worker_id = $1",
            worker_id,
        )
        paid = await self.pool.fetch(
            f"SELECT period FROM {self.schema}.premiums "
            "WHERE worker_id = $1 AND paid_on IS NOT NULL",
            worker_id,
        )
        grace = self.book.in_force(on).grace_months
        return standing_on(
            on, [(r["start_date"], r["last"]) for r in covered], [r["period"] for r in paid], grace
        )

    async def budget_report(self, fiscal_year: int) -> list[dict[str, object]]:
        """Per cohort: allocated, committed (covered worker-months x premium), invoiced, paid,
        and what remains of the allocation after the commitments."""
        # A report reflects every event already on the topics, not a lagging projection.
        for projection, source in (
            ("allocations", "billing"),
            ("premiums", "billing"),
            ("coverages", "enrolment"),
        ):
            await wait_until_caught_up(
                self.pool, self.schema, projection, self.kafka, [source], watcher=self.offsets
            )
        rows = await self.pool.fetch(
            f"""
            WITH allocated AS (
                SELECT cohort, sum(allocated) AS allocated FROM {self.schema}.allocations
                WHERE fiscal_year = $1 GROUP BY cohort
            ), committed AS (
                SELECT cohort, sum(monthly_premium * (
                    (extract(year FROM coalesce(ended_on, end_date)) * 12
                     + extract(month FROM coalesce(ended_on, end_date)))
                    - (extract(year FROM start_date) * 12 + extract(month FROM start_date)) + 1
                ))::bigint AS committed
                FROM {self.schema}.coverages WHERE fiscal_year = $1 GROUP BY cohort
            )
            , premiums AS (
                SELECT cohort, sum(amount)::bigint AS invoiced,
                       (sum(amount) FILTER (WHERE paid_on IS NOT NULL))::bigint AS paid
                FROM {self.schema}.premiums WHERE fiscal_year = $1 GROUP BY cohort
            )
            SELECT cohort, coalesce(a.allocated, 0)::bigint AS allocated,
                   coalesce(c.committed, 0)::bigint AS committed,
                   coalesce(p.invoiced, 0)::bigint AS invoiced,
                   coalesce(p.paid, 0)::bigint AS paid
            FROM allocated a FULL JOIN committed c USING (cohort)
            FULL JOIN premiums p USING (cohort) ORDER BY cohort
            """,
            fiscal_year,
        )
        return [
            {
                "cohort": r["cohort"],
                "allocated": r["allocated"],
                "committed": r["committed"],
                "invoiced": r["invoiced"],
                "paid": r["paid"],
                "remaining": r["allocated"] - r["committed"],
                "over_committed": r["committed"] > r["allocated"],
            }
            for r in rows
        ]
