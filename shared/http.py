"""What every service's HTTP API shares: the caller's authentication, idempotency keys, a body
bounded before it is read, and one shape for every refusal (RFC 9457 ``application/problem+json``:
422 invalid, 409 conflicting with the current state, 413 too large, 503 while a projection catches
up or a producer has not confirmed that its outbox is published, with the field problems named
but never what was sent), never a stack trace."""

# No postponed annotations here: FastAPI reads the annotations of the dependencies made inside
# ``idempotent``.
import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Annotated, Any, Protocol, runtime_checkable

import asyncpg
import orjson
from annotated_types import Interval
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.semconv.attributes.url_attributes import URL_QUERY
from opentelemetry.semconv.trace import SpanAttributes
from opentelemetry.trace import Span
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth import AuthSettings, Principal, authenticated, service_audience, verifier_for
from shared.db import CONNECTION_LOST
from shared.decisions import RefusedError, UnjudgeableError
from shared.eventstore.store import (
    CommandContext,
    ConcurrencyError,
    EnvelopeTooLargeError,
    IdempotencyKeyReusedError,
)
from shared.logs import CORRELATION_HEADER, correlated, correlation_id, parse_correlation
from shared.projection.freshness import ProducerUnansweredError, ProjectionBehindError
from shared.revocation import RevocationList, RevokedTokenError
from shared.scope import AreaClaimError, AreaScope, OutsideAreaError

log = logging.getLogger(__name__)
# The programme's years; the bound also keeps a number from overflowing the database's integer.
FiscalYear = Annotated[int, Interval(ge=2022, le=2100)]
# A thousand trillion rupiah, far above any city budget: amounts stay exact in the events'
# canonical JSON, whose numbers are IEEE doubles (integers up to 2**53).
MAX_RUPIAH = 10**15


# Any request body above this is refused before it is read; a route that takes more (a CSV
# import) raises its own limit with ``body_within`` before reading.
BODY_LIMIT = 2**20
_LIMIT_KEY = "berlian.body_limit"
# A body can be invalid in many places at once; the answer names the first few.
VALIDATION_ERRORS_SHOWN = 20


class BodyLimitMiddleware:
    """Refuses (413) a body whose declared Content-Length is over the limit before reading any of
    it, and one that grows over it while being read (chunked), without reading further."""

    def __init__(self, app: ASGIApp, limit: int = BODY_LIMIT) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope[_LIMIT_KEY] = (self.limit, "send a smaller body")
        declared = dict(scope["headers"]).get(b"content-length", b"").decode("latin-1")
        received = 0

        async def bounded() -> Message:
            nonlocal received
            limit, advice = scope[_LIMIT_KEY]
            too_large = HTTPException(413, f"the body is over {limit:,} bytes: {advice}")
            if declared.isdigit() and int(declared) > limit:
                raise too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large
            return message

        await self.app(scope, bounded, send)


PROBLEM_JSON = "application/problem+json"


# A refusal as RFC 9457 describes it, with every field problem when there are any.
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "default": "about:blank"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "problems": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": description, "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}}}
    for status, description in (
        (401, "No or invalid token."),
        (403, "The caller's role or area may not do this."),
        (404, "No such resource."),
        (409, "Conflicts with the current state (or overtaken by another command): retry."),
        (413, f"A body over {BODY_LIMIT:,} bytes."),
        (422, "Invalid: every problem named (or an Idempotency-Key reused for another request)."),
        (
            503,
            "A projection is catching up, a producer has not confirmed its outbox is published, "
            "or the database is away: nothing applied, retry.",
        ),
    )
}


def refusal(
    status: int, detail: str, headers: Mapping[str, str] | None = None, **extra: object
) -> JSONResponse:
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status}
    return JSONResponse(
        {**body, "detail": detail, **extra}, status, headers, media_type=PROBLEM_JSON
    )


def install_request_limits(app: FastAPI) -> None:
    """The body limit, and 422 answers naming where the input is wrong but not repeating it
    (an echoed body doubles what an oversized or hostile request costs, and leaks it to logs)."""
    app.add_middleware(BodyLimitMiddleware)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        errors = error.errors()
        problems = [
            {"field": ".".join(str(part) for part in e["loc"]), "message": e["msg"]}
            for e in errors[:VALIDATION_ERRORS_SHOWN]
        ]
        detail = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        return refusal(422, detail, problems=problems, errors=len(errors))


