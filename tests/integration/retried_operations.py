"""Every state-changing operation of the four services, in an order in which each can succeed,
as a client that retries it under its Idempotency-Key sends it: what it is sent, what another
request under the same key would be, and what makes it possible (``ready``).

``walk`` sends each through a ``Retry`` (its first answer lost to a closed connection or to a
killed process, then retried, then sent with the other request). ``tests/unit/test_retry_table``
holds the table to the committed OpenAPI documents: an operation without an entry fails it."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import httpx

from contract.events.billing import BudgetAllocated
from contract.events.enrolment import WorkerRegisteredV1
from contract.policy import policy_book
from services.claims import api as claims_api
from services.claims.service import ClaimsService
from services.enrolment.imports import COLUMNS
from shared.auth import AuthSettings, Role
from shared.db import service_dsn
from shared.keystore import PostgresKeyStore
from shared.sealing import SealedPersonal
from shared.settings import DatabaseSettings, KafkaSettings
from tests.integration import publishing
from tests.integration.producers import producers_in_process
from tests.integration.sandbox import eventually
from tests.tokens import bearer

KRAPYAK, PEKALONGAN_BARAT = "33.75.01.1004", "33.75.01"
SITI, ANI, DEWI = "3375014507800003", "3375015203850001", "3375016108900002"
HEIR = {"name": "Sri Wahyuni", "relationship": "spouse"}
# Filed when its first school year (2025/2026) was in progress: its next one has begun today.
AWARDED_AT = datetime(2025, 8, 1, 3, 0, tzinfo=UTC)
DECREE = {
    "cohort": "regular",
    "cover_months": 12,
    "coverage_start": "2025-01-01",
    "fiscal_year": 2025,
    "decree_ref": "SK 400/1/2025",
}
BATCH = DECREE | {"decree_ref": "SK 400/3/2025"}


@dataclass
class Seeded:
    """The service the operations act on (``api``, its store through ``pool``), the ids seeded
    for them, and the answers of the operations sent so far (by path)."""

    name: str
    api: httpx.AsyncClient
    pool: asyncpg.Pool
    kafka: KafkaSettings
    database: DatabaseSettings
    ids: dict[str, str] = field(default_factory=dict)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def count(self, table: str) -> int:
        return int(await self.pool.fetchval(f"SELECT count(*) FROM {self.name}.{table}"))


@dataclass(frozen=True)
class Sent:
    """One operation as a client sends it under one key: its request, another request, who
    sends it, how a retry is answered, and the table whose rows are its effect."""

    path: str
    body: Any  # JSON, or the bytes of a CSV file
    other: Any
    headers: dict[str, str]
    answered: int
    effect: str


# An operation sent with its first answer lost, retried, and sent with the other request: the
# retry's answer, once it checked that the retries changed nothing.
Retry = Callable[[Sent], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Operation:
    caller: tuple[Role, str | None]
    request: Callable[[Seeded], tuple[str, Any]]  # the path and the body
    other: Callable[[Seeded], Any]  # another body under the same key
    answered: int = 201  # how a retry is answered
    ready: Callable[[Seeded], Awaitable[None]] | None = None
    effect: str = "events"  # the table whose rows are what it did
    check: Callable[[dict[str, Any]], bool] | None = None  # of the answer


def keyed(role: str, key: str, area: str | None = None) -> dict[str, str]:
    return bearer(role, area) | {"Idempotency-Key": key}  # type: ignore[arg-type]


async def post(
    api: httpx.AsyncClient, path: str, body: Any, headers: dict[str, str]
) -> httpx.Response:
    if isinstance(body, bytes):
        return await api.post(path, content=body, headers=headers | {"content-type": "text/csv"})
    return await api.post(path, json=body, headers=headers)


async def answered(send: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
    """The answer once the service's read models caught up (503 and 404 until then)."""
    for _ in range(600):
        response = await send()
        if response.status_code not in (404, 503):
            return response
        await asyncio.sleep(0.1)
    return response


async def walk(
    world: Seeded, operations: Mapping[tuple[str, str], Operation], retry: Retry
) -> None:
    """Each operation, made possible, then sent through ``retry``."""
    for (_, template), operation in operations.items():
        if operation.ready is not None:
            await operation.ready(world)
        path, body = operation.request(world)
        role, area = operation.caller
        sent = Sent(
            path,
            body,
            operation.other(world),
            keyed(role, str(uuid.uuid4()), area),
            operation.answered,
            operation.effect,
        )
        answer = await retry(sent)
        assert operation.check is None or operation.check(answer), (template, answer)
        world.answers[template] = answer


