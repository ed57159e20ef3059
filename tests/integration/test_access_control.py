"""Access control seen from outside, on a real enrolment service and the real identity provider:
tokens that must not pass, roles acting outside their area or their right, and personal data
only for roles that need it.

Tokens that differ from a good one in one claim are signed with the local realm's test key,
published in the provider's keys (passive: the provider never signs with it), so each is
refused for that claim alone and not for its signature.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from deploy.local import keycloak
from services.enrolment import wiring as enrolment_wiring
from shared.auth import AuthSettings, service_audience
from shared.settings import DatabaseSettings, KafkaSettings
from tests.integration.sandbox import isolated, running
from tests.tokens import bearer, token_for

pytestmark = pytest.mark.integration
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


def with_token(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwks() -> list[dict[str, Any]]:
    answer = httpx.get(f"{keycloak.ISSUER}/protocol/openid-connect/certs", timeout=10)
    keys: list[dict[str, Any]] = answer.json()["keys"]
    return keys


@pytest.fixture
def published_test_key() -> tuple[rsa.RSAPrivateKey, str]:
    """The local realm's passive test key, published in its JWKS, and its key id."""
    token_for("auditor")  # the provider runs, with its realm
    return keycloak.test_signing_key()


def claims(**changes: Any) -> dict[str, Any]:
    """A kelurahan officer's claims, as the provider writes them, changed as asked."""
    now = int(time.time())
    body: dict[str, Any] = {
        "iss": keycloak.ISSUER,
        "aud": [service_audience("enrolment")],
        "sub": "mallory",
        "iat": now,
        "exp": now + 300,
        "realm_access": {"roles": ["kelurahan_officer"]},
        "area": KRAPYAK,
    }
    body.update(changes)
    return body


def unsigned(body: dict[str, Any]) -> str:
    """A token with ``alg: none``: claims anyone could write."""
    header = _b64(orjson.dumps({"alg": "none", "typ": "JWT"}))
    return f"{header}.{_b64(orjson.dumps(body))}."


def hs256_with_public_key(body: dict[str, Any], provider_key_id: str) -> str:
    """HS256 keyed with the provider's own public key, which anyone can fetch."""
    jwk = next(k for k in _jwks() if k["kid"] == provider_key_id)
    pem = jwt.PyJWK(jwk).key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": provider_key_id}).encode())
    signing_input = f"{header}.{_b64(orjson.dumps(body))}"
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


async def test_tokens_roles_areas_and_personal_data(
    kafka_settings: KafkaSettings,
    separate_database: DatabaseSettings,
    published_test_key: tuple[rsa.RSAPrivateKey, str],
) -> None:
    kafka = await isolated(kafka_settings, separate_database, "access")
    process, _ = await enrolment_wiring.build(kafka, separate_database, AuthSettings())
    test_key, test_key_id = published_test_key
    provider_key_id = jwt.get_unverified_header(token_for("kelurahan_officer", KRAPYAK))["kid"]
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def signed(body: dict[str, Any], key: rsa.RSAPrivateKey = test_key, kid: str = "") -> str:
        return jwt.encode(body, key, algorithm="RS256", headers={"kid": kid or test_key_id})

    now = int(time.time())
    refused: dict[str, tuple[dict[str, str], str]] = {
        "no token": ({}, "bearer token is required"),
        "expired": (with_token(signed(claims(iat=now - 900, exp=now - 60))), "token expired"),
        "a key not published": (
            with_token(signed(claims(), stranger, "not-published")),
            "not signed with a key the identity provider uses",
        ),
        "a published key id, another key": (
            with_token(signed(claims(), stranger, test_key_id)),
            "Signature verification failed",
        ),
        "alg none": (with_token(unsigned(claims())), "must be signed with RS256"),
        "HS256 with the public key": (
            with_token(hs256_with_public_key(claims(), provider_key_id)),
            "must be signed with RS256",
        ),
        "wrong audience": (
            with_token(signed(claims(aud=[service_audience("billing")]))),
            "Audience doesn't match",
        ),
        "wrong issuer": (
            with_token(signed(claims(iss="http://127.0.0.1:8180/realms/master"))),
            "Invalid issuer",
        ),
        "100-year lifetime": (
            with_token(signed(claims(exp=now + 100 * 365 * 86400))),
            "more than the 3600 s accepted",
        ),
        "two-hour lifetime": (
            with_token(signed(claims(exp=now + 7200))),
            "more than the 3600 s accepted",
        ),
        "area a number": (
            with_token(signed(claims(area=3375031002))),
            "kelurahan_officer's area must be",
        ),
        "area a list": (
            with_token(signed(claims(area=[KRAPYAK, PODOSUGIH]))),
            "kelurahan_officer's area must be",
        ),
        "area empty": (with_token(signed(claims(area=""))), "kelurahan_officer's area must be"),
        "area a prefix": (
            with_token(signed(claims(area="33.75"))),
            "kelurahan_officer's area must be",
        ),
        # Issued by the provider itself: a kelurahan officer given a kecamatan's code.
        "area a kecamatan code": (
            bearer("kelurahan_officer", "33.75.03"),
            "kelurahan_officer's area must be",
        ),
        "no role": (
            with_token(signed(claims(realm_access={"roles": []}))),
            "this token holds none",
        ),
    }
    accepted = with_token(signed(claims()))
    async with running(process) as api:
        for why, (headers, reason) in refused.items():
            response = await api.get("/summary", headers=headers)
            assert response.status_code == 401, f"{why}: {response.status_code} {response.text}"
            assert reason in response.json()["detail"], why
        # The one difference each refused token has is what it is refused for.
        assert (await api.get("/summary", headers=accepted)).status_code != 401

        outside = await api.post(
            "/workers", json=PERSON, headers=bearer("kelurahan_officer", PODOSUGIH)
        )
        assert outside.status_code == 403
        assert PODOSUGIH in outside.json()["detail"]
        auditor = bearer("auditor")
        assert (await api.post("/workers", json=PERSON, headers=auditor)).status_code == 403

        officer = bearer("kelurahan_officer", KRAPYAK)
        worker = (await api.post("/workers", json=PERSON, headers=officer)).json()
        for _ in range(100):
            seen = await api.get(f"/workers/{worker['worker_id']}", headers=bearer("city_admin"))
            if seen.status_code == 200:
                break
            await asyncio.sleep(0.1)
        assert seen.json()["personal"]["full_name"] == "Sri Wahyuni"
        as_auditor = await api.get(f"/workers/{worker['worker_id']}", headers=auditor)
        assert as_auditor.status_code == 200
        assert as_auditor.json().get("personal") is None
        assert "Sri Wahyuni" not in as_auditor.text
        assert PERSON["nik"] not in as_auditor.text
