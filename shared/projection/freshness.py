"""Deciding on another service's events only once the projection has caught up with them.

A decision that reads a projection (claims judging coverage, billing invoicing covered workers)
first asks each producer of its sources whether everything it had committed is published
(``GET {producer}/outbox/published``, shared/relay/published.py): an event committed in a
producer's outbox and not yet relayed is on no topic, and no high-water mark would show it.
Then it takes the source topics' high-water marks and waits until the projection's stored
positions have reached them. A lagging producer or consumer then delays the decision instead of
letting it be made on stale data; a producer that does not answer in time, or a projection past
the timeout, refuses the decision (503, naming which), never made blind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import asyncpg
import httpx
from aiokafka import TopicPartition

from shared.retries import poll_until_empty
from shared.settings import KafkaSettings, ProducerSettings
from shared.topic_reader import OffsetWatcher, end_offsets


class ProjectionBehindError(RuntimeError):
    def __init__(self, projection: str, behind: dict[TopicPartition, int]) -> None:
        detail = ", ".join(f"{tp.topic}[{tp.partition}] {n} behind" for tp, n in behind.items())
        super().__init__(f"projection {projection} has not caught up: {detail}")
        self.behind = behind


class ProducerUnansweredError(RuntimeError):
    """A producer did not confirm in time that what it had committed is published."""

    def __init__(self, producer: str, reason: str) -> None:
        super().__init__(
            f"producer {producer} did not answer that its outbox is published: {reason}"
        )
        self.producer = producer


# The producer waits up to 10 s for its relay (OutboxPublished.max_wait): its answer is awaited
# that long and a little more, for the way there and back.
PRODUCER_TIMEOUT_SECONDS = 12.0
PROBLEM_DETAIL_SHOWN = 300


class ProducerOutboxes:
    """Asks producers, by service name, whether their outbox is published."""

    def __init__(
        self,
        urls: Mapping[str, str],
        client: httpx.AsyncClient | None = None,
        timeout: float = PRODUCER_TIMEOUT_SECONDS,
    ) -> None:
        self._urls = dict(urls)
        self._client = client or httpx.AsyncClient()
        self._timeout = timeout

    @classmethod
    def from_settings(cls, settings: ProducerSettings | None = None) -> ProducerOutboxes:
        return cls((settings or ProducerSettings()).urls())

    async def published(self, services: Sequence[str]) -> None:
        """Return once each of ``services`` answered that its outbox is published."""
        await asyncio.gather(*(self._ask(service) for service in dict.fromkeys(services)))

    async def _ask(self, service: str) -> None:
        base = self._urls.get(service)
        if not base:
            raise ProducerUnansweredError(service, "no address is configured for it")
        try:
            answer = await self._client.get(
                f"{base.rstrip('/')}/outbox/published", timeout=self._timeout
            )
        except httpx.HTTPError as error:
            raise ProducerUnansweredError(service, f"{type(error).__name__} {error}") from None
        if answer.status_code != 200:
            raise ProducerUnansweredError(
                service, f"{answer.status_code} {_detail(answer)[:PROBLEM_DETAIL_SHOWN]}"
            )

    async def close(self) -> None:
        await self._client.aclose()


def _detail(answer: httpx.Response) -> str:
    """The refusal's sentence (a problem's ``detail``), else its text."""
    try:
        body = answer.json()
    except ValueError:
        return answer.text
    return str(body.get("detail", "")) if isinstance(body, dict) else answer.text


async def wait_until_caught_up(
    pool: asyncpg.Pool,
    schema: str,
    projection: str,
    kafka: KafkaSettings,
    sources: Sequence[str],
    max_wait: float = 10.0,
    watcher: OffsetWatcher | None = None,
    producers: ProducerOutboxes | None = None,
) -> None:
    """Wait until ``projection`` has every event of ``sources`` that was committed when asked.

    Without ``producers`` only what is on the topics is waited for: for tools that read a
    finished run (a bench, a replay check), never for a service's decision."""
    if producers is not None:
        await producers.published(sources)
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
