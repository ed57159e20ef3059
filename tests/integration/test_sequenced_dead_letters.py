"""Dead letters keep each stream's order, on the real broker and database.

One worker's streams share a partition (the record key is the worker). When event 2 of a stream
cannot be applied, its events 3 and 4 are parked behind it while the partition's other streams
go on; once the rule is fixed, re-driving applies 2, 3 and 4 in that order, and the projection
equals a fresh replay. A re-drive never calls "applied" what it did not apply.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY

from contract.events.registry import CATALOGUE
from shared.deadletters import DeadLetter, list_dead_letters, parked_figures
from shared.eventstore import EventStore, NewEvent
from shared.eventstore.migrations import Migration, migrate
from shared.eventstore.store import CommandContext
from shared.projection.changes import RowChange, Upsert
from shared.projection.decode import ConsumedEvent
from shared.projection.replay import rebuild_and_switch, rebuild_into, rows_differing
from shared.projection.runner import ProjectionRunner
from shared.projection.writer import SkipRefusedError
from tests.integration.sandbox import ServiceSandbox
from tests.integration.test_projection_runner import sealed
from tests.integration.toy_projection import NOW, UNPROCESSABLE_AMOUNT, publish, run_until

pytestmark = pytest.mark.integration

LOG_COLUMNS = "event_id, stream_id, stream_version, amount"


@dataclass(frozen=True)
class StreamLog:
    """Every applied event in the order it was applied, and each stream's last version."""

    sources: Sequence[str]
    refuses: int | None = UNPROCESSABLE_AMOUNT  # the amount its rule refuses (None: fixed)
    name: str = "stream_log"
    event_types: frozenset[str] = frozenset({"BudgetAllocated"})
    tables: Sequence[str] = ("stream_log", "stream_heads")
    migrations: Sequence[Migration] = (
        Migration(
            "stream_log",
            "CREATE TABLE {schema}.stream_log (event_id uuid PRIMARY KEY, stream_id text NOT "
            "NULL, stream_version integer NOT NULL, amount bigint NOT NULL, "
            "applied_order bigserial NOT NULL);"
            "CREATE TABLE {schema}.stream_heads (stream_id text PRIMARY KEY, "
            "version integer NOT NULL)",
        ),
    )

    def apply(self, event: ConsumedEvent) -> Sequence[RowChange]:
        amount = event.envelope.data["amount"]
        if amount == self.refuses:
            raise ValueError("an amount this projection's rules refuse")
        stream, version = event.envelope.stream_id, event.envelope.stream_version
        return [
            Upsert(
                "stream_log",
                {"event_id": event.envelope.event_id},
                {"stream_id": stream, "stream_version": version, "amount": amount},
            ),
            # Order-sensitive: applied out of order, a stream's head would end below its last.
            Upsert("stream_heads", {"stream_id": stream}, {"version": version}),
        ]


async def append(box: ServiceSandbox, worker: uuid.UUID, stream: str, amount: int) -> None:
    store = EventStore(box.pool, box.schema, box.service, clock=lambda: NOW)
    version = len(await store.read_stream(stream))
    event = NewEvent(
        "BudgetAllocated",
        {"fiscal_year": 2024, "source": "APBD", "amount": amount, "cohort": "regular"},
        occurred_at=NOW,
        worker_id=worker,  # one key: every stream of this test on one partition
    )
    await store.append(stream, version, [event], CommandContext("a", "city_admin", uuid.uuid4()))


async def applied_versions(box: ServiceSandbox, stream: str) -> list[int]:
    rows = await box.pool.fetch(
        f"SELECT stream_version FROM {box.schema}.stream_log WHERE stream_id = $1 "
        "ORDER BY applied_order",
        stream,
    )
    return [row["stream_version"] for row in rows]


async def prepared(box: ServiceSandbox) -> StreamLog:
    """The read model's tables in the sandbox, and its rules as they were before the fix."""
    broken = StreamLog(sources=(box.service,))
    async with box.pool.acquire() as conn:
        await migrate(conn, box.schema, broken.migrations)
    return broken


async def waiting(box: ServiceSandbox) -> list[DeadLetter]:
    return await list_dead_letters(box.pool, box.schema)


