"""Enrolment and verification on the real stack: registration, a 3,000-row import with bad
rows, three verification levels, designation within and beyond quota and budget (one by one and
in one bulk request), coverage on
the topic and in both services' projections, and replays equal to the live projections."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from contract.events.claims import BenefitItem, ClaimApproved
from contract.events.registry import CATALOGUE
from contract.events.verification import Verified
from contract.policy import CohortRule, policy_book
from services.enrolment import wiring as enrolment_wiring
from services.enrolment.expiry import end_expired_coverages
from services.enrolment.import_jobs import ImportJobs
from services.enrolment.imports import COLUMNS
from services.enrolment.projections import PROJECTIONS as ENROLMENT_PROJECTIONS
from services.enrolment.service import EnrolmentService
from services.verification.api import create_app as verification_app
from services.verification.domain import designation_cost
from services.verification.projections import PROJECTIONS as VERIFICATION_PROJECTIONS
from services.verification.service import VerificationService
from shared.auth import AuthSettings
from shared.db import service_dsn
from shared.eventstore import EventStore, NewEvent
from shared.eventstore.store import CommandContext
from shared.projection.freshness import wait_until_caught_up
from shared.projection.replay import rebuild_into, rows_differing
from shared.projection.runner import ProjectionRunner
from shared.relay import OutboxRelay
from shared.runtime import ServiceProcess
from shared.settings import DatabaseSettings, KafkaSettings
from shared.topic_reader import read_topics
from tests.integration.producers import decided_after, producers_in_process
from tests.integration.publishing import publish_as, relay_outbox
from tests.tokens import bearer

pytestmark = pytest.mark.integration
AUTH = AuthSettings()
SAPURO = "33.75.01.1004"
BARAT = "33.75.01"


def as_kelurahan() -> dict[str, str]:
    return bearer("kelurahan_officer", SAPURO)


def as_kecamatan() -> dict[str, str]:
    return bearer("kecamatan_officer", BARAT)


def kelurahan_csv() -> dict[str, str]:
    """A kelurahan officer sending a file."""
    return {**as_kelurahan(), "content-type": "text/csv"}


def as_city() -> dict[str, str]:
    return bearer("city_admin")


def nik(n: int, birth: date, sex: str) -> str:
    day = birth.day + (40 if sex == "F" else 0)
    return f"337501{day:02d}{birth.month:02d}{birth.year % 100:02d}{n % 9999 + 1:04d}"


def csv_rows(count: int) -> tuple[bytes, set[int]]:
    """A kelurahan list of ``count`` rows; every 100th row is bad in its own way."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    bad = set()
    for i in range(count):
        birth = date(1965 + i % 35, 1 + i % 12, 1 + i % 28)
        sex = "F" if i % 2 else "M"
        row = [
            nik(i, birth, sex),
            f"Pekerja {i}",
            birth.isoformat(),
            sex,
            "tukang_becak",
            SAPURO,
            f"Gang {i}",
            "",
            "Ahli Waris",
            "spouse",
        ]
        if i % 100 == 7:
            bad.add(i + 2)
            kind = (i // 100) % 4
            if kind == 0:
                row[0] = row[0][:-4] + "0000"  # serial 0000
            elif kind == 1:
                row[2] = "1990-02-30"  # not a date
            elif kind == 2:
                row[4] = "dukun"  # not in the catalogue
            else:
                row[5] = "33.75.02.1004"  # another officer's kelurahan
        writer.writerow(row)
    return out.getvalue().encode(), bad


@dataclass
class Programme:
    enrolment: httpx.AsyncClient
    verification: httpx.AsyncClient
    kafka: KafkaSettings
    database: DatabaseSettings
    enrolment_pool: asyncpg.Pool
    verification_pool: asyncpg.Pool
    enrolment_service: EnrolmentService


async def allocate_budget(
    kafka: KafkaSettings,
    database: DatabaseSettings,
    amount: int,
    cohort: str,
    fiscal_year: int = 2024,
    publish: bool = True,
) -> None:
    """BudgetAllocated on billing's topic, the way billing records it (without ``publish``:
    committed by billing, still in its outbox)."""
    pool = await asyncpg.create_pool(
        service_dsn(database.database_url, "billing", database.service_role_password)
    )
    try:
        store = EventStore(pool, "billing", "billing")
        event = NewEvent(
            "BudgetAllocated",
            {"fiscal_year": fiscal_year, "source": "APBD", "amount": amount, "cohort": cohort},
            occurred_at=datetime(2024, 1, 5, tzinfo=UTC),
        )
        await store.append(
            f"budget-{fiscal_year}-{cohort}-{uuid.uuid4()}",
            0,
            [event],
            CommandContext("admin", "city_admin", uuid.uuid4()),
        )
        if not publish:
            return
        from aiokafka import AIOKafkaProducer

        from shared.kafka_clients import producer_options

        producer = AIOKafkaProducer(**producer_options(kafka))
        await producer.start()
        try:
            await OutboxRelay(
                pool, "billing", kafka.events_topic("billing"), producer
            ).publish_pending()
        finally:
            await producer.stop()
    finally:
        await pool.close()


@pytest.fixture
async def programme(migrated: DatabaseSettings, topics: KafkaSettings) -> AsyncIterator[Programme]:
    kafka, database = topics, migrated
    enrolment, enrolment_service = await enrolment_wiring.build(kafka, database, AUTH)
    # A small regular quota, so that "beyond quota" is reachable in a test.
    book = policy_book()
    small = tuple(
        p.model_copy(
            update={
                "cohorts": {
                    **p.cohorts,
                    "regular": CohortRule(min_months=12, max_months=12, default_quota=3),
                }
            }
        )
        for p in book.policies
    )
    verification_pool = await asyncpg.create_pool(
        service_dsn(database.database_url, "verification", database.service_role_password)
    )
    producers = await producers_in_process(database)
    verification_service = VerificationService(
        verification_pool, kafka, book.model_copy(update={"policies": small}), producers
    )
    verification = ServiceProcess(
        name="verification",
        app=verification_app(verification_service, AUTH),
        pool=verification_pool,
        producer=enrolment.producer,
        relay=OutboxRelay(
            verification_pool,
            "verification",
            kafka.events_topic("verification"),
            enrolment.producer,
        ),
        notify_channel=verification_service.store.notify_channel,
        runners=[
            ProjectionRunner(verification_pool, "verification", p, CATALOGUE, kafka)
            for p in VERIFICATION_PROJECTIONS
        ],
        kafka=kafka,
    )
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(process.relay.run(stop, process.notify_channel))
        for process in (enrolment, verification)
    ] + [asyncio.create_task(r.run(stop)) for p in (enrolment, verification) for r in p.runners]
    tasks.append(asyncio.create_task(ImportJobs(enrolment_service, poll_seconds=0.1).run(stop)))
    async with (
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=enrolment.app), base_url="http://enrolment"
        ) as e,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=verification.app), base_url="http://verification"
        ) as v,
    ):
        yield Programme(e, v, kafka, database, enrolment.pool, verification_pool, enrolment_service)
    stop.set()
    await asyncio.gather(*tasks)
    await enrolment.producer.stop()
    await enrolment.pool.close()
    await verification_pool.close()
    await producers.close()


