"""SIGTERM in the middle of load: the service stops taking requests, finishes what it holds,
publishes its outbox and exits; no acknowledged command is lost and none is recorded twice."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from datetime import date
from pathlib import Path

import asyncpg
import httpx
import orjson
import pytest

from shared.settings import DatabaseSettings, KafkaSettings
from shared.topic_reader import read_topics
from tests.integration.sandbox import isolated
from tests.tokens import bearer

pytestmark = pytest.mark.integration
REPO_ROOT = Path(__file__).resolve().parents[2]
GRACE_PERIOD_SECONDS = 60  # terminationGracePeriodSeconds of every Deployment
CLIENTS = 16
KRAPYAK = "33.75.03.1002"


def as_officer() -> dict[str, str]:
    return bearer("kelurahan_officer", KRAPYAK)


SERIES_WHILE_LOADED = (
    'berlian_commands_total{command="POST /workers",outcome="accepted",service="enrolment"}',
    "berlian_command_duration_seconds_bucket{",
    'berlian_events_appended_total{event_type="WorkerRegistered",service="enrolment"}',
    'berlian_outbox_backlog{service="enrolment"}',
    "berlian_outbox_publish_duration_seconds_count{",
    "berlian_events_consumed_total{",
    "berlian_projection_lag_records{",
    "berlian_projection_lag_seconds{",
)


def person(client: int, serial: int) -> dict[str, str]:
    birth = date(1970 + client, 1 + serial % 12, 1 + serial % 28)
    nik = f"337503{birth.day:02d}{birth.month:02d}{birth.year % 100:02d}{serial % 9999 + 1:04d}"
    return {
        "nik": nik,
        "full_name": f"Pekerja {client}-{serial}",
        "birth_date": birth.isoformat(),
        "sex": "M",
        "occupation_code": "tukang_becak",
        "kelurahan_code": KRAPYAK,
        "address": f"Gang {client} no {serial}",
    }


def tail(log: Path) -> str:
    return log.read_text()[-3000:]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def start_enrolment(
    kafka: KafkaSettings, database: DatabaseSettings, port: int, log: Path
) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.kafka_bootstrap_servers,
        "TOPIC_PREFIX": kafka.topic_prefix,
        "DATABASE_URL": database.database_url,
    }
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "deploy.cli", "run", "enrolment", "--port", str(port)),
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=out,
        )
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as api:
        for _ in range(600):
            try:
                if (await api.get("/health/ready")).status_code == 200:
                    return process
            except httpx.TransportError:
                pass
            assert process.returncode is None, tail(log)
            await asyncio.sleep(0.1)
    raise AssertionError(f"enrolment was not ready: {tail(log)}")


async def load(
    port: int, client: int, acknowledged: list[str], refused: list[str], loaded: asyncio.Event
) -> None:
    """Register workers one after another until the service stops answering."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as api:
        for serial in range(100_000):
            try:
                response = await api.post(
                    "/workers", json=person(client, serial), headers=as_officer()
                )
            except httpx.TransportError:
                return  # the service closed its listener: this command was never acknowledged
            if response.status_code == 201:
                acknowledged.append(response.json()["worker_id"])
                if len(acknowledged) >= 300:
                    loaded.set()
            else:
                refused.append(f"{response.status_code} {response.text}")


async def stored_worker_ids(database: DatabaseSettings, sql: str) -> list[str]:
    conn = await asyncpg.connect(database.database_url)
    try:
        return [str(row[0]) for row in await conn.fetch(sql)]
    finally:
        await conn.close()


async def test_sigterm_under_load_loses_no_acknowledged_command(
    kafka_settings: KafkaSettings, separate_database: DatabaseSettings, tmp_path: Path
) -> None:
    kafka = await isolated(kafka_settings, separate_database, "sigterm")
    port = free_port()
    log = tmp_path / "enrolment.log"
    service = await start_enrolment(kafka, separate_database, port, log)
    acknowledged: list[str] = []
    refused: list[str] = []
    loaded = asyncio.Event()
    clients = [
        asyncio.create_task(load(port, n, acknowledged, refused, loaded)) for n in range(CLIENTS)
    ]
    await loaded.wait()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as api:
        metrics = (await api.get("/metrics")).text
        live = (await api.get("/health/live")).status_code

    service.send_signal(signal.SIGTERM)
    exit_code = await asyncio.wait_for(service.wait(), GRACE_PERIOD_SECONDS)
    await asyncio.gather(*clients)

    assert exit_code == 0, tail(log)
    assert refused == []
    assert live == 200
    for series in SERIES_WHILE_LOADED:
        assert series in metrics, series
    assert not any(worker in metrics for worker in acknowledged)
    # The outbox was flushed before exit, and every acknowledged command is recorded once.
    assert await stored_worker_ids(separate_database, "SELECT position FROM enrolment.outbox") == []
    stored = await stored_worker_ids(
        separate_database,
        "SELECT worker_id FROM enrolment.events WHERE event_type = 'WorkerRegistered'",
    )
    assert set(acknowledged) <= set(stored)
    assert len(stored) == len(set(stored))
    published = []
    async for batch in read_topics(kafka, [kafka.events_topic("enrolment")]):
        published += [orjson.loads(record.value)["worker_id"] for record in batch]
    assert sorted(published) == sorted(stored)

    # Restarted, its projection holds each registration exactly once.
    service = await start_enrolment(kafka, separate_database, port, log)
    try:
        for _ in range(300):
            projected = await stored_worker_ids(
                separate_database, "SELECT worker_id FROM enrolment.workers"
            )
            if len(projected) >= len(stored):
                break
            await asyncio.sleep(0.1)
        assert sorted(projected) == sorted(stored)
    finally:
        service.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(service.wait(), GRACE_PERIOD_SECONDS) == 0
