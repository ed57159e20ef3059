"""Commands safe to retry, on the real stack: the same Idempotency-Key with the same request
answers the first answer and changes nothing; with another request it is refused and changes
nothing; an answer lost after the commit (the process gone before it replied) is answered again
by a retry; concurrent attempts under one key have one effect; concurrent commands on one
stream are decided again, never a server error."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

import asyncpg
import httpx
import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.billing import wiring as billing_wiring
from services.claims import wiring as claims_wiring
from services.enrolment import wiring as enrolment_wiring
from services.verification import wiring as verification_wiring
from shared.auth import AuthSettings
from shared.db import service_dsn
from shared.events.billing import BudgetAllocated
from shared.events.enrolment import WorkerRegisteredV1
from shared.sealing import SealedPersonal
from shared.settings import DatabaseSettings, KafkaSettings
from tests.integration import publishing
from tests.integration.sandbox import isolated, running
from tests.tokens import bearer

pytestmark = pytest.mark.integration
KRAPYAK = "33.75.01.1004"
SITI, ANI = "3375014507800003", "3375015203850001"


class AnswerLostError(ConnectionError):
    pass


class LosesAnswers:
    """The service, with its answer lost on the way back: the command committed, and the
    caller heard nothing, as when the process is killed between the commit and the reply."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def lost(message: Message) -> None:
            if message["type"] == "http.response.start":
                raise AnswerLostError("the connection closed before the answer")

        await self.app(scope, receive, lost)


@dataclass
class Billing:
    api: httpx.AsyncClient
    lossy: httpx.AsyncClient
    pool: asyncpg.Pool
    kafka: KafkaSettings
    database: DatabaseSettings

    async def events(self) -> int:
        return int(await self.pool.fetchval("SELECT count(*) FROM billing.events"))


@pytest.fixture
async def billing(
    kafka_settings: KafkaSettings, separate_database: DatabaseSettings
) -> AsyncIterator[Billing]:
    kafka = await isolated(kafka_settings, separate_database, "idempotency")
    process, _ = await billing_wiring.build(kafka, separate_database, AuthSettings())
    dsn = service_dsn(
        separate_database.database_url, "billing", separate_database.service_role_password
    )
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    lossy_transport = httpx.ASGITransport(app=LosesAnswers(process.app))
    try:
        async with (
            running(process) as api,
            httpx.AsyncClient(transport=lossy_transport, base_url="http://billing") as lossy,
        ):
            yield Billing(api, lossy, pool, kafka, separate_database)
    finally:
        await pool.close()


def budget(amount: int) -> dict[str, Any]:
    return {"fiscal_year": 2025, "source": "APBD", "cohort": "regular", "amount": amount}


def keyed(role: str, key: str) -> dict[str, str]:
    return bearer(role) | {"Idempotency-Key": key}  # type: ignore[arg-type]


async def retried_safely(
    world: Billing | Served, path: str, body: dict[str, Any], other: dict[str, Any], role: str
) -> dict[str, Any]:
    """Send once with the answer lost, then retry, then retry with another body: one effect."""
    key = keyed(role, str(uuid.uuid4()))
    before = await world.events()
    with pytest.raises(AnswerLostError):
        await world.lossy.post(path, json=body, headers=key)
    after_first = await world.events()
    assert after_first > before, "the first attempt committed"
    retry = await world.api.post(path, json=body, headers=key)
    assert retry.status_code == 201, retry.text
    again = await world.api.post(path, json=body, headers=key)
    assert again.json() == retry.json()
    refused = await world.api.post(path, json=other, headers=key)
    assert refused.status_code == 422, refused.text
    assert "Idempotency-Key was already used with a different request" in refused.text
    assert await world.events() == after_first, "the retries changed nothing"
    return dict(retry.json())


# A money operation sent once with its answer lost, retried, and sent with another body: the
# retried answer.
Retried = Callable[[str, dict[str, Any], dict[str, Any], str], Awaitable[dict[str, Any]]]


