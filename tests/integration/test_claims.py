"""Claims on the real stack: decided by coverage and paid months, waiting on arrears, paid."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx
import pytest

from services.claims import wiring as claims_wiring
from shared.auth import AuthSettings
from shared.settings import DatabaseSettings, KafkaSettings
from tests.integration.publishing import pay_months, start_coverage
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


@pytest.fixture
async def world(
    kafka_settings: KafkaSettings, separate_database: DatabaseSettings
) -> AsyncIterator[World]:
    kafka = await isolated(kafka_settings, separate_database, "claims")
    process, _ = await claims_wiring.build(kafka, separate_database, AUTH)
    async with running(process) as api:
        yield World(api, kafka, separate_database)


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
    response = await world.api.post("/claims", json=body, headers={**as_officer(), **new_key()})
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
    assert (
        grant["total"] == 87_000_000 + 12_000_000
    )  # second child: one year of university before 23

    wrong = await world.api.post(
        f"/claims/{death['claim_id']}/payments",
        json={"payment_ref": "BPJS-1", "paid_on": "2025-03-01", "amount": 41_000_000},
        headers={**as_officer(), **new_key()},
    )
    assert wrong.status_code == 422
    paid = await world.api.post(
        f"/claims/{death['claim_id']}/payments",
        json={"payment_ref": "BPJS-1", "paid_on": "2025-03-01", "amount": 42_000_000},
        headers={**as_officer(), **new_key()},
    )
    assert paid.status_code == 201
    rejected_payment = await world.api.post(
        f"/claims/{second['claim_id']}/payments",
        json={"payment_ref": "BPJS-2", "paid_on": "2025-03-01", "amount": 1},
        headers={**as_officer(), **new_key()},
    )
    assert rejected_payment.status_code == 409
