"""Every endpoint of the four services, for every role in its own area and in another, on the
real stack: the expected answer, listings holding only the caller's area, and the profile
(birth date, sex, occupation) only for roles acting on the person.

The endpoints are the apps' own OpenAPI paths: one without an entry here fails the test, so a
new endpoint is placed in the matrix before it ships."""

from __future__ import annotations

import csv
import io
import itertools
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.billing import wiring as billing_wiring
from services.claims import wiring as claims_wiring
from services.enrolment import wiring as enrolment_wiring
from services.enrolment.import_jobs import ImportJobs
from services.enrolment.imports import COLUMNS
from services.verification import wiring as verification_wiring
from shared.auth import AuthSettings, Role
from shared.runtime import ServiceProcess
from shared.settings import DatabaseSettings, KafkaSettings
from tests.integration.producers import producers_in_process
from tests.integration.sandbox import eventually, isolated, running
from tests.tokens import bearer

pytestmark = pytest.mark.integration

# Two kelurahan of Pekalongan Barat, and one of Pekalongan Utara.
SAPURO, MEDONO, KRAPYAK = "33.75.01.1004", "33.75.01.1002", "33.75.03.1002"
BARAT, UTARA = "33.75.01", "33.75.03"
CITY_ROLES: tuple[Role, ...] = ("city_admin", "billing_officer", "claims_officer", "auditor")


@dataclass(frozen=True)
class Caller:
    name: str
    role: Role
    area: str | None

    @property
    def kelurahan_seen(self) -> frozenset[str]:
        """The seeded kelurahan this caller's listings show, and no other."""
        seeded = {SAPURO, MEDONO, KRAPYAK}
        if self.role == "kecamatan_officer":
            return frozenset(k for k in seeded if k.rsplit(".", 1)[0] == self.area)
        return frozenset(seeded if self.area is None else seeded & {self.area})


# The seeded worker acted on lives in Sapuro: "own" reaches it, "other" does not.
CALLERS = (
    Caller("kelurahan own", "kelurahan_officer", SAPURO),
    Caller("kelurahan other", "kelurahan_officer", MEDONO),  # the same kecamatan
    Caller("kecamatan own", "kecamatan_officer", BARAT),
    Caller("kecamatan other", "kecamatan_officer", UTARA),
    *(Caller(role, role, None) for role in CITY_ROLES),
)
# Tokens whose area does not fit the role: refused on every endpoint.
BAD_AREAS: tuple[tuple[Role, Any], ...] = (
    ("kelurahan_officer", ""),
    ("kelurahan_officer", "33.75"),
    ("kelurahan_officer", BARAT),
    ("kelurahan_officer", "33.75.01.1004.1"),
    ("kelurahan_officer", 33750110),
    ("kelurahan_officer", [SAPURO]),
    ("kecamatan_officer", SAPURO),
    ("city_admin", BARAT),
)


@dataclass
class World:
    """What the probes act on, seeded through the APIs."""

    clients: Mapping[str, httpx.AsyncClient]
    apps: Mapping[str, FastAPI]
    worker: str  # in Sapuro: read, corrected, designated
    worker_nik: str
    to_verify: str  # in Sapuro: passed at each level in turn
    to_reject: str  # in Sapuro
    import_id: str  # imported by Sapuro's officer
    claim_id: str
    seeded: dict[str, int] = field(default_factory=dict)  # workers per kelurahan
    added: int = 0  # registered in Sapuro by the probes: projected, or not yet
    serials: itertools.count[int] = field(default_factory=lambda: itertools.count(100))

    def person(self, kelurahan: str = SAPURO) -> dict[str, str]:
        serial = next(self.serials)
        return {
            "nik": f"337501550890{serial:04d}",
            "full_name": f"Sri Wahyuni {serial}",
            "birth_date": "1990-08-15",
            "sex": "F",
            "occupation_code": "penyandang_disabilitas",
            "kelurahan_code": kelurahan,
            "address": f"Gang {serial}",
        }

    def csv_of(self, person: dict[str, str]) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        writer.writerow([person.get(column, "") for column in COLUMNS])
        return out.getvalue().encode()