async def eventually(check: object, within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        if await check():  # type: ignore[operator]
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)


async def imported(p: Programme, content: bytes) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """An import once its job is done, and its report's rows."""
    accepted = await p.enrolment.post("/imports", content=content, headers=kelurahan_csv())
    assert accepted.status_code == 202, accepted.text
    job = accepted.json()
    await eventually(lambda: import_done(p, accepted.headers["location"], job), within=300.0)
    report = await p.enrolment.get(job["report"], headers=as_kelurahan())
    return job, list(csv.DictReader(io.StringIO(report.text)))


async def import_done(p: Programme, location: str, job: dict[str, Any]) -> bool:
    job.update((await p.enrolment.get(location, headers=as_kelurahan())).json())
    return job["state"] == "done"


async def outbox_empty(pool: asyncpg.Pool, schema: str) -> bool:
    return bool(await pool.fetchval(f"SELECT count(*) = 0 FROM {schema}.outbox"))


async def register(p: Programme, n: int, birth: date = date(1980, 7, 5), sex: str = "F") -> str:
    body = {
        "nik": nik(9000 + n, birth, sex),
        "full_name": f"Worker {n}",
        "birth_date": birth.isoformat(),
        "sex": sex,
        "occupation_code": "buruh_batik",
        "kelurahan_code": SAPURO,
        "address": "Sapuro",
    }
    response = await p.enrolment.post("/workers", json=body, headers=as_kelurahan())
    assert response.status_code == 201, response.text
    return str(response.json()["worker_id"])


