"""The AsyncAPI 3.0 document of Berlian's topics, generated from the code.

What it describes comes from where it is decided: the event types, versions and owners from the
registry (``contract.events.registry``), their schemas from the models (as a tolerant reader sees
them), the record headers from the relay (``shared.relay.outbox.record_headers``), who reads what
from each service's projections (``services.catalog``), and the topics' partitions, replicas and
settings from the Kubernetes configuration and ``shared.topics``. Every ``$ref`` points inside the
document; the unit tests resolve each one and validate the document against the official
AsyncAPI 3.0.0 JSON Schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from contract.events.registry import EVENT_TYPES
from contract.events.schemas import reader_schema
from services.catalog import PROJECTIONS
from shared.catalogue import EventType
from shared.envelope import Envelope
from shared.settings import SERVICES
from shared.topics import EVENT_TOPIC_CONFIG

KAFKA_BINDING = "0.5.0"
COMPONENT_REF = "#/components/schemas/{model}"
# Inline, not a reference: the official schema's "reference or schema" choice refuses a
# reference there (a reference object is a valid schema too, so both alternatives match).
RECORD_KEY = {
    "type": "string",
    "description": "The worker's id (uuid) for events about a worker, else the stream's id.",
}
KUBERNETES_CONFIG = Path(__file__).resolve().parents[1] / "deploy" / "k8s" / "base" / "config.yaml"


def message_id(kind: EventType, version: int) -> str:
    return f"{kind.name}.v{version}"


def asyncapi_document() -> dict[str, Any]:
    schemas = _component_schemas()
    config = _kubernetes_config()
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for service in SERVICES:
        owned = [kind for kind in EVENT_TYPES.values() if kind.owner == service]
        channel_messages = {}
        for kind in owned:
            for version in sorted(kind.versions):
                name = message_id(kind, version)
                messages[name] = _event_message(kind, version)
                channel_messages[name] = {"$ref": f"#/components/messages/{name}"}
        channels[f"{service}.events"] = {
            "address": f"{{prefix}}{service}.events",
            "title": f"{service} events",
            "description": f"Events owned and written only by {service}, every version of each. "
            "Key: the worker's id, else the stream's id; one stream's events are in order in "
            "one partition. Kept forever.",
            "parameters": {"prefix": {"$ref": "#/components/parameters/prefix"}},
            "messages": channel_messages,
            "bindings": {"kafka": _topic_binding(config)},
        }
        channels[f"{service}.dlq"] = {
            "address": f"{{prefix}}{service}.dlq",
            "title": f"{service} dead letters",
            "description": f"Records {service}'s consumers could not process, published by "
            "the service for inspection; never read back into a projection.",
            "parameters": {"prefix": {"$ref": "#/components/parameters/prefix"}},
            "messages": {"DeadLetter": {"$ref": "#/components/messages/DeadLetter"}},
            "bindings": {"kafka": _topic_binding(config)},
        }
        operations[f"{service}.sendEvents"] = {
            "action": "send",
            "title": f"{service} publishes its events",
            "description": "The outbox relay: after the store's commit, in the store's order.",
            "channel": {"$ref": f"#/channels/{service}.events"},
            "messages": [
                {"$ref": f"#/channels/{service}.events/messages/{name}"}
                for name in channel_messages
            ],
        }
        operations[f"{service}.sendDeadLetters"] = {
            "action": "send",
            "title": f"{service} publishes its dead letters",
            "channel": {"$ref": f"#/channels/{service}.dlq"},
            "messages": [{"$ref": f"#/channels/{service}.dlq/messages/DeadLetter"}],
        }
    for service, sources in _reads().items():
        for source, types in sorted(sources.items()):
            names = [
                message_id(kind, version)
                for kind in EVENT_TYPES.values()
                if kind.owner == source and kind.name in types
                for version in sorted(kind.versions)
            ]
            operations[f"{service}.receive{source.capitalize()}Events"] = {
                "action": "receive",
                "title": f"{service} reads {source}'s events",
                "description": f"Its projections and reactions over {source}'s topic; other "
                "event types are passed over unread.",
                "channel": {"$ref": f"#/channels/{source}.events"},
                "messages": [
                    {"$ref": f"#/channels/{source}.events/messages/{name}"} for name in names
                ],
                "bindings": {
                    "kafka": {
                        "groupId": {
                            "type": "string",
                            "description": "One group per projection: "
                            f"<prefix>{service}.<projection>",
                            "pattern": f"^.*{service}\\.[a-z_]+$",
                        },
                        "bindingVersion": KAFKA_BINDING,
                    }
                },
            }
    messages["DeadLetter"] = _dead_letter_message()
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Berlian events",
            "version": "1",
            "description": "The event contract: one topic per producing service, each record "
            "a sealed envelope (JSON) and a CloudEvent in the Kafka binding's binary mode. "
            "docs/consuming.md says what a consumer may rely on.",
        },
        "defaultContentType": "application/json",
        "servers": _servers(),
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": schemas,
            "messages": messages,
            "parameters": {
                "prefix": {
                    "description": "The environment's topic prefix (TOPIC_PREFIX).",
                    "default": str(config.get("TOPIC_PREFIX", "berlian.")),
                    "examples": ["berlian.", "berlian-staging."],
                }
            },
            "securitySchemes": {
                "scram": {
                    "type": "scramSha512",
                    "description": "SCRAM-SHA-512 over TLS: each service as its own principal, "
                    "auditors as `auditor` (deploy/kafka_acls.py).",
                }
            },
        },
    }


def _servers() -> dict[str, Any]:
    bootstrap = str(_kubernetes_config()["KAFKA_BOOTSTRAP_SERVERS"])
    return {
        "local": {
            "host": "127.0.0.1:9092",
            "protocol": "kafka",
            "description": "The local stack (./berlian stack up): plaintext, no login.",
        },
        "kubernetes": {
            "host": bootstrap,
            "protocol": "kafka-secure",
            "description": "The cluster's Strimzi bootstrap: TLS, SCRAM-SHA-512.",
            "security": [{"$ref": "#/components/securitySchemes/scram"}],
        },
    }


def _kubernetes_config() -> dict[str, Any]:
    first = next(yaml.safe_load_all(KUBERNETES_CONFIG.read_text()))
    return dict(first["data"])


def _topic_binding(config: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "partitions": int(config["TOPIC_PARTITIONS"]),
        "replicas": int(config["TOPIC_REPLICATION_FACTOR"]),
        "topicConfiguration": {
            "cleanup.policy": [EVENT_TOPIC_CONFIG["cleanup.policy"]],
            "retention.ms": int(EVENT_TOPIC_CONFIG["retention.ms"]),
            "min.insync.replicas": int(config["TOPIC_MIN_INSYNC_REPLICAS"]),
        },
        "bindingVersion": KAFKA_BINDING,
    }


def _reads() -> dict[str, dict[str, set[str]]]:
    """Service -> source service -> the event types its projections read from that source."""
    reads: dict[str, dict[str, set[str]]] = {}
    for service, projections in PROJECTIONS.items():
        for projection in projections:
            for source in projection.sources:
                owned = {k.name for k in EVENT_TYPES.values() if k.owner == source}
                wanted = owned & set(projection.event_types)
                if wanted:
                    reads.setdefault(service, {}).setdefault(source, set()).update(wanted)
    return reads


def _component_schemas() -> dict[str, Any]:
    """Every event version's data schema, the envelope, the key, with nested models hoisted
    beside them so that each reference resolves inside the document."""
    schemas: dict[str, Any] = {}
    models: list[tuple[str, type[BaseModel]]] = [("Envelope", Envelope)]
    models += [
        (message_id(kind, version), model)
        for kind in EVENT_TYPES.values()
        for version, model in sorted(kind.versions.items())
    ]
    for name, model in models:
        schema = reader_schema(model, ref_template=COMPONENT_REF)
        for nested, definition in schema.pop("$defs", {}).items():
            if schemas.setdefault(nested, definition) != definition:
                raise ValueError(f"two different models are both named {nested}")
        schemas[name] = schema
    return schemas


def _event_message(kind: EventType, version: int) -> dict[str, Any]:
    name = message_id(kind, version)
    latest = " (the current version)" if version == kind.current_version else ""
    return {
        "name": kind.name,
        "title": f"{kind.name} version {version}",
        "summary": f"{kind.name} v{version}{latest}, written by {kind.owner}.",
        "contentType": "application/json",
        "correlationId": {"location": "$message.header#/correlation_id"},
        "headers": {
            "type": "object",
            "required": [
                "event_type",
                "schema_version",
                "content-type",
                "correlation_id",
                "ce_specversion",
                "ce_id",
                "ce_type",
                "ce_source",
                "ce_subject",
                "ce_time",
            ],
            "properties": {
                "event_type": {"const": kind.name},
                "schema_version": {"const": str(version)},
                "content-type": {"const": "application/json"},
                "correlation_id": {"type": "string", "format": "uuid"},
                "ce_specversion": {"const": "1.0"},
                "ce_id": {"type": "string", "format": "uuid", "description": "The event_id."},
                "ce_type": {"const": kind.name},
                "ce_source": {"const": kind.owner, "description": "The producer."},
                "ce_subject": {"type": "string", "description": "The stream_id."},
                "ce_time": {
                    "type": "string",
                    "format": "date-time",
                    "description": "The occurred_at.",
                },
                "traceparent": {
                    "type": "string",
                    "description": "W3C trace context of the publication, continuing the "
                    "command's trace (absent when nothing traced it).",
                },
                "tracestate": {"type": "string", "description": "W3C trace state, if any."},
            },
        },
        "payload": {
            "allOf": [
                {"$ref": "#/components/schemas/Envelope"},
                {
                    "type": "object",
                    "properties": {
                        "event_type": {"const": kind.name},
                        "schema_version": {"const": version},
                        "producer": {"const": kind.owner},
                        "data": {"$ref": f"#/components/schemas/{name}"},
                    },
                },
            ]
        },
        "bindings": {"kafka": {"key": RECORD_KEY, "bindingVersion": KAFKA_BINDING}},
    }


def _dead_letter_message() -> dict[str, Any]:
    text = {"type": "string"}
    return {
        "name": "DeadLetter",
        "title": "A record a consumer could not process",
        "summary": "The original record's bytes, key and headers, with where it came from and why.",
        "contentType": "application/octet-stream",
        "headers": {
            "type": "object",
            "properties": {
                "dlq.source.topic": text,
                "dlq.source.partition": text,
                "dlq.source.offset": text,
                "dlq.consumer": text,
                "dlq.reason": text,
                "dlq.failed_at": {"type": "string", "format": "date-time"},
                "dlq.stream_id": {"type": "string", "description": "Empty: no trusted stream."},
                "dlq.stream_version": text,
                "dlq.parked": {"enum": ["true", "false"]},
            },
        },
        "payload": {"description": "The original record's value, byte for byte (any bytes)."},
        "bindings": {"kafka": {"key": RECORD_KEY, "bindingVersion": KAFKA_BINDING}},
    }
