"""Platform commands: verify the log, rebuild projections, inspect and re-drive dead letters."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

import asyncpg
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from services.catalog import projection_named
from shared.audit.checkpoints import CheckpointSettings
from shared.audit.verify import verify_log, verify_topics
from shared.db import service_dsn
from shared.deadletters import get_dead_letter, list_dead_letters
from shared.projection.replay import History, rebuild_and_switch, rebuild_into
from shared.projection.writer import ProjectionWriter
from shared.settings import SERVICES, DatabaseSettings, KafkaSettings
from shared.topic_reader import end_offsets

audit_app = typer.Typer(help="Check the event log: nothing altered, deleted or reordered.")
replay_app = typer.Typer(help="Rebuild projections from the topics alone.")
dead_letters_app = typer.Typer(help="Records a consumer could not process.")
out = Console()
T = TypeVar("T")

ServiceOption = Annotated[str, typer.Option(help=f"One of: {', '.join(SERVICES)}.")]


def _with_pool(service: str, work: Callable[[asyncpg.Pool], Awaitable[T]]) -> T:
    database = DatabaseSettings()
    return with_pool_at(
        service_dsn(database.database_url, service, database.service_role_password), work
    )


def with_pool_at(dsn: str, work: Callable[[asyncpg.Pool], Awaitable[T]]) -> T:
    """Run ``work`` with a small pool on ``dsn``, closed afterwards."""

    async def run() -> T:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
        try:
            return await work(pool)
        finally:
            await pool.close()

    return asyncio.run(run())


def _progress(label: str) -> Progress:
    return Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(), console=Console(stderr=True)
    )


@audit_app.command("verify")
def audit_verify(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    topics_only: Annotated[
        bool,
        typer.Option(
            "--topics-only",
            help="Only the topics' hash chains (an auditor with no database login): neither "
            "the stores nor the signed checkpoints are checked.",
        ),
    ] = False,
) -> None:
    """Recompute the hash chains of the four event topics, compare each store with its topic,
    and check the signed checkpoints of the stream heads; exit 1 on any finding."""
    kafka = KafkaSettings()
    topics = [kafka.events_topic(service) for service in SERVICES]
    signers = None if topics_only else CheckpointSettings().trusted_signers()

    async def run() -> Any:
        total = sum((await end_offsets(kafka, topics)).values())
        if signers is None:
            with _progress("verifying") as bar:
                task = bar.add_task("verify", total=total)
                return await verify_topics(kafka, topics, lambda n: bar.advance(task, n))
        conn = await asyncpg.connect(DatabaseSettings().database_url)
        try:
            with _progress("verifying") as bar:
                task = bar.add_task("verify", total=total)
                schemas = {service: service for service in SERVICES}
                return await verify_log(
                    kafka, conn, schemas, signers, lambda n: bar.advance(task, n)
                )
        finally:
            await conn.close()

    report = asyncio.run(run())
    if as_json:
        print(
            json.dumps(
                {
                    "ok": report.ok,
                    "stores_and_checkpoints_checked": not topics_only,
                    "events": report.events,
                    "topics": [
                        {
                            "topic": t.topic,
                            "events": t.events,
                            "duplicates": t.duplicates,
                            "findings": dict(t.findings),
                        }
                        for t in report.topics
                    ],
                    "findings": [
                        {
                            "kind": f.kind,
                            "topic": f.location.topic,
                            "partition": f.location.partition,
                            "offset": f.location.offset,
                            "stream_id": f.stream_id,
                            "stream_version": f.stream_version,
                            "detail": f.detail,
                        }
                        for f in report.findings
                    ],
                },
                indent=2,
            )
        )
    else:
        table = Table("topic", "events", "republished duplicates", "findings")
        for summary in report.topics:
            found = ", ".join(f"{k}: {n}" for k, n in summary.findings.items()) or "none"
            table.add_row(summary.topic, str(summary.events), str(summary.duplicates), found)
        out.print(table)
        for finding in report.findings:
            out.print(f"[red]{finding}[/red]")
        if topics_only:
            out.print("the stores and the signed checkpoints were not checked (--topics-only)")
        out.print("verified: every chain intact" if report.ok else "[red]the log was altered[/red]")
    raise typer.Exit(code=0 if report.ok else 1)


@replay_app.callback(invoke_without_command=True)
def replay(
    service: ServiceOption,
    projection: Annotated[str, typer.Option(help="Projection name, e.g. workers.")],
    into: Annotated[
        str | None, typer.Option(help="Build into this scratch schema; the live tables stay.")
    ] = None,
    as_known_at: Annotated[
        datetime | None, typer.Option(help="Only events recorded up to this time (with --into).")
    ] = None,
    as_true_on: Annotated[
        datetime | None, typer.Option(help="Only events that occurred by this date (with --into).")
    ] = None,
) -> None:
    """Rebuild a projection: in place without downtime, or into a scratch schema."""
    kafka = KafkaSettings()
    chosen = projection_named(service, projection)
    if (as_known_at or as_true_on) and not into:
        raise typer.BadParameter("history (--as-known-at, --as-true-on) needs --into SCHEMA")
    history = History(known_at=as_known_at, true_on=as_true_on.date() if as_true_on else None)

    async def run(pool: asyncpg.Pool) -> Any:
        topics = [kafka.events_topic(source) for source in chosen.sources]
        total = sum((await end_offsets(kafka, topics)).values())
        with _progress(f"rebuilding {service}.{projection}") as bar:
            task = bar.add_task("replay", total=total)
            advance = lambda n: bar.advance(task, n)  # noqa: E731 - one-line callback
            if into:
                return await rebuild_into(pool, into, chosen, kafka, history, advance)
            return await rebuild_and_switch(pool, service, chosen, kafka, advance)

    result = _with_pool(service, run)
    out.print(
        f"rebuilt {service}.{projection} into schema {result.schema}: {result.records} records "
        f"read, {result.applied} events applied, {result.dead_lettered} dead-lettered"
    )


@dead_letters_app.command("list")
def dead_letters_list(
    service: ServiceOption,
    all_: Annotated[bool, typer.Option("--all", help="Include re-driven ones.")] = False,
) -> None:
    """The dead letters of a service, oldest first."""
    letters = _with_pool(service, lambda pool: list_dead_letters(pool, service, all_))
    table = Table("id", "consumer", "source", "failed at", "reason", "re-driven")
    for letter in letters:
        table.add_row(
            str(letter.id),
            letter.consumer,
            f"{letter.topic}[{letter.partition}]@{letter.offset}",
            letter.failed_at.isoformat(timespec="seconds"),
            letter.reason,
            letter.redriven_at.isoformat(timespec="seconds") if letter.redriven_at else "",
        )
    out.print(table)
    out.print(f"{len(letters)} dead letters")


@dead_letters_app.command("show")
def dead_letters_show(service: ServiceOption, letter_id: int) -> None:
    """One dead letter, with its original bytes."""
    letter = _with_pool(service, lambda pool: get_dead_letter(pool, service, letter_id))
    if letter is None:
        raise typer.BadParameter(f"{service} has no dead letter {letter_id}")
    out.print(f"id {letter.id}, consumer {letter.consumer}")
    out.print(f"source {letter.topic}[{letter.partition}]@{letter.offset}")
    out.print(f"reason {letter.reason}")
    out.print(f"headers {letter.headers}")
    out.print((letter.value or b"").decode(errors="replace"), markup=False, highlight=False)


@dead_letters_app.command("redrive")
def dead_letters_redrive(service: ServiceOption, letter_id: int) -> None:
    """Apply a dead letter again through its projection's current rules."""
    kafka = KafkaSettings()

    async def run(pool: asyncpg.Pool) -> str | None:
        letter = await get_dead_letter(pool, service, letter_id)
        if letter is None:
            raise typer.BadParameter(f"{service} has no dead letter {letter_id}")
        projection = projection_named(service, letter.consumer.rsplit(".", 1)[-1])
        owners = {kafka.events_topic(source): source for source in projection.sources}
        writer = ProjectionWriter(pool, service, projection, owners, letter.consumer)
        return await writer.redrive(letter)

    still_failing = _with_pool(service, run)
    if still_failing:
        out.print(f"[red]still fails:[/red] {still_failing}")
        raise typer.Exit(code=1)
    out.print(f"dead letter {letter_id} applied")


