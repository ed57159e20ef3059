"""The projection runner on the real broker and database: exactly-once effects, dead letters."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from contract.events.registry import CATALOGUE
from shared.deadletters import list_dead_letters, publish_dead_letters
from shared.hashing import compute_hash
from shared.projection import runner as runner_module
from shared.projection import writer as writer_module
from shared.projection.changes import RowChange
from shared.projection.runner import ProjectionRunner
from shared.topic_reader import read_topics
from tests.integration.sandbox import ServiceSandbox
from tests.integration.toy_projection import (
    UNPROCESSABLE_AMOUNT,
    AcceptingAllocations,
    append_budgets,
    prepare,
    publish,
    run_until,
    totals,
)

pytestmark = pytest.mark.integration


async def test_applies_every_event_once_and_resumes_from_the_stored_position(
    sandbox: ServiceSandbox, producer: AIOKafkaProducer
) -> None:
    projection = await prepare(sandbox)
    await append_budgets(sandbox, range(1, 11))
    await publish(sandbox, producer)

    first = ProjectionRunner(sandbox.pool, sandbox.schema, projection, CATALOGUE, sandbox.kafka)
    await run_until(first, until_applied=10)
    await append_budgets(sandbox, range(11, 16))
    await publish(sandbox, producer)
    second = ProjectionRunner(sandbox.pool, sandbox.schema, projection, CATALOGUE, sandbox.kafka)
    await run_until(second, until_applied=5)

    assert await totals(sandbox) == (15, sum(range(1, 16)))
    assert second.applied == 5


async def test_republished_duplicates_change_nothing(
    sandbox: ServiceSandbox, producer: AIOKafkaProducer
) -> None:
    projection = await prepare(sandbox)
    await append_budgets(sandbox, [100, 200])
    await publish(sandbox, producer)
    # The relay crashed after publishing and before marking: everything goes out again.
    await sandbox.pool.execute(
        f"INSERT INTO {sandbox.schema}.outbox SELECT position FROM {sandbox.schema}.events"
    )
    await publish(sandbox, producer)

    runner = ProjectionRunner(sandbox.pool, sandbox.schema, projection, CATALOGUE, sandbox.kafka)
    await run_until(runner, until_applied=2)
    await asyncio.sleep(0.5)

    assert await totals(sandbox) == (2, 300)


async def test_killed_between_database_commit_and_kafka_commit_applies_nothing_twice(
    sandbox: ServiceSandbox, producer: AIOKafkaProducer, monkeypatch: pytest.MonkeyPatch
) -> None:
    projection = await prepare(sandbox)
    await append_budgets(sandbox, [5, 6, 7])
    await publish(sandbox, producer)

    def killed(*_: object) -> None:
        raise asyncio.CancelledError  # the process dies right after the database commit

    monkeypatch.setattr(runner_module._InformativeCommits, "offer", killed)
    crashed = ProjectionRunner(sandbox.pool, sandbox.schema, projection, CATALOGUE, sandbox.kafka)
    with pytest.raises(asyncio.CancelledError):
        await crashed.run(asyncio.Event())
    monkeypatch.undo()
    assert await totals(sandbox) != (0, 0)

    restarted = ProjectionRunner(sandbox.pool, sandbox.schema, projection, CATALOGUE, sandbox.kafka)
    await run_until(restarted, until_applied=3 - crashed.applied)
    await asyncio.sleep(0.5)

    assert await totals(sandbox) == (3, 18)


async def test_a_kafka_commit_that_hangs_does_not_hold_up_the_next_batch(
    sandbox: ServiceSandbox, producer: AIOKafkaProducer, monkeypatch: pytest.MonkeyPatch
) -> None:
    projection = await prepare(sandbox)
    await append_budgets(sandbox, [1, 2])
    await publish(sandbox, producer)
    commits: list[dict[TopicPartition, int]] = []
    coordinator_back = asyncio.Event()

    async def waits_for_the_coordinator(_: object, offsets: dict[TopicPartition, int]) -> None:
        commits.append(offsets)
        await coordinator_back.wait()

    monkeypatch.setattr(AIOKafkaConsumer, "commit", waits_for_the_coordinator)
    runner = ProjectionRunner(sandbox.pool, sandbox.schema, projection, CATALOGUE, sandbox.kafka)
    stop = asyncio.Event()
    running = asyncio.create_task(runner.run(stop))
    try:
        await until(lambda: runner.applied == 2)
        await append_budgets(sandbox, [3, 4])
        await publish(sandbox, producer)
        await until(lambda: runner.applied == 4)
        assert await totals(sandbox) == (4, 10)
        assert len(commits) == 1, "one commit in flight, the later positions waiting behind it"
        positions = dict(runner.positions)

        coordinator_back.set()
        await until(lambda: {tp: at for made in commits for tp, at in made.items()} == positions)
    finally:
        stop.set()
        await running


async def until(condition: Callable[[], bool], within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


def sealed(envelope: dict[str, object]) -> bytes:
    unsealed = {k: v for k, v in envelope.items() if k != "hash"}
    return orjson.dumps({**unsealed, "hash": compute_hash(unsealed)})


async def test_poison_records_are_dead_lettered_and_later_events_go_through(
    sandbox: ServiceSandbox, producer: AIOKafkaProducer
) -> None:
    projection = await prepare(sandbox)
    await append_budgets(sandbox, [1])
    await publish(sandbox, producer)
    genuine = orjson.loads(
        await sandbox.pool.fetchval(f"SELECT body FROM {sandbox.schema}.events LIMIT 1")
    )
    forged_data = {**genuine, "data": {**genuine["data"], "amount": 10**12}}
    poison = {
        "not JSON": b"\xff\xfe not json",
        "unknown type": sealed({**genuine, "event_type": "WorkerTeleported", "stream_id": "x-1"}),
        "hash mismatch": orjson.dumps(forged_data),
        "another producer": sealed({**genuine, "producer": "claims", "stream_id": "x-2"}),
        "too large": b'{"padding": "' + b"x" * 300_000 + b'"}',
        "handler refuses": sealed(
            {
                **genuine,
                "stream_id": "x-3",
                "data": {**genuine["data"], "amount": UNPROCESSABLE_AMOUNT},
            }
        ),
    }
    for value in poison.values():
        await producer.send_and_wait(sandbox.topic, value=value, key=b"poison", partition=0)
    await append_budgets(sandbox, [2, 3])
    await publish(sandbox, producer)

    runner = ProjectionRunner(sandbox.pool, sandbox.schema, projection, CATALOGUE, sandbox.kafka)
    await run_until(runner, until_applied=3 + len(poison))

    assert await totals(sandbox) == (3, 6)
    reasons = [
        r["reason"]
        for r in await sandbox.pool.fetch(
            f"SELECT reason FROM {sandbox.schema}.dead_letters ORDER BY kafka_offset"
        )
    ]
    assert len(reasons) == len(poison)
    assert any("not JSON" in r for r in reasons)
    assert any("WorkerTeleported" in r for r in reasons)
    assert any("hash mismatch" in r for r in reasons)
    assert any("claims producer 'claims'" in r for r in reasons)
    assert any("exceeds" in r for r in reasons)
    assert any("rules refuse" in r for r in reasons)


async def every_session_ended(sandbox: ServiceSandbox) -> None:
    """The server ends every session of this database, as in a failover."""
    await sandbox.pool.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )


async def connection_left_broken(_: ServiceSandbox) -> None:
    """What a pooled connection answered after a PostgreSQL restart; it used to end the runner,
    leaving its service serving commands whose effects never showed."""
    raise asyncpg.InternalClientError(
        "cannot switch to state 15; another operation (2) is in progress"
    )


@pytest.mark.parametrize("fault", [every_session_ended, connection_left_broken])
async def test_database_faults_mid_run_are_retried_not_dead_lettered(
    sandbox: ServiceSandbox,
    producer: AIOKafkaProducer,
    monkeypatch: pytest.MonkeyPatch,
    fault: Callable[[ServiceSandbox], Awaitable[None]],
) -> None:
    projection = await prepare(sandbox)
    await append_budgets(sandbox, range(1, 21))
    await publish(sandbox, producer)
    original = writer_module.execute_changes
    faults = 0

    async def fault_once(conn: object, schema: str, changes: Sequence[RowChange]) -> None:
        nonlocal faults
        if faults == 0:
            faults += 1
            await fault(sandbox)
        await original(conn, schema, changes)  # type: ignore[arg-type]

    monkeypatch.setattr(writer_module, "execute_changes", fault_once)
    runner = ProjectionRunner(sandbox.pool, sandbox.schema, projection, CATALOGUE, sandbox.kafka)
    await run_until(runner, until_applied=20)

    assert faults == 1
    assert await totals(sandbox) == (20, sum(range(1, 21)))
    assert await sandbox.pool.fetchval(f"SELECT count(*) FROM {sandbox.schema}.dead_letters") == 0


async def test_two_consumers_rebalancing_in_one_group_apply_each_event_once(
    sandbox: ServiceSandbox, producer: AIOKafkaProducer
) -> None:
    projection = await prepare(sandbox)
    stop = asyncio.Event()
    one = ProjectionRunner(
        sandbox.pool, sandbox.schema, projection, CATALOGUE, sandbox.kafka, max_batch=7
    )
    two = ProjectionRunner(
        sandbox.pool, sandbox.schema, projection, CATALOGUE, sandbox.kafka, max_batch=7
    )
    first = asyncio.create_task(one.run(stop))
    await append_budgets(sandbox, range(1, 61))
    await publish(sandbox, producer)
    await asyncio.sleep(1)
    second = asyncio.create_task(two.run(stop))  # joins: the group rebalances mid-stream
    await append_budgets(sandbox, range(61, 121))
    await publish(sandbox, producer)
    for _ in range(400):
        if (await totals(sandbox))[0] >= 120:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.gather(first, second)

    assert await totals(sandbox) == (120, sum(range(1, 121)))


async def test_dead_letters_reach_the_dlq_topic_and_a_fixed_rule_redrives_them(
    sandbox: ServiceSandbox, producer: AIOKafkaProducer
) -> None:
    projection = await prepare(sandbox)
    await append_budgets(sandbox, [1, UNPROCESSABLE_AMOUNT, 2])
    await publish(sandbox, producer)
    runner = ProjectionRunner(sandbox.pool, sandbox.schema, projection, CATALOGUE, sandbox.kafka)
    await run_until(runner, until_applied=3)
    dlq = sandbox.kafka.dead_letter_topic(sandbox.service)

    assert await publish_dead_letters(sandbox.pool, sandbox.schema, dlq, producer) == 1
    assert await publish_dead_letters(sandbox.pool, sandbox.schema, dlq, producer) == 0
    [record] = [r async for batch in read_topics(sandbox.kafka, [dlq]) for r in batch]
    headers = dict(record.headers)
    assert headers["dlq.source.topic"] == sandbox.topic.encode()
    assert b"rules refuse" in headers["dlq.reason"]
    assert orjson.loads(record.value)["data"]["amount"] == UNPROCESSABLE_AMOUNT

    [letter] = await list_dead_letters(sandbox.pool, sandbox.schema)
    [refused] = await runner.writer.redrive(letter)
    assert refused.outcome == "fails"
    assert "rules refuse" in refused.detail
    fixed = ProjectionRunner(
        sandbox.pool, sandbox.schema, AcceptingAllocations(projection), CATALOGUE, sandbox.kafka
    )
    [redriven_step] = await fixed.writer.redrive(letter)
    assert redriven_step.outcome == "applied"

    assert await totals(sandbox) == (3, 3 + UNPROCESSABLE_AMOUNT)
    assert await list_dead_letters(sandbox.pool, sandbox.schema) == []
    [redriven] = await list_dead_letters(sandbox.pool, sandbox.schema, include_resolved=True)
    assert redriven.resolution == "applied"
    assert redriven.resolved_at is not None
    [again] = await fixed.writer.redrive(letter)
    assert again.outcome == "not_waiting"
    assert "no longer waiting: applied" in again.detail