async def money_operations_walk(
    api: httpx.AsyncClient, kafka: KafkaSettings, database: DatabaseSettings, retried: Retried
) -> None:
    """A budget, a billing run and its payment, each through ``retried``: one effect each."""
    allocated = await retried("/budgets", budget(1_000_000), budget(2_000_000), "city_admin")
    assert allocated["stream_version"] == 1

    worker = uuid.uuid4()
    await publishing.start_coverage(
        kafka, database, worker, "regular", date(2025, 1, 1), date(2025, 12, 31)
    )
    for _ in range(200):  # 503 until billing's coverages caught up with the published coverage
        first = await api.post(
            "/billing-runs",
            json={"period": "2025-02"},
            headers=keyed("billing_officer", str(uuid.uuid4())),
        )
        if first.status_code != 503:
            break
        await asyncio.sleep(0.1)
    assert first.status_code == 201, first.text
    invoice = await retried(
        "/billing-runs", {"period": "2025-01"}, {"period": "2025-03"}, "billing_officer"
    )
    assert invoice["lines"] == 1

    paid = {"payment_ref": "SP2D 1", "paid_on": "2025-02-10", "amount": invoice["total"]}
    payment = await retried(
        f"/invoices/{invoice['invoice_id']}/payments",
        paid,
        paid | {"payment_ref": "SP2D 2"},
        "billing_officer",
    )
    assert payment["worker_months_paid"] == 1


async def test_money_operations_survive_a_lost_answer_and_refuse_a_reused_key(
    billing: Billing,
) -> None:
    async def retried(
        path: str, body: dict[str, Any], other: dict[str, Any], role: str
    ) -> dict[str, Any]:
        return await retried_safely(billing, path, body, other, role)

    await money_operations_walk(billing.api, billing.kafka, billing.database, retried)

    missing = await billing.api.post("/budgets", json=budget(5), headers=bearer("city_admin"))
    assert missing.status_code == 422
    assert "Idempotency-Key" in missing.text


async def test_concurrent_attempts_under_one_key_have_one_effect(billing: Billing) -> None:
    key = keyed("city_admin", str(uuid.uuid4()))
    before = await billing.events()
    answers = await asyncio.gather(
        *(billing.api.post("/budgets", json=budget(7_000), headers=key) for _ in range(4))
    )
    assert [a.status_code for a in answers] == [201] * 4
    assert len({a.text for a in answers}) == 1
    assert await billing.events() == before + 1


async def test_concurrent_commands_on_one_stream_are_decided_again(billing: Billing) -> None:
    # Every allocation of 2025 is on one stream: concurrent ones overtake each other.
    answers = await asyncio.gather(
        *(
            billing.api.post(
                "/budgets", json=budget(1_000 + n), headers=keyed("city_admin", str(uuid.uuid4()))
            )
            for n in range(6)
        )
    )
    codes = [a.status_code for a in answers]
    assert all(code in (201, 409) for code in codes), [a.text for a in answers]
    versions = sorted(a.json()["stream_version"] for a in answers if a.status_code == 201)
    assert versions == list(range(1, len(versions) + 1))
    assert await billing.events() == len(versions)


def person(nik: str, name: str) -> dict[str, Any]:
    return {
        "nik": nik,
        "full_name": name,
        "birth_date": "1980-07-05",
        "sex": "F",
        "occupation_code": "buruh_batik",
        "kelurahan_code": KRAPYAK,
        "address": "Jl. Krapyak 1",
    }


async def test_enrolment_commands_retried_under_a_key(
    kafka_settings: KafkaSettings, separate_database: DatabaseSettings
) -> None:
    async with served(
        "enrolment", enrolment_wiring.build, kafka_settings, separate_database
    ) as enrolment:
        await enrolment_commands(enrolment)


