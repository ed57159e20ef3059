"""Property: what the four services decide does not depend on the order events reach them.

A worker covered for a fiscal year, and designated again for the next (a renewal), dies, before
or after a cover expired; the renewal's designation, the city's billing runs (months nobody is
covered in among them), late payments, the expiry job and the death claim come in a drawn
order, and each consumer (enrolment of the claims topic, billing and claims of the enrolment
topic, claims of the billing topic) reads its topics at a drawn pace, in each stream's order.
Claims decides on whatever it has read (the producer's outbox may still hold facts), and judges
a rejection again on the facts recorded before it; billing's runs wait for enrolment's
committed events (the freshness wait), enrolment's own reactions lag. Each month is run once:
coverage billing reads after its month was run (whether the run invoiced somebody or found
nobody) is invoiced by billing's catch-up alone. Once every consumer has caught up and the city
paid what is owed, the coverage, the premiums owed and paid and the claim's decision equal
those of the same commands with every event delivered at once, and every month run is owed
exactly when the coverage includes it. The rules are the services' own pure decisions; the
model keeps only their read models and reactions.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from contract.events.billing import NothingInvoiced, PremiumInvoiced, PremiumPaid
from contract.events.claims import ClaimApproved, ClaimFiled
from contract.events.enrolment import CoverageEnded, CoverageStarted, RegistrationSource
from contract.events.types import Premium
from contract.policy import policy_book
from contract.policy.membership import period_of, periods_between, standing_on
from services.billing.invoicing import (
    CancelLines,
    CoverageLine,
    Invoice,
    InvoiceLine,
    InvoiceRules,
    PayInvoice,
    RunBilling,
    month_bounds,
)
from services.claims.domain import (
    Claim,
    ClaimRules,
    ClaimState,
    Facts,
    FileClaim,
    Reconsider,
)
from services.enrolment.domain import (
    EndCoverage,
    RegisterWorker,
    StartCoverage,
    Worker,
    WorkerRules,
)
from shared.decisions import Decided, Recorded, RefusedError
from shared.sealing import SealedPersonal

pytestmark = pytest.mark.unit
BOOK = policy_book()
WORKER = uuid.UUID(int=1)
SEALED = SealedPersonal(key_id="worker-1", alg="AES-256-GCM", ciphertext="c2VhbGVk")
AT = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)

TODAY = date(2026, 12, 1)  # after both periods: the expiry job ends whatever is still open
FIRST, RENEWAL = date(2024, 11, 1), date(2025, 11, 1)
MONTHS = periods_between(FIRST, date(2026, 10, 31))
EMPTY_MONTHS = ("2024-10", "2026-11")  # before the first cover and after the renewal's
PREMIUM = Premium(total=16_800, jkk=10_000, jkm=6_800)
CONSUMERS = ("enrolment<-claims", "billing<-enrolment", "claims<-enrolment", "claims<-billing")
ENROLMENT = WorkerRules(BOOK)
INVOICES = InvoiceRules()
CLAIMS = ClaimRules(BOOK)


def at_tick(tick: int) -> datetime:
    """The instant the producers' shared clock (one tick per event recorded) shows."""
    return AT + timedelta(seconds=tick)


@dataclass
class Topic:
    """A service's events in the order it recorded them, each with the logical time of its
    commit."""

    events: list[tuple[int, BaseModel]] = field(default_factory=list)