async def case_open(p: Programme, worker: str) -> bool:
    return bool(
        await p.verification_pool.fetchval(
            "SELECT 1 FROM verification.cases WHERE worker_id = $1 AND kelurahan_code IS NOT NULL",
            uuid.UUID(worker),
        )
    )


async def verify_twice(p: Programme, worker: str) -> None:
    await eventually(lambda: case_open(p, worker))
    for headers in (as_kelurahan(), as_kecamatan()):
        response = await p.verification.post(f"/cases/{worker}/verify", json={}, headers=headers)
        assert response.status_code == 200, response.text


def designation(months: int = 12, cohort: str = "regular") -> dict[str, object]:
    return {
        "cohort": cohort,
        "cover_months": months,
        "coverage_start": "2024-12-01",
        "fiscal_year": 2024,
        "decree_ref": "SK 400/77/2024",
    }


async def test_the_programme_from_registration_to_coverage(programme: Programme) -> None:
    p = programme

    # Registration, its refusals and the import.
    first = await register(p, 1)

    async def register_woman_of_1980(nik_value: str, name: str, kelurahan: str) -> httpx.Response:
        body = {
            "nik": nik_value,
            "full_name": name,
            "birth_date": "1980-07-05",
            "sex": "F",
            "occupation_code": "buruh_batik",
            "kelurahan_code": kelurahan,
            "address": "x",
        }
        return await p.enrolment.post("/workers", json=body, headers=as_kelurahan())

    duplicate = await register_woman_of_1980(nik(9001, date(1980, 7, 5), "F"), "Again", SAPURO)
    assert duplicate.status_code == 409
    assert duplicate.json()["worker_id"] == first
    elsewhere = await register_woman_of_1980(nik(9002, date(1980, 7, 5), "F"), "X", "33.75.02.1004")
    assert elsewhere.status_code == 403
    fullwidth = nik(9003, date(1980, 7, 5), "F").translate(
        str.maketrans("0123456789", "０１２３４５６７８９")
    )
    lookalike = await register_woman_of_1980(fullwidth, "X", SAPURO)
    assert lookalike.status_code == 422  # the same digits of another script are not a NIK
    assert (await p.enrolment.post("/workers", json={}, headers={})).status_code == 401

    content, bad_rows = csv_rows(3000)
    result, rows = await imported(p, content)
    assert result["registered"] == 3000 - len(bad_rows)
    assert {int(r["row"]) for r in rows if r["outcome"] == "refused"} == bad_rows
    again, again_rows = await imported(p, content)
    assert again["registered"] == 0
    assert again["already_registered"] == 3000 - len(bad_rows)
    assert again["batch_id"] == result["batch_id"]
    assert again["import_id"] != result["import_id"]
    # Each import keeps its own report: the first one still says who it registered.
    assert [r["outcome"] for r in rows].count("registered") == 3000 - len(bad_rows)
    assert [r["outcome"] for r in again_rows].count("already_registered") == 3000 - len(bad_rows)
    broken = await p.enrolment.post(
        "/imports",
        content=b"nik,full_name\n1,2\n",
        headers=kelurahan_csv(),
    )
    assert broken.status_code == 422
    assert "missing columns" in broken.json()["detail"]
    header = ",".join(COLUMNS) + "\n"
    row = (
        f"{nik(9001, date(1980, 3, 4), 'M')},Pekerja Ñoño,1980-03-04,M,tukang_becak,{SAPURO},x,,,\n"
    )
    latin1 = await p.enrolment.post(
        "/imports",
        content=(header + row).encode("latin-1"),
        headers=kelurahan_csv(),
    )
    assert latin1.status_code == 422
    assert "not UTF-8" in latin1.json()["detail"]
    _, twice = await imported(p, (header + row + row).encode())
    assert [r["outcome"] for r in twice] == ["registered", "refused"]
    assert twice[1]["reasons"] == "nik: the same NIK as row 2"
    # A malformed file (an unclosed quote swallowing the rest) is refused whole: the good row
    # before it is not registered either.
    fresh = (
        f"{nik(9002, date(1981, 5, 6), 'F')},Pekerja Baru,1981-05-06,F,tukang_becak,{SAPURO},y,,,\n"
    )
    malformed = await p.enrolment.post(
        "/imports",
        content=(header + fresh + '"unclosed,quote\n' + row).encode(),
        headers=kelurahan_csv(),
    )
    assert malformed.status_code == 422
    assert "line 4 is not valid CSV" in malformed.json()["detail"]
    _, alone = await imported(p, (header + fresh).encode())
    assert [r["outcome"] for r in alone] == ["registered"]
    # Files beyond the bounds of an import's storage are refused before any row.
    too_big = await p.enrolment.post(
        "/imports",
        content=header.encode() + b"x" * (160 * 2**20),
        headers=kelurahan_csv(),
    )
    assert too_big.status_code == 413
    assert "split the file" in too_big.json()["detail"]

    # Verification in order, by the right role and area.
    second, third, fourth, fifth = [await register(p, n) for n in range(2, 6)]
    await eventually(lambda: case_open(p, first))
    out_of_order = await p.verification.post(
        f"/cases/{first}/verify", json={}, headers=as_kecamatan()
    )
    assert out_of_order.status_code == 409
    wrong_area = await p.verification.post(
        f"/cases/{first}/verify", json={}, headers=bearer("kelurahan_officer", "33.75.02.1004")
    )
    # A case out of reach answers as one that does not exist, naming no place.
    assert wrong_area.status_code == 404
    assert "33.75" not in wrong_area.json()["detail"]
    rejected = await p.verification.post(
        f"/cases/{fifth}/reject", json={"reasons": ["documents_incomplete"]}, headers=as_kelurahan()
    )
    assert rejected.status_code == 200
    assert (
        await p.verification.post(f"/cases/{fifth}/verify", json={}, headers=as_kelurahan())
    ).status_code == 409

    # Designation: within budget and quota, then beyond each.
    for worker in (first, second, third, fourth):
        await verify_twice(p, worker)
    over_budget = await p.verification.post(
        f"/cases/{first}/designate", json=designation(), headers=as_city()
    )
    assert over_budget.status_code == 422
    assert "budget for 2024 has Rp0 left" in over_budget.json()["detail"]
    await allocate_budget(p.kafka, p.database, 3 * 12 * 16_800, "regular")
    await eventually(
        lambda: p.verification_pool.fetchval(
            "SELECT allocated FROM verification.budgets WHERE fiscal_year = 2024"
        )
    )
    for worker in (first, second):
        assert (
            await p.verification.post(
                f"/cases/{worker}/designate", json=designation(), headers=as_city()
            )
        ).status_code == 200
    three_months = await p.verification.post(
        f"/cases/{third}/designate", json=designation(months=3), headers=as_city()
    )
    assert three_months.status_code == 422  # regular cover is 12 months
    assert (
        await p.verification.post(
            f"/cases/{third}/designate", json=designation(), headers=as_city()
        )
    ).status_code == 200
    over_quota = await p.verification.post(
        f"/cases/{fourth}/designate", json=designation(), headers=as_city()
    )
    assert over_quota.status_code == 422
    assert "quota for 2024 is full: 3 of 3" in over_quota.json()["detail"]

    # Coverage: on enrolment's topic and in both services' projections.
    async def covered() -> bool:
        count = await p.enrolment_pool.fetchval(
            "SELECT count(*) FROM enrolment.workers WHERE status = 'covered'"
        )
        return bool(count == 3)

    await eventually(covered)
    started = [
        orjson.loads(r.value)
        async for batch in read_topics(p.kafka, [p.kafka.events_topic("enrolment")])
        for r in batch
        if dict(r.headers)["event_type"] == b"CoverageStarted"
    ]
    assert {e["worker_id"] for e in started} == {first, second, third}
    assert all(
        e["data"]["monthly_premium"] == {"total": 16800, "jkk": 10000, "jkm": 6800} for e in started
    )
    assert all(e["data"]["end_date"] == "2025-11-30" for e in started)
    coverage = (
        await p.enrolment.get(
            f"/workers/{first}/coverage", params={"on": "2025-06-01"}, headers=as_city()
        )
    ).json()
    assert coverage["covered"] is True
    annex = await p.verification.get(
        "/designations",
        params={"fiscal_year": 2024, "cohort": "regular", "format": "csv"},
        headers=as_city(),
    )
    assert annex.text.count("SK 400/77/2024") == 3
    worklist = (
        await p.verification.get(f"/worklists/kelurahan/{SAPURO}", headers=as_kelurahan())
    ).json()
    # The file's good rows, the one worker of the file with a repeated row and the one imported
    # alone after the malformed file.
    assert worklist["pending"] == 3000 - len(bad_rows) + 2

    # A withdrawal ends one coverage; the others expire after their last day.
    withdrawn = await p.enrolment.post(
        f"/workers/{third}/withdrawal", json={"end_date": "2025-03-31"}, headers=as_city()
    )
    assert withdrawn.status_code == 201, withdrawn.text

    async def periods_known() -> bool:
        count = await p.enrolment_pool.fetchval("SELECT count(*) FROM enrolment.coverages")
        return bool(count == 3)

    await eventually(periods_known)
    assert await end_expired_coverages(p.enrolment_service, date(2025, 11, 30)) == 0
    assert await end_expired_coverages(p.enrolment_service, date(2025, 12, 1)) == 2
    assert await end_expired_coverages(p.enrolment_service, date(2025, 12, 1)) == 0

    async def ended() -> bool:
        rows = await p.enrolment_pool.fetch(
            "SELECT worker_id, end_reason FROM enrolment.workers WHERE status = 'ended'"
        )
        return {str(r["worker_id"]): r["end_reason"] for r in rows} == {
            first: "expired",
            second: "expired",
            third: "withdrawn",
        }

    await eventually(ended)

    # Replays from the topics alone equal the live projections, once these have caught up.
    for pool, schema in ((p.enrolment_pool, "enrolment"), (p.verification_pool, "verification")):
        await eventually(lambda pool=pool, schema=schema: outbox_empty(pool, schema))
    for pool, schema, projections in (
        (p.enrolment_pool, "enrolment", ENROLMENT_PROJECTIONS),
        (p.verification_pool, "verification", VERIFICATION_PROJECTIONS),
    ):
        for projection in projections:
            await wait_until_caught_up(pool, schema, projection.name, p.kafka, projection.sources)
            rebuilt = await rebuild_into(pool, f"{schema}_scratch", projection, CATALOGUE, p.kafka)
            for table in projection.tables:
                assert await rows_differing(pool, table, schema, rebuilt.schema) == 0, table


