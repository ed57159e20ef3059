"""A worker's history in the audit application, on the real broker: read from the one partition
per topic that holds the worker's key, kept between pages, and brought up to date with only what
was appended since; the kept answer always equals a fresh read of the topics."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from services.audit.history import WorkerRecords, worker_history
from shared.settings import KafkaSettings
from shared.topics import ensure_topics

pytestmark = pytest.mark.integration


@pytest.fixture
async def own_topics(kafka_settings: KafkaSettings) -> KafkaSettings:
    """Topics of this test alone (under the run's prefix, so they go with the run's): the records
    here are not hash-chained, and other tests check the run's chains."""
    own = kafka_settings.model_copy(
        update={"topic_prefix": f"{kafka_settings.topic_prefix}history-{uuid.uuid4().hex[:6]}."}
    )
    await ensure_topics(own)
    return own


def envelope(event_type: str, data: dict[str, object]) -> bytes:
    now = datetime.now(UTC).isoformat()
    return orjson.dumps(
        {
            "event_type": event_type,
            "recorded_at": now,
            "occurred_at": now,
            "actor": {"role": "kelurahan_officer", "id": "officer-1"},
            "policy_version": "2024.1",
            "data": data,
        }
    )


async def publish(
    producer: AIOKafkaProducer, kafka: KafkaSettings, service: str, worker: uuid.UUID, kind: str
) -> None:
    await producer.send_and_wait(
        kafka.events_topic(service),
        key=str(worker).encode(),
        value=envelope(kind, {"worker_id": str(worker), "note": kind}),
    )


async def test_a_history_is_kept_and_read_on_from_where_it_stopped(
    own_topics: KafkaSettings, producer: AIOKafkaProducer
) -> None:
    topics = own_topics
    worker, neighbour = uuid.uuid4(), uuid.uuid4()
    await publish(producer, topics, "enrolment", worker, "WorkerRegistered")
    await publish(producer, topics, "enrolment", neighbour, "WorkerRegistered")
    await publish(producer, topics, "verification", worker, "KelurahanVerified")
    kept = WorkerRecords(topics)

    first = await kept.history(worker)
    assert [e.event_type for e in first] == ["WorkerRegistered", "KelurahanVerified"]

    await publish(producer, topics, "billing", worker, "PremiumInvoiced")
    await publish(producer, topics, "billing", neighbour, "PremiumInvoiced")
    again = await kept.history(worker)
    assert [e.event_type for e in again] == [
        "WorkerRegistered",
        "KelurahanVerified",
        "PremiumInvoiced",
    ]
    # Asked again with nothing new, the kept records answer alone, unchanged.
    assert await kept.history(worker) == again
    # What was kept and read on equals a fresh read of every topic.
    assert await worker_history(topics, worker) == again
    assert [e.event_type for e in await kept.history(neighbour)] == [
        "WorkerRegistered",
        "PremiumInvoiced",
    ]
