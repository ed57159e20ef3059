"""Erasing a person through enrolment: their personal data disappears from every read, the
log still verifies."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from services.enrolment import wiring as enrolment_wiring
from services.enrolment.erasure import erase_worker
from shared.audit.verify import verify_topics
from shared.auth import AuthSettings
from shared.settings import DatabaseSettings, KafkaSettings
from shared.topic_reader import read_topics
from tests.integration.sandbox import isolated, running
from tests.tokens import bearer

pytestmark = pytest.mark.integration
AUTH = AuthSettings()
KRAPYAK = "33.75.03.1002"


def as_officer() -> dict[str, str]:
    return bearer("kelurahan_officer", KRAPYAK)


def as_city() -> dict[str, str]:
    return bearer("city_admin")


PERSON = {
    "nik": "3375035512880001",
    "full_name": "Kartini Rahayu",
    "birth_date": "1988-12-15",
    "sex": "F",
    "occupation_code": "nelayan",
    "kelurahan_code": KRAPYAK,
    "address": "Krapyak Lor 7",
}


async def test_an_erased_person_is_gone_from_every_read_and_the_log_verifies(
    kafka_settings: KafkaSettings, separate_database: DatabaseSettings
) -> None:
    kafka = await isolated(kafka_settings, separate_database, "erase")
    process, service = await enrolment_wiring.build(kafka, separate_database, AUTH)
    async with running(process) as api:
        worker = (await api.post("/workers", json=PERSON, headers=as_officer())).json()["worker_id"]
        for _ in range(100):
            seen = await api.get(f"/workers/{worker}", headers=as_city())
            if seen.status_code == 200:
                break
            await asyncio.sleep(0.1)
        assert seen.json()["personal"]["full_name"] == "Kartini Rahayu"

        assert await erase_worker(service, uuid.UUID(worker))

        after = (await api.get(f"/workers/{worker}", headers=as_city())).json()
        assert after["personal"] is None
        assert after["birth_date"] == "1988-12-15"  # clear fields stay
        assert (
            await api.get("/workers", params={"nik": PERSON["nik"]}, headers=as_city())
        ).json() == []
    topic = kafka.events_topic("enrolment")
    raw = b"".join([r.value async for batch in read_topics(kafka, [topic]) for r in batch])
    assert b"Kartini" not in raw
    assert PERSON["nik"].encode() not in raw
    assert (await verify_topics(kafka, [topic])).ok
