"""The NIK index's digest stays inside the database: a correction to a NIK registered already
is refused (409) without the digest in the answer, the logs or the exception."""

from __future__ import annotations

import asyncio
import logging

import pytest

from services.enrolment import wiring as enrolment_wiring
from shared.auth import AuthSettings
from shared.settings import DatabaseSettings, KafkaSettings
from tests.integration.sandbox import isolated, running
from tests.tokens import bearer

pytestmark = pytest.mark.integration
KRAPYAK = "33.75.03.1002"
FIRST = {
    "nik": "3375035512880001",
    "full_name": "Kartini Rahayu",
    "birth_date": "1988-12-15",
    "sex": "F",
    "occupation_code": "nelayan",
    "kelurahan_code": KRAPYAK,
    "address": "Krapyak Lor 7",
}
SECOND = {**FIRST, "nik": "3375035512880002", "full_name": "Sri Wahyuni"}


async def test_a_correction_to_a_registered_nik_is_refused_and_no_digest_is_logged(
    kafka_settings: KafkaSettings,
    separate_database: DatabaseSettings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    officer, city = bearer("kelurahan_officer", KRAPYAK), bearer("city_admin")
    kafka = await isolated(kafka_settings, separate_database, "digest")
    process, service = await enrolment_wiring.build(kafka, separate_database, AuthSettings())
    digest = service.nik_digest(FIRST["nik"]).hex()
    async with running(process) as api:
        await api.post("/workers", json=FIRST, headers=officer)
        second = (await api.post("/workers", json=SECOND, headers=officer)).json()["worker_id"]
        for _ in range(100):
            if (await api.get(f"/workers/{second}", headers=city)).status_code == 200:
                break
            await asyncio.sleep(0.1)

        with caplog.at_level(logging.DEBUG):
            refused = await api.post(
                f"/workers/{second}/corrections",
                json={"reason": "typo in the NIK", "nik": FIRST["nik"]},
                headers=officer,
            )

    assert refused.status_code == 409, refused.text
    assert digest not in refused.text
    assert digest not in caplog.text  # messages and tracebacks alike
