"""The three-broker KRaft cluster used by the failure tests."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from deploy.local import kafka_broker
from shared.settings import KafkaSettings
from shared.topics import EVENT_TOPIC_CONFIG, ensure_topics

pytestmark = [pytest.mark.integration, pytest.mark.cluster]


async def test_cluster_elects_a_controller_and_accepts_rf3_min_isr2_topic(
    cluster: KafkaSettings,
) -> None:
    brokers, controller = await kafka_broker.describe(cluster)
    assert brokers == 3
    assert controller in {1, 2, 3}

    settings = cluster.model_copy(update={"topic_prefix": "cluster-test."})
    topic = "cluster-test.durable"
    await ensure_topics(
        settings,
        [
            NewTopic(
                name=topic,
                num_partitions=3,
                replication_factor=3,
                topic_configs={**EVENT_TOPIC_CONFIG, "min.insync.replicas": "2"},
            )
        ],
    )

    admin = AIOKafkaAdminClient(bootstrap_servers=cluster.kafka_bootstrap_servers)
    await admin.start()
    try:
        # Every broker learns the new topic from the controller's log; ask until all have (on a
        # busy machine the last follower can take a while to join the ISR).
        for _ in range(180):
            [description] = await admin.describe_topics([topic])
            configs = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topic)]
            )
            entries = {entry[0]: entry[1] for entry in configs[0].resources[0][4]}
            partitions = description["partitions"]
            # No partitions yet is not "all in sync": the metadata has not arrived.
            in_sync = len(partitions) == 3 and all(len(p["isr"]) == 3 for p in partitions)
            if "min.insync.replicas" in entries and in_sync:
                break
            await asyncio.sleep(0.5)
    finally:
        await admin.close()
    assert len(description["partitions"]) == 3
    for partition in description["partitions"]:
        assert sorted(partition["replicas"]) == [1, 2, 3]
        assert len(partition["isr"]) == 3
    assert entries["min.insync.replicas"] == "2"
    assert entries["retention.ms"] == "-1"