@dataclass(frozen=True)
class Call:
    path: str
    json: Any = None
    params: dict[str, str] | None = None
    csv: bytes | None = None


Check = Callable[[Caller, World, httpx.Response], None]


@dataclass(frozen=True)
class Probe:
    call: Callable[[World], Call]
    expect: Mapping[str, int]  # caller name -> status
    check: Check | None = None  # on the answers that succeeded


DECREE = {
    "cohort": "regular",
    "cover_months": 12,
    "coverage_start": "2025-01-01",
    "fiscal_year": 2025,
    "decree_ref": "SK 1/2025",
}


def statuses(
    allowed: tuple[str, ...],
    ok: int = 200,
    other: int = 403,
    overrides: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """Each caller's status: 403 for a role not allowed; for an allowed officer of another area
    ``other``; ``ok`` otherwise; then ``overrides`` by caller name."""
    expect = {
        caller.name: 403
        if caller.role not in allowed
        else (other if caller.name.endswith("other") else ok)
        for caller in CALLERS
    }
    return expect | dict(overrides or {})


ALL: tuple[str, ...] = ("kelurahan_officer", "kecamatan_officer", *CITY_ROLES)
OFFICERS_AND_CITY = ("kelurahan_officer", "kecamatan_officer", "city_admin", "auditor")
ACTING = ("kelurahan_officer", "kecamatan_officer", "city_admin", "claims_officer")


def bulk_designation_refused(answer: httpx.Response) -> None:
    """The worker already designated is refused alone, inside the answer, as alone."""
    [outcome] = answer.json()["outcomes"]
    assert (outcome["designated"], outcome["status"]) == (False, 409), outcome


def workers_within(caller: Caller, world: World, answer: httpx.Response) -> None:
    shown = {w["kelurahan_code"] for w in answer.json()}
    assert shown == caller.kelurahan_seen, (caller, shown)
    profile_shown(caller, answer.json())


def profile_shown(caller: Caller, views: list[dict[str, Any]]) -> None:
    for view in views:
        if caller.role in ACTING:
            assert view["occupation_code"] == "penyandang_disabilitas", caller
            assert view["birth_date"] == "1990-08-15", caller
            assert view["sex"] == "F", caller
            assert view["personal"]["nik"], caller
        else:
            hidden = ("birth_date", "sex", "occupation_code")
            assert [view[k] for k in hidden] == [None, None, None], caller
            assert view["personal"] is None, caller


def one_worker(caller: Caller, world: World, answer: httpx.Response) -> None:
    profile_shown(caller, [answer.json()])


def sapuro_only(caller: Caller, world: World, answer: httpx.Response) -> None:
    assert {w["kelurahan_code"] for w in answer.json()} == {SAPURO}, caller
    profile_shown(caller, answer.json())


def added(caller: Caller, world: World, answer: httpx.Response) -> None:
    world.added += 1


def imported_within(caller: Caller, world: World, answer: httpx.Response) -> None:
    if caller.area == SAPURO:  # its row registered once the job has run: projected, or not yet
        world.added += 1


def found_by_nik(caller: Caller, world: World, answer: httpx.Response) -> None:
    found = [w["worker_id"] for w in answer.json()]
    assert found == ([world.worker] if SAPURO in caller.kelurahan_seen else []), caller


def searched_within(caller: Caller, world: World, answer: httpx.Response) -> None:
    page = answer.json()
    shown = {w["kelurahan_code"] for w in page["workers"]}
    assert shown == caller.kelurahan_seen, (caller, shown)
    assert page["total"] == len(page["workers"]), (caller, page)
    assert page["searched_all"], (caller, page)
    profile_shown(caller, page["workers"])


def second_of_many(caller: Caller, world: World, answer: httpx.Response) -> None:
    page = answer.json()
    # Sapuro holds four seeded workers, all named alike: the second page of one holds one.
    assert page["total"] >= 4, (caller, page)
    assert page["offset"] == 1, (caller, page)
    assert [w["kelurahan_code"] for w in page["workers"]] == [SAPURO], (caller, page)


def searched_by_nik(caller: Caller, world: World, answer: httpx.Response) -> None:
    found = [w["worker_id"] for w in answer.json()["workers"]]
    assert found == ([world.worker] if SAPURO in caller.kelurahan_seen else []), caller


def summary_within(caller: Caller, world: World, answer: httpx.Response) -> None:
    counted = sum(row["workers"] for row in answer.json()["workers"])
    least = sum(world.seeded[k] for k in caller.kelurahan_seen)
    most = least + (world.added if SAPURO in caller.kelurahan_seen else 0)
    assert least <= counted <= most, (caller, counted)


def cases_within(caller: Caller, world: World, answer: httpx.Response) -> None:
    shown = {c["kelurahan_code"] for c in answer.json()["cases"]}
    assert shown <= caller.kelurahan_seen, (caller, shown)


def case_profile(caller: Caller, world: World, answer: httpx.Response) -> None:
    assert (answer.json()["birth_date"] is not None) is (caller.role in ACTING), caller


MATRIX: dict[tuple[str, str, str], tuple[Probe, ...]] = {
    # enrolment
    ("enrolment", "POST", "/workers"): (
        Probe(
            lambda w: Call("/workers", json=w.person()),
            statuses(("kelurahan_officer",), 201),
            added,
        ),
    ),
    ("enrolment", "POST", "/imports"): (
        Probe(
            lambda w: Call("/imports", csv=w.csv_of(w.person())),
            # A job for every kelurahan officer: it refuses the rows outside their area.
            statuses(("kelurahan_officer",), 202, other=202),
            imported_within,
        ),
    ),
    ("enrolment", "GET", "/imports/{import_id}"): (
        Probe(
            lambda w: Call(f"/imports/{w.import_id}"),
            statuses(OFFICERS_AND_CITY, other=404),
        ),
    ),
    ("enrolment", "GET", "/imports/{import_id}/report.csv"): (
        Probe(
            lambda w: Call(f"/imports/{w.import_id}/report.csv"),
            statuses(OFFICERS_AND_CITY, other=404),
        ),
    ),
    ("enrolment", "POST", "/workers/{worker_id}/corrections"): (
        Probe(
            lambda w: Call(
                f"/workers/{w.worker}/corrections",
                json={"reason": "address checked", "address": f"Gang {next(w.serials)}"},
            ),
            # A worker of another area answers as if there were none, as reading it does.
            statuses(("kelurahan_officer",), 201, other=404),
        ),
        # A move to another kelurahan of the same kecamatan: out of every officer's reach (the
        # place the caller names is refused as such; a worker out of reach is not found).
        Probe(
            lambda w: Call(
                f"/workers/{w.worker}/corrections",
                json={"reason": "moved house", "kelurahan_code": MEDONO},
            ),
            statuses(("kelurahan_officer",), 403, other=404),
        ),
    ),
    ("enrolment", "POST", "/workers/{worker_id}/withdrawal"): (
        # No open coverage to end: past the gate, refused by the rules.
        Probe(
            lambda w: Call(f"/workers/{w.worker}/withdrawal", json={"end_date": "2025-01-31"}),
            statuses(("city_admin",), 409),
        ),
    ),
    ("enrolment", "GET", "/summary"): (
        Probe(lambda w: Call("/summary"), statuses(ALL, other=200), summary_within),
    ),
    ("enrolment", "GET", "/workers/{worker_id}"): (
        Probe(lambda w: Call(f"/workers/{w.worker}"), statuses(ALL, other=404), one_worker),
    ),
    ("enrolment", "GET", "/workers"): (
        Probe(lambda w: Call("/workers"), statuses(ALL, other=200), workers_within),
        Probe(
            lambda w: Call("/workers", params={"kelurahan": SAPURO}),
            statuses(ALL),
            sapuro_only,
        ),
        Probe(
            lambda w: Call("/workers", params={"nik": w.worker_nik}),
            statuses(ACTING, other=200),
            found_by_nik,
        ),
    ),
    ("enrolment", "GET", "/workers/search"): (
        # Any part of the name, whatever its case; within the caller's area only.
        Probe(
            lambda w: Call("/workers/search", params={"q": "sri WAHYUNI"}),
            statuses(ACTING, other=200),
            searched_within,
        ),
        Probe(
            lambda w: Call(
                "/workers/search",
                params={"q": "Wahyuni", "kelurahan": SAPURO, "offset": "1", "limit": "1"},
            ),
            statuses(ACTING),
            second_of_many,
        ),
        Probe(
            lambda w: Call("/workers/search", params={"q": w.worker_nik}),
            statuses(ACTING, other=200),
            searched_by_nik,
        ),
    ),
    ("enrolment", "GET", "/workers/{worker_id}/coverage"): (
        Probe(
            lambda w: Call(f"/workers/{w.worker}/coverage", params={"on": "2025-01-01"}),
            statuses(ALL, other=404),
        ),
    ),
    # verification
    ("verification", "POST", "/cases/{worker_id}/verify"): (
        Probe(
            lambda w: Call(f"/cases/{w.to_verify}/verify", json={}),
            statuses(
                ("kelurahan_officer", "kecamatan_officer", "city_admin"),
                other=404,  # a case out of reach answers as if there were none
                overrides={"city_admin": 409},  # the city's level is a designation
            ),
        ),
    ),
    ("verification", "POST", "/cases/{worker_id}/reject"): (
        Probe(
            lambda w: Call(f"/cases/{w.to_reject}/reject", json={"reasons": ["not_resident"]}),
            statuses(
                ("kelurahan_officer", "kecamatan_officer", "city_admin"),
                other=404,
                # rejected at the kelurahan by then: no later level decides it
                overrides={"kecamatan own": 409, "city_admin": 409},
            ),
        ),
    ),
    ("verification", "POST", "/cases/{worker_id}/designate"): (
        Probe(
            lambda w: Call(f"/cases/{w.worker}/designate", json=DECREE),
            statuses(("city_admin",), 409),
        ),
    ),
    ("verification", "POST", "/cases/designate"): (
        Probe(
            lambda w: Call(
                "/cases/designate",
                json=DECREE | {"worker_ids": [w.worker]},
            ),
            statuses(("city_admin",)),
            lambda caller, world, answer: bulk_designation_refused(answer),
        ),
    ),
    ("verification", "GET", "/cases/{worker_id}"): (
        Probe(lambda w: Call(f"/cases/{w.worker}"), statuses(ALL, other=404), case_profile),
    ),
    ("verification", "GET", "/worklists/{level}/{area}"): (
        Probe(
            lambda w: Call(f"/worklists/kelurahan/{SAPURO}"),
            statuses(OFFICERS_AND_CITY),
            cases_within,
        ),
        Probe(
            lambda w: Call(f"/worklists/kecamatan/{BARAT}"),
            statuses(OFFICERS_AND_CITY, overrides={"kelurahan own": 403}),
            cases_within,
        ),
        # The whole city's cases ready for designation: beyond every officer's area.
        Probe(
            lambda w: Call("/worklists/city/33.75", params={"limit": "25", "offset": "0"}),
            statuses(("city_admin", "auditor")),
            cases_within,
        ),
    ),
    ("verification", "GET", "/designations"): (
        Probe(
            lambda w: Call("/designations", params={"fiscal_year": "2025", "cohort": "regular"}),
            statuses(("city_admin", "billing_officer", "auditor")),
        ),
    ),
    ("verification", "GET", "/designations/{fiscal_year}/counters"): (
        Probe(
            lambda w: Call("/designations/2025/counters"),
            statuses(("city_admin", "billing_officer", "auditor")),
        ),
    ),
    # billing
    ("billing", "POST", "/budgets"): (
        Probe(
            lambda w: Call(
                "/budgets",
                json={"fiscal_year": 2025, "source": "APBD", "cohort": "regular", "amount": 1000},
            ),
            statuses(("city_admin",), 201),
        ),
    ),
    ("billing", "POST", "/billing-runs"): (
        Probe(
            # Nobody covered yet: past the gate, refused by the rules.
            lambda w: Call("/billing-runs", json={"period": "2025-01"}),
            statuses(("billing_officer",), 422),
        ),
    ),
    ("billing", "GET", "/invoices"): (
        Probe(lambda w: Call("/invoices"), statuses(("billing_officer", "city_admin", "auditor"))),
    ),
    ("billing", "GET", "/invoices/{invoice_id}"): (
        Probe(
            lambda w: Call(f"/invoices/{uuid.uuid4()}"),
            statuses(("billing_officer", "city_admin", "auditor"), 404),  # no such invoice
        ),
    ),
    ("billing", "GET", "/arrears"): (
        Probe(
            lambda w: Call("/arrears", params={"on": "2025-03-01"}),
            statuses(("billing_officer", "city_admin", "auditor")),
        ),
    ),
    ("billing", "POST", "/invoices/{invoice_id}/payments"): (
        Probe(
            lambda w: Call(
                f"/invoices/{uuid.uuid4()}/payments",
                json={"payment_ref": "SP2D 1", "paid_on": "2025-02-01", "amount": 16800},
            ),
            statuses(("billing_officer",), 409),  # no such invoice
        ),
    ),
    ("billing", "GET", "/workers/{worker_id}/standing"): (
        Probe(
            lambda w: Call(f"/workers/{w.worker}/standing", params={"on": "2025-01-01"}),
            statuses(CITY_ROLES),
        ),
    ),
    ("billing", "GET", "/workers/{worker_id}/premiums"): (
        Probe(
            lambda w: Call(f"/workers/{w.worker}/premiums"),
            statuses(("city_admin", "billing_officer", "auditor")),
        ),
    ),
    ("billing", "GET", "/budgets/{fiscal_year}"): (
        Probe(
            lambda w: Call("/budgets/2025"), statuses(("city_admin", "billing_officer", "auditor"))
        ),
    ),
    # claims
    ("claims", "POST", "/claims"): (
        Probe(lambda w: Call("/claims", json=claim(w.worker)), statuses(("claims_officer",), 201)),
    ),
    ("claims", "GET", "/claims/{claim_id}"): (
        Probe(
            lambda w: Call(f"/claims/{w.claim_id}"),
            statuses(("claims_officer", "city_admin", "auditor")),
        ),
    ),
    ("claims", "GET", "/claims/{claim_id}/award"): (
        Probe(
            lambda w: Call(f"/claims/{w.claim_id}/award"),
            # The claim was rejected (no coverage): nothing was awarded.
            statuses(("claims_officer", "city_admin", "auditor"), 404),
        ),
    ),
    ("claims", "GET", "/claims"): (
        Probe(lambda w: Call("/claims"), statuses(("claims_officer", "city_admin", "auditor"))),
    ),
    ("claims", "POST", "/claims/{claim_id}/instalments"): (
        # The claim was rejected (no coverage): no school year is open on it.
        Probe(
            lambda w: Call(
                f"/claims/{w.claim_id}/instalments",
                json={
                    "child": "child-1",
                    "school_year": "2025/2026",
                    "married": False,
                    "working": False,
                },
            ),
            statuses(("claims_officer",), 409),
        ),
    ),
    ("claims", "POST", "/claims/{claim_id}/payments"): (
        # The claim was rejected (no coverage): past the gate, refused by the rules.
        Probe(
            lambda w: Call(
                f"/claims/{w.claim_id}/payments",
                json={"payment_ref": "TRF 1", "paid_on": "2025-02-01", "amount": 42000000},
            ),
            statuses(("claims_officer",), 409),
        ),
    ),
}


def claim(worker: str) -> dict[str, Any]:
    return {
        "worker_id": worker,
        "benefit": "JKM",
        "kind": "death",
        "incident_date": "2025-01-10",
        "claimant": {"name": "Ahli Waris", "relationship": "spouse"},
    }


async def send(
    client: httpx.AsyncClient, method: str, call: Call, headers: dict[str, str]
) -> httpx.Response:
    if call.csv is not None:
        headers = {**headers, "content-type": "text/csv"}
    if method == "POST":  # every command is sent as a client that may retry it would send it
        headers = {**headers, "Idempotency-Key": str(uuid.uuid4())}
    return await client.request(
        method, call.path, json=call.json, params=call.params, content=call.csv, headers=headers
    )


@pytest.fixture
async def world(
    kafka_settings: KafkaSettings, separate_database: DatabaseSettings
) -> AsyncIterator[World]:
    kafka = await isolated(kafka_settings, separate_database, "matrix")
    auth = AuthSettings()
    processes: list[ServiceProcess] = []
    for wiring in (verification_wiring, billing_wiring, claims_wiring):
        producers = await producers_in_process(separate_database)
        process, _ = await wiring.build(kafka, separate_database, auth, producers)
        processes.append(process)
    enrolment, enrolment_service = await enrolment_wiring.build(kafka, separate_database, auth)
    processes.insert(0, enrolment)
    verification, billing, claims = processes[1:]
    imports = ImportJobs(enrolment_service, poll_seconds=0.1)
    async with (
        running(enrolment, [imports.job()]) as e,
        running(verification) as v,
        running(billing) as b,
        running(claims) as c,
    ):
        clients = {"enrolment": e, "verification": v, "billing": b, "claims": c}
        yield await seeded(clients, {p.name: p.app for p in processes})


async def seeded(clients: Mapping[str, httpx.AsyncClient], apps: Mapping[str, FastAPI]) -> World:
    enrolment = clients["enrolment"]
    world = World(clients, apps, "", "", "", "", "", "")
    registered = []
    for kelurahan in (SAPURO, SAPURO, SAPURO, MEDONO, KRAPYAK):
        person = world.person(kelurahan)
        answer = await enrolment.post(
            "/workers", json=person, headers=bearer("kelurahan_officer", kelurahan)
        )
        assert answer.status_code == 201, answer.text
        registered.append((answer.json()["worker_id"], person))
        world.seeded[kelurahan] = world.seeded.get(kelurahan, 0) + 1
    (world.worker, first), (world.to_verify, _), (world.to_reject, _) = registered[:3]
    world.worker_nik = first["nik"]
    imported = await enrolment.post(
        "/imports",
        content=world.csv_of(world.person()),
        headers={**bearer("kelurahan_officer", SAPURO), "content-type": "text/csv"},
    )
    assert imported.status_code == 202, imported.text
    world.import_id = imported.json()["import_id"]
    world.seeded[SAPURO] += 1
    city = bearer("city_admin")
    workers = sum(world.seeded.values())

    async def projected() -> bool:
        listed = await enrolment.get("/workers", headers=city)
        cases = [
            await clients["verification"].get(f"/cases/{w}", headers=city) for w, _ in registered
        ]
        return len(listed.json()) == workers and all(c.status_code == 200 for c in cases)

    await eventually(projected)
    filed = await clients["claims"].post(
        "/claims",
        json=claim(world.worker),
        headers=bearer("claims_officer") | {"Idempotency-Key": str(uuid.uuid4())},
    )
    assert filed.status_code == 201, filed.text
    world.claim_id = filed.json()["claim_id"]
    return world


def openapi_endpoints(world: World) -> set[tuple[str, str, str]]:
    return {
        (service, method.upper(), path)
        for service, app in world.apps.items()
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }


async def test_every_endpoint_answers_each_role_as_the_matrix_says(world: World) -> None:
    assert set(MATRIX) == openapi_endpoints(world), "every endpoint has its entry in MATRIX"
    wrong = []
    for (service, method, path), probes in MATRIX.items():
        client = world.clients[service]
        for probe in probes:
            for role, area in BAD_AREAS:
                answer = await send(client, method, probe.call(world), bearer(role, area))
                if answer.status_code != 401:
                    wrong.append((method, path, role, area, answer.status_code, answer.text[:200]))
            for caller in CALLERS:
                call = probe.call(world)
                answer = await send(client, method, call, bearer(caller.role, caller.area))
                expected = probe.expect[caller.name]
                if answer.status_code != expected:
                    wrong.append(
                        (
                            method,
                            call.path,
                            caller.name,
                            expected,
                            answer.status_code,
                            answer.text[:200],
                        )
                    )
                elif probe.check is not None and answer.status_code < 300:
                    try:
                        probe.check(caller, world, answer)
                    except AssertionError as seen:  # every cell reported, not just the first
                        wrong.append((method, call.path, caller.name, f"shows {seen}"))
    assert not wrong, "\n".join(map(str, wrong))
