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
        batch = list(run)
        await conn.executemany(_statement(schema, batch[0]), [_arguments(c) for c in batch])