async def test_a_death_is_a_fact_whatever_ran_first(programme: Programme) -> None:
    p = programme
    # Incidental cover (3 months from December 2024): the regular quota here is the first test's.
    await allocate_budget(p.kafka, p.database, 1_000_000, "incidental")
    worker = await register(p, 501)
    worker_id = uuid.UUID(worker)
    await verify_twice(p, worker)
    designated = await p.verification.post(
        f"/cases/{worker}/designate", json=designation(3, "incidental"), headers=as_city()
    )
    assert designated.status_code == 200, designated.text

    async def coverage_known() -> bool:
        return bool(
            await p.enrolment_pool.fetchval(
                "SELECT count(*) FROM enrolment.coverages WHERE worker_id = $1", worker_id
            )
        )

    await eventually(coverage_known)
    # The expiry job closes the coverage first (2024-12-01 to 2025-02-28) ...
    assert await end_expired_coverages(p.enrolment_service, date(2025, 3, 1)) >= 1
    worker_state, _ = await p.enrolment_service.load(worker_id)
    assert worker_state.coverages[0].ended_on == date(2025, 2, 28)
    # ... and only then does claims approve a death on 14 January 2025.
    approved = ClaimApproved(
        claim_id=uuid.uuid4(),
        worker_id=worker_id,
        items=[BenefitItem(code="JKM_LUMP_SUM", amount=42_000_000)],
        total=42_000_000,
        death_date=date(2025, 1, 14),
    )
    await publish_as(
        "claims",
        p.kafka,
        p.database,
        f"claim-{approved.claim_id}",
        [("ClaimApproved", approved, worker_id)],
    )

    async def recorded_as_deceased() -> bool:
        row = await p.enrolment_pool.fetchrow(
            "SELECT end_reason, coverage_end FROM enrolment.workers WHERE worker_id = $1",
            worker_id,
        )
        return bool(row and tuple(row) == ("deceased", date(2025, 1, 14)))

    await eventually(recorded_as_deceased)

    # Designated again for the next fiscal year: refused, saying why.
    async def death_known() -> bool:
        return bool(
            await p.verification_pool.fetchval(
                "SELECT died_on FROM verification.cases WHERE worker_id = $1", worker_id
            )
        )

    await eventually(death_known)
    renewal = designation(3, "incidental") | {"fiscal_year": 2025, "coverage_start": "2025-03-01"}
    refused = await p.verification.post(
        f"/cases/{worker}/designate", json=renewal, headers=as_city()
    )
    assert refused.status_code == 409, refused.text
    assert "died on 2025-01-14" in refused.text

    # A designation verification decided before it knew of the death: enrolment cannot start
    # the coverage, and says so in a dead letter rather than ignoring it.
    late = Verified(
        worker_id=worker_id,
        case_id=worker_id,
        level="city",
        cohort="incidental",
        cover_months=3,
        coverage_start=date(2026, 1, 1),
        fiscal_year=2026,
        decree_ref="SK 400/1/2026",
    )
    await publish_as(
        "verification", p.kafka, p.database, f"case-{worker}", [("Verified", late, worker_id)]
    )

    async def dead_lettered() -> bool:
        reasons = await p.enrolment_pool.fetch("SELECT reason FROM enrolment.dead_letters")
        return any("the worker has died" in r["reason"] for r in reasons)

    await eventually(dead_lettered)
    assert not await p.enrolment_pool.fetchval(
        "SELECT count(*) FROM enrolment.coverages WHERE worker_id = $1 AND start_date > $2",
        worker_id,
        date(2025, 1, 14),
    )


