"""Every record the relay publishes is a CloudEvent in the Kafka binding's binary mode: a
consumer using the CloudEvents SDK reads it, with no code of Berlian's, as the same event."""

from __future__ import annotations

from datetime import datetime

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary_event

from shared.hashing import compute_hash
from shared.topic_reader import read_topics
from tests.integration.sandbox import ServiceSandbox
from tests.integration.toy_projection import append_budgets, publish

pytestmark = pytest.mark.integration


async def test_records_read_back_through_the_cloudevents_sdk_are_the_same_events(
    sandbox: ServiceSandbox, producer: AIOKafkaProducer
) -> None:
    await append_budgets(sandbox, [100, 200, 300])
    await publish(sandbox, producer)
    stored = {
        str(row["event_id"]): orjson.loads(row["body"])
        for row in await sandbox.pool.fetch(f"SELECT event_id, body FROM {sandbox.schema}.events")
    }

    records = [r async for batch in read_topics(sandbox.kafka, [sandbox.topic]) for r in batch]

    assert len(records) == 3
    for record in records:
        event = from_binary_event(
            KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value)
        )
        envelope = event.get_data()
        assert isinstance(envelope, dict)
        assert envelope == stored[envelope["event_id"]]
        assert event.get_specversion() == "1.0"
        assert event.get_id() == envelope["event_id"]
        assert event.get_type() == envelope["event_type"] == "BudgetAllocated"
        assert event.get_source() == envelope["producer"] == sandbox.service
        assert event.get_subject() == envelope["stream_id"]
        assert event.get_time() == datetime.fromisoformat(envelope["occurred_at"])
        assert event.get_datacontenttype() == "application/json"
        assert event.get_extension("partitionkey") == record.key.decode()
        # The attributes travel beside the value: the sealed envelope is untouched.
        unsealed = {k: v for k, v in envelope.items() if k != "hash"}
        assert compute_hash(unsealed) == envelope["hash"]