@dataclass
class World:
    death: date
    clock: int = 0
    topics: dict[str, Topic] = field(default_factory=lambda: defaultdict(Topic))
    read: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    worker: Worker = field(default_factory=Worker)
    end_reasons: dict[uuid.UUID, str] = field(default_factory=dict)
    # billing
    coverages: dict[uuid.UUID, list[Any]] = field(default_factory=dict)  # start, end, ended
    invoices: dict[uuid.UUID, Invoice] = field(default_factory=dict)
    months_run: set[str] = field(default_factory=set)  # an invoice or NothingInvoiced
    runs: set[str] = field(default_factory=set)  # the months the billing officer ran
    invoice_paid: dict[uuid.UUID, bool] = field(default_factory=dict)
    lines: dict[str, dict[str, Any]] = field(default_factory=dict)  # by period
    # claims
    # The coverage and payments claims has read, each with the commit it was recorded at.
    claims_read: list[tuple[int, BaseModel]] = field(default_factory=list)
    claim: ClaimState = field(default_factory=ClaimState)
    total: int | None = None

    def record(self, service: str, decided: list[Decided]) -> None:
        for event in decided:
            self.clock += 1
            self.topics[service].events.append((self.clock, event.data))

    # enrolment --------------------------------------------------------------------------
    def enrol(self, command: Any) -> None:
        try:
            decided = ENROLMENT.decide(command, self.worker)
        except RefusedError:
            return  # refused (a dead letter in the service): the stream is unchanged
        for event in decided:
            self.worker = ENROLMENT.evolve(self.worker, Recorded(event.data, AT))
            if isinstance(event.data, CoverageEnded):
                self.end_reasons[event.data.coverage_id] = event.data.reason
        self.record("enrolment", decided)

    def designate(self) -> None:
        """The renewal, verified and designated: refused once the death is recorded."""
        self.enrol(
            StartCoverage(WORKER, RENEWAL_ID, "00000000018", "regular", 2025, 12, RENEWAL, "SK", AT)
        )

    def expire(self) -> None:
        for coverage in self.worker.coverages:
            if coverage.ended_on is None and coverage.end_date < TODAY:
                self.enrol(EndCoverage(WORKER, "expired", coverage.end_date, AT))

    # billing ----------------------------------------------------------------------------
    def run(self, period: str) -> None:
        self.catch_up("billing<-enrolment")  # the freshness wait on enrolment's commits
        self.runs.add(period)
        first, last = month_bounds(period)
        lines = tuple(
            CoverageLine(WORKER, cid, "regular", start.year, PREMIUM)
            for cid, (start, end, ended) in self.coverages.items()
            if start <= last and (ended or end) >= first and period not in self.lines
        )
        self.invoice(period, lines, period in self.months_run)

    def invoice(self, period: str, lines: tuple[CoverageLine, ...], supplementary: bool) -> None:
        invoice_id = uuid.UUID(int=1000 + self.clock)  # the same in every replay of an example
        command = RunBilling(invoice_id, period, lines, supplementary, AT, "2023.1")
        try:
            decided = INVOICES.decide(command, Invoice())
        except RefusedError:
            return  # nothing left to invoice in a month already run
        self.months_run.add(period)
        self.record("billing", decided)
        if isinstance(decided[0].data, NothingInvoiced):
            return
        self.invoices[invoice_id] = INVOICES.evolve(Invoice(), Recorded(decided[0].data, AT))
        self.invoice_paid[invoice_id] = False
        for event in decided:
            if isinstance(event.data, PremiumInvoiced):
                self.lines[period] = {
                    "invoice": invoice_id,
                    "coverage": event.data.coverage_id,
                    "cancelled": False,
                    "paid": False,
                }

    def pay(self) -> None:
        # The city pays what it was invoiced for the months run, catch-up invoices included: a
        # payment made before billing read a late designation pays fewer months, a different
        # history, on which a death claim may be decided otherwise (inactive, not waiting).
        self.catch_up("billing<-enrolment")
        for invoice_id, invoice in self.invoices.items():
            if self.invoice_paid[invoice_id]:
                continue
            owed = [p for p, line in self.lines.items() if line["invoice"] == invoice_id]
            lines = tuple(
                InvoiceLine(WORKER, p, "regular", 2024, PREMIUM)
                for p in owed
                if not self.lines[p]["cancelled"]
            )
            assert invoice.total is not None
            command = PayInvoice(
                invoice_id,
                f"SP2D {invoice_id.hex[:6]}",
                TODAY,
                invoice.total,
                "city",
                AT,
                lines,
                False,
                False,
            )
            decided = INVOICES.decide(command, invoice)
            self.invoice_paid[invoice_id] = True
            for line in lines:
                self.lines[line.period]["paid"] = True
            self.record("billing", decided)

    def billing_reads(self, data: BaseModel) -> None:
        if isinstance(data, CoverageStarted):
            self.coverages[data.coverage_id] = [data.start_date, data.end_date, None]
            # The catch-up: each month of it already run is invoiced for it at once.
            line = CoverageLine(WORKER, data.coverage_id, "regular", data.fiscal_year, PREMIUM)
            for period in periods_between(data.start_date, data.end_date):
                if period in self.months_run and period not in self.lines:
                    self.invoice(period, (line,), True)
        elif isinstance(data, CoverageEnded):
            self.coverages[data.coverage_id][2] = data.end_date
            by_invoice: dict[uuid.UUID, list[str]] = defaultdict(list)
            for period, line in sorted(self.lines.items()):
                if (
                    line["coverage"] == data.coverage_id
                    and not line["cancelled"]
                    and period > period_of(data.end_date)
                ):
                    by_invoice[line["invoice"]].append(period)
            for invoice_id, periods in by_invoice.items():
                command = CancelLines(
                    invoice_id,
                    tuple(
                        CoverageLine(WORKER, data.coverage_id, "regular", 2024, PREMIUM)
                        for _ in periods
                    ),
                    tuple(periods),
                    data.reason,
                    self.invoice_paid[invoice_id],
                    AT,
                )
                decided = INVOICES.decide(command, self.invoices[invoice_id])
                for event in decided:
                    invoice = self.invoices[invoice_id]
                    self.invoices[invoice_id] = INVOICES.evolve(invoice, Recorded(event.data, AT))
                for period in periods:
                    self.lines[period]["cancelled"] = True
                self.record("billing", decided)

    # claims -----------------------------------------------------------------------------
    def facts(self, as_of: datetime | None = None) -> Facts:
        """What claims has read, or only what was recorded by ``as_of``."""
        cover: dict[uuid.UUID, tuple[date, date]] = {}
        paid: set[str] = set()
        for at, data in self.claims_read:
            if as_of is not None and at_tick(at) > as_of:
                continue
            if isinstance(data, CoverageStarted):
                cover[data.coverage_id] = (data.start_date, data.end_date)
            elif isinstance(data, CoverageEnded):
                start, _ = cover[data.coverage_id]
                cover[data.coverage_id] = (start, data.end_date)
            elif isinstance(data, PremiumPaid):
                paid.add(data.period)
        standing = standing_on(self.death, list(cover.values()), paid, 3)
        return Facts(standing.status, len(paid), standing.arrears, None)

    def claims_decide(self, decided: list[Decided]) -> None:
        for event in decided:
            # A decision's events are recorded together, as the producers' clock moves on.
            recorded = Recorded(event.data, at_tick(self.clock + 1))
            self.claim = CLAIMS.evolve(self.claim, recorded)
            if isinstance(event.data, ClaimApproved):
                self.total = event.data.total
        self.record("claims", decided)

    def file(self) -> None:
        claim = death_claim(self.death)
        filed = ClaimFiled(
            claim_id=claim.claim_id,
            worker_id=WORKER,
            benefit="JKM",
            kind="death",
            incident_date=self.death,
            claimant=SEALED,
        )
        self.claims_decide(CLAIMS.decide(FileClaim(claim, filed, self.facts(), AT), self.claim))

    def claims_reads(self, at: int, data: BaseModel) -> None:
        if not isinstance(data, CoverageStarted | CoverageEnded | PremiumPaid):
            return
        self.claims_read.append((at, data))
        if self.claim.status in ("pending", "rejected"):
            # As the reaction does: a rejection judged on the facts recorded before it.
            as_of = self.claim.rejected_at if self.claim.status == "rejected" else None
            command = Reconsider(death_claim(self.death), self.facts(as_of), AT, at_tick(at), as_of)
            self.claims_decide(CLAIMS.decide(command, self.claim))

    # delivery ---------------------------------------------------------------------------
    def step(self, consumer: str) -> bool:
        reader, source = consumer.split("<-")
        events = self.topics[source].events
        if self.read[consumer] >= len(events):
            return False
        at, data = events[self.read[consumer]]
        self.read[consumer] += 1
        if reader == "enrolment":
            if isinstance(data, ClaimApproved) and data.death_date is not None:
                self.enrol(EndCoverage(WORKER, "deceased", data.death_date, AT))
        elif reader == "billing":
            self.billing_reads(data)
        else:
            self.claims_reads(at, data)
        return True

    def catch_up(self, consumer: str) -> None:
        while self.step(consumer):
            pass

    def settle(self) -> None:
        """Every consumer caught up and the city's invoices paid (a payment's months read by
        claims, a claim approved after them ending the cover, its cancellations read)."""
        for _ in range(3):
            self.deliver_all()
            self.pay()
        self.deliver_all()

    def covered(self) -> frozenset[str]:
        """The months run that the worker's coverage, as enrolment ends it, includes."""
        return frozenset(
            period
            for period in self.runs
            for c in self.worker.coverages
            if c.start_date <= month_bounds(period)[1]
            and (c.ended_on or c.end_date) >= month_bounds(period)[0]
        )

    def deliver_all(self) -> None:
        progressed = True
        while progressed:
            progressed = False
            for consumer in CONSUMERS:
                progressed |= self.step(consumer)

    def outcome(self) -> tuple[Any, ...]:
        # A renewal designated before enrolment read the death, and ended by it before its
        # start, never covers a day: as if refused, as it is once the death is recorded.
        coverage = tuple(
            (
                c.coverage_id,
                c.start_date,
                c.ended_on or c.end_date,
                self.end_reasons.get(c.coverage_id),
            )
            for c in self.worker.coverages
            if c.start_date <= (c.ended_on or c.end_date)
        )
        owed = frozenset(p for p, line in self.lines.items() if not line["cancelled"])
        paid = frozenset(p for p in owed if self.lines[p]["paid"])
        return coverage, self.worker.deceased, owed, paid, self.claim.status, self.total