async def test_a_bulk_designation_refuses_alone_each_worker_it_cannot_designate(
    programme: Programme,
) -> None:
    p = programme
    # Fiscal year 2026, whose regular quota (3) no other test uses.
    await allocate_budget(p.kafka, p.database, 10 * 12 * 20_000, "regular", fiscal_year=2026)
    ready = [await register(p, n) for n in range(601, 605)]
    for worker in ready:
        await verify_twice(p, worker)
    not_validated = await register(p, 605)
    await eventually(lambda: case_open(p, not_validated))
    assert (
        await p.verification.post(f"/cases/{not_validated}/verify", json={}, headers=as_kelurahan())
    ).status_code == 200
    unknown = str(uuid.uuid4())
    listed = [ready[0], unknown, ready[1], not_validated, ready[2], ready[3]]
    body = designation() | {
        "fiscal_year": 2026,
        "coverage_start": "2026-01-01",
        "worker_ids": listed,
    }

    async def designated_in_2026() -> int:
        count = await p.verification_pool.fetchval(
            "SELECT designated FROM verification.designation_counts "
            "WHERE fiscal_year = 2026 AND cohort = 'regular'"
        )
        return int(count)

    await eventually(
        lambda: p.verification_pool.fetchval(
            "SELECT allocated FROM verification.budgets WHERE fiscal_year = 2026"
        )
    )
    key = {**as_city(), "Idempotency-Key": "decree 400/9/2026"}
    first = await p.verification.post("/cases/designate", json=body, headers=key)

    assert first.status_code == 200, first.text
    answer = first.json()
    outcomes = {o["worker_id"]: o for o in answer["outcomes"]}
    assert [o["worker_id"] for o in answer["outcomes"]] == listed
    assert (answer["designated"], answer["refused"]) == (3, 3)
    assert [outcomes[w]["designated"] for w in ready] == [True, True, True, False]
    assert outcomes[ready[3]]["status"] == 422
    assert "quota for 2026 is full: 3 of 3 designated" in outcomes[ready[3]]["detail"]
    assert outcomes[unknown]["status"] == 404
    assert "no case for worker" in outcomes[unknown]["detail"]
    assert outcomes[not_validated]["status"] == 409
    assert "at the kecamatan step, not city" in outcomes[not_validated]["detail"]
    assert await designated_in_2026() == 3

    replayed = await p.verification.post("/cases/designate", json=body, headers=key)
    assert replayed.status_code == 200, replayed.text
    again = replayed.json()
    assert [o["designated"] for o in again["outcomes"]] == [
        o["designated"] for o in answer["outcomes"]
    ]
    assert all(o["already_decided"] for o in again["outcomes"] if o["designated"])
    assert [o["stream_version"] for o in again["outcomes"]] == [
        o["stream_version"] for o in answer["outcomes"]
    ]
    assert await designated_in_2026() == 3

    other_list = body | {"worker_ids": [ready[3]]}
    reused = await p.verification.post("/cases/designate", json=other_list, headers=key)
    assert reused.status_code == 422, reused.text
    assert await designated_in_2026() == 3

    too_many = body | {"worker_ids": [unknown] * 5001}
    assert (
        await p.verification.post("/cases/designate", json=too_many, headers=as_city())
    ).status_code == 422
    by_kecamatan = await p.verification.post("/cases/designate", json=body, headers=as_kecamatan())
    assert by_kecamatan.status_code == 403


