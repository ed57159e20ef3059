"""The identity provider's signing key rotated on the real Keycloak, in a realm of the test's own
(the shared realm keeps signing as it did): a key added signs new tokens, which a running
service accepts once it has fetched the keys again for the unknown key id, while the old key's
tokens still pass; the old key removed, its tokens are refused once the cached keys expire, and
at once by a service started afresh."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest

from deploy.local import keycloak
from shared.auth import AuthSettings, Principal, service_audience, verifier_for
from tests.tokens import token_for

pytestmark = pytest.mark.integration
PASSWORD = "rotation-" + uuid.uuid4().hex


@pytest.fixture
def realm() -> Iterator[str]:
    token_for("auditor")  # the provider is up, with the shared realm
    name = f"berlian-rotation-{uuid.uuid4().hex[:8]}"
    with keycloak.Admin() as admin:
        admin.request("POST", "", json=keycloak.realm_representation() | {"realm": name})
        admin.request(
            "POST",
            f"/{name}/users",
            json={
                "username": "auditor",
                "enabled": True,
                "email": "auditor@berlian.invalid",
                "emailVerified": True,
                "firstName": "Rotation",
                "lastName": "Auditor",
                "credentials": [{"type": "password", "value": PASSWORD, "temporary": False}],
            },
        )
        user = admin.request("GET", f"/{name}/users", params={"username": "auditor"}).json()[0]
        role = admin.request("GET", f"/{name}/roles/auditor").json()
        admin.request("POST", f"/{name}/users/{user['id']}/role-mappings/realm", json=[role])
    try:
        yield name
    finally:
        with keycloak.Admin() as admin:
            admin.request("DELETE", f"/{name}")


def issuer(realm: str) -> str:
    return f"{keycloak.BASE_URL}/realms/{realm}"


def fresh_token(realm: str) -> str:
    answer = httpx.post(
        f"{issuer(realm)}/protocol/openid-connect/token",
        data={
            "grant_type": "password",
            "client_id": keycloak.TEST_CLIENT,
            "username": "auditor",
            "password": PASSWORD,
        },
        timeout=30,
    )
    answer.raise_for_status()
    return str(answer.json()["access_token"])


def key_id(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def until(condition: Callable[[], bool], what: str, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        time.sleep(0.5)


def accepts(verify: Callable[[str], Principal], token: str) -> bool:
    try:
        verify(token)
    except PermissionError:
        return False
    return True


def test_a_rotated_signing_key_is_accepted_and_a_removed_one_refused(realm: str) -> None:
    settings = AuthSettings(
        issuer=issuer(realm), keys_cache_seconds=2, key_refresh_interval_seconds=1
    )
    audience = service_audience("enrolment")
    running = verifier_for(settings, audience)
    old = fresh_token(realm)
    assert running.principal(old).role == "auditor"

    with keycloak.Admin() as admin:
        config = {"priority": ["500"], "algorithm": ["RS256"], "keySize": ["2048"]}
        keycloak.add_key_provider(admin, realm, "rotated-in", "rsa-generated", config)
        keys: list[dict[str, Any]] = admin.request("GET", f"/{realm}/keys").json()["keys"]
    new = fresh_token(realm)
    assert key_id(new) != key_id(old)  # signed with the key just added
    # The running service has never seen the new key id: it fetches the keys again for it.
    until(lambda: accepts(running.principal, new), "the new key's token accepted")
    assert accepts(running.principal, old)  # the old key is still published

    old_component = next(k["providerId"] for k in keys if k["kid"] == key_id(old))
    with keycloak.Admin() as admin:
        admin.request("DELETE", f"/{realm}/components/{old_component}")
    assert not accepts(verifier_for(settings, audience).principal, old)  # a fresh start
    until(lambda: not accepts(running.principal, old), "the removed key's token refused")
    with pytest.raises(PermissionError, match="not signed with a key the identity provider"):
        running.principal(old)
    assert running.principal(new).role == "auditor"
