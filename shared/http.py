"""What every service's HTTP API shares: readable refusals (422 invalid, 409 conflicting with
the current state, 503 while a projection catches up) and never a stack trace.

No postponed annotations here: FastAPI reads the annotations of the area check, which refer to
the authentication dependency it wraps.
"""

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

from annotated_types import Interval
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from shared.auth import AuthSettings, Principal, authenticated
from shared.contract_api import contract_router
from shared.db import CONNECTION_LOST
from shared.decisions import RefusedError
from shared.eventstore.store import ConcurrencyError, EnvelopeTooLargeError
from shared.logs import CORRELATION_HEADER, correlated, parse_correlation
from shared.policy import NoPolicyInForceError
from shared.projection.freshness import ProjectionBehindError
from shared.scope import AreaClaimError, AreaScope, OutsideAreaError

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

    @app.exception_handler(OutsideAreaError)
    async def outside_area(_: Request, error: OutsideAreaError) -> JSONResponse:
        return refusal(403, str(error))

    @app.exception_handler(ConcurrencyError)
    async def changed_meanwhile(_: Request, error: ConcurrencyError) -> JSONResponse:
        # Another command changed the same stream first: nothing was applied; read and retry.
        return refusal(409, f"{error}; nothing was applied: read it again and retry")

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
        # Answered outside the middlewares: the request's correlation id is taken up again.
        correlation: uuid.UUID | None = getattr(request.state, "correlation_id", None)
        with correlated(correlation):
            log.exception("unexpected error on %s %s", request.method, request.url.path)
        answer = refusal(500, "internal error; the request was not applied")
        if correlation is not None:
            answer.headers[CORRELATION_HEADER] = str(correlation)
        return answer


def install_tracing(app: FastAPI) -> None:
    """A span per request (continuing the caller's ``traceparent``), and the request's
    correlation id (the caller's ``X-Correlation-ID`` when it is a UUID) on its log lines,
    in its events and in the response."""
    FastAPIInstrumentor.instrument_app(app, excluded_urls="health/live,health/ready,metrics")

    @app.middleware("http")
    async def correlate(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        correlation = parse_correlation(request.headers.get(CORRELATION_HEADER)) or uuid.uuid4()
        request.state.correlation_id = correlation
        with correlated(correlation):
            response = await call_next(request)
        response.headers[CORRELATION_HEADER] = str(correlation)
        return response


def service_app(
    title: str, description: str, auth: AuthSettings
) -> tuple[FastAPI, APIRouter, Callable[..., Principal]]:
    """A service's FastAPI app with the shared error responses and the event contract's
    read-only routes, a router documented as needing a token, and the dependency that
    authenticates the caller and checks their area."""
    app = FastAPI(title=f"Berlian {title}", version="1", description=description)
    install_error_handlers(app)
    app.include_router(contract_router())  # the event contract, served by every service
    install_tracing(app)
    router = APIRouter(responses={401: {"description": "no or invalid token"}})
    return app, router, within_area(authenticated(auth))


def within_area(authenticate: Callable[..., Principal]) -> Callable[..., Principal]:
    """The caller, refused with 401 when their token's area does not fit their role (an empty,
    partial or malformed code, a number, a list): every endpoint then works on a valid scope."""

    def dependency(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        try:
            AreaScope.of(principal)
        except AreaClaimError as error:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, str(error), headers={"WWW-Authenticate": "Bearer"}
            ) from None
        return principal

    return dependency
