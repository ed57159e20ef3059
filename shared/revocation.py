"""Access tokens withdrawn before their expiry: by token id (``jti``), or every token of a
subject issued up to a moment (a stolen laptop, a dismissed officer).

An operator records a revocation (``berlian tokens revoke``, with the administrative login);
every service reads the list, never writes it. A service consults it on every request through
a copy at most ``REFRESH_SECONDS`` old, so a revocation takes effect within that time, and a
list that cannot be read refuses the request (503) rather than letting a revoked token pass.
Entries outlive every token they can refuse by the longest accepted lifetime, then may go.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg

from shared.db import DbConnection, service_role
from shared.eventstore.migrations import Migration

SCHEMA = "revocations"
# A revocation reaches every service within this (each keeps a copy this long at most).
REFRESH_SECONDS = 5.0

MIGRATIONS = (
    Migration(
        "0001_revocations",
        """
        CREATE TABLE {schema}.revoked_tokens (
            token_id text PRIMARY KEY CHECK (length(token_id) BETWEEN 1 AND 200),
            -- no token with this id is still valid after this: the entry may then go
            keep_until timestamptz NOT NULL,
            revoked_at timestamptz NOT NULL DEFAULT now(),
            revoked_by text NOT NULL CHECK (length(revoked_by) BETWEEN 1 AND 200),
            reason text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500)
        );
        CREATE TABLE {schema}.revoked_subjects (
            subject text PRIMARY KEY CHECK (length(subject) BETWEEN 1 AND 200),
            -- tokens of the subject issued at or before this are refused
            not_after timestamptz NOT NULL,
            keep_until timestamptz NOT NULL,
            revoked_by text NOT NULL CHECK (length(revoked_by) BETWEEN 1 AND 200),
            reason text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500)
        );
        """,
    ),
)


# What ``berlian tokens`` does with the administrative connection.
Recorder = Callable[[DbConnection], Awaitable[object]]


class RevokedTokenError(PermissionError):
    """The token was withdrawn before its expiry."""


@dataclass
class _Snapshot:
    token_ids: frozenset[str] = frozenset()
    subjects: dict[str, float] = field(default_factory=dict)  # subject -> not_after (epoch)
    read_at: float = float("-inf")


class RevocationList:
    """The revocations as one service sees them: read again when its copy is older than
    ``refresh_seconds``, by one request at a time."""

    def __init__(self, pool: asyncpg.Pool, refresh_seconds: float = REFRESH_SECONDS) -> None:
        self._pool = pool
        self._refresh = refresh_seconds
        self._snapshot = _Snapshot()
        self._lock = asyncio.Lock()

    async def check(self, subject: str, token_id: str, issued_at: float) -> None:
        """RevokedTokenError if this token is revoked; a database error if the list cannot be
        read (the caller answers 503: nothing is let through unchecked)."""
        snapshot = await self._current()
        if token_id and token_id in snapshot.token_ids:
            raise RevokedTokenError("the token was revoked: sign in again")
        not_after = snapshot.subjects.get(subject)
        # iat has whole seconds: a token of the revocation's very second is refused too.
        if not_after is not None and issued_at <= not_after:
            raise RevokedTokenError(
                "the user's tokens issued up to a revocation were revoked: sign in again"
            )

    async def _current(self) -> _Snapshot:
        if time.monotonic() - self._snapshot.read_at < self._refresh:
            return self._snapshot
        async with self._lock:
            if time.monotonic() - self._snapshot.read_at >= self._refresh:
                self._snapshot = await self._read()
            return self._snapshot

    async def _read(self) -> _Snapshot:
        read_at = time.monotonic()
        async with self._pool.acquire() as conn:
            tokens = await conn.fetch(
                f"SELECT token_id FROM {SCHEMA}.revoked_tokens WHERE keep_until > now()"
            )
            subjects = await conn.fetch(
                f"SELECT subject, not_after FROM {SCHEMA}.revoked_subjects WHERE keep_until > now()"
            )
        return _Snapshot(
            frozenset(r["token_id"] for r in tokens),
            {r["subject"]: r["not_after"].timestamp() for r in subjects},
            read_at,
        )


async def revoke_token(
    conn: DbConnection, token_id: str, keep: timedelta, by: str, reason: str
) -> None:
    """Refuse the token ``token_id`` from now on (kept ``keep``: the longest lifetime)."""
    await conn.execute(
        f"INSERT INTO {SCHEMA}.revoked_tokens (token_id, keep_until, revoked_by, reason) "
        "VALUES ($1, now() + $2, $3, $4) ON CONFLICT (token_id) DO UPDATE "
        "SET keep_until = EXCLUDED.keep_until, revoked_by = EXCLUDED.revoked_by, "
        "reason = EXCLUDED.reason, revoked_at = now()",
        token_id,
        keep,
        by,
        reason,
    )


async def revoke_subject(
    conn: DbConnection, subject: str, keep: timedelta, by: str, reason: str
) -> datetime:
    """Refuse every token of ``subject`` issued up to now; the moment recorded."""
    not_after: datetime = await conn.fetchval(
        f"INSERT INTO {SCHEMA}.revoked_subjects "
        "(subject, not_after, keep_until, revoked_by, reason) "
        "VALUES ($1, now(), now() + $2, $3, $4) ON CONFLICT (subject) DO UPDATE "
        "SET not_after = EXCLUDED.not_after, keep_until = EXCLUDED.keep_until, "
        "revoked_by = EXCLUDED.revoked_by, reason = EXCLUDED.reason "
        "RETURNING not_after",
        subject,
        keep,
        by,
        reason,
    )
    return not_after


async def grant_revocation_reading(conn: DbConnection, roles: tuple[str, ...]) -> None:
    """Every service (and the audit page) reads the list; nobody but the operator writes it."""
    for role in roles:
        await conn.execute(f"GRANT USAGE ON SCHEMA {SCHEMA} TO {role}")
        await conn.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA {SCHEMA} FROM {role}")
        await conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {SCHEMA} TO {role}")


def service_roles(services: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(service_role(service) for service in services)
