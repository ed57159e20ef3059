"""The auditors' read-only web page: a worker's timeline, the programme on a chosen date, and the
topics' positions, projection lag and dead letters. Server-rendered HTML, no script, behind the
auditor role (and the city administrator's); personal data only where the role may see it, as
the enrolment service itself decides.

Sign-in pastes an access token from the identity provider (``berlian token --role auditor``)
once, into a form protected against login CSRF (a token bound to a sign-in cookie). The access
token stays on the server, in a session that ends with it (or at sign-out); the browser holds only
the session's random id, in a Secure, HttpOnly, SameSite=Strict cookie. No page is cached.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any

import asyncpg
import httpx
import jwt
from fastapi import Cookie, FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.audit.asof import Moment, State, rebuild
from shared.audit.history import worker_history
from shared.audit.report import rupiah, templates
from shared.auth import (
    AUDIT_AUDIENCE,
    AuthSettings,
    Principal,
    ProviderUnavailableError,
    verifier_for,
)
from shared.http import install_request_limits
from shared.settings import SERVICES, KafkaSettings
from shared.topic_reader import end_offsets

SESSION_COOKIE = "berlian_audit_session"
SIGN_IN_COOKIE = "berlian_audit_sign_in"
ALLOWED_ROLES = ("auditor", "city_admin")
# Sessions live in this process; past this many the oldest are ended first.
MAX_SESSIONS = 1000
SECURITY_HEADERS = {
    # Every page may show personal data or figures as of now: never kept by a browser or proxy.
    "Cache-Control": "no-store",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


@dataclass(frozen=True)
class Session:
    principal: Principal
    token: str  # the caller's access token, sent on to the enrolment API
    csrf: str  # proves a form (sign-out) came from one of this session's pages
    expires_at: float  # the token's expiry, as time.time()


class Sessions:
    """Signed-in browsers by the random id in their cookie; a session ends with its token."""

    def __init__(self) -> None:
        self._by_id: dict[str, Session] = {}

    def start(self, principal: Principal, token: str, expires_at: float) -> str:
        now = time.time()
        for expired in [k for k, v in self._by_id.items() if v.expires_at <= now]:
            del self._by_id[expired]
        while len(self._by_id) >= MAX_SESSIONS:
            del self._by_id[next(iter(self._by_id))]
        session_id = secrets.token_urlsafe(32)
        self._by_id[session_id] = Session(principal, token, secrets.token_urlsafe(32), expires_at)
        return session_id

    def get(self, session_id: str | None) -> Session | None:
        session = self._by_id.get(session_id or "")
        if session is None or session.expires_at <= time.time():
            return None
        return session

    def end(self, session_id: str | None) -> None:
        self._by_id.pop(session_id or "", None)


class WebSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    enrolment_url: str = Field(
        default="http://127.0.0.1:8001", description="Where the enrolment API answers."
    )


class _SignInRequiredError(Exception):
    pass


def create_app(
    pool: asyncpg.Pool,
    kafka: KafkaSettings,
    auth: AuthSettings,
    web: WebSettings,
) -> FastAPI:
    app = FastAPI(title="Berlian audit workbench", docs_url=None, redoc_url=None)
    install_request_limits(app)
    pages = templates()
    states: dict[date, State] = {}
    rebuilding = asyncio.Lock()
    tokens = verifier_for(auth, AUDIT_AUDIENCE)
    sessions = Sessions()
    # Binds a sign-in form to the browser that asked for it (no login CSRF); new per process.
    form_key = secrets.token_bytes(32)

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    def page(name: str, session: Session | None, **values: Any) -> HTMLResponse:
        html = pages.get_template(name).render(
            principal=session.principal if session else None,
            csrf=session.csrf if session else "",
            rupiah=rupiah,
            **values,
        )
        return HTMLResponse(html)

    def signed_in(session_id: str | None) -> Session:
        session = sessions.get(session_id)
        if session is None:
            raise _SignInRequiredError
        return session

    def form_token(sign_in_id: str) -> str:
        return hmac.new(form_key, sign_in_id.encode(), hashlib.sha256).hexdigest()

    @app.exception_handler(_SignInRequiredError)
    async def to_sign_in(request: Request, _: Exception) -> RedirectResponse:
        return RedirectResponse("/sign-in", status_code=303)

    @app.get("/sign-in", response_class=HTMLResponse)
    async def sign_in_form(
        error: Annotated[str | None, Query(max_length=300)] = None,
        sign_in_id: Annotated[str | None, Cookie(alias=SIGN_IN_COOKIE, max_length=64)] = None,
    ) -> HTMLResponse:
        sign_in_id = sign_in_id or secrets.token_urlsafe(32)
        response = page("sign_in.html.j2", None, error=error, form_token=form_token(sign_in_id))
        _set_cookie(response, SIGN_IN_COOKIE, sign_in_id, max_age=3600)
        return response

    @app.post("/sign-in")
    async def sign_in(
        token: Annotated[str, Form(max_length=16384)],
        form: Annotated[str, Form(max_length=128)] = "",
        sign_in_id: Annotated[str | None, Cookie(alias=SIGN_IN_COOKIE, max_length=64)] = None,
    ) -> RedirectResponse:
        if not sign_in_id or not hmac.compare_digest(form, form_token(sign_in_id)):
            # Not this browser's form: another site posting its own token to sign the user in.
            raise HTTPException(403, "sign in from this site's own sign-in page")
        try:
            principal = await asyncio.to_thread(tokens.principal, token.strip())
        except PermissionError as refused:
            return RedirectResponse(f"/sign-in?error={refused}", status_code=303)
        except ProviderUnavailableError as unavailable:
            return RedirectResponse(f"/sign-in?error={unavailable}", status_code=303)
        if principal.role not in ALLOWED_ROLES:
            message = f"role {principal.role} may not use the audit workbench"
            return RedirectResponse(f"/sign-in?error={message}", status_code=303)
        expires_at = float(_unverified_expiry(token.strip()))
        response = RedirectResponse("/", status_code=303)
        session_id = sessions.start(principal, token.strip(), expires_at)
        _set_cookie(response, SESSION_COOKIE, session_id)
        response.delete_cookie(SIGN_IN_COOKIE, secure=True, httponly=True, samesite="strict")
        return response

    @app.post("/sign-out")
    async def sign_out(
        form: Annotated[str, Form(max_length=128)] = "",
        session_id: Annotated[str | None, Cookie(alias=SESSION_COOKIE, max_length=64)] = None,
    ) -> RedirectResponse:
        session = sessions.get(session_id)
        if session is not None and hmac.compare_digest(form, session.csrf):
            sessions.end(session_id)
        response = RedirectResponse("/sign-in", status_code=303)
        response.delete_cookie(SESSION_COOKIE, secure=True, httponly=True, samesite="strict")
        return response

    @app.get("/", response_class=HTMLResponse)
    async def home(
        session_id: Annotated[str | None, Cookie(alias=SESSION_COOKIE, max_length=64)] = None,
    ) -> HTMLResponse:
        return page("home.html.j2", signed_in(session_id))

    @app.get("/workers", response_class=HTMLResponse)
    async def timeline(
        session_id: Annotated[str | None, Cookie(alias=SESSION_COOKIE, max_length=64)] = None,
        q: Annotated[str, Query(max_length=64)] = "",
    ) -> HTMLResponse:
        session = signed_in(session_id)
        query = q.strip()
        if not query:
            return page("timeline.html.j2", session, query="", worker=None, entries=None)
        worker_id, worker = await _find_worker(web, session.token, query)
        if worker_id is None:
            message = f"No worker with NIK or id {query!r}."
            return page("timeline.html.j2", session, query=query, error=message, entries=None)
        entries = await worker_history(kafka, worker_id)
        return page(
            "timeline.html.j2",
            session,
            query=query,
            worker_id=worker_id,
            worker=worker,
            entries=entries,
        )

    @app.get("/dashboard", response_class=HTMLResponse)
    async def dashboard(
        session_id: Annotated[str | None, Cookie(alias=SESSION_COOKIE, max_length=64)] = None,
        on: date | None = None,
    ) -> HTMLResponse:
        session = signed_in(session_id)
        day = on or datetime.now(UTC).date()
        async with rebuilding:  # one rebuild at a time: they share their scratch schemas
            if day not in states:
                states[day] = await rebuild(pool, kafka, "web", Moment(true_on=day))
            state = states[day]
        return page("dashboard.html.j2", session, day=day, state=state)

    @app.get("/operations", response_class=HTMLResponse)
    async def operations(
        session_id: Annotated[str | None, Cookie(alias=SESSION_COOKIE, max_length=64)] = None,
    ) -> HTMLResponse:
        session = signed_in(session_id)
        ends = await end_offsets(kafka, [kafka.events_topic(s) for s in SERVICES])
        topics = sorted((tp.topic, tp.partition, end) for tp, end in ends.items())
        by_partition = {(tp.topic, tp.partition): end for tp, end in ends.items()}
        lag, letters = [], []
        for service in SERVICES:
            for row in await pool.fetch(
                f"SELECT projection, topic, partition, next_offset FROM {service}."
                "projection_positions ORDER BY 1, 2, 3"
            ):
                end = by_partition.get((row["topic"], row["partition"]), row["next_offset"])
                lag.append((service, *row.values(), max(0, end - row["next_offset"])))
            for row in await pool.fetch(
                f"SELECT consumer, left(reason, 60) AS reason, count(*) AS letters FROM {service}."
                "dead_letters WHERE redriven_at IS NULL GROUP BY 1, 2 ORDER BY 1, 2"
            ):
                letters.append((service, *row.values()))
        return page("operations.html.j2", session, topics=topics, lag=lag, letters=letters)

    return app


def _set_cookie(response: Response, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(
        name, value, max_age=max_age, secure=True, httponly=True, samesite="strict", path="/"
    )


def _unverified_expiry(token: str) -> int:
    """The expiry of a token already verified: the session ends with it."""
    return int(jwt.decode(token, options={"verify_signature": False})["exp"])


async def _find_worker(
    web: WebSettings, token: str, query: str
) -> tuple[uuid.UUID | None, dict[str, Any] | None]:
    """The worker by NIK or id, as the enrolment service shows it to this caller's role."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=web.enrolment_url, timeout=10) as enrolment:
        if re.fullmatch(r"[0-9]{16}", query):
            found = await enrolment.get("/workers", params={"nik": query}, headers=headers)
            workers = found.json() if found.status_code == 200 else []
            if not workers:
                return None, None
            return uuid.UUID(workers[0]["worker_id"]), workers[0]
        try:
            worker_id = uuid.UUID(query)
        except ValueError:
            return None, None
        seen = await enrolment.get(f"/workers/{worker_id}", headers=headers)
        return worker_id, seen.json() if seen.status_code == 200 else None