async def designated_in(p: Programme, fiscal_year: int) -> int:
    count = await p.verification_pool.fetchval(
        "SELECT designated FROM verification.designation_counts "
        "WHERE fiscal_year = $1 AND cohort = 'regular'",
        fiscal_year,
    )
    return int(count or 0)


async def budget_of(p: Programme, fiscal_year: int, amount: int) -> None:
    """``amount`` more of the year's regular budget, once verification's read model has it."""
    before = int(
        await p.verification_pool.fetchval(
            "SELECT coalesce(sum(allocated), 0) FROM verification.budgets "
            "WHERE fiscal_year = $1 AND cohort = 'regular'",
            fiscal_year,
        )
    )
    await allocate_budget(p.kafka, p.database, amount, "regular", fiscal_year=fiscal_year)

    async def allocated() -> bool:
        return bool(
            await p.verification_pool.fetchval(
                "SELECT allocated = $2 FROM verification.budgets "
                "WHERE fiscal_year = $1 AND cohort = 'regular'",
                fiscal_year,
                before + amount,
            )
        )

    await eventually(allocated)


async def ready_to_designate(p: Programme, numbers: range) -> list[str]:
    workers = [await register(p, n) for n in numbers]
    for worker in workers:
        await verify_twice(p, worker)
    return workers


