"""Database layout: one schema per service, owned by that service's own login role."""

from __future__ import annotations

from typing import TypeAlias
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from shared.settings import SERVICES

# The database went away under a connection (restart, failover, network): retried, not fatal.
CONNECTION_LOST: tuple[type[Exception], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    # A connection the restart cut mid-operation can answer the next one with "cannot switch to
    # state N; another operation is in progress": it is broken, and the pool replaces it.
    asyncpg.InternalClientError,
)

# A connection of its own or one borrowed from a pool: the code using it cannot tell.
DbConnection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"


def service_role(service: str) -> str:
    return f"berlian_{service}"


async def provision_service_schemas(admin_dsn: str, password: str) -> None:
    """Create each service's role and schemas; the role owns its schemas and nothing else.

    Idempotent: safe to run before every start (it is the first step of the migration job).
    """
    conn = await asyncpg.connect(admin_dsn)
    try:
        for service in SERVICES:
            role = service_role(service)
            exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
            verb = "ALTER" if exists else "CREATE"
            # Identifiers come from the fixed SERVICES tuple; the password is a literal.
            await conn.execute(
                f"{verb} ROLE {role} LOGIN NOCREATEDB NOCREATEROLE NOINHERIT "
                f"PASSWORD {_literal(password)}"
            )
            await conn.execute(f"GRANT {role} TO CURRENT_USER")
            # Its live schema, and a scratch schema where it rebuilds projections beside them.
            for schema in (service, f"{service}_scratch"):
                await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {role}")
                await conn.execute(f"ALTER SCHEMA {schema} OWNER TO {role}")
                await conn.execute(f"REVOKE ALL ON SCHEMA {schema} FROM PUBLIC")
        await conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    finally:
        await conn.close()


def service_dsn(admin_dsn: str, service: str, password: str) -> str:
    """The admin DSN with the service's own role as the user."""
    parts = urlsplit(admin_dsn)
    host = parts.hostname or "127.0.0.1"
    port = f":{parts.port}" if parts.port else ""
    netloc = f"{service_role(service)}:{password}@{host}{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
