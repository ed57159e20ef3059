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
        "0003_sequenced_dead_letters",
        """
        -- A dead letter names its stream when its envelope could be trusted: later events of
        -- that stream are parked behind it (parked = true) instead of applied on a gap.
        -- A letter leaves the queue once resolved: applied on re-drive, skipped by an operator
        -- (who and why), found already applied (the stream moved on), not read by the
        -- projection, or replaced by a rebuild that read its record again.
        ALTER TABLE {schema}.dead_letters RENAME COLUMN redriven_at TO resolved_at;
        ALTER TABLE {schema}.dead_letters
            ADD COLUMN stream_id       text,
            ADD COLUMN stream_version  integer,
            ADD COLUMN parked          boolean NOT NULL DEFAULT false,
            ADD COLUMN resolution      text CHECK (resolution IN
                ('applied', 'skipped', 'moved_on', 'not_read', 'replaced')),
            ADD COLUMN resolved_by     text,
            ADD COLUMN resolution_note text;
        -- Before sequencing, a re-driven letter was one the writer took again: applied.
        UPDATE {schema}.dead_letters SET resolution = 'applied' WHERE resolved_at IS NOT NULL;
        ALTER TABLE {schema}.dead_letters
            ADD CONSTRAINT dead_letters_resolved_with_resolution
                CHECK ((resolved_at IS NULL) = (resolution IS NULL));
        ALTER TABLE {schema}.dead_letters
            DROP CONSTRAINT dead_letters_consumer_topic_partition_kafka_offset_key;
        -- A record is waiting at most once; resolved letters stay as history.
        CREATE UNIQUE INDEX dead_letters_waiting_record ON {schema}.dead_letters
            (consumer, topic, partition, kafka_offset) WHERE resolved_at IS NULL;
        -- A stream version waits at most once (a republished copy is not parked again), and
        -- the writer finds a batch's parked streams through this index.
        CREATE UNIQUE INDEX dead_letters_waiting_stream ON {schema}.dead_letters
            (consumer, stream_id, stream_version) WHERE resolved_at IS NULL;
        """,
    ),
    Migration(
        "0004_outbox_traceparent",
        """
        -- The trace of the command that appended the event, continued by the relay's publish.
        ALTER TABLE {schema}.outbox ADD COLUMN traceparent text;
        """,
    ),
    Migration(
        "0005_outbox_parked",
        """
        -- Events the broker refused for good (too large, invalid), and those of their stream
        -- behind them: kept with the reason, out of the relay's way, never deleted.
        CREATE TABLE {schema}.outbox_parked (
            position  bigint PRIMARY KEY REFERENCES {schema}.events (position),
            reason    text NOT NULL,
            parked_at timestamptz NOT NULL DEFAULT now()
        );
        """,
    ),
    Migration(
        "0006_heads_only_forward",
        """
        -- A service may move a stream's head and fill in an idempotency record once; the
        -- database refuses anything else, whoever asks (privileges keep the rest read-only).
        CREATE OR REPLACE FUNCTION {schema}.head_only_forward() RETURNS trigger
            LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.version <= OLD.version THEN
                RAISE EXCEPTION 'stream % is at version %: its head only moves forward',
                    OLD.stream_id, OLD.version USING ERRCODE = 'insufficient_privilege';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER head_only_forward BEFORE UPDATE ON {schema}.streams
            FOR EACH ROW EXECUTE FUNCTION {schema}.head_only_forward();
        CREATE OR REPLACE FUNCTION {schema}.recorded_once() RETURNS trigger
            LANGUAGE plpgsql AS $$
        BEGIN
            IF OLD.first_version <> 0 THEN
                RAISE EXCEPTION 'command % is recorded already', OLD.idempotency_key
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER recorded_once BEFORE UPDATE ON {schema}.commands
            FOR EACH ROW EXECUTE FUNCTION {schema}.recorded_once();
        """,
    ),
    Migration(
        "0007_command_answer_once",
        """
        -- A recorded command gets its answer once, in the transaction of its events (what a
        -- retry receives); nothing else of it changes after.
        CREATE OR REPLACE FUNCTION {schema}.recorded_once() RETURNS trigger
            LANGUAGE plpgsql AS $$
        BEGIN
            IF OLD.first_version <> 0 AND NOT (
                OLD.response IS NULL AND NEW.response IS NOT NULL
                AND NEW.event_ids IS NOT DISTINCT FROM OLD.event_ids
                AND NEW.first_version = OLD.first_version
                AND NEW.last_version = OLD.last_version
            ) THEN
                RAISE EXCEPTION 'command % is recorded already', OLD.idempotency_key
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            RETURN NEW;
        END $$;
        """,
    ),
    Migration(
        "0008_request_answers",
        """
        -- The whole answer of a batched request (every item: done, or refused and why), under
        -- the request's key, committed with what its items appended: a retry receives it and
        -- decides nothing again, not even the items the first attempt refused.
        CREATE TABLE {schema}.request_answers (
            idempotency_key text PRIMARY KEY,
            fingerprint     text,
            response        jsonb NOT NULL,
            recorded_at     timestamptz NOT NULL DEFAULT now()
        );
        """,
    ),
    Migration(
        "0009_append_command",
        """
        -- A command's whole append in one call, so that it costs one round trip: claim its
        -- idempotency key, lock (or create) the heads of its streams in stream order, check
        -- each is still at the version and hash the caller sealed after, then write the
        -- events, their outbox rows, the new heads and the commands' records with their
        -- answers, and wake the relay. Nothing is written when the key was taken ('taken':
        -- the first command's record) or a stream moved on ('moved': its head now); the
        -- caller's transaction, which holds the claim, is then rolled back. It runs with the
        -- caller's rights (not the owner's), so a service can do through it only what its
        -- login may do anyway.
        CREATE OR REPLACE FUNCTION {schema}.append_command(
            claim_key text, claim_stream text, claim_fingerprint text,
            head_ids text[], head_versions integer[], head_hashes text[],
            e_ids uuid[], e_streams text[], e_versions integer[], e_types text[],
            e_schemas integer[], e_workers uuid[], e_recorded timestamptz[], e_hashes text[],
            e_bodies text[], trace text,
            r_keys text[], r_firsts integer[], r_lasts integer[], r_responses text[],
            r_event_keys text[], r_event_ids uuid[], channel text
        ) RETURNS TABLE (outcome text, stream_id text, version integer, event_ids uuid[],
            first_version integer, last_version integer, fingerprint text, response jsonb)
        LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
        #variable_conflict use_column
        BEGIN
            -- unnest pads shorter arrays with NULLs: heads must come whole.
            IF cardinality(head_ids) IS DISTINCT FROM cardinality(head_versions)
                OR cardinality(head_ids) IS DISTINCT FROM cardinality(head_hashes) THEN
                RAISE EXCEPTION 'append_command: % heads with % versions and % hashes',
                    cardinality(head_ids), cardinality(head_versions), cardinality(head_hashes);
            END IF;
            IF claim_key IS NOT NULL THEN
                -- A concurrent first attempt holds the key's row: this waits for it to commit
                -- (then the key is taken) or roll back (then it is ours).
                INSERT INTO {schema}.commands (idempotency_key, stream_id, event_ids,
                    first_version, last_version, recorded_at, fingerprint)
                VALUES (claim_key, claim_stream, '{}', 0, 0, now(), claim_fingerprint)
                ON CONFLICT (idempotency_key) DO NOTHING;
                IF NOT FOUND THEN
                    RETURN QUERY SELECT 'taken', c.stream_id, NULL::integer, c.event_ids,
                        c.first_version, c.last_version, c.fingerprint, c.response
                    FROM {schema}.commands AS c WHERE c.idempotency_key = claim_key;
                    RETURN;
                END IF;
            END IF;
            INSERT INTO {schema}.streams (stream_id, version, last_hash)
            SELECT s, 0, repeat('0', 64) FROM unnest(head_ids) AS s ORDER BY s
            ON CONFLICT (stream_id) DO NOTHING;
            RETURN QUERY
            WITH locked AS (
                SELECT s.stream_id, s.version, s.last_hash FROM {schema}.streams AS s
                WHERE s.stream_id = any(head_ids) ORDER BY s.stream_id FOR UPDATE)
            SELECT 'moved', l.stream_id, l.version, NULL::uuid[], NULL::integer,
                NULL::integer, NULL::text, NULL::jsonb
            FROM locked AS l
            JOIN unnest(head_ids, head_versions, head_hashes) AS h(stream_id, version, last_hash)
                ON h.stream_id = l.stream_id
            WHERE l.version IS DISTINCT FROM h.version
                OR l.last_hash::text IS DISTINCT FROM h.last_hash
            ORDER BY l.stream_id LIMIT 1;
            IF FOUND THEN
                RETURN;
            END IF;
            WITH appended AS (
                INSERT INTO {schema}.events (event_id, stream_id, stream_version, event_type,
                    schema_version, worker_id, recorded_at, hash, body)
                SELECT * FROM unnest(e_ids, e_streams, e_versions, e_types, e_schemas,
                    e_workers, e_recorded, e_hashes, e_bodies)
                RETURNING position)
            INSERT INTO {schema}.outbox (position, traceparent)
            SELECT position, trace FROM appended;
            -- Each stream's head: its last event now.
            UPDATE {schema}.streams AS s SET version = h.version, last_hash = h.last_hash
            FROM (SELECT DISTINCT ON (e.stream_id) e.stream_id, e.version, e.last_hash
                  FROM unnest(e_streams, e_versions, e_hashes) AS e(stream_id, version, last_hash)
                  ORDER BY e.stream_id, e.version DESC) AS h
            WHERE s.stream_id = h.stream_id;
            UPDATE {schema}.commands AS c SET event_ids = i.event_ids,
                first_version = r.first_version, last_version = r.last_version,
                response = r.response::jsonb
            FROM unnest(r_keys, r_firsts, r_lasts, r_responses)
                AS r(idempotency_key, first_version, last_version, response)
            JOIN (SELECT e.idempotency_key, array_agg(e.event_id ORDER BY e.n) AS event_ids
                  FROM unnest(r_event_keys, r_event_ids) WITH ORDINALITY
                      AS e(idempotency_key, event_id, n)
                  GROUP BY e.idempotency_key) AS i ON i.idempotency_key = r.idempotency_key
            WHERE c.idempotency_key = r.idempotency_key;
            PERFORM pg_notify(channel, '');
            RETURN QUERY SELECT 'appended', NULL::text, NULL::integer, NULL::uuid[],
                NULL::integer, NULL::integer, NULL::text, NULL::jsonb;
        END $$;
        -- Functions are everyone's to call by default: this one only the service's login's
        -- (shared.privileges).
        REVOKE ALL ON FUNCTION {schema}.append_command FROM PUBLIC;
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
