"""Kafka access control on a broker that logs clients in with SASL/SCRAM and allows, through
KRaft's standard authorizer, only what ACLs grant: each service's principal writes only its
own topics and joins only its own consumer groups; administration is the administrator's.
An auditor reads and verifies every topic and writes none. Clients connect over TLS. The four
services then run in that mode, each with its own credentials."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import NewTopic
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaError,
    TopicAuthorizationFailedError,
)
from pydantic import SecretStr

from deploy import kafka_acls
from deploy.local import kafka_broker
from deploy.local.paths import REPO_ROOT
from shared.kafka_clients import admin_client, consumer_options, producer_options
from shared.settings import SERVICES, DatabaseSettings, KafkaSettings
from shared.topics import ensure_topics
from tests.integration.programme_world import World, environment, running_services
from tests.reliability.checker import check
from tests.reliability.load import Load

pytestmark = [pytest.mark.integration, pytest.mark.secure]
SECURE = kafka_broker.SECURE


@pytest.fixture(scope="module")
def secure_kafka() -> Iterator[KafkaSettings]:
    """The administrator's settings on a fresh secure broker, on topics of this test's own."""
    kafka_broker.up(SECURE, timeout=180)
    yield kafka_broker.client_settings(SECURE, topic_prefix=f"acl-{uuid.uuid4().hex[:6]}.")
    kafka_broker.down(SECURE, wipe=True)


def as_service(administrator: KafkaSettings, service: str) -> KafkaSettings:
    return kafka_broker.client_settings(SECURE, service, topic_prefix=administrator.topic_prefix)


@pytest.fixture(scope="module")
async def granted(secure_kafka: KafkaSettings) -> KafkaSettings:
    await ensure_topics(secure_kafka)
    kafka_acls.apply(
        secure_kafka, {service: service for service in SERVICES}, readers=[kafka_acls.AUDITOR]
    )
    return secure_kafka


async def test_a_service_writes_its_own_topic_and_no_other(granted: KafkaSettings) -> None:
    enrolment = as_service(granted, "enrolment")
    producer = AIOKafkaProducer(**producer_options(enrolment), request_timeout_ms=10_000)
    await producer.start()
    try:
        # Its own topics (the dead-letter one here, to leave the event log as it is).
        await producer.send_and_wait(enrolment.dead_letter_topic("enrolment"), b"{}")
        for other in ("billing", "claims", "verification"):
            with pytest.raises(TopicAuthorizationFailedError):
                await producer.send_and_wait(enrolment.events_topic(other), b"{}")
    finally:
        await producer.stop()


async def test_a_service_joins_its_own_groups_only(granted: KafkaSettings) -> None:
    billing = as_service(granted, "billing")
    topic = billing.events_topic("enrolment")  # billing reads enrolment's topic

    async def poll_as(group: str) -> None:
        consumer = AIOKafkaConsumer(topic, **consumer_options(billing, group))
        try:
            await consumer.start()
            await consumer.getmany(timeout_ms=3000)
        finally:
            await consumer.stop()

    await poll_as(f"{billing.topic_prefix}billing.coverages")
    with pytest.raises(GroupAuthorizationFailedError):
        await poll_as(f"{billing.topic_prefix}claims.coverages")


async def test_a_service_cannot_administer_topics(granted: KafkaSettings) -> None:
    claims = as_service(granted, "claims")
    with pytest.raises(RuntimeError, match="refused to create topic"):
        await ensure_topics(claims, [NewTopic(claims.events_topic("rogue"), 1, 1)])
    admin = admin_client(claims)
    await admin.start()
    try:
        response = await admin.delete_topics([claims.events_topic("claims")])
        assert [code for _, code, *_ in response.topic_error_codes] == [
            TopicAuthorizationFailedError.errno
        ]
    finally:
        await admin.close()
    # Everything is still there, seen by the administrator.
    admin = admin_client(granted)
    await admin.start()
    try:
        topics = set(await admin.list_topics())
    finally:
        await admin.close()
    assert granted.events_topic("claims") in topics
    assert granted.events_topic("rogue") not in topics


async def test_a_wrong_password_or_no_login_gets_nothing(granted: KafkaSettings) -> None:
    wrong = as_service(granted, "enrolment").model_copy(
        update={"kafka_sasl_password": SecretStr("not-the-password")}
    )
    anonymous = KafkaSettings(kafka_bootstrap_servers=granted.kafka_bootstrap_servers)
    for settings in (wrong, anonymous):
        producer = AIOKafkaProducer(**producer_options(settings), request_timeout_ms=5000)
        with pytest.raises(KafkaError):
            await asyncio.wait_for(producer.start(), timeout=30)
        await producer.stop()


async def test_an_auditor_reads_and_verifies_every_topic_and_writes_none(
    granted: KafkaSettings,
) -> None:
    auditor = as_service(granted, kafka_acls.AUDITOR)
    verified = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "deploy.cli", "audit", "verify", "--topics-only", "--json"],
        env=environment(auditor, DatabaseSettings()),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr

    async def produce() -> None:
        producer = AIOKafkaProducer(**producer_options(auditor), request_timeout_ms=10_000)
        try:
            await producer.start()
            await producer.send_and_wait(auditor.events_topic("enrolment"), b"{}")
        finally:
            await producer.stop()

    with pytest.raises(ClusterAuthorizationFailedError):  # not even a producer id
        await produce()


@pytest.fixture
async def secure_world(
    granted: KafkaSettings, separate_database: DatabaseSettings
) -> AsyncIterator[World]:
    async with running_services(
        granted, separate_database, login=lambda service: as_service(granted, service)
    ) as running:
        yield running


async def test_the_services_run_with_their_own_credentials(secure_world: World) -> None:
    kafka, database, _ = secure_world
    load = Load(first_person=3_000_000)
    async with load.running():
        await asyncio.sleep(5)
    verdict = await check(kafka, database, load.registered, load.verified)
    assert verdict.ok, verdict
    assert load.registered
    assert load.verified
