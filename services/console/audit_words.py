"""What the auditor's pages call things: the events, their fields and the codes they hold, the
figures' columns, each in words (message ids in English, translated by the catalogue), and an
event's data written out as labelled fields rather than as the program's text."""

from __future__ import annotations

import gettext
import re
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

from babel.dates import format_date
from babel.numbers import format_decimal

from services.console.i18n import (
    Language,
    kecamatan_name,
    kelurahan_name,
    long_date,
    number,
    occupation_name,
    rupiah,
)
from services.console.names import REJECTION_REASONS, ROLE_NAMES, STANDINGS
from services.console.refusals import N_

EVENT_NAMES = {
    "WorkerRegistered": N_("Worker registered"),
    "WorkerDetailsCorrected": N_("Worker's details corrected"),
    "Verified": N_("Verified"),
    "VerificationRejected": N_("Verification rejected"),
    "CoverageStarted": N_("Coverage started"),
    "CoverageEnded": N_("Coverage ended"),
    "BudgetAllocated": N_("Budget allocated"),
    "InvoiceIssued": N_("Invoice issued"),
    "NothingInvoiced": N_("Nothing invoiced"),
    "PremiumInvoiced": N_("Premium invoiced"),
    "PremiumPaid": N_("Premium paid"),
    "PremiumCancelled": N_("Premium cancelled"),
    "ClaimFiled": N_("Claim filed"),
    "ClaimApproved": N_("Claim approved"),
    "ClaimRejected": N_("Claim rejected"),
    "ClaimReopened": N_("Claim reopened"),
    "ClaimPaid": N_("Claim paid"),
    "ScholarshipInstalmentApproved": N_("Scholarship instalment approved"),
}
FIELD_NAMES = {
    "accident_benefit": N_("Accident benefit"),
    "amount": N_("Amount"),
    "batch_id": N_("Import"),
    "benefit": N_("Benefit"),
    "birth_date": N_("Birth date"),
    "case_id": N_("Case"),
    "channel": N_("Channel"),
    "child": N_("Child"),
    "children": N_("Children"),
    "claim_id": N_("Claim"),
    "claimant": N_("Claimant"),
    "code": N_("Item"),
    "cohort": N_("Cohort"),
    "cover_months": N_("Months covered"),
    "coverage_id": N_("Coverage"),
    "coverage_start": N_("Coverage from"),
    "death_date": N_("Date of death"),
    "decree_ref": N_("Decree"),
    "description": N_("Description"),
    "documents": N_("Documents"),
    "end_date": N_("Until"),
    "fiscal_year": N_("Fiscal year"),
    "incident_date": N_("Incident date"),
    "insured_income": N_("Insured income"),
    "invoice_id": N_("Invoice"),
    "item": N_("Item"),
    "items": N_("Items"),
    "jkk": N_("JKK (work accident)"),
    "jkm": N_("JKM (death)"),
    "kecamatan_code": N_("Kecamatan"),
    "kelurahan_code": N_("Kelurahan"),
    "kind": N_("Kind"),
    "level": N_("Level"),
    "lines": N_("Worker-months"),
    "medical_costs": N_("Medical costs"),
    "membership_no": N_("Membership number"),
    "monthly_premium": N_("Monthly premium"),
    "months_incapacitated": N_("Months unable to work"),
    "note": N_("Note"),
    "occupation_code": N_("Occupation"),
    "open_instalments": N_("Instalments to come"),
    "paid_on": N_("Paid on"),
    "payer": N_("Payer"),
    "payment_ref": N_("Payment reference"),
    "period": N_("Month"),
    "personal": N_("Personal data"),
    "policy_note": N_("Policy note"),
    "programmes": N_("Programmes"),
    "reason": N_("Reason"),
    "reasons": N_("Reasons"),
    "refund_due": N_("Refund due"),
    "row": N_("Row"),
    "school_year": N_("School year"),
    "sealed_documents": N_("Documents (sealed)"),
    "sex": N_("Sex"),
    "source": N_("Source"),
    "start_date": N_("From"),
    "supplementary": N_("Supplementary"),
    "total": N_("Total"),
    "totals": N_("Totals"),
    "worker_id": N_("Worker"),
    "workers": N_("Workers"),
}
# The codes an event's field or a figure's column holds, by the field's name.
CODE_NAMES: Mapping[str, Mapping[str, str]] = {
    "status": {
        "registered": N_("registered"),
        "covered": N_("covered"),
        "ended": N_("ended"),
        "approved": N_("approved"),
        "rejected": N_("rejected"),
        "pending": N_("waiting: premiums in arrears"),
        "paid": N_("paid"),
        "-": N_("none"),
    },
    "cohort": {"regular": N_("regular"), "incidental": N_("incidental"), "-": N_("none")},
    "benefit": {"JKM": N_("JKM (death)"), "JKK": N_("JKK (work accident)")},
    "kind": {
        "death": N_("death"),
        "accident": N_("work accident"),
        "scholarship": N_("scholarship"),
    },
    "level": {"kelurahan": N_("kelurahan"), "kecamatan": N_("kecamatan"), "city": N_("city")},
    "channel": {"api": N_("typed in the console or the API"), "import": N_("imported list")},
    "sex": {"F": N_("female"), "M": N_("male")},
    "accident_benefit": {
        "medical": N_("Medical care"),
        "temporary_incapacity": N_("Temporarily unable to work (STMB)"),
        "total_permanent_disability": N_("Total permanent disability"),
    },
    "reason": {
        "expired": N_("the coverage period ended"),
        "deceased": N_("the worker died"),
        "age_limit": N_("the age limit was reached"),
        "withdrawn": N_("withdrawn"),
    },
    "reasons": {
        **REJECTION_REASONS,
        "not_covered": N_("not covered on the day of the incident"),
        "inactive": N_("inactive: premiums unpaid past the grace months"),
        "lapsed": N_("the coverage had lapsed"),
        "duplicate_death_claim": N_("a death claim was already filed"),
        "insufficient_contributions": N_("too few months paid"),
        "not_eligible": N_("not eligible"),
    },
}
# The figures' columns, as the audit application's queries name them.
COLUMN_NAMES = {
    "status": N_("Status"),
    "cohort": N_("Cohort"),
    "workers": N_("Workers"),
    "fiscal_year": N_("Fiscal year"),
    "months": N_("Worker-months"),
    "invoiced": N_("Invoiced"),
    "paid": N_("Paid"),
    "arrears": N_("In arrears"),
    "benefit": N_("Benefit"),
    "claims": N_("Claims"),
    "amount": N_("Amount"),
    "month": N_("Month"),
    "budget": N_("Budget"),
    "paid_on_time": N_("Paid on time"),
    "paid_late": N_("Paid late"),
    "unpaid": N_("Unpaid"),
    "kind": N_("Kind"),
    "filed": N_("Filed"),
    "approved": N_("Approved"),
    "rejected": N_("Rejected"),
    "pending": N_("Waiting"),
    "approved_amount": N_("Amount approved"),
    "paid_amount": N_("Amount paid"),
    "claims_paid": N_("Claims paid"),
    "premiums_paid": N_("Premiums paid"),
}
# The event fields holding rupiah.
MONEY = {
    "amount",
    "insured_income",
    "jkk",
    "jkm",
    "medical_costs",
    "monthly_premium",
    "refund_due",
    "total",
}
DATES = {
    "birth_date",
    "coverage_start",
    "death_date",
    "end_date",
    "incident_date",
    "paid_on",
    "start_date",
}
SEALED = "(sealed)"
# How deep an event's data is written out; anything deeper is summed up as its number of parts.
MAX_DEPTH = 3


