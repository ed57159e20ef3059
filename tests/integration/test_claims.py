"""Claims on the real stack: decided by coverage and paid months, waiting on arrears, paid."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx
import pytest

from services.claims import wiring as claims_wiring
from services.claims.service import ClaimsService
from shared.auth import AuthSettings
from shared.settings import DatabaseSettings, KafkaSettings
from shared.topic_reader import read_topics
from tests.integration.producers import decided_after, producers_in_process
from tests.integration.programme_world import free_port
from tests.integration.publishing import pay_months, relay_outbox, start_coverage
from tests.integration.sandbox import isolated, running
from tests.tokens import bearer

pytestmark = pytest.mark.integration
AUTH = AuthSettings()


def as_officer() -> dict[str, str]:
    return bearer("claims_officer")


HEIR = {"name": "Sri Wahyuni", "relationship": "spouse", "bank_account": "BRI 0123"}


@dataclass
class World:
    api: httpx.AsyncClient
    kafka: KafkaSettings
    database: DatabaseSettings
    service: ClaimsService


@pytest.fixture
async def world(
    kafka_settings: KafkaSettings, separate_database: DatabaseSettings
) -> AsyncIterator[World]:
    kafka = await isolated(kafka_settings, separate_database, "claims")
    producers = await producers_in_process(separate_database)
    process, service = await claims_wiring.build(kafka, separate_database, AUTH, producers)
    async with running(process) as api:
        yield World(api, kafka, separate_database, service)


def new_key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def months(first: str, count: int) -> list[str]:
    year, month = (int(p) for p in first.split("-"))
    index = year * 12 + month - 1
    return [f"{(index + n) // 12:04d}-{(index + n) % 12 + 1:02d}" for n in range(count)]


async def file(world: World, worker: uuid.UUID, **claim: Any) -> dict[str, Any]:
    body = {
        "worker_id": str(worker),
        "benefit": "JKM",
        "kind": "death",
        "claimant": HEIR,
        "documents": ["akta kematian"],
    } | claim
    response = await world.api.post("/claims", json=body, headers=as_officer() | new_key())
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_claims_decided_by_the_rules(world: World) -> None:
    active, grace, inactive, long_member = (uuid.uuid4() for _ in range(4))
    for worker in (active, grace, inactive):
        await start_coverage(
            world.kafka, world.database, worker, "regular", date(2024, 11, 1), date(2025, 10, 31)
        )
    await start_coverage(
        world.kafka, world.database, long_member, "regular", date(2022, 8, 1), date(2025, 12, 31)
    )
    await pay_months(world.kafka, world.database, active, months("2024-11", 4))
    await pay_months(world.kafka, world.database, grace, ["2024-11"])
    await pay_months(world.kafka, world.database, long_member, months("2022-08", 36))

    death = await file(world, active, incident_date="2025-02-10")
    assert death["status"] == "approved"
    assert [(i["code"], i["amount"]) for i in death["items"]] == [
        ("JKM_LUMP_SUM", 20_000_000),
        ("JKM_PERIODIC", 12_000_000),
        ("FUNERAL", 10_000_000),
    ]
    assert death["total"] == 42_000_000
    assert "Total Rp42,000,000" in death["explanation"]
    second = await file(world, active, incident_date="2025-02-10")
    assert (second["status"], second["reasons"]) == ("rejected", ["duplicate_death_claim"])

    # Death on the first day of grace: the claim waits, and is decided when arrears are paid.
    waiting = await file(world, grace, incident_date="2024-12-01")
    assert waiting["status"] == "pending"
    assert "2024-12" in waiting["explanation"]
    await pay_months(world.kafka, world.database, grace, ["2024-12"])
    for _ in range(100):
        claim = (await world.api.get(f"/claims/{waiting['claim_id']}", headers=as_officer())).json()
        if claim["status"] != "pending":
            break
        await asyncio.sleep(0.1)
    assert (claim["status"], claim["total"]) == ("approved", 42_000_000)

    lapsed_arrears = await file(world, inactive, incident_date="2025-04-02")
    assert (lapsed_arrears["status"], lapsed_arrears["reasons"]) == ("rejected", ["inactive"])
    uncovered = await file(world, uuid.uuid4(), incident_date="2025-01-01")
    assert uncovered["reasons"] == ["not_covered"]
    lapsed = await file(
        world,
        active,
        benefit="JKK",
        kind="accident",
        accident_benefit="medical",
        medical_costs=2_500_000,
        incident_date="2020-05-01",
    )
    assert lapsed["reasons"] == ["lapsed"]

    # Scholarships: after a JKM death only with 36 paid months; two children at most.
    children = [
        {"name": "Anak Satu", "birth_date": "2022-03-01", "school_level": "TK"},
        {"name": "Anak Dua", "birth_date": "2004-01-15", "school_level": "university"},
    ]
    short = await file(
        world, active, kind="scholarship", incident_date="2025-02-10", children=children
    )
    assert (short["status"], short["reasons"]) == ("rejected", ["insufficient_contributions"])
    assert "had 4" in short["explanation"]
    member_death = await file(world, long_member, incident_date="2025-07-20")
    assert member_death["status"] == "approved"
    grant = await file(
        world, long_member, kind="scholarship", incident_date="2025-07-20", children=children
    )
    assert grant["status"] == "approved"
    # An award in yearly instalments: the school year in progress is paid now, one item per
    # child; the first child's later years stay open; the second child (22) has one year left.
    assert grant["total"] == 1_500_000 + 12_000_000
    assert sorted((i["child"], i["code"]) for i in grant["items"]) == [
        ("child-1", "SCHOLARSHIP_TK"),
        ("child-2", "SCHOLARSHIP_UNIVERSITY"),
    ]
    assert {i["child"] for i in grant["open_instalments"]} == {"child-1"}
    assert sum(i["amount"] for i in grant["open_instalments"]) == 87_000_000 - 1_500_000
    paid_grant = await world.api.post(
        f"/claims/{grant['claim_id']}/payments",
        json={"payment_ref": "BPJS-S1", "paid_on": "2025-08-01", "amount": grant["total"]},
        headers=as_officer() | new_key(),
    )
    assert paid_grant.status_code == 201, paid_grant.text
    # A later school year is not paid before it begins.
    later = max(i["school_year"] for i in grant["open_instalments"])
    early = await world.api.post(
        f"/claims/{grant['claim_id']}/instalments",
        json={"child": "child-1", "school_year": later, "married": False, "working": False},
        headers=as_officer() | new_key(),
    )
    assert early.status_code == 422, early.text
    assert "it is paid once it has begun" in early.text

    wrong = await world.api.post(
        f"/claims/{death['claim_id']}/payments",
        json={"payment_ref": "BPJS-1", "paid_on": "2025-03-01", "amount": 41_000_000},
        headers=as_officer() | new_key(),
    )
    assert wrong.status_code == 422
    paid = await world.api.post(
        f"/claims/{death['claim_id']}/payments",
        json={"payment_ref": "BPJS-1", "paid_on": "2025-03-01", "amount": 42_000_000},
        headers=as_officer() | new_key(),
    )
    assert paid.status_code == 201
    rejected_payment = await world.api.post(
        f"/claims/{second['claim_id']}/payments",
        json={"payment_ref": "BPJS-2", "paid_on": "2025-03-01", "amount": 1},
        headers=as_officer() | new_key(),
    )
    assert rejected_payment.status_code == 409


async def test_a_claim_waits_for_a_payment_sitting_in_billings_outbox_and_decides_on_it(
    world: World,
) -> None:
    worker = uuid.uuid4()
    await start_coverage(
        world.kafka, world.database, worker, "regular", date(2022, 8, 1), date(2025, 12, 31)
    )
    await pay_months(world.kafka, world.database, worker, months("2022-09", 35))
    death = await file(world, worker, incident_date="2025-07-20")
    assert death["status"] == "approved"
    # Billing has committed the payment of August 2022 (its 36th month); it is still in
    # billing's outbox, so on no topic: no high-water mark shows it.
    await pay_months(world.kafka, world.database, worker, ["2022-08"], publish=False)
    children = [{"name": "Anak Satu", "birth_date": "2014-03-01", "school_level": "SD"}]
    grant = await decided_after(
        file(world, worker, kind="scholarship", incident_date="2025-07-20", children=children),
        lambda: relay_outbox("billing", world.kafka, world.database),
    )
    assert grant["status"] == "approved", grant


async def test_a_claim_waits_for_a_coverage_sitting_in_enrolments_outbox_and_decides_on_it(
    world: World,
) -> None:
    worker = uuid.uuid4()
    await pay_months(world.kafka, world.database, worker, months("2024-11", 4))
    # Enrolment has committed the coverage; it is still in enrolment's outbox.
    await start_coverage(
        world.kafka,
        world.database,
        worker,
        "regular",
        date(2024, 11, 1),
        date(2025, 10, 31),
        publish=False,
    )
    death = await decided_after(
        file(world, worker, incident_date="2025-02-10"),
        lambda: relay_outbox("enrolment", world.kafka, world.database),
    )
    assert death["status"] == "approved", death


async def test_a_rejection_is_revised_by_a_payment_committed_just_after_billing_answered(
    world: World,
) -> None:
    worker = uuid.uuid4()
    await start_coverage(
        world.kafka, world.database, worker, "regular", date(2022, 8, 1), date(2025, 12, 31)
    )
    await pay_months(world.kafka, world.database, worker, months("2022-09", 35))
    await file(world, worker, incident_date="2025-07-20")
    # Billing commits the 36th month (August 2022) between its answer that its outbox is
    # published and the claim's decision: the decision cannot see it, but it is not final.
    paid_just_after_billing_answered(world, worker, ["2022-08"])
    children = [{"name": "Anak Satu", "birth_date": "2014-03-01", "school_level": "SD"}]
    grant = await file(
        world, worker, kind="scholarship", incident_date="2025-07-20", children=children
    )
    assert (grant["status"], grant["reasons"]) == ("rejected", ["insufficient_contributions"])

    await relay_outbox("billing", world.kafka, world.database)

    await revised_to_approved(world, grant["claim_id"])


def paid_just_after_billing_answered(world: World, worker: uuid.UUID, periods: list[str]) -> None:
    """The next decision's wait hears billing answer that its outbox is published, and billing
    then commits the payment of ``periods`` (left in its outbox) before the decision."""
    answered = world.service.producers.published

    async def then_paid(sources: Sequence[str]) -> None:
        await answered(sources)
        if "billing" in sources:
            world.service.producers.published = answered  # type: ignore[method-assign]
            await pay_months(world.kafka, world.database, worker, periods, publish=False)

    world.service.producers.published = then_paid  # type: ignore[method-assign]


async def test_a_rejection_is_revised_only_on_the_facts_recorded_before_it(world: World) -> None:
    worker = uuid.uuid4()
    await start_coverage(
        world.kafka, world.database, worker, "regular", date(2024, 11, 1), date(2025, 10, 31)
    )
    await pay_months(world.kafka, world.database, worker, months("2024-11", 11))
    # Billing commits October's payment just before the decision; the death follows the
    # cover's end: not covered.
    paid_just_after_billing_answered(world, worker, ["2025-10"])
    death = await file(world, worker, incident_date="2025-11-04")
    assert (death["status"], death["reasons"]) == ("rejected", ["not_covered"])
    # The renewal, designated after the rejection, reaches claims before October's payment.
    await start_coverage(
        world.kafka, world.database, worker, "regular", date(2025, 11, 1), date(2026, 10, 31)
    )
    await consumed(world, "coverages WHERE worker_id = $1 AND start_date = '2025-11-01'", worker)
    await relay_outbox("billing", world.kafka, world.database)
    await consumed(world, "paid_months WHERE worker_id = $1 AND period = '2025-10'", worker)

    # The payment has the rejection judged again on what was recorded before it, the renewal
    # not among it: the rejection stands, as it does when claims reads every fact in order.
    status = await world.service.pool.fetchval(
        f"SELECT status FROM {world.service.schema}.worker_claims WHERE claim_id = $1",
        uuid.UUID(death["claim_id"]),
    )
    assert status == "rejected"


async def consumed(world: World, rows: str, worker: uuid.UUID) -> None:
    """Wait until claims' read model holds ``rows`` (kept with the reaction to the fact)."""
    deadline = asyncio.get_running_loop().time() + 30
    query = f"SELECT EXISTS (SELECT 1 FROM {world.service.schema}.{rows})"
    while not await world.service.pool.fetchval(query, worker):
        assert asyncio.get_running_loop().time() < deadline, f"never consumed: {rows}"
        await asyncio.sleep(0.1)


