"""How a service answers when things go wrong under a request: a database that went away is a
503 to retry, never a 500 and never a stack trace."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from shared.auth import AuthSettings
from shared.http import PROBLEM_JSON, service_app, service_router

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.InternalClientError("cannot switch to state 15; another operation is in progress"),
        asyncpg.InterfaceError("connection is closed"),
        ConnectionRefusedError("connect call failed"),
    ],
)
async def test_a_database_gone_under_a_request_asks_the_caller_to_retry(error: Exception) -> None:
    router = service_router()

    @router.get("/probe")
    async def probe() -> None:
        raise error

    app = service_app("probe", "probe", AuthSettings(), router, None)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://probe") as client:
        answer = await client.get("/probe")
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "1"
    assert answer.headers["content-type"] == PROBLEM_JSON
    assert (answer.json()["status"], answer.json()["title"]) == (503, "Service Unavailable")
    assert "retry" in answer.json()["detail"]
    assert "Traceback" not in answer.text
