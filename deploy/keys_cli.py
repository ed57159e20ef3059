"""The secrets' commands: rotate the key-encryption key and the NIK digest key, sign
checkpoints of the stream heads.

Both run with the migration login (``DATABASE_URL``): the services may neither rewrap keys nor
write checkpoints. ``checkpoint`` alone holds the signing key (``CHECKPOINT_SIGNING_KEY``).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import asyncpg
import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rich.console import Console

from services.enrolment.wiring import EnrolmentSettings, enrolment_service
from shared import keystore
from shared.audit.checkpoints import (
    CheckpointSettings,
    SignedCheckpoint,
    public_pem,
    take_checkpoint,
)
from shared.db import as_migrator
from shared.eventstore.inline import replay_inline
from shared.kms import KeyEncryptionSettings, LocalKeyring, add_kek
from shared.settings import SERVICES, DatabaseSettings, local_development

keys_app = typer.Typer(help="Key-encryption keys: add one, rewrap every data key under it.")
checkpoint_app = typer.Typer(help="Signed checkpoints of every stream head.")
out = Console()
# Hosts of this machine's own database, the only one a generated local secret may be used on.
LOCAL_DATABASE_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def secrets_fit_database(database: DatabaseSettings, configured: dict[str, bool]) -> None:
    """Refuse a secret the local development mode generated (its variable unset) against a
    database of another machine: it would wrap, digest or sign that database's data with a key
    only this machine holds, which nobody else can then unwrap, find or verify.

    ``configured`` says, by variable, whether the secret was given rather than generated.
    """
    host = urlsplit(database.database_url).hostname
    if not local_development() or host is None or host in LOCAL_DATABASE_HOSTS:
        return
    generated = sorted(variable for variable, given in configured.items() if not given)
    if generated:
        out.print(
            f"refused: {', '.join(generated)} not set, and this machine's generated local "
            f"secret is not for the database at {host}: set the deployment's secret"
        )
        raise typer.Exit(code=2)


def _keyring_given() -> dict[str, bool]:
    return {"KEY_ENCRYPTION_KEYRING": KeyEncryptionSettings().key_encryption_keyring is not None}


@keys_app.command("new-kek")
def new_kek() -> None:
    """Add a new key-encryption key to the keyring file and make it current."""
    path = KeyEncryptionSettings().keyring_path()
    out.print(f"{add_kek(path)} is now the current KEK in {path}; run `berlian keys rotate`")


@keys_app.command("rotate")
def rotate() -> None:
    """Rewrap every data key not under the current KEK; then the old KEKs may leave the keyring."""
    secrets_fit_database(DatabaseSettings(), _keyring_given())
    kms = LocalKeyring.from_file(KeyEncryptionSettings().keyring_path())

    async def run() -> tuple[int, dict[str, int]]:
        conn = await asyncpg.connect(DatabaseSettings().database_url)
        try:
            await as_migrator(conn)
            return await keystore.rewrap_all(conn, kms), await keystore.keks_in_use(conn)
        finally:
            await conn.close()

    rewrapped, in_use = asyncio.run(run())
    out.print(f"rewrapped {rewrapped} data keys under {kms.current_kek_id}")
    for kek_id, count in in_use.items():
        out.print(f"  {kek_id}: {count} keys")
    unused = sorted(kms.kek_ids - in_use.keys())
    if unused:
        out.print(f"no key is wrapped under {', '.join(unused)}: they may leave the keyring")


@keys_app.command("rotate-nik-digest")
def rotate_nik_digest(
    confirm: Annotated[bool, typer.Option("--yes", help="Confirm: enrolment is stopped.")] = False,
) -> None:
    """Rebuild the NIK index under the key now in ENROLMENT_NIK_SECRET, from the sealed details.

    Stop enrolment first and start it again with the new key: a replica still digesting with
    the old key would find nobody, and so let a NIK register twice.
    """
    if not confirm:
        out.print("stop enrolment first (it must not digest with the old key), then add --yes")
        raise typer.Exit(code=1)
    database = DatabaseSettings()
    nik_secret_given = bool(EnrolmentSettings().nik_secret.get_secret_value())
    secrets_fit_database(database, {**_keyring_given(), "ENROLMENT_NIK_SECRET": nik_secret_given})

    async def run() -> int:
        pool = await asyncpg.create_pool(database.database_url, min_size=1, max_size=2)
        try:
            service = enrolment_service(pool)
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(f"LOCK TABLE {service.schema}.nik_index IN EXCLUSIVE MODE")
                await conn.execute(f"DELETE FROM {service.schema}.nik_index")
                # The index exactly as a restore builds it, from each worker's latest details.
                await replay_inline(conn, service.schema, service.inline, service.handler.catalogue)
                return int(await conn.fetchval(f"SELECT count(*) FROM {service.schema}.nik_index"))
        finally:
            await pool.close()

    out.print(f"NIK index rebuilt under the new key: {asyncio.run(run())} workers")


@checkpoint_app.callback(invoke_without_command=True)
def checkpoint(
    ctx: typer.Context,
    every: Annotated[
        float | None, typer.Option(help="Keep signing, every this many seconds (else once).")
    ] = None,
) -> None:
    """Sign the head of every stream of every service (the checkpoint signer's job)."""
    if ctx.invoked_subcommand is not None:
        return
    settings = CheckpointSettings()
    secrets_fit_database(
        DatabaseSettings(), {"CHECKPOINT_SIGNING_KEY": settings.checkpoint_signing_key is not None}
    )
    signing_key = settings.signing_key()

    async def run() -> None:
        while True:
            signed = await sign_stream_heads(DatabaseSettings(), signing_key)
            streams = sum(len(h) for h in signed.content()["heads"].values())
            out.print(f"checkpoint {signed.sequence}: {streams} stream heads signed")
            if every is None:
                return
            await asyncio.sleep(every)

    asyncio.run(run())


async def sign_stream_heads(
    database: DatabaseSettings, signing_key: Ed25519PrivateKey
) -> SignedCheckpoint:
    """One checkpoint of every service's stream heads, written with the migration login."""
    conn = await asyncpg.connect(database.database_url)
    try:
        await as_migrator(conn)
        schemas = {service: service for service in SERVICES}
        return await take_checkpoint(conn, schemas, signing_key, datetime.now(UTC))
    finally:
        await conn.close()


@checkpoint_app.command("public-key")
def public_key(
    output: Annotated[Path, typer.Option(help="Write the PEM here (for the auditors).")],
) -> None:
    """Write the public key the auditors verify checkpoints with."""
    output.write_bytes(public_pem(CheckpointSettings().signing_key().public_key()))
    out.print(f"public key written to {output}")
