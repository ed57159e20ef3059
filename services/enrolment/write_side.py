"""Enrolment's write side: the tables its commands decide on, kept from its own events.

The NIK index holds a keyed digest of each worker's current NIK (never the NIK): one person is
registered once, and a second registration of a NIK fails on the index's unique digest inside
the append's transaction. Membership numbers come from a sequence, set past the highest number
given when the store is restored.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from contract.events.enrolment import WorkerDetailsCorrected, WorkerPersonal, WorkerRegistered
from shared.db import DbConnection
from shared.eventstore.inline import Appended
from shared.eventstore.migrations import Migration
from shared.keystore import KeyStore
from shared.projection.changes import RowChange, Upsert
from shared.sealing import open_sealed

WRITE_MODEL = (
    Migration(
        "nik_index",
        """
        -- One person, one registration: a keyed digest of the NIK, never the NIK itself.
        CREATE TABLE {schema}.nik_index (
            nik_digest bytea PRIMARY KEY,
            worker_id  uuid NOT NULL UNIQUE
        );
        CREATE SEQUENCE {schema}.membership_seq;
        """,
    ),
)


def nik_digest(secret: bytes, nik: str) -> bytes:
    return hmac.new(secret, nik.encode(), hashlib.sha256).digest()


def nik_entry(worker_id: uuid.UUID, digest: bytes | None) -> list[RowChange]:
    """The worker's entry now indexes this digest; none when the details read as erased. An
    upsert on the worker, so a digest already another worker's fails on its uniqueness."""
    if digest is None:
        return []
    return [Upsert("nik_index", {"worker_id": worker_id}, {"nik_digest": digest})]


@dataclass(frozen=True)
class NikIndex:
    keys: KeyStore
    secret: bytes
    schema: str
    event_types: frozenset[str] = frozenset({"WorkerRegistered", "WorkerDetailsCorrected"})

    async def changes(self, conn: DbConnection, events: Sequence[Appended]) -> Sequence[RowChange]:
        details = []
        for event in events:
            assert isinstance(event.data, WorkerRegistered | WorkerDetailsCorrected)
            if event.data.personal is not None:
                details.append((event.data.worker_id, event.data.personal))
        keys = await self.keys.get_many([personal.key_id for _, personal in details], conn)
        changes: list[RowChange] = []
        for worker_id, personal in details:
            opened = open_sealed(personal, keys.get(personal.key_id), WorkerPersonal)
            digest = (
                nik_digest(self.secret, opened.nik) if isinstance(opened, WorkerPersonal) else None
            )
            changes += nik_entry(worker_id, digest)
        return changes

    async def restored(self, conn: DbConnection) -> None:
        highest = await conn.fetchval(
            "SELECT max(left(body::jsonb -> 'data' ->> 'membership_no', 10)::bigint) "
            f"FROM {self.schema}.events WHERE event_type = 'CoverageStarted'"
        )
        if highest:
            await conn.execute("SELECT setval($1, $2)", f"{self.schema}.membership_seq", highest)
