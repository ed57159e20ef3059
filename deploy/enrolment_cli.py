"""``berlian import``: a kelurahan's list sent to the enrolment API as the officer who sends it,
its job followed with a progress bar until it is done; ``berlian erase``: a person's key
destroyed."""

from __future__ import annotations

import asyncio
import csv
import time
import uuid
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any, NoReturn

import asyncpg
import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from services.enrolment.erasure import erase_worker
from services.enrolment.service import SERVICE
from services.enrolment.wiring import enrolment_service
from shared.db import service_dsn
from shared.settings import DatabaseSettings

out = Console()
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# How often the progress of an import is asked for, and how many refused rows are printed.
POLL_SECONDS = 0.5
REFUSED_SHOWN = 20


def import_command(
    list_file: Annotated[
        Path | None,
        typer.Argument(
            exists=True,
            dir_okay=False,
            readable=True,
            show_default=False,
            help="The list: CSV (comma or semicolon, UTF-8) or XLSX.",
        ),
    ] = None,
    token: Annotated[
        str,
        typer.Option(
            envvar="BERLIAN_TOKEN",
            show_default=False,
            help="The kelurahan officer's bearer token (prefer the BERLIAN_TOKEN variable): the "
            "import is theirs, for their own kelurahan, recorded under their name.",
        ),
    ] = "",
    api: Annotated[
        str, typer.Option(envvar="BERLIAN_ENROLMENT_URL", help="The enrolment API.")
    ] = "http://127.0.0.1:8001",
    report: Annotated[
        Path | None, typer.Option(help="Write the per-row report (CSV) here.")
    ] = None,
    follow: Annotated[
        str | None,
        typer.Option(
            help="Follow an import sent before (its id) instead of sending a file: after a "
            "token expired while it ran, say."
        ),
    ] = None,
) -> None:
    """Send a kelurahan's list to the enrolment API, as the officer whose token it is, and
    follow its progress until it is done; a re-import registers nothing twice."""
    if not token:
        out.print("[red]no token:[/red] set BERLIAN_TOKEN (berlian token --role ...) or --token")
        raise typer.Exit(code=2)
    if (list_file is None) == (follow is None):
        out.print("[red]name a list to import, or --follow the id of an import sent before[/red]")
        raise typer.Exit(code=2)
    credentials = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=api, timeout=httpx.Timeout(600, connect=10)) as client:
        try:
            if list_file is not None:
                location = _send(client, list_file, credentials)
            else:
                location = f"/imports/{follow}"
            job = _followed(client, location, credentials)
            out.print(
                f"batch {job['batch_id']}: {job['registered']} registered, "
                f"{job['already_registered']} already registered, {job['refused']} refused"
            )
            if job["state"] == "failed":
                out.print("[red]the import failed:[/red]", end=" ")
                out.print(str(job["failure"]), markup=False)
                raise typer.Exit(code=1)
            _report(client, job, credentials, report)
        except httpx.HTTPError as error:
            out.print(f"[red]cannot reach the enrolment API at {api}:[/red] {error}")
            raise typer.Exit(code=1) from None


def _send(client: httpx.Client, list_file: Path, credentials: dict[str, str]) -> str:
    """Send the list (streamed from the disk) and return where its job is followed."""
    kind = XLSX if list_file.suffix.lower() == ".xlsx" else "text/csv"
    # One key for this sending: a retry of it answers the same job.
    headers = {**credentials, "content-type": kind, "Idempotency-Key": str(uuid.uuid4())}
    with out.status(f"sending {list_file.name}"), list_file.open("rb") as content:
        answer = client.post("/imports", content=content, headers=headers)
    if answer.status_code not in (200, 202):
        _refused(f"cannot import {list_file}", answer)
    return str(answer.headers["location"])


def _followed(client: httpx.Client, location: str, credentials: dict[str, str]) -> dict[str, Any]:
    """The job once it is done or failed, its progress shown meanwhile."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=out, transient=False) as progress:
        task = progress.add_task("importing", total=None, rate="")
        while True:
            answer = client.get(location, headers=credentials)
            if answer.status_code == 401:
                import_id = location.rsplit("/", 1)[-1]
                out.print(
                    "[red]the token expired while the import ran;[/red] the import goes on in "
                    "the service: follow it with a new token: "
                    f"berlian import --follow {import_id} [--report FILE]"
                )
                raise typer.Exit(code=1)
            if answer.status_code != 200:
                _refused("cannot follow the import", answer)
            job: dict[str, Any] = answer.json()
            rate = f"{job['rows_per_second']:,.0f} rows/s" if job["rows_per_second"] else ""
            progress.update(
                task,
                total=job["rows_total"],
                completed=job["rows_done"],
                description=job["state"],
                rate=rate,
            )
            if job["state"] in ("done", "failed"):
                return job
            time.sleep(POLL_SECONDS)


def _report(
    client: httpx.Client, job: dict[str, Any], credentials: dict[str, str], path: Path | None
) -> None:
    """The first refused rows printed, and the whole report written to ``path`` (streamed)."""
    shown = 0
    with (
        client.stream("GET", job["report"], headers=credentials) as answer,
        path.open("w", encoding="utf-8") if path else nullcontext() as written,
    ):
        if answer.status_code != 200:
            answer.read()
            _refused("cannot fetch the report", answer)

        def lines() -> Iterator[str]:
            for line in answer.iter_lines():
                if written is not None:
                    written.write(line + "\n")
                yield line

        for row in csv.DictReader(lines()):
            if row["outcome"] == "refused":
                if shown < REFUSED_SHOWN:
                    out.print(f"  row {row['row']}: {row['reasons']}", markup=False)
                shown += 1
    if shown > REFUSED_SHOWN:
        out.print(f"  ... and {shown - REFUSED_SHOWN:,} more refused rows (see the report)")
    if path is not None:
        out.print(f"report written to {path}")


def _refused(what: str, answer: httpx.Response) -> NoReturn:
    """Print the API's refusal (its own words, not markup) and end the command."""
    try:
        detail = str(answer.json().get("detail", answer.text))
    except ValueError:
        detail = answer.text
    out.print(f"[red]{what} ({answer.status_code}):[/red]", end=" ")
    out.print(detail, markup=False)
    raise typer.Exit(code=1)


def erase_command(
    worker_id: Annotated[str, typer.Argument(help="The worker's id (UUID).")],
    confirm: Annotated[bool, typer.Option("--yes", help="Confirm: this cannot be undone.")] = False,
) -> None:
    """Erase a person's personal data everywhere by destroying their key (irreversible)."""
    if not confirm:
        out.print("erasure cannot be undone: repeat with --yes")
        raise typer.Exit(code=1)
    database = DatabaseSettings()

    async def run() -> bool:
        dsn = service_dsn(database.database_url, SERVICE, database.service_role_password)
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        try:
            service = enrolment_service(pool)
            return await erase_worker(service, uuid.UUID(worker_id))
        finally:
            await pool.close()

    erased = asyncio.run(run())
    out.print(f"worker {worker_id}: " + ("erased" if erased else "no key held (already erased)"))