def body_limit(request: Request, limit: int, advice: str) -> None:
    """Refuse the request's body with 413 (and ``advice``) once it exceeds ``limit`` bytes
    instead of the app's usual limit, without reading more of it (BodyLimitMiddleware): for a
    route that reads its body itself, as a stream."""
    if _LIMIT_KEY not in request.scope:
        raise RuntimeError("body_limit needs the app's BodyLimitMiddleware (service_app)")
    request.scope[_LIMIT_KEY] = (limit, advice)


async def body_within(request: Request, limit: int, advice: str) -> bytes:
    """The request's body, read whole within ``body_limit``."""
    body_limit(request, limit, advice)
    return await request.body()


@dataclass(frozen=True)
class Idempotency:
    """A command's idempotency key, scoped to its operation and caller, and the fingerprint of
    the request it was first sent with."""

    key: str
    fingerprint: str


KEY_DESCRIPTION = (
    "A unique value the client generates for this request (a UUID, say), sent again unchanged "
    "when it retries: the same key with the same request answers the first answer and changes "
    "nothing; the same key with another request is refused (422). Scoped to the operation and "
    "the caller."
)
KEY_HEADER = Header(
    alias="Idempotency-Key", min_length=1, max_length=200, description=KEY_DESCRIPTION
)
IdempotencyDependency = Callable[..., Awaitable[Idempotency | None]]


async def request_fingerprint(request: Request) -> str:
    """The request as its path and its body's JSON (key order ignored): what a key binds."""
    body = await request.body()
    try:
        canonical = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS) if body else b""
    except orjson.JSONDecodeError:
        canonical = body
    digest = hashlib.sha256(f"{request.method} {request.url.path}\n".encode())
    digest.update(canonical)
    return digest.hexdigest()


def idempotent(operation: str, *, required: bool, streamed: bool = False) -> IdempotencyDependency:
    """The ``Idempotency-Key`` header of an operation, documented in OpenAPI: required for
    operations that move money, optional for the others (a retry without one may apply twice).
    A ``streamed`` body is not read here (it may be larger than memory): the route fingerprints
    it as it reads it, and the key's fingerprint is left empty."""

    async def optional_key(
        request: Request,
        principal: Annotated[Principal, Depends(caller)],
        idempotency_key: Annotated[
            str | None,
            Header(
                alias="Idempotency-Key", min_length=1, max_length=200, description=KEY_DESCRIPTION
            ),
        ] = None,
    ) -> Idempotency | None:
        if idempotency_key is None:
            return None
        scoped = f"{operation}:{principal.subject}:{idempotency_key}"
        return Idempotency(scoped, "" if streamed else await request_fingerprint(request))

    async def required_key(
        request: Request,
        principal: Annotated[Principal, Depends(caller)],
        idempotency_key: Annotated[
            str,
            Header(
                alias="Idempotency-Key", min_length=1, max_length=200, description=KEY_DESCRIPTION
            ),
        ],
    ) -> Idempotency | None:
        return await optional_key(request, principal, idempotency_key)

    return required_key if required else optional_key


