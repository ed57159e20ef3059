"""The checker every fault scenario ends with: nothing acknowledged is lost, nothing happened
twice, every projection equals a fresh replay of the topics, order and chains are intact."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson

from shared.audit.verify import verify_topics
from shared.settings import SERVICES, DatabaseSettings, KafkaSettings
from shared.topic_reader import read_topics
from tests.integration.programme_world import projections_differing


@dataclass
class Verdict:
    """What the checker found; a scenario passes when ``lost`` and ``duplicated`` are empty
    and ``problems`` too."""

    events_checked: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.problems)


async def check(
    kafka: KafkaSettings,
    database: DatabaseSettings,
    registered: set[str],
    verified: set[str],
    planted: frozenset[tuple[str, int, int]] = frozenset(),
) -> Verdict:
    """``registered``: workers whose registration the API acknowledged; ``verified``: workers
    whose kelurahan verification it acknowledged; ``planted``: (topic, partition, offset) of
    records a scenario wrote onto a topic on purpose, left out of the checks (the scenario
    checks what became of them)."""
    verdict = Verdict()
    # A record published twice (the relay after a crash) is one event, not two effects.
    enrolment = list(
        {e["event_id"]: e for e in await readable(kafka, "enrolment", planted)}.values()
    )
    verification = list(
        {e["event_id"]: e for e in await readable(kafka, "verification", planted)}.values()
    )
    verdict.events_checked = len(enrolment) + len(verification)
    registrations = Counter(
        str(e["worker_id"]) for e in enrolment if e["event_type"] == "WorkerRegistered"
    )
    verifications = Counter(
        str(e["worker_id"])
        for e in verification
        if e["event_type"] == "Verified" and e["data"]["level"] == "kelurahan"
    )
    verdict.lost += [f"registration of {w}" for w in registered if registrations[w] == 0]
    verdict.lost += [f"verification of {w}" for w in verified if verifications[w] == 0]
    verdict.duplicated += [f"{n} registrations of {w}" for w, n in registrations.items() if n > 1]
    verdict.duplicated += [f"{n} verifications of {w}" for w, n in verifications.items() if n > 1]
    admin = await asyncpg.connect(database.database_url)
    try:
        for service, events in (("enrolment", enrolment), ("verification", verification)):
            stored = {
                str(r[0]) for r in await admin.fetch(f"SELECT event_id FROM {service}.events")
            }
            published = {str(e["event_id"]) for e in events}
            verdict.lost += [f"{service} event {e} not on its topic" for e in stored - published]
            verdict.problems += [
                f"{service} event {e} on the topic only" for e in published - stored
            ]
    finally:
        await admin.close()
    verdict.problems += await projections_differing(kafka, database, ("enrolment", "verification"))
    report = await verify_topics(kafka, [kafka.events_topic(s) for s in SERVICES])
    verdict.problems += [
        str(f)
        for f in report.findings
        if (f.location.topic, f.location.partition, f.location.offset) not in planted
    ]
    return verdict


async def readable(
    kafka: KafkaSettings, service: str, planted: frozenset[tuple[str, int, int]] = frozenset()
) -> list[dict[str, Any]]:
    """The topic's envelopes, without planted records and records that are not envelopes."""
    found = []
    async for batch in read_topics(kafka, [kafka.events_topic(service)]):
        for record in batch:
            if (record.topic, record.partition, record.offset) in planted:
                continue
            try:
                envelope = orjson.loads(record.value or b"")
            except orjson.JSONDecodeError:
                continue
            if isinstance(envelope, dict) and "event_id" in envelope:
                found.append(envelope)
    return found