def restore_command(
    service: Annotated[
        list[str] | None,
        typer.Option(help="Service to restore; repeat for several. Default: all four."),
    ] = None,
) -> None:
    """Refill lost databases from the topics.

    Each event store (after checking its topic's hash chains) and the write side derived from
    it. Run `berlian migrate` first; the services' projections rebuild themselves from the
    topics when they start.
    """
    from services.restore import TopicNotIntactError, restore_service
    from shared.eventstore.restore import StoreNotEmptyError

    kafka, database = KafkaSettings(), DatabaseSettings()
    for name in service or SERVICES:
        if name not in SERVICES:
            raise typer.BadParameter(f"unknown service {name!r}; known: {', '.join(SERVICES)}")

        async def run(name: str = name) -> Any:
            total = sum((await end_offsets(kafka, [kafka.events_topic(name)])).values())
            with _progress(f"restoring {name}") as bar:
                task = bar.add_task("restore", total=total)
                return await restore_service(name, kafka, database, lambda n: bar.advance(task, n))

        try:
            restored = asyncio.run(run())
        except (StoreNotEmptyError, TopicNotIntactError) as refused:
            out.print(f"[red]{name}: not restored: {refused}[/red]")
            raise typer.Exit(1) from None
        store = restored.store
        out.print(
            f"{name}: {store.events} events in {store.streams} streams, {store.reactions} "
            f"reaction keys, {store.republished} republished duplicates skipped; "
            f"write side: {restored.write_model_rows} rows"
        )
