"""Enrolment's write side after a restore of its store: the NIK index and membership numbers."""

from __future__ import annotations

import uuid

import orjson

from services.enrolment.service import EnrolmentService
from shared.db import DbConnection
from shared.events.enrolment import WorkerPersonal
from shared.events.personal import open_sealed
from shared.events.types import SealedPersonal


async def rebuild_write_model(service: EnrolmentService, conn: DbConnection) -> int:
    """The NIK index from each worker's latest sealed details (erased workers have no key,
    hence no entry, as after the erasure itself); the membership sequence past the highest
    number given. Returns the index's size."""
    latest: dict[uuid.UUID, SealedPersonal] = {}
    for row in await conn.fetch(
        f"SELECT worker_id, body FROM {service.schema}.events "
        "WHERE event_type IN ('WorkerRegistered', 'WorkerDetailsCorrected') "
        "ORDER BY stream_id, stream_version"
    ):
        sealed = orjson.loads(row["body"])["data"].get("personal")
        if sealed is not None:
            latest[row["worker_id"]] = SealedPersonal.model_validate(sealed)
    entries = []
    for worker_id, sealed in latest.items():
        personal = open_sealed(sealed, await service.keys.get(sealed.key_id), WorkerPersonal)
        if isinstance(personal, WorkerPersonal):
            entries.append((service.nik_digest(personal.nik), worker_id))
    await conn.executemany(f"INSERT INTO {service.schema}.nik_index VALUES ($1, $2)", entries)
    highest = await conn.fetchval(
        "SELECT max(left(body::jsonb -> 'data' ->> 'membership_no', 10)::bigint) "
        f"FROM {service.schema}.events WHERE event_type = 'CoverageStarted'"
    )
    if highest:
        await conn.execute("SELECT setval($1, $2)", f"{service.schema}.membership_seq", highest)
    return len(entries)
