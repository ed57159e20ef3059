"""An example consumer of Berlian's events, as another city service would write it.

It keeps a small coverage register (who is registered where, and who is covered until when)
from the enrolment topic, using only a Kafka client and SQLite: nothing of Berlian's code, only
its published contract (docs/consuming.md). It follows each rule a consumer must:

- **dedup by event id**: an event already processed (the relay may publish one twice) is
  skipped, and so is a stream version at or below the last one applied;
- **order per key**: one partition at a time, in offset order, so a stream's events (all under
  one key) are applied in the order they were written;
- **upcasting**: a ``WorkerRegistered`` of version 1 is brought up to version 2 before use;
- **tolerant reading**: event types it does not know are passed over, and fields it does not
  know are ignored (it reads the fields it needs, nothing else);
- **exactly-once effect**: each event's effect, its event id and the next offset are committed
  in one SQLite transaction, and on start it continues from the offsets it stored.

Run it against the local stack::

    python -m examples.coverage_register --bootstrap 127.0.0.1:9092 --prefix berlian. \\
        --database coverage.sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

SCHEMA = """
CREATE TABLE IF NOT EXISTS positions (topic TEXT, partition INTEGER, next_offset INTEGER,
                                      PRIMARY KEY (topic, partition));
CREATE TABLE IF NOT EXISTS processed (event_id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS streams (stream_id TEXT PRIMARY KEY, version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS workers (worker_id TEXT PRIMARY KEY, kelurahan_code TEXT NOT NULL,
                                    registered_via TEXT NOT NULL, covered_until TEXT);
"""


@dataclass
class Tally:
    applied: int = 0
    duplicates: int = 0
    passed_over: int = 0  # event types this consumer does not know or need


def upcast_worker_registered(version: int, data: dict[str, Any]) -> dict[str, Any]:
    """Version 1's ``source`` was the channel's name; version 2 made it an object."""
    if version == 1:
        return {**data, "source": {"channel": data["source"], "batch_id": None, "row": None}}
    return data


def on_worker_registered(db: sqlite3.Connection, version: int, data: dict[str, Any]) -> None:
    data = upcast_worker_registered(version, data)
    db.execute(
        "INSERT INTO workers (worker_id, kelurahan_code, registered_via) VALUES (?, ?, ?) "
        "ON CONFLICT (worker_id) DO UPDATE SET kelurahan_code = excluded.kelurahan_code",
        (data["worker_id"], data["kelurahan_code"], data["source"]["channel"]),
    )


def on_coverage_started(db: sqlite3.Connection, version: int, data: dict[str, Any]) -> None:
    db.execute(
        "UPDATE workers SET covered_until = ? WHERE worker_id = ?",
        (data["end_date"], data["worker_id"]),
    )


def on_coverage_ended(db: sqlite3.Connection, version: int, data: dict[str, Any]) -> None:
    db.execute(
        "UPDATE workers SET covered_until = ? WHERE worker_id = ?",
        (data["end_date"], data["worker_id"]),
    )


Handler = Callable[[sqlite3.Connection, int, dict[str, Any]], None]
# The (event type, versions) this consumer understands; anything else is passed over.
HANDLERS: dict[str, tuple[frozenset[int], Handler]] = {
    "WorkerRegistered": (frozenset({1, 2}), on_worker_registered),
    "CoverageStarted": (frozenset({1}), on_coverage_started),
    "CoverageEnded": (frozenset({1}), on_coverage_ended),
}


def open_register(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(SCHEMA)
    return db


def apply_record(
    db: sqlite3.Connection, topic: str, partition: int, offset: int, value: bytes, tally: Tally
) -> None:
    """One record's effect, its event id and the next offset, in one transaction."""
    envelope = json.loads(value)
    db.execute("BEGIN")
    try:
        _apply_envelope(db, envelope, tally)
        db.execute(
            "INSERT INTO positions VALUES (?, ?, ?) ON CONFLICT (topic, partition) "
            "DO UPDATE SET next_offset = excluded.next_offset",
            (topic, partition, offset + 1),
        )
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _apply_envelope(db: sqlite3.Connection, envelope: dict[str, Any], tally: Tally) -> None:
    event_id, stream = envelope["event_id"], envelope["stream_id"]
    seen = db.execute("SELECT 1 FROM processed WHERE event_id = ?", (event_id,)).fetchone()
    last = db.execute("SELECT version FROM streams WHERE stream_id = ?", (stream,)).fetchone()
    if seen or (last is not None and envelope["stream_version"] <= last[0]):
        tally.duplicates += 1
        return
    db.execute("INSERT INTO processed VALUES (?)", (event_id,))
    db.execute(
        "INSERT INTO streams VALUES (?, ?) ON CONFLICT (stream_id) "
        "DO UPDATE SET version = excluded.version",
        (stream, envelope["stream_version"]),
    )
    known = HANDLERS.get(envelope["event_type"])
    if known is None or envelope["schema_version"] not in known[0]:
        # A type (or a version) this consumer does not need: pass over it. A consumer that
        # needs every version of a type it reads would stop here and alert instead.
        tally.passed_over += 1
        return
    known[1](db, envelope["schema_version"], envelope["data"])
    tally.applied += 1


async def partitions_of(bootstrap: str, topic: str) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(TopicPartition(topic, p["partition"]) for p in described["partitions"])


async def consume(bootstrap: str, prefix: str, database: Path) -> Tally:
    """Read the enrolment topic from the stored offsets up to its current end."""
    topic = f"{prefix}enrolment.events"
    db = open_register(database)
    tally = Tally()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        partitions = await partitions_of(bootstrap, topic)
        consumer.assign(partitions)
        stored = {(t, p): o for t, p, o in db.execute("SELECT * FROM positions").fetchall()}
        for tp in partitions:
            if (tp.topic, tp.partition) in stored:
                consumer.seek(tp, stored[(tp.topic, tp.partition)])
            else:
                await consumer.seek_to_beginning(tp)
        ends = await consumer.end_offsets(partitions)
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            batches = await consumer.getmany(timeout_ms=500)
            for tp, records in batches.items():
                for record in records:  # in offset order: a key's events in their order
                    if record.value is not None:
                        apply_record(db, tp.topic, tp.partition, record.offset, record.value, tally)
    finally:
        await consumer.stop()
        db.close()
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--prefix", default="berlian.")
    parser.add_argument("--database", type=Path, default=Path("coverage.sqlite"))
    args = parser.parse_args()
    tally = asyncio.run(consume(args.bootstrap, args.prefix, args.database))
    print(
        f"applied {tally.applied}, duplicates skipped {tally.duplicates}, "
        f"passed over {tally.passed_over}"
    )


if __name__ == "__main__":
    main()
