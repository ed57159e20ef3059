"""The platform's command line on the real stack: migrate, replay, audit verify, dead letters."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from typer.testing import CliRunner

from contract.events.enrolment import RegistrationSource, WorkerPersonal
from contract.events.registry import CATALOGUE
from contract.policy import policy_book
from deploy.cli import app
from services.enrolment.projections import WorkersProjection
from services.enrolment.service import EnrolmentService, Registration
from shared.db import service_dsn
from shared.eventstore import EventStore, NewEvent
from shared.eventstore.store import CommandContext
from shared.kafka_clients import producer_options
from shared.keystore import PostgresKeyStore
from shared.kms import LocalKeyring, new_keyring_json
from shared.projection.runner import ProjectionRunner
from shared.relay import OutboxRelay
from shared.sealing import seal
from shared.settings import DatabaseSettings, KafkaSettings
from shared.topics import ensure_topics

pytestmark = pytest.mark.integration

NOW = datetime(2024, 11, 4, 9, 30, tzinfo=UTC)


def registration(worker: uuid.UUID) -> NewEvent:
    personal = WorkerPersonal(nik="3375010101800001", full_name="Darno", address="Medono")
    return NewEvent(
        "WorkerRegistered",
        {
            "worker_id": str(worker),
            "personal": seal(personal, f"worker-{worker}", bytes(32)).model_dump(),
            "birth_date": "1980-01-01",
            "sex": "M",
            "occupation_code": "tukang_becak",
            "kelurahan_code": "33.75.01.1002",
            "kecamatan_code": "33.75.01",
            "insured_income": 1_000_000,
            "source": {"channel": "api", "batch_id": None, "row": None},
        },
        occurred_at=NOW,
        worker_id=worker,
        schema_version=2,
    )


async def record_and_publish(
    kafka: KafkaSettings, database: DatabaseSettings, poison: bytes
) -> None:
    dsn = service_dsn(database.database_url, "enrolment", database.service_role_password)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    producer = AIOKafkaProducer(**producer_options(kafka))
    await producer.start()
    try:
        store = EventStore(pool, "enrolment", "enrolment", clock=lambda: NOW)
        worker = uuid.uuid4()
        context = CommandContext("officer", "kelurahan_officer", uuid.uuid4())
        await store.append(f"worker-{worker}", 0, [registration(worker)], context)
        await OutboxRelay(
            pool, "enrolment", kafka.events_topic("enrolment"), producer
        ).publish_pending()
        await producer.send_and_wait(kafka.events_topic("enrolment"), poison, key=b"poison")
        runner = ProjectionRunner(pool, "enrolment", WorkersProjection(), CATALOGUE, kafka)
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))
        for _ in range(200):
            if runner.applied + runner.dead_lettered >= 2:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await task
    finally:
        await producer.stop()
        await pool.close()


def test_migrate_replay_verify_and_dead_letters_from_the_command_line(
    kafka_settings: KafkaSettings,
    separate_database: DatabaseSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    database_settings = separate_database
    kafka = kafka_settings.model_copy(update={"topic_prefix": f"{kafka_settings.topic_prefix}cli."})
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka.kafka_bootstrap_servers)
    monkeypatch.setenv("TOPIC_PREFIX", kafka.topic_prefix)
    monkeypatch.setenv("DATABASE_URL", database_settings.database_url)
    cli = CliRunner()
    asyncio.run(ensure_topics(kafka))

    migrated = cli.invoke(app, ["migrate"])
    assert migrated.exit_code == 0, migrated.output
    again = cli.invoke(app, ["migrate"]).output
    for schema in ("enrolment", "verification", "billing", "claims", "keystore"):
        assert f"{schema}: up to date" in again

    asyncio.run(record_and_publish(kafka, database_settings, poison=b"\x00 not an event"))

    replayed = cli.invoke(app, ["replay", "--service", "enrolment", "--projection", "workers"])
    assert replayed.exit_code == 0, replayed.output
    assert "2 records read, 1 events applied, 1 dead-lettered" in " ".join(replayed.output.split())

    unsigned = json.loads(cli.invoke(app, ["audit", "verify", "--json"]).stdout)
    assert [f["kind"] for f in unsigned["findings"]] == ["unreadable", "no_checkpoint"]
    signed = cli.invoke(app, ["checkpoint"])
    assert "checkpoint 1: 1 stream heads signed" in signed.output, signed.output
    verified = cli.invoke(app, ["audit", "verify", "--json"])
    report = json.loads(verified.stdout)
    assert verified.exit_code == 1  # the poison record is not an envelope
    assert report["events"] == 2
    assert [f["kind"] for f in report["findings"]] == ["unreadable"]

    # The rebuild read the poison record again: its letter (2) replaced the runner's (1).
    listed = cli.invoke(app, ["deadletters", "list", "--service", "enrolment"])
    assert "1 dead letters; 1 waiting, 0 streams parked" in listed.output
    shown = cli.invoke(app, ["deadletters", "show", "--service", "enrolment", "2"])
    assert "reason value is not JSON" in shown.output
    assert "not an event" in shown.output
    redriven = cli.invoke(app, ["deadletters", "redrive", "--service", "enrolment", "2"])
    assert redriven.exit_code == 1
    assert "still fails" in redriven.output
    assert "0 of 1 letters applied" in redriven.output
    replaced = cli.invoke(app, ["deadletters", "redrive", "--service", "enrolment", "1"])
    assert replaced.exit_code == 1
    assert "no longer waiting: replaced" in replaced.output
    skip = ["deadletters", "skip", "--service", "enrolment", "2", "--operator", "siti"]
    skipped = cli.invoke(app, [*skip, "--reason", "garbage written by a test producer"])
    assert skipped.exit_code == 0, skipped.output
    assert "skipped by siti" in skipped.output
    shown = cli.invoke(app, ["deadletters", "show", "--service", "enrolment", "2"])
    assert "state skipped" in shown.output
    assert "note garbage written by a test producer" in shown.output
    twice = cli.invoke(app, [*skip, "--reason", "again"])
    assert twice.exit_code == 1
    assert "no longer waiting: skipped by siti" in twice.output


def test_the_key_encryption_key_rotates_from_the_command_line(
    separate_database: DatabaseSettings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    keyring = tmp_path / "keyring.json"
    keyring.write_bytes(new_keyring_json())
    first = LocalKeyring.from_file(keyring).current_kek_id
    monkeypatch.setenv("DATABASE_URL", separate_database.database_url)
    monkeypatch.setenv("KEY_ENCRYPTION_KEYRING", str(keyring))
    cli = CliRunner()
    assert cli.invoke(app, ["migrate"]).exit_code == 0

    async def seal_one() -> tuple[str, bytes]:
        pool = await asyncpg.create_pool(separate_database.database_url, min_size=1, max_size=1)
        try:
            keys = PostgresKeyStore(pool, LocalKeyring.from_file(keyring))
            return await keys.get_or_create(uuid.uuid4())
        finally:
            await pool.close()

    key_id, key = asyncio.run(seal_one())
    added = cli.invoke(app, ["keys", "new-kek"])
    assert "is now the current KEK" in added.output, added.output
    rotated = cli.invoke(app, ["keys", "rotate"])
    assert rotated.exit_code == 0, rotated.output
    second = LocalKeyring.from_file(keyring).current_kek_id
    assert f"rewrapped 1 data keys under {second}" in rotated.output
    assert f"no key is wrapped under {first}: they may leave the keyring" in rotated.output

    async def read_back() -> bytes | None:
        pool = await asyncpg.create_pool(separate_database.database_url, min_size=1, max_size=1)
        try:
            return await PostgresKeyStore(pool, LocalKeyring.from_file(keyring)).get(key_id)
        finally:
            await pool.close()

    assert asyncio.run(read_back()) == key


def test_the_nik_digest_key_rotates_from_the_command_line(
    separate_database: DatabaseSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_key, new_key = "o" * 40, "n" * 40
    monkeypatch.setenv("DATABASE_URL", separate_database.database_url)
    cli = CliRunner()
    assert cli.invoke(app, ["migrate"]).exit_code == 0
    personal = WorkerPersonal(nik="3375035512880001", full_name="Kartini", address="Krapyak")

    async def enrolment(key: str) -> tuple[asyncpg.Pool, EnrolmentService]:
        dsn = service_dsn(
            separate_database.database_url, "enrolment", separate_database.service_role_password
        )
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        keys = PostgresKeyStore.from_environment(pool)
        return pool, EnrolmentService(pool, keys, policy_book(), key.encode())

    async def register() -> uuid.UUID:
        pool, service = await enrolment(old_key)
        try:
            registration = Registration(
                personal,
                date(1988, 12, 15),
                "F",
                "nelayan",
                "33.75.03.1002",
                RegistrationSource(channel="api"),
            )
            context = CommandContext("officer", "kelurahan_officer", uuid.uuid4())
            worker, _ = await service.register(registration, context)
            return worker
        finally:
            await pool.close()

    async def found_with(key: str) -> uuid.UUID | None:
        pool, service = await enrolment(key)
        try:
            return await service.worker_by_nik(personal.nik)
        finally:
            await pool.close()

    worker = asyncio.run(register())
    assert cli.invoke(app, ["keys", "rotate-nik-digest"]).exit_code == 1  # not without --yes
    monkeypatch.setenv("ENROLMENT_NIK_SECRET", new_key)
    rotated = cli.invoke(app, ["keys", "rotate-nik-digest", "--yes"])
    assert "NIK index rebuilt under the new key: 1 workers" in rotated.output, rotated.output
    assert asyncio.run(found_with(new_key)) == worker
    assert asyncio.run(found_with(old_key)) is None
