"""Reactions: what a service does when another service decides, as commands for the one
command handler.

A ``Reaction`` turns a consumed event into commands; ``Reacting`` runs it as a consumer of the
projection runner, inside the transaction that records the consumed position, so each reaction
happens exactly once. A keyed reaction's command carries the key derived from the causing event
(``reaction_key``), which a restore rebuilds from the events' causation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from shared.db import DbConnection
from shared.decisions import Decider, RefusedError
from shared.eventstore.handler import CommandHandler
from shared.eventstore.migrations import Migration
from shared.eventstore.store import CommandContext, reaction_key
from shared.projection.changes import RowChange
from shared.projection.decode import ConsumedEvent
from shared.projection.writer import Projection


@dataclass(frozen=True)
class Reacted:
    """A command a reaction asks for: on which stream, under which rules, about which worker.
    ``caused`` records the causing event (and its key) with the command: one command per event."""

    stream_id: str
    decider: Decider[Any, Any]
    command: Any
    worker_id: Any = None
    caused: bool = True


class Reaction(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def sources(self) -> Sequence[str]: ...

    @property
    def event_types(self) -> frozenset[str]: ...

    async def commands(self, conn: DbConnection, event: ConsumedEvent) -> Sequence[Reacted]:
        """The commands the event calls for, read inside the consuming transaction."""
        ...


@dataclass(frozen=True)
class Reacting:
    """A reaction as the runner's consumer, with the read model it keeps beside it if any."""

    reaction: Reaction
    handler: CommandHandler
    rows: Projection | None = None

    @property
    def name(self) -> str:
        return self.reaction.name

    @property
    def sources(self) -> Sequence[str]:
        return self.reaction.sources

    @property
    def event_types(self) -> frozenset[str]:
        return self.reaction.event_types

    @property
    def migrations(self) -> Sequence[Migration]:
        return self.rows.migrations if self.rows else ()

    @property
    def tables(self) -> Sequence[str]:
        return self.rows.tables if self.rows else ()

    def apply(self, event: ConsumedEvent) -> Sequence[RowChange]:
        return self.rows.apply(event) if self.rows else []

    async def react(self, conn: DbConnection, event: ConsumedEvent) -> None:
        envelope = event.envelope
        for reacted in await self.reaction.commands(conn, event):
            context = CommandContext(
                actor_id="system",
                actor_role="system",
                correlation_id=envelope.correlation_id,
                causation_id=envelope.event_id if reacted.caused else None,
                idempotency_key=reaction_key(envelope.event_id) if reacted.caused else None,
            )
            try:
                await self.handler.handle(
                    reacted.stream_id,
                    reacted.decider,
                    reacted.command,
                    context,
                    worker_id=reacted.worker_id,
                    conn=conn,
                )
            except RefusedError as refused:
                # What another service decided and the rules here refuse (a deceased person
                # designated, an overlapping period) is never a silent no-op: the event is
                # dead-lettered with the refusal, and the dead-letter alert fires.
                raise ReactionRefusedError(
                    f"{self.name} refused to act on {envelope.event_type} {envelope.event_id}: "
                    f"{refused}"
                ) from refused


class ReactionRefusedError(RuntimeError):
    """A reaction the rules refuse: its causing event is dead-lettered with this reason."""
