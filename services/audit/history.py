"""``audit history WORKER``: every event about one worker across the four topics, in the order
they were recorded, with who did it under which policy version and the worker's coverage
standing after each event. Read from the brokers alone; personal data stays sealed."""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import orjson
from aiokafka import TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from contract.policy.membership import Standing, standing_on
from shared.business_calendar import business_day
from shared.settings import SERVICES, KafkaSettings
from shared.topic_reader import partitions_of, read_topics

SEALED_FIELDS = ("personal", "claimant", "children")
Record = tuple[str, int, int, dict[str, Any]]  # topic, partition, offset, envelope


@dataclass(frozen=True)
class HistoryEntry:
    topic: str
    partition: int
    offset: int
    recorded_at: datetime
    occurred_at: datetime
    event_type: str
    actor: str
    policy_version: str | None
    details: dict[str, Any]
    on: date  # the business date the standing is judged on
    standing: Standing

    def as_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "recorded_at": self.recorded_at.isoformat(),
            "occurred_at": self.occurred_at.isoformat(),
            "event_type": self.event_type,
            "actor": self.actor,
            "policy_version": self.policy_version,
            "details": self.details,
            "on": self.on.isoformat(),
            "status": self.standing.status,
            "arrears": list(self.standing.arrears),
        }


@dataclass
class CoverageTrail:
    """What the worker's standing depends on, as the events so far say: pure."""

    coverages: dict[str, tuple[date, date]] = field(default_factory=dict)
    paid: set[str] = field(default_factory=set)

    def apply(self, event_type: str, data: dict[str, Any]) -> None:
        if event_type == "CoverageStarted":
            start, end = (
                date.fromisoformat(data["start_date"]),
                date.fromisoformat(data["end_date"]),
            )
            self.coverages[data["coverage_id"]] = (start, end)
        elif event_type == "CoverageEnded" and data["coverage_id"] in self.coverages:
            start, _ = self.coverages[data["coverage_id"]]
            self.coverages[data["coverage_id"]] = (start, date.fromisoformat(data["end_date"]))
        elif event_type == "PremiumPaid":
            self.paid.add(data["period"])

    def standing(self, on: date) -> Standing:
        return standing_on(on, self.coverages.values(), self.paid)


def business_date(event_type: str, data: dict[str, Any], occurred: datetime) -> date:
    """The day the event is about (a payment's day, a coverage's start, an incident), which
    may be long before it was recorded: the day the standing is judged on."""
    if event_type == "CoverageEnded":
        return date.fromisoformat(data["end_date"])
    for name in ("paid_on", "start_date", "death_date", "incident_date"):
        if data.get(name):
            return date.fromisoformat(data[name])
    if data.get("period"):
        return date.fromisoformat(f"{data['period']}-01")
    return business_day(occurred)


def entries(records: Sequence[Record]) -> list[HistoryEntry]:
    """(topic, partition, offset, envelope) of one worker, in any order, as a history: pure."""
    ordered = sorted(records, key=lambda r: (r[3]["recorded_at"], r[0], r[1], r[2]))
    trail = CoverageTrail()
    history = []
    for topic, partition, offset, envelope in ordered:
        data = envelope["data"]
        trail.apply(envelope["event_type"], data)
        occurred = datetime.fromisoformat(envelope["occurred_at"])
        on = business_date(envelope["event_type"], data, occurred)
        actor = envelope["actor"]
        history.append(
            HistoryEntry(
                topic=topic,
                partition=partition,
                offset=offset,
                recorded_at=datetime.fromisoformat(envelope["recorded_at"]),
                occurred_at=occurred,
                event_type=envelope["event_type"],
                actor=f"{actor['role']}:{actor['id']}",
                policy_version=envelope.get("policy_version"),
                details={k: "(sealed)" if k in SEALED_FIELDS else v for k, v in data.items()},
                on=on,
                standing=trail.standing(on),
            )
        )
    return history


# Workers whose records the audit application keeps between pages: an auditor paging through a
# history, or asking it again, reads only what was appended since (and one worker's records are
# a few hundred at most).
MAX_REMEMBERED_WORKERS = 256
# Histories read from the brokers at once (others wait their turn).
MAX_READS_AT_ONCE = 2


class WorkerRecords:
    """Each worker's records, read once and then only from where the last read stopped.

    Records about a worker are keyed by it (docs/adr/0001-partition-key-and-counts.md), so they
    all sit in the one partition per topic that the producer's partitioner (Kafka's murmur2, the
    same in every client) maps the key to: only those partitions are read, never whole topics.
    One worker's history is read by one request at a time (a fast pager costs one read of the
    new records, not many), and at most ``MAX_READS_AT_ONCE`` histories are read at once, so
    auditors asking for many workers cannot turn pages into load on the brokers without bound,
    and one long first read does not hold up the pages of other workers."""

    def __init__(self, kafka: KafkaSettings, capacity: int = MAX_REMEMBERED_WORKERS) -> None:
        self._kafka = kafka
        self._capacity = capacity
        self._known: OrderedDict[uuid.UUID, tuple[dict[TopicPartition, int], list[Record]]] = (
            OrderedDict()
        )
        self._partitions: dict[str, list[int]] = {}
        self._describing = asyncio.Lock()
        self._per_worker: dict[uuid.UUID, asyncio.Lock] = {}
        self._reads = asyncio.Semaphore(MAX_READS_AT_ONCE)

    async def history(self, worker_id: uuid.UUID) -> list[HistoryEntry]:
        topics = [self._kafka.events_topic(s) for s in SERVICES]
        lock = self._per_worker.setdefault(worker_id, asyncio.Lock())
        try:
            async with lock:
                holding = await self._holding(topics, str(worker_id).encode())
                read_up_to, records = self._known.pop(worker_id, ({}, []))
                read_up_to, records = dict(read_up_to), list(records)
                async with self._reads:
                    await self._read_on(topics, holding, worker_id, read_up_to, records)
                self._known[worker_id] = (read_up_to, records)
                while len(self._known) > self._capacity:
                    self._known.popitem(last=False)
                return entries(records)
        finally:
            if not lock.locked():
                self._per_worker.pop(worker_id, None)

    async def _holding(self, topics: list[str], key: bytes) -> list[TopicPartition]:
        """The partition of each topic that ``key``'s records are in."""
        async with self._describing:
            missing = [t for t in topics if t not in self._partitions]
            for tp in await partitions_of(self._kafka, missing) if missing else []:
                self._partitions.setdefault(tp.topic, []).append(tp.partition)
        return [
            TopicPartition(topic, _PARTITIONER(key, sorted(self._partitions[topic]), None))
            for topic in topics
            if self._partitions.get(topic)
        ]

    async def _read_on(
        self,
        topics: list[str],
        holding: list[TopicPartition],
        worker_id: uuid.UUID,
        read_up_to: dict[TopicPartition, int],
        records: list[Record],
    ) -> None:
        key = str(worker_id).encode()
        async for batch in read_topics(self._kafka, topics, start_at=read_up_to, only=holding):
            for record in batch:
                read_up_to[TopicPartition(record.topic, record.partition)] = record.offset + 1
                if record.key == key:
                    envelope = orjson.loads(record.value or b"{}")
                    records.append((record.topic, record.partition, record.offset, envelope))


_PARTITIONER = DefaultPartitioner()


async def worker_history(kafka: KafkaSettings, worker_id: uuid.UUID) -> list[HistoryEntry]:
    """The worker's events from every topic (records about a worker are keyed by it)."""
    return await WorkerRecords(kafka, capacity=1).history(worker_id)
