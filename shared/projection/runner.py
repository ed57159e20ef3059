"""The live projection runner: a consumer group member feeding a :class:`ProjectionWriter`.

On every partition assignment the consumer seeks to the position stored with the projection
(the database is the truth); after each batch the Kafka commit that follows is informative only
(for group tooling), and made in the background: a commit waiting for the group coordinator
(20 to 47 s after a broker's leader was killed) never holds up applying. What makes the effect
exactly-once is in :mod:`shared.projection.writer`. Every few seconds it also exports its
parked dead letters (waiting letters, streams held back, age of the oldest), which are the part
of its lag that only an operator can clear.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import suppress

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from shared.catalogue import EventCatalogue
from shared.deadletters import parked_figures
from shared.kafka_clients import consumer_options
from shared.projection.writer import (
    TRANSIENT_ERRORS,
    Projection,
    ProjectionWriter,
    Record,
    Reread,
)
from shared.settings import KafkaSettings
from shared.telemetry import (
    DEAD_LETTER_AGE_SECONDS,
    DEAD_LETTERS_WAITING,
    PARKED_STREAMS,
    PROJECTION_COMMITS_FAILED,
    PROJECTION_LAG,
    PROJECTION_LAG_SECONDS,
)

log = logging.getLogger(__name__)

PARKED_FIGURES_EVERY_SECONDS = 5.0
# On stop, how long the commit in flight may still take before it is given up.
COMMIT_GRACE_SECONDS = 1.0


class ProjectionRunner:
    def __init__(
        self,
        pool: asyncpg.Pool,
        schema: str,
        projection: Projection,
        catalogue: EventCatalogue,
        kafka: KafkaSettings,
        max_batch: int = 2000,
    ) -> None:
        self._kafka = kafka
        self._max_batch = max_batch
        self._pool = pool
        self._schema = schema
        self._parked_exported_at: float | None = None
        self._parked_exported_after = -1  # the writer's dead-letter count at the last export
        owners = {kafka.events_topic(source): source for source in projection.sources}
        self.topics = sorted(owners)
        self.consumer_name = f"{schema}.{projection.name}"
        self.group_id = f"{kafka.topic_prefix}{self.consumer_name}"
        self.writer = ProjectionWriter(
            pool, schema, projection, catalogue, owners, self.consumer_name
        )
        self.lag: dict[TopicPartition, int] = {}
        self.positions: dict[TopicPartition, int] = {}
        self.assigned: set[TopicPartition] = set()
        self.last_turn: float | None = None  # monotonic time the loop last came round
        self._caught_up_at: dict[TopicPartition, float] = {}
        self._reread: dict[TopicPartition, int] = {}

    @property
    def applied(self) -> int:
        return self.writer.applied

    @property
    def dead_lettered(self) -> int:
        return self.writer.dead_lettered

    async def run(self, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            **consumer_options(self._kafka, self.group_id), max_poll_records=self._max_batch
        )
        consumer.subscribe(self.topics, listener=_SeekToStored(self, consumer))
        commits = _InformativeCommits(consumer, self.consumer_name)
        await consumer.start()
        try:
            while not stop.is_set():
                self.last_turn = time.monotonic()
                batches = await consumer.getmany(timeout_ms=200, max_records=self._max_batch)
                for tp, records in batches.items():
                    if tp not in consumer.assignment():
                        continue  # revoked while this batch was in flight
                    await self._write(consumer, commits, tp, records)
                self._update_lag(consumer)
                await self._export_parked()
        finally:
            await commits.stop()
            await consumer.stop()

    async def _write(
        self,
        consumer: AIOKafkaConsumer,
        commits: _InformativeCommits,
        tp: TopicPartition,
        records: list[Record],
    ) -> None:
        strict = self._reread.get(tp) is None
        result = await self.writer.write(tp, records, strict=strict)
        if isinstance(result, Reread):
            # The consumer is ahead of the stored position: read again from it, once. If the
            # same batch comes back from there, the gap is real (transaction control records).
            self._reread[tp] = result.offset
            consumer.seek(tp, result.offset)
            return
        self._reread.pop(tp, None)
        self.positions[tp] = result
        commits.offer(tp, result)

    async def _export_parked(self) -> None:
        """At once after a batch that dead-lettered, else every few seconds (a re-drive or a
        skip from the command line changes the figures too)."""
        now = time.monotonic()
        fresh = self._parked_exported_after == self.writer.dead_lettered
        if (
            fresh
            and self._parked_exported_at is not None
            and (now - self._parked_exported_at < PARKED_FIGURES_EVERY_SECONDS)
        ):
            return
        self._parked_exported_at = now
        self._parked_exported_after = self.writer.dead_lettered
        try:
            figures = await parked_figures(self._pool, self._schema, self.consumer_name)
        except TRANSIENT_ERRORS as error:  # figures only: the next turn asks again
            log.info("parked figures of %s not read: %s", self.consumer_name, error)
            return
        DEAD_LETTERS_WAITING.labels(self.consumer_name).set(figures.letters)
        PARKED_STREAMS.labels(self.consumer_name).set(figures.streams)
        DEAD_LETTER_AGE_SECONDS.labels(self.consumer_name).set(figures.oldest_seconds)

    def _update_lag(self, consumer: AIOKafkaConsumer) -> None:
        """Records on the topic not yet in the projection, per assigned partition."""
        now = time.monotonic()
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is not None and tp in self.positions:
                self.lag[tp] = max(0, highwater - self.positions[tp])
                if self.lag[tp] == 0:
                    self._caught_up_at[tp] = now
                behind = now - self._caught_up_at.setdefault(tp, now)
                labels = (self.consumer_name, tp.topic, str(tp.partition))
                PROJECTION_LAG.labels(*labels).set(self.lag[tp])
                PROJECTION_LAG_SECONDS.labels(*labels).set(behind)


class _SeekToStored(ConsumerRebalanceListener):  # type: ignore[misc]
    """On every assignment, continue from the position committed with the projection."""

    def __init__(self, runner: ProjectionRunner, consumer: AIOKafkaConsumer) -> None:
        self._runner = runner
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self._runner.assigned.difference_update(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        stored = await self._runner.writer.stored_positions()
        for tp in assigned:
            if tp in stored:
                self._runner.positions[tp] = stored[tp]
                self._consumer.seek(tp, stored[tp])
            else:
                await self._consumer.seek_to_beginning(tp)
        self._runner.assigned.update(assigned)


class _InformativeCommits:
    """The runner's positions committed to Kafka for group tooling, in the background: at most
    one commit in flight, the next taking the latest position of each partition offered
    meanwhile. A commit that fails is logged and counted, and nothing is retried: the next
    batch commits a later position, and the positions that count are in PostgreSQL."""

    def __init__(self, consumer: AIOKafkaConsumer, consumer_name: str) -> None:
        self._consumer = consumer
        self._consumer_name = consumer_name
        self._due: dict[TopicPartition, int] = {}
        self._in_flight: asyncio.Task[None] | None = None

    def offer(self, tp: TopicPartition, offset: int) -> None:
        self._due[tp] = offset
        if self._in_flight is None or self._in_flight.done():
            self._in_flight = asyncio.create_task(self._commit_due())

    async def _commit_due(self) -> None:
        while self._due:
            assigned = self._consumer.assignment()  # a revoked partition is another's now
            offsets = {tp: offset for tp, offset in self._due.items() if tp in assigned}
            self._due = {}
            if not offsets:
                continue
            try:
                await self._consumer.commit(offsets)
            except Exception as error:  # informative only; the database holds the truth
                PROJECTION_COMMITS_FAILED.labels(self._consumer_name).inc()
                log.info("Kafka offset commit of %s skipped: %s", self._consumer_name, error)

    async def stop(self) -> None:
        """Let the commit in flight finish, for a little while, then give it up."""
        if self._in_flight is None:
            return
        await asyncio.wait([self._in_flight], timeout=COMMIT_GRACE_SECONDS)
        self._in_flight.cancel()
        with suppress(asyncio.CancelledError):
            await self._in_flight
