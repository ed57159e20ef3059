"""Billing on the real stack: monthly runs, supplementary runs, payments, arrears."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date

import httpx
import pytest

from services.billing import wiring as billing_wiring
from shared.auth import AuthSettings
from shared.settings import DatabaseSettings, KafkaSettings
from tests.integration import publishing
from tests.integration.sandbox import isolated, running
from tests.tokens import bearer

pytestmark = pytest.mark.integration
AUTH = AuthSettings()


def as_officer() -> dict[str, str]:
    return bearer("billing_officer")


A, B, C = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


@dataclass
class World:
    api: httpx.AsyncClient
    kafka: KafkaSettings
    database: DatabaseSettings


async def start_coverage(
    world: World, worker: uuid.UUID, cohort: str, start: date, end: date
) -> None:
    await publishing.start_coverage(world.kafka, world.database, worker, cohort, start, end)


@pytest.fixture
async def world(
    kafka_settings: KafkaSettings, separate_database: DatabaseSettings
) -> AsyncIterator[World]:
    kafka = await isolated(kafka_settings, separate_database, "billing")
    process, _ = await billing_wiring.build(kafka, separate_database, AUTH)
    async with running(process) as api:
        yield World(api, kafka, separate_database)


async def run(world: World, period: str) -> httpx.Response:
    return await world.api.post(
        "/billing-runs", json={"period": period}, headers={**as_officer(), **new_key()}
    )


def new_key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


async def test_monthly_billing_payments_and_arrears(world: World) -> None:
    await start_coverage(world, A, "regular", date(2024, 11, 1), date(2025, 10, 31))
    await start_coverage(world, B, "incidental", date(2024, 11, 15), date(2025, 2, 14))

    december = await run(world, "2024-12")
    assert december.status_code == 201, december.text
    invoice = december.json()
    assert invoice["lines"] == 2
    assert invoice["total"] == 33_600
    assert {
        t["cohort"]: (t["workers"], t["total"], t["jkk"], t["jkm"]) for t in invoice["totals"]
    } == {
        "regular": (1, 16_800, 10_000, 6_800),
        "incidental": (1, 16_800, 10_000, 6_800),
    }
    again = await run(world, "2024-12")
    assert again.status_code == 422
    assert "no coverage in 2024-12 is left to invoice" in again.json()["detail"]

    january = (await run(world, "2025-01")).json()
    assert (january["lines"], january["supplementary"]) == (2, False)
    await start_coverage(world, C, "regular", date(2025, 1, 10), date(2025, 12, 31))
    supplementary = await run(world, "2025-01")
    assert supplementary.status_code == 201, supplementary.text
    assert (supplementary.json()["lines"], supplementary.json()["supplementary"]) == (1, True)
    march = (await run(world, "2025-03")).json()
    assert march["lines"] == 2  # B's cover ended in February

    def payment(ref: str, amount: int) -> dict[str, object]:
        return {"payment_ref": ref, "paid_on": "2024-12-20", "amount": amount}

    pay_december = f"/invoices/{invoice['invoice_id']}/payments"
    wrong = await world.api.post(
        pay_december, json=payment("SP2D 001", 33_599), headers={**as_officer(), **new_key()}
    )
    assert wrong.status_code == 422
    assert "differs from the invoice total Rp33,600" in wrong.json()["detail"]
    unknown = await world.api.post(
        f"/invoices/{uuid.uuid4()}/payments",
        json=payment("SP2D 001", 33_600),
        headers={**as_officer(), **new_key()},
    )
    assert unknown.status_code == 409
    paid = await world.api.post(
        pay_december, json=payment("SP2D 001", 33_600), headers={**as_officer(), **new_key()}
    )
    assert paid.status_code == 201
    assert paid.json()["worker_months_paid"] == 2
    twice = await world.api.post(
        f"/invoices/{january['invoice_id']}/payments",
        json=payment("SP2D 001", 33_600),
        headers={**as_officer(), **new_key()},
    )
    assert twice.status_code == 409
    assert "payment reference was used before" in twice.json()["detail"]

    async def standing(worker: uuid.UUID, on: str) -> dict[str, object]:
        for _ in range(100):
            response = (
                await world.api.get(
                    f"/workers/{worker}/standing", params={"on": on}, headers=as_officer()
                )
            ).json()
            if response["last_paid"] is not None or response["status"] != "GRACE":
                return dict(response)
            await asyncio.sleep(0.1)
        return dict(response)

    assert (await standing(A, "2024-12-15"))["status"] == "ACTIVE"
    late = await standing(A, "2025-01-20")
    assert (late["status"], late["arrears"]) == ("GRACE", ["2024-11", "2025-01"])

    # The city's January budget is late: paying January later turns it paid from then on.
    late_payment = payment("SP2D 017", 33_600) | {"paid_on": "2025-02-25"}
    assert (
        await world.api.post(
            f"/invoices/{january['invoice_id']}/payments",
            json=late_payment,
            headers={**as_officer(), **new_key()},
        )
    ).status_code == 201
    for _ in range(100):
        after = (
            await world.api.get(
                f"/workers/{A}/standing", params={"on": "2025-01-20"}, headers=as_officer()
            )
        ).json()
        if after["status"] == "ACTIVE":
            break
        await asyncio.sleep(0.1)
    assert after["status"] == "ACTIVE"
    assert after["arrears"] == ["2024-11"]
    assert (await standing(B, "2025-06-01"))["status"] == "NOT_COVERED"

    metrics = (await world.api.get("/metrics")).text
    assert (
        'berlian_commands_total{command="POST /billing-runs",outcome="accepted",service="billing"}'
        in metrics
    )
    refused_payments = 'command="POST /invoices/{invoice_id}/payments",outcome="refused"'
    assert f"berlian_commands_total{{{refused_payments}" in metrics
    assert 'berlian_events_appended_total{event_type="PremiumPaid",service="billing"}' in metrics
    assert "berlian_projection_lag_records{" in metrics
    assert str(A) not in metrics  # no worker ids in labels
