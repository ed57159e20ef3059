"""Signed checkpoints of every stream head: what makes a consistently rewritten chain visible.

A hash chain shows an altered event only to someone who knows a later hash: whoever can write a
store and its topic can write a whole new, consistent chain. A checkpoint records the head
(version, hash) of every stream of every service, signed with Ed25519 by the checkpoint signer,
a process of its own (``berlian checkpoint``, a CronJob in Kubernetes) that alone holds the
private key. The services have neither the key nor any write access to the checkpoints; the
auditor holds only the public key. Each checkpoint also carries the digest of the one before, so
none can be removed from the middle unnoticed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.db import CONNECTION_LOST, DbConnection
from shared.eventstore.migrations import Migration
from shared.hashing import canonical_json
from shared.secrets import (
    MissingSecretError,
    local_secret_file,
    missing,
    read_secret_file,
)
from shared.settings import local_development
from shared.telemetry import CHECKPOINT_AGE_SECONDS

SCHEMA = "checkpoints"
PEM_PUBLIC_KEY = re.compile(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.S)
MIGRATIONS = (
    Migration(
        "0001_checkpoints",
        """
        CREATE TABLE {schema}.checkpoints (
            sequence  bigint PRIMARY KEY,
            taken_at  timestamptz NOT NULL,
            body      text NOT NULL,   -- canonical JSON, exactly as signed
            signature bytea NOT NULL
        );
        """,
    ),
)

UNREADABLE: tuple[type[Exception], ...] = (*CONNECTION_LOST, asyncpg.PostgresError)


@dataclass(frozen=True)
class SignedCheckpoint:
    sequence: int
    body: bytes
    signature: bytes

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.body).hexdigest()

    def content(self) -> dict[str, Any]:
        parsed: dict[str, Any] = orjson.loads(self.body)
        return parsed


def key_fingerprint(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def checkpoint_body(
    sequence: int,
    taken_at: datetime,
    previous: str | None,
    signer: str,
    heads: Mapping[str, Mapping[str, tuple[int, str]]],
) -> bytes:
    return canonical_json(
        {
            "sequence": sequence,
            "taken_at": taken_at.isoformat(),
            "previous": previous,
            "signer": signer,
            "heads": {
                service: {stream: [version, hash_] for stream, (version, hash_) in streams.items()}
                for service, streams in heads.items()
            },
        }
    )


async def stream_heads(conn: DbConnection, schema: str) -> dict[str, tuple[int, str]]:
    rows = await conn.fetch(
        f"SELECT stream_id, version, last_hash FROM {schema}.streams WHERE version > 0"
    )
    return {row["stream_id"]: (int(row["version"]), str(row["last_hash"])) for row in rows}


async def take_checkpoint(
    conn: DbConnection,
    schemas: Mapping[str, str],
    signing_key: Ed25519PrivateKey,
    now: datetime,
    schema: str = SCHEMA,
) -> SignedCheckpoint:
    """Sign the current head of every stream of every service (``schemas``: service -> schema)."""
    async with conn.transaction(isolation="repeatable_read"):
        last = await conn.fetchrow(
            f"SELECT sequence, body FROM {schema}.checkpoints ORDER BY sequence DESC LIMIT 1"
        )
        heads = {service: await stream_heads(conn, s) for service, s in schemas.items()}
        sequence = int(last["sequence"]) + 1 if last else 1
        previous = hashlib.sha256(last["body"].encode()).hexdigest() if last else None
        signer = key_fingerprint(signing_key.public_key())
        body = checkpoint_body(sequence, now, previous, signer, heads)
        signature = signing_key.sign(body)
        await conn.execute(
            f"INSERT INTO {schema}.checkpoints (sequence, taken_at, body, signature) "
            "VALUES ($1, $2, $3, $4)",
            sequence,
            now,
            body.decode(),
            signature,
        )
    return SignedCheckpoint(sequence, body, signature)


async def load_checkpoints(conn: DbConnection, schema: str = SCHEMA) -> list[SignedCheckpoint]:
    rows = await conn.fetch(
        f"SELECT sequence, body, signature FROM {schema}.checkpoints ORDER BY sequence"
    )
    return [
        SignedCheckpoint(int(r["sequence"]), r["body"].encode(), bytes(r["signature"]))
        for r in rows
    ]


class TrustedSigners:
    """The public keys an auditor accepts checkpoints from, by fingerprint: across a rotation of
    the signing key, the old one (for older checkpoints) and the new one."""

    def __init__(self, keys: Sequence[Ed25519PublicKey]) -> None:
        if not keys:
            raise ValueError("no public key to verify checkpoints with")
        self._keys = {key_fingerprint(key): key for key in keys}

    def signed(self, checkpoint: SignedCheckpoint) -> bool:
        try:
            key = self._keys.get(str(checkpoint.content().get("signer")))
        except (orjson.JSONDecodeError, AttributeError):
            return False
        if key is None:
            return False
        try:
            key.verify(checkpoint.signature, checkpoint.body)
        except InvalidSignature:
            return False
        return True


def signature_problems(checkpoints: list[SignedCheckpoint], signers: TrustedSigners) -> list[str]:
    """What is wrong with the checkpoints themselves: signatures, sequence and links."""
    problems = []
    previous: SignedCheckpoint | None = None
    for checkpoint in checkpoints:
        if not signers.signed(checkpoint):
            problems.append(
                f"checkpoint {checkpoint.sequence}: not signed by a trusted checkpoint key"
            )
            previous = checkpoint  # its successor's link is still checked against its bytes
            continue
        content = checkpoint.content()
        if content.get("sequence") != checkpoint.sequence:
            problems.append(f"checkpoint {checkpoint.sequence}: signed as {content['sequence']}")
        expected_previous = previous.digest if previous else None
        if previous is not None and checkpoint.sequence != previous.sequence + 1:
            first, last = previous.sequence + 1, checkpoint.sequence - 1
            problems.append(
                f"checkpoint {first} is missing"
                if first == last
                else f"checkpoints {first} to {last} are missing"
            )
        elif content.get("previous") != expected_previous:
            problems.append(f"checkpoint {checkpoint.sequence}: not linked to the one before")
        previous = checkpoint
    return problems


async def refresh_checkpoint_age(pool: asyncpg.Pool, schema: str = SCHEMA) -> float:
    """Set ``berlian_checkpoint_age_seconds`` from the newest checkpoint's time, and return it.

    Unknown (no checkpoint, or none readable) counts as infinitely old, so the alert fires.
    """
    try:
        taken = await pool.fetchval(f"SELECT max(taken_at) FROM {schema}.checkpoints")
    except UNREADABLE:
        taken = None
    age = time.time() - taken.timestamp() if taken else float("inf")
    CHECKPOINT_AGE_SECONDS.set(age)
    return age


def checkpoint_age_job(
    pool: asyncpg.Pool, interval: float = 30.0, schema: str = SCHEMA
) -> Callable[[asyncio.Event], Coroutine[Any, Any, None]]:
    """A service's background job keeping the checkpoint age gauge current until stopped."""

    async def checkpoint_age(stop: asyncio.Event) -> None:
        while not stop.is_set():
            await refresh_checkpoint_age(pool, schema)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    return checkpoint_age


class CheckpointSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    checkpoint_signing_key: Path | None = Field(
        default=None,
        description="PEM file of the Ed25519 private key; only the checkpoint signer has it.",
    )
    checkpoint_public_key: Path | None = Field(
        default=None, description="PEM file of the Ed25519 public key the auditor verifies with."
    )

    def signing_key(self) -> Ed25519PrivateKey:
        path = self.checkpoint_signing_key
        if path is None:
            if not local_development():
                raise missing("CHECKPOINT_SIGNING_KEY", "the checkpoint signing key")
            path = local_secret_file("checkpoint-signing-key.pem", _new_private_pem)
        key = serialization.load_pem_private_key(
            read_secret_file(path, "CHECKPOINT_SIGNING_KEY"), password=None
        )
        if not isinstance(key, Ed25519PrivateKey):
            raise MissingSecretError(f"CHECKPOINT_SIGNING_KEY={path} is not an Ed25519 key")
        return key

    def trusted_signers(self) -> TrustedSigners:
        """The public keys of ``CHECKPOINT_PUBLIC_KEY`` (one PEM file, one or more keys)."""
        path = self.checkpoint_public_key
        if path is None:
            if not local_development():
                raise missing("CHECKPOINT_PUBLIC_KEY", "the checkpoint public key")
            return TrustedSigners([self.signing_key().public_key()])
        pem = read_secret_file(path, "CHECKPOINT_PUBLIC_KEY")
        keys = []
        for block in re.findall(
            rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", pem, re.S
        ):
            key = serialization.load_pem_public_key(block)
            if not isinstance(key, Ed25519PublicKey):
                raise MissingSecretError(f"CHECKPOINT_PUBLIC_KEY={path} holds a non-Ed25519 key")
            keys.append(key)
        if not keys:
            raise MissingSecretError(f"CHECKPOINT_PUBLIC_KEY={path} holds no PEM public key")
        return TrustedSigners(keys)


def _new_private_pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
