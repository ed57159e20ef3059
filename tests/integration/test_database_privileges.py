"""Each service's own login on a real PostgreSQL, migrated as ``berlian migrate`` does: refused
every statement that would rewrite history, the key store or the erasure records."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from services.audit.asof import Moment, rebuild
from services.catalog import migrate_all
from shared.db import MIGRATOR_ROLE, service_dsn, service_role
from shared.keystore import ERASED_SQLSTATE
from shared.privileges import AUDIT_WEB_LABEL, AUDIT_WEB_ROLE, AuditWebLogin
from shared.settings import SERVICES, DatabaseSettings, KafkaSettings

pytestmark = pytest.mark.integration

# Statements no service may run on its own schema ("{s}"): history is insert-only.
HISTORY_REWRITES = (
    "UPDATE {s}.events SET body = body",
    "DELETE FROM {s}.events",
    "TRUNCATE {s}.events",
    "UPDATE {s}.streams SET stream_id = stream_id",
    "DELETE FROM {s}.streams",
    "TRUNCATE {s}.streams",
    "UPDATE {s}.commands SET stream_id = stream_id",
    "DELETE FROM {s}.commands",
    "TRUNCATE {s}.commands",
    "UPDATE {s}.request_answers SET response = response",
    "DELETE FROM {s}.request_answers",
    "TRUNCATE {s}.request_answers",
    "UPDATE {s}.outbox SET position = position",
    "TRUNCATE {s}.outbox",
    "DELETE FROM {s}.outbox_parked",
    "DELETE FROM {s}.dead_letters",
    "UPDATE {s}.dead_letters SET value = value",
    "UPDATE {s}.dead_letters SET kafka_offset = kafka_offset",
    "DELETE FROM {s}.schema_migrations",
    "DROP TABLE {s}.events",
    "ALTER TABLE {s}.events DISABLE TRIGGER ALL",
    "DROP TRIGGER head_only_forward ON {s}.streams",
    "CREATE TABLE {s}.planted (x int)",
    "TRUNCATE {s}.projection_positions",
    "SELECT setval('{s}.events_position_seq', 1)",
)
KEY_HOLDER_REFUSALS = {
    "enrolment": (
        "UPDATE keystore.data_keys SET wrapped_key = wrapped_key",
        "TRUNCATE keystore.data_keys",
        "SELECT * FROM keystore.erasures",
        "DELETE FROM keystore.erasures",
        "UPDATE keystore.erasures SET erased_at = now()",
    ),
    "claims": (
        "DELETE FROM keystore.data_keys",
        "UPDATE keystore.data_keys SET wrapped_key = wrapped_key",
        "TRUNCATE keystore.data_keys",
        "SELECT * FROM keystore.erasures",
        "INSERT INTO keystore.erasures (worker_id, key_id) VALUES (gen_random_uuid(), 'x')",
        "DELETE FROM keystore.erasures",
    ),
}
NO_KEYS = ("SELECT * FROM keystore.data_keys", "SELECT * FROM keystore.erasures")


@pytest.fixture
async def migrated_apart(separate_database: DatabaseSettings) -> DatabaseSettings:
    await migrate_all(separate_database)
    return separate_database


def refusals(service: str) -> list[str]:
    own = [statement.format(s=service) for statement in HISTORY_REWRITES]
    others = [f"SELECT * FROM {other}.events" for other in SERVICES if other != service]
    keys = KEY_HOLDER_REFUSALS.get(service, NO_KEYS)
    return [*own, *others, *keys]


async def test_every_service_login_is_refused_every_rewrite_of_history(
    migrated_apart: DatabaseSettings,
) -> None:
    for service in SERVICES:
        await refused_as(migrated_apart, service)


async def allowed_of(conn: asyncpg.Connection[asyncpg.Record], statements: list[str]) -> list[str]:
    """The statements the login may run (each undone)."""
    allowed = []
    for statement in statements:
        try:
            async with conn.transaction():
                await conn.execute(statement)
            allowed.append(statement)
        except asyncpg.InsufficientPrivilegeError:
            pass
    return allowed


async def refused_as(database: DatabaseSettings, service: str) -> None:
    conn = await asyncpg.connect(
        service_dsn(database.database_url, service, database.service_role_password)
    )
    try:
        assert (service, await allowed_of(conn, refusals(service))) == (service, [])
        # What it must do still works: append an event's row, move the head forward, never back.
        async with conn.transaction():
            await conn.execute(f"INSERT INTO {service}.streams VALUES ('s-1', 0, repeat('0', 64))")
            await conn.execute(f"UPDATE {service}.streams SET version = 2 WHERE stream_id = 's-1'")
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="only moves forward"):
                await conn.execute(
                    f"UPDATE {service}.streams SET version = 1 WHERE stream_id = 's-1'"
                )
    finally:
        await conn.close()


async def test_the_migration_role_owns_every_table_and_no_service_owns_one(
    migrated_apart: DatabaseSettings,
) -> None:
    conn = await asyncpg.connect(migrated_apart.database_url)
    try:
        owners = await conn.fetch(
            "SELECT schemaname, tablename, tableowner FROM pg_tables "
            "WHERE schemaname = ANY($1::text[])",
            [*SERVICES, "keystore"],
        )
    finally:
        await conn.close()
    assert owners
    assert {row["tableowner"] for row in owners} == {MIGRATOR_ROLE}


async def test_each_schema_append_function_is_the_migration_roles_and_its_service_calls_it(
    migrated_apart: DatabaseSettings,
) -> None:
    """Owned like the tables, run with the caller's rights (so through it a service does only
    what its grants allow), and callable by its own service's login alone."""
    conn = await asyncpg.connect(migrated_apart.database_url)
    try:
        functions = await conn.fetch(
            "SELECT n.nspname AS schema, pg_get_userbyid(p.proowner) AS owner, p.prosecdef, "
            "p.oid::regprocedure::text AS signature FROM pg_proc p "
            "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.proname = 'append_command'"
        )
        logins = [*map(service_role, SERVICES), AUDIT_WEB_ROLE]
        callers = {
            f["schema"]: [
                login
                for login in logins
                if await conn.fetchval(
                    "SELECT has_function_privilege($1, $2, 'EXECUTE')", login, f["signature"]
                )
            ]
            for f in functions
        }
    finally:
        await conn.close()
    assert {(f["schema"], f["owner"], f["prosecdef"]) for f in functions} == {
        (service, MIGRATOR_ROLE, False) for service in SERVICES
    }
    assert callers == {service: [service_role(service)] for service in SERVICES}


