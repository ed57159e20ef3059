"""``berlian tokens``: withdraw access tokens before their expiry (a stolen device, a dismissed
officer), with the administrative login; every service refuses them within seconds."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Annotated

import asyncpg
import typer
from rich.console import Console

from shared import revocation
from shared.auth import AuthSettings
from shared.db import DbConnection, as_migrator
from shared.settings import DatabaseSettings

tokens_app = typer.Typer(help="Revoke access tokens: one by its id, or all of a user's.")
out = Console()
By = Annotated[str, typer.Option("--by", help="Who records the revocation.")]
Reason = Annotated[str, typer.Option("--reason", help="Why, for the record.")]


def _kept() -> timedelta:
    """How long an entry can still refuse a token: the longest lifetime accepted, and the clock
    difference tolerated."""
    auth = AuthSettings()
    return timedelta(seconds=auth.max_token_lifetime_seconds + auth.leeway_seconds)


def _text(value: str, what: str, limit: int) -> str:
    value = value.strip()
    if not value or len(value) > limit:
        raise typer.BadParameter(f"{what} must be 1 to {limit} characters")
    return value


def _record(work: revocation.Recorder) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(DatabaseSettings().database_url)
        try:
            await as_migrator(conn)
            await work(conn)
        finally:
            await conn.close()

    asyncio.run(run())


@tokens_app.command("revoke")
def revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (its jti claim).")],
    by: By,
    reason: Reason,
) -> None:
    """Refuse one token from now on."""
    token_id = _text(token_id, "the token id", 200)
    who, why = _text(by, "--by", 200), _text(reason, "--reason", 500)
    _record(lambda conn: revocation.revoke_token(conn, token_id, _kept(), who, why))
    out.print(
        f"token {token_id} revoked: refused by every service within "
        f"{revocation.REFRESH_SECONDS:.0f} s"
    )


@tokens_app.command("revoke-subject")
def revoke_subject(
    subject: Annotated[str, typer.Argument(help="The user's subject (the tokens' sub).")],
    by: By,
    reason: Reason,
) -> None:
    """Refuse every token of a user issued until now (disable the user at the provider too, or
    they sign in again)."""
    subject = _text(subject, "the subject", 200)
    who, why = _text(by, "--by", 200), _text(reason, "--reason", 500)

    async def work(conn: DbConnection) -> None:
        cutoff = await revocation.revoke_subject(conn, subject, _kept(), who, why)
        out.print(
            f"tokens of {subject} issued up to {cutoff.isoformat(timespec='seconds')} revoked"
        )

    _record(work)
