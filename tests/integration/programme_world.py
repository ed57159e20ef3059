"""The four services as real processes on their own topics and database, for tests that run a
(smaller) demo programme through their APIs."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest

from deploy.demo import DemoSize
from deploy.local.paths import REPO_ROOT
from services.catalog import migrate_all
from shared.settings import DatabaseSettings, KafkaSettings
from shared.topic_reader import read_topics
from shared.topics import ensure_topics

PORTS = {"enrolment": 18001, "verification": 18002, "billing": 18003, "claims": 18004}
URLS = {service: f"http://127.0.0.1:{port}" for service, port in PORTS.items()}
SIZE = DemoSize(per_kelurahan=4, regular=20, incidental=30)
World = tuple[KafkaSettings, DatabaseSettings, dict[str, "subprocess.Popen[bytes]"]]


def environment(kafka: KafkaSettings, database: DatabaseSettings) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.kafka_bootstrap_servers,
        "TOPIC_PREFIX": kafka.topic_prefix,
        "DATABASE_URL": database.database_url,
        "PYTHONPATH": str(REPO_ROOT),
        # The demo replays 2022-2025 on today's clock: keep expiry from ending those coverages
        # while the test checks how deaths end them.
        "ENROLMENT_EXPIRY_INTERVAL_SECONDS": "3600",
        "ENROLMENT_URL": URLS["enrolment"],
    }


@pytest.fixture
async def world(
    kafka_settings: KafkaSettings, separate_database: DatabaseSettings
) -> AsyncIterator[World]:
    kafka = kafka_settings.model_copy(
        update={"topic_prefix": f"{kafka_settings.topic_prefix}e2e-{uuid.uuid4().hex[:6]}."}
    )
    await ensure_topics(kafka)
    await migrate_all(separate_database)
    processes = start_services(environment(kafka, separate_database))
    try:
        async with httpx.AsyncClient() as client:
            for service, port in PORTS.items():
                for _ in range(120):
                    assert processes[service].poll() is None, (
                        processes[service].stderr.read().decode()
                    )  # type: ignore[union-attr]
                    try:
                        if (
                            await client.get(f"http://127.0.0.1:{port}/health/ready")
                        ).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    await asyncio.sleep(0.5)
        yield kafka, separate_database, processes
    finally:
        stop(processes.values())


def start_services(env: dict[str, str]) -> dict[str, subprocess.Popen[bytes]]:
    return {
        service: subprocess.Popen(
            [sys.executable, "-m", "deploy.cli", "run", service, "--port", str(port)],
            env=env,
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for service, port in PORTS.items()
    }


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
