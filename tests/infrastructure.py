"""Where the tests find a real Kafka and PostgreSQL.

In order: the environment (KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL, e.g. in a cluster), else
testcontainers when a Docker engine answers, else the local stack, started on demand.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from deploy.local.stack import Endpoints

KAFKA_IMAGE = "apache/kafka:4.1.1"
POSTGRES_IMAGE = "postgres:15-bookworm"


def docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        probe = subprocess.run(["docker", "info"], capture_output=True, timeout=10, check=False)
    except subprocess.TimeoutExpired:
        return False
    return probe.returncode == 0


@contextmanager
def _containers() -> Iterator[Endpoints]:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer

    with ExitStack() as stack:
        kafka = stack.enter_context(KafkaContainer(KAFKA_IMAGE).with_kraft())
        postgres = stack.enter_context(
            PostgresContainer(
                POSTGRES_IMAGE, username="berlian", password="berlian", dbname="berlian"
            )
        )
        url = postgres.get_connection_url(driver=None)
        yield Endpoints(kafka.get_bootstrap_server(), url)


@contextmanager
def real_infrastructure() -> Iterator[Endpoints]:
    env_kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    env_db = os.environ.get("DATABASE_URL")
    if env_kafka and env_db:
        yield Endpoints(env_kafka, env_db)
    elif docker_answers():
        with _containers() as endpoints:
            yield endpoints
    else:
        from deploy.local import stack

        yield stack.up()
