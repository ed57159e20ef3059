"""Billing's write side after a restore of its store: invoices, their lines and payments."""

from __future__ import annotations

from services.billing.service import BillingService
from shared.db import DbConnection


async def rebuild_write_model(service: BillingService, conn: DbConnection) -> int:
    """Invoices from InvoiceIssued, their lines from PremiumInvoiced, paid from PremiumPaid.
    Returns the number of invoices."""
    schema = service.schema
    await conn.execute(
        f"INSERT INTO {schema}.invoices (invoice_id, period, supplementary, total, lines, "
        "issued_at) SELECT (d ->> 'invoice_id')::uuid, d ->> 'period', "
        "(d ->> 'supplementary')::boolean, (d ->> 'total')::bigint, (d ->> 'lines')::integer, "
        "issued_at FROM (SELECT body::jsonb -> 'data' AS d, "
        f"(body::jsonb ->> 'occurred_at')::timestamptz AS issued_at FROM {schema}.events "
        "WHERE event_type = 'InvoiceIssued') issued"
    )
    await conn.execute(
        f"INSERT INTO {schema}.invoice_lines SELECT (d ->> 'invoice_id')::uuid, "
        "(d ->> 'worker_id')::uuid, d ->> 'period', (d ->> 'coverage_id')::uuid, d ->> 'cohort', "
        "(d ->> 'fiscal_year')::integer, (d -> 'amount' ->> 'total')::integer, "
        "(d -> 'amount' ->> 'jkk')::integer, (d -> 'amount' ->> 'jkm')::integer "
        f"FROM (SELECT body::jsonb -> 'data' AS d FROM {schema}.events "
        "WHERE event_type = 'PremiumInvoiced') invoiced"
    )
    await conn.execute(
        f"UPDATE {schema}.invoices i SET paid_on = p.paid_on, payment_ref = p.payment_ref "
        "FROM (SELECT DISTINCT (d ->> 'invoice_id')::uuid AS invoice_id, "
        "(d ->> 'paid_on')::date AS paid_on, d ->> 'payment_ref' AS payment_ref "
        f"FROM (SELECT body::jsonb -> 'data' AS d FROM {schema}.events "
        "WHERE event_type = 'PremiumPaid') paid) p WHERE i.invoice_id = p.invoice_id"
    )
    return int(await conn.fetchval(f"SELECT count(*) FROM {schema}.invoices"))
