"""The raw Kafka ceiling: a bare aiokafka producer and consumer moving records of the same sizes
as the real envelopes, with the same safety settings as the services' clients. Whatever Berlian
does on top is reported as a ratio to these."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import NewTopic

from shared.kafka_clients import consumer_options, producer_options
from shared.settings import KafkaSettings
from shared.topic_reader import end_offsets
from shared.topics import EVENT_TOPIC_CONFIG, ensure_topics


async def raw_produce(
    kafka: KafkaSettings, records: int, sample: Sequence[bytes]
) -> dict[str, Any]:
    topic = f"{kafka.topic_prefix}ceiling"
    await ensure_topics(
        kafka,
        [
            NewTopic(
                topic,
                num_partitions=kafka.topic_partitions,
                replication_factor=1,
                topic_configs=EVENT_TOPIC_CONFIG,
            )
        ],
    )
    producer = AIOKafkaProducer(**producer_options(kafka), linger_ms=20)
    await producer.start()
    started = time.perf_counter()
    try:
        pending: list[asyncio.Future[Any]] = []
        for i in range(records):
            pending.append(await producer.send(topic, sample[i % len(sample)], key=str(i).encode()))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    seconds = time.perf_counter() - started
    size = sum(len(r) for r in sample) / len(sample)
    return {
        "records": records,
        "mean_bytes": round(size),
        "seconds": seconds,
        "records_per_s": records / seconds,
    }


async def raw_consume(kafka: KafkaSettings, topics: Sequence[str]) -> dict[str, Any]:
    """Every record of ``topics`` to their ends, doing nothing with them."""
    ends = {tp: end for tp, end in (await end_offsets(kafka, topics)).items() if end > 0}
    consumer = AIOKafkaConsumer(**consumer_options(kafka, None), max_poll_records=5000)
    await consumer.start()
    records = 0
    started = time.perf_counter()
    try:
        consumer.assign(list(ends))
        await consumer.seek_to_beginning(*ends)
        remaining = dict(ends)
        while remaining:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for tp, batch in batches.items():
                records += len(batch)
                if batch and batch[-1].offset + 1 >= remaining.get(tp, 0):
                    remaining.pop(tp, None)
    finally:
        await consumer.stop()
    seconds = time.perf_counter() - started
    return {"records": records, "seconds": seconds, "records_per_s": records / seconds}
