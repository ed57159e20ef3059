"""A worker's history from raw envelopes, and what separates two as-of states: pure."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from services.audit.asof import Change, Figure, Moment, State, differences, explaining_events
from services.audit.history import entries

pytestmark = pytest.mark.unit
WORKER = "8d0c2f4e-0000-4000-8000-000000000001"
COVERAGE = "8d0c2f4e-0000-4000-8000-0000000000c1"


def envelope(event_type: str, recorded: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_type": event_type,
        "recorded_at": recorded,
        "occurred_at": recorded,
        "actor": {"id": "officer-1", "role": "billing_officer"},
        "policy_version": "2023.1",
        "worker_id": WORKER,
        "data": {"worker_id": WORKER, **data},
    }


PAID_LATE = envelope(
    "PremiumPaid", "2025-03-20T09:00:00+00:00", {"period": "2025-01", "paid_on": "2025-03-20"}
)
LOG = [
    # Given out of order, as read from several topics.
    ("billing", 0, 7, PAID_LATE),
    (
        "enrolment",
        1,
        0,
        envelope(
            "WorkerRegistered",
            "2024-12-01T08:00:00+00:00",
            {"personal": {"key_id": "k", "alg": "AES-256-GCM", "ciphertext": "x"}},
        ),
    ),
    (
        "enrolment",
        1,
        1,
        envelope(
            "CoverageStarted",
            "2024-12-20T08:00:00+00:00",
            {"coverage_id": COVERAGE, "start_date": "2025-01-01", "end_date": "2025-12-31"},
        ),
    ),
]


def test_a_history_is_in_recorded_order_with_the_standing_after_each_event() -> None:
    history = entries(LOG)

    assert [e.event_type for e in history] == [
        "WorkerRegistered",
        "CoverageStarted",
        "PremiumPaid",
    ]
    assert history[0].details["personal"] == "(sealed)"
    assert history[0].standing.status == "NOT_COVERED"
    # Paid on 20 March for January: March itself is still unpaid, within grace.
    assert history[2].on == date(2025, 3, 20)
    assert history[2].standing.status == "GRACE"
    assert history[2].standing.arrears == ("2025-02", "2025-03")
    assert history[2].actor == "billing_officer:officer-1"


def test_the_events_between_two_moments_are_those_known_only_at_the_later() -> None:
    before = Moment(known_at=datetime(2025, 3, 1, tzinfo=UTC))
    after = Moment(known_at=datetime(2025, 4, 1, tzinfo=UTC))

    assert explaining_events([e for *_, e in LOG], before, after) == [PAID_LATE]


def figure(rows: list[list[Any]]) -> Figure:
    return Figure("premiums due and paid", "SELECT ...", ["fiscal_year", "cohort", "arrears"], rows)


def test_differences_pair_rows_by_their_key_columns() -> None:
    a = State(
        "a", Moment(), {}, figures={"premiums due and paid": figure([[2025, "regular", 100]])}
    )
    b = State(
        "b",
        Moment(),
        {},
        figures={"premiums due and paid": figure([[2025, "regular", 0], [2025, "incidental", 5]])},
    )

    assert differences(a, b) == [
        Change("premiums due and paid", [2025, "incidental"], None, [5]),
        Change("premiums due and paid", [2025, "regular"], [100], [0]),
    ]