async def test_a_claim_is_refused_naming_the_producer_that_does_not_answer(
    kafka_settings: KafkaSettings, separate_database: DatabaseSettings
) -> None:
    kafka = await isolated(kafka_settings, separate_database, "claims-blind")
    # Billing answers; at enrolment's address no one listens.
    producers = await producers_in_process(
        separate_database, ["billing"], {"enrolment": f"http://127.0.0.1:{free_port()}"}
    )
    process, _ = await claims_wiring.build(kafka, separate_database, AUTH, producers)
    body = {
        "worker_id": str(uuid.uuid4()),
        "benefit": "JKM",
        "kind": "death",
        "incident_date": "2025-02-10",
        "claimant": HEIR,
    }
    async with running(process) as api:
        refused = await api.post("/claims", json=body, headers=as_officer() | new_key())

    assert refused.status_code == 503, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert "producer enrolment did not answer" in refused.json()["detail"]
    assert refused.headers["retry-after"] == "2"


async def revised_to_approved(world: World, claim_id: str) -> None:
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        seen = (await world.api.get(f"/claims/{claim_id}", headers=as_officer())).json()
        if seen["status"] == "approved":
            return
        assert asyncio.get_running_loop().time() < deadline, f"never revised: {seen}"
        await asyncio.sleep(0.1)


async def test_document_titles_are_sealed_and_notes_with_a_nik_refused(world: World) -> None:
    worker = uuid.uuid4()
    await start_coverage(
        world.kafka, world.database, worker, "regular", date(2024, 11, 1), date(2025, 10, 31)
    )
    await pay_months(world.kafka, world.database, worker, months("2024-11", 4))
    title = "Akta Kematian a.n. Sutrisno Hadi, NIK 3375010101800001"
    filed = await file(world, worker, incident_date="2025-02-10", documents=[title])
    assert filed["status"] == "approved"

    topic = world.kafka.events_topic("claims")
    raw = b""
    deadline = asyncio.get_running_loop().time() + 30
    while b"sealed_documents" not in raw:  # the claim's filing, once relayed
        assert asyncio.get_running_loop().time() < deadline, "the filing never reached its topic"
        await asyncio.sleep(0.1)
        raw = b"".join(
            [r.value async for batch in read_topics(world.kafka, [topic]) for r in batch]
        )
    assert b"Sutrisno" not in raw
    assert b"3375010101800001" not in raw
