"""Reading records into a chain checker: the part of ``audit verify`` that touches every record,
done by one process for all partitions or by one process per group of them."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

import orjson
from aiokafka import TopicPartition

from shared.audit.chain import ChainChecker, Finding, Location, Run
from shared.settings import KafkaSettings
from shared.topic_reader import read_topics

EventKey = tuple[str, int]  # stream id, stream version


@dataclass(frozen=True)
class Copy:
    """One copy of an event: the SHA-256 of its bytes and its chain hash."""

    digest: bytes
    hash: str


# Not repr'd: asyncio formats a finished task's result with repr(), which for every record's
# entry would cost as much as checking them.
@dataclass(repr=False)
class Checked:
    """What reading some partitions found: the checker fed with every record, the records and
    harmless duplicates per topic, and (when asked for) every record's copy per topic."""

    checker: ChainChecker = field(default_factory=ChainChecker)
    events: Counter[str] = field(default_factory=Counter)
    duplicates: Counter[str] = field(default_factory=Counter)
    copies: dict[str, dict[EventKey, Copy]] | None = None


@dataclass(frozen=True, repr=False)
class GroupResult:
    """A group's :class:`Checked`, summed up for the parent: what each record showed, and every
    stream as runs, whose links the parent checks together with the other groups' runs."""

    findings: list[Finding]
    runs: dict[str, list[Run]]
    events: Counter[str]
    duplicates: Counter[str]
    copies: dict[str, dict[EventKey, Copy]] | None

    @classmethod
    def of(cls, checked: Checked) -> GroupResult:
        return cls(
            checked.checker.findings,
            checked.checker.runs(),
            checked.events,
            checked.duplicates,
            checked.copies,
        )


async def check_records(
    kafka: KafkaSettings,
    topics: Sequence[str],
    progress: Callable[[int], None],
    keep_copies: bool,
    only: Collection[TopicPartition] | None = None,
) -> Checked:
    """Every record of ``topics`` (of the partitions ``only``, when given), on its bytes as
    they sit in the topic, through one checker."""
    checked = Checked(copies={} if keep_copies else None)
    checker = checked.checker
    async for batch in read_topics(kafka, topics, only=only):
        topic = batch[0].topic
        before_duplicates = checker.duplicates
        for record in batch:
            location = Location(topic, record.partition, record.offset)
            value = record.value or b""
            try:
                envelope = orjson.loads(value)
            except orjson.JSONDecodeError as error:
                checker.findings.append(
                    Finding("unreadable", location, None, None, f"not JSON: {error}")
                )
                continue
            if not isinstance(envelope, dict):
                checker.findings.append(
                    Finding("unreadable", location, None, None, "not a JSON object")
                )
                continue
            checker.check(envelope, location)
            if (
                checked.copies is not None
                and "stream_id" in envelope
                and "stream_version" in envelope
            ):
                key = (str(envelope["stream_id"]), int(envelope["stream_version"]))
                checked.copies.setdefault(topic, {})[key] = Copy(
                    hashlib.sha256(value).digest(), str(envelope.get("hash"))
                )
        checked.events[topic] += len(batch)
        checked.duplicates[topic] += checker.duplicates - before_duplicates
        progress(len(batch))
    return checked
