"""The auditor's commands beside ``audit verify``: history, as-of, diff, report, and the web
API the console's auditor pages call."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import asyncpg
import orjson
import typer
import uvicorn
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from deploy.platform_cli import with_pool_at
from services.audit.asof import Moment, State, differences, explaining_events, rebuild
from services.audit.history import worker_history
from services.audit.report import build_report
from services.audit.web import create_app
from shared.auth import AuthSettings
from shared.privileges import AuditWebLogin
from shared.settings import SERVICES, DatabaseSettings, KafkaSettings
from shared.topic_reader import read_topics

out = Console(width=None if Console().is_terminal else 160)
T = TypeVar("T")
MONEY = {"invoiced", "paid", "arrears", "amount"}
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
KnownAt = Annotated[
    datetime | None, typer.Option(help="Only what was recorded up to this time (UTC if naive).")
]
TrueOn = Annotated[datetime | None, typer.Option(help="Only what happened by this date.")]


def _with_admin_pool(work: Callable[[asyncpg.Pool], Awaitable[T]]) -> T:
    return with_pool_at(DatabaseSettings().database_url, work)


def _moment(known_at: datetime | None, true_on: datetime | None) -> Moment:
    if known_at is not None and known_at.tzinfo is None:
        known_at = known_at.astimezone()  # as the operator's clock reads it
    return Moment(known_at=known_at, true_on=true_on.date() if true_on else None)


def _spinner(label: str) -> Progress:
    return Progress(
        TextColumn(label),
        BarColumn(),
        TextColumn("{task.completed} records"),
        console=Console(stderr=True),
    )


def history(worker: uuid.UUID, as_json: JsonOption = False) -> None:
    """Every event about WORKER across the four topics, with the coverage standing after each."""
    entries = asyncio.run(worker_history(KafkaSettings(), worker))
    if not entries:
        out.print(f"[red]no event about worker {worker} on any topic[/red]")
        raise typer.Exit(1)
    if as_json:
        print(json.dumps([e.as_json() for e in entries], indent=2, default=str))
        return
    table = Table("recorded", "event", "by", "policy", "on", "standing after", "where")
    for e in entries:
        due = f" ({len(e.standing.arrears)} months due)" if e.standing.arrears else ""
        table.add_row(
            e.recorded_at.strftime("%Y-%m-%d %H:%M:%S"),
            e.event_type,
            e.actor,
            e.policy_version or "",
            e.on.isoformat(),
            e.standing.status + due,
            f"{e.topic}/{e.partition}@{e.offset}",
        )
    out.print(table)


def _state(label: str, moment: Moment) -> State:
    async def work(pool: asyncpg.Pool) -> State:
        with _spinner(f"rebuilding {moment.describe()}") as bar:
            task = bar.add_task("rebuild", total=None)
            return await rebuild(
                pool, KafkaSettings(), label, moment, lambda n: bar.advance(task, n)
            )

    return _with_admin_pool(work)


def _print_state(state: State) -> None:
    out.print(f"[bold]{state.moment.describe()}[/bold] (schemas audit_{state.label}_*)")
    for figure in state.figures.values():
        table = Table(*figure.columns, title=figure.question)
        for row in figure.rows:
            table.add_row(*(_cell(c, v) for c, v in zip(figure.columns, row, strict=True)))
        out.print(table)


def _cell(column: str, value: Any) -> str:
    return f"Rp{value:,}" if column in MONEY and isinstance(value, int) else str(value)


def _state_json(state: State) -> dict[str, Any]:
    return {
        "moment": {"known_at": state.moment.known_at, "true_on": state.moment.true_on},
        "schemas": state.schemas,
        "offsets": state.offsets,
        "figures": {q: asdict(f) for q, f in state.figures.items()},
    }


def as_of(
    known_at: KnownAt = None,
    true_on: TrueOn = None,
    label: Annotated[
        str, typer.Option(help="Names the scratch schemas: audit_<label>_*.")
    ] = "asof",
    as_json: JsonOption = False,
) -> None:
    """The programme as known at a time or as true on a date, rebuilt from the topics.

    The state goes into scratch schemas (audit_<label>_*); the live projections are untouched.
    """
    state = _state(label, _moment(known_at, true_on))
    if as_json:
        print(json.dumps(_state_json(state), indent=2, default=str))
    else:
        _print_state(state)


def diff(
    from_known_at: Annotated[datetime | None, typer.Option(help="First state: known at.")] = None,
    from_true_on: Annotated[datetime | None, typer.Option(help="First state: true on.")] = None,
    to_known_at: Annotated[datetime | None, typer.Option(help="Second state: known at.")] = None,
    to_true_on: Annotated[datetime | None, typer.Option(help="Second state: true on.")] = None,
    as_json: JsonOption = False,
) -> None:
    """What changed between two as-of states, figure by figure, and the events that made it."""
    before = _moment(from_known_at, from_true_on)
    after = _moment(to_known_at, to_true_on)
    a, b = _state("diff_a", before), _state("diff_b", after)
    changes = differences(a, b)
    events = asyncio.run(_events_between(before, after))
    if as_json:
        print(
            json.dumps(
                {
                    "from": _state_json(a)["moment"],
                    "to": _state_json(b)["moment"],
                    "changes": [asdict(c) for c in changes],
                    "events": events,
                },
                indent=2,
                default=str,
            )
        )
        return
    out.print(f"from [bold]{before.describe()}[/bold] to [bold]{after.describe()}[/bold]")
    table = Table("figure", "row", "before", "after")
    for change in changes:
        table.add_row(
            change.question, " ".join(map(str, change.key)), str(change.before), str(change.after)
        )
    out.print(table)
    because = Table("recorded", "event", "worker", "details", title="because of these events")
    for event in events:
        because.add_row(
            event["recorded_at"],
            event["event_type"],
            str(event["worker_id"]),
            json.dumps({k: v for k, v in event["data"].items() if k != "worker_id"}),
        )
    out.print(because)


async def _events_between(before: Moment, after: Moment) -> list[dict[str, Any]]:
    kafka = KafkaSettings()
    envelopes = [
        orjson.loads(record.value or b"{}")
        async for batch in read_topics(kafka, [kafka.events_topic(s) for s in SERVICES])
        for record in batch
    ]
    found = explaining_events(envelopes, before, after)
    for envelope in found:  # personal data stays sealed, and out of an auditor's terminal
        envelope["data"] = {
            k: v
            for k, v in envelope["data"].items()
            if k not in ("personal", "claimant", "children")
        }
    return sorted(found, key=lambda e: e["recorded_at"])


def report(
    fiscal_year: Annotated[int, typer.Option(help="The fiscal (calendar) year.")],
    output: Annotated[Path, typer.Option(help="Where the HTML goes.")] = Path("report.html"),
    known_at: KnownAt = None,
    as_json: JsonOption = False,
) -> None:
    """The fiscal year's programme as an HTML report with charts.

    Each figure comes with its query, and the page with the topic offsets it covers.
    """

    async def work(pool: asyncpg.Pool) -> Any:
        with _spinner("rebuilding") as bar:
            task = bar.add_task("rebuild", total=None)
            moment = _moment(known_at, None)
            return await build_report(
                pool, KafkaSettings(), fiscal_year, moment.known_at, lambda n: bar.advance(task, n)
            )

    built = _with_admin_pool(work)
    output.write_text(built.html)
    if as_json:
        print(
            json.dumps(
                {
                    "fiscal_year": fiscal_year,
                    "known_at": built.state.moment.known_at,
                    "offsets": built.state.offsets,
                    "loss_ratio": built.loss_ratio,
                    "figures": {q: asdict(f) for q, f in built.figures.items()},
                    "html": str(output),
                },
                indent=2,
                default=str,
            )
        )
    else:
        out.print(f"report for {fiscal_year} written to {output}")


def web(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8010,
) -> None:
    """Serve the auditor's JSON API (the console's auditor pages call it with the user's token)."""

    async def serve() -> None:
        # Its own login: reads positions and letters, writes only its scratch schemas.
        pool = await asyncpg.create_pool(AuditWebLogin().dsn(), min_size=1, max_size=4)
        try:
            app = create_app(pool, KafkaSettings(), AuthSettings())
            config = uvicorn.Config(app, host=host, port=port, log_level="warning")
            await uvicorn.Server(config).serve()
        finally:
            await pool.close()

    asyncio.run(serve())
