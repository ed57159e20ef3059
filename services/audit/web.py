"""The auditors' read-only web page: a worker's timeline, the programme on a chosen date, and the
topics' positions, projection lag and dead letters. Server-rendered HTML, no script, behind the
auditor role (and the city administrator's); personal data only where the role may see it, as
the enrolment service itself decides.

Sign-in pastes a token (``berlian token --role auditor``) once; it is kept in an HttpOnly,
SameSite=Strict cookie.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Annotated, Any

import asyncpg
import httpx
from fastapi import Cookie, FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.audit.asof import Moment, State, rebuild
from services.audit.history import worker_history
from services.audit.report import rupiah, templates
from shared.auth import AuthSettings, Principal, read_token
from shared.policy.calendar import business_day
from shared.scope import PROFILE_FIELDS, AreaScope
from shared.settings import SERVICES, KafkaSettings
from shared.topic_reader import end_offsets

COOKIE = "berlian_audit_token"
ALLOWED_ROLES = ("auditor", "city_admin")


class WebSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    enrolment_url: str = Field(
        default="http://127.0.0.1:8001", description="Where the enrolment API answers."
    )


class _SignInRequiredError(Exception):
    pass


def create_app(
    pool: asyncpg.Pool, kafka: KafkaSettings, auth: AuthSettings, web: WebSettings
) -> FastAPI:
    app = FastAPI(title="Berlian audit workbench", docs_url=None, redoc_url=None)
    pages = templates()
    states: dict[date, State] = {}
    rebuilding = asyncio.Lock()

    def page(name: str, principal: Principal | None, **values: Any) -> HTMLResponse:
        html = pages.get_template(name).render(principal=principal, rupiah=rupiah, **values)
        return HTMLResponse(html)

    def signed_in(token: str | None) -> Principal:
        if not token:
            raise _SignInRequiredError
        try:
            principal = read_token(auth.jwt_secret, token)
        except PermissionError:
            raise _SignInRequiredError from None
        if principal.role not in ALLOWED_ROLES:
            raise HTTPException(403, f"role {principal.role} may not use the audit workbench")
        return principal

    @app.exception_handler(_SignInRequiredError)
    async def to_sign_in(request: Request, _: Exception) -> RedirectResponse:
        return RedirectResponse("/sign-in", status_code=303)

    @app.get("/sign-in", response_class=HTMLResponse)
    async def sign_in_form(error: str | None = None) -> HTMLResponse:
        return page("sign_in.html.j2", None, error=error)

    @app.post("/sign-in")
    async def sign_in(token: Annotated[str, Form()]) -> RedirectResponse:
        try:
            principal = read_token(auth.jwt_secret, token.strip())
        except PermissionError as refused:
            return RedirectResponse(f"/sign-in?error={refused}", status_code=303)
        if principal.role not in ALLOWED_ROLES:
            message = f"role {principal.role} may not use the audit workbench"
            return RedirectResponse(f"/sign-in?error={message}", status_code=303)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, token.strip(), httponly=True, samesite="strict")
        return response

    @app.get("/", response_class=HTMLResponse)
    async def home(token: Annotated[str | None, Cookie(alias=COOKIE)] = None) -> HTMLResponse:
        return page("home.html.j2", signed_in(token))

    @app.get("/workers", response_class=HTMLResponse)
    async def timeline(
        token: Annotated[str | None, Cookie(alias=COOKIE)] = None,
        q: Annotated[str, Query(max_length=64)] = "",
    ) -> HTMLResponse:
        principal = signed_in(token)
        query = q.strip()
        if not query:
            return page("timeline.html.j2", principal, query="", worker=None, entries=None)
        worker_id, worker = await _find_worker(web, token or "", query)
        if worker_id is None:
            message = f"No worker with NIK or id {query!r}."
            return page("timeline.html.j2", principal, query=query, error=message, entries=None)
        entries = await worker_history(kafka, worker_id)
        if not AreaScope.of(principal).acts_on_people:
            entries = [
                replace(e, details={k: v for k, v in e.details.items() if k not in PROFILE_FIELDS})
                for e in entries
            ]
        return page(
            "timeline.html.j2",
            principal,
            query=query,
            worker_id=worker_id,
            worker=worker,
            entries=entries,
        )

    @app.get("/dashboard", response_class=HTMLResponse)
    async def dashboard(
        token: Annotated[str | None, Cookie(alias=COOKIE)] = None,
        on: date | None = None,
    ) -> HTMLResponse:
        principal = signed_in(token)
        day = on or business_day(datetime.now(UTC))
        async with rebuilding:  # one rebuild at a time: they share their scratch schemas
            if day not in states:
                states[day] = await rebuild(pool, kafka, "web", Moment(true_on=day))
            state = states[day]
        return page("dashboard.html.j2", principal, day=day, state=state)

    @app.get("/operations", response_class=HTMLResponse)
    async def operations(
        token: Annotated[str | None, Cookie(alias=COOKIE)] = None,
    ) -> HTMLResponse:
        principal = signed_in(token)
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
        return page("operations.html.j2", principal, topics=topics, lag=lag, letters=letters)

    return app


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
