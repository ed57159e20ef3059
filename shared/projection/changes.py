"""Row changes: what a projection asks for, as plain data, and how they reach PostgreSQL.

A projection is a pure function from an event to row changes; the runner executes them in the
transaction that also records the consumed position. Consecutive changes of the same shape go
to the database as one batched statement, in order, so a row touched twice ends as the last
change says.
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
            *([_arguments(c)[i] for c in batch] for i in range(len(columns))),
        )


def merged_by_row(batch: list[RowChange]) -> list[RowChange]:
    """One change per row, as the run in order would leave it: the last upsert or update of a
    row wins, increments of a row add up. A statement may touch each row only once."""
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
