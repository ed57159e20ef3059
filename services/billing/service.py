"""Billing's application service: budgets, monthly runs and payments, each a command through
the platform's handler (the budget's and the invoice's rules), and the budget report."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime

import asyncpg

from contract.events.registry import CATALOGUE
from contract.events.types import Premium
from contract.policy import PolicyBook
from services.billing.budget import AllocateBudget, BudgetRules
from services.billing.invoicing import (
    CoverageLine,
    InvoiceLine,
    InvoiceRules,
    PayInvoice,
    RunBilling,
    decide_invoice,
    month_bounds,
    nothing_left,
)
from services.billing.write_side import MONTH_RUN, Invoices
from shared.db import DbConnection
from shared.eventstore import AppendResult, EventStore
from shared.eventstore.handler import CommandHandler, Handled
from shared.eventstore.store import CommandContext
from shared.projection.freshness import ProducerOutboxes, wait_until_caught_up
from shared.settings import KafkaSettings
from shared.topic_reader import OffsetWatcher

SERVICE = "billing"


class BillingService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        kafka: KafkaSettings,
        book: PolicyBook,
        producers: ProducerOutboxes,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        new_id: Callable[[], uuid.UUID] = uuid.uuid4,
        schema: str = SERVICE,
    ) -> None:
        self.pool = pool
        self.kafka = kafka
        self.producers = producers
        self.new_id = new_id
        self.offsets = OffsetWatcher(kafka)
        self.schema = schema
        self.book = book
        self.clock = clock
        self.store = EventStore(pool, schema, SERVICE, clock=clock)
        self.handler = CommandHandler(self.store, pool, CATALOGUE, (Invoices(),))
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
        ``response`` is the InvoiceIssued. Nobody to invoice is refused, though a month's first
        run records NothingInvoiced before the refusal: the month is run."""
        await wait_until_caught_up(
            self.pool,
            self.schema,
            "coverages",
            self.kafka,
            ["enrolment"],
            watcher=self.offsets,
            producers=self.producers,
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
            run_before = MONTH_RUN.format(schema=self.schema, period="$1")
            supplementary = bool(await conn.fetchval(f"SELECT {run_before}", period))
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
            if not run.lines:
                return None  # NothingInvoiced: answered, then and on a retry, by the refusal
            invoice = decide_invoice(invoice_id, period, list(run.lines), run.supplementary)[1]
            return invoice.model_dump(mode="json")

        handled = await self.handler.handle(
            f"invoice-{invoice_id}",
            self.invoices,
            with_lines,
            context,
            respond=issued,
        )
        if handled.response is None:
            raise nothing_left(period)
        return handled

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
                f"SELECT * FROM {self.schema}.invoice_lines WHERE invoice_id = $1 "
                "AND NOT cancelled",
                invoice_id,
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
