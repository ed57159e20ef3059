"""Every Kafka client in Berlian is built here, with the safe settings.

aiokafka defaults to weaker guarantees (acks=1, no idempotence, auto-commit). An accepted
command must never be lost and no effect may happen twice, so producers wait for all in-sync
replicas and are idempotent, and consumers read only committed records and never commit on
their own: positions are kept with projections.
"""

from __future__ import annotations

import ssl
from typing import Any, Final

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.helpers import create_ssl_context

from shared.settings import KafkaSettings

PRODUCER_SAFETY: Final[dict[str, Any]] = {"acks": "all", "enable_idempotence": True}
CONSUMER_SAFETY: Final[dict[str, Any]] = {
    "enable_auto_commit": False,
    "isolation_level": "read_committed",
    "auto_offset_reset": "earliest",
}


def _ssl_context(settings: KafkaSettings) -> ssl.SSLContext:
    context: ssl.SSLContext = create_ssl_context(cafile=settings.kafka_ssl_cafile or None)
    return context


def connection_options(settings: KafkaSettings) -> dict[str, Any]:
    """Where the brokers are and how to log in: the same for every kind of client."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol.startswith("SASL"):
        options |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_sasl_username,
            "sasl_plain_password": settings.kafka_sasl_password.get_secret_value(),
        }
    if settings.kafka_security_protocol == "SASL_SSL":
        options["ssl_context"] = _ssl_context(settings)
    return options


def producer_options(settings: KafkaSettings) -> dict[str, Any]:
    # A record too large for the topic is refused by the producer itself, before it takes a
    # sequence number: refused by the broker instead, it would leave the idempotent producer's
    # partition out of sequence, failing every later record there.
    return {
        **connection_options(settings),
        **PRODUCER_SAFETY,
        "max_request_size": settings.max_record_bytes,
    }


# aiokafka does not refresh its metadata when a leader moves while it resets a position (as
# after seek_to_beginning): it asks the old leader again and again until the next periodic
# refresh, five minutes by default. Refreshing often bounds that stall after a broker fails.
METADATA_MAX_AGE_MS = 5000


def consumer_options(settings: KafkaSettings, group_id: str | None) -> dict[str, Any]:
    return {
        **connection_options(settings),
        "group_id": group_id,
        "metadata_max_age_ms": METADATA_MAX_AGE_MS,
        **CONSUMER_SAFETY,
    }


def admin_client(settings: KafkaSettings, **extra: Any) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**connection_options(settings), **extra)
