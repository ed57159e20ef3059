"""Every service's API bounds a body before reading it (declared or chunked) and answers an
invalid one without echoing it back."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.types import Message

from shared.auth import AuthSettings, Principal, TokenVerifier, authenticated
from shared.http import BODY_LIMIT, body_within, service_app

pytestmark = pytest.mark.unit
CHUNK = 64 * 1024
# No token passes it: what is refused is refused before anyone is authenticated.
NOBODY = authenticated(TokenVerifier(AuthSettings(), "berlian-probe", lambda _: None))


class Registration(BaseModel):
    nik: str = Field(pattern=r"^[0-9]{16}$")
    full_name: str = Field(max_length=100)


def probe_app() -> Any:
    router = APIRouter()

    @router.post("/workers")
    async def register(
        body: Registration, principal: Annotated[Principal, Depends(NOBODY)]
    ) -> None:
        return None

    @router.post("/checks")
    async def check(body: Registration) -> None:
        return None

    @router.post("/imports")
    async def upload(request: Request) -> int:
        return len(await body_within(request, 4 * BODY_LIMIT, "split the file"))

    return service_app("probe", "probe", AuthSettings(), router, None)


async def call(
    app: Any, path: str, headers: list[tuple[bytes, bytes]], chunks: Any
) -> tuple[int, bytes, int]:
    """Drive the app as a server would; return its status, body and how many chunks it read."""
    read = 0
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal read
        read += 1
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"probe"), (b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("probe", 80),
    }
    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body, read


def endless() -> Any:
    while True:
        yield b" " * CHUNK


async def test_a_declared_oversized_body_is_refused_before_any_of_it_is_read() -> None:
    declared = [(b"content-length", str(20 * 2**20).encode())]
    status, body, read = await call(probe_app(), "/workers", declared, endless())
    assert status == 413
    assert b"over 1,048,576 bytes" in body
    assert read == 0


async def test_a_chunked_body_is_read_only_up_to_the_limit() -> None:
    status, _, read = await call(probe_app(), "/workers", [], endless())
    assert status == 413
    assert read <= BODY_LIMIT // CHUNK + 1


async def test_a_route_that_takes_files_raises_its_own_limit_only() -> None:
    two_limits = [b"x" * CHUNK for _ in range(2 * BODY_LIMIT // CHUNK)]
    status, body, _ = await call(probe_app(), "/imports", [], iter(two_limits))
    assert (status, body) == (200, str(2 * BODY_LIMIT).encode())
    status, body, read = await call(probe_app(), "/imports", [], endless())
    assert status == 413
    assert b"split the file" in body
    assert read <= 4 * BODY_LIMIT // CHUNK + 1


async def test_an_invalid_body_is_named_not_echoed() -> None:
    secret = "3375035508900001-NOT-A-NIK"
    transport = httpx.ASGITransport(app=probe_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://probe") as client:
        answer = await client.post("/checks", json={"nik": secret, "full_name": "x" * 5000})
    assert answer.status_code == 422
    assert secret not in answer.text
    assert "x" * 200 not in answer.text
    problems = answer.json()["problems"]
    assert {p["field"] for p in problems} == {"body.nik", "body.full_name"}
    assert all(set(p) == {"field", "message"} for p in problems)
