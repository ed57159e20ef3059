"""Access control seen from outside, on a real enrolment service: tokens that must not pass,
roles acting outside their area or their right, and personal data only for roles that need it."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta

import jwt
import orjson
import pytest

from services.enrolment import wiring as enrolment_wiring
from shared.auth import ALGORITHM, AUDIENCE, ISSUER, AuthSettings, issue_token
from shared.settings import DatabaseSettings, KafkaSettings
from tests.integration.sandbox import isolated, running

pytestmark = pytest.mark.integration
AUTH = AuthSettings()
KRAPYAK, PODOSUGIH = "33.75.03.1002", "33.75.02.1004"
PERSON = {
    "nik": "3375035508900001",
    "full_name": "Sri Wahyuni",
    "birth_date": "1990-08-15",
    "sex": "F",
    "occupation_code": "pedagang_keliling",
    "kelurahan_code": KRAPYAK,
    "address": "Krapyak Kidul 3",
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def unsigned(role: str) -> str:
    """A token with ``alg: none``: claims anyone could write."""
    header = base64.urlsafe_b64encode(orjson.dumps({"alg": "none", "typ": "JWT"})).rstrip(b"=")
    now = datetime.now(UTC)
    claims = {
        "sub": "mallory",
        "role": role,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": int((now + timedelta(hours=1)).timestamp()),
    }
    body = base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=")
    return f"{header.decode()}.{body.decode()}."


async def test_tokens_roles_areas_and_personal_data(
    kafka_settings: KafkaSettings, separate_database: DatabaseSettings
) -> None:
    kafka = await isolated(kafka_settings, separate_database, "access")
    process, _ = await enrolment_wiring.build(kafka, separate_database, AUTH)
    officer = issue_token(AUTH.jwt_secret, "siti", "kelurahan_officer", KRAPYAK)
    expired = issue_token(
        AUTH.jwt_secret,
        "siti",
        "kelurahan_officer",
        KRAPYAK,
        now=datetime.now(UTC) - timedelta(hours=9),
    )
    forged = issue_token("not-the-secret-" * 4, "siti", "kelurahan_officer", KRAPYAK)
    wrong_audience = jwt.encode(
        {
            "sub": "siti",
            "role": "city_admin",
            "iss": ISSUER,
            "aud": "elsewhere",
            "exp": datetime.now(UTC) + timedelta(hours=1),
        },
        AUTH.jwt_secret,
        algorithm=ALGORITHM,
    )
    async with running(process) as api:
        refusals = {
            "no token": await api.post("/workers", json=PERSON),
            "expired": await api.post("/workers", json=PERSON, headers=bearer(expired)),
            "wrong signature": await api.post("/workers", json=PERSON, headers=bearer(forged)),
            "alg none": await api.post(
                "/workers", json=PERSON, headers=bearer(unsigned("city_admin"))
            ),
            "wrong audience": await api.post(
                "/workers", json=PERSON, headers=bearer(wrong_audience)
            ),
        }
        for why, response in refusals.items():
            assert response.status_code == 401, why
            assert "Traceback" not in response.text
        assert "expired" in refusals["expired"].json()["detail"]

        other_area = issue_token(AUTH.jwt_secret, "budi", "kelurahan_officer", PODOSUGIH)
        outside = await api.post("/workers", json=PERSON, headers=bearer(other_area))
        assert outside.status_code == 403
        assert PODOSUGIH in outside.json()["detail"]
        auditor = issue_token(AUTH.jwt_secret, "bpk", "auditor")
        assert (await api.post("/workers", json=PERSON, headers=bearer(auditor))).status_code == 403

        worker = (await api.post("/workers", json=PERSON, headers=bearer(officer))).json()
        city = issue_token(AUTH.jwt_secret, "wali", "city_admin")
        for _ in range(100):
            seen = await api.get(f"/workers/{worker['worker_id']}", headers=bearer(city))
            if seen.status_code == 200:
                break
            await asyncio.sleep(0.1)
        assert seen.json()["personal"]["full_name"] == "Sri Wahyuni"
        as_auditor = await api.get(f"/workers/{worker['worker_id']}", headers=bearer(auditor))
        assert as_auditor.status_code == 200
        assert as_auditor.json().get("personal") is None
        assert "Sri Wahyuni" not in as_auditor.text
        assert PERSON["nik"] not in as_auditor.text
