"""``audit verify``: the hash chains of the topics, read from the brokers alone."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import orjson

from shared.audit.chain import ChainChecker, Finding, Location
from shared.settings import KafkaSettings
from shared.topic_reader import read_topics


@dataclass
class TopicSummary:
    topic: str
    events: int = 0
    duplicates: int = 0
    findings: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class VerifyReport:
    topics: list[TopicSummary]
    findings: list[Finding]

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def events(self) -> int:
        return sum(t.events for t in self.topics)


async def verify_topics(
    kafka: KafkaSettings,
    topics: Sequence[str],
    progress: Callable[[int], None] = lambda _: None,
) -> VerifyReport:
    """Read every record of ``topics`` up to their current end and check every chain."""
    checker = ChainChecker()
    summaries = {topic: TopicSummary(topic) for topic in topics}
    async for batch in read_topics(kafka, topics):
        summary = summaries[batch[0].topic]
        before_duplicates = checker.duplicates
        for record in batch:
            location = Location(record.topic, record.partition, record.offset)
            try:
                envelope = orjson.loads(record.value or b"")
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
        summary.events += len(batch)
        summary.duplicates += checker.duplicates - before_duplicates
        progress(len(batch))
    findings = checker.finish()
    for finding in findings:
        summaries[finding.location.topic].findings[finding.kind] += 1
    return VerifyReport(list(summaries.values()), findings)
