"""``audit verify``: the hash chains of the topics, each store compared with its topic, and the
signed checkpoints of the stream heads.

The chains alone show an event altered in place; comparing store and topic shows one copy
rewritten without the other; the checkpoints, signed by a key no service holds, show a whole
chain rewritten consistently in both."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.audit.chain import Finding, Location, link_runs
from shared.audit.checkpoints import SCHEMA as CHECKPOINT_SCHEMA
from shared.audit.checkpoints import (
    SignedCheckpoint,
    TrustedSigners,
    load_checkpoints,
    signature_problems,
)
from shared.audit.partitions import check_groups, default_workers, merge_runs, partition_groups
from shared.audit.records import Copy, EventKey, check_records
from shared.db import DbConnection
from shared.settings import KafkaSettings
from shared.topic_reader import end_offsets

__all__ = ["Copy", "EventKey", "TopicSummary", "VerifyReport", "verify_log", "verify_topics"]


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


# Below this many records, starting the processes (each imports the platform, a third of a
# second) costs more than they save.
SPAWN_WORTH = 50_000


def _in_log_order(finding: Finding) -> tuple[str, int, int, str, str, int]:
    where = finding.location
    stream = (finding.stream_id or "", finding.stream_version or 0)
    return (where.topic, where.partition, where.offset, finding.kind, *stream)


async def verify_topics(
    kafka: KafkaSettings,
    topics: Sequence[str],
    progress: Callable[[int], None] = lambda _: None,
    seen: dict[str, dict[EventKey, Copy]] | None = None,
    workers: int | None = None,
) -> VerifyReport:
    """Read every record of ``topics`` up to their current end and check every chain, in
    ``workers`` processes by groups of partitions (1: in this process; None: one per core, or
    this process alone for a log too small to be worth starting processes). Either way the
    same findings, in log order.

    ``seen``, when given, collects per topic every record's bytes digest and chain hash by
    stream and version, for comparing the topics with the stores and the checkpoints.
    """
    ends = await end_offsets(kafka, topics)
    if workers is None:
        workers = default_workers() if sum(ends.values()) >= SPAWN_WORTH else 1
    groups = partition_groups(ends, workers) if workers > 1 else []
    merged = None
    if len(groups) > 1:
        results = await check_groups(kafka, topics, groups, progress, seen is not None)
        merged = merge_runs([result.runs for result in results])
    if merged is None:  # one process asked for, one group, or a stream in several groups
        checked = await check_records(kafka, topics, progress, seen is not None)
        findings = checked.checker.finish()
        events, duplicates, copies = checked.events, checked.duplicates, [checked.copies]
    else:
        findings = [f for result in results for f in result.findings] + link_runs(merged)
        events = sum((result.events for result in results), Counter[str]())
        duplicates = sum((result.duplicates for result in results), Counter[str]())
        copies = [result.copies for result in results]
    if seen is not None:
        for group_copies in copies:
            for topic, by_key in (group_copies or {}).items():
                seen.setdefault(topic, {}).update(by_key)
    summaries = {topic: TopicSummary(topic, events[topic], duplicates[topic]) for topic in topics}
    for finding in findings:
        summaries[finding.location.topic].findings[finding.kind] += 1
    return VerifyReport(list(summaries.values()), sorted(findings, key=_in_log_order))


async def store_copies(
    conn: DbConnection, schema: str, published_only: bool
) -> dict[EventKey, Copy]:
    """A store's events by stream and version; ``published_only``: those out of the outbox."""
    unpublished = (
        f"WHERE NOT EXISTS (SELECT 1 FROM {schema}.outbox o WHERE o.position = e.position)"
        if published_only
        else ""
    )
    copies = {}
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        async for row in conn.cursor(
            f"SELECT stream_id, stream_version, hash, body FROM {schema}.events e {unpublished}",
            prefetch=5000,
        ):
            copies[(row["stream_id"], row["stream_version"])] = Copy(
                hashlib.sha256(row["body"].encode()).digest(), row["hash"]
            )
    return copies


