"""Every answer names the request's correlation id: the caller's when it sent a UUID, a new one
otherwise; the handler (and so every event it appends) sees the same id."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import httpx
import pytest
import structlog

from shared.auth import AuthSettings
from shared.http import service_app, service_router
from shared.logs import CORRELATION_HEADER, correlation_id

pytestmark = pytest.mark.unit


@pytest.fixture
def client() -> httpx.AsyncClient:
    router = service_router()

    @router.get("/probe")
    async def probe() -> dict[str, str]:
        return {"correlation_id": str(correlation_id())}

    @router.get("/broken")
    async def broken() -> None:
        raise RuntimeError("a bug")

    app = service_app("probe", "probe", AuthSettings(), router, None)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://probe")


@pytest.mark.parametrize("given", ["", "not-a-uuid", "0" * 5000])
async def test_a_request_without_a_usable_id_gets_a_new_one(
    client: httpx.AsyncClient, given: str
) -> None:
    async with client:
        answer = await client.get("/probe", headers={CORRELATION_HEADER: given} if given else {})

    returned = uuid.UUID(answer.headers[CORRELATION_HEADER])
    assert answer.json()["correlation_id"] == str(returned)
    assert str(returned) != given


async def test_a_callers_id_is_kept_and_each_request_has_its_own(client: httpx.AsyncClient) -> None:
    given = uuid.uuid4()
    async with client:
        first = await client.get("/probe", headers={CORRELATION_HEADER: str(given)})
        second = await client.get("/probe")

    assert first.headers[CORRELATION_HEADER] == first.json()["correlation_id"] == str(given)
    assert second.headers[CORRELATION_HEADER] not in {str(given), ""}


class ContextSeen(logging.Handler):
    """The log context (structlog's bound variables) at the moment of each record."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append((record.getMessage(), structlog.contextvars.get_contextvars()))


async def test_an_internal_error_names_the_correlation_id_in_the_answer_and_the_log(
    client: httpx.AsyncClient,
) -> None:
    given = uuid.uuid4()
    handler = ContextSeen()
    logging.getLogger("shared.http").addHandler(handler)
    try:
        async with client:
            answer = await client.get("/broken", headers={CORRELATION_HEADER: str(given)})
    finally:
        logging.getLogger("shared.http").removeHandler(handler)

    assert answer.status_code == 500
    assert answer.headers[CORRELATION_HEADER] == str(given)
    [context] = [c for message, c in handler.seen if message.startswith("unexpected error")]
    assert context["correlation_id"] == str(given)
