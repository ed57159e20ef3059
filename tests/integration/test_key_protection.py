"""The per-worker keys on a real PostgreSQL: stored only wrapped under a key-encryption key that
is not in the database, rewrapped under a new one, upgraded from raw, and still erasable."""

from __future__ import annotations

import base64
import io
import re
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from contract.events.enrolment import Heir, WorkerPersonal
from shared.eventstore.migrations import migrate
from shared.keystore import (
    MIGRATIONS,
    PostgresKeyStore,
    keks_in_use,
    migrate_keystore,
    rewrap_all,
)
from shared.kms import KeyUnwrapError, LocalKeyring
from shared.sealing import ERASED, key_id_for, new_data_key, open_sealed, seal
from shared.settings import DatabaseSettings

pytestmark = pytest.mark.integration

PERSON = WorkerPersonal(
    nik="3375014507800003",
    full_name="Siti Aminah",
    address="Jl. Sapuro Kebulen 12, Pekalongan",
    phone="081234567890",
    heirs=[Heir(name="Ahmad Fauzi", relationship="child")],
)


def keyring(*names: str) -> LocalKeyring:
    """A keyring of fresh KEKs; the last one is current."""
    return LocalKeyring({name: AESGCM.generate_key(bit_length=256) for name in names}, names[-1])


@pytest.fixture
async def admin(database_settings: DatabaseSettings) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_settings.database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


async def fresh_schema(pool: asyncpg.Pool) -> str:
    schema = f"keys_{uuid.uuid4().hex[:8]}"
    await pool.execute(f"CREATE SCHEMA {schema}")
    return schema


async def migrated_store(pool: asyncpg.Pool, kms: LocalKeyring) -> tuple[str, PostgresKeyStore]:
    """A key store of its own, as ``berlian migrate`` makes it, under ``kms``."""
    schema = await fresh_schema(pool)
    async with pool.acquire() as conn:
        await migrate_keystore(conn, lambda: kms, schema)
    return schema, PostgresKeyStore(pool, kms, schema)


async def dumped(pool: asyncpg.Pool, schema: str) -> bytes:
    """Every row of the key store's tables as a dump holds them (COPY, pg_dump's data format)."""
    out = io.BytesIO()
    async with pool.acquire() as conn:
        for table in ("data_keys", "erasures"):
            await conn.copy_from_table(table, schema_name=schema, output=out)
    return out.getvalue()


def candidate_keys(dump: bytes) -> set[bytes]:
    """Every 32-byte run of every bytea value in the dump: all an attacker has to try."""
    candidates = set()
    for hex_value in re.findall(rb"\\\\x([0-9a-f]+)", dump):
        raw = bytes.fromhex(hex_value.decode())
        candidates |= {raw[i : i + 32] for i in range(len(raw) - 31)}
    return candidates


async def test_a_dump_of_the_key_store_opens_no_worker_without_the_kek(
    admin: asyncpg.Pool,
) -> None:
    schema, keys = await migrated_store(admin, keyring("kek-a"))
    sealed = []
    for _ in range(5):
        key_id, key = await keys.get_or_create(uuid.uuid4())
        sealed.append(seal(PERSON, key_id, key))

    dump = await dumped(admin, schema)
    candidates = candidate_keys(dump)
    assert len(candidates) > 5  # the dump does hold the wrapped keys
    for one in sealed:
        blob = base64.b64decode(one.ciphertext)
        for candidate in candidates:
            with pytest.raises(Exception):  # noqa: B017,PT011 - any failure to open will do
                AESGCM(candidate).decrypt(blob[:12], blob[12:], one.key_id.encode())
        # With the KEK (outside the database) the same rows open.
        assert open_sealed(one, await keys.get(one.key_id), WorkerPersonal) == PERSON


async def test_keys_stored_raw_before_the_upgrade_are_wrapped_and_old_events_still_open(
    admin: asyncpg.Pool,
) -> None:
    schema = await fresh_schema(admin)
    worker = uuid.uuid4()
    key_id, raw = key_id_for(worker), new_data_key()
    async with admin.acquire() as conn:
        await migrate(conn, schema, MIGRATIONS[:1])  # the key store as the previous version had it
        await conn.execute(
            f"INSERT INTO {schema}.data_keys (key_id, worker_id, key) VALUES ($1, $2, $3)",
            key_id,
            worker,
            raw,
        )
    sealed_before = seal(PERSON, key_id, raw)

    kms = keyring("kek-a")
    async with admin.acquire() as conn:
        applied = await migrate_keystore(conn, lambda: kms, schema)
        again = await migrate_keystore(conn, lambda: kms, schema)
    assert applied == ["0002_key_encryption", "0003_wrapped_only"]
    assert again == []
    stored = await admin.fetchrow(f"SELECT kek_id, wrapped_key FROM {schema}.data_keys")
    assert stored is not None
    assert stored["kek_id"] == "kek-a"
    assert raw not in bytes(stored["wrapped_key"])
    keys = PostgresKeyStore(admin, kms, schema)
    assert open_sealed(sealed_before, await keys.get(key_id), WorkerPersonal) == PERSON


async def test_rotating_the_kek_rewraps_every_key_and_the_old_kek_can_go(
    admin: asyncpg.Pool,
) -> None:
    old_kek, new_kek = AESGCM.generate_key(bit_length=256), AESGCM.generate_key(bit_length=256)
    old = LocalKeyring({"kek-old": old_kek}, "kek-old")
    schema, keys = await migrated_store(admin, old)
    sealed = []
    for _ in range(3):
        key_id, key = await keys.get_or_create(uuid.uuid4())
        sealed.append(seal(PERSON, key_id, key))

    both = LocalKeyring({"kek-old": old_kek, "kek-new": new_kek}, "kek-new")
    async with admin.acquire() as conn:
        assert await rewrap_all(conn, both, schema) == 3
        assert await rewrap_all(conn, both, schema) == 0  # resumable: nothing left
        assert await keks_in_use(conn, schema) == {"kek-new": 3}

    new_only = LocalKeyring({"kek-new": new_kek}, "kek-new")
    for one in sealed:
        key = await PostgresKeyStore(admin, new_only, schema).get(one.key_id)
        assert open_sealed(one, key, WorkerPersonal) == PERSON
        with pytest.raises(KeyUnwrapError, match="not in the keyring"):
            await keys.get(one.key_id)


async def test_erasure_destroys_the_wrapped_key_and_the_database_refuses_a_new_one(
    admin: asyncpg.Pool,
) -> None:
    _, keys = await migrated_store(admin, keyring("kek-a"))
    worker = uuid.uuid4()
    key_id, key = await keys.get_or_create(worker)
    sealed = seal(PERSON, key_id, key)

    assert await keys.destroy(worker) is True
    assert open_sealed(sealed, await keys.get(key_id), WorkerPersonal) is ERASED
    with pytest.raises(PermissionError, match="was erased"):
        await keys.get_or_create(worker)
    async with admin.acquire() as conn, conn.transaction():
        with pytest.raises(PermissionError, match="was erased"):
            await keys.create(worker, conn)
