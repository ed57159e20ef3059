"""Platform commands: verify the log, rebuild projections, inspect and re-drive dead letters."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

import asyncpg
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from contract.events.registry import CATALOGUE
from services.catalog import projection_named
from shared.audit.checkpoints import CheckpointSettings
from shared.audit.verify import verify_log, verify_topics
from shared.db import service_dsn
from shared.deadletters import DeadLetter, get_dead_letter, list_dead_letters
from shared.projection.replay import History, Processes, rebuild_and_switch, rebuild_into
from shared.projection.writer import ProjectionWriter, RedriveStep, SkipRefusedError
from shared.settings import SERVICES, DatabaseSettings, KafkaSettings
from shared.topic_reader import end_offsets

audit_app = typer.Typer(help="Check the event log: nothing altered, deleted or reordered.")
replay_app = typer.Typer(help="Rebuild projections from the topics alone.")
dead_letters_app = typer.Typer(
    help="Records a consumer could not process, and the streams parked behind them."
)
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
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="Processes reading the topics, each a group of partitions (default: one per "
            "core, one alone below 50,000 records; 1: this process alone).",
        ),
    ] = None,
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
                return await verify_topics(
                    kafka, topics, lambda n: bar.advance(task, n), workers=workers
                )
        conn = await asyncpg.connect(DatabaseSettings().database_url)
        try:
            with _progress("verifying") as bar:
                task = bar.add_task("verify", total=total)
                schemas = {service: service for service in SERVICES}
                return await verify_log(
                    kafka, conn, schemas, signers, lambda n: bar.advance(task, n), workers=workers
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
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Processes rebuilding side by side, each a group of the topics' partitions "
            "(default: one per core).",
        ),
    ] = os.cpu_count() or 1,
) -> None:
    """Rebuild a projection: in place without downtime, or into a scratch schema."""
    kafka = KafkaSettings()
    chosen = projection_named(service, projection)
    if (as_known_at or as_true_on) and not into:
        raise typer.BadParameter("history (--as-known-at, --as-true-on) needs --into SCHEMA")
    history = History(known_at=as_known_at, true_on=as_true_on.date() if as_true_on else None)
    database = DatabaseSettings()
    dsn = service_dsn(database.database_url, service, database.service_role_password)
    processes = Processes(workers, dsn) if workers > 1 else None

    async def run(pool: asyncpg.Pool) -> Any:
        topics = [kafka.events_topic(source) for source in chosen.sources]
        total = sum((await end_offsets(kafka, topics)).values())
        with _progress(f"rebuilding {service}.{projection}") as bar:
            task = bar.add_task("replay", total=total)
            advance = lambda n: bar.advance(task, n)  # noqa: E731 - one-line callback
            if into:
                return await rebuild_into(
                    pool, into, chosen, CATALOGUE, kafka, history, advance, processes
                )
            return await rebuild_and_switch(
                pool, service, chosen, CATALOGUE, kafka, advance, processes
            )

    result = with_pool_at(dsn, run)
    out.print(
        f"rebuilt {service}.{projection} into schema {result.schema}: {result.records} records "
        f"read, {result.applied} events applied, {result.dead_lettered} dead-lettered, "
        f"{result.parked_streams} streams parked"
    )


def _state(letter: DeadLetter) -> str:
    if letter.resolution is not None:
        return letter.resolution
    return "parked" if letter.parked else "failed"


@dead_letters_app.command("list")
def dead_letters_list(
    service: ServiceOption,
    all_: Annotated[bool, typer.Option("--all", help="Include resolved ones.")] = False,
) -> None:
    """The dead letters of a service, oldest first: failed, and parked behind a failure."""
    letters = _with_pool(service, lambda pool: list_dead_letters(pool, service, all_))
    table = Table("id", "consumer", "source", "stream", "state", "failed at", "reason")
    for letter in letters:
        table.add_row(
            str(letter.id),
            letter.consumer,
            f"{letter.topic}[{letter.partition}]@{letter.offset}",
            f"{letter.stream_id} v{letter.stream_version}" if letter.stream_id else "",
            _state(letter),
            letter.failed_at.isoformat(timespec="seconds"),
            letter.reason,
        )
    out.print(table)
    waiting = [letter for letter in letters if letter.resolution is None]
    streams = {(letter.consumer, letter.stream_id) for letter in waiting if letter.stream_id}
    out.print(f"{len(letters)} dead letters; {len(waiting)} waiting, {len(streams)} streams parked")


@dead_letters_app.command("show")
def dead_letters_show(service: ServiceOption, letter_id: int) -> None:
    """One dead letter, with its original bytes."""
    letter = _with_pool(service, lambda pool: get_dead_letter(pool, service, letter_id))
    if letter is None:
        raise typer.BadParameter(f"{service} has no dead letter {letter_id}")
    out.print(f"id {letter.id}, consumer {letter.consumer}")
    out.print(f"source {letter.topic}[{letter.partition}]@{letter.offset}")
    if letter.stream_id:
        out.print(f"stream {letter.stream_id} version {letter.stream_version}")
    out.print(f"state {_state(letter)}")
    out.print(f"reason {letter.reason}")
    if letter.resolved_at is not None:
        by = f" by {letter.resolved_by}" if letter.resolved_by else ""
        out.print(f"resolved {letter.resolved_at.isoformat(timespec='seconds')}{by}")
        if letter.resolution_note:
            out.print(f"note {letter.resolution_note}", markup=False)
    out.print(f"headers {letter.headers}")
    out.print((letter.value or b"").decode(errors="replace"), markup=False, highlight=False)


def _letter_writer(
    pool: asyncpg.Pool, service: str, letter_id: int
) -> Awaitable[tuple[DeadLetter, ProjectionWriter]]:
    async def find() -> tuple[DeadLetter, ProjectionWriter]:
        kafka = KafkaSettings()
        letter = await get_dead_letter(pool, service, letter_id)
        if letter is None:
            raise typer.BadParameter(f"{service} has no dead letter {letter_id}")
        projection = projection_named(service, letter.consumer.rsplit(".", 1)[-1])
        owners = {kafka.events_topic(source): source for source in projection.sources}
        return letter, ProjectionWriter(
            pool, service, projection, CATALOGUE, owners, letter.consumer
        )

    return find()


@dead_letters_app.command("redrive")
def dead_letters_redrive(service: ServiceOption, letter_id: int) -> None:
    """Apply a dead letter again through its projection's current rules, with every letter of
    its stream parked behind it, in order; stop at the first that still fails.

    Exit 0 when the sequence is cleared, 1 when a letter still fails or none was waiting.
    """

    async def run(pool: asyncpg.Pool) -> list[RedriveStep]:
        letter, writer = await _letter_writer(pool, service, letter_id)
        return await writer.redrive(letter)

    steps = _with_pool(service, run)
    for step in steps:
        colour = {"applied": "green", "fails": "red", "not_waiting": "red"}.get(
            step.outcome, "yellow"
        )
        out.print(f"dead letter {step.letter_id}: [{colour}]{step.outcome}[/{colour}]")
        out.print(f"  {step.detail}", markup=False, highlight=False)
    applied = sum(step.outcome == "applied" for step in steps)
    out.print(f"{applied} of {len(steps)} letters applied")
    if any(step.outcome in ("fails", "not_waiting") for step in steps):
        raise typer.Exit(code=1)


@dead_letters_app.command("skip")
def dead_letters_skip(
    service: ServiceOption,
    letter_id: int,
    operator: Annotated[str, typer.Option(help="Who decides to skip it (recorded).")],
    reason: Annotated[str, typer.Option(help="Why it is skipped (recorded).")],
) -> None:
    """Pass over the oldest waiting letter of a stream deliberately, never applying it.

    The letters parked behind it stay until re-driven (``deadletters redrive``)."""

    async def run(pool: asyncpg.Pool) -> DeadLetter:
        letter, writer = await _letter_writer(pool, service, letter_id)
        await writer.skip(letter, operator, reason)
        return letter

    try:
        letter = _with_pool(service, run)
    except SkipRefusedError as refused:
        out.print(f"[red]not skipped:[/red] {refused}")
        raise typer.Exit(code=1) from None
    out.print(f"dead letter {letter.id} skipped by {operator.strip()}, not applied")


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
            f"write side: {restored.write_side_events} events replayed"
        )
