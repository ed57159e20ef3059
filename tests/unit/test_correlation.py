"""Every answer names the request's correlation id: the caller's when it sent a UUID, a new one
otherwise; the handler (and so every event it appends) sees the same id."""

from __future__ import annotations

import uuid

import httpx
import pytest

from shared.auth import AuthSettings
from shared.http import service_app
from shared.logs import CORRELATION_HEADER, correlation_id

pytestmark = pytest.mark.unit


@pytest.fixture
def client() -> httpx.AsyncClient:
    app, router, _ = service_app("probe", "probe", AuthSettings())

    @router.get("/probe")
    async def probe() -> dict[str, str]:
        return {"correlation_id": str(correlation_id())}

    app.include_router(router)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://probe")


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
