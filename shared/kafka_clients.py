"""Every Kafka client in Berlian is built here, with the safe settings.

aiokafka and FastStream default to weaker guarantees (acks=1, no idempotence, auto-commit,
acknowledging before the handler runs). An accepted command must never be lost and no effect
may happen twice, so producers wait for all in-sync replicas and are idempotent, and consumers
read only committed records and never commit on their own: positions are kept with projections.
"""

from __future__ import annotations

from typing import Any, Final

from faststream.kafka import KafkaBroker
from faststream.middlewares import AckPolicy

from shared.settings import KafkaSettings

PRODUCER_SAFETY: Final[dict[str, Any]] = {"acks": "all", "enable_idempotence": True}
CONSUMER_SAFETY: Final[dict[str, Any]] = {
    "enable_auto_commit": False,
    "isolation_level": "read_committed",
    "auto_offset_reset": "earliest",
}
# FastStream subscribers: the handler acknowledges explicitly, after its effect is committed.
SUBSCRIBER_SAFETY: Final[dict[str, Any]] = {
    "ack_policy": AckPolicy.MANUAL,
    "isolation_level": "read_committed",
    "auto_offset_reset": "earliest",
}


def producer_options(settings: KafkaSettings) -> dict[str, Any]:
    return {"bootstrap_servers": settings.kafka_bootstrap_servers, **PRODUCER_SAFETY}


def consumer_options(settings: KafkaSettings, group_id: str | None) -> dict[str, Any]:
    return {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "group_id": group_id,
        **CONSUMER_SAFETY,
    }


def faststream_broker(settings: KafkaSettings, **extra: Any) -> KafkaBroker:
    return KafkaBroker(settings.kafka_bootstrap_servers, **PRODUCER_SAFETY, **extra)
