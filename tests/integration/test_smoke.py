"""The plumbing end to end on the real broker and database, seen by Kafka's own tools."""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from deploy.local import kafka_broker
from deploy.smoke import run_smoke
from shared.settings import DatabaseSettings, KafkaSettings

pytestmark = pytest.mark.integration


async def test_faststream_to_kafka_to_postgres_visible_to_kafkas_console_consumer(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings
) -> None:
    result = await run_smoke(kafka_settings, database_settings.database_url, count=12)

    assert result.stored == 12

    kafka_broker.ensure_jars()
    console = await asyncio.to_thread(
        subprocess.run,
        kafka_broker.tool_command(
            "org.apache.kafka.tools.consumer.ConsoleConsumer",
            "--bootstrap-server",
            kafka_settings.kafka_bootstrap_servers,
            "--topic",
            result.topic,
            "--from-beginning",
            "--max-messages",
            "12",
            "--timeout-ms",
            "30000",
        ),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert console.returncode == 0, console.stderr
    for message_id in result.sent:
        assert message_id in console.stdout
