"""Reading a topic from its beginning up to the end offsets seen at the start of the read.

Replay and audit read history this way: a bounded read (new records arriving meanwhile are
not waited for), without a consumer group, committing nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Mapping, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from shared.kafka_clients import admin_client, consumer_options
from shared.settings import KafkaSettings


async def partitions_of(kafka: KafkaSettings, topics: Sequence[str]) -> list[TopicPartition]:
    admin = admin_client(kafka)
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    return sorted(
        TopicPartition(topic["topic"], partition["partition"])
        for topic in described
        for partition in topic["partitions"]
    )


async def end_offsets(kafka: KafkaSettings, topics: Sequence[str]) -> dict[TopicPartition, int]:
    """The high-water mark of every partition of ``topics`` (the next offset to be written)."""
    partitions = await partitions_of(kafka, topics)
    consumer = AIOKafkaConsumer(**consumer_options(kafka, group_id=None))
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(partitions))
    finally:
        await consumer.stop()


class OffsetWatcher:
    """High-water marks on demand from one long-lived client, for per-request freshness checks
    (a new client per request would cost a connection and a metadata round trip each time)."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self._kafka = kafka
        # Made on first use: a client never started could not be closed either.
        self._consumer: AIOKafkaConsumer | None = None
        self._starting = asyncio.Lock()  # concurrent first requests start one client
        self._partitions: dict[str, list[TopicPartition]] = {}

    async def end_offsets(self, topics: Sequence[str]) -> dict[TopicPartition, int]:
        async with self._starting:
            if self._consumer is None:
                consumer = AIOKafkaConsumer(**consumer_options(self._kafka, group_id=None))
                await consumer.start()
                self._consumer = consumer
        missing = [t for t in topics if t not in self._partitions]
        if missing:
            for tp in await partitions_of(self._kafka, missing):
                self._partitions.setdefault(tp.topic, []).append(tp)
        wanted = [tp for topic in topics for tp in self._partitions.get(topic, [])]
        return dict(await self._consumer.end_offsets(wanted))

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()


async def read_topics(
    kafka: KafkaSettings,
    topics: Sequence[str],
    batch: int = 5000,
    start_at: Mapping[TopicPartition, int] | None = None,
    only: Collection[TopicPartition] | None = None,
) -> AsyncIterator[list[ConsumerRecord[bytes, bytes]]]:
    """Every record of ``topics`` up to their current end, in batches per partition.

    ``start_at`` resumes partitions from given offsets instead of their beginning; ``only``
    reads those of the topics' partitions alone.
    """
    start = dict(start_at or {})
    ends = {
        tp: end
        for tp, end in (await end_offsets(kafka, topics)).items()
        if end > start.get(tp, 0) and (only is None or tp in only)
    }
    if not ends:
        return
    consumer = AIOKafkaConsumer(**consumer_options(kafka, group_id=None), max_poll_records=batch)
    await consumer.start()
    try:
        consumer.assign(list(ends))
        await consumer.seek_to_beginning(*[tp for tp in ends if tp not in start])
        for tp in ends:
            if tp in start:
                consumer.seek(tp, start[tp])
        remaining = dict(ends)
        while remaining:
            fetched = await consumer.getmany(*remaining, timeout_ms=1000, max_records=batch)
            for tp, records in fetched.items():
                wanted = [r for r in records if r.offset < remaining.get(tp, 0)]
                if wanted:
                    yield wanted
                if tp in remaining and (
                    (records and records[-1].offset + 1 >= remaining[tp])
                    or await consumer.position(tp) >= remaining[tp]
                ):
                    del remaining[tp]
    finally:
        await consumer.stop()
