"""The platform's command line on the real stack: migrate, replay, audit verify, dead letters."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from typer.testing import CliRunner

from deploy.cli import app
from services.enrolment.projections import WorkersProjection
from shared.db import service_dsn
from shared.events.enrolment import WorkerPersonal
from shared.events.personal import seal
from shared.eventstore import EventStore, NewEvent
from shared.eventstore.store import CommandContext
from shared.kafka_clients import producer_options
from shared.projection.runner import ProjectionRunner
from shared.relay import OutboxRelay
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
        runner = ProjectionRunner(pool, "enrolment", WorkersProjection(), kafka)
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
