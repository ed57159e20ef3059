"""What a service accepts as a caller, checked claim by claim: each token below is valid but for
one thing, signed by a key the verifier trusts unless the key is the thing under test."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import Depends, FastAPI

from shared.auth import AuthSettings, Principal, TokenVerifier, authenticated, verifier_for

pytestmark = pytest.mark.unit
ISSUER = "https://id.example/realms/berlian"
AUDIENCE = "berlian-enrolment"
KEY_ID = "trusted"
SETTINGS = AuthSettings(issuer=ISSUER, max_token_lifetime_seconds=3600, leeway_seconds=0)


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


TRUSTED, STRANGER = _key(), _key()


def _published(kid: str) -> jwt.PyJWK | None:
    if kid != KEY_ID:
        return None
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(TRUSTED.public_key()))
    return jwt.PyJWK({**public, "kid": KEY_ID, "alg": "RS256", "use": "sig"})


VERIFIER = TokenVerifier(SETTINGS, AUDIENCE, _published)


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": [AUDIENCE, "berlian-claims"],
        "sub": "4f1c0d7e-officer",
        "iat": now,
        "exp": now + 900,
        "realm_access": {"roles": ["default-roles-berlian", "kelurahan_officer"]},
        "area": "33.75.01.1004",
    }
    base.update(changes)
    return {name: value for name, value in base.items() if value is not None}


def signed(body: dict[str, Any], key: rsa.RSAPrivateKey = TRUSTED, kid: str = KEY_ID) -> str:
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": kid})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict[str, Any], body: dict[str, Any], signature: bytes = b"") -> str:
    """A token PyJWT would refuse to make: the header and signature an attacker chooses."""
    return (
        f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(body).encode())}.{_b64(signature)}"
    )


def refusal(token: str) -> str:
    with pytest.raises(PermissionError) as refused:
        VERIFIER.principal(token)
    return str(refused.value)


def test_a_valid_token_names_the_caller_role_and_area() -> None:
    officer = claims(jti="token-1")
    assert VERIFIER.principal(signed(officer)) == Principal(
        "4f1c0d7e-officer", "kelurahan_officer", "33.75.01.1004", "token-1", officer["iat"]
    )
    city = claims(realm_access={"roles": ["city_admin", "offline_access"]}, area=None)
    assert VERIFIER.principal(signed(city)) == Principal(
        "4f1c0d7e-officer", "city_admin", None, "", city["iat"]
    )


def test_a_key_the_provider_does_not_publish_is_refused() -> None:
    assert "not signed with a key" in refusal(signed(claims(), key=STRANGER, kid="stranger"))
    # Its key id copied from a real token does not help: the signature does not match.
    assert "Signature verification failed" in refusal(signed(claims(), key=STRANGER, kid=KEY_ID))


def test_unsigned_and_symmetric_tokens_are_refused() -> None:
    body = claims()
    assert "RS256" in refusal(hand_made({"alg": "none", "typ": "JWT", "kid": KEY_ID}, body))
    # HS256 keyed with the provider's public key, which anyone can fetch.
    public_pem = TRUSTED.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": KEY_ID}
    unsigned = hand_made(header, body).rsplit(".", 1)[0]
    mac = hmac.new(public_pem, unsigned.encode(), hashlib.sha256).digest()
    assert "RS256" in refusal(f"{unsigned}.{_b64(mac)}")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"iss": "https://elsewhere.example/realms/berlian"}, "Invalid issuer"),
        ({"aud": "berlian-billing"}, "Audience doesn't match"),
        ({"exp": int(time.time()) - 60}, "token expired"),
        (
            {
                "iat": int(time.time()) - 100 * 365 * 86400,
                "exp": int(time.time()) + 86400 * 365 * 100,
            },
            "more than the 3600 s",
        ),
        ({"iat": int(time.time()), "exp": int(time.time()) + 3601}, "more than the 3600 s"),
        ({"iat": None}, 'missing the "iat" claim'),
        ({"sub": None}, 'missing the "sub" claim'),
        ({"exp": None}, 'missing the "exp" claim'),
        # The subject is every event's actor: longer than the events take, or unprintable, and
        # each consumer would refuse those events.
        ({"sub": "x" * 201}, "sub must be a text of 1 to 200 visible characters"),
        ({"sub": "siti\u202e"}, "sub must be a text of 1 to 200 visible characters"),
        ({"realm_access": None}, "carries no roles"),
        ({"realm_access": {"roles": "city_admin"}}, "carries no roles"),
        ({"realm_access": {"roles": ["offline_access"]}}, "this token holds none"),
        ({"realm_access": {"roles": ["city_admin", "auditor"]}}, "holds city_admin, auditor"),
    ],
)
def test_each_claim_is_checked(changes: dict[str, Any], reason: str) -> None:
    assert reason in refusal(signed(claims(**changes)))


@pytest.mark.parametrize(
    ("role", "area"),
    [
        ("kelurahan_officer", None),
        ("kelurahan_officer", ""),
        ("kelurahan_officer", "33.75"),
        ("kelurahan_officer", "33.75.01"),  # a kecamatan code: a kecamatan's reach
        ("kelurahan_officer", "33.75.01.1004 "),
        ("kelurahan_officer", "33.75.01.１００４"),  # full-width digits
        ("kelurahan_officer", 33750110),
        ("kelurahan_officer", ["33.75.01.1004", "33.75.02.1004"]),
        ("kelurahan_officer", {"code": "33.75.01.1004"}),
        ("kecamatan_officer", "33.75.01.1004"),
        ("kecamatan_officer", "33"),
        ("kecamatan_officer", ["33.75.01"]),
        ("city_admin", "33.75.01.1004"),
        ("auditor", ["33.75.01"]),
        ("claims_officer", 0),
    ],
)
def test_an_area_of_the_wrong_shape_for_the_role_is_refused(role: str, area: object) -> None:
    token = signed(claims(realm_access={"roles": [role]}, area=area))
    assert "area" in refusal(token)


async def test_a_refused_token_is_a_401_never_a_500() -> None:
    app = FastAPI()
    caller = authenticated(VERIFIER)

    @app.get("/who")
    def who(principal: Principal = Depends(caller)) -> str:  # noqa: B008 - FastAPI's idiom
        return principal.role

    tokens = {
        "number area": signed(claims(area=42)),
        "list area": signed(claims(area=["33.75.01.1004"])),
        "not a token": "not-a-token",
        "no kid": jwt.encode(claims(), TRUSTED, algorithm="RS256"),
        "kid a number": hand_made({"alg": "RS256", "kid": 7}, claims(), b"x"),
    }
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        assert (await client.get("/who")).status_code == 401
        for why, token in tokens.items():
            answer = await client.get("/who", headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 401, why
            assert answer.headers["www-authenticate"] == "Bearer"
        good = await client.get("/who", headers={"Authorization": f"Bearer {signed(claims())}"})
        assert good.json() == "kelurahan_officer"


async def test_an_unreachable_provider_is_a_503_to_retry() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connections are refused
        away = AuthSettings(issuer=f"http://127.0.0.1:{port}/realms/berlian")
        app = FastAPI()
        caller = authenticated(verifier_for(away, AUDIENCE))

        @app.get("/who")
        def who(principal: Principal = Depends(caller)) -> str:  # noqa: B008 - FastAPI's idiom
            return principal.role

        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            token = signed(claims())
            answer = await client.get("/who", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "2"
    assert "did not answer" in answer.json()["detail"]
