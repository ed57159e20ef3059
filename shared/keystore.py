"""The per-worker key store in PostgreSQL (schema ``keystore``), the local KeyStore.

Keys live apart from the services' schemas and the topics: erasing a person deletes one row
here. Each data key is stored wrapped under a key-encryption key that is not in the database
(``shared.kms``), with the id of that KEK beside it: the table alone opens nobody's data. The
database itself refuses a new key for an erased worker (a trigger reading the erasure records),
so a service needs no access to those records to respect them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol
from uuid import UUID

import asyncpg

from shared.db import DbConnection
from shared.eventstore.migrations import Migration, migrate
from shared.kms import KeyEncryption, WrappedKey, key_encryption_from_environment
from shared.sealing import key_id_for, new_data_key

SCHEMA = "keystore"
# Raised by the trigger below; any SQLSTATE of a class PostgreSQL does not use.
ERASED_SQLSTATE = "BR001"

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
    Migration(
        "0002_key_encryption",
        """
        -- The KEK each key is wrapped under; empty only for keys stored raw before this step,
        -- which the migration wraps before the next one makes it required.
        ALTER TABLE {schema}.data_keys ADD COLUMN kek_id text;
        -- Runs with its owner's rights (the migration role): the services cannot read the
        -- erasure records, yet none of them can give an erased worker a new key.
        CREATE OR REPLACE FUNCTION {schema}.refuse_key_of_erased() RETURNS trigger
            LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
        BEGIN
            IF EXISTS (SELECT 1 FROM {schema}.erasures WHERE worker_id = NEW.worker_id) THEN
                RAISE EXCEPTION 'worker % was erased: no new personal data', NEW.worker_id
                    USING ERRCODE = 'BR001';
            END IF;
            RETURN NEW;
        END $$;
        REVOKE ALL ON FUNCTION {schema}.refuse_key_of_erased() FROM PUBLIC;
        CREATE TRIGGER refuse_key_of_erased BEFORE INSERT ON {schema}.data_keys
            FOR EACH ROW EXECUTE FUNCTION {schema}.refuse_key_of_erased();
        """,
    ),
)
WRAPPED_ONLY = Migration(
    "0003_wrapped_only",
    """
    ALTER TABLE {schema}.data_keys RENAME COLUMN key TO wrapped_key;
    ALTER TABLE {schema}.data_keys ALTER COLUMN kek_id SET NOT NULL;
    """,
)


async def migrate_keystore(
    conn: DbConnection, keyring: Callable[[], KeyEncryption], schema: str = SCHEMA
) -> list[str]:
    """The key store's tables; keys stored raw by an earlier version are wrapped on the way
    (only then is ``keyring`` asked for the KEKs: the migration needs none otherwise)."""
    applied = await migrate(conn, schema, MIGRATIONS)
    raw = await conn.fetchval(
        "SELECT 1 FROM information_schema.columns "
        "WHERE table_schema = $1 AND table_name = 'data_keys' AND column_name = 'key'",
        schema,
    )
    if raw:
        async with conn.transaction():
            rows = await conn.fetch(
                f"SELECT key_id, key FROM {schema}.data_keys WHERE kek_id IS NULL FOR UPDATE"
            )
            if rows:
                kms = keyring()
                for row in rows:
                    wrapped = await kms.wrap(bytes(row["key"]), row["key_id"])
                    await conn.execute(
                        f"UPDATE {schema}.data_keys SET key = $2, kek_id = $3 WHERE key_id = $1",
                        row["key_id"],
                        wrapped.blob,
                        wrapped.kek_id,
                    )
    return applied + await migrate(conn, schema, [*MIGRATIONS, WRAPPED_ONLY])


async def rewrap_all(conn: DbConnection, kms: KeyEncryption, schema: str = SCHEMA) -> int:
    """Rewrap every data key not under the current KEK; the number rewrapped.

    Run with the migration login (the services may not update keys). Each batch commits on its
    own, so an interrupted rotation resumes where it stopped; the data keys themselves never
    change, so no sealed event needs rewriting.
    """
    rewrapped = 0
    while True:
        async with conn.transaction():
            rows = await conn.fetch(
                f"SELECT key_id, kek_id, wrapped_key FROM {schema}.data_keys "
                "WHERE kek_id <> $1 ORDER BY key_id LIMIT 500 FOR UPDATE",
                kms.current_kek_id,
            )
            for row in rows:
                old = WrappedKey(row["kek_id"], bytes(row["wrapped_key"]))
                new = await kms.wrap(await kms.unwrap(old, row["key_id"]), row["key_id"])
                await conn.execute(
                    f"UPDATE {schema}.data_keys SET wrapped_key = $2, kek_id = $3 "
                    "WHERE key_id = $1",
                    row["key_id"],
                    new.blob,
                    new.kek_id,
                )
        rewrapped += len(rows)
        if not rows:
            return rewrapped


async def keks_in_use(conn: DbConnection, schema: str = SCHEMA) -> dict[str, int]:
    """How many data keys each KEK wraps: a KEK no longer listed may leave the keyring."""
    rows = await conn.fetch(
        f"SELECT kek_id, count(*) AS keys FROM {schema}.data_keys GROUP BY kek_id ORDER BY kek_id"
    )
    return {row["kek_id"]: row["keys"] for row in rows}


class KeyStore(Protocol):
    """Per-worker data keys, stored wrapped under key-encryption keys (``shared.kms``); what
    sealing and opening personal data need (``shared.sealing``)."""

    async def get_or_create(self, worker_id: UUID) -> tuple[str, bytes]: ...

    async def create(self, worker_id: UUID, conn: DbConnection) -> tuple[str, bytes]: ...

    async def get(self, key_id: str, conn: DbConnection | None = None) -> bytes | None: ...

    async def add_many(self, keys: Mapping[UUID, bytes], conn: DbConnection) -> None: ...

    async def get_many(
        self, key_ids: Sequence[str], conn: DbConnection | None = None
    ) -> dict[str, bytes]: ...

    async def destroy(self, worker_id: UUID) -> bool: ...


class PostgresKeyStore:
    def __init__(self, pool: asyncpg.Pool, kms: KeyEncryption, schema: str = SCHEMA) -> None:
        self._pool = pool
        self._kms = kms
        self._schema = schema

    @classmethod
    def from_environment(cls, pool: asyncpg.Pool) -> PostgresKeyStore:
        """The key store under the KEKs the environment configures (refused when none)."""
        return cls(pool, key_encryption_from_environment())

    async def get_or_create(self, worker_id: UUID) -> tuple[str, bytes]:
        key_id = key_id_for(worker_id)
        key = await self.get(key_id)
        if key is not None:
            return key_id, key
        async with self._pool.acquire() as conn:
            await self._insert(conn, worker_id, key_id, new_data_key(), on_conflict=True)
        key = await self.get(key_id)
        assert key is not None  # just inserted, or inserted meanwhile
        return key_id, key

    async def create(self, worker_id: UUID, conn: DbConnection) -> tuple[str, bytes]:
        """A new worker's key, inside the caller's transaction: a registration refused or rolled
        back leaves no key behind."""
        key_id, key = key_id_for(worker_id), new_data_key()
        await self._insert(conn, worker_id, key_id, key, on_conflict=False)
        return key_id, key

    async def get(self, key_id: str, conn: DbConnection | None = None) -> bytes | None:
        """The key; through ``conn`` to see one its open transaction created."""
        row = await (conn or self._pool).fetchrow(
            f"SELECT kek_id, wrapped_key FROM {self._schema}.data_keys WHERE key_id = $1", key_id
        )
        if row is None:
            return None
        return await self._kms.unwrap(WrappedKey(row["kek_id"], bytes(row["wrapped_key"])), key_id)

    async def add_many(self, keys: Mapping[UUID, bytes], conn: DbConnection) -> None:
        """New workers' keys (made with ``new_data_key``) in one statement, inside the caller's
        transaction, as ``create`` does for one."""
        wrapped = [await self._kms.wrap(key, key_id_for(worker)) for worker, key in keys.items()]
        try:
            await conn.execute(
                f"INSERT INTO {self._schema}.data_keys (key_id, worker_id, wrapped_key, kek_id) "
                "SELECT * FROM unnest($1::text[], $2::uuid[], $3::bytea[], $4::text[])",
                [key_id_for(worker) for worker in keys],
                list(keys),
                [w.blob for w in wrapped],
                [w.kek_id for w in wrapped],
            )
        except asyncpg.PostgresError as error:
            if error.sqlstate == ERASED_SQLSTATE:
                raise PermissionError("a worker was erased: no new personal data") from None
            raise

    async def get_many(
        self, key_ids: Sequence[str], conn: DbConnection | None = None
    ) -> dict[str, bytes]:
        """The keys that exist of these, in one read; through ``conn`` as ``get``."""
        rows = await (conn or self._pool).fetch(
            f"SELECT key_id, kek_id, wrapped_key FROM {self._schema}.data_keys "
            "WHERE key_id = any($1::text[])",
            list(key_ids),
        )
        return {
            row["key_id"]: await self._kms.unwrap(
                WrappedKey(row["kek_id"], bytes(row["wrapped_key"])), row["key_id"]
            )
            for row in rows
        }

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

    async def _insert(
        self, conn: DbConnection, worker_id: UUID, key_id: str, key: bytes, *, on_conflict: bool
    ) -> None:
        wrapped = await self._kms.wrap(key, key_id)
        try:
            await conn.execute(
                f"INSERT INTO {self._schema}.data_keys (key_id, worker_id, wrapped_key, kek_id) "
                "VALUES ($1, $2, $3, $4)"
                + (" ON CONFLICT (key_id) DO NOTHING" if on_conflict else ""),
                key_id,
                worker_id,
                wrapped.blob,
                wrapped.kek_id,
            )
        except asyncpg.PostgresError as error:
            if error.sqlstate == ERASED_SQLSTATE:
                raise PermissionError(
                    f"worker {worker_id} was erased: no new personal data"
                ) from None
            raise
