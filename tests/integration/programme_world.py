"""The four services as real processes on their own topics and database, for tests that run a
(smaller) demo programme through their APIs."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from pydantic import SecretStr

from contract.events.registry import CATALOGUE
from deploy import kafka_acls
from deploy.demo import DemoSize
from deploy.local.paths import REPO_ROOT, run_dir
from services.catalog import PROJECTIONS, migrate_all
from shared.db import service_dsn
from shared.projection.freshness import wait_until_caught_up
from shared.projection.replay import rebuild_into, rows_differing
from shared.settings import DatabaseSettings, KafkaSettings
from shared.topic_reader import read_topics
from shared.topics import ensure_topics


def free_port() -> int:
    """A port no one listens on now: test runs of several checkouts share the machine."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


PORTS = {service: free_port() for service in ("enrolment", "verification", "billing", "claims")}
URLS = {service: f"http://127.0.0.1:{port}" for service, port in PORTS.items()}
SIZE = DemoSize(per_kelurahan=4, regular=20, incidental=30)
World = tuple[KafkaSettings, DatabaseSettings, dict[str, "subprocess.Popen[bytes]"]]


def environment(kafka: KafkaSettings, database: DatabaseSettings) -> dict[str, str]:
    return {
        **os.environ,
        **{
            name.upper(): value.get_secret_value() if isinstance(value, SecretStr) else str(value)
            for name, value in kafka.model_dump().items()
        },
        "DATABASE_URL": database.database_url,
        "PYTHONPATH": str(REPO_ROOT),
        # The demo replays 2022-2025 on today's clock: keep expiry from ending those coverages
        # while the test checks how deaths end them.
        "ENROLMENT_EXPIRY_INTERVAL_SECONDS": "3600",
        # Where each consumer asks a producer whether its outbox is published.
        **{f"{service.upper()}_URL": url for service, url in URLS.items()},
    }


@pytest.fixture
async def world(
    kafka_settings: KafkaSettings, separate_database: DatabaseSettings
) -> AsyncIterator[World]:
    async with running_services(kafka_settings, separate_database) as running:
        yield running


@asynccontextmanager
async def running_services(
    kafka_settings: KafkaSettings,
    database: DatabaseSettings,
    login: Callable[[str], KafkaSettings] | None = None,
) -> AsyncIterator[World]:
    """The four services on topics of their own (a fresh prefix) and ``database``.

    With ``login``, ``kafka_settings`` are the administrator's, who creates the topics and
    grants each service its ACLs; each service then logs in as ``login(service)``."""
    prefix = f"{kafka_settings.topic_prefix}e2e-{uuid.uuid4().hex[:6]}."
    kafka = kafka_settings.model_copy(update={"topic_prefix": prefix})
    await ensure_topics(kafka)
    await migrate_all(database)
    if login is None:
        processes = start_services(environment(kafka, database))
    else:
        logins = {s: login(s).model_copy(update={"topic_prefix": prefix}) for s in PORTS}
        kafka_acls.apply(kafka, {s: logins[s].kafka_sasl_username for s in PORTS})
        processes = {s: start_service(s, environment(logins[s], database)) for s in PORTS}
    try:
        await wait_ready(processes)
        yield kafka, database, processes
    finally:
        stop(processes.values())


async def wait_ready(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    async with httpx.AsyncClient() as client:
        for service, port in PORTS.items():
            for _ in range(120):
                assert processes[service].poll() is None, log_of(service).read_text()[-3000:]
                try:
                    if (
                        await client.get(f"http://127.0.0.1:{port}/health/ready")
                    ).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.5)


def start_services(env: dict[str, str]) -> dict[str, subprocess.Popen[bytes]]:
    return {service: start_service(service, env) for service in PORTS}


def log_of(service: str) -> Path:
    return run_dir() / "test-services" / f"{service}.log"


def start_service(service: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """The service as a process, its output appended to a file (a pipe nobody reads would
    block it once full)."""
    log_of(service).parent.mkdir(parents=True, exist_ok=True)
    with log_of(service).open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "deploy.cli", "run", service, "--port", str(PORTS[service])],
            env=env,
            cwd=REPO_ROOT,
            stdout=log,
            stderr=log,
        )


def stop(processes: Iterator[subprocess.Popen[bytes]] | object) -> None:
    running = [p for p in processes if p.poll() is None]  # type: ignore[attr-defined]
    for process in running:
        process.send_signal(signal.SIGTERM)
    for process in running:
        process.wait(timeout=60)


async def envelopes(kafka: KafkaSettings, service: str) -> list[dict[str, Any]]:
    """Every event on the service's topic, as published."""
    return [
        orjson.loads(r.value or b"{}")
        async for batch in read_topics(kafka, [kafka.events_topic(service)])
        for r in batch
    ]


async def projections_differing(
    kafka: KafkaSettings, database: DatabaseSettings, services: Sequence[str]
) -> list[str]:
    """Each projection of ``services``, once caught up, against a fresh replay of the topics:
    the tables that differ, and by how many rows."""
    problems = []
    for service in services:
        dsn = service_dsn(database.database_url, service, database.service_role_password)
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        try:
            for projection in PROJECTIONS[service]:
                await wait_until_caught_up(
                    pool, service, projection.name, kafka, projection.sources, max_wait=120
                )
                rebuilt = await rebuild_into(
                    pool, f"{service}_scratch", projection, CATALOGUE, kafka
                )
                for table in projection.tables:
                    differing = await rows_differing(pool, table, service, rebuilt.schema)
                    if differing:
                        problems.append(f"{service}.{table}: {differing} rows differ from a replay")
        finally:
            await pool.close()
    return problems
