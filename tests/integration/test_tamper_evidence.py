"""``audit verify`` on a real PostgreSQL and Kafka: a store that differs from its topic, and a
whole chain rewritten consistently in both, are reported; signed checkpoints pin the heads."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import REGISTRY

from services.catalog import migrate_all
from shared.audit.checkpoints import (
    CheckpointSettings,
    TrustedSigners,
    public_pem,
    refresh_checkpoint_age,
    take_checkpoint,
)
from shared.audit.verify import VerifyReport, verify_log
from shared.db import as_migrator, service_dsn
from shared.eventstore.store import insert_events
from shared.kafka_clients import producer_options
from shared.settings import DatabaseSettings, KafkaSettings
from shared.topics import ensure_topics
from tests.unit.chains import sealed_chain

pytestmark = pytest.mark.integration

SERVICE = "billing"
SIGNER = Ed25519PrivateKey.generate()
NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


async def own_topics(kafka: KafkaSettings) -> KafkaSettings:
    own = kafka.model_copy(update={"topic_prefix": f"{kafka.topic_prefix}{uuid.uuid4().hex[:6]}."})
    await ensure_topics(own)
    return own


async def publish(kafka: KafkaSettings, events: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(**producer_options(kafka))
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait(
                kafka.events_topic(SERVICE), orjson.dumps(event), key=event["stream_id"].encode()
            )
    finally:
        await producer.stop()


async def store(conn: asyncpg.Connection[asyncpg.Record], events: list[dict[str, Any]]) -> None:
    """Events as the service's store holds them once published: rows and stream heads."""
    await insert_events(conn, SERVICE, events, [orjson.dumps(e).decode() for e in events], "")
    for event in events:
        await conn.execute(
            f"INSERT INTO {SERVICE}.streams VALUES ($1, $2, $3) ON CONFLICT (stream_id) "
            "DO UPDATE SET version = EXCLUDED.version, last_hash = EXCLUDED.last_hash",
            event["stream_id"],
            event["stream_version"],
            event["hash"],
        )


async def verified(kafka: KafkaSettings, conn: asyncpg.Connection[asyncpg.Record]) -> VerifyReport:
    return await verify_log(kafka, conn, {SERVICE: SERVICE}, TrustedSigners([SIGNER.public_key()]))


def kinds(report: VerifyReport) -> set[tuple[str, str | None]]:
    return {(f.kind, f.stream_id) for f in report.findings}


@pytest.fixture
async def admin(separate_database: DatabaseSettings) -> Any:
    await migrate_all(separate_database)
    conn = await asyncpg.connect(separate_database.database_url)
    await as_migrator(conn)
    yield conn
    await conn.close()


async def test_a_chain_rewritten_consistently_in_store_and_topic_is_reported(
    admin: asyncpg.Connection[asyncpg.Record], kafka_settings: KafkaSettings
) -> None:
    kafka = await own_topics(kafka_settings)
    original = sealed_chain("budget-2024", 3) + sealed_chain("budget-2025", 2)
    await store(admin, original)
    await publish(kafka, original)
    await take_checkpoint(admin, {SERVICE: SERVICE}, SIGNER, NOW)
    assert (await verified(kafka, admin)).ok

    # Whoever can write the store and the topic writes a new, self-consistent chain: every hash
    # recomputed, the store's rows and head replaced, the topic replaced by one holding it.
    rewritten = sealed_chain("budget-2024", 3, amount=999)
    await admin.execute(f"DELETE FROM {SERVICE}.events WHERE stream_id = 'budget-2024'")
    await admin.execute(f"DELETE FROM {SERVICE}.streams WHERE stream_id = 'budget-2024'")
    await store(admin, rewritten)
    replaced = await own_topics(kafka_settings)
    await publish(replaced, rewritten + original[3:])

    report = await verified(replaced, admin)

    assert kinds(report) == {("checkpoint_mismatch", "budget-2024")}
    assert sorted(f.detail.split(", ")[1].split(" holds")[0] for f in report.findings) == [
        "the store",
        "the topic",
    ]


async def test_a_store_that_differs_from_its_topic_is_reported_either_way(
    admin: asyncpg.Connection[asyncpg.Record], kafka_settings: KafkaSettings
) -> None:
    kafka = await own_topics(kafka_settings)
    intact = sealed_chain("budget-a", 2)
    only_on_topic = sealed_chain("budget-b", 1)
    await store(admin, intact)
    await publish(kafka, intact + only_on_topic)
    # The store's copy re-serialised with other bytes (same content, same hash, other order).
    first = intact[0]
    await admin.execute(
        f"UPDATE {SERVICE}.events SET body = $1 WHERE stream_id = 'budget-a' "
        "AND stream_version = 1",
        orjson.dumps(dict(reversed(first.items()))).decode(),
    )
    await take_checkpoint(admin, {SERVICE: SERVICE}, SIGNER, NOW)

    report = await verified(kafka, admin)

    assert kinds(report) == {("store_differs", "budget-a"), ("missing_in_store", "budget-b")}


