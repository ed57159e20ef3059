"""Publishing a service's outbox to its topic."""

from shared.relay.outbox import OutboxRelay

__all__ = ["OutboxRelay"]
