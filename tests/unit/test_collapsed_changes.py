"""A projection's batch collapsed per row (one write per row and round, one statement per shape)
leaves every table as the changes applied one by one would, whether a row existed before or not.
The reordering between rows this needs is sound only while no projection table constrains rows
other than by its own key, which is held here too."""

from __future__ import annotations

import re
from itertools import groupby
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.catalog import PROJECTIONS
from shared.projection.changes import (
    Delete,
    Increment,
    RowChange,
    Update,
    Upsert,
    collapsed,
    merged_by_row,
)

pytestmark = pytest.mark.unit

Row = dict[str, Any]
Tables = dict[tuple[str, tuple[Any, ...]], Row]


def applied(tables: Tables, change: RowChange) -> None:
    """What PostgreSQL does with one change, in memory; a column never set holds its default
    (None here), and a default plus an amount stays what the default makes it (NULL + n)."""
    key = (change.table, tuple(change.key.values()))
    row = tables.get(key)
    if isinstance(change, Delete):
        tables.pop(key, None)
    elif isinstance(change, Upsert):
        tables[key] = {**(row or {}), **change.values}
    elif isinstance(change, Update):
        if row is not None:
            tables[key] = {**row, **change.values}
    elif row is None:
        tables[key] = dict(change.amounts)
    else:
        for column, amount in change.amounts.items():
            before = row.get(column)
            row[column] = None if before is None else before + amount


tables = st.sampled_from(["cases", "totals"])
keys = st.fixed_dictionaries({"id": st.integers(0, 3)})
values = st.dictionaries(
    st.sampled_from(["a", "b", "c"]), st.one_of(st.none(), st.integers(-5, 5)), max_size=3
)
amounts = st.dictionaries(st.sampled_from(["a", "b"]), st.integers(-5, 5), min_size=1)
changes = st.lists(
    st.one_of(
        st.builds(Upsert, tables, keys, values),
        st.builds(Update, tables, keys, values),
        st.builds(Increment, tables, keys, amounts),
        st.builds(Delete, tables, keys),
    ),
    max_size=40,
)
existing = st.dictionaries(
    st.tuples(tables, st.tuples(st.integers(0, 3))),
    st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(-5, 5)),
    max_size=8,
)


@given(existing, changes)
def test_collapsed_changes_leave_the_tables_as_the_changes_one_by_one(
    before: Tables, batch: list[RowChange]
) -> None:
    one_by_one = {key: dict(row) for key, row in before.items()}
    for change in batch:
        applied(one_by_one, change)
    # As execute_changes sends them: each run of one shape as one statement.
    written = {key: dict(row) for key, row in before.items()}
    for _, run in groupby(collapsed(batch), key=shape):
        for change in merged_by_row(list(run)):
            applied(written, change)
    assert written == one_by_one


def shape(change: RowChange) -> tuple[Any, ...]:
    columns = change.amounts if isinstance(change, Increment) else getattr(change, "values", {})
    return (type(change), change.table, tuple(change.key), tuple(columns))


def test_many_events_of_one_row_become_one_write() -> None:
    worker = {"worker_id": 7}
    batch: list[RowChange] = [
        Upsert("cases", worker, {"status": "registered", "level": None}),
        Update("cases", worker, {"level": "kelurahan"}),
        Upsert("cases", worker, {"level": "city"}),
        Increment("budgets", {"year": 2026}, {"designated": 1}),
        Upsert("cases", {"worker_id": 8}, {"status": "registered", "level": None}),
        Increment("budgets", {"year": 2026}, {"designated": 1}),
    ]
    assert collapsed(batch) == [
        Increment("budgets", {"year": 2026}, {"designated": 2}),
        Upsert("cases", worker, {"status": "registered", "level": "city"}),
        Upsert("cases", {"worker_id": 8}, {"status": "registered", "level": None}),
    ]


def test_a_row_deleted_then_written_again_takes_two_rounds() -> None:
    row = {"id": 1}
    batch: list[RowChange] = [
        Upsert("t", row, {"a": 1}),
        Delete("t", row),
        Increment("t", row, {"b": 2}),
    ]
    assert collapsed(batch) == [Delete("t", row), Increment("t", row, {"b": 2})]
    assert collapsed([*batch, Delete("t", row)]) == [Delete("t", row)]


@pytest.mark.parametrize(
    "projection", [p for ps in PROJECTIONS.values() for p in ps], ids=lambda p: p.name
)
def test_projection_rows_constrain_nothing_but_their_own_key(projection: Any) -> None:
    for migration in projection.migrations:
        sql = re.sub(r"--[^\n]*", "", migration.sql).upper()
        assert "REFERENCES" not in sql, migration.name
        assert "UNIQUE" not in sql, migration.name
