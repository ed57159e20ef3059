"""Corrections on a real enrolment and verification: a NIK already registered (and what a
registration learns of it), corrections racing each other, tokens whose area is not a code, a
correction that changes nothing, and a move out of the officer's area."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from services.enrolment import wiring as enrolment_wiring
from services.verification import wiring as verification_wiring
from shared.auth import AuthSettings
from shared.settings import DatabaseSettings, KafkaSettings
from tests.integration.producers import producers_in_process
from tests.integration.sandbox import eventually, isolated, running
from tests.tokens import bearer

pytestmark = pytest.mark.integration
SAPURO, MEDONO, KRAPYAK = "33.75.01.1004", "33.75.01.1002", "33.75.03.1002"


@dataclass
class Services:
    enrolment: httpx.AsyncClient
    verification: httpx.AsyncClient


@pytest.fixture
async def services(
    kafka_settings: KafkaSettings, separate_database: DatabaseSettings
) -> AsyncIterator[Services]:
    kafka = await isolated(kafka_settings, separate_database, "corrections")
    enrolment, _ = await enrolment_wiring.build(kafka, separate_database, AuthSettings())
    verification, _ = await verification_wiring.build(
        kafka, separate_database, AuthSettings(), await producers_in_process(separate_database)
    )
    async with running(enrolment) as e, running(verification) as v:
        yield Services(e, v)


def person(serial: int, kelurahan: str = SAPURO) -> dict[str, str]:
    """A woman born 15 August 1990, with a NIK of her own."""
    return {
        "nik": f"337501550890{serial:04d}",
        "full_name": f"Sri Wahyuni {serial}",
        "birth_date": "1990-08-15",
        "sex": "F",
        "occupation_code": "pedagang_keliling",
        "kelurahan_code": kelurahan,
        "address": "Sapuro Gang 3",
    }


async def register(api: httpx.AsyncClient, body: dict[str, str]) -> str:
    response = await api.post(
        "/workers", json=body, headers=bearer("kelurahan_officer", body["kelurahan_code"])
    )
    assert response.status_code == 201, response.text
    worker = str(response.json()["worker_id"])

    async def listed() -> bool:
        shown = await api.get(f"/workers/{worker}", headers=bearer("city_admin"))
        return shown.status_code == 200

    await eventually(listed)  # as an officer would find them before correcting them
    return worker


async def events_of(api: httpx.AsyncClient, worker: str) -> int:
    """The worker's stream version, as the enrolment store holds it (a no-op correction
    answers it)."""
    response = await api.post(
        f"/workers/{worker}/corrections",
        json={"reason": "reading the version"},
        headers=bearer("kelurahan_officer", SAPURO),
    )
    assert response.status_code == 200, response.text
    return int(response.json()["stream_version"])


async def test_a_correction_to_a_registered_nik_is_refused_with_409(services: Services) -> None:
    api = services.enrolment
    first, second = await register(api, person(1)), await register(api, person(2))
    elsewhere = await register(api, person(3, KRAPYAK))
    officer = bearer("kelurahan_officer", SAPURO)

    taken = await api.post(
        f"/workers/{second}/corrections",
        json={"reason": "NIK typed wrong", "nik": person(1)["nik"]},
        headers=officer,
    )
    assert taken.status_code == 409, taken.text
    assert taken.json()["worker_id"] == first  # in the officer's own kelurahan: named

    outside = await api.post(
        f"/workers/{second}/corrections",
        json={"reason": "NIK typed wrong", "nik": person(3)["nik"]},
        headers=officer,
    )
    assert outside.status_code == 409, outside.text
    assert "worker_id" not in outside.json()  # another area's worker is not named
    assert elsewhere not in outside.text
    assert await events_of(api, second) == 1  # nothing appended by either


async def test_a_registered_nik_is_told_only_to_a_registration_that_would_pass(
    services: Services,
) -> None:
    api = services.enrolment
    await register(api, person(5, KRAPYAK))
    probe = person(5) | {"birth_date": "1991-01-01"}  # not what the NIK says
    answer = await api.post("/workers", json=probe, headers=bearer("kelurahan_officer", SAPURO))
    assert answer.status_code == 422, answer.text
    assert "already registered" not in answer.text
    real = await api.post("/workers", json=person(5), headers=bearer("kelurahan_officer", SAPURO))
    assert real.status_code == 409, real.text
    assert "worker_id" not in real.json()  # registered in another area: not named


async def test_corrections_racing_each_other_are_retried_or_refused(services: Services) -> None:
    api = services.enrolment
    worker = await register(api, person(10))
    officer = bearer("kelurahan_officer", SAPURO)

    async def correct(n: int) -> httpx.Response:
        return await api.post(
            f"/workers/{worker}/corrections",
            json={
                "reason": "address checked",
                "address": f"Sapuro Gang {n}",
                "nik": person(n)["nik"],
            },
            headers=officer,
        )

    answers = await asyncio.gather(*(correct(n) for n in range(20, 32)))
    statuses = [a.status_code for a in answers]
    assert set(statuses) <= {201, 409}, [a.text for a in answers]
    assert await events_of(api, worker) == 1 + statuses.count(201)


@pytest.mark.parametrize(
    "area", [33750110, 3375.011004, [SAPURO], {"kelurahan": SAPURO}, True, "", "33.75", "33.75.01"]
)
async def test_a_token_whose_area_is_not_a_kelurahan_code_is_refused(
    services: Services, area: Any
) -> None:
    worker = await register(services.enrolment, person(40))
    for answer in (
        await services.enrolment.post(
            f"/workers/{worker}/corrections",
            json={"reason": "moved", "address": "Jalan Baru"},
            headers=bearer("kelurahan_officer", area),
        ),
        await services.enrolment.get("/workers", headers=bearer("kelurahan_officer", area)),
    ):
        assert answer.status_code == 401, answer.text
        assert "area" in answer.json()["detail"]


async def test_a_correction_that_changes_nothing_appends_nothing_and_reopens_nothing(
    services: Services,
) -> None:
    api = services.enrolment
    body = person(50)
    worker = await register(api, body)
    officer = bearer("kelurahan_officer", SAPURO)

    async def case() -> dict[str, Any]:
        answer = await services.verification.get(f"/cases/{worker}", headers=officer)
        return dict(answer.json()) if answer.status_code == 200 else {}

    async def case_is(stage: str) -> bool:
        return (await case()).get("stage") == stage

    await eventually(lambda: case_is("kelurahan"))
    rejected = await services.verification.post(
        f"/cases/{worker}/reject", json={"reasons": ["not_resident"]}, headers=officer
    )
    assert rejected.status_code == 200, rejected.text
    await eventually(lambda: case_is("rejected"))

    same = {k: v for k, v in body.items() if k != "phone"} | {"reason": "checked again"}
    answer = await api.post(f"/workers/{worker}/corrections", json=same, headers=officer)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"stream_version": 1, "changed": False}
    # A real correction after it is appended and reopens the case: the projection has
    # applied everything before it, the no-op included had there been one.
    moved = await api.post(
        f"/workers/{worker}/corrections",
        json={"reason": "lives here", "address": "Sapuro Gang 9"},
        headers=officer,
    )
    assert moved.status_code == 201, moved.text
    assert moved.json()["stream_version"] == 2
    await eventually(lambda: case_is("kelurahan"))


async def test_a_correction_cannot_move_a_worker_out_of_the_officers_area(
    services: Services,
) -> None:
    api = services.enrolment
    worker = await register(api, person(60))
    for elsewhere in (MEDONO, KRAPYAK):  # the same kecamatan, and another
        answer = await api.post(
            f"/workers/{worker}/corrections",
            json={"reason": "moved", "kelurahan_code": elsewhere},
            headers=bearer("kelurahan_officer", SAPURO),
        )
        assert answer.status_code == 403, answer.text
        assert elsewhere in answer.json()["detail"]
    assert await events_of(api, worker) == 1
    stays = await api.post(
        f"/workers/{worker}/corrections",
        json={"reason": "checked", "kelurahan_code": SAPURO},
        headers=bearer("kelurahan_officer", SAPURO),
    )
    assert stays.json() == {"stream_version": 1, "changed": False}


async def test_a_correction_of_a_worker_out_of_reach_answers_as_for_no_worker(
    services: Services,
) -> None:
    api = services.enrolment
    worker = await register(api, person(61))
    outside = await api.post(
        f"/workers/{worker}/corrections",
        json={"reason": "checked", "address": "Gang Baru"},
        headers=bearer("kelurahan_officer", KRAPYAK),
    )
    unknown = uuid.uuid4()
    nobody = await api.post(
        f"/workers/{unknown}/corrections",
        json={"reason": "checked", "address": "Gang Baru"},
        headers=bearer("kelurahan_officer", KRAPYAK),
    )
    assert (outside.status_code, nobody.status_code) == (404, 404)
    assert outside.json()["detail"] == nobody.json()["detail"].replace(str(unknown), str(worker))
    assert SAPURO not in outside.text
    assert await events_of(api, worker) == 1
