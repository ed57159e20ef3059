"""The example consumer of docs/consuming.md, run against the real broker: it dedups by event
id, keeps each stream's order, upcasts version 1, and passes over types and fields it does not
know; run again, it continues from its offsets and changes nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from contract.events.enrolment import CoverageStarted, WorkerPersonal, WorkerRegistered
from contract.events.types import Premium
from examples.coverage_register import Tally, consume, open_register
from shared.eventstore import EventStore, NewEvent
from shared.eventstore.store import CommandContext
from shared.sealing import seal
from tests.integration.sandbox import ServiceSandbox
from tests.integration.toy_projection import publish

pytestmark = pytest.mark.integration

NOW = datetime(2024, 11, 4, 9, 30, tzinfo=UTC)


def registered(worker: uuid.UUID, kelurahan: str) -> dict[str, object]:
    personal = WorkerPersonal(nik="3375010101800001", full_name="Darno", address="Medono")
    return WorkerRegistered(
        worker_id=worker,
        personal=seal(personal, f"worker-{worker}", bytes(32)),
        birth_date=date(1980, 1, 1),
        sex="M",
        occupation_code="tukang_becak",
        kelurahan_code=kelurahan,
        kecamatan_code=kelurahan[:8],
        insured_income=1_000_000,
        source={"channel": "import", "batch_id": "b-1", "row": 3},
    ).model_dump(mode="json")


def covered(worker: uuid.UUID) -> dict[str, object]:
    return CoverageStarted(
        worker_id=worker,
        coverage_id=uuid.uuid4(),
        membership_no="12345678901",
        cohort="regular",
        fiscal_year=2024,
        programmes=["JKK", "JKM"],
        start_date=date(2024, 11, 1),
        end_date=date(2025, 10, 31),
        monthly_premium=Premium(total=16800, jkk=10080, jkm=6720),
        insured_income=1_000_000,
        decree_ref="SK-1",
    ).model_dump(mode="json")


async def test_the_example_consumer_follows_the_contract(
    enrolment_box: ServiceSandbox, producer: AIOKafkaProducer, tmp_path: Path
) -> None:
    enrolment = enrolment_box
    store = EventStore(enrolment.pool, enrolment.schema, "enrolment", clock=lambda: NOW)
    context = CommandContext("officer", "kelurahan_officer", uuid.uuid4())
    old, new = uuid.uuid4(), uuid.uuid4()
    v1 = {**registered(old, "33.75.01.1004"), "source": "api"}  # as version 1 wrote it
    newer = {**covered(new), "coverage_note": "a field a newer producer added"}
    await store.append(
        f"worker-{old}",
        0,
        [NewEvent("WorkerRegistered", v1, NOW, worker_id=old, schema_version=1)],
        context,
    )
    await store.append(
        f"worker-{new}",
        0,
        [
            NewEvent("WorkerRegistered", registered(new, "33.75.02.1001"), NOW, new, 2),
            NewEvent("WorkerMoved", {"worker_id": str(new), "to": "Jakarta"}, NOW, new),
            NewEvent("CoverageStarted", newer, NOW, new),
        ],
        context,
    )
    await publish(enrolment, producer)
    # The relay crashed after sending and before clearing its outbox: all of it again.
    await enrolment.pool.execute(
        f"INSERT INTO {enrolment.schema}.outbox SELECT position FROM {enrolment.schema}.events"
    )
    await publish(enrolment, producer)
    database = tmp_path / "coverage.sqlite"
    prefix = enrolment.kafka.topic_prefix
    bootstrap = enrolment.kafka.kafka_bootstrap_servers

    first = await consume(bootstrap, prefix, database)
    again = await consume(bootstrap, prefix, database)

    assert first == Tally(applied=3, duplicates=4, passed_over=1)
    assert again == Tally()  # continued from its stored offsets: nothing read twice
    register = open_register(database)
    rows = register.execute("SELECT * FROM workers ORDER BY kelurahan_code").fetchall()
    assert rows == [
        (str(old), "33.75.01.1004", "api", None),
        (str(new), "33.75.02.1001", "import", "2025-10-31"),
    ]
