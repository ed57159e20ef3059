"""Billing's write side: invoices and their lines, kept from its own events. One line per
worker and month, ever, so a second run cannot invoice a month twice; a payment settles its
invoice once, under a reference used once. A month is known to be run from its invoices, or
from ``months_run`` when its run found nobody to invoice (NothingInvoiced; stores written
before that event know their run months from their invoices alone)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from contract.events.billing import (
    InvoiceIssued,
    NothingInvoiced,
    PremiumCancelled,
    PremiumInvoiced,
    PremiumPaid,
)
from shared.db import DbConnection
from shared.eventstore.inline import Appended
from shared.eventstore.migrations import Migration
from shared.projection.changes import Increment, RowChange, Update, Upsert

WRITE_MODEL = (
    Migration(
        "invoices",
        """
        CREATE TABLE {schema}.invoices (
            invoice_id    uuid PRIMARY KEY,
            period        text NOT NULL,
            supplementary boolean NOT NULL,
            total         bigint NOT NULL,
            lines         integer NOT NULL,
            issued_at     timestamptz NOT NULL,
            paid_on       date,
            payment_ref   text UNIQUE
        );
        -- One line per worker and month, ever: a second run cannot invoice a month twice.
        CREATE TABLE {schema}.invoice_lines (
            invoice_id  uuid NOT NULL REFERENCES {schema}.invoices,
            worker_id   uuid NOT NULL,
            period      text NOT NULL,
            coverage_id uuid NOT NULL,
            cohort      text NOT NULL,
            fiscal_year integer NOT NULL,
            total       integer NOT NULL,
            jkk         integer NOT NULL,
            jkm         integer NOT NULL,
            UNIQUE (worker_id, period)
        );
        CREATE INDEX ON {schema}.invoice_lines (invoice_id);
        """,
    ),
    Migration(
        "invoice_lines_checked_at_commit",
        """
        -- Runs recorded before the invoice came first in the store have their lines ahead of
        -- the invoice: a replay in store order checks the reference when it commits.
        ALTER TABLE {schema}.invoice_lines ALTER CONSTRAINT invoice_lines_invoice_id_fkey
            DEFERRABLE INITIALLY DEFERRED;
        """,
    ),
    Migration(
        "invoice_lines_cancelled",
        """
        -- A line for a month its coverage no longer includes (ended earlier): never paid;
        -- what was taken off an unpaid invoice's total.
        ALTER TABLE {schema}.invoice_lines ADD COLUMN cancelled boolean NOT NULL DEFAULT false;
        CREATE TABLE {schema}.invoice_cancellations (
            invoice_id uuid PRIMARY KEY,
            cancelled  bigint NOT NULL
        );
        """,
    ),
    Migration(
        "months_run",
        """
        -- A month whose run found nobody to invoice: run all the same (see NothingInvoiced).
        CREATE TABLE {schema}.months_run (
            period text PRIMARY KEY,
            run_at timestamptz NOT NULL
        );
        """,
    ),
)

# The months run, as the run and the catch-up of coverage read after it ask under the
# month's lock: an invoice for the month, or a run that found nobody to invoice.
MONTH_RUN = (
    "(EXISTS (SELECT 1 FROM {schema}.invoices i WHERE i.period = {period}) "
    "OR EXISTS (SELECT 1 FROM {schema}.months_run m WHERE m.period = {period}))"
)


@dataclass(frozen=True)
class Invoices:
    event_types: frozenset[str] = frozenset(
        {"InvoiceIssued", "NothingInvoiced", "PremiumInvoiced", "PremiumPaid", "PremiumCancelled"}
    )

    def apply(self, event: Appended) -> list[RowChange]:
        data = event.data
        if isinstance(data, InvoiceIssued):
            values = {
                "period": data.period,
                "supplementary": data.supplementary,
                "total": data.total,
                "lines": data.lines,
                "issued_at": event.envelope.occurred_at,
            }
            return [Upsert("invoices", {"invoice_id": data.invoice_id}, values)]
        if isinstance(data, NothingInvoiced):
            run = {"run_at": event.envelope.occurred_at}
            return [Upsert("months_run", {"period": data.period}, run)]
        if isinstance(data, PremiumInvoiced):
            line = {
                "invoice_id": data.invoice_id,
                "coverage_id": data.coverage_id,
                "cohort": data.cohort,
                "fiscal_year": data.fiscal_year,
                "total": data.amount.total,
                "jkk": data.amount.jkk,
                "jkm": data.amount.jkm,
            }
            key = {"worker_id": data.worker_id, "period": data.period}
            return [Upsert("invoice_lines", key, line)]
        if isinstance(data, PremiumCancelled):
            key = {"worker_id": data.worker_id, "period": data.period}
            changes: list[RowChange] = [Update("invoice_lines", key, {"cancelled": True})]
            if not data.refund_due:
                invoice = {"invoice_id": data.invoice_id}
                cancelled = {"cancelled": data.amount.total}
                changes.append(Increment("invoice_cancellations", invoice, cancelled))
            return changes
        assert isinstance(data, PremiumPaid)
        settled = {"paid_on": data.paid_on, "payment_ref": data.payment_ref}
        return [Update("invoices", {"invoice_id": data.invoice_id}, settled)]

    async def changes(self, conn: DbConnection, events: Sequence[Appended]) -> Sequence[RowChange]:
        return [change for event in events for change in self.apply(event)]

    async def restored(self, conn: DbConnection) -> None:
        return None
