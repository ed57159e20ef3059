"""``berlian import``: a kelurahan's CSV list sent to the enrolment API as the officer who sends
it; ``berlian erase``: a person's key destroyed."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Annotated, NoReturn

import asyncpg
import httpx
import typer
from rich.console import Console

from services.enrolment.erasure import erase_worker
from services.enrolment.service import SERVICE
from services.enrolment.wiring import enrolment_service
from shared.db import service_dsn
from shared.settings import DatabaseSettings

out = Console()
IMPORT_SECONDS = 3600.0


def import_command(
    csv_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    token: Annotated[
        str,
        typer.Option(
            envvar="BERLIAN_TOKEN",
            show_default=False,
            help="The kelurahan officer's bearer token (prefer the BERLIAN_TOKEN variable): the "
            "import is theirs, for their own kelurahan, recorded under their name.",
        ),
    ],
    api: Annotated[
        str, typer.Option(envvar="BERLIAN_ENROLMENT_URL", help="The enrolment API.")
    ] = "http://127.0.0.1:8001",
    report: Annotated[
        Path | None, typer.Option(help="Write the per-row report (CSV) here.")
    ] = None,
) -> None:
    """Send a kelurahan's CSV list to the enrolment API, as the officer whose token it is; a
    re-import registers nothing twice."""
    credentials = {"Authorization": f"Bearer {token}"}
    # An import of the largest file registers row by row for minutes: only connecting is quick.
    with httpx.Client(base_url=api, timeout=httpx.Timeout(IMPORT_SECONDS, connect=10)) as client:
        try:
            with out.status(f"importing {csv_file.name}"):
                answer = client.post(
                    "/imports",
                    content=csv_file.read_bytes(),
                    headers={**credentials, "content-type": "text/csv"},
                )
        except httpx.HTTPError as error:
            out.print(f"[red]cannot reach the enrolment API at {api}:[/red] {error}")
            raise typer.Exit(code=1) from None
        if answer.status_code != 200:
            _refused(f"cannot import {csv_file}", answer)
        result = answer.json()
        out.print(
            f"batch {result['batch_id']}: {result['registered']} registered, "
            f"{result['already_registered']} already registered, {result['refused']} refused"
        )
        for row in result["rows"]:
            if row["outcome"] == "refused":
                out.print(f"  row {row['row']}: {'; '.join(row['reasons'])}", markup=False)
        if report is not None:
            answer = client.get(result["report"], headers=credentials)
            if answer.status_code != 200:
                _refused("cannot fetch the report", answer)
            report.write_text(answer.text)
            out.print(f"report written to {report}")


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