async def test_a_failed_event_parks_its_stream_and_a_redrive_applies_the_sequence_in_order(
    sandbox: ServiceSandbox, producer: AIOKafkaProducer
) -> None:
    broken = await prepared(sandbox)
    worker = uuid.uuid4()
    for stream, amount in [
        ("budget-a", 10),
        ("budget-a", UNPROCESSABLE_AMOUNT),  # event 2 of stream a: its rule refuses it
        ("budget-b", 1),
        ("budget-a", 30),
        ("budget-c", 2),
        ("budget-a", 40),
        ("budget-b", 3),
    ]:
        await append(sandbox, worker, stream, amount)
    await publish(sandbox, producer)

    runner = ProjectionRunner(sandbox.pool, sandbox.schema, broken, CATALOGUE, sandbox.kafka)
    await run_until(runner, until_applied=7)

    # The other streams of the partition went on; stream a is held at event 2.
    assert await applied_versions(sandbox, "budget-b") == [1, 2]
    assert await applied_versions(sandbox, "budget-c") == [1]
    assert await applied_versions(sandbox, "budget-a") == [1]
    letters = await waiting(sandbox)
    assert [(d.stream_id, d.stream_version, d.parked) for d in letters] == [
        ("budget-a", 2, False),
        ("budget-a", 3, True),
        ("budget-a", 4, True),
    ]
    assert "rules refuse" in letters[0].reason
    figures = await parked_figures(sandbox.pool, sandbox.schema, runner.consumer_name)
    assert (figures.letters, figures.streams) == (3, 1)

    # Events arriving later for the parked stream wait behind it too.
    await append(sandbox, worker, "budget-a", 50)
    await append(sandbox, worker, "budget-b", 4)
    await publish(sandbox, producer)
    later = ProjectionRunner(sandbox.pool, sandbox.schema, broken, CATALOGUE, sandbox.kafka)
    await run_until(later, until_applied=2)
    assert await applied_versions(sandbox, "budget-b") == [1, 2, 3]
    assert [d.stream_version for d in await waiting(sandbox)] == [2, 3, 4, 5]
    exported = {"consumer": later.consumer_name}  # by the runner, after a batch that parked
    assert REGISTRY.get_sample_value("berlian_parked_streams", exported) == 1
    assert REGISTRY.get_sample_value("berlian_dead_letters_waiting", exported) == 4

    # Re-driving before the fix: the same event still fails, named with its reason, and
    # nothing behind it is tried.
    [refused] = await runner.writer.redrive(letters[2])
    assert (refused.letter_id, refused.outcome) == (letters[0].id, "fails")
    assert "rules refuse" in refused.detail
    assert await applied_versions(sandbox, "budget-a") == [1]

    # A letter behind the head cannot be skipped out of order.
    with pytest.raises(SkipRefusedError, match="parked behind dead letter"):
        await runner.writer.skip(letters[1], "siti", "not needed")

    fixed = ProjectionRunner(
        sandbox.pool,
        sandbox.schema,
        StreamLog((sandbox.service,), refuses=None),
        CATALOGUE,
        sandbox.kafka,
    )
    steps = await fixed.writer.redrive(letters[1])  # any letter of the sequence re-drives it
    assert [step.outcome for step in steps] == ["applied"] * 4
    assert await applied_versions(sandbox, "budget-a") == [1, 2, 3, 4, 5]
    assert await waiting(sandbox) == []
    assert (
        await sandbox.pool.fetchval(
            f"SELECT version FROM {sandbox.schema}.stream_heads WHERE stream_id = 'budget-a'"
        )
        == 5
    )

    # The stream is no longer parked: its next event is applied as it comes.
    await append(sandbox, worker, "budget-a", 60)
    await publish(sandbox, producer)
    resumed = ProjectionRunner(
        sandbox.pool, sandbox.schema, fixed.writer.projection, CATALOGUE, sandbox.kafka
    )
    await run_until(resumed, until_applied=1)
    assert await applied_versions(sandbox, "budget-a") == [1, 2, 3, 4, 5, 6]

    # A copy of an applied version that no longer reads (here: invalid data) is a duplicate,
    # not a failure: it parks nothing.
    body = await sandbox.pool.fetchval(
        f"SELECT body FROM {sandbox.schema}.events "
        "WHERE stream_id = 'budget-a' AND stream_version = 2"
    )
    unreadable = {**orjson.loads(body), "data": {"amount": -1}}
    await producer.send_and_wait(sandbox.topic, sealed(unreadable), key=str(worker).encode())
    await append(sandbox, worker, "budget-a", 70)
    await publish(sandbox, producer)
    await run_until(resumed, until_applied=resumed.applied + 2)
    assert await waiting(sandbox) == []
    assert await applied_versions(sandbox, "budget-a") == [1, 2, 3, 4, 5, 6, 7]

    # The projection equals a fresh replay of the topic by the fixed rules.
    scratch = f"{sandbox.schema}_fresh"
    rebuilt = await rebuild_into(
        sandbox.pool, scratch, StreamLog((sandbox.service,), refuses=None), CATALOGUE, sandbox.kafka
    )
    assert (rebuilt.dead_lettered, rebuilt.parked_streams) == (0, 0)
    for table, columns in (("stream_log", LOG_COLUMNS), ("stream_heads", "*")):
        assert await rows_differing(sandbox.pool, table, sandbox.schema, scratch, columns) == 0

    # Re-driving a letter already applied reports it, and applies nothing again.
    [again] = await fixed.writer.redrive(letters[0])
    assert again.outcome == "not_waiting"
    assert "no longer waiting: applied" in again.detail


