"""What each service's Kafka principal may do, and granting it on a cluster.

A service writes only its own topics, reads every topic of its environment and joins only the
consumer groups named after it; creating, deleting or reconfiguring topics is left to the
administrator. The Strimzi KafkaUser resources (deploy/k8s/base/kafka-users.yaml) declare the
same grants for Kubernetes; a test keeps the two equal.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from shared.kafka_clients import connection_options
from shared.settings import KafkaSettings

AUDITOR = "auditor"  # the principal of auditors and the replay job
CLUSTER_RESOURCE = "kafka-cluster"  # the name Kafka gives the cluster as a resource
# librdkafka calls Kafka's cluster resource type (4) BROKER.
RESOURCE_TYPES = {
    "topic": ResourceType.TOPIC,
    "group": ResourceType.GROUP,
    "cluster": ResourceType.BROKER,
}


@dataclass(frozen=True)
class Grant:
    """Operations allowed on the resources named ``name`` (or starting with it)."""

    resource: Literal["topic", "group", "cluster"]
    name: str
    pattern: Literal["literal", "prefix"]
    operations: tuple[str, ...]


def grants(settings: KafkaSettings, service: str) -> list[Grant]:
    prefix = settings.topic_prefix
    return [
        Grant("topic", settings.events_topic(service), "literal", ("Write", "Describe")),
        Grant("topic", settings.dead_letter_topic(service), "literal", ("Write", "Describe")),
        Grant("topic", prefix, "prefix", ("Read", "Describe")),
        Grant("group", f"{prefix}{service}.", "prefix", ("Read", "Describe")),
        # An idempotent producer asks the cluster for its producer id.
        Grant("cluster", CLUSTER_RESOURCE, "literal", ("IdempotentWrite",)),
    ]


def reader_grants(settings: KafkaSettings) -> list[Grant]:
    """An auditor's, or the replay job's: read every topic of the environment, write nothing
    (they read without a consumer group)."""
    return [Grant("topic", settings.topic_prefix, "prefix", ("Read", "Describe"))]


def bindings(principal: str, grant: Grant) -> list[AclBinding]:
    return [
        AclBinding(
            RESOURCE_TYPES[grant.resource],
            grant.name,
            ResourcePatternType.LITERAL
            if grant.pattern == "literal"
            else ResourcePatternType.PREFIXED,
            f"User:{principal}",
            "*",
            AclOperation[re.sub(r"(?<!^)(?=[A-Z])", "_", operation).upper()],
            AclPermissionType.ALLOW,
        )
        for operation in grant.operations
    ]


# aiokafka's names of the connection options, and librdkafka's.
LIBRDKAFKA_NAMES = {
    "bootstrap_servers": "bootstrap.servers",
    "security_protocol": "security.protocol",
    "sasl_mechanism": "sasl.mechanism",
    "sasl_plain_username": "sasl.username",
    "sasl_plain_password": "sasl.password",
}


def admin_config(settings: KafkaSettings) -> dict[str, Any]:
    """The platform's connection options (``shared.kafka_clients``), as librdkafka names them."""
    options = connection_options(settings)
    config = {LIBRDKAFKA_NAMES[k]: v for k, v in options.items() if k in LIBRDKAFKA_NAMES}
    if settings.kafka_ssl_cafile:
        config["ssl.ca.location"] = settings.kafka_ssl_cafile
    return config


def apply(
    administrator: KafkaSettings,
    principals: dict[str, str],
    readers: Sequence[str] = (),
    timeout: float = 30,
) -> int:
    """Grant each service (key) its ACLs for ``administrator.topic_prefix``, held by the principal
    named by the value, and each of ``readers`` a reader's; return how many ACLs were created
    (existing ones stay as they are)."""
    wanted = [
        binding
        for service, principal in principals.items()
        for grant in grants(administrator, service)
        for binding in bindings(principal, grant)
    ]
    wanted += [
        binding
        for reader in readers
        for grant in reader_grants(administrator)
        for binding in bindings(reader, grant)
    ]
    # The client must outlive its futures: destroying it fails them.
    client = AdminClient(admin_config(administrator))
    futures = client.create_acls(wanted, request_timeout=timeout)
    for future in futures.values():
        future.result(timeout=timeout)  # raises KafkaException naming what was refused
    # The controller has committed them; brokers learn them from its log a moment later.
    deadline = time.monotonic() + timeout
    while not set(map(str, wanted)) <= set(map(str, _described(client, timeout))):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the brokers did not show the new ACLs within {timeout:.0f} s")
        time.sleep(0.2)
    return len(wanted)


def _described(client: AdminClient, timeout: float) -> list[AclBinding]:
    # None matches any name, principal and host (the package's annotations say str).
    every = AclBindingFilter(
        ResourceType.ANY,
        None,  # type: ignore[arg-type]
        ResourcePatternType.ANY,
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    described: list[AclBinding] = client.describe_acls(every, request_timeout=timeout).result()
    return described
