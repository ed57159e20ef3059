"""``audit verify`` by groups of partitions finds what one process finds, on a real Kafka log
holding every kind of tampering, a stream spread over partitions and a republished copy."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from shared.audit.verify import VerifyReport, verify_topics
from shared.hashing import compute_hash
from shared.kafka_clients import producer_options
from shared.settings import KafkaSettings
from shared.topics import ensure_topics
from tests.unit.chains import sealed_chain

pytestmark = pytest.mark.integration

Placed = tuple[int, Any]  # partition, record value (an envelope, or raw bytes)


def tampered_log() -> list[Placed]:
    """Per partition, in offset order: intact chains and one of each tampering."""
    altered = sealed_chain("budget-altered", 3)
    altered[1] = {**altered[1], "data": {**altered[1]["data"], "amount": 1}}
    forged = sealed_chain("budget-forged", 3)
    unsealed = {k: v for k, v in forged[0].items() if k != "hash"} | {"policy_version": "x"}
    forged[0] = {**unsealed, "hash": compute_hash(unsealed)}
    deleted = sealed_chain("budget-deleted", 4)
    reordered = sealed_chain("budget-reordered", 3)
    rival = sealed_chain("budget-rival", 2)
    spread = sealed_chain("budget-spread", 4)
    copied = sealed_chain("budget-copied", 2)
    return [
        *[(0, e) for e in sealed_chain("budget-intact-0", 3)],
        *[(0, e) for e in altered],
        *[(0, e) for e in [deleted[0], deleted[1], deleted[3]]],
        *[(1, e) for e in sealed_chain("budget-intact-1", 2)],
        *[(1, e) for e in forged],
        *[(1, e) for e in [reordered[0], reordered[2], reordered[1]]],
        *[(1, e) for e in [*rival, sealed_chain("budget-rival", 2, amount=7)[1]]],
        (1, b"not json"),
        (2, b"[1, 2]"),
        *[(2, e) for e in sealed_chain("budget-intact-2", 4)],
        # One stream in three partitions, versions in none twice: linked across the groups.
        (0, spread[0]),
        (1, spread[1]),
        (2, spread[2]),
        (2, spread[3]),
        # Republished in the same partition: a harmless duplicate.
        *[(2, e) for e in [*copied, copied[1]]],
    ]


async def publish(kafka: KafkaSettings, placed: list[Placed]) -> str:
    topic = kafka.events_topic("billing")
    producer = AIOKafkaProducer(**producer_options(kafka))
    await producer.start()
    try:
        for partition, value in placed:
            raw = value if isinstance(value, bytes) else orjson.dumps(value)
            await producer.send_and_wait(topic, raw, partition=partition)
    finally:
        await producer.stop()
    return topic


async def own_topics(kafka: KafkaSettings) -> KafkaSettings:
    own = kafka.model_copy(
        update={
            "topic_prefix": f"{kafka.topic_prefix}{uuid.uuid4().hex[:6]}.",
            "topic_partitions": 3,
        }
    )
    await ensure_topics(own)
    return own


def kinds(report: VerifyReport) -> list[tuple[str, str | None]]:
    return [(f.kind, f.stream_id) for f in report.findings]


async def test_parallel_and_serial_verify_report_the_same_tampering(
    kafka_settings: KafkaSettings,
) -> None:
    kafka = await own_topics(kafka_settings)
    topic = await publish(kafka, tampered_log())

    serial = await verify_topics(kafka, [topic], workers=1)

    assert sorted(kinds(serial)) == sorted(
        [
            ("hash_mismatch", "budget-altered"),
            ("broken_link", "budget-forged"),
            ("gap", "budget-deleted"),
            ("out_of_order", "budget-reordered"),
            ("conflicting_version", "budget-rival"),
            ("unreadable", None),
            ("unreadable", None),
        ]
    )
    assert serial.topics[0].duplicates == 1
    for workers in (2, 3):
        assert await verify_topics(kafka, [topic], workers=workers) == serial


async def test_a_version_in_two_groups_is_verified_in_one_process_with_the_same_findings(
    kafka_settings: KafkaSettings,
) -> None:
    kafka = await own_topics(kafka_settings)
    chain = sealed_chain("budget-misrouted", 3)
    # Version 2 republished into another partition (as after a change of key): in one process
    # a duplicate; the groups alone could not tell it from a conflict.
    placed: list[Placed] = [(0, chain[0]), (0, chain[1]), (1, chain[1]), (0, chain[2])]
    topic = await publish(kafka, [*placed, (2, sealed_chain("budget-other", 1)[0])])

    serial = await verify_topics(kafka, [topic], workers=1)

    assert serial.ok
    assert serial.topics[0].duplicates == 1
    assert await verify_topics(kafka, [topic], workers=3) == serial
