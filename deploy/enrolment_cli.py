"""``berlian import``: a kelurahan's CSV list registered row by row, with a progress bar."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Annotated

import asyncpg
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from services.enrolment.erasure import erase_worker
from services.enrolment.imports import (
    ImportFileError,
    decode,
    import_csv,
    read_rows,
    report_csv,
)
from services.enrolment.service import SERVICE, EnrolmentService
from services.enrolment.wiring import EnrolmentSettings
from shared.auth import Principal
from shared.db import service_dsn
from shared.keystore import PostgresKeyStore
from shared.policy import policy_book
from shared.scope import AreaClaimError, AreaScope
from shared.settings import DatabaseSettings

out = Console()


def import_command(
    csv_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    kelurahan: Annotated[
        str, typer.Option(help="The officer's kelurahan code, e.g. 33.75.01.1004.")
    ],
    officer: Annotated[str, typer.Option(help="Who imports (recorded on every event).")],
    report: Annotated[
        Path | None, typer.Option(help="Write the per-row report (CSV) here.")
    ] = None,
) -> None:
    """Register a kelurahan's CSV list row by row; a re-import registers nothing twice."""
    content = csv_file.read_bytes()
    try:
        rows = sum(1 for _ in read_rows(decode(content)))
    except ImportFileError as error:
        out.print(f"[red]cannot import {csv_file}:[/red] {error}")
        raise typer.Exit(code=1) from None
    try:
        scope = AreaScope.of(Principal(officer, "kelurahan_officer", kelurahan))
    except AreaClaimError as error:
        out.print(f"[red]cannot import {csv_file}:[/red] {error}")
        raise typer.Exit(code=1) from None
    database = DatabaseSettings()

    async def run() -> None:
        dsn = service_dsn(database.database_url, SERVICE, database.service_role_password)
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
        try:
            service = EnrolmentService(
                pool, PostgresKeyStore(pool), policy_book(), EnrolmentSettings().nik_secret.encode()
            )
            with Progress(
                TextColumn("importing"), BarColumn(), MofNCompleteColumn(), console=out
            ) as bar:
                task = bar.add_task("rows", total=rows)
                result = await import_csv(
                    service,
                    content,
                    officer,
                    scope,
                    lambda n: bar.advance(task, n),
                )
            out.print(
                f"batch {result.batch_id}: {result.count('registered')} registered, "
                f"{result.count('already_registered')} already registered, "
                f"{result.count('refused')} refused"
            )
            for row in result.rows:
                if row.outcome == "refused":
                    out.print(f"  row {row.row}: {'; '.join(row.reasons)}", markup=False)
            if report is not None:
                report.write_text(await report_csv(service, result.import_id, scope) or "")
                out.print(f"report written to {report}")
        finally:
            await pool.close()

    asyncio.run(run())


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
            service = EnrolmentService(
                pool, PostgresKeyStore(pool), policy_book(), EnrolmentSettings().nik_secret.encode()
            )
            return await erase_worker(service, uuid.UUID(worker_id))
        finally:
            await pool.close()

    erased = asyncio.run(run())
    out.print(f"worker {worker_id}: " + ("erased" if erased else "no key held (already erased)"))