def decree(
    fiscal_year: int, workers: list[str], number: str
) -> tuple[dict[str, object], dict[str, str]]:
    """A bulk designation of the workers for the year's regular cohort, and its key."""
    body = designation() | {
        "fiscal_year": fiscal_year,
        "coverage_start": f"{fiscal_year}-01-01",
        "worker_ids": workers,
    }
    return body, {**as_city(), "Idempotency-Key": f"decree {number}"}


def designated_by_an_earlier_request(answer: dict[str, Any]) -> dict[str, Any]:
    """The first answer as a retry receives it: each worker designated, by that request."""
    return answer | {
        "outcomes": [o | {"already_decided": o["designated"]} for o in answer["outcomes"]]
    }


async def test_a_bulk_designation_retried_after_the_budget_grew_designates_no_one_more(
    programme: Programme,
) -> None:
    p = programme
    # Fiscal year 2027, which no other test uses: a budget for one worker's cover of three.
    cover = designation_cost(12, policy_book(), date(2027, 1, 1))
    await budget_of(p, 2027, cover)
    workers = await ready_to_designate(p, range(701, 704))
    body, key = decree(2027, workers, "400/1/2027")
    first = await p.verification.post("/cases/designate", json=body, headers=key)
    assert first.status_code == 200, first.text
    answer = first.json()
    assert [o["designated"] for o in answer["outcomes"]] == [True, False, False]
    assert all("budget for 2027 has Rp0 left" in o["detail"] for o in answer["outcomes"][1:])

    # The budget grows: the retry under the same key is still the first answer, to the letter.
    await budget_of(p, 2027, 2 * cover)
    replayed = await p.verification.post("/cases/designate", json=body, headers=key)
    assert replayed.status_code == 200, replayed.text
    assert replayed.json() == designated_by_an_earlier_request(answer)
    assert await designated_in(p, 2027) == 1

    # Those refused are designated by a request of their own, on today's budget.
    again, renewed = decree(2027, workers[1:], "400/2/2027")
    second = await p.verification.post("/cases/designate", json=again, headers=renewed)
    assert (second.status_code, second.json()["designated"]) == (200, 2), second.text
    assert await designated_in(p, 2027) == 3


