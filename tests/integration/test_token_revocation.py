"""Tokens revoked before their expiry, on a real enrolment service with real tokens from the
identity provider: one token by its id, and every token of a user issued before the
revocation, recorded with ``berlian tokens``; other tokens and later ones still pass."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import jwt
import pytest
from typer.testing import CliRunner

from deploy.cli import app
from deploy.local import keycloak
from services.enrolment import wiring as enrolment_wiring
from shared.auth import AuthSettings
from shared.revocation import REFRESH_SECONDS
from shared.settings import DatabaseSettings, KafkaSettings
from tests.integration.sandbox import isolated, running
from tests.tokens import token_for

pytestmark = pytest.mark.integration


def fresh(subject: str) -> str:
    """A token just issued (never one kept from earlier)."""
    return str(keycloak.token("city_admin", None, subject)["access_token"])


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(int(REFRESH_SECONDS * 20) + 200):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never: {what}")


async def tokens(*arguments: str) -> None:
    """``berlian tokens ...`` as an operator runs it (its own event loop, so in a thread)."""
    answer = await asyncio.to_thread(CliRunner().invoke, app, ["tokens", *arguments])
    assert answer.exit_code == 0, answer.output


async def test_a_revoked_token_and_a_revoked_users_earlier_tokens_are_refused(
    kafka_settings: KafkaSettings,
    separate_database: DatabaseSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kafka = await isolated(kafka_settings, separate_database, "revocation")
    monkeypatch.setenv("DATABASE_URL", separate_database.database_url)
    token_for("city_admin")  # the provider is up
    stolen, kept = fresh("revocation-stolen"), fresh("revocation-stolen")
    dismissed, colleague = fresh("revocation-dismissed"), fresh("revocation-colleague")
    process, _ = await enrolment_wiring.build(kafka, separate_database, AuthSettings())
    async with running(process) as api:

        async def status(token: str) -> int:
            answer = await api.get("/summary", headers={"Authorization": f"Bearer {token}"})
            return answer.status_code

        async def refused(token: str) -> bool:
            answer = await api.get("/summary", headers={"Authorization": f"Bearer {token}"})
            return answer.status_code == 401 and "revoked" in answer.json()["detail"]

        for token in (stolen, kept, dismissed, colleague):
            assert await status(token) == 200

        jti = jwt.decode(stolen, options={"verify_signature": False})["jti"]
        await tokens("revoke", jti, "--by", "security officer", "--reason", "laptop stolen")
        await until(lambda: refused(stolen), "the revoked token refused")
        assert await status(kept) == 200  # the same user's other token

        subject = jwt.decode(dismissed, options={"verify_signature": False})["sub"]
        await tokens("revoke-subject", subject, "--by", "city admin", "--reason", "dismissed")
        await until(lambda: refused(dismissed), "the dismissed user's token refused")
        assert await status(colleague) == 200

        # A token issued after the revocation (a user re-enabled and signed in again) passes.
        async def later_token_accepted() -> bool:
            return await status(fresh("revocation-dismissed")) == 200

        await until(later_token_accepted, "a token issued after the revocation accepted")
        assert await refused(dismissed)


def test_a_revocation_needs_who_and_why() -> None:
    answer = CliRunner().invoke(app, ["tokens", "revoke", "some-id", "--by", " ", "--reason", "x"])
    assert answer.exit_code == 2
    assert "--by must be 1 to 200 characters" in answer.output
