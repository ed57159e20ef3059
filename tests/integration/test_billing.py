"""Billing on the real stack: monthly runs, supplementary runs, payments, arrears."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date

import asyncpg
import httpx
import pytest

from contract.events.registry import CATALOGUE
from services.billing import wiring as billing_wiring
from services.billing.projections import PremiumsProjection
from shared.auth import AuthSettings
from shared.db import service_dsn
from shared.projection.replay import rebuild_into
from shared.settings import DatabaseSettings, KafkaSettings
from tests.integration import publishing
from tests.integration.producers import decided_after, producers_in_process
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
    producers = await producers_in_process(separate_database)
    process, _ = await billing_wiring.build(kafka, separate_database, AUTH, producers)
    async with running(process) as api:
        yield World(api, kafka, separate_database)


async def run(world: World, period: str) -> httpx.Response:
    return await world.api.post(
        "/billing-runs", json={"period": period}, headers=as_officer() | new_key()
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
    # January was run before billing saw C's coverage: C's January is invoiced as it arrives,
    # on a supplementary invoice, and a later run finds nothing left.
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        listed = await world.api.get(
            "/invoices", params={"period": "2025-01"}, headers=as_officer()
        )
        supplementary = [i for i in listed.json() if i["supplementary"]]
        if supplementary:
            break
        assert asyncio.get_running_loop().time() < deadline, "C's January never invoiced"
        await asyncio.sleep(0.1)
    assert supplementary[0]["lines"] == 1
    assert (await run(world, "2025-01")).status_code == 422
    march = (await run(world, "2025-03")).json()
    assert march["lines"] == 2  # B's cover ended in February

    def payment(ref: str, amount: int) -> dict[str, object]:
        return {"payment_ref": ref, "paid_on": "2024-12-20", "amount": amount}

    pay_december = f"/invoices/{invoice['invoice_id']}/payments"
    wrong = await world.api.post(
        pay_december, json=payment("SP2D 001", 33_599), headers=as_officer() | new_key()
    )
    assert wrong.status_code == 422
    assert "differs from the invoice total Rp33,600" in wrong.json()["detail"]
    unknown = await world.api.post(
        f"/invoices/{uuid.uuid4()}/payments",
        json=payment("SP2D 001", 33_600),
        headers=as_officer() | new_key(),
    )
    assert unknown.status_code == 409
    paid = await world.api.post(
        pay_december, json=payment("SP2D 001", 33_600), headers=as_officer() | new_key()
    )
    assert paid.status_code == 201
    assert paid.json()["worker_months_paid"] == 2
    twice = await world.api.post(
        f"/invoices/{january['invoice_id']}/payments",
        json=payment("SP2D 001", 33_600),
        headers=as_officer() | new_key(),
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
            headers=as_officer() | new_key(),
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


async def test_a_death_recorded_after_months_were_invoiced_cancels_them(world: World) -> None:
    deceased, other = uuid.uuid4(), uuid.uuid4()
    coverage = await publishing.start_coverage(
        world.kafka, world.database, deceased, "regular", date(2024, 11, 1), date(2025, 10, 31)
    )
    await start_coverage(world, other, "regular", date(2024, 11, 1), date(2025, 10, 31))
    february = (await run(world, "2025-02")).json()
    march = (await run(world, "2025-03")).json()
    paid = await world.api.post(
        f"/invoices/{february['invoice_id']}/payments",
        json={"payment_ref": "SP2D 201", "paid_on": "2025-02-20", "amount": 33_600},
        headers=as_officer() | new_key(),
    )
    assert paid.status_code == 201, paid.text

    # The death on 20 January is recorded only now, after both months were invoiced.
    await publishing.end_coverage(
        world.kafka, world.database, deceased, coverage, date(2025, 1, 20), "deceased"
    )

    async def march_total() -> int:
        listed = await world.api.get(
            "/invoices", params={"period": "2025-03"}, headers=as_officer()
        )
        return int(listed.json()[0]["total"])

    deadline = asyncio.get_running_loop().time() + 30
    while await march_total() != 16_800:
        assert asyncio.get_running_loop().time() < deadline, "March still bills the deceased"
        await asyncio.sleep(0.1)
    settled = await world.api.post(
        f"/invoices/{march['invoice_id']}/payments",
        json={"payment_ref": "SP2D 301", "paid_on": "2025-03-20", "amount": 16_800},
        headers=as_officer() | new_key(),
    )
    assert settled.status_code == 201, settled.text
    assert settled.json()["worker_months_paid"] == 1  # only the living worker's month
    april = (await run(world, "2025-04")).json()
    assert april["lines"] == 1

    # February was paid before the death was known: it stays paid (owed back to the city) and
    # is no longer invoiced; March's line for the deceased is gone; April bills one worker.
    async def regular() -> tuple[int, int]:
        report = (await world.api.get("/budgets/2024", headers=as_officer())).json()
        cohort = next(c for c in report["cohorts"] if c["cohort"] == "regular")
        return int(cohort["invoiced"]), int(cohort["paid"])

    deadline = asyncio.get_running_loop().time() + 30
    while await regular() != (3 * 16_800, 33_600 + 16_800):
        assert asyncio.get_running_loop().time() < deadline, await regular()
        await asyncio.sleep(0.1)

    # The premiums read model, replayed from the topic, is the live one.
    pool = await asyncpg.create_pool(
        service_dsn(world.database.database_url, "billing", world.database.service_role_password)
    )
    try:
        rebuilt = await rebuild_into(
            pool, "billing_scratch", PremiumsProjection(), CATALOGUE, world.kafka
        )
        live = await pool.fetch("SELECT * FROM billing.premiums ORDER BY worker_id, period")
        again = await pool.fetch(
            f"SELECT * FROM {rebuilt.schema}.premiums ORDER BY worker_id, period"
        )
        assert [dict(r) for r in again] == [dict(r) for r in live]
    finally:
        await pool.close()


async def test_a_coverage_seen_after_its_month_was_run_is_invoiced_then(world: World) -> None:
    early, late = uuid.uuid4(), uuid.uuid4()
    await start_coverage(world, early, "regular", date(2026, 1, 1), date(2026, 12, 31))
    january = await run(world, "2026-01")
    assert january.json()["lines"] == 1
    # Enrolment had recorded the second coverage already; billing reads it only now.
    await start_coverage(world, late, "regular", date(2025, 12, 1), date(2026, 11, 30))

    async def supplementary() -> list[dict[str, object]]:
        listed = await world.api.get(
            "/invoices", params={"period": "2026-01"}, headers=as_officer()
        )
        return [i for i in listed.json() if i["supplementary"]]

    deadline = asyncio.get_running_loop().time() + 30
    while not (found := await supplementary()):
        assert asyncio.get_running_loop().time() < deadline, "January never billed the late one"
        await asyncio.sleep(0.1)
    assert (found[0]["lines"], found[0]["total"]) == (1, 16_800)
    again = await run(world, "2026-01")
    assert again.status_code == 422  # nothing left to invoice: each worker-month once


async def test_a_run_waits_for_a_coverage_sitting_in_enrolments_outbox_and_invoices_it(
    world: World,
) -> None:
    worker = uuid.uuid4()
    # A first run (nothing to invoice) brings the service's clients up: the next one is timed.
    assert (await run(world, "2026-02")).status_code == 422
    # Enrolment has committed the coverage; it is still in enrolment's outbox, on no topic.
    await publishing.start_coverage(
        world.kafka,
        world.database,
        worker,
        "regular",
        date(2026, 3, 1),
        date(2026, 12, 31),
        publish=False,
    )
    invoiced = await decided_after(
        run(world, "2026-03"),
        lambda: publishing.relay_outbox("enrolment", world.kafka, world.database),
    )
    assert invoiced.status_code == 201, invoiced.text
    assert invoiced.json()["lines"] == 1


async def test_a_month_run_with_nobody_to_invoice_still_invoices_coverage_read_later(
    world: World,
) -> None:
    worker = uuid.uuid4()
    key = new_key()
    empty = await world.api.post(
        "/billing-runs", json={"period": "2026-05"}, headers=as_officer() | key
    )
    assert empty.status_code == 422, empty.text  # nobody to invoice, and May is run
    retried = await world.api.post(
        "/billing-runs", json={"period": "2026-05"}, headers=as_officer() | key
    )
    assert (retried.status_code, retried.json()["detail"]) == (422, empty.json()["detail"])
    # A designation whose cover starts in May reaches billing only after May's run.
    await start_coverage(world, worker, "regular", date(2026, 5, 1), date(2027, 4, 30))

    async def may() -> list[dict[str, object]]:
        listed = await world.api.get(
            "/invoices", params={"period": "2026-05"}, headers=as_officer()
        )
        return list(listed.json())

    deadline = asyncio.get_running_loop().time() + 30
    while not (found := await may()):
        assert asyncio.get_running_loop().time() < deadline, "May never billed the worker"
        await asyncio.sleep(0.1)
    assert [(i["supplementary"], i["lines"], i["total"]) for i in found] == [(True, 1, 16_800)]
    again = await run(world, "2026-05")
    assert again.status_code == 422  # invoiced once: nothing left for a later run
    lines = await world.api.get(f"/invoices/{found[0]['invoice_id']}", headers=as_officer())
    assert [(line["worker_id"], line["period"]) for line in lines.json()["lines"]] == [
        (str(worker), "2026-05")
    ]
    assert len(await may()) == 1
