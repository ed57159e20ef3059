"""Fixtures giving every integration test a real Kafka and PostgreSQL, isolated per run.

Each run gets its own topic prefix and its own database (with the per-service schemas and
roles), so runs never see each other's data; the database is dropped at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from deploy.local.stack import Endpoints
from shared.db import provision_service_schemas
from shared.settings import DatabaseSettings, KafkaSettings
from shared.topics import ensure_topics
from tests.infrastructure import real_infrastructure

RUN_ID = uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def infrastructure() -> Iterator[Endpoints]:
    with real_infrastructure() as endpoints:
        yield endpoints


@pytest.fixture(scope="session")
def kafka_settings(infrastructure: Endpoints) -> KafkaSettings:
    return KafkaSettings(
        kafka_bootstrap_servers=infrastructure.kafka_bootstrap_servers,
        topic_prefix=f"test-{RUN_ID}.",
    )


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


@pytest.fixture(scope="session")
async def database_settings(infrastructure: Endpoints) -> AsyncIterator[DatabaseSettings]:
    database = f"berlian_test_{RUN_ID}"
    admin = await asyncpg.connect(infrastructure.database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()
    settings = DatabaseSettings(database_url=_with_database(infrastructure.database_url, database))
    await provision_service_schemas(settings.database_url, settings.service_role_password)
    yield settings
    admin = await asyncpg.connect(infrastructure.database_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
async def topics(kafka_settings: KafkaSettings) -> KafkaSettings:
    """The run's event and dead-letter topics, created with the contract's settings."""
    await ensure_topics(kafka_settings)
    return kafka_settings
