"""The load every fault scenario runs under: clients registering workers (each command under
its own idempotency key, retried with it until the service answers) and verifying them at
kelurahan level. What the services acknowledged is what the checker must find."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial

import httpx

from bench.ingestion import KRAPYAK, person
from tests.integration.programme_world import URLS
from tests.tokens import bearer


async def acknowledged(
    send: Callable[[], Awaitable[httpx.Response]], ok: int
) -> httpx.Response | None:
    """Send until the service answers for sure: retried while it is down or catching up (the
    same idempotency key each time); None if it refuses."""
    deadline = time.monotonic() + 120
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            response = await send()
        except httpx.TransportError as error:
            last = f"{type(error).__name__}: {error}"
            await asyncio.sleep(0.2)
            continue
        if response.status_code == ok:
            return response
        if response.status_code in (404, 503) or response.status_code >= 500:
            last = f"{response.status_code} {response.text[:300]}"
            await asyncio.sleep(0.2)  # restarting, or its projection not caught up yet
            continue
        return None
    raise AssertionError(f"a service stayed unavailable for two minutes; last answer: {last}")


@dataclass
class Load:
    clients: int = 4
    registered: set[str] = field(default_factory=set)
    verified: set[str] = field(default_factory=set)
    first_person: int = 0

    @property
    def acknowledged(self) -> int:
        return len(self.registered) + len(self.verified)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Clients at work inside the block; they finish the command in hand after it."""
        stop = asyncio.Event()
        tasks = [asyncio.create_task(self._client(n, stop)) for n in range(self.clients)]
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(*tasks)

    async def _client(self, number: int, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(timeout=30) as api:
            n = 0
            while not stop.is_set():
                serial = self.first_person + number * 100_000 + n
                key = {"Idempotency-Key": f"load-{serial}"}
                register = partial(
                    api.post,
                    f"{URLS['enrolment']}/workers",
                    json=person(serial),
                    headers={**bearer("kelurahan_officer", KRAPYAK), **key},
                )
                answer = await acknowledged(register, 201)
                assert answer is not None, "a valid registration was refused"
                worker = answer.json()["worker_id"]
                self.registered.add(worker)
                verify = partial(
                    api.post,
                    f"{URLS['verification']}/cases/{worker}/verify",
                    json={},
                    headers=bearer("kelurahan_officer", KRAPYAK),
                )
                if await acknowledged(verify, 200) is not None:
                    self.verified.add(worker)
                n += 1
