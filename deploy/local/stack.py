"""The local stack as a whole: Kafka, PostgreSQL, the identity provider (Keycloak), the service
schemas and the topics."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from deploy.local import kafka_broker, keycloak, postgres
from shared.db import provision_service_schemas
from shared.settings import DatabaseSettings, KafkaSettings
from shared.topics import ensure_topics


@dataclass(frozen=True)
class Endpoints:
    kafka_bootstrap_servers: str
    database_url: str
    issuer: str = keycloak.ISSUER


def up(cluster: bool = False) -> Endpoints:
    """Start what is not running and prepare schemas and topics; harmless when all runs already."""
    layout = kafka_broker.CLUSTER if cluster else kafka_broker.SINGLE
    bootstrap = kafka_broker.up(layout)
    database_url = postgres.up()
    issuer = keycloak.up()
    db_settings = DatabaseSettings(database_url=database_url)
    kafka_settings = KafkaSettings(
        kafka_bootstrap_servers=bootstrap,
        topic_replication_factor=len(layout.nodes),
        topic_min_insync_replicas=min(2, len(layout.nodes)),
    )

    async def prepare() -> None:
        await provision_service_schemas(database_url, db_settings.service_role_password)
        await ensure_topics(kafka_settings)

    asyncio.run(prepare())
    return Endpoints(bootstrap, database_url, issuer)


def down(cluster: bool = False, wipe: bool = False, identity: bool = True) -> None:
    """Stop the stack (``wipe`` deletes its data); ``identity=False`` leaves the provider, its
    realm and users as they are."""
    kafka_broker.down(kafka_broker.CLUSTER, wipe=wipe or cluster)
    if not cluster:
        kafka_broker.down(kafka_broker.SINGLE, wipe=wipe)
        if wipe:
            postgres.drop_database()
        postgres.down()
        if identity:
            keycloak.down(wipe=wipe)
