"""Refill a service's event store from its own topic, after its database was lost.

The topic holds every event exactly as the store recorded it (the relay publishes the stored
body), so the store is rebuilt byte for byte: events, each stream's version and last hash, and
the idempotency keys of reactions (derived from their causing event, which every reaction
names). Keys that clients chose for their HTTP commands are not on the topic: a client retrying
a command from before the loss is refused by the domain's own rules (a NIK registered once, a
month invoiced once, a payment reference used once) rather than by its key.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from shared.db import DbConnection
from shared.eventstore.store import insert_events, reaction_key
from shared.settings import KafkaSettings
from shared.topic_reader import read_topics


class StoreNotEmptyError(Exception):
    def __init__(self, schema: str, events: int) -> None:
        super().__init__(
            f"{schema}.events already holds {events} events: a restore only fills an empty "
            "store (restore into a fresh database, or drop the schema first)"
        )


@dataclass(frozen=True)
class Restored:
    events: int
    streams: int
    reactions: int
    republished: int  # records the relay published twice (after a crash), stored once


async def restore_store(
    conn: DbConnection,
    schema: str,
    topic: str,
    kafka: KafkaSettings,
    progress: Callable[[int], None] = lambda _: None,
) -> Restored:
    """Inside the caller's transaction: all of the store comes back, or none of it."""
    present = int(await conn.fetchval(f"SELECT count(*) FROM {schema}.events"))
    if present:
        raise StoreNotEmptyError(schema, present)
    read = 0
    async for batch in read_topics(kafka, [topic]):
        bodies = [(record.value or b"").decode() for record in batch]
        envelopes = [orjson.loads(body) for body in bodies]
        await insert_events(conn, schema, envelopes, bodies, "ON CONFLICT DO NOTHING")
        read += len(batch)
        progress(len(batch))
    events = int(await conn.fetchval(f"SELECT count(*) FROM {schema}.events"))
    streams = await _restore_streams(conn, schema)
    reactions = await _restore_reaction_keys(conn, schema)
    return Restored(events, streams, reactions, read - events)


async def _restore_streams(conn: DbConnection, schema: str) -> int:
    await conn.execute(
        f"INSERT INTO {schema}.streams (stream_id, version, last_hash) "
        f"SELECT DISTINCT ON (stream_id) stream_id, stream_version, hash FROM {schema}.events "
        "ORDER BY stream_id, stream_version DESC"
    )
    return int(await conn.fetchval(f"SELECT count(*) FROM {schema}.streams"))


async def _restore_reaction_keys(conn: DbConnection, schema: str) -> int:
    rows = await conn.fetch(
        f"SELECT stream_id, stream_version, event_id, recorded_at, body FROM {schema}.events "
        "WHERE body::jsonb ->> 'causation_id' IS NOT NULL "
        "AND body::jsonb -> 'actor' ->> 'role' = 'system' ORDER BY stream_id, stream_version"
    )
    commands: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = reaction_key(orjson.loads(row["body"])["causation_id"])
        command = commands.setdefault(key, _command(row))
        command["event_ids"].append(row["event_id"])
        command["last_version"] = row["stream_version"]
    await conn.executemany(
        f"INSERT INTO {schema}.commands (idempotency_key, stream_id, event_ids, first_version, "
        "last_version, recorded_at) VALUES ($1, $2, $3, $4, $5, $6)",
        [_command_row(key, command) for key, command in commands.items()],
    )
    return len(commands)


def _command(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "stream_id": row["stream_id"],
        "event_ids": [],
        "first_version": row["stream_version"],
        "recorded_at": row["recorded_at"],
    }


def _command_row(key: str, command: dict[str, Any]) -> Sequence[Any]:
    return (
        key,
        command["stream_id"],
        command["event_ids"],
        command["first_version"],
        command["last_version"],
        command["recorded_at"],
    )
