"""The auditors' read-only web page: a worker's timeline, the programme on a chosen date, and the
topics' positions, projection lag and dead letters. Server-rendered HTML, no script, behind the
auditor role (and the city administrator's); personal data only where the role may see it, as
the enrolment service itself decides.

Sign-in goes through the identity provider (authorization code with PKCE, the flow bound to
the browser that started it by a sign-in cookie), or pastes an access token from it
(``berlian token --role auditor``) into a form protected against login CSRF (a token bound to
that cookie). Either way the access token stays on the server, in a session that ends with it
(or at sign-out, which also ends the provider's session); the browser holds only the session's
random id, in a Secure, HttpOnly, SameSite=Strict cookie. No page is cached.
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
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import asyncpg
import httpx
import jwt
from fastapi import Cookie, FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.audit.asof import Moment, State, rebuild
from services.audit.history import worker_history
from services.audit.report import rupiah, templates
from shared.auth import (
    AUDIT_AUDIENCE,
    AUDIT_WEB_CLIENT,
    AuthSettings,
    Principal,
    ProviderUnavailableError,
    verifier_for,
)
from shared.business_calendar import business_day
from shared.http import install_request_limits
from shared.oidc_login import (
    PendingSignIns,
    ProviderEndpoints,
    TooManySignInsError,
    new_verifier,
)
from shared.privileges import AUDIT_WEB_LABEL
from shared.revocation import RevocationList, RevokedTokenError
from shared.scope import PROFILE_FIELDS, AreaScope
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
    id_token: str = ""  # to end the provider's session too at sign-out


@dataclass(frozen=True)
class PendingSignIn:
    """A sign-in sent to the provider, waiting for its answer."""

    sign_in_id: str  # the browser's sign-in cookie: the answer must come back to it
    verifier: str  # PKCE: only this page can redeem the code


class Sessions:
    """Signed-in browsers by the random id in their cookie; a session ends with its token."""

    def __init__(self) -> None:
        self._by_id: dict[str, Session] = {}

    def start(self, principal: Principal, token: str, expires_at: float, id_token: str = "") -> str:
        now = time.time()
        for expired in [k for k, v in self._by_id.items() if v.expires_at <= now]:
            del self._by_id[expired]
        while len(self._by_id) >= MAX_SESSIONS:
            del self._by_id[next(iter(self._by_id))]
        session_id = secrets.token_urlsafe(32)
        self._by_id[session_id] = Session(
            principal, token, secrets.token_urlsafe(32), expires_at, id_token
        )
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
    audit_web_url: str = Field(
        default="http://127.0.0.1:8010",
        description="Where browsers reach this page; the provider sends them back to "
        "<url>/sign-in/callback.",
    )
    audit_web_client_id: str = Field(
        default=AUDIT_WEB_CLIENT, description="This page's client at the identity provider."
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
    endpoints_of_provider = ProviderEndpoints(auth)
    revocations = RevocationList(pool)
    sessions = Sessions()
    pending: PendingSignIns[PendingSignIn] = PendingSignIns()
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

    async def signed_in(session_id: str | None) -> Session:
        session = sessions.get(session_id)
        if session is None:
            raise _SignInRequiredError
        caller = session.principal
        try:
            # A token revoked after sign-in ends its session at the next page.
            await revocations.check(caller.subject, caller.token_id, caller.issued_at)
        except RevokedTokenError:
            sessions.end(session_id)
            raise _SignInRequiredError from None
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
        _set_cookie(response, SIGN_IN_COOKIE, sign_in_id, max_age=3600, same_site="lax")
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
        token = token.strip()
        principal = await _admitted(token)
        if isinstance(principal, str):
            return RedirectResponse(f"/sign-in?{urlencode({'error': principal})}", 303)
        response = RedirectResponse("/", status_code=303)
        session_id = sessions.start(principal, token, float(_unverified_expiry(token)))
        _set_cookie(response, SESSION_COOKIE, session_id)
        _delete_cookie(response, SIGN_IN_COOKIE)
        return response

    @app.get("/sign-in/provider")
    async def sign_in_at_provider(
        request: Request,
        sign_in_id: Annotated[str | None, Cookie(alias=SIGN_IN_COOKIE, max_length=64)] = None,
    ) -> RedirectResponse:
        endpoints = await asyncio.to_thread(endpoints_of_provider)
        sign_in_id = sign_in_id or secrets.token_urlsafe(32)
        verifier, challenge = new_verifier()
        client = request.client.host if request.client else ""
        try:
            state = pending.start(client, PendingSignIn(sign_in_id, verifier))
        except TooManySignInsError as error:
            raise HTTPException(503, str(error), headers={"Retry-After": "30"}) from None
        query = urlencode(
            {
                "response_type": "code",
                "client_id": web.audit_web_client_id,
                "redirect_uri": f"{web.audit_web_url}/sign-in/callback",
                "scope": "openid",
                "state": state,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        response = RedirectResponse(f"{endpoints['authorization_endpoint']}?{query}", 303)
        _set_cookie(response, SIGN_IN_COOKIE, sign_in_id, max_age=3600, same_site="lax")
        return response

    @app.get("/sign-in/callback", response_class=HTMLResponse)
    async def provider_callback(
        code: Annotated[str, Query(max_length=4096)] = "",
        state: Annotated[str, Query(max_length=128)] = "",
        error: Annotated[str, Query(max_length=200)] = "",
        sign_in_id: Annotated[str | None, Cookie(alias=SIGN_IN_COOKIE, max_length=64)] = None,
    ) -> Response:
        started = pending.answered(state)
        if started is None or not hmac.compare_digest(sign_in_id or "", started.sign_in_id):
            # Not the answer to a sign-in this browser started here: someone else's code.
            raise HTTPException(403, "this sign-in was not started from this browser")
        if error or not code:
            return RedirectResponse(f"/sign-in?{urlencode({'error': error or 'no code'})}", 303)
        endpoints = await asyncio.to_thread(endpoints_of_provider)
        async with httpx.AsyncClient(timeout=auth.provider_timeout_seconds) as provider:
            answer = await provider.post(
                endpoints["token_endpoint"],
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": f"{web.audit_web_url}/sign-in/callback",
                    "client_id": web.audit_web_client_id,
                    "code_verifier": started.verifier,
                },
            )
        if answer.status_code != 200:
            message = f"the identity provider refused the sign-in ({answer.status_code})"
            return RedirectResponse(f"/sign-in?{urlencode({'error': message})}", 303)
        granted = answer.json()
        token = str(granted.get("access_token", ""))
        principal = await _admitted(token)
        if isinstance(principal, str):
            return RedirectResponse(f"/sign-in?{urlencode({'error': principal})}", 303)
        session_id = sessions.start(
            principal,
            token,
            float(_unverified_expiry(token)),
            str(granted.get("id_token", "")),
        )
        # A page of this site moves on to the home page: the session cookie is SameSite=Strict,
        # and a redirect straight from the provider's answer would count as cross-site.
        response = HTMLResponse(
            '<!doctype html><meta http-equiv="refresh" content="0;url=/">'
            '<a href="/">Signed in: continue</a>'
        )
        _set_cookie(response, SESSION_COOKIE, session_id)
        _delete_cookie(response, SIGN_IN_COOKIE)
        return response

    async def _admitted(token: str) -> Principal | str:
        """Who signs in with this token, or why they may not."""
        try:
            principal = await asyncio.to_thread(tokens.principal, token)
            await revocations.check(principal.subject, principal.token_id, principal.issued_at)
        except (PermissionError, ProviderUnavailableError) as refused:
            return str(refused)
        if principal.role not in ALLOWED_ROLES:
            return f"role {principal.role} may not use the audit workbench"
        return principal

    @app.post("/sign-out")
    async def sign_out(
        form: Annotated[str, Form(max_length=128)] = "",
        session_id: Annotated[str | None, Cookie(alias=SESSION_COOKIE, max_length=64)] = None,
    ) -> RedirectResponse:
        session = sessions.get(session_id)
        target = "/sign-in"
        if session is not None and hmac.compare_digest(form, session.csrf):
            sessions.end(session_id)
            if session.id_token:
                # Signed in at the provider: end that session too, then come back here.
                endpoints = await asyncio.to_thread(endpoints_of_provider)
                query = urlencode(
                    {
                        "id_token_hint": session.id_token,
                        "post_logout_redirect_uri": f"{web.audit_web_url}/sign-in",
                    }
                )
                target = f"{endpoints['end_session_endpoint']}?{query}"
        response = RedirectResponse(target, status_code=303)
        _delete_cookie(response, SESSION_COOKIE)
        return response

    @app.get("/", response_class=HTMLResponse)
    async def home(
        session_id: Annotated[str | None, Cookie(alias=SESSION_COOKIE, max_length=64)] = None,
    ) -> HTMLResponse:
        return page("home.html.j2", await signed_in(session_id))

    @app.get("/workers", response_class=HTMLResponse)
    async def timeline(
        session_id: Annotated[str | None, Cookie(alias=SESSION_COOKIE, max_length=64)] = None,
        q: Annotated[str, Query(max_length=64)] = "",
    ) -> HTMLResponse:
        session = await signed_in(session_id)
        query = q.strip()
        if not query:
            return page("timeline.html.j2", session, query="", worker=None, entries=None)
        worker_id, worker = await _find_worker(web, session.token, query)
        if worker_id is None:
            message = f"No worker with NIK or id {query!r}."
            return page("timeline.html.j2", session, query=query, error=message, entries=None)
        entries = await worker_history(kafka, worker_id)
        if not AreaScope.of(session.principal).acts_on_people:
            entries = [
                replace(e, details={k: v for k, v in e.details.items() if k not in PROFILE_FIELDS})
                for e in entries
            ]
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
        session = await signed_in(session_id)
        day = on or business_day(datetime.now(UTC))
        async with rebuilding:  # one rebuild at a time: they share their scratch schemas
            if day not in states:
                states[day] = await rebuild(pool, kafka, AUDIT_WEB_LABEL, Moment(true_on=day))
            state = states[day]
        return page("dashboard.html.j2", session, day=day, state=state)

    @app.get("/operations", response_class=HTMLResponse)
    async def operations(
        session_id: Annotated[str | None, Cookie(alias=SESSION_COOKIE, max_length=64)] = None,
    ) -> HTMLResponse:
        session = await signed_in(session_id)
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
                "dead_letters WHERE resolved_at IS NULL GROUP BY 1, 2 ORDER BY 1, 2"
            ):
                letters.append((service, *row.values()))
        return page("operations.html.j2", session, topics=topics, lag=lag, letters=letters)

    return app


def _set_cookie(
    response: Response,
    name: str,
    value: str,
    max_age: int | None = None,
    same_site: Literal["strict", "lax"] = "strict",
) -> None:
    """The sign-in cookie is Lax, as it must come back with the provider's answer (a
    top-level navigation from another site); the session cookie is Strict."""
    response.set_cookie(
        name, value, max_age=max_age, secure=True, httponly=True, samesite=same_site, path="/"
    )


def _delete_cookie(response: Response, name: str) -> None:
    response.delete_cookie(name, secure=True, httponly=True, samesite="strict", path="/")


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