async def test_concurrent_first_attempts_of_a_bulk_designation_have_one_answer(
    programme: Programme,
) -> None:
    p = programme
    # Fiscal year 2028, which no other test uses: a budget for one worker's cover of two.
    await budget_of(p, 2028, designation_cost(12, policy_book(), date(2028, 1, 1)))
    workers = await ready_to_designate(p, range(801, 803))
    body, key = decree(2028, workers, "400/1/2028")
    answers = await asyncio.gather(
        *(p.verification.post("/cases/designate", json=body, headers=key) for _ in range(4))
    )

    assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
    firsts = [
        a.json() for a in answers if not any(o["already_decided"] for o in a.json()["outcomes"])
    ]
    assert len(firsts) == 1, [a.json() for a in answers]
    (first,) = firsts
    assert (first["designated"], first["refused"]) == (1, 1)
    assert all(a.json() in (first, designated_by_an_earlier_request(first)) for a in answers)
    assert await designated_in(p, 2028) == 1
    recorded = await p.verification_pool.fetchval(
        "SELECT count(*) FROM verification.request_answers WHERE idempotency_key LIKE $1",
        "%:decree 400/1/2028",
    )
    assert recorded == 1


async def test_a_designation_waits_for_a_budget_sitting_in_billings_outbox_and_uses_it(
    programme: Programme,
) -> None:
    p = programme
    worker = await register(p, 901)
    await verify_twice(p, worker)
    # Billing has committed the 2025 incidental budget; it is still in billing's outbox.
    await allocate_budget(p.kafka, p.database, 1_000_000, "incidental", 2025, publish=False)
    body = designation(3, "incidental") | {"coverage_start": "2025-12-01", "fiscal_year": 2025}
    designated = await decided_after(
        p.verification.post(f"/cases/{worker}/designate", json=body, headers=as_city()),
        lambda: relay_outbox("billing", p.kafka, p.database),
    )
    assert designated.status_code == 200, designated.text
