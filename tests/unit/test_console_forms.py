"""Every form of the console is refused without its session's CSRF token, forged or missing,
before anything reaches a service: the routes are read from the application, so a form added
later is checked too. The language a user chooses is the one the pages then speak."""

from __future__ import annotations

import re
import socket
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from services.console.app import SESSION_COOKIE, browser_address, create_app
from services.console.sessions import Sessions
from services.console.settings import ConsoleSettings
from shared.auth import AuthSettings, Principal
from shared.oidc_login import MAX_PENDING_PER_CLIENT, ProviderEndpoints

pytestmark = pytest.mark.unit
ROLES = {
    "kelurahan_officer": "33.75.01.1004",
    "kecamatan_officer": "33.75.01",
    "city_admin": None,
    "billing_officer": None,
    "claims_officer": None,
}
REFUSED_ID = "Formulir ini tidak berasal dari halaman sesi ini"


def closed_port() -> str:
    """A local address nothing answers on: a request that got through would say so (503)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@pytest.fixture
def console() -> Iterator[TestClient]:
    nowhere = closed_port()
    settings = ConsoleSettings(
        url="https://console.test",
        enrolment_url=nowhere,
        verification_url=nowhere,
        billing_url=nowhere,
        claims_url=nowhere,
        audit_url=nowhere,
    )
    app = create_app(settings, AuthSettings(issuer=f"{nowhere}/realms/berlian"))
    with TestClient(app, base_url="https://console.test") as client:
        yield client


def signed_in(client: TestClient, role: str) -> tuple[str, str]:
    """A session of ``role`` as the sign-in would start it: its id and its CSRF token."""
    sessions: Sessions = client.app.state.sessions  # type: ignore[attr-defined]
    principal = Principal(f"{role}-1", role, ROLES[role])  # type: ignore[arg-type]
    session_id = sessions.start(principal, "token", time.time() + 600, "", "id")
    session = sessions.get(session_id)
    assert session is not None
    return session_id, session.csrf


def form_routes(client: TestClient) -> list[str]:
    """Every POST route but sign-out (which ends nothing without the token: tested below),
    with its path's ids filled in."""
    paths = [
        route.path
        for route in client.app.routes  # type: ignore[attr-defined]
        if isinstance(route, APIRoute) and "POST" in route.methods and route.path != "/sign-out"
    ]
    return [re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path) for path in paths]


def test_the_console_has_its_forms() -> None:
    # The iteration below is only as good as the routes it finds.
    app = create_app(ConsoleSettings(), AuthSettings(issuer="http://127.0.0.1:1/realms/berlian"))
    posted = {r.path for r in app.routes if isinstance(r, APIRoute) and "POST" in r.methods}
    assert {"/workers", "/claims", "/designations", "/billing-runs", "/language"} <= posted


@pytest.mark.parametrize("role", sorted(ROLES))
def test_a_forged_csrf_token_is_refused_on_every_form(console: TestClient, role: str) -> None:
    session_id, _ = signed_in(console, role)
    for path in form_routes(console):
        answer = console.post(
            path,
            data={"csrf": "forged-" + "x" * 40, "form_key": str(uuid.uuid4())},
            files={"list_file": ("list.csv", b"nik\n", "text/csv")},
            headers={"Cookie": f"{SESSION_COOKIE}={session_id}"},
        )
        assert answer.status_code == 403, path
        assert REFUSED_ID in answer.text, path


def test_a_missing_csrf_token_is_refused_on_every_form(console: TestClient) -> None:
    session_id, _ = signed_in(console, "kelurahan_officer")
    for path in form_routes(console):
        answer = console.post(
            path,
            data={"form_key": str(uuid.uuid4())},
            headers={"Cookie": f"{SESSION_COOKIE}={session_id}"},
        )
        assert answer.status_code == 422, path
        assert "csrf" in answer.text, path


def test_a_form_without_a_session_goes_to_the_sign_in(console: TestClient) -> None:
    for path in form_routes(console):
        answer = console.post(path, data={"csrf": "x"}, follow_redirects=False)
        assert answer.status_code == 303, path
        assert answer.headers["location"] == "/sign-in", path


def test_sign_out_with_a_forged_token_leaves_the_session(console: TestClient) -> None:
    session_id, _ = signed_in(console, "billing_officer")
    cookie = {"Cookie": f"{SESSION_COOKIE}={session_id}"}
    console.post("/sign-out", data={"csrf": "forged"}, headers=cookie, follow_redirects=False)
    assert console.get("/", headers=cookie, follow_redirects=False).status_code == 200


