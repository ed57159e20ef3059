"""The platform's tables inside a service's schema, created by ordered, recorded migrations.

Each service adds its own projection tables as further steps (``Migration`` lists are
concatenated); a step runs once and is recorded in ``<schema>.schema_migrations``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shared.db import DbConnection


@dataclass(frozen=True)
class Migration:
    name: str
    sql: str  # ``{schema}`` is replaced by the service's schema name


PLATFORM: tuple[Migration, ...] = (
    Migration(
        "0001_event_store",
        """
        -- Every event the service ever recorded, in commit-independent insertion order.
        CREATE TABLE {schema}.events (
            position       bigserial PRIMARY KEY,
            event_id       uuid NOT NULL UNIQUE,
            stream_id      text NOT NULL,
            stream_version integer NOT NULL CHECK (stream_version >= 1),
            event_type     text NOT NULL,
            schema_version integer NOT NULL,
            worker_id      uuid,
            recorded_at    timestamptz NOT NULL,
            hash           char(64) NOT NULL,
            body           text NOT NULL,  -- the envelope exactly as published
            UNIQUE (stream_id, stream_version)
        );
        CREATE INDEX ON {schema}.events (worker_id);
        -- One row per stream: its version and last hash, locked by every append to it.
        CREATE TABLE {schema}.streams (
            stream_id text PRIMARY KEY,
            version   integer NOT NULL,
            last_hash char(64) NOT NULL
        );
        -- Commands already handled, so that a retry returns the first result.
        CREATE TABLE {schema}.commands (
            idempotency_key text PRIMARY KEY,
            stream_id       text NOT NULL,
            event_ids       uuid[] NOT NULL,
            first_version   integer NOT NULL,
            last_version    integer NOT NULL,
            recorded_at     timestamptz NOT NULL
        );
        -- Events not yet on the topic. The relay deletes a row after the broker acknowledged it.
        CREATE TABLE {schema}.outbox (
            position bigint PRIMARY KEY REFERENCES {schema}.events (position)
        );
        """,
    ),
    Migration(
        "0002_projection_positions",
        """
        -- The next offset to read per projection and partition, committed with its effects.
        CREATE TABLE {schema}.projection_positions (
            projection  text NOT NULL,
            topic       text NOT NULL,
            partition   integer NOT NULL,
            next_offset bigint NOT NULL,
            PRIMARY KEY (projection, topic, partition)
        );
        -- The last stream version each projection applied: a republished duplicate is skipped.
        CREATE TABLE {schema}.projection_streams (
            projection text NOT NULL,
            stream_id  text NOT NULL,
            version    integer NOT NULL,
            PRIMARY KEY (projection, stream_id)
        );
        -- Records a consumer could not process, kept with their reason; published to the DLQ.
        CREATE TABLE {schema}.dead_letters (
            id           bigserial PRIMARY KEY,
            consumer     text NOT NULL,
            topic        text NOT NULL,
            partition    integer NOT NULL,
            kafka_offset bigint NOT NULL,
            key          bytea,
            value        bytea,
            headers      jsonb NOT NULL,
            reason       text NOT NULL,
            failed_at    timestamptz NOT NULL,
            published    boolean NOT NULL DEFAULT false,
            redriven_at  timestamptz,
            UNIQUE (consumer, topic, partition, kafka_offset)
        );
        """,
    ),
    Migration(
        "0003_command_requests",
        """
        -- What a retry needs: the request's fingerprint (a key reused for another request is
        -- refused) and the answer given the first time, committed with the command's events.
        ALTER TABLE {schema}.commands ADD COLUMN fingerprint text, ADD COLUMN response jsonb;
        """,
    ),
    Migration(
        "0004_outbox_traceparent",
        """
        -- The trace of the command that appended the event, continued by the relay's publish.
        ALTER TABLE {schema}.outbox ADD COLUMN traceparent text;
        """,
    ),
)


async def migrate(conn: DbConnection, schema: str, steps: Sequence[Migration]) -> list[str]:
    """Apply the steps not yet recorded, each in its own transaction; return the names applied."""
    await conn.execute(
        f"CREATE TABLE IF NOT EXISTS {schema}.schema_migrations "
        "(name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    applied = []
    for step in steps:
        async with conn.transaction():
            # Serialises concurrent migrators (two pods starting at once).
            await conn.execute(f"LOCK TABLE {schema}.schema_migrations IN EXCLUSIVE MODE")
            done = await conn.fetchval(
                f"SELECT 1 FROM {schema}.schema_migrations WHERE name = $1", step.name
            )
            if done:
                continue
            await conn.execute(step.sql.replace("{schema}", schema))
            await conn.execute(
                f"INSERT INTO {schema}.schema_migrations (name) VALUES ($1)", step.name
            )
            applied.append(step.name)
    return applied
