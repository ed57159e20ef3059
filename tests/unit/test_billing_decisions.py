"""Billing's pure decisions: allocations, a month's run, a payment, and the invoice's fold."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest

from contract.events.billing import (
    BudgetAllocated,
    InvoiceIssued,
    NothingInvoiced,
    PremiumCancelled,
    PremiumInvoiced,
    PremiumPaid,
)
from contract.events.types import Premium
from contract.policy import policy_book
from services.billing.budget import AllocateBudget, BudgetRules
from services.billing.invoicing import (
    CancelLines,
    CoverageLine,
    Invoice,
    InvoiceLine,
    InvoiceRules,
    PayInvoice,
    RunBilling,
    premiums_stream,
)
from shared.decisions import Recorded, RefusedError

pytestmark = pytest.mark.unit
AT = datetime(2025, 2, 1, 3, 0, tzinfo=UTC)
PREMIUM = Premium(total=16_800, jkk=10_000, jkm=6_800)
A, B = uuid.UUID(int=1), uuid.UUID(int=2)
INVOICE = uuid.UUID(int=99)
RULES = InvoiceRules()


def run(lines: tuple[CoverageLine, ...], supplementary: bool = False) -> RunBilling:
    return RunBilling(INVOICE, "2025-01", lines, supplementary, AT, "2023.1")


def coverage(worker: uuid.UUID, cohort: str) -> CoverageLine:
    return CoverageLine(worker, uuid.uuid5(worker, "cover"), cohort, 2025, PREMIUM)


def issued_invoice(total: int) -> Invoice:
    invoice = RULES.initial
    for decided in RULES.decide(run((coverage(A, "regular"),)), invoice)[:1]:
        invoice = RULES.evolve(invoice, Recorded(decided.data, AT))
    assert invoice.total == total
    return invoice


def payment(amount: int, already_paid: bool = False, used: bool = False) -> PayInvoice:
    lines = (InvoiceLine(A, "2025-01", "regular", 2025, PREMIUM),)
    return PayInvoice(
        INVOICE, "SP2D 1", date(2025, 2, 10), amount, "city", AT, lines, already_paid, used
    )


def test_an_allocation_is_recorded_under_the_policy_in_force() -> None:
    rules = BudgetRules(policy_book())
    command = AllocateBudget(2025, "APBD", "regular", 201_600_000, AT)
    [decided] = rules.decide(command, rules.initial)
    assert decided.event_type == "BudgetAllocated"
    assert decided.data == BudgetAllocated(
        fiscal_year=2025, source="APBD", amount=201_600_000, cohort="regular"
    )
    assert decided.policy_version == policy_book().in_force(AT.date()).version
    assert rules.evolve(rules.initial, Recorded(decided.data, AT)) == 1


def test_an_allocation_of_nothing_or_before_the_programme_is_refused_with_both_reasons() -> None:
    rules = BudgetRules(policy_book())
    with pytest.raises(RefusedError) as refused:
        rules.decide(AllocateBudget(2021, "APBD", "regular", 0, AT), 0)
    assert [p.field for p in refused.value.problems] == ["amount", "fiscal_year"]


def test_a_run_issues_the_invoice_and_a_line_on_each_workers_premiums_stream() -> None:
    decided = RULES.decide(run((coverage(A, "regular"), coverage(B, "incidental"))), Invoice())
    issued, *lines = decided
    assert issued.event_type == "InvoiceIssued"
    assert issued.stream_id is None  # the invoice's own stream
    assert isinstance(issued.data, InvoiceIssued)
    assert (issued.data.lines, issued.data.total) == (2, 33_600)
    assert [t.cohort for t in issued.data.totals] == ["incidental", "regular"]
    assert [(d.event_type, d.stream_id, d.worker_id) for d in lines] == [
        ("PremiumInvoiced", premiums_stream(A), A),
        ("PremiumInvoiced", premiums_stream(B), B),
    ]
    assert all(isinstance(d.data, PremiumInvoiced) for d in lines)


def test_a_months_first_run_that_finds_nobody_records_that_the_month_was_run() -> None:
    # Given a run's stream with no events, and no run of January before (not supplementary);
    # when January is run with nobody to invoice; then January is recorded as run, on the
    # run's own stream, and no invoice is issued.
    [decided] = RULES.decide(run((), supplementary=False), Invoice())
    assert (decided.event_type, decided.stream_id) == ("NothingInvoiced", None)
    assert decided.data == NothingInvoiced(period="2025-01")
    assert decided.policy_version == "2023.1"
    assert RULES.evolve(Invoice(), Recorded(decided.data, AT)) == Invoice()  # nothing to pay


def test_a_run_with_nothing_left_to_invoice_or_an_invoice_issued_twice_is_refused() -> None:
    # A month already run (an invoice, or NothingInvoiced): nothing new to record.
    with pytest.raises(RefusedError, match="no coverage in 2025-01 is left to invoice"):
        RULES.decide(run((), supplementary=True), Invoice())
    with pytest.raises(RefusedError, match="issued already"):
        RULES.decide(run((coverage(A, "regular"),)), Invoice(total=16_800))


def test_a_payment_of_the_exact_total_pays_every_worker_month() -> None:
    [paid] = RULES.decide(payment(16_800), issued_invoice(16_800))
    assert (paid.event_type, paid.stream_id) == ("PremiumPaid", premiums_stream(A))
    assert isinstance(paid.data, PremiumPaid)
    assert (paid.data.period, paid.data.payment_ref, paid.data.cohort) == (
        "2025-01",
        "SP2D 1",
        "regular",
    )


@pytest.mark.parametrize(
    ("command", "invoice", "conflict", "reason"),
    [
        (payment(16_800), Invoice(), True, "no such invoice"),
        (payment(16_800, already_paid=True), Invoice(16_800), True, "already paid"),
        (payment(16_800, used=True), Invoice(16_800), True, "reference was used before"),
        (payment(16_799), Invoice(16_800), False, "differs from the invoice total Rp16,800"),
    ],
)
def test_anything_but_the_exact_payment_of_an_unpaid_invoice_is_refused(
    command: PayInvoice, invoice: Invoice, conflict: bool, reason: str
) -> None:
    with pytest.raises(RefusedError, match=reason) as refused:
        RULES.decide(command, invoice)
    assert refused.value.conflict is conflict


def test_months_after_a_coverage_ended_early_are_cancelled_once() -> None:
    coverage = uuid.UUID(int=7)
    line = CoverageLine(A, coverage, "regular", 2024, PREMIUM)
    issued = Invoice(total=33_600)
    cancel = CancelLines(INVOICE, (line,), ("2025-03",), "deceased", False, AT)

    [cancelled] = RULES.decide(cancel, issued)
    assert isinstance(cancelled.data, PremiumCancelled)
    assert (cancelled.data.period, cancelled.data.refund_due) == ("2025-03", False)
    after = RULES.evolve(issued, Recorded(cancelled.data, AT))
    assert after.total == 16_800  # what the city still owes on the invoice
    assert RULES.decide(cancel, after) == []  # never twice
    # Paid before the death was known: the month is owed back, the invoice total stands.
    [refund] = RULES.decide(
        CancelLines(INVOICE, (line,), ("2025-03",), "deceased", True, AT), issued
    )
    assert isinstance(refund.data, PremiumCancelled)
    assert refund.data.refund_due
    assert RULES.evolve(issued, Recorded(refund.data, AT)).total == 33_600
