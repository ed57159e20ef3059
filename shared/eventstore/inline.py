"""Inline projections: the write-side tables a service decides on (the NIK index, designation
counts, invoices and their lines, the claim registry), kept from the service's own events inside
the transaction that appends them.

Declared once per table, they serve twice: the command handler applies each event it appends,
and a restore replays the whole store through them, so the tables after a restore are what the
live appends made. Each projection's ``apply`` is a pure function of the event (and, for sealed
personal data, of what ``changes`` opened first) to row changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from pydantic import BaseModel

from shared.catalogue import EventCatalogue, parse_envelope
from shared.db import DbConnection
from shared.envelope import Envelope
from shared.projection.changes import RowChange, execute_changes


@dataclass(frozen=True)
class Appended:
    """An event as the store recorded it: its envelope and its parsed data."""

    envelope: Envelope
    data: BaseModel

    @classmethod
    def of(
        cls, raw: Mapping[str, Any], catalogue: EventCatalogue, decided: BaseModel | None = None
    ) -> Appended:
        """``decided``: the data as the domain decided it, for an event appended just now; taken
        as it is when it is of its type's current model (what parsing its dump would give)."""
        if decided is not None and type(decided) is catalogue.event_type(raw["event_type"]).model:
            return cls(parse_envelope(raw), decided)
        envelope, data = catalogue.parse(raw)
        return cls(envelope, data)


class InlineProjection(Protocol):
    @property
    def event_types(self) -> frozenset[str]: ...

    async def changes(self, conn: DbConnection, events: Sequence[Appended]) -> Sequence[RowChange]:
        """The row changes of these events (all of its types), in their order; inside the
        append's (or the restore's) transaction. Given a batch at once, so that what the
        changes need from the database is read once for all of them."""
        ...

    async def restored(self, conn: DbConnection) -> None:
        """After a replay of the whole store: what rows cannot say (a sequence's position)."""
        ...


async def apply_inline(
    conn: DbConnection,
    schema: str,
    projections: Sequence[InlineProjection],
    events: Sequence[Appended],
) -> None:
    changes: list[RowChange] = []
    for projection in projections:
        mine = [event for event in events if event.envelope.event_type in projection.event_types]
        if mine:
            changes += await projection.changes(conn, mine)
    await execute_changes(conn, schema, changes)


async def replay_inline(
    conn: DbConnection,
    schema: str,
    projections: Sequence[InlineProjection],
    catalogue: EventCatalogue,
    batch: int = 2000,
) -> int:
    """Rebuild the inline projections from every event in the store, inside the caller's
    transaction. Returns the number of events read.

    In the order the events were recorded, not by position: a restored store holds them in the
    order its topic was read, partition by partition, where an invoice's payment (keyed by the
    worker) can come before the invoice (keyed by its stream)."""
    read, events = 0, []
    query = f"SELECT body FROM {schema}.events ORDER BY recorded_at, stream_id, stream_version"
    async for row in conn.cursor(query, prefetch=batch):
        events.append(Appended.of(orjson.loads(row["body"]), catalogue))
        if len(events) == batch:
            await apply_inline(conn, schema, projections, events)
            read, events = read + len(events), []
    await apply_inline(conn, schema, projections, events)
    for projection in projections:
        await projection.restored(conn)
    return read + len(events)
