"""The event store of one service: streams, idempotent commands, the outbox, in its own schema."""

from shared.eventstore.store import (
    AppendResult,
    ConcurrencyError,
    EventStore,
    NewEvent,
    StoredEvent,
)

__all__ = ["AppendResult", "ConcurrencyError", "EventStore", "NewEvent", "StoredEvent"]
