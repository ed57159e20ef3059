"""Row changes: what a projection asks for, as plain data, and how they reach PostgreSQL.

A projection is a pure function from an event to row changes; the runner executes them in the
transaction that also records the consumed position. Consecutive changes of the same shape go
to the database as one batched statement, in order, so a row touched twice ends as the last
change says.

A projection's batch goes through :func:`collapsed` first: each row's changes are composed into
its final change where the composition is exact (two upserts, an upsert then updates, counters
added up, anything then a delete), so the many events of one worker become one row write, and
the changes are sorted into rounds of one statement per shape. That reorders changes between
rows, which is sound because a projection's rows constrain nothing but their own keys (no
foreign key or other unique column: ``tests/unit/test_collapsed_changes.py`` holds every
projection to that). The write side's inline tables do reference each other, so their changes
keep their order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from shared.db import DbConnection


@dataclass(frozen=True)
class Upsert:
    """Insert the row, or update the given columns of the row with this key."""

    table: str
    key: Mapping[str, Any]
    values: Mapping[str, Any]


@dataclass(frozen=True)
class Update:
    """Set columns of the existing row with this key (no row: no change).

    For partial changes to rows with required columns, which an upsert cannot express:
    PostgreSQL checks the would-be inserted row's constraints before it finds the conflict.
    """

    table: str
    key: Mapping[str, Any]
    values: Mapping[str, Any]


@dataclass(frozen=True)
class Increment:
    """Add to counters of the row with this key (created at the amounts when absent).

    Not idempotent by nature: it is what makes exactly-once application matter.
    """

    table: str
    key: Mapping[str, Any]
    amounts: Mapping[str, int]


@dataclass(frozen=True)
class Delete:
    table: str
    key: Mapping[str, Any]


RowChange = Upsert | Update | Increment | Delete


def _columns(change: RowChange) -> Mapping[str, Any]:
    if isinstance(change, Upsert | Update):
        return change.values
    if isinstance(change, Increment):
        return change.amounts
    return {}


def _shape(change: RowChange) -> tuple[Any, ...]:
    return (type(change), change.table, tuple(change.key), tuple(_columns(change)))


def _statement(schema: str, change: RowChange) -> str:
    table = f"{schema}.{change.table}"
    keys = list(change.key)
    if isinstance(change, Delete):
        where = " AND ".join(f"{k} = ${i}" for i, k in enumerate(keys, start=1))
        return f"DELETE FROM {table} WHERE {where}"
    if isinstance(change, Update):
        where = " AND ".join(f"{k} = ${i}" for i, k in enumerate(keys, start=1))
        sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(change.values, start=len(keys) + 1))
        return f"UPDATE {table} SET {sets} WHERE {where}"
    columns = keys + list(_columns(change))
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    conflict = ", ".join(keys)
    if isinstance(change, Increment):
        updates = ", ".join(f"{c} = {table}.{c} + EXCLUDED.{c}" for c in change.amounts)
        action = f"DO UPDATE SET {updates}"
    elif change.values:
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in change.values)
        action = f"DO UPDATE SET {updates}"
    else:
        action = "DO NOTHING"
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders}) "
        f"ON CONFLICT ({conflict}) {action}"
    )


def _arguments(change: RowChange) -> tuple[Any, ...]:
    return (*change.key.values(), *_columns(change).values())


async def execute_changes(conn: DbConnection, schema: str, changes: Sequence[RowChange]) -> None:
    for _, run in groupby(changes, key=_shape):
        batch = merged_by_row(list(run))
        if len(batch) == 1 or isinstance(batch[0], Delete):
            await conn.executemany(_statement(schema, batch[0]), [_arguments(c) for c in batch])
            continue
        types = await _column_types(conn, schema, batch[0].table)
        columns = [*batch[0].key, *_columns(batch[0])]
        await conn.execute(
            _bulk_statement(schema, batch[0], [types[c] for c in columns]),
            *(list(column) for column in zip(*map(_arguments, batch), strict=True)),
        )


def collapsed(changes: Sequence[RowChange]) -> list[RowChange]:
    """The changes, each row's composed into as few as exactly express them, in rounds: a
    round touches a row at most once, and holds its changes grouped by shape (one statement
    each). Counters, the rows that events of many partitions change, are sorted by key, so
    concurrent rebuilds lock them in the same order.

    Applied in the returned order, they leave every row as the changes one by one would.
    """
    by_row: dict[tuple[str, tuple[Any, ...]], list[RowChange]] = {}
    for change in changes:
        composed = by_row.setdefault((change.table, tuple(change.key.values())), [])
        if isinstance(change, Delete):
            composed[:] = [change]  # whatever came before, the row is gone
            continue
        merged = _composed(composed[-1], change) if composed else None
        if merged is None:
            composed.append(change)
        else:
            composed[-1] = merged
    ordered: list[RowChange] = []
    for depth in range(max((len(c) for c in by_row.values()), default=0)):
        shapes: dict[tuple[Any, ...], list[RowChange]] = {}
        for composed in by_row.values():
            if len(composed) > depth:
                shapes.setdefault(_shape(composed[depth]), []).append(composed[depth])
        for shape in sorted(shapes, key=repr):
            run = shapes[shape]
            ordered.extend(sorted(run, key=_key_order) if shape[0] is Increment else run)
    return ordered


def _key_order(change: RowChange) -> tuple[str, ...]:
    return tuple(map(str, change.key.values()))


def _composed(before: RowChange, after: RowChange) -> RowChange | None:
    """One change doing what ``before`` then ``after`` do to a row, whether the row exists or
    not; None when no single change does (the two are then written in two rounds). A delete
    after anything is the delete."""
    if isinstance(after, Delete):
        return after
    if isinstance(before, Delete):
        return before if isinstance(after, Update) else None  # no row left to update
    if isinstance(before, Upsert):
        if isinstance(after, Upsert | Update):
            return Upsert(after.table, after.key, {**before.values, **after.values})
        if set(after.amounts) <= set(before.values) and all(
            before.values[c] is not None
            for c in after.amounts  # NULL plus n stays NULL
        ):
            added = {c: before.values[c] + a for c, a in after.amounts.items()}
            return Upsert(after.table, after.key, {**before.values, **added})
        return None
    if isinstance(before, Update):
        if isinstance(after, Update):
            return Update(after.table, after.key, {**before.values, **after.values})
        if isinstance(after, Upsert) and set(before.values) <= set(after.values):
            return after  # every column the update set is set again, row or no row
        return None
    if isinstance(after, Increment) and set(after.amounts) <= set(before.amounts):
        amounts = {c: a + after.amounts.get(c, 0) for c, a in before.amounts.items()}
        return Increment(after.table, after.key, amounts)
    if isinstance(after, Upsert) and set(before.amounts) <= set(after.values):
        return after  # every counter is overwritten, row or no row
    return None


def merged_by_row(batch: list[RowChange]) -> list[RowChange]:
    """One change per row, as the run in order would leave it: the last upsert or update of a
    row wins, increments of a row add up. A statement may touch each row only once."""
    keys = [tuple(change.key.values()) for change in batch]
    if len(set(keys)) == len(keys):
        return batch  # each row once already (a collapsed batch)
    merged: dict[tuple[Any, ...], RowChange] = {}
    for change in batch:
        key = tuple(change.key.values())
        before = merged.get(key)
        if isinstance(change, Increment) and isinstance(before, Increment):
            amounts = {c: before.amounts[c] + change.amounts[c] for c in change.amounts}
            merged[key] = Increment(change.table, change.key, amounts)
        else:
            merged[key] = change
    return list(merged.values())


async def _column_types(conn: DbConnection, schema: str, table: str) -> dict[str, str]:
    rows = await conn.fetch(
        "SELECT attname, format_type(atttypid, atttypmod) AS type FROM pg_attribute "
        "WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped",
        f"{schema}.{table}",
    )
    return {row["attname"]: row["type"] for row in rows}


def _bulk_statement(schema: str, change: RowChange, types: list[str]) -> str:
    """The change's statement for many rows at once: one array parameter per column."""
    table = f"{schema}.{change.table}"
    keys, columns = list(change.key), [*change.key, *_columns(change)]
    rows = "unnest(" + ", ".join(f"${i}::{t}[]" for i, t in enumerate(types, start=1)) + ")"
    if isinstance(change, Update):
        sets = ", ".join(f"{c} = v.{c}" for c in change.values)
        where = " AND ".join(f"{table}.{k} = v.{k}" for k in keys)
        return f"UPDATE {table} SET {sets} FROM {rows} AS v({', '.join(columns)}) WHERE {where}"
    insert = _statement(schema, change)
    conflict = insert[insert.index(" ON CONFLICT") :]
    return f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM {rows}{conflict}"
