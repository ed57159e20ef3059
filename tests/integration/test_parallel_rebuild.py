"""A rebuild spread over processes, each a group of the partitions, builds exactly what one
process builds: the same rows (counters fed from every partition included), the same positions
and stream versions."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaProducer

from contract.events.registry import CATALOGUE
from shared.projection.replay import Processes, rebuild_into, table_digest
from shared.settings import DatabaseSettings
from shared.topic_reader import partitions_of
from tests.integration.sandbox import ServiceSandbox
from tests.integration.toy_projection import append_budgets, prepare, publish

pytestmark = pytest.mark.integration

TABLES = ("allocations", "totals", "projection_positions", "projection_streams")


async def test_a_rebuild_in_three_processes_equals_one_in_one_process(
    sandbox: ServiceSandbox, producer: AIOKafkaProducer, database_settings: DatabaseSettings
) -> None:
    projection = await prepare(sandbox)
    await append_budgets(sandbox, range(1, 61))
    await publish(sandbox, producer)
    assert len(await partitions_of(sandbox.kafka, [sandbox.topic])) == 3

    alone = await rebuild_into(
        sandbox.pool, f"{sandbox.schema}_p1", projection, CATALOGUE, sandbox.kafka
    )
    seen: list[int] = []
    spread = await rebuild_into(
        sandbox.pool,
        f"{sandbox.schema}_p3",
        projection,
        CATALOGUE,
        sandbox.kafka,
        progress=seen.append,
        processes=Processes(3, database_settings.database_url),
    )

    assert (alone.records, alone.applied) == (spread.records, spread.applied) == (60, 60)
    assert sum(seen) == 60
    assert len(seen) == 3  # each process reported its share
    for table in TABLES:
        assert await table_digest(sandbox.pool, spread.schema, table) == await table_digest(
            sandbox.pool, alone.schema, table
        ), table