def compare_store_and_topic(
    topic: str,
    published_before: Mapping[EventKey, Copy],
    on_topic: Mapping[EventKey, Copy],
    in_store_after: Mapping[EventKey, Copy],
) -> list[Finding]:
    """Every event published before the topic was read is on it with the same bytes; every
    event on the topic is in the store (read after the topic: a store never loses an event)."""
    where = Location(topic, -1, -1)
    findings = []
    for (stream, version), copy in published_before.items():
        found = on_topic.get((stream, version))
        if found is None:
            findings.append(
                Finding("missing_on_topic", where, stream, version, "published, not on the topic")
            )
        elif found.digest != copy.digest:
            findings.append(
                Finding("store_differs", where, stream, version, "store and topic bytes differ")
            )
    for stream, version in on_topic.keys() - in_store_after.keys():
        findings.append(
            Finding("missing_in_store", where, stream, version, "on the topic, not in the store")
        )
    return findings


def check_latest_checkpoint(
    checkpoints: list[SignedCheckpoint],
    signers: TrustedSigners,
    topics: Mapping[str, str],
    on_topics: Mapping[str, Mapping[EventKey, Copy]],
    in_stores: Mapping[str, Mapping[EventKey, Copy]],
    unpublished: Mapping[str, set[EventKey]],
) -> list[Finding]:
    """The checkpoints verify and link up, and every head the newest one signed is, hash for
    hash, what the topic and the store hold at that version (``topics``: service -> topic);
    a head still in the outbox (``unpublished``) is not expected on the topic yet."""
    nowhere = Location("checkpoints", -1, -1)
    findings = [
        Finding("checkpoint_invalid", nowhere, None, None, problem)
        for problem in signature_problems(checkpoints, signers)
    ]
    valid = [c for c in checkpoints if signers.signed(c)]
    if not valid:
        if any(on_topics.values()):
            findings.append(
                Finding("no_checkpoint", nowhere, None, None, "no signed checkpoint pins the log")
            )
        return findings
    latest = valid[-1]
    signed_heads: dict[str, dict[str, list[Any]]] = latest.content()["heads"]
    for service, topic in topics.items():
        where = Location(topic, -1, -1)
        for stream, (version, signed_hash) in signed_heads.get(service, {}).items():
            for copy, copies in (("topic", on_topics), ("store", in_stores)):
                if copy == "topic" and (stream, version) in unpublished.get(service, set()):
                    continue  # still in the outbox: the relay has not published it yet
                found = copies.get(service, {}).get((stream, version))
                held = found.hash if found else None
                if held != signed_hash:
                    findings.append(
                        Finding(
                            "checkpoint_mismatch",
                            where,
                            stream,
                            version,
                            f"checkpoint {latest.sequence} signed {signed_hash}, the {copy} "
                            f"holds {held or 'nothing'}",
                        )
                    )
    return findings


async def verify_log(
    kafka: KafkaSettings,
    conn: DbConnection,
    schemas: Mapping[str, str],
    signers: TrustedSigners,
    progress: Callable[[int], None] = lambda _: None,
    checkpoint_schema: str = CHECKPOINT_SCHEMA,
    workers: int | None = None,
) -> VerifyReport:
    """Everything ``audit verify`` checks, for ``schemas`` (service -> store schema); the
    topics in ``workers`` processes (see :func:`verify_topics`)."""
    topics = {service: kafka.events_topic(service) for service in schemas}
    published = {service: await store_copies(conn, s, True) for service, s in schemas.items()}
    seen: dict[str, dict[EventKey, Copy]] = {}
    report = await verify_topics(kafka, list(topics.values()), progress, seen, workers)
    on_topics = {service: seen.get(topic, {}) for service, topic in topics.items()}
    in_stores = {service: await store_copies(conn, s, False) for service, s in schemas.items()}
    findings = list(report.findings)
    for service in schemas:
        findings += compare_store_and_topic(
            topics[service], published[service], on_topics[service], in_stores[service]
        )
    unpublished = {s: in_stores[s].keys() - published[s].keys() for s in schemas}
    findings += check_latest_checkpoint(
        await load_checkpoints(conn, checkpoint_schema),
        signers,
        topics,
        on_topics,
        in_stores,
        unpublished,
    )
    summaries = {s.topic: s for s in report.topics}
    for finding in findings[len(report.findings) :]:
        if finding.location.topic in summaries:
            summaries[finding.location.topic].findings[finding.kind] += 1
    return VerifyReport(report.topics, findings)
