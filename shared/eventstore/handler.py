"""The one way a command becomes events, for every service.

``CommandHandler.handle`` loads the command's stream, folds the decider's ``evolve`` over it,
asks the pure ``decide``, and appends what was decided after the version it read, together
with the inline projections of what it appended (the write-side tables) and its answer, in
one transaction. A command another
writer overtook (``ConcurrencyError``) is decided again on the new state, a bounded number of
times; a command already handled under its idempotency key returns its first answer and
decides nothing again.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

import asyncpg

from shared.db import DbConnection
from shared.decisions import Decided, Decider, Recorded
from shared.events.registry import parse
from shared.eventstore.inline import Appended, InlineProjection, apply_inline
from shared.eventstore.store import (
    AppendResult,
    CommandContext,
    ConcurrencyError,
    EventStore,
    to_new_events,
)

CommandT = TypeVar("CommandT")
StateT = TypeVar("StateT")
# The command's answer, kept with its events so that a retry receives the same answer.
Respond = Callable[[AppendResult], Any]
# A command built inside the transaction, for one that needs it (a key created, a number taken).
Prepare = Callable[[DbConnection], Awaitable[CommandT]]

ATTEMPTS = 5


@dataclass(frozen=True)
class Handled:
    """What a command did: ``result`` None when it decided nothing; ``response`` the answer
    (the first one, when ``result.duplicate``)."""

    result: AppendResult | None
    response: Any = None

    @property
    def replayed(self) -> bool:
        return self.result is not None and self.result.duplicate


class _AlreadyHandledError(Exception):
    """Unwinds an attempt that met its key already used (its own work rolled back)."""

    def __init__(self, result: AppendResult) -> None:
        self.result = result


@dataclass(frozen=True)
class Loaded(Generic[StateT]):
    state: StateT
    version: int


class CommandHandler:
    def __init__(
        self,
        store: EventStore,
        pool: asyncpg.Pool,
        inline: Sequence[InlineProjection] = (),
        attempts: int = ATTEMPTS,
    ) -> None:
        self.store = store
        self.pool = pool
        self.inline = inline
        self.attempts = attempts

    async def load(
        self,
        stream_id: str,
        decider: Decider[CommandT, StateT],
        conn: DbConnection | None = None,
    ) -> Loaded[StateT]:
        state, version = decider.initial, 0
        for stored in await self.store.read_stream(stream_id, conn):
            envelope, data = parse(stored.envelope)
            state, version = (
                decider.evolve(state, Recorded(data, envelope.recorded_at)),
                version + 1,
            )
        return Loaded(state, version)

    async def handle(
        self,
        stream_id: str,
        decider: Decider[CommandT, StateT],
        command: CommandT | Prepare[CommandT],
        context: CommandContext,
        *,
        worker_id: uuid.UUID | None = None,
        respond: Respond | None = None,
        conn: DbConnection | None = None,
    ) -> Handled:
        """Decide ``command`` on ``stream_id`` and append; inside ``conn``'s transaction (as a
        savepoint) when given, else in a transaction of its own."""
        key = context.idempotency_key
        if key is not None:
            first = await self.store.find_command(key, context.fingerprint, conn)
            if first is not None:
                return Handled(first, first.response)
        for attempt in range(1, self.attempts + 1):
            try:
                return await self._attempt(
                    stream_id, decider, command, context, worker_id, respond, conn
                )
            except _AlreadyHandledError as handled:
                return Handled(handled.result, handled.result.response)
            except ConcurrencyError:
                if attempt == self.attempts:
                    raise
        raise AssertionError("unreachable")  # the loop returns or raises

    async def _attempt(
        self,
        stream_id: str,
        decider: Decider[CommandT, StateT],
        command: CommandT | Prepare[CommandT],
        context: CommandContext,
        worker_id: uuid.UUID | None,
        respond: Respond | None,
        conn: DbConnection | None,
    ) -> Handled:
        async with self._transaction(conn) as tx:
            loaded = await self.load(stream_id, decider, tx)
            decided = decider.decide(
                await command(tx) if callable(command) else command, loaded.state
            )
            if not decided:
                return Handled(None)
            result = await self._append(tx, stream_id, loaded.version, decided, context, worker_id)
            if result.duplicate:
                raise _AlreadyHandledError(result)
            response = respond(result) if respond is not None else None
            if context.idempotency_key is not None and response is not None:
                await self.store.record_response(tx, context.idempotency_key, response)
            return Handled(result, response)

    async def _append(
        self,
        conn: DbConnection,
        stream_id: str,
        version: int,
        decided: Sequence[Decided],
        context: CommandContext,
        worker_id: uuid.UUID | None,
    ) -> AppendResult:
        """The command's own stream after the version it read; the other streams its decision
        writes (a worker's premiums, say) wherever they end. The first append claims the key;
        the result is the first append's, with the ids of every event appended."""
        by_stream: dict[str, list[Decided]] = {}
        for event in decided:
            by_stream.setdefault(event.stream_id or stream_id, []).append(event)
        own = by_stream.pop(stream_id, None)
        appends = ([(stream_id, version, own)] if own else []) + [
            (other, None, events) for other, events in by_stream.items()
        ]
        first: AppendResult | None = None
        event_ids: list[uuid.UUID] = []
        for target, expected, events in appends:
            appended = await self.store.append_within(
                conn,
                target,
                expected,
                to_new_events(events, worker_id),
                context if first is None else replace(context, idempotency_key=None),
            )
            if first is None:
                if appended.duplicate:
                    return appended
                first = appended
            event_ids += appended.event_ids
            appended_events = [Appended.of(envelope) for envelope in appended.envelopes]
            await apply_inline(conn, self.store.schema, self.inline, appended_events)
        assert first is not None  # decided is not empty
        return replace(first, event_ids=tuple(event_ids))

    @asynccontextmanager
    async def _transaction(self, conn: DbConnection | None) -> AsyncIterator[DbConnection]:
        if conn is not None:
            async with conn.transaction():
                yield conn
            return
        async with self.pool.acquire() as own, own.transaction():
            yield own