def test_the_pages_speak_the_language_chosen(console: TestClient) -> None:
    session_id, csrf = signed_in(console, "billing_officer")
    cookie = {"Cookie": f"{SESSION_COOKIE}={session_id}"}
    home = console.get("/", headers=cookie)
    assert 'lang="id"' in home.text
    assert "Keluar" in home.text
    chosen = console.post(
        "/language",
        data={"csrf": csrf, "language": "en", "back": "/billing"},
        headers=cookie,
        follow_redirects=False,
    )
    assert chosen.status_code == 303
    assert "berlian_console_language=en" in chosen.headers["set-cookie"]
    home = console.get("/", headers=cookie)
    assert 'lang="en"' in home.text
    assert "Sign out" in home.text
    assert "Keluar" not in home.text


def test_the_auditor_lands_on_the_audit_pages(console: TestClient) -> None:
    sessions: Sessions = console.app.state.sessions  # type: ignore[attr-defined]
    session_id = sessions.start(
        Principal("audit-1", "auditor", None), "t", time.time() + 600, "", "id"
    )
    home = console.get("/", headers={"Cookie": f"{SESSION_COOKIE}={session_id}"})
    for page in ("/audit", "/audit/programme", "/audit/workers", "/audit/verification"):
        assert f'href="{page}"' in home.text, page
    assert "Program dalam angka" in home.text
    assert 'href="/arrears"' in home.text


def test_the_audit_pages_are_the_auditors_and_say_when_the_audit_application_is_down(
    console: TestClient,
) -> None:
    pages = ["/audit", "/audit/programme", "/audit/workers", "/audit/verification"]
    pages.append("/audit/operations")
    for role in ("kelurahan_officer", "billing_officer", "claims_officer"):
        session_id, _ = signed_in(console, role)
        for page in pages:
            refused = console.get(page, headers={"Cookie": f"{SESSION_COOKIE}={session_id}"})
            assert refused.status_code == 403, (role, page)
            assert "Peran Anda tidak boleh memakai halaman ini" in refused.text
    sessions: Sessions = console.app.state.sessions  # type: ignore[attr-defined]
    session_id = sessions.start(
        Principal("audit-1", "auditor", None), "t", time.time() + 600, "", "id"
    )
    down = console.get("/audit", headers={"Cookie": f"{SESSION_COOKIE}={session_id}"})
    assert down.status_code == 503
    assert 'id="unavailable"' in down.text


def test_sign_ins_from_one_browser_address_are_refused_past_its_share(
    console: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        ProviderEndpoints,
        "__call__",
        lambda _: {"authorization_endpoint": "https://login.test/auth"},
    )
    for _ in range(MAX_PENDING_PER_CLIENT):
        started = console.get("/sign-in/provider", follow_redirects=False)
        assert started.status_code == 303
        assert started.headers["location"].startswith("https://login.test/auth?")
    refused = console.get("/sign-in/provider", follow_redirects=False)
    assert refused.status_code == 503
    assert "Terlalu banyak proses masuk yang sedang menunggu" in refused.text


def test_a_form_sent_while_its_service_is_down_comes_back_with_every_value_chosen(
    console: TestClient,
) -> None:
    session_id, csrf = signed_in(console, "city_admin")
    chosen = [str(uuid.uuid4()) for _ in range(3)]
    form = [("csrf", csrf), ("form_key", "k-1"), ("fiscal_year", "2025"), ("cohort", "regular")]
    form += [("cover_months", "12"), ("coverage_start", "01/11/2024"), ("decree_ref", "SK 1")]
    form += [("worker_id", w) for w in chosen]
    down = console.post(
        "/designations",
        content=urlencode(form),
        headers={
            "Cookie": f"{SESSION_COOKIE}={session_id}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert down.status_code == 503
    kept = re.findall(r'name="worker_id" value="([^"]+)"', down.text)
    assert kept == chosen
    assert 'name="form_key" value="k-1"' in down.text
    assert 'name="csrf"' in down.text  # the page's own token, not the one sent


def test_sign_ins_are_counted_per_browser_address_and_per_ipv6_network() -> None:
    assert browser_address("203.0.113.7") == "203.0.113.7"
    # One home or office holds a whole /64: its countless addresses share one count.
    assert browser_address("2001:db8:1:2::1") == browser_address("2001:db8:1:2:ffff::9")
    assert browser_address("2001:db8:1:2::1") != browser_address("2001:db8:1:3::1")
    assert browser_address("testclient") == "testclient"