async def enrolment_commands(enrolment: Served) -> None:
    officer = bearer("kelurahan_officer", KRAPYAK)
    key = officer | {"Idempotency-Key": "registration-1"}
    first = await enrolment.api.post("/workers", json=person(SITI, "Siti"), headers=key)
    assert first.status_code == 201, first.text
    registered = await enrolment.events()
    again = await enrolment.api.post("/workers", json=person(SITI, "Siti"), headers=key)
    assert (again.status_code, again.json()["worker_id"]) == (201, first.json()["worker_id"])
    assert again.json()["already_registered"] is True
    # Another person under the same key is refused, not answered with the first worker.
    other = await enrolment.api.post("/workers", json=person(ANI, "Ani"), headers=key)
    assert other.status_code == 422, other.text
    assert "already used with a different request" in other.text
    assert await enrolment.events() == registered

    worker = first.json()["worker_id"]
    await publishing.start_coverage(
        enrolment.kafka,
        enrolment.database,
        uuid.UUID(worker),
        "regular",
        date(2024, 11, 1),
        date(2025, 10, 31),
    )
    for _ in range(100):  # a correction checks the officer's area on the workers read model
        if (await enrolment.api.get(f"/workers/{worker}", headers=officer)).status_code == 200:
            break
        await asyncio.sleep(0.1)
    for path, body, headers, changed in (
        (
            f"/workers/{worker}/corrections",
            {"reason": "typo in the name", "full_name": "Siti Aminah"},
            officer,
            {"reason": "typo in the name", "full_name": "Siti Aminah Dewi"},
        ),
        (
            f"/workers/{worker}/withdrawal",
            {"end_date": "2025-03-31"},
            bearer("city_admin"),
            {"end_date": "2025-04-30"},
        ),
    ):
        keyed_headers = headers | {"Idempotency-Key": f"once-{path}"}
        done = await enrolment.api.post(path, json=body, headers=keyed_headers)
        assert done.status_code == 201, done.text
        assert done.json()["stream_version"] > 0
        count = await enrolment.events()
        retry = await enrolment.api.post(path, json=body, headers=keyed_headers)
        assert retry.json() == done.json()
        refused = await enrolment.api.post(path, json=changed, headers=keyed_headers)
        assert refused.status_code == 422, refused.text
        assert "already used with a different request" in refused.text
        assert await enrolment.events() == count


@dataclass
class Served:
    """A service running in the test, with a client that loses its answers and a view of its
    store."""

    api: httpx.AsyncClient
    lossy: httpx.AsyncClient
    pool: asyncpg.Pool
    kafka: KafkaSettings
    database: DatabaseSettings
    schema: str

    async def events(self) -> int:
        return int(await self.pool.fetchval(f"SELECT count(*) FROM {self.schema}.events"))


@asynccontextmanager
async def served(
    name: str, build: Any, kafka_settings: KafkaSettings, database: DatabaseSettings
) -> AsyncIterator[Served]:
    kafka = await isolated(kafka_settings, database, "idempotency")
    process, _ = await build(kafka, database, AuthSettings())
    dsn = service_dsn(database.database_url, name, database.service_role_password)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    lossy_transport = httpx.ASGITransport(app=LosesAnswers(process.app))
    try:
        async with (
            running(process) as api,
            httpx.AsyncClient(transport=lossy_transport, base_url=f"http://{name}") as lossy,
        ):
            yield Served(api, lossy, pool, kafka, database, name)
    finally:
        await pool.close()


async def answered(send: Any) -> httpx.Response:
    """The answer once the service's read models caught up (503 and 404 until then)."""
    for _ in range(600):
        response: httpx.Response = await send()
        if response.status_code not in (404, 503):
            return response
        await asyncio.sleep(0.1)
    return response


async def test_claims_and_claim_payments_survive_a_lost_answer(
    kafka_settings: KafkaSettings, separate_database: DatabaseSettings
) -> None:
    async with served("claims", claims_wiring.build, kafka_settings, separate_database) as claims:
        worker = uuid.uuid4()
        await publishing.start_coverage(
            claims.kafka, claims.database, worker, "regular", date(2024, 11, 1), date(2025, 10, 31)
        )
        await publishing.pay_months(
            claims.kafka, claims.database, worker, ["2024-11", "2024-12", "2025-01"]
        )
        death = {
            "worker_id": str(worker),
            "benefit": "JKM",
            "kind": "death",
            "incident_date": "2025-01-20",
            "claimant": {"name": "Sri Wahyuni", "relationship": "spouse"},
        }
        # Wait until the coverage and the paid months are known: an answer that is decided.
        probe = keyed("claims_officer", "probe")
        other_worker = death | {"worker_id": str(uuid.uuid4()), "kind": "scholarship"}
        await answered(lambda: claims.api.post("/claims", json=other_worker, headers=probe))
        filed = await retried_safely(
            claims, "/claims", death, death | {"incident_date": "2025-01-21"}, "claims_officer"
        )
        assert (filed["status"], filed["total"]) == ("approved", 42_000_000)
        payment = {"payment_ref": "BPJS-1", "paid_on": "2025-02-01", "amount": 42_000_000}
        paid = await retried_safely(
            claims,
            f"/claims/{filed['claim_id']}/payments",
            payment,
            payment | {"payment_ref": "BPJS-2"},
            "claims_officer",
        )
        assert paid["status"] == "paid"


