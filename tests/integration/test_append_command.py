"""The single-command path on the real PostgreSQL: sealed after the head its caller read, the
append is one call of ``append_command``, which refuses a head that moved (in version or in
hash) and writes nothing then; a command costs a fixed, small number of statements."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from contract.events.registry import CATALOGUE
from contract.policy import policy_book
from services.billing.budget import AllocateBudget, BudgetRules
from shared.envelope import GENESIS_HASH
from shared.eventstore import ConcurrencyError, EventStore
from shared.eventstore.handler import CommandHandler
from shared.eventstore.store import CommandAppend, StreamEvents
from tests.integration.sandbox import ServiceSandbox
from tests.integration.test_eventstore import assert_chained, budget, context

pytestmark = pytest.mark.integration

NOW = datetime(2025, 3, 3, 2, 0, tzinfo=UTC)


def allocation(amount: int) -> AllocateBudget:
    return AllocateBudget(2025, "APBD", "regular", amount, NOW)


@pytest.mark.parametrize("moved", ["version", "hash"])
async def test_a_command_sealed_after_a_head_that_moved_writes_nothing(
    sandbox: ServiceSandbox, moved: str
) -> None:
    store = EventStore(sandbox.pool, sandbox.schema, sandbox.service, clock=lambda: NOW)
    first = await store.append("budget-2025", 0, [budget(1)], context())
    head = first.envelopes[-1]["hash"]
    read = (0, GENESIS_HASH) if moved == "version" else (1, "f" * 64)
    command = CommandAppend(
        [StreamEvents("budget-2025", read[0], [budget(2)], read[1])], context("k-1")
    )

    async with sandbox.pool.acquire() as conn, conn.transaction():
        (outcome,) = await store.append_batch(conn, [command])
        assert isinstance(outcome, ConcurrencyError)
        assert (outcome.expected, outcome.actual) == (read[0], 1)
        assert len(await store.read_stream("budget-2025", conn)) == 1
        assert (
            await conn.fetchval(
                f"SELECT last_hash FROM {sandbox.schema}.streams WHERE stream_id = 'budget-2025'"
            )
            == head
        )


async def test_a_command_costs_its_read_its_append_and_its_transaction(
    sandbox: ServiceSandbox,
) -> None:
    """Without inline projections: BEGIN, the stream read with its key's check, the append,
    COMMIT; and a retry of it the read alone in its transaction. Counted once the connection
    knows the types and has the statements prepared."""
    store = EventStore(sandbox.pool, sandbox.schema, sandbox.service, clock=lambda: NOW)
    handler = CommandHandler(store, sandbox.pool, CATALOGUE)
    rules = BudgetRules(policy_book())
    sent: list[str] = []
    async with sandbox.pool.acquire() as conn:
        await handler.handle("budget-2024", rules, allocation(1), context("k-0"), conn=conn)
        await handler.handle("budget-2024", rules, allocation(1), context("k-0"), conn=conn)
        conn.add_query_logger(lambda record: sent.append(record.query))
        await handler.handle("budget-2025", rules, allocation(100), context("k-1"), conn=conn)
        await handler.handle("budget-2025", rules, allocation(200), context("k-2"), conn=conn)
        again = await handler.handle(
            "budget-2025", rules, allocation(100), context("k-1"), conn=conn
        )
        await asyncio.sleep(0)  # the loggers run soon after each statement
        counted = list(sent)  # not the reset of the connection given back
    assert again.replayed
    assert len(counted) == 4 + 4 + 3, counted
    events = [e.envelope for e in await store.read_stream("budget-2025")]
    assert [e["data"]["amount"] for e in events] == [100, 200]
    assert_chained(events)


async def test_concurrent_commands_on_one_stream_are_decided_again_and_chained(
    sandbox: ServiceSandbox,
) -> None:
    store = EventStore(sandbox.pool, sandbox.schema, sandbox.service, clock=lambda: NOW)
    handler = CommandHandler(store, sandbox.pool, CATALOGUE, attempts=20)
    rules = BudgetRules(policy_book())

    await asyncio.gather(
        *(
            handler.handle("budget-2025", rules, allocation(amount), context(f"k-{amount}"))
            for amount in range(1, 7)
        )
    )

    events = [e.envelope for e in await store.read_stream("budget-2025")]
    assert sorted(e["data"]["amount"] for e in events) == list(range(1, 7))
    assert_chained(events)