async def test_claims_cannot_give_an_erased_worker_a_new_key_without_seeing_the_erasures(
    migrated_apart: DatabaseSettings,
) -> None:
    database = migrated_apart
    erased = uuid.uuid4()
    admin = await asyncpg.connect(database.database_url)
    try:
        await admin.execute(
            "INSERT INTO keystore.erasures (worker_id, key_id) VALUES ($1, $2)",
            erased,
            f"worker-{erased}",
        )
    finally:
        await admin.close()
    claims = await asyncpg.connect(
        service_dsn(database.database_url, "claims", database.service_role_password)
    )
    try:
        with pytest.raises(asyncpg.PostgresError, match="was erased") as refused:
            await claims.execute(
                "INSERT INTO keystore.data_keys (key_id, worker_id, wrapped_key, kek_id) "
                "VALUES ($1, $2, '\\x00', 'kek')",
                f"worker-{erased}",
                erased,
            )
        assert refused.value.sqlstate == ERASED_SQLSTATE
        other = uuid.uuid4()  # a worker never erased gets one
        await claims.execute(
            "INSERT INTO keystore.data_keys (key_id, worker_id, wrapped_key, kek_id) "
            "VALUES ($1, $2, '\\x00', 'kek')",
            f"worker-{other}",
            other,
        )
    finally:
        await claims.close()


# The audit page's login, on each service's schema ("{s}"): it reads positions and the reasons
# of waiting letters, nothing else, and writes nowhere but its scratch schemas.
AUDIT_WEB_REFUSALS = (
    "SELECT * FROM {s}.events",
    "SELECT * FROM {s}.streams",
    "SELECT value FROM {s}.dead_letters",
    "INSERT INTO {s}.events (stream_id) VALUES ('x')",
    "UPDATE {s}.projection_positions SET next_offset = next_offset",
    "DELETE FROM {s}.projection_positions",
    "DELETE FROM {s}.dead_letters",
    "UPDATE {s}.dead_letters SET reason = reason",
    "TRUNCATE {s}.projection_positions",
    "CREATE TABLE {s}.planted (x int)",
    "DROP TABLE {s}.projection_positions",
    "CREATE TABLE {s}_scratch.planted (x int)",
)
AUDIT_WEB_ELSEWHERE = (
    "SELECT * FROM enrolment.workers",
    "SELECT * FROM enrolment.nik_index",
    "SELECT * FROM keystore.data_keys",
    "SELECT * FROM checkpoints.checkpoints",
    "INSERT INTO checkpoints.checkpoints (sequence) VALUES (1)",
    "CREATE SCHEMA planted",
)


async def test_the_audit_page_login_reads_what_it_shows_and_writes_only_its_scratch(
    migrated_apart: DatabaseSettings, topics: KafkaSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", migrated_apart.database_url)
    pool = await asyncpg.create_pool(AuditWebLogin().dsn(), min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            statements = [
                *(st.format(s=service) for service in SERVICES for st in AUDIT_WEB_REFUSALS),
                *AUDIT_WEB_ELSEWHERE,
            ]
            assert await allowed_of(conn, statements) == []
            for service in SERVICES:  # what its operations page reads
                await conn.fetch(f"SELECT * FROM {service}.projection_positions")
                await conn.fetch(
                    f"SELECT consumer, left(reason, 60), count(*) FROM {service}.dead_letters "
                    "WHERE resolved_at IS NULL GROUP BY 1, 2"
                )
        # Its dashboard: the auditors' projections rebuilt from the topics, then asked.
        state = await rebuild(pool, topics, AUDIT_WEB_LABEL, Moment())
        assert set(state.figures) == {
            "workers by status and cohort",
            "premiums due and paid",
            "claims open and decided",
        }
    finally:
        await pool.close()
