"""Signing in to the audit web page: only from its own form (no login CSRF), into a server-side
session whose cookie is Secure, HttpOnly and SameSite and never the token itself, ended by
signing out; no page is cached. Tokens come from the real identity provider."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from urllib.parse import unquote_plus

import asyncpg
import httpx
import jwt
import pytest

from deploy.local import keycloak
from services.audit.web import SESSION_COOKIE, SIGN_IN_COOKIE, WebSettings, create_app
from shared.auth import AuthSettings
from shared.db import login_dsn
from shared.privileges import AUDIT_WEB_ROLE, AuditWebLogin
from shared.revocation import REFRESH_SECONDS, revoke_subject
from shared.settings import DatabaseSettings, KafkaSettings
from tests.tokens import sign_in_details, token_for

pytestmark = pytest.mark.integration


@pytest.fixture
async def audit_web(
    migrated: DatabaseSettings, kafka_settings: KafkaSettings
) -> AsyncIterator[httpx.AsyncClient]:
    # The page's own login, as `berlian audit web` connects.
    dsn = login_dsn(migrated.database_url, AUDIT_WEB_ROLE, AuditWebLogin().password())
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    app = create_app(pool, kafka_settings, AuthSettings(), WebSettings())
    # HTTPS as seen by the browser: a Secure cookie is sent back only over it.
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://audit") as client:
        yield client
    await pool.close()


def form_token(page: str) -> str:
    found = re.search(r'name="form" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, token: str) -> httpx.Response:
    form = form_token((await client.get("/sign-in")).text)
    return await client.post("/sign-in", data={"token": token, "form": form})


async def test_another_site_cannot_sign_the_browser_in(audit_web: httpx.AsyncClient) -> None:
    # A page elsewhere posting its own (valid) token: no sign-in cookie, no form token.
    posted = await audit_web.post("/sign-in", data={"token": token_for("auditor")})
    assert posted.status_code == 403
    assert SESSION_COOKIE not in posted.headers.get("set-cookie", "")
    # Nor with a form token of its own browser: it is bound to the sign-in cookie.
    async with httpx.AsyncClient(
        transport=audit_web._transport, base_url="https://audit"
    ) as attacker:
        attackers_form = form_token((await attacker.get("/sign-in")).text)
    await audit_web.get("/sign-in")
    posted = await audit_web.post(
        "/sign-in", data={"token": token_for("auditor"), "form": attackers_form}
    )
    assert posted.status_code == 403


async def test_a_session_holds_the_token_server_side_and_ends_at_sign_out(
    audit_web: httpx.AsyncClient,
) -> None:
    token = token_for("auditor")
    signed_in = await sign_in(audit_web, token)
    assert signed_in.status_code == 303, signed_in.text
    cookies = signed_in.headers.get_list("set-cookie")
    session_cookie = next(c for c in cookies if c.startswith(f"{SESSION_COOKIE}="))
    attributes = {part.strip().lower() for part in session_cookie.split(";")}
    assert {"secure", "httponly", "samesite=strict"} <= attributes
    assert token not in " ".join(cookies)
    assert all(part not in " ".join(cookies) for part in token.split("."))

    home = await audit_web.get("/")
    assert home.status_code == 200
    assert home.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in home.headers["content-security-policy"]
    session_id = audit_web.cookies[SESSION_COOKIE]

    # Signing out needs the session's own form token; a cross-site post does nothing.
    with_session = {"Cookie": f"{SESSION_COOKIE}={session_id}"}
    await audit_web.post("/sign-out", data={"form": "forged"}, headers=with_session)
    audit_web.cookies.clear()
    assert (await audit_web.get("/", headers=with_session)).status_code == 200
    out = await audit_web.post(
        "/sign-out", data={"form": form_token(home.text)}, headers=with_session
    )
    assert out.status_code == 303
    # The old cookie, replayed, is no longer a session.
    audit_web.cookies.clear()
    replayed = await audit_web.get("/", headers=with_session)
    assert replayed.status_code == 303
    assert replayed.headers["location"] == "/sign-in"


async def test_only_auditors_and_the_city_sign_in(audit_web: httpx.AsyncClient) -> None:
    refused = await sign_in(audit_web, token_for("kelurahan_officer", "33.75.03.1002"))
    assert refused.status_code == 303
    assert "may not use the audit workbench" in unquote_plus(refused.headers["location"])
    assert SESSION_COOKIE not in audit_web.cookies
    assert SIGN_IN_COOKIE in audit_web.cookies
    assert (await sign_in(audit_web, token_for("city_admin"))).headers["location"] == "/"


async def at_the_provider(audit_web: httpx.AsyncClient, role: str) -> str:
    """Start a sign-in here, log in at the provider's page as that role; the address the
    provider sends the browser back to (path and query)."""
    started = await audit_web.get("/sign-in/provider")
    assert started.status_code == 303
    location = started.headers["location"]
    assert location.startswith(f"{keycloak.ISSUER}/protocol/openid-connect/auth?")
    assert "code_challenge_method=S256" in location
    username, password = sign_in_details(role)  # type: ignore[arg-type]
    async with httpx.AsyncClient(timeout=30) as browser:
        page = await browser.get(location)
        action = re.search(r'action="([^"]*login-actions/authenticate[^"]*)"', page.text)
        assert action, page.text[:2000]
        # The provider's cookies are Secure; a browser sends them to http://127.0.0.1 (a secure
        # context), httpx does not: they are sent back by hand.
        cookies = "; ".join(c.split(";", 1)[0] for c in page.headers.get_list("set-cookie"))
        answer = await browser.post(
            html.unescape(action.group(1)),
            data={"username": username, "password": password},
            headers={"Cookie": cookies},
        )
    assert answer.status_code == 302, answer.text[:2000]
    back = answer.headers["location"]
    web = WebSettings().audit_web_url
    assert back.startswith(f"{web}/sign-in/callback?")
    return back.removeprefix(web)


async def test_signing_in_through_the_provider(audit_web: httpx.AsyncClient) -> None:
    callback = await at_the_provider(audit_web, "auditor")
    signed_in = await audit_web.get(callback)
    assert signed_in.status_code == 200, signed_in.text
    assert SESSION_COOKIE in audit_web.cookies
    home = await audit_web.get("/")
    assert home.status_code == 200
    assert "(auditor)" in home.text
    # The provider's answer is good once: replayed (a code seen in a log), it signs nobody in.
    audit_web.cookies.clear()
    assert (await audit_web.get(callback)).status_code == 403
    # Signing out ends the provider's session too.
    await audit_web.get("/sign-in")
    signed_in = await audit_web.get(await at_the_provider(audit_web, "auditor"))
    out = await audit_web.post(
        "/sign-out", data={"form": form_token((await audit_web.get("/")).text)}
    )
    assert out.status_code == 303
    assert out.headers["location"].startswith(f"{keycloak.ISSUER}/protocol/openid-connect/logout?")


async def test_a_sign_in_finishes_only_in_the_browser_that_started_it(
    audit_web: httpx.AsyncClient,
) -> None:
    async with httpx.AsyncClient(
        transport=audit_web._transport, base_url="https://audit"
    ) as attacker:
        attackers_answer = await at_the_provider(attacker, "auditor")
    # The victim's browser is made to open the attacker's answer (login CSRF): refused.
    await audit_web.get("/sign-in")
    refused = await audit_web.get(attackers_answer)
    assert refused.status_code == 403
    assert SESSION_COOKIE not in audit_web.cookies


async def test_the_provider_signs_in_only_auditors_and_the_city(
    audit_web: httpx.AsyncClient,
) -> None:
    callback = await at_the_provider(audit_web, "billing_officer")
    refused = await audit_web.get(callback)
    assert refused.status_code == 303
    assert "may not use the audit workbench" in unquote_plus(refused.headers["location"])
    assert SESSION_COOKIE not in audit_web.cookies


async def test_a_token_revoked_after_sign_in_ends_its_session(
    audit_web: httpx.AsyncClient, migrated: DatabaseSettings
) -> None:
    token = keycloak.token("auditor", None, "audit-revoked")["access_token"]
    assert (await sign_in(audit_web, token)).status_code == 303
    assert (await audit_web.get("/")).status_code == 200
    admin = await asyncpg.connect(migrated.database_url)
    try:
        subject = jwt.decode(token, options={"verify_signature": False})["sub"]
        await revoke_subject(admin, subject, timedelta(hours=1), "security officer", "test")
    finally:
        await admin.close()
    for _ in range(int(REFRESH_SECONDS * 10) + 100):
        page = await audit_web.get("/")
        if page.status_code == 303:
            break
        await asyncio.sleep(0.1)
    assert page.headers["location"] == "/sign-in"
    assert (await audit_web.get("/")).status_code == 303  # the session is gone
    assert (await sign_in(audit_web, token)).headers["location"].startswith("/sign-in?error=")
