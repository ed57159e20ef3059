"""Fixtures giving every integration test a real Kafka and PostgreSQL, isolated per run.

Each run gets its own topic prefix and its own database (with the per-service schemas and
roles), so runs never see each other's data; the database is dropped at the end.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from deploy.local import kafka_broker
from deploy.local.processes import port_open
from deploy.local.stack import Endpoints
from shared.db import provision_service_schemas
from shared.settings import (
    ENVIRONMENT_VARIABLE,
    LOCAL_DEVELOPMENT,
    DatabaseSettings,
    KafkaSettings,
)
from shared.topics import delete_topics_with_prefix, ensure_topics
from tests.infrastructure import real_infrastructure

RUN_ID = uuid.uuid4().hex[:10]
# The tests run on the local stack, with its local credentials and issuer (as ./berlian sets).
os.environ.setdefault(ENVIRONMENT_VARIABLE, LOCAL_DEVELOPMENT)


@pytest.fixture(scope="session")
def infrastructure() -> Iterator[Endpoints]:
    with real_infrastructure() as endpoints:
        yield endpoints


@pytest.fixture(scope="session")
async def kafka_settings(infrastructure: Endpoints) -> AsyncIterator[KafkaSettings]:
    """The run's topics share a prefix, and go at the end of the run: a long-lived local broker
    would otherwise collect thousands of partitions (and run out of heap)."""
    settings = KafkaSettings(
        kafka_bootstrap_servers=infrastructure.kafka_bootstrap_servers,
        topic_prefix=f"test-{RUN_ID}.",
    )
    yield settings
    await delete_topics_with_prefix(settings, settings.topic_prefix)


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


async def _own_database(admin_url: str, database: str) -> AsyncIterator[DatabaseSettings]:
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()
    settings = DatabaseSettings(database_url=_with_database(admin_url, database))
    await provision_service_schemas(settings.database_url, settings.service_role_password)
    yield settings
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
async def database_settings(infrastructure: Endpoints) -> AsyncIterator[DatabaseSettings]:
    async for settings in _own_database(infrastructure.database_url, f"berlian_test_{RUN_ID}"):
        yield settings


@pytest.fixture
async def separate_database(infrastructure: Endpoints) -> AsyncIterator[DatabaseSettings]:
    """A database of the test's own, for tests that write to the services' live schemas."""
    name = f"berlian_test_{RUN_ID}_{uuid.uuid4().hex[:6]}"
    async for settings in _own_database(infrastructure.database_url, name):
        yield settings


@pytest.fixture(scope="session")
async def topics(kafka_settings: KafkaSettings) -> KafkaSettings:
    """The run's event and dead-letter topics, created with the contract's settings."""
    await ensure_topics(kafka_settings)
    return kafka_settings


@pytest.fixture(scope="session")
def cluster() -> Iterator[KafkaSettings]:
    """The three-broker cluster (replication factor 3, two in sync to acknowledge), wiped at the
    end of the run."""
    bootstrap = kafka_broker.up(kafka_broker.CLUSTER, timeout=180)
    yield KafkaSettings(
        kafka_bootstrap_servers=bootstrap,
        topic_prefix=f"test-{RUN_ID}.",
        topic_replication_factor=3,
        topic_min_insync_replicas=2,
    )
    kafka_broker.down(kafka_broker.CLUSTER, wipe=True)
    # Stopping leaves nothing behind: no process, no open port.
    assert kafka_broker.running_nodes(kafka_broker.CLUSTER) == []
    assert not any(port_open("127.0.0.1", n.broker_port) for n in kafka_broker.CLUSTER.nodes)