async def test_a_redrive_whose_stream_moved_on_says_so_and_applies_nothing(
    sandbox: ServiceSandbox, producer: AIOKafkaProducer
) -> None:
    """Letters written before dead letters named their stream (the migration leaves them
    without one) did not hold their stream back: its later events were applied on the gap.
    Re-driving such a letter once the stream has moved on past it must say so."""
    broken = await prepared(sandbox)
    worker = uuid.uuid4()
    await append(sandbox, worker, "budget-d", UNPROCESSABLE_AMOUNT)
    await append(sandbox, worker, "budget-d", 20)
    await publish(sandbox, producer)
    runner = ProjectionRunner(sandbox.pool, sandbox.schema, broken, CATALOGUE, sandbox.kafka)
    await run_until(runner, until_applied=2)
    await sandbox.pool.execute(
        f"UPDATE {sandbox.schema}.dead_letters SET stream_id = NULL, stream_version = NULL, "
        "parked = false"
    )
    first, second = await waiting(sandbox)
    [applied] = await runner.writer.redrive(second)  # event 2, applied past the gap
    assert applied.outcome == "applied"

    fixed = StreamLog((sandbox.service,), refuses=None)
    writer = ProjectionRunner(sandbox.pool, sandbox.schema, fixed, CATALOGUE, sandbox.kafka).writer
    [moved_on] = await writer.redrive(first)

    assert moved_on.outcome == "moved_on"
    assert "moved on" in moved_on.detail
    assert await applied_versions(sandbox, "budget-d") == [2]
    [resolved] = [
        d
        for d in await list_dead_letters(sandbox.pool, sandbox.schema, include_resolved=True)
        if d.id == first.id
    ]
    assert resolved.resolution == "moved_on"


async def test_a_skip_is_recorded_with_who_and_why_and_a_rebuild_parks_as_the_runner_does(
    sandbox: ServiceSandbox, producer: AIOKafkaProducer
) -> None:
    broken = await prepared(sandbox)
    worker = uuid.uuid4()
    for amount in (5, UNPROCESSABLE_AMOUNT, 7):
        await append(sandbox, worker, "budget-e", amount)
    await publish(sandbox, producer)
    runner = ProjectionRunner(sandbox.pool, sandbox.schema, broken, CATALOGUE, sandbox.kafka)
    await run_until(runner, until_applied=3)

    # A rebuild with the same rules parks the stream exactly as the live runner did, and the
    # switch carries its waiting letters over in place of the live ones.
    rebuilt = await rebuild_and_switch(
        sandbox.pool, sandbox.schema, broken, CATALOGUE, sandbox.kafka
    )
    assert (rebuilt.dead_lettered, rebuilt.parked_streams) == (2, 1)
    head, behind = await waiting(sandbox)
    assert (head.stream_version, head.parked, behind.stream_version, behind.parked) == (
        2,
        False,
        3,
        True,
    )
    replaced = [
        d
        for d in await list_dead_letters(sandbox.pool, sandbox.schema, include_resolved=True)
        if d.resolution == "replaced"
    ]
    assert len(replaced) == 2

    with pytest.raises(SkipRefusedError, match="reason"):
        await runner.writer.skip(head, "siti", "   ")
    await runner.writer.skip(head, "siti", "allocation withdrawn by the city; never valid")
    [skipped] = [
        d
        for d in await list_dead_letters(sandbox.pool, sandbox.schema, include_resolved=True)
        if d.id == head.id
    ]
    assert (skipped.resolution, skipped.resolved_by) == ("skipped", "siti")
    assert skipped.resolution_note == "allocation withdrawn by the city; never valid"

    [step] = await runner.writer.redrive(behind)
    assert step.outcome == "applied"
    assert await applied_versions(sandbox, "budget-e") == [1, 3]
    assert await waiting(sandbox) == []
