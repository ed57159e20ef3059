"""Deciding on another service's events only once the projection has caught up with them.

A decision that reads a projection (claims judging coverage, billing invoicing covered workers)
first takes the source topics' high-water marks *at decision time* and waits until the
projection's stored positions have reached them. A lagging consumer then delays the decision
instead of letting it be made on stale data; past the timeout the decision is refused with the
lag, never made blind.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
from aiokafka import TopicPartition

from shared.retries import poll_until_empty
from shared.settings import KafkaSettings
from shared.topic_reader import OffsetWatcher, end_offsets


class ProjectionBehindError(RuntimeError):
    def __init__(self, projection: str, behind: dict[TopicPartition, int]) -> None:
        detail = ", ".join(f"{tp.topic}[{tp.partition}] {n} behind" for tp, n in behind.items())
        super().__init__(f"projection {projection} has not caught up: {detail}")
        self.behind = behind


async def wait_until_caught_up(
    pool: asyncpg.Pool,
    schema: str,
    projection: str,
    kafka: KafkaSettings,
    sources: Sequence[str],
    max_wait: float = 10.0,
    watcher: OffsetWatcher | None = None,
) -> None:
    topics = [kafka.events_topic(s) for s in sources]
    ends = await (watcher.end_offsets(topics) if watcher else end_offsets(kafka, topics))
    targets = {tp: end for tp, end in ends.items() if end > 0}

    async def still_behind() -> dict[TopicPartition, int]:
        rows = await pool.fetch(
            f"SELECT topic, partition, next_offset FROM {schema}.projection_positions "
            "WHERE projection = $1",
            projection,
        )
        stored = {TopicPartition(r["topic"], r["partition"]): r["next_offset"] for r in rows}
        return {
            tp: end - stored.get(tp, 0) for tp, end in targets.items() if stored.get(tp, 0) < end
        }

    behind = await poll_until_empty(still_behind, within=max_wait)
    if behind:
        raise ProjectionBehindError(projection, behind)
