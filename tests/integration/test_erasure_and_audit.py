"""Erasure keeps the log verifiable; tampering with records on a real topic is reported."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from contract.events.enrolment import Heir, WorkerPersonal
from shared.audit.verify import verify_topics
from shared.eventstore import EventStore, NewEvent
from shared.eventstore.store import CommandContext
from shared.keystore import PostgresKeyStore, migrate_keystore
from shared.kms import key_encryption_from_environment
from shared.relay import OutboxRelay
from shared.sealing import ERASED, SealedPersonal, open_sealed, seal
from shared.topic_reader import read_topics
from tests.integration.sandbox import ServiceSandbox
from tests.unit.chains import sealed_chain

pytestmark = pytest.mark.integration

NOW = datetime(2024, 11, 4, 9, 30, tzinfo=UTC)
PERSON = WorkerPersonal(
    nik="3375014507800003",
    full_name="Siti Aminah",
    address="Jl. Sapuro Kebulen 12, Pekalongan",
    phone="081234567890",
    heirs=[Heir(name="Ahmad Fauzi", relationship="child")],
)


async def keystore_in(box: ServiceSandbox) -> PostgresKeyStore:
    schema = f"keys_{box.schema}"
    kms = key_encryption_from_environment()
    async with box.pool.acquire() as conn:
        await conn.execute(f"CREATE SCHEMA {schema}")
        await migrate_keystore(conn, lambda: kms, schema)
    return PostgresKeyStore(box.pool, kms, schema)


async def test_erasing_a_worker_hides_their_personal_data_and_the_log_still_verifies(
    enrolment_box: ServiceSandbox, producer: AIOKafkaProducer
) -> None:
    box = enrolment_box
    keys = await keystore_in(box)
    worker = uuid.uuid4()
    key_id, key = await keys.get_or_create(worker)
    registered = NewEvent(
        "WorkerRegistered",
        {
            "worker_id": str(worker),
            "personal": seal(PERSON, key_id, key).model_dump(),
            "birth_date": "1980-07-05",
            "sex": "F",
            "occupation_code": "buruh_batik",
            "kelurahan_code": "33.75.01.1004",
            "kecamatan_code": "33.75.01",
            "insured_income": 1_000_000,
            "source": {"channel": "api", "batch_id": None, "row": None},
        },
        occurred_at=NOW,
        worker_id=worker,
        schema_version=2,
    )
    store = EventStore(box.pool, box.schema, "enrolment")
    await store.append(
        f"worker-{worker}", 0, [registered], CommandContext("o", "kelurahan_officer", uuid.uuid4())
    )
    await OutboxRelay(box.pool, box.schema, box.topic, producer).publish_pending()

    raw = [r.value async for batch in read_topics(box.kafka, [box.topic]) for r in batch]
    assert all(b"Siti" not in value and b"3375014507800003" not in value for value in raw)
    sealed = SealedPersonal.model_validate(orjson.loads(raw[0])["data"]["personal"])
    assert open_sealed(sealed, await keys.get(key_id), WorkerPersonal) == PERSON

    assert await keys.destroy(worker)

    assert open_sealed(sealed, await keys.get(key_id), WorkerPersonal) is ERASED
    assert orjson.loads(raw[0])["data"]["birth_date"] == "1980-07-05"
    report = await verify_topics(box.kafka, [box.topic])
    assert report.ok, report.findings
    assert report.events == 1
    with pytest.raises(PermissionError, match="erased"):
        await keys.get_or_create(worker)


async def test_verify_reports_each_tampering_on_a_real_topic_with_its_location(
    sandbox: ServiceSandbox, producer: AIOKafkaProducer
) -> None:
    altered = sealed_chain("budget-altered", 3)
    altered[1] = {**altered[1], "data": {**altered[1]["data"], "amount": 1}}
    deleted = sealed_chain("budget-deleted", 3)
    del deleted[1]
    reordered = sealed_chain("budget-reordered", 3)
    reordered[1], reordered[2] = reordered[2], reordered[1]
    intact = sealed_chain("budget-intact", 4)
    for events in (altered, deleted, reordered, intact):
        for event in events:
            await producer.send_and_wait(
                sandbox.topic, orjson.dumps(event), key=event["stream_id"].encode(), partition=1
            )

    report = await verify_topics(sandbox.kafka, [sandbox.topic])

    found = {
        (f.kind, f.stream_id, f.stream_version, f.location.partition, f.location.offset)
        for f in report.findings
    }
    assert found == {
        ("hash_mismatch", "budget-altered", 2, 1, 1),
        ("gap", "budget-deleted", 3, 1, 4),
        ("out_of_order", "budget-reordered", 2, 1, 7),
    }
    assert report.events == 3 + 2 + 3 + 4
    assert not report.ok
