"""The per-worker key store in PostgreSQL (schema ``keystore``), the local KeyStore.

Keys live apart from the services' schemas and the topics: erasing a person deletes one row
here. In production the same Protocol is served by a cloud KMS.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from shared.db import DbConnection
from shared.events.personal import key_id_for, new_data_key
from shared.eventstore.migrations import Migration

SCHEMA = "keystore"

MIGRATIONS = (
    Migration(
        "0001_keys",
        """
        CREATE TABLE {schema}.data_keys (
            key_id     text PRIMARY KEY,
            worker_id  uuid NOT NULL UNIQUE,
            key        bytea NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        -- What was erased and when, without the key: the erasure itself is auditable.
        CREATE TABLE {schema}.erasures (
            worker_id uuid PRIMARY KEY,
            key_id    text NOT NULL,
            erased_at timestamptz NOT NULL DEFAULT now()
        );
        """,
    ),
)


class PostgresKeyStore:
    def __init__(self, pool: asyncpg.Pool, schema: str = SCHEMA) -> None:
        self._pool = pool
        self._schema = schema

    async def get_or_create(self, worker_id: UUID) -> tuple[str, bytes]:
        key_id = key_id_for(worker_id)
        erased = await self._pool.fetchval(
            f"SELECT 1 FROM {self._schema}.erasures WHERE worker_id = $1", worker_id
        )
        if erased:
            raise PermissionError(f"worker {worker_id} was erased: no new personal data")
        await self._pool.execute(
            f"INSERT INTO {self._schema}.data_keys (key_id, worker_id, key) VALUES ($1, $2, $3) "
            "ON CONFLICT (key_id) DO NOTHING",
            key_id,
            worker_id,
            new_data_key(),
        )
        key = await self.get(key_id)
        assert key is not None  # just inserted, or inserted before
        return key_id, key

    async def create(self, worker_id: UUID, conn: DbConnection) -> tuple[str, bytes]:
        """A new worker's key, inside the caller's transaction: a registration refused or rolled
        back leaves no key behind."""
        key_id, key = key_id_for(worker_id), new_data_key()
        await conn.execute(
            f"INSERT INTO {self._schema}.data_keys (key_id, worker_id, key) VALUES ($1, $2, $3)",
            key_id,
            worker_id,
            key,
        )
        return key_id, key

    async def get(self, key_id: str, conn: DbConnection | None = None) -> bytes | None:
        """The key; through ``conn`` to see one its open transaction created."""
        key = await (conn or self._pool).fetchval(
            f"SELECT key FROM {self._schema}.data_keys WHERE key_id = $1", key_id
        )
        return bytes(key) if key is not None else None

    async def destroy(self, worker_id: UUID) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            key_id = await conn.fetchval(
                f"DELETE FROM {self._schema}.data_keys WHERE worker_id = $1 RETURNING key_id",
                worker_id,
            )
            await conn.execute(
                f"INSERT INTO {self._schema}.erasures (worker_id, key_id) VALUES ($1, $2) "
                "ON CONFLICT DO NOTHING",
                worker_id,
                key_id or key_id_for(worker_id),
            )
        return key_id is not None