CLAIM_ID = uuid.UUID(int=77)


def death_claim(died_on: date) -> Claim:
    return Claim(CLAIM_ID, WORKER, "JKM", "death", died_on, TODAY)


def world(death: date) -> World:
    w = World(death)
    w.enrol(
        RegisterWorker(
            WORKER,
            "3375014507800003",
            SEALED,
            date(1980, 7, 5),
            "F",
            "buruh_batik",
            "33.75.01.1004",
            RegistrationSource(channel="api"),
            AT,
        )
    )
    w.enrol(
        StartCoverage(
            WORKER, uuid.UUID(int=10), "00000000018", "regular", 2024, 12, FIRST, "SK", AT
        )
    )
    return w


RENEWAL_ID = uuid.UUID(int=11)
COMMANDS = [
    "designate",
    "expire",
    "file",
    "pay",
    "pay",
    "pay",
    *(f"run:{m}" for m in (*MONTHS, *EMPTY_MONTHS)),
]


def perform(w: World, command: str) -> None:
    if command == "expire":
        w.expire()
    elif command == "file":
        w.file()
    elif command == "pay":
        w.pay()
    elif command == "designate":
        w.designate()
    else:
        w.run(command.removeprefix("run:"))


@settings(max_examples=150, deadline=None, print_blob=True)
@given(
    # Within either cover, or after the renewal expired (before or after the expiry job).
    death=st.dates(date(2024, 11, 10), date(2026, 11, 25)),
    script=st.permutations(COMMANDS),
    data=st.data(),
)
def test_the_outcome_does_not_depend_on_the_order_events_arrive_in(
    death: date, script: list[str], data: st.DataObject
) -> None:
    eager, lagging = world(death), world(death)
    for command in script:
        eager.deliver_all()  # every event delivered at once
        perform(eager, command)
        for consumer in data.draw(st.lists(st.sampled_from(CONSUMERS), max_size=6)):
            lagging.step(consumer)
        perform(lagging, command)
    eager.settle()
    lagging.settle()

    assert lagging.outcome() == eager.outcome()
    for w in (eager, lagging):
        coverage, deceased, owed, paid, status, _ = w.outcome()
        if status in ("approved", "paid"):
            # Death is a fact about the person: recorded, and nothing owed after its month.
            assert deceased
            assert all(p <= period_of(death) for p in owed)
            assert any(reason == "deceased" for *_, reason in coverage)
        assert owed == w.covered()  # each month run is owed exactly when it is covered
        assert paid == owed  # the city paid every month it owes, once


