"""Every projection's pure rule, event by event: the read models the runners keep from the
topics, and the write-side tables the command handler keeps inline."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest
from pydantic import BaseModel

from contract.events.billing import (
    BudgetAllocated,
    CohortTotal,
    InvoiceIssued,
    PremiumInvoiced,
    PremiumPaid,
)
from contract.events.claims import ClaimApproved, ClaimFiled, ClaimPaid, ClaimRejected
from contract.events.enrolment import (
    CoverageEnded,
    CoverageStarted,
    RegistrationSource,
    WorkerDetailsCorrected,
    WorkerRegistered,
)
from contract.events.types import Premium
from contract.events.verification import VerificationRejected, Verified
from contract.policy import policy_book
from contract.readmodels.coverage import CoveragesProjection
from services.billing.projections import AllocationsProjection, PremiumsProjection
from services.billing.write_side import Invoices
from services.claims.projections import ClaimsProjection, PaidMonthsProjection
from services.claims.write_side import registry_changes
from services.enrolment.projections import WorkersProjection
from services.enrolment.write_side import nik_entry
from services.verification.projections import BudgetsProjection, CasesProjection
from services.verification.write_side import DesignationCounts
from shared.envelope import Envelope
from shared.eventstore.inline import Appended
from shared.projection.changes import Increment, Update, Upsert
from shared.projection.decode import ConsumedEvent
from shared.sealing import SealedPersonal

pytestmark = pytest.mark.unit
WORKER, CLAIM, INVOICE = uuid.UUID(int=7), uuid.UUID(int=8), uuid.UUID(int=9)
COVER = uuid.UUID(int=10)
AT = datetime(2025, 1, 15, 2, 30, tzinfo=UTC)
PREMIUM = Premium(total=16_800, jkk=10_000, jkm=6_800)
SEALED = SealedPersonal(key_id="worker-7", alg="AES-256-GCM", ciphertext="c2VhbGVk")


def envelope(data: BaseModel) -> Envelope:
    return Envelope(
        event_id=uuid.uuid4(),
        event_type=type(data).__name__,
        schema_version=1,
        stream_id="stream-1",
        stream_version=1,
        worker_id=WORKER,
        occurred_at=AT,
        recorded_at=AT,
        producer="test",
        actor={"id": "t", "role": "system"},
        correlation_id=uuid.uuid4(),
        causation_id=None,
        policy_version=None,
        prev_hash="0" * 64,
        hash="1" * 64,
        data=data.model_dump(mode="json"),
    )


def consumed(data: BaseModel) -> ConsumedEvent:
    return ConsumedEvent(envelope(data), data, "topic", 0, 0)


def appended(data: BaseModel) -> Appended:
    return Appended(envelope(data), data)


REGISTERED = WorkerRegistered(
    worker_id=WORKER,
    personal=SEALED,
    birth_date=date(1980, 7, 5),
    sex="F",
    occupation_code="buruh_batik",
    kelurahan_code="33.75.01.1004",
    kecamatan_code="33.75.01",
    insured_income=1_000_000,
    source=RegistrationSource(channel="api"),
)
STARTED = CoverageStarted(
    worker_id=WORKER,
    coverage_id=COVER,
    membership_no="00000000013",
    cohort="regular",
    fiscal_year=2025,
    programmes=["JKK", "JKM"],
    start_date=date(2024, 11, 1),
    end_date=date(2025, 10, 31),
    monthly_premium=PREMIUM,
    insured_income=1_000_000,
    decree_ref="SK 1",
)
ENDED = CoverageEnded(
    worker_id=WORKER, coverage_id=COVER, end_date=date(2025, 3, 31), reason="withdrawn"
)
DESIGNATED = Verified(
    worker_id=WORKER,
    case_id=WORKER,
    level="city",
    cohort="regular",
    cover_months=12,
    coverage_start=date(2024, 11, 1),
    fiscal_year=2025,
    decree_ref="SK 1",
)
INVOICED = PremiumInvoiced(
    worker_id=WORKER,
    invoice_id=INVOICE,
    period="2025-01",
    coverage_id=COVER,
    cohort="regular",
    fiscal_year=2025,
    amount=PREMIUM,
)
PAID = PremiumPaid(
    worker_id=WORKER,
    period="2025-01",
    amount=PREMIUM,
    invoice_id=INVOICE,
    payment_ref="SP2D 1",
    paid_on=date(2025, 2, 10),
    payer="city",
    cohort="regular",
    fiscal_year=2025,
)
FILED = ClaimFiled(
    claim_id=CLAIM,
    worker_id=WORKER,
    benefit="JKM",
    kind="death",
    incident_date=date(2025, 1, 10),
    claimant=SEALED,
)
APPROVED = ClaimApproved(
    claim_id=CLAIM,
    worker_id=WORKER,
    items=[{"code": "JKM_LUMP_SUM", "amount": 42_000_000}],
    total=42_000_000,
    death_date=date(2025, 1, 10),
    policy_note="approved",
)


def test_workers_follow_registration_correction_and_coverage() -> None:
    workers = WorkersProjection()
    [registered] = workers.apply(consumed(REGISTERED))
    assert isinstance(registered, Upsert)
    assert (registered.values["status"], registered.values["kecamatan_code"]) == (
        "registered",
        "33.75.01",
    )
    corrected = WorkerDetailsCorrected(worker_id=WORKER, reason="typo", occupation_code="becak")
    assert workers.apply(consumed(corrected)) == [
        Update("workers", {"worker_id": WORKER}, {"occupation_code": "becak"})
    ]
    nothing = WorkerDetailsCorrected(worker_id=WORKER, reason="checked again")
    assert workers.apply(consumed(nothing)) == []
    [covered] = workers.apply(consumed(STARTED))
    assert isinstance(covered, Update)
    assert (covered.values["status"], covered.values["cohort"]) == ("covered", "regular")
    [ended] = workers.apply(consumed(ENDED))
    assert isinstance(ended, Update)
    assert ended.values == {
        "status": "ended",
        "coverage_end": date(2025, 3, 31),
        "end_reason": "withdrawn",
    }


def test_coverages_keep_each_period_and_its_end() -> None:
    coverages = CoveragesProjection()
    [started] = coverages.apply(consumed(STARTED))
    assert isinstance(started, Upsert)
    assert (started.values["monthly_premium"], started.values["premium_jkm"]) == (16_800, 6_800)
    # When enrolment recorded each: a revised claim is judged on what was recorded before it.
    assert started.values["recorded_at"] == AT
    ended = {"ended_on": date(2025, 3, 31), "ended_recorded_at": AT}
    assert coverages.apply(consumed(ENDED)) == [Update("coverages", {"coverage_id": COVER}, ended)]


def test_cases_follow_registration_and_each_decision() -> None:
    cases = CasesProjection()
    [registered] = cases.apply(consumed(REGISTERED))
    assert isinstance(registered, Upsert)
    assert registered.values["kelurahan_code"] == "33.75.01.1004"
    rejected = VerificationRejected(
        worker_id=WORKER,
        case_id=WORKER,
        level="kelurahan",
        reasons=["duplicate_person", "other"],
        note="twice",
    )
    [refusal] = cases.apply(consumed(rejected))
    assert isinstance(refusal, Upsert)
    assert (refusal.values["last_outcome"], refusal.values["reasons"]) == (
        "rejected",
        "duplicate_person,other",
    )
    case, designation = cases.apply(consumed(DESIGNATED))
    assert isinstance(case, Upsert)
    assert isinstance(designation, Upsert)
    assert case.values["fiscal_year"] == 2025
    assert designation.key == {"worker_id": WORKER, "fiscal_year": 2025}


def test_budgets_and_allocations_add_up_each_allocation() -> None:
    allocated = BudgetAllocated(
        fiscal_year=2025, source="APBD-P", amount=5_000, cohort="incidental"
    )
    assert BudgetsProjection().apply(consumed(allocated)) == [
        Increment("budgets", {"fiscal_year": 2025, "cohort": "incidental"}, {"allocated": 5_000})
    ]
    key = {"fiscal_year": 2025, "cohort": "incidental", "source": "APBD-P"}
    assert AllocationsProjection().apply(consumed(allocated)) == [
        Increment("allocations", key, {"allocated": 5_000})
    ]


def test_premiums_and_paid_months_follow_invoice_and_payment() -> None:
    premiums = PremiumsProjection()
    key = {"worker_id": WORKER, "period": "2025-01"}
    [invoiced] = premiums.apply(consumed(INVOICED))
    assert invoiced == Upsert(
        "premiums",
        key,
        {"invoice_id": INVOICE, "cohort": "regular", "fiscal_year": 2025, "amount": 16_800},
    )
    paid = {"paid_on": date(2025, 2, 10), "payment_ref": "SP2D 1"}
    assert premiums.apply(consumed(PAID)) == [Update("premiums", key, paid)]
    assert PaidMonthsProjection().apply(consumed(PAID)) == [
        Upsert("paid_months", key, {"paid_on": date(2025, 2, 10), "recorded_at": AT})
    ]


def test_claims_follow_filing_decision_and_payment() -> None:
    claims = ClaimsProjection()
    [filed] = claims.apply(consumed(FILED))
    assert isinstance(filed, Upsert)
    assert filed.values["status"] == "pending"
    [approved] = claims.apply(consumed(APPROVED))
    assert isinstance(approved, Update)
    assert (approved.values["status"], approved.values["total"]) == ("approved", 42_000_000)
    rejected = ClaimRejected(claim_id=CLAIM, worker_id=WORKER, reasons=["not_covered"])
    [refusal] = claims.apply(consumed(rejected))
    assert isinstance(refusal, Update)
    assert refusal.values["reasons"] == "not_covered"
    paid = ClaimPaid(
        claim_id=CLAIM, worker_id=WORKER, amount=1, payment_ref="B-1", paid_on=date(2025, 3, 1)
    )
    [payment] = claims.apply(consumed(paid))
    assert isinstance(payment, Update)
    assert payment.values["status"] == "paid"


def test_the_nik_index_moves_with_the_worker_and_forgets_the_erased() -> None:
    assert nik_entry(WORKER, b"digest") == [
        Upsert("nik_index", {"worker_id": WORKER}, {"nik_digest": b"digest"})
    ]
    assert nik_entry(WORKER, None) == []


def test_designation_counts_count_designations_at_their_cost() -> None:
    counts = DesignationCounts(policy_book())
    premium = policy_book().in_force(date(2024, 11, 1)).monthly_premium.total
    assert counts.apply(DESIGNATED) == [
        Increment(
            "designation_counts",
            {"fiscal_year": 2025, "cohort": "regular"},
            {"designated": 1, "committed": 12 * premium},
        )
    ]
    kelurahan = Verified(worker_id=WORKER, case_id=WORKER, level="kelurahan")
    assert counts.apply(kelurahan) == []


def test_invoices_follow_issue_lines_and_payment() -> None:
    invoices = Invoices()
    issued = InvoiceIssued(
        invoice_id=INVOICE,
        period="2025-01",
        supplementary=False,
        lines=1,
        totals=[CohortTotal(cohort="regular", workers=1, total=16_800, jkk=10_000, jkm=6_800)],
        total=16_800,
    )
    [invoice] = invoices.apply(appended(issued))
    assert isinstance(invoice, Upsert)
    assert (invoice.values["total"], invoice.values["issued_at"]) == (16_800, AT)
    [line] = invoices.apply(appended(INVOICED))
    assert isinstance(line, Upsert)
    assert line.key == {"worker_id": WORKER, "period": "2025-01"}
    assert (line.values["invoice_id"], line.values["jkk"]) == (INVOICE, 10_000)
    assert invoices.apply(appended(PAID)) == [
        Update(
            "invoices",
            {"invoice_id": INVOICE},
            {"paid_on": date(2025, 2, 10), "payment_ref": "SP2D 1"},
        )
    ]


def test_the_claim_registry_keeps_what_finds_the_claims_to_decide_again() -> None:
    [filed] = registry_changes(appended(FILED))
    assert filed == Upsert(
        "worker_claims", {"claim_id": CLAIM}, {"worker_id": FILED.worker_id, "status": "pending"}
    )
    assert registry_changes(appended(APPROVED)) == [
        Update("worker_claims", {"claim_id": CLAIM}, {"status": "approved"})
    ]
