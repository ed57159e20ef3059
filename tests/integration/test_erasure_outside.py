"""Erasure seen from outside, on the four running services: after an operator erases a person
with ``berlian erase``, no API response, table of any service, service log line or topic
record shows their name, address, heir or NIK, and the log still verifies."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from bench.ingestion import KRAPYAK, person
from deploy.local.paths import REPO_ROOT
from shared.audit.verify import verify_topics
from shared.settings import SERVICES
from shared.topic_reader import read_topics
from tests.integration.programme_world import URLS, World, environment, log_of, world
from tests.tokens import bearer

__all__ = ["world"]  # the fixture, used by name
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def as_city() -> dict[str, str]:
    return bearer("city_admin")


def as_officer() -> dict[str, str]:
    return bearer("kelurahan_officer", KRAPYAK)


async def appears(value: str, api: httpx.AsyncClient, worker: str) -> list[str]:
    """Where ``value`` shows, among every read about the worker and every table and log."""
    reads = [
        f"{URLS['enrolment']}/workers/{worker}",
        f"{URLS['enrolment']}/workers/{worker}/coverage",
        f"{URLS['verification']}/cases/{worker}",
        f"{URLS['billing']}/workers/{worker}/standing?on=2025-06-01",
        f"{URLS['claims']}/claims?worker_id={worker}",
    ]
    found = [url for url in reads if value in (await api.get(url, headers=as_city())).text]
    return found + [f"{s} log" for s in SERVICES if value in log_of(s).read_text(errors="replace")]


async def tables_showing(database_url: str, values: list[str]) -> list[str]:
    conn = await asyncpg.connect(database_url)
    try:
        tables = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema = ANY($1::text[]) AND table_type = 'BASE TABLE'",
            list(SERVICES),
        )
        showing = []
        for t in tables:
            name = f"{t['table_schema']}.{t['table_name']}"
            for value in values:
                if await conn.fetchval(
                    f"SELECT count(*) FROM {name} t WHERE t::text LIKE '%' || $1 || '%'", value
                ):
                    showing.append(f"{name} shows {value!r}")
        return showing
    finally:
        await conn.close()


async def test_an_erased_person_shows_nowhere(world: World) -> None:
    kafka, database, _ = world
    marker = uuid.uuid4().hex[:8]
    someone: dict[str, Any] = {
        **person(7_000_000 + int(marker[:4], 16)),
        "full_name": f"Sri Rahayu {marker}",
        "address": f"Gang Melati {marker}",
        "heirs": [{"name": f"Budi Santoso {marker}", "relationship": "child"}],
    }
    personal = [someone["full_name"], someone["address"], someone["heirs"][0]["name"]]
    async with httpx.AsyncClient(timeout=30) as api:
        registered = await api.post(
            f"{URLS['enrolment']}/workers", json=someone, headers=as_officer()
        )
        assert registered.status_code == 201, registered.text
        worker = registered.json()["worker_id"]
        for _ in range(120):  # verification has read the registration
            verified = await api.post(
                f"{URLS['verification']}/cases/{worker}/verify", json={}, headers=as_officer()
            )
            if verified.status_code == 200:
                break
            await asyncio.sleep(0.5)
        assert verified.status_code == 200, verified.text
        shown = (await api.get(f"{URLS['enrolment']}/workers/{worker}", headers=as_city())).json()
        assert shown["personal"]["full_name"] == someone["full_name"]

        erased = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "deploy.cli", "erase", worker, "--yes"],
            env=environment(kafka, database),
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert erased.returncode == 0, erased.stdout + erased.stderr
        assert "erased" in erased.stdout

        after = (await api.get(f"{URLS['enrolment']}/workers/{worker}", headers=as_city())).json()
        assert after["personal"] is None
        by_nik = await api.get(
            f"{URLS['enrolment']}/workers", params={"nik": someone["nik"]}, headers=as_city()
        )
        assert by_nik.json() == []
        for value in [*personal, someone["nik"]]:
            assert await appears(value, api, worker) == [], value
    assert await tables_showing(database.database_url, [*personal, someone["nik"]]) == []
    raw = b"".join(
        [
            r.value or b""
            async for batch in read_topics(kafka, [kafka.events_topic(s) for s in SERVICES])
            for r in batch
        ]
    )
    for value in [*personal, someone["nik"]]:
        assert value.encode() not in raw
    assert (await verify_topics(kafka, [kafka.events_topic(s) for s in SERVICES])).ok
