"""Fixtures of the integration tests: a service sandbox and a safe producer per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer

from services.catalog import migrate_all
from shared.kafka_clients import producer_options
from shared.settings import DatabaseSettings, KafkaSettings
from tests.integration.sandbox import ServiceSandbox, make_sandbox


@pytest.fixture
async def sandbox(
    database_settings: DatabaseSettings, kafka_settings: KafkaSettings
) -> AsyncIterator[ServiceSandbox]:
    box = await make_sandbox(database_settings, kafka_settings)
    yield box
    await box.pool.close()


@pytest.fixture
async def enrolment_box(
    database_settings: DatabaseSettings, kafka_settings: KafkaSettings
) -> AsyncIterator[ServiceSandbox]:
    """A sandbox for the enrolment service (its topic, its schema)."""
    box = await make_sandbox(database_settings, kafka_settings, service="enrolment")
    yield box
    await box.pool.close()


@pytest.fixture
async def producer(kafka_settings: KafkaSettings) -> AsyncIterator[AIOKafkaProducer]:
    client = AIOKafkaProducer(**producer_options(kafka_settings))
    await client.start()
    yield client
    await client.stop()


@pytest.fixture(scope="session")
async def migrated(database_settings: DatabaseSettings, topics: KafkaSettings) -> DatabaseSettings:
    """The run's database with every service's tables, as ``berlian migrate`` makes them."""
    await migrate_all(database_settings)
    return database_settings
