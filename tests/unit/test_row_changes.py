"""Consecutive changes of one shape become one statement touching each row once, ending as the
changes in order would have left it."""

from __future__ import annotations

from itertools import groupby

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.projection.changes import Increment, RowChange, Update, Upsert, merged_by_row

pytestmark = pytest.mark.unit


def test_the_last_upsert_or_update_of_a_row_wins() -> None:
    upserts = [
        Upsert("cases", {"worker_id": 1}, {"level": "kelurahan"}),
        Upsert("cases", {"worker_id": 2}, {"level": "kelurahan"}),
        Upsert("cases", {"worker_id": 1}, {"level": "city"}),
    ]
    assert merged_by_row(upserts) == [upserts[2], upserts[1]]
    updates = [Update("cases", {"worker_id": 1}, {"n": n}) for n in range(3)]
    assert merged_by_row(updates) == [updates[-1]]


def test_increments_of_a_row_add_up() -> None:
    merged = merged_by_row(
        [
            Increment("totals", {"cohort": "regular"}, {"events": 1, "amount": 16_800}),
            Increment("totals", {"cohort": "incidental"}, {"events": 1, "amount": 16_800}),
            Increment("totals", {"cohort": "regular"}, {"events": 1, "amount": 33_600}),
        ]
    )
    assert merged == [
        Increment("totals", {"cohort": "regular"}, {"events": 2, "amount": 50_400}),
        Increment("totals", {"cohort": "incidental"}, {"events": 1, "amount": 16_800}),
    ]


Table = dict[tuple[object, ...], dict[str, int]]


def applied(table: Table, change: RowChange) -> None:
    """What PostgreSQL does with one change (as ``execute_changes`` sends it), in memory."""
    key = tuple(change.key.values())
    if isinstance(change, Upsert):
        table[key] = {**table.get(key, {}), **change.values}
    elif isinstance(change, Update):
        if key in table:
            table[key] = {**table[key], **change.values}
    elif isinstance(change, Increment):
        row = table.setdefault(key, dict.fromkeys(change.amounts, 0))
        for column, amount in change.amounts.items():
            row[column] = row.get(column, 0) + amount


keys = st.integers(0, 3)
amounts = st.integers(-5, 5)
changes = st.lists(
    st.one_of(
        st.builds(lambda k, v: Upsert("t", {"id": k}, {"a": v}), keys, amounts),
        st.builds(lambda k, v: Update("t", {"id": k}, {"a": v}), keys, amounts),
        st.builds(lambda k, v: Increment("t", {"id": k}, {"a": v}), keys, amounts),
    ),
    max_size=30,
)


@given(changes)
def test_a_run_merged_by_row_leaves_the_table_as_the_changes_one_by_one(
    run: list[RowChange],
) -> None:
    one_by_one: Table = {}
    for change in run:
        applied(one_by_one, change)
    merged: Table = {}
    for _, group in groupby(run, key=lambda c: (type(c), c.table)):
        for change in merged_by_row(list(group)):
            applied(merged, change)
    assert merged == one_by_one
