"""The event topics, created by the project with the contract's settings (never auto-created)."""

from __future__ import annotations

from aiokafka.admin import NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shared.kafka_clients import admin_client
from shared.settings import SERVICES, KafkaSettings

# Events are the system of record: kept forever, never compacted.
EVENT_TOPIC_CONFIG: dict[str, str] = {"retention.ms": "-1", "cleanup.policy": "delete"}


def topic_specs(settings: KafkaSettings) -> list[NewTopic]:
    config = {
        **EVENT_TOPIC_CONFIG,
        "min.insync.replicas": str(settings.topic_min_insync_replicas),
        # Stated, not inherited from the broker: the store's size check assumes this limit.
        "max.message.bytes": str(settings.kafka_max_message_bytes),
    }
    names = [settings.events_topic(service) for service in SERVICES]
    names += [settings.dead_letter_topic(service) for service in SERVICES]
    return [
        NewTopic(
            name=name,
            num_partitions=settings.topic_partitions,
            replication_factor=settings.topic_replication_factor,
            topic_configs=config,
        )
        for name in names
    ]


async def ensure_topics(settings: KafkaSettings, specs: list[NewTopic] | None = None) -> list[str]:
    """Create the missing topics; return the names created. Existing topics are left as they are."""
    admin = admin_client(settings)
    await admin.start()
    try:
        wanted = specs if specs is not None else topic_specs(settings)
        existing = set(await admin.list_topics())
        missing = [spec for spec in wanted if spec.name not in existing]
        if not missing:
            return []
        response = await admin.create_topics(missing)
        created = []
        for name, code, message in _topic_errors(response):
            if code not in (0, TopicAlreadyExistsError.errno):
                raise RuntimeError(
                    f"Kafka refused to create topic {name}: {message} (error {code})"
                )
            created.append(name)
        return created
    finally:
        await admin.close()


def _topic_errors(response: object) -> list[tuple[str, int, str]]:
    """(topic, error code, message) from a CreateTopics response of any version."""
    errors = getattr(response, "topic_errors", None) or getattr(response, "topics", [])
    result = []
    for entry in errors:
        name, code = entry[0], entry[1]
        message = entry[2] if len(entry) > 2 and isinstance(entry[2], str) else ""
        result.append((str(name), int(code), message or ""))
    return result


async def delete_topics_with_prefix(settings: KafkaSettings, prefix: str) -> list[str]:
    """Delete every topic whose name starts with ``prefix`` (a test or benchmark run's own);
    return their names. Never for an environment's prefix: its events are its record."""
    admin = admin_client(settings)
    await admin.start()
    try:
        doomed = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if doomed:
            await admin.delete_topics(doomed)
        return doomed
    finally:
        await admin.close()
