"""Health: ready once the database, Kafka, migrations and consumers are; not alive when a
consumer's loop is stuck; down altogether when a consumer dies."""

from __future__ import annotations

import asyncio

import pytest

from bench.ingestion import free_port
from services.billing import wiring as billing_wiring
from shared.auth import AuthSettings
from shared.runtime import BackgroundTaskDiedError
from shared.settings import DatabaseSettings, KafkaSettings
from tests.integration.sandbox import isolated, running

pytestmark = pytest.mark.integration


async def test_ready_when_consumers_are_assigned_and_not_alive_when_one_is_stuck(
    kafka_settings: KafkaSettings, separate_database: DatabaseSettings
) -> None:
    kafka = await isolated(kafka_settings, separate_database, "health")
    process, _ = await billing_wiring.build(kafka, separate_database, AuthSettings())
    async with running(process) as api:
        for _ in range(100):
            ready = await api.get("/health/ready")
            if ready.status_code == 200:
                break
            await asyncio.sleep(0.1)
        assert ready.json() == {"ready": True, "problems": [], "warnings": []}
        assert (await api.get("/health/live")).status_code == 200

        # A threshold every loop exceeds: each consumer counts as stuck.
        process.stuck_after_seconds = -1.0
        live = await api.get("/health/live")
        assert live.status_code == 503
        assert sorted(live.json()["stuck"]) == sorted(r.consumer_name for r in process.runners)


async def test_a_consumer_that_dies_takes_the_whole_process_down(
    kafka_settings: KafkaSettings, separate_database: DatabaseSettings
) -> None:
    kafka = await isolated(kafka_settings, separate_database, "died")
    process, _ = await billing_wiring.build(kafka, separate_database, AuthSettings())
    runner = process.runners[0]

    async def dies(stop: asyncio.Event) -> None:
        raise RuntimeError("the consumer broke")

    runner.run = dies  # type: ignore[method-assign]
    try:
        with pytest.raises(BackgroundTaskDiedError, match=runner.consumer_name):
            # Without the watch, this would serve until stopped: the wait would time out.
            await asyncio.wait_for(process.run(asyncio.Event(), "127.0.0.1", free_port()), 60)
    finally:
        await process.close()