def test_a_month_after_the_death_is_never_owed_even_when_invoiced_and_paid_first() -> None:
    death = date(2025, 3, 10)
    w = world(death)
    w.designate()
    for period in MONTHS[:8]:
        w.run(period)
    w.pay()
    w.expire()
    w.file()
    w.settle()
    coverage, deceased, owed, _, status, total = w.outcome()
    assert (status, total, deceased) == ("approved", 42_000_000, True)
    assert max(owed) == "2025-03"
    assert coverage[0][2:] == (death, "deceased")
    assert len(coverage) == 1  # the renewal never runs: ended by the death before its start
    assert w.end_reasons[RENEWAL_ID] == "deceased"


def test_a_rejection_is_revised_only_on_the_facts_recorded_before_it() -> None:
    """Death days after the first cover ended; the renewal is designated only after the claim
    was rejected (not covered). Delivered at once, the rejection stands. When claims reads the
    renewal before a payment recorded ahead of the rejection, that payment has the rejection
    judged again on the facts recorded before it, the renewal not among them: it stands too."""
    outcomes = []
    for lagging in (False, True):
        w = world(date(2025, 11, 4))
        for period in MONTHS[:12]:
            w.run(period)
        w.pay()
        w.expire()
        if lagging:
            w.catch_up("claims<-enrolment")  # claims has read the cover, not the payments
        else:
            w.deliver_all()
        w.file()
        w.designate()
        w.run("2025-11")
        if lagging:
            w.catch_up("claims<-enrolment")  # the renewal first, then the older payments
        w.settle()
        outcomes.append(w.outcome())
    assert outcomes[0][4] == "rejected"
    assert outcomes[1] == outcomes[0]