async def test_verification_decisions_retried_under_a_key(
    kafka_settings: KafkaSettings, separate_database: DatabaseSettings
) -> None:
    async with served(
        "verification", verification_wiring.build, kafka_settings, separate_database
    ) as verification:
        workers = [uuid.uuid4(), uuid.uuid4()]
        for worker in workers:
            await register(verification, worker)
        officer = bearer("kelurahan_officer", KRAPYAK)
        for worker, action, body, other in (
            (workers[0], "verify", {"note": "checked"}, {"note": "checked twice"}),
            (
                workers[1],
                "reject",
                {"reasons": ["documents_incomplete"]},
                {"reasons": ["not_resident"]},
            ),
        ):
            path = f"/cases/{worker}/{action}"
            key = officer | {"Idempotency-Key": f"decision-{worker}"}
            first = await answered(
                lambda p=path, k=key, b=body: verification.api.post(p, json=b, headers=k)
            )
            assert first.status_code == 200, first.text
            decided = await verification.events()
            again = await verification.api.post(path, json=body, headers=key)
            assert again.json() == first.json() | {"already_decided": True}
            refused = await verification.api.post(path, json=other, headers=key)
            assert refused.status_code == 422, refused.text
            assert "already used with a different request" in refused.text
            assert await verification.events() == decided


async def register(verification: Served, worker: uuid.UUID) -> None:
    """The worker's registration on enrolment's topic, which opens a case in verification."""
    await publishing.publish_as(
        "enrolment",
        verification.kafka,
        verification.database,
        f"worker-{worker}",
        [("WorkerRegistered", registered(worker), worker)],
    )


def registered(worker: uuid.UUID) -> WorkerRegisteredV1:
    """A registration as enrolment's first schema version wrote it (what the helper publishes)."""
    return WorkerRegisteredV1(
        worker_id=worker,
        personal=SealedPersonal(key_id=f"worker-{worker}", alg="AES-256-GCM", ciphertext="eA=="),
        birth_date=date(1980, 7, 5),
        sex="F",
        occupation_code="buruh_batik",
        kelurahan_code=KRAPYAK,
        kecamatan_code="33.75.01",
        insured_income=1_000_000,
        source="api",
    )


async def test_a_designation_retried_after_a_lost_answer_designates_once(
    kafka_settings: KafkaSettings, separate_database: DatabaseSettings
) -> None:
    async with served(
        "verification", verification_wiring.build, kafka_settings, separate_database
    ) as verification:
        worker = uuid.uuid4()
        await register(verification, worker)
        allocated = BudgetAllocated(
            fiscal_year=2025, source="APBD", amount=1_000_000, cohort="regular"
        )
        await publishing.publish_as(
            "billing",
            verification.kafka,
            verification.database,
            f"budget-2025-regular-{uuid.uuid4()}",
            [("BudgetAllocated", allocated, None)],
        )
        path = f"/cases/{worker}/verify"
        kelurahan = await answered(
            lambda: verification.api.post(
                path, json={}, headers=bearer("kelurahan_officer", KRAPYAK)
            )
        )
        assert kelurahan.status_code == 200, kelurahan.text
        kecamatan = await verification.api.post(
            path, json={}, headers=bearer("kecamatan_officer", "33.75.01")
        )
        assert kecamatan.status_code == 200, kecamatan.text
        for _ in range(600):  # designation checks the budget on verification's read model
            if await verification.pool.fetchval(
                "SELECT allocated FROM verification.budgets WHERE fiscal_year = 2025"
            ):
                break
            await asyncio.sleep(0.1)

        designation = {
            "cohort": "regular",
            "cover_months": 12,
            "coverage_start": "2025-01-01",
            "fiscal_year": 2025,
            "decree_ref": "SK 400/1/2025",
        }
        designate = f"/cases/{worker}/designate"
        key = keyed("city_admin", str(uuid.uuid4()))
        before = await verification.events()
        with pytest.raises(AnswerLostError):
            await verification.lossy.post(designate, json=designation, headers=key)
        designated = await verification.events()
        assert designated == before + 1, "the first attempt designated"

        retry = await verification.api.post(designate, json=designation, headers=key)
        assert retry.status_code == 200, retry.text
        assert retry.json()["stream_version"] == 3  # kelurahan, kecamatan, then the city
        again = await verification.api.post(designate, json=designation, headers=key)
        assert again.json() == retry.json()
        other = designation | {"decree_ref": "SK 400/2/2025"}
        refused = await verification.api.post(designate, json=other, headers=key)
        assert refused.status_code == 422, refused.text
        assert "already used with a different request" in refused.text
        assert await verification.events() == designated, "the retries designated nothing more"