# enrolment ---------------------------------------------------------------------------------
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


def csv_of(row: dict[str, Any]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    writer.writerow([row.get(column, "") for column in COLUMNS])
    return out.getvalue().encode()


def registered_worker(world: Seeded) -> str:
    return str(world.answers["/workers"]["worker_id"])


async def covered_and_listed(world: Seeded) -> None:
    """The registered worker covered, and on the workers read model a correction checks the
    officer's area on."""
    worker = registered_worker(world)
    await publishing.start_coverage(
        world.kafka,
        world.database,
        uuid.UUID(worker),
        "regular",
        date(2024, 11, 1),
        date(2025, 10, 31),
    )
    officer = bearer("kelurahan_officer", KRAPYAK)
    await answered(lambda: world.api.get(f"/workers/{worker}", headers=officer))


ENROLMENT: dict[tuple[str, str], Operation] = {
    ("POST", "/workers"): Operation(
        ("kelurahan_officer", KRAPYAK),
        lambda w: ("/workers", person(SITI, "Siti")),
        lambda w: person(ANI, "Ani"),
        check=lambda answer: answer["already_registered"] is True,
    ),
    ("POST", "/workers/{worker_id}/corrections"): Operation(
        ("kelurahan_officer", KRAPYAK),
        lambda w: (
            f"/workers/{registered_worker(w)}/corrections",
            {"reason": "typo in the name", "full_name": "Siti Aminah"},
        ),
        lambda w: {"reason": "typo in the name", "full_name": "Siti Aminah Dewi"},
        ready=covered_and_listed,
    ),
    ("POST", "/workers/{worker_id}/withdrawal"): Operation(
        ("city_admin", None),
        lambda w: (f"/workers/{registered_worker(w)}/withdrawal", {"end_date": "2025-03-31"}),
        lambda w: {"end_date": "2025-04-30"},
    ),
    ("POST", "/imports"): Operation(
        ("kelurahan_officer", KRAPYAK),
        lambda w: ("/imports", csv_of(person(DEWI, "Dewi"))),
        lambda w: csv_of(person(ANI, "Ani")),
        answered=200,  # the job accepted before (202 when first accepted)
        effect="import_jobs",
    ),
}


# verification ------------------------------------------------------------------------------
def registration(worker: uuid.UUID) -> WorkerRegisteredV1:
    """A registration as enrolment's first schema version wrote it (what the helper publishes)."""
    return WorkerRegisteredV1(
        worker_id=worker,
        personal=SealedPersonal(key_id=f"worker-{worker}", alg="AES-256-GCM", ciphertext="eA=="),
        birth_date=date(1980, 7, 5),
        sex="F",
        occupation_code="buruh_batik",
        kelurahan_code=KRAPYAK,
        kecamatan_code=PEKALONGAN_BARAT,
        insured_income=1_000_000,
        source="api",
    )


async def register(world: Seeded, worker: uuid.UUID) -> None:
    """The worker's registration on enrolment's topic, which opens a case in verification."""
    await publishing.publish_as(
        "enrolment",
        world.kafka,
        world.database,
        f"worker-{worker}",
        [("WorkerRegistered", registration(worker), worker)],
    )


async def cases_open(world: Seeded) -> None:
    """Four cases open (to verify, to reject, to designate alone and in a batch) and a budget
    for their designations on verification's read model."""
    for name in ("verified", "rejected", "designated", "designated_in_batch"):
        world.ids[name] = str(uuid.uuid4())
        await register(world, uuid.UUID(world.ids[name]))
    allocated = BudgetAllocated(fiscal_year=2025, source="APBD", amount=2_400_000, cohort="regular")
    await publishing.publish_as(
        "billing",
        world.kafka,
        world.database,
        f"budget-2025-regular-{uuid.uuid4()}",
        [("BudgetAllocated", allocated, None)],
    )
    case = f"/cases/{world.ids['designated_in_batch']}"
    await answered(lambda: world.api.get(case, headers=bearer("city_admin")))
    await eventually(
        lambda: world.pool.fetchval(
            f"SELECT allocated FROM {world.name}.budgets WHERE fiscal_year = 2025"
        )
    )


def validated(name: str) -> Callable[[Seeded], Awaitable[None]]:
    """The case passed at the kelurahan and the kecamatan: ready for the city's designation."""

    async def ready(world: Seeded) -> None:
        path = f"/cases/{world.ids[name]}/verify"
        for officer in (
            bearer("kelurahan_officer", KRAPYAK),
            bearer("kecamatan_officer", PEKALONGAN_BARAT),
        ):
            passed = await world.api.post(path, json={}, headers=officer)
            assert passed.status_code == 200, passed.text

    return ready


VERIFICATION: dict[tuple[str, str], Operation] = {
    ("POST", "/cases/{worker_id}/verify"): Operation(
        ("kelurahan_officer", KRAPYAK),
        lambda w: (f"/cases/{w.ids['verified']}/verify", {"note": "checked"}),
        lambda w: {"note": "checked twice"},
        answered=200,
        ready=cases_open,
        check=lambda answer: answer["already_decided"] is True,
    ),
    ("POST", "/cases/{worker_id}/reject"): Operation(
        ("kelurahan_officer", KRAPYAK),
        lambda w: (f"/cases/{w.ids['rejected']}/reject", {"reasons": ["documents_incomplete"]}),
        lambda w: {"reasons": ["not_resident"]},
        answered=200,
    ),
    ("POST", "/cases/{worker_id}/designate"): Operation(
        ("city_admin", None),
        lambda w: (f"/cases/{w.ids['designated']}/designate", DECREE),
        lambda w: DECREE | {"decree_ref": "SK 400/2/2025"},
        answered=200,
        ready=validated("designated"),
        check=lambda answer: answer["stream_version"] == 3,  # kelurahan, kecamatan, city
    ),
    ("POST", "/cases/designate"): Operation(
        ("city_admin", None),
        lambda w: ("/cases/designate", BATCH | {"worker_ids": [w.ids["designated_in_batch"]]}),
        lambda w: BATCH | {"worker_ids": [w.ids["designated_in_batch"]], "cover_months": 6},
        answered=200,
        ready=validated("designated_in_batch"),
        # The first answer, recorded whole under the request's key, the worker marked as
        # designated by that first attempt.
        check=lambda answer: answer["designated"] == 1 and answer["outcomes"][0]["already_decided"],
    ),
}


# billing -----------------------------------------------------------------------------------
def budget(amount: int) -> dict[str, Any]:
    return {"fiscal_year": 2025, "source": "APBD", "cohort": "regular", "amount": amount}


async def coverage_billed(world: Seeded) -> None:
    """A coverage on billing's read model: a run bills its month (503 until caught up)."""
    worker = uuid.uuid4()
    await publishing.start_coverage(
        world.kafka, world.database, worker, "regular", date(2025, 1, 1), date(2025, 12, 31)
    )
    first = await answered(
        lambda: world.api.post(
            "/billing-runs",
            json={"period": "2025-02"},
            headers=keyed("billing_officer", str(uuid.uuid4())),
        )
    )
    assert first.status_code == 201, first.text


def invoice_payment(world: Seeded) -> dict[str, Any]:
    return {
        "payment_ref": "SP2D 1",
        "paid_on": "2025-02-10",
        "amount": world.answers["/billing-runs"]["total"],
    }


BILLING: dict[tuple[str, str], Operation] = {
    ("POST", "/budgets"): Operation(
        ("city_admin", None),
        lambda w: ("/budgets", budget(1_000_000)),
        lambda w: budget(2_000_000),
        check=lambda answer: answer["stream_version"] == 1,
    ),
    ("POST", "/billing-runs"): Operation(
        ("billing_officer", None),
        lambda w: ("/billing-runs", {"period": "2025-01"}),
        lambda w: {"period": "2025-03"},
        ready=coverage_billed,
        check=lambda answer: answer["lines"] == 1,
    ),
    ("POST", "/invoices/{invoice_id}/payments"): Operation(
        ("billing_officer", None),
        lambda w: (
            f"/invoices/{w.answers['/billing-runs']['invoice_id']}/payments",
            invoice_payment(w),
        ),
        lambda w: invoice_payment(w) | {"payment_ref": "SP2D 2"},
        check=lambda answer: answer["worker_months_paid"] == 1,
    ),
}


# claims ------------------------------------------------------------------------------------
def death_of(worker: str, incident_date: str = "2025-01-20") -> dict[str, Any]:
    return {
        "worker_id": worker,
        "benefit": "JKM",
        "kind": "death",
        "incident_date": incident_date,
        "claimant": HEIR,
    }


async def members_known(world: Seeded) -> None:
    """A widow's late husband, paid up to his death, and a member whose children's scholarship
    was awarded last school year, on claims' read models."""
    months = ["2024-11", "2024-12", *(f"2025-{month:02d}" for month in range(1, 8))]
    for name, paid in (("widow", months[:3]), ("scholar", months)):
        world.ids[name] = str(uuid.uuid4())
        worker = uuid.UUID(world.ids[name])
        await publishing.start_coverage(
            world.kafka, world.database, worker, "regular", date(2024, 11, 1), date(2025, 10, 31)
        )
        await publishing.pay_months(world.kafka, world.database, worker, paid)
    # Until the coverages and the paid months are known, a filing is answered 503: the first
    # attempt is decided (a stranger's death claim is refused as not covered).
    stranger = death_of(str(uuid.uuid4()))
    probe = keyed("claims_officer", str(uuid.uuid4()))
    decided = await answered(lambda: world.api.post("/claims", json=stranger, headers=probe))
    assert decided.status_code == 201, decided.text


async def award_paid_last_school_year(world: Seeded) -> None:
    """A scholarship award after the scholar's death at work, filed and its first school year
    paid in August 2025, through the claims API on that day's clock."""
    dsn = service_dsn(world.database.database_url, "claims", world.database.service_role_password)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    keys = PostgresKeyStore.from_environment(pool)
    producers = await producers_in_process(world.database)
    then = ClaimsService(
        pool, world.kafka, keys, policy_book(), producers, clock=lambda: AWARDED_AT
    )
    transport = httpx.ASGITransport(app=claims_api.create_app(then, AuthSettings()))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://claims") as api:
            death = death_of(world.ids["scholar"], "2025-07-20") | {"benefit": "JKK"}
            child = {"name": "Anak Satu", "birth_date": "2015-01-01", "school_level": "SD"}
            for body in (death, death | {"kind": "scholarship", "children": [child]}):
                filed = await api.post(
                    "/claims", json=body, headers=keyed("claims_officer", str(uuid.uuid4()))
                )
                assert filed.json()["status"] == "approved", filed.text
            award = filed.json()
            first_year = {"payment_ref": "BPJS-S1", "paid_on": "2025-08-01"}
            paid = await api.post(
                f"/claims/{award['claim_id']}/payments",
                json=first_year | {"amount": award["total"]},
                headers=keyed("claims_officer", str(uuid.uuid4())),
            )
            assert paid.status_code == 201, paid.text
    finally:
        await then.offsets.close()
        await producers.close()
        await pool.close()
    world.ids["award"] = award["claim_id"]
    world.ids["next_school_year"] = min(i["school_year"] for i in award["open_instalments"])


def claim_payment(world: Seeded) -> dict[str, Any]:
    return {"payment_ref": "BPJS-1", "paid_on": "2025-02-01", "amount": 42_000_000}


def next_instalment(world: Seeded) -> dict[str, Any]:
    school_year = world.ids["next_school_year"]
    return {"child": "child-1", "school_year": school_year, "married": False, "working": False}


CLAIMS: dict[tuple[str, str], Operation] = {
    ("POST", "/claims"): Operation(
        ("claims_officer", None),
        lambda w: ("/claims", death_of(w.ids["widow"])),
        lambda w: death_of(w.ids["widow"], "2025-01-21"),
        ready=members_known,
        check=lambda answer: (answer["status"], answer["total"]) == ("approved", 42_000_000),
    ),
    ("POST", "/claims/{claim_id}/payments"): Operation(
        ("claims_officer", None),
        lambda w: (f"/claims/{w.answers['/claims']['claim_id']}/payments", claim_payment(w)),
        lambda w: claim_payment(w) | {"payment_ref": "BPJS-2"},
        check=lambda answer: answer["status"] == "paid",
    ),
    ("POST", "/claims/{claim_id}/instalments"): Operation(
        ("claims_officer", None),
        lambda w: (f"/claims/{w.ids['award']}/instalments", next_instalment(w)),
        lambda w: next_instalment(w) | {"working": True},
        ready=award_paid_last_school_year,
        check=lambda answer: answer["status"] == "approved",
    ),
}

OPERATIONS: dict[str, dict[tuple[str, str], Operation]] = {
    "enrolment": ENROLMENT,
    "verification": VERIFICATION,
    "billing": BILLING,
    "claims": CLAIMS,
}