def humane(name: str) -> str:
    """A field no list above names yet, as words: ``new_field`` as ``new field``."""
    return re.sub(r"_+", " ", name).strip()


class Words:
    """The names of things in one language."""

    def __init__(self, language: gettext.NullTranslations, lang: Language) -> None:
        self.language = language
        self.lang = lang

    def _(self, message: str) -> str:
        return self.language.gettext(message)

    def event(self, event_type: str) -> str:
        return self._(EVENT_NAMES[event_type]) if event_type in EVENT_NAMES else event_type

    def field(self, name: str) -> str:
        return self._(FIELD_NAMES[name]) if name in FIELD_NAMES else humane(name)

    def column(self, name: str) -> str:
        return self._(COLUMN_NAMES[name]) if name in COLUMN_NAMES else humane(name)

    def role(self, role: str) -> str:
        if role == "system":  # a reaction to other events, not a person's command
            return self._("the system")
        return self._(ROLE_NAMES[role]) if role in ROLE_NAMES else humane(role)

    def month(self, period: str) -> str:
        """``2024-11`` as its month's short name (``Nov``)."""
        return format_date(date.fromisoformat(f"{period}-01"), "MMM", locale=self.lang)

    def standing(self, status: str) -> str:
        return self._(STANDINGS[status]) if status in STANDINGS else status

    def count(self, value: float) -> str:
        return number(round(value), self.lang)

    def money(self, value: float) -> str:
        return rupiah(round(value), self.lang)

    def ratio(self, value: float) -> str:
        return format_decimal(value, format="0.00", locale=self.lang)

    def cell(self, column: str, value: Any, money: bool) -> str:
        """A figure's cell: rupiah in the columns that hold money, codes by name."""
        if money and isinstance(value, int | float):
            return self.money(value)
        if column in CODE_NAMES or value is None or isinstance(value, str):
            return self.value(column, value)
        if isinstance(value, int) and column != "fiscal_year":
            return self.count(value)
        return str(value)

    def value(self, name: str, value: Any) -> str:
        """One value of a field or column named ``name``, as the page writes it."""
        if value is None:
            return "–"
        if value == SEALED:
            return self._("sealed: personal data, not shown")
        if isinstance(value, bool):
            return self._("yes") if value else self._("no")
        if name in CODE_NAMES and isinstance(value, str):
            names = CODE_NAMES[name]
            return self._(names[value]) if value in names else value
        if name in MONEY and isinstance(value, int | float):
            return rupiah(int(value), self.lang)
        if name in DATES and isinstance(value, str):
            return long_date(value, self.lang)
        return self._coded(name, value)

    def _coded(self, name: str, value: Any) -> str:
        places: dict[str, Callable[[str], str]] = {
            "occupation_code": lambda code: occupation_name(code, self.lang),
            "kelurahan_code": kelurahan_name,
            "kecamatan_code": kecamatan_name,
        }
        if name in places and isinstance(value, str):
            return places[name](value)
        if isinstance(value, int) and name not in ("fiscal_year", "row"):
            return number(value, self.lang)
        return str(value)

    def fields(self, data: Mapping[str, Any], depth: int = 0) -> list[tuple[str, Any]]:
        """An event's data as (label, value) pairs; a value is text, or the pairs of a part
        (a payment's programmes, a claim's items), as deep as MAX_DEPTH."""
        pairs: list[tuple[str, Any]] = []
        for name, value in data.items():
            if name == "worker_id":
                continue  # the page is about that worker
            pairs.append((self.field(name), self._part(name, value, depth)))
        return pairs

    def _part(self, name: str, value: Any, depth: int) -> Any:
        if isinstance(value, Mapping):
            if depth >= MAX_DEPTH:
                return self._("%(parts)s parts") % {"parts": len(value)}
            return self.fields(value, depth + 1)
        if isinstance(value, list):
            if all(not isinstance(v, Mapping | list) for v in value):
                return ", ".join(self.value(name, v) for v in value) or "–"
            return [(f"{n}.", self._part(name, v, depth + 1)) for n, v in enumerate(value, 1)]
        return self.value(name, value)


def flat(value: Any) -> str:
    """Labelled pairs written on one line, for a download: ``Month: 2024-11; Amount: …``."""
    if isinstance(value, list):
        return "; ".join(f"{label}: {flat(part)}" for label, part in value)
    return str(value)
