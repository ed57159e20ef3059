"""What every service's HTTP API shares: readable refusals (422 invalid, 409 conflicting with
the current state, 503 while a projection catches up) and never a stack trace."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated

from annotated_types import Interval
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from shared.auth import AuthSettings, Principal, authenticated
from shared.db import CONNECTION_LOST
from shared.decisions import RefusedError
from shared.eventstore.store import EnvelopeTooLargeError
from shared.policy import NoPolicyInForceError
from shared.projection.freshness import ProjectionBehindError

log = logging.getLogger(__name__)
# The programme's years; the bound also keeps a number from overflowing the database's integer.
FiscalYear = Annotated[int, Interval(ge=2022, le=2100)]
# A thousand trillion rupiah, far above any city budget: amounts stay exact in the events'
# canonical JSON, whose numbers are IEEE doubles (integers up to 2**53).
MAX_RUPIAH = 10**15


def refusal(status: int, detail: str, **extra: object) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": detail, **extra})


async def body_within(request: Request, limit: int, advice: str) -> bytes:
    """The request's body, refused with 413 (and ``advice``) once it exceeds ``limit`` bytes,
    without reading more of it."""
    too_large = HTTPException(413, f"the body is over {limit:,} bytes: {advice}")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RefusedError)
    async def refused(_: Request, error: RefusedError) -> JSONResponse:
        return refusal(
            409 if error.conflict else 422,
            str(error),
            problems=[{"field": p.field, "message": p.message} for p in error.problems],
        )

    @app.exception_handler(EnvelopeTooLargeError)
    async def unpublishable(_: Request, error: EnvelopeTooLargeError) -> JSONResponse:
        return refusal(422, str(error), problems=[{"field": error.field, "message": str(error)}])

    @app.exception_handler(NoPolicyInForceError)
    async def before_the_programme(_: Request, error: NoPolicyInForceError) -> JSONResponse:
        return refusal(422, str(error))

    @app.exception_handler(ProjectionBehindError)
    async def behind(_: Request, error: ProjectionBehindError) -> JSONResponse:
        # The decision would read data not yet caught up: nothing was decided; try again.
        return JSONResponse({"detail": f"{error}; retry shortly"}, 503, {"Retry-After": "2"})

    async def database_away(request: Request, error: Exception) -> JSONResponse:
        # A restart or failover under the request: its transaction was rolled back.
        log.warning("database unavailable on %s %s: %r", request.method, request.url.path, error)
        return JSONResponse(
            {"detail": "the database is unavailable; the request was not applied, retry shortly"},
            503,
            {"Retry-After": "1"},
        )

    for lost in CONNECTION_LOST:
        app.add_exception_handler(lost, database_away)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        # Logged with the trace for operators; the caller gets a sentence, never the trace.
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return refusal(500, "internal error; the request was not applied")


def service_app(
    title: str, description: str, auth: AuthSettings
) -> tuple[FastAPI, APIRouter, Callable[..., Principal]]:
    """A service's FastAPI app with the shared error responses, a router documented as
    needing a token, and the dependency that authenticates the caller."""
    app = FastAPI(title=f"Berlian {title}", version="1", description=description)
    install_error_handlers(app)
    router = APIRouter(responses={401: {"description": "no or invalid token"}})
    return app, router, authenticated(auth)