async def test_checkpoints_must_exist_verify_and_link_up(
    admin: asyncpg.Connection[asyncpg.Record], kafka_settings: KafkaSettings
) -> None:
    kafka = await own_topics(kafka_settings)
    events = sealed_chain("budget-c", 2)
    await store(admin, events)
    await publish(kafka, events)
    assert kinds(await verified(kafka, admin)) == {("no_checkpoint", None)}

    # Signed by a key the auditor does not trust: as good as none.
    await take_checkpoint(admin, {SERVICE: SERVICE}, Ed25519PrivateKey.generate(), NOW)
    assert kinds(await verified(kafka, admin)) == {
        ("checkpoint_invalid", None),
        ("no_checkpoint", None),
    }
    await admin.execute("DELETE FROM checkpoints.checkpoints")
    for _ in range(3):
        await take_checkpoint(admin, {SERVICE: SERVICE}, SIGNER, NOW)
    assert (await verified(kafka, admin)).ok
    await admin.execute("DELETE FROM checkpoints.checkpoints WHERE sequence = 2")
    report = await verified(kafka, admin)
    assert [f.detail for f in report.findings] == ["checkpoint 2 is missing"]


async def test_every_service_sees_how_old_the_newest_checkpoint_is_and_nothing_more(
    admin: asyncpg.Connection[asyncpg.Record], separate_database: DatabaseSettings
) -> None:
    database = separate_database
    pool = await asyncpg.create_pool(
        service_dsn(database.database_url, SERVICE, database.service_role_password),
        min_size=1,
        max_size=1,
    )
    try:
        assert await refresh_checkpoint_age(pool) == float("inf")  # none yet: as stale as can be
        await take_checkpoint(admin, {SERVICE: SERVICE}, SIGNER, datetime.now(UTC))
        age = await refresh_checkpoint_age(pool)
        assert 0 <= age < 3600
        assert REGISTRY.get_sample_value("berlian_checkpoint_age_seconds") == age
        for statement in (
            "SELECT body FROM checkpoints.checkpoints",
            "DELETE FROM checkpoints.checkpoints",
            "INSERT INTO checkpoints.checkpoints VALUES (99, now(), '{}', '\\x00')",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await pool.execute(statement)
    finally:
        await pool.close()


async def test_a_signed_head_the_relay_has_not_published_yet_is_no_finding(
    admin: asyncpg.Connection[asyncpg.Record], kafka_settings: KafkaSettings
) -> None:
    kafka = await own_topics(kafka_settings)
    events = sealed_chain("budget-d", 2)
    await store(admin, events)
    await publish(kafka, events[:1])
    await admin.execute(
        f"INSERT INTO {SERVICE}.outbox SELECT position FROM {SERVICE}.events "
        "WHERE stream_id = 'budget-d' AND stream_version = 2"
    )
    await take_checkpoint(admin, {SERVICE: SERVICE}, SIGNER, NOW)

    assert (await verified(kafka, admin)).ok


async def test_after_the_signing_key_rotates_old_and_new_checkpoints_verify_with_both_keys(
    admin: asyncpg.Connection[asyncpg.Record], kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    kafka = await own_topics(kafka_settings)
    events = sealed_chain("budget-e", 2)
    await store(admin, events)
    await publish(kafka, events)
    new_signer = Ed25519PrivateKey.generate()
    await take_checkpoint(admin, {SERVICE: SERVICE}, SIGNER, NOW)
    await take_checkpoint(admin, {SERVICE: SERVICE}, new_signer, NOW)

    both = tmp_path / "public.pem"
    both.write_bytes(public_pem(SIGNER.public_key()) + public_pem(new_signer.public_key()))
    signers = CheckpointSettings(checkpoint_public_key=both).trusted_signers()
    assert (await verify_log(kafka, admin, {SERVICE: SERVICE}, signers)).ok
    only_new = TrustedSigners([new_signer.public_key()])
    report = await verify_log(kafka, admin, {SERVICE: SERVICE}, only_new)
    assert [f.detail for f in report.findings] == [
        "checkpoint 1: not signed by a trusted checkpoint key"
    ]