def install_error_handlers(app: FastAPI) -> None:
    install_request_limits(app)

    @app.exception_handler(IdempotencyKeyReusedError)
    async def key_reused(_: Request, error: IdempotencyKeyReusedError) -> JSONResponse:
        return refusal(422, str(error))

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
        # Another command changed the same stream first, each time it was decided again:
        # nothing was applied; read and retry.
        return refusal(409, f"{error}; nothing was applied: read it again and retry")

    @app.exception_handler(UnjudgeableError)
    async def unjudgeable(_: Request, error: UnjudgeableError) -> JSONResponse:
        return refusal(422, str(error))

    @app.exception_handler(ProjectionBehindError)
    async def behind(_: Request, error: ProjectionBehindError) -> JSONResponse:
        # The decision would read data not yet caught up: nothing was decided; try again.
        return refusal(503, f"{error}; retry shortly", {"Retry-After": "2"})

    @app.exception_handler(ProducerUnansweredError)
    async def producer_unanswered(_: Request, error: ProducerUnansweredError) -> JSONResponse:
        # Events it committed may be on no topic yet: nothing was decided, never blind.
        return refusal(503, f"{error}; nothing was decided, retry shortly", {"Retry-After": "2"})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        return refusal(error.status_code, str(error.detail), error.headers)

    async def database_away(request: Request, error: Exception) -> JSONResponse:
        # A restart or failover under the request: its transaction was rolled back.
        log.warning("database unavailable on %s %s: %r", request.method, request.url.path, error)
        return refusal(
            503,
            "the database is unavailable; the request was not applied, retry shortly",
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


def _without_query(span: Span, scope: dict[str, Any]) -> None:
    """A query string can hold personal data (a NIK searched for): spans, which leave the
    process, keep the path only."""
    if not scope.get("query_string") or not isinstance(span, ReadableSpan):
        return
    url = (span.attributes or {}).get(SpanAttributes.HTTP_URL)
    if isinstance(url, str):
        span.set_attribute(SpanAttributes.HTTP_URL, url.split("?", 1)[0])
    if (span.attributes or {}).get(URL_QUERY) is not None:
        span.set_attribute(URL_QUERY, "")


def install_tracing(app: FastAPI) -> None:
    """A span per request (continuing the caller's ``traceparent``), and the request's
    correlation id (the caller's ``X-Correlation-ID`` when it is a UUID) on its log lines,
    in its events and in the response."""
    FastAPIInstrumentor.instrument_app(
        app,
        excluded_urls="health/live,health/ready,metrics",
        server_request_hook=_without_query,
    )

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


_bearer = HTTPBearer(auto_error=False)


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The authenticated caller, by the app's authentication settings; refused with 401 when
    their token's area does not fit their role (an empty, partial or malformed code, a number,
    a list), or when the token was revoked: every endpoint then works on a valid scope."""
    authenticate: Callable[..., Principal] = request.app.state.authenticate
    # In a worker thread: fetching the provider's keys must not block the event loop.
    principal = await run_in_threadpool(authenticate, credentials)
    try:
        AreaScope.of(principal)
        revocations: RevocationList | None = request.app.state.revocations
        if revocations is not None:
            await revocations.check(principal.subject, principal.token_id, principal.issued_at)
    except (AreaClaimError, RevokedTokenError) as error:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, str(error), headers={"WWW-Authenticate": "Bearer"}
        ) from None
    return principal


@runtime_checkable
class UsesDatabase(Protocol):
    """A domain service working on a pool: its revocation list is read through it."""

    pool: asyncpg.Pool


def service_router() -> APIRouter:
    """A service's routes: every one needs a token and answers refusals as problems."""
    return APIRouter(responses=PROBLEM_RESPONSES)


def service_app(
    title: str,
    description: str,
    auth: AuthSettings,
    router: APIRouter,
    service: object,
    published: Sequence[APIRouter] = (),
) -> FastAPI:
    """A service's FastAPI app: its routes, the shared error responses, tracing and
    correlation, the domain service its routes depend on (``app.state.service``) and how
    callers are authenticated; ``published`` are the documents it serves to anyone (the event
    contract), which the platform does not know."""
    app = FastAPI(title=f"Berlian {title}", version="1", description=description)
    install_error_handlers(app)
    for documents in published:
        app.include_router(documents)
    install_tracing(app)
    app.state.authenticate = authenticated(verifier_for(auth, service_audience(title)))
    app.state.revocations = (
        RevocationList(service.pool) if isinstance(service, UsesDatabase) else None
    )
    app.state.service = service
    app.include_router(router)
    return app


def command_context(principal: Principal, key: Idempotency | None) -> CommandContext:
    """Who sends a command, within which flow, and under which idempotency key (if any)."""
    return CommandContext(
        principal.subject,
        principal.role,
        correlation_id(),
        idempotency_key=key.key if key else None,
        fingerprint=key.fingerprint if key else None,
    )
