"""Building sealed event chains for tests, the way the event store seals them."""

from __future__ import annotations

import uuid
from typing import Any

from shared.audit.chain import Location
from shared.envelope import GENESIS_HASH
from shared.hashing import compute_hash


def sealed_chain(stream_id: str, count: int, amount: int = 100) -> list[dict[str, Any]]:
    events = []
    prev_hash = GENESIS_HASH
    for version in range(1, count + 1):
        envelope: dict[str, Any] = {
            "event_id": str(uuid.uuid4()),
            "event_type": "BudgetAllocated",
            "schema_version": 1,
            "stream_id": stream_id,
            "stream_version": version,
            "worker_id": None,
            "occurred_at": "2024-11-04T09:30:00+07:00",
            "recorded_at": "2024-11-04T02:30:00.000000Z",
            "producer": "billing",
            "actor": {"id": "admin-1", "role": "city_admin"},
            "correlation_id": str(uuid.uuid4()),
            "causation_id": None,
            "policy_version": "2023.1",
            "prev_hash": prev_hash,
            "data": {
                "fiscal_year": 2024,
                "source": "APBD",
                "amount": amount * version,
                "cohort": "regular",
            },
        }
        envelope["hash"] = prev_hash = compute_hash(envelope)
        events.append(envelope)
    return events


def in_partition(
    events: list[dict[str, Any]], topic: str = "t", partition: int = 0
) -> list[tuple[dict[str, Any], Location]]:
    return [(event, Location(topic, partition, offset)) for offset, event in enumerate(events)]
