"""The one way a command becomes events, for every service.

``CommandHandler.handle`` loads the command's stream, folds the decider's ``evolve`` over it,
asks the pure ``decide``, and appends what was decided after the version (and hash) it read,
together with the inline projections of what it appended (the write-side tables) and its
answer, in one transaction. A command another
writer overtook (``ConcurrencyError``) is decided again on the new state, a bounded number of
times; a command already handled under its idempotency key returns its first answer and
decides nothing again. Every attempt runs on one connection, and the key's check is read with
the stream, so that a command costs few round trips to PostgreSQL. ``handle_request`` handles a
batch of commands as one request whose whole answer (each item done or refused, and why) is
recorded under the request's key in the batch's transaction: a retry receives that answer and
decides nothing again, not even the items the first attempt refused.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import asyncpg

from shared.catalogue import EventCatalogue
from shared.db import DbConnection
from shared.decisions import Decided, Decider, Recorded, RefusedError
from shared.envelope import GENESIS_HASH
from shared.eventstore.inline import Appended, InlineProjection, apply_inline
from shared.eventstore.store import (
    Answered,
    AppendOutcome,
    AppendResult,
    CommandAppend,
    CommandContext,
    ConcurrencyError,
    EventStore,
    StoredEvent,
    StreamEvents,
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


# A batched request's whole answer (JSON) from its items' outcomes, built in its transaction.
Answer = Callable[[list[Handled | Exception]], Any]


@dataclass(frozen=True)
class BatchItem(Generic[CommandT]):
    """One command of a batch: the stream it is decided on, who asks under which key, the
    worker its events are about, and its answer."""

    stream_id: str
    command: CommandT
    context: CommandContext
    worker_id: uuid.UUID | None = None
    respond: Respond | None = None


# Inside a batch's transaction, the items (by index) about to be appended: writes what they
# need and returns the refusals of those it refuses.
BeforeAppend = Callable[[DbConnection, list[int]], Awaitable[Mapping[int, Exception]]]


def command_append(
    stream_id: str,
    loaded: Loaded[Any],
    decided: Sequence[Decided],
    context: CommandContext,
    worker_id: uuid.UUID | None,
    respond: Respond | None,
) -> CommandAppend:
    """The command's own stream after the version (and hash) it read; the other streams its
    decision writes (a worker's premiums, say) wherever they end."""
    by_stream: dict[str, list[Decided]] = {}
    for event in decided:
        by_stream.setdefault(event.stream_id or stream_id, []).append(event)
    own = by_stream.pop(stream_id, None)
    streams = (
        [StreamEvents(stream_id, loaded.version, to_new_events(own, worker_id), loaded.last_hash)]
        if own
        else []
    ) + [
        StreamEvents(other, None, to_new_events(events, worker_id))
        for other, events in by_stream.items()
    ]
    return CommandAppend(streams, context, respond)


class _RedoError(Exception):
    """Unwinds a batch round that met items handled meanwhile or refused by the store
    (``settled``: their answers) or overtaken on their stream (decided again)."""

    def __init__(
        self, settled: dict[int, Handled | Exception], overtaken: dict[int, Exception]
    ) -> None:
        self.settled = settled
        self.overtaken = overtaken


def _redo_unless_all_appended(appended: Mapping[int, AppendOutcome]) -> None:
    settled: dict[int, Handled | Exception] = {}
    overtaken: dict[int, Exception] = {}
    for index, outcome in appended.items():
        if isinstance(outcome, ConcurrencyError):
            overtaken[index] = outcome
        elif isinstance(outcome, Exception):
            settled[index] = outcome
        elif outcome.duplicate:
            settled[index] = Handled(outcome, outcome.response)
    if settled or overtaken:
        raise _RedoError(settled, overtaken)


class _AlreadyHandledError(Exception):
    """Unwinds an attempt that met its key already used (its own work rolled back)."""

    def __init__(self, result: AppendResult) -> None:
        self.result = result


@dataclass(frozen=True)
class Loaded(Generic[StateT]):
    state: StateT
    version: int
    last_hash: str = GENESIS_HASH  # of the event at ``version``


class CommandHandler:
    def __init__(
        self,
        store: EventStore,
        pool: asyncpg.Pool,
        catalogue: EventCatalogue,
        inline: Sequence[InlineProjection] = (),
        attempts: int = ATTEMPTS,
    ) -> None:
        self.store = store
        self.pool = pool
        self.catalogue = catalogue
        self.inline = inline
        self.attempts = attempts

    async def load(
        self,
        stream_id: str,
        decider: Decider[CommandT, StateT],
        conn: DbConnection | None = None,
    ) -> Loaded[StateT]:
        return self._fold(decider, await self.store.read_stream(stream_id, conn))

    def _fold(
        self, decider: Decider[CommandT, StateT], events: Sequence[StoredEvent]
    ) -> Loaded[StateT]:
        state = decider.initial
        for stored in events:
            envelope, data = self.catalogue.parse(stored.envelope)
            state = decider.evolve(state, Recorded(data, envelope.recorded_at))
        if not events:
            return Loaded(state, 0)
        return Loaded(state, len(events), events[-1].envelope["hash"])

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
        savepoint) when given, else in a transaction of its own, every attempt on one
        connection of the pool."""
        async with self._connection(conn) as db:
            for attempt in range(1, self.attempts + 1):
                try:
                    return await self._attempt(
                        stream_id, decider, command, context, worker_id, respond, db
                    )
                except _AlreadyHandledError as handled:
                    return Handled(handled.result, handled.result.response)
                except ConcurrencyError:
                    if attempt == self.attempts:
                        raise
                except RefusedError:
                    # A first attempt under this key may have committed after the check: its
                    # answer stands, not a refusal decided on the state that attempt left.
                    key = context.idempotency_key
                    first = (
                        None
                        if key is None
                        else await self.store.find_command(key, context.fingerprint, db)
                    )
                    if first is None:
                        raise
                    return Handled(first, first.response)
        raise AssertionError("unreachable")  # the loop returns or raises

    async def _attempt(
        self,
        stream_id: str,
        decider: Decider[CommandT, StateT],
        command: CommandT | Prepare[CommandT],
        context: CommandContext,
        worker_id: uuid.UUID | None,
        respond: Respond | None,
        conn: DbConnection,
    ) -> Handled:
        async with conn.transaction():
            read = await self.store.read_unless_handled(stream_id, context, conn)
            if isinstance(read, AppendResult):
                return Handled(read, read.response)
            loaded = self._fold(decider, read)
            decided = decider.decide(
                await command(conn) if callable(command) else command, loaded.state
            )
            if not decided:
                return Handled(None)
            append = command_append(stream_id, loaded, decided, context, worker_id, respond)
            (outcome,) = await self.append(conn, [append])
            if isinstance(outcome, Exception):
                raise outcome
            if outcome.duplicate:
                raise _AlreadyHandledError(outcome)
            return Handled(outcome, outcome.response)

    async def handle_many(
        self,
        decider: Decider[CommandT, StateT],
        items: Sequence[BatchItem[CommandT]],
        before_append: BeforeAppend | None = None,
    ) -> list[Handled | Exception]:
        """Handle independent commands together, in one transaction: each decided on its own
        stream's state, all appended in one batch. An item refused (by ``decide``, by
        ``before_append``, by a row its inline projection cannot write) is answered with its
        error alone and the rest commit; an item handled before under its key returns its
        first answer. ``before_append`` runs inside the transaction with the items about to
        be appended: it writes what they need and returns the refusals of those it refuses."""
        async with self.pool.acquire() as conn, conn.transaction():
            return await self._handle_many(conn, decider, items, before_append)

    async def handle_request(
        self,
        key: str | None,
        fingerprint: str | None,
        decider: Decider[CommandT, StateT],
        items: Sequence[BatchItem[CommandT]],
        answer: Answer,
        before_append: BeforeAppend | None = None,
    ) -> Answered:
        """``handle_many`` as one request under ``key``: ``answer`` makes the request's whole
        answer of its items' outcomes, recorded under the key in the transaction of what they
        appended. A request answered before under the key gets that answer (``replayed``) and
        nothing is decided again: an item refused the first time stays refused, whatever
        changed since; the key recorded for another request (``fingerprint``) is refused
        (IdempotencyKeyReusedError). A concurrent first attempt under the key waits for this
        one, then gets its answer. Without a key, the answer is given and not recorded."""
        async with self.pool.acquire() as conn, conn.transaction():
            if key is not None:
                first = await self.store.claim_answer(conn, key, fingerprint)
                if first is not None:
                    return first
            outcomes = await self._handle_many(conn, decider, items, before_append)
            # Only decisions are recorded for good: an item still overtaken after every attempt
            # says nothing about the request, so nothing of it is kept (409) and a retry under
            # the key decides again.
            for outcome in outcomes:
                if isinstance(outcome, ConcurrencyError):
                    raise outcome
            response = answer(outcomes)
            if key is not None:
                await self.store.record_answer(conn, key, fingerprint, response)
        return Answered(response)

    async def _handle_many(
        self,
        conn: DbConnection,
        decider: Decider[CommandT, StateT],
        items: Sequence[BatchItem[CommandT]],
        before_append: BeforeAppend | None,
    ) -> list[Handled | Exception]:
        outcomes: dict[int, Handled | Exception] = {}
        keys = {
            item.context.idempotency_key: item.context.fingerprint
            for item in items
            if item.context.idempotency_key is not None
        }
        firsts = await self.store.find_commands(keys, conn) if keys else {}
        for index, item in enumerate(items):
            first = firsts.get(item.context.idempotency_key or "")
            if first is not None:
                outcomes[index] = (
                    first if isinstance(first, Exception) else Handled(first, first.response)
                )
        pending = [index for index in range(len(items)) if index not in outcomes]
        if pending:
            run = _BatchRun(self, conn, decider, items, before_append, outcomes)
            await run.settle(pending, self.attempts)
        return [outcomes[index] for index in range(len(items))]

    async def load_many(
        self, stream_ids: set[str], decider: Decider[CommandT, StateT], conn: DbConnection
    ) -> dict[str, Loaded[StateT]]:
        """``load`` of many streams in one read."""
        events = await self.store.read_streams(sorted(stream_ids), conn)
        return {
            stream_id: self._fold(decider, events.get(stream_id, [])) for stream_id in stream_ids
        }

    async def append(
        self, conn: DbConnection, appends: Sequence[CommandAppend]
    ) -> list[AppendOutcome]:
        """The batch's appends, then the inline projections of every event appended, applied
        at once (unless an append was refused: the caller rolls back)."""
        outcomes = await self.store.append_batch(conn, appends) if appends else []
        if all(isinstance(o, AppendResult) and not o.duplicate for o in outcomes):
            appended = [
                Appended.of(envelope, self.catalogue, event.decided)
                for append, outcome in zip(appends, outcomes, strict=True)
                if isinstance(outcome, AppendResult)
                for envelope, event in zip(
                    outcome.envelopes, [e for s in append.streams for e in s.events], strict=True
                )
            ]
            await apply_inline(conn, self.store.schema, self.inline, appended)
        return outcomes

    @asynccontextmanager
    async def _connection(self, conn: DbConnection | None) -> AsyncIterator[DbConnection]:
        if conn is not None:
            yield conn
            return
        async with self.pool.acquire() as own:
            yield own


@dataclass
class _BatchRun(Generic[CommandT, StateT]):
    """One ``handle_many``: its items, inside its transaction, and their answers so far."""

    handler: CommandHandler
    conn: DbConnection
    decider: Decider[CommandT, StateT]
    items: Sequence[BatchItem[CommandT]]
    before_append: BeforeAppend | None
    outcomes: dict[int, Handled | Exception]

    async def settle(self, pending: list[int], attempts: int) -> None:
        """Rounds of the pending items, each in a savepoint, until each is answered. A round
        that meets items handled meanwhile, or refused by the store, is rolled back and run
        again without them; items overtaken on their stream (by another transaction, or by an
        earlier item of the batch) wait until the others are appended, then are decided again
        on the new state, a bounded number of times. A round whose writes fail is split in
        halves until the failing item is alone, and refused with its error."""
        while pending:
            try:
                async with self.conn.transaction():
                    self.outcomes |= await self._round(pending)
                return
            except _RedoError as redo:
                self.outcomes |= redo.settled
                pending = [index for index in pending if index not in self.outcomes]
                if redo.overtaken:
                    rest = [index for index in pending if index not in redo.overtaken]
                    await self.settle(rest, attempts)
                    attempts -= 1
                    if attempts == 0:
                        self.outcomes |= redo.overtaken
                    pending = [index for index in pending if index not in self.outcomes]
            except asyncpg.DeadlockDetectedError:
                attempts -= 1
                if attempts == 0:
                    raise
            except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as error:
                if len(pending) == 1:
                    self.outcomes[pending[0]] = error
                    return
                half = len(pending) // 2
                for part in (pending[:half], pending[half:]):
                    await self.settle(part, attempts)
                return

    async def _round(self, pending: list[int]) -> dict[int, Handled | Exception]:
        conn, decider, items = self.conn, self.decider, self.items
        loaded = await self.handler.load_many(
            {items[index].stream_id for index in pending}, decider, conn
        )
        settled: dict[int, Handled | Exception] = {}
        decided: dict[int, Sequence[Decided]] = {}
        for index in pending:
            item = items[index]
            try:
                events = decider.decide(item.command, loaded[item.stream_id].state)
            except RefusedError as refused:
                settled[index] = refused
                continue
            if events:
                decided[index] = events
            else:
                settled[index] = Handled(None)
        if self.before_append is not None and decided:
            refusals = await self.before_append(conn, list(decided))
            settled |= refusals
            decided = {i: events for i, events in decided.items() if i not in refusals}
        order = list(decided)
        appends = [
            command_append(
                items[index].stream_id,
                loaded[items[index].stream_id],
                decided[index],
                items[index].context,
                items[index].worker_id,
                items[index].respond,
            )
            for index in order
        ]
        appended = dict(zip(order, await self.handler.append(conn, appends), strict=True))
        _redo_unless_all_appended(appended)
        for index, outcome in appended.items():
            assert isinstance(outcome, AppendResult)
            settled[index] = Handled(outcome, outcome.response)
        return settled
