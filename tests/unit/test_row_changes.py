"""Consecutive changes of one shape become one statement touching each row once, ending as the
changes in order would have left it."""

from __future__ import annotations

import pytest

from shared.projection.changes import Increment, Update, Upsert, merged_by_row

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
