"""The command path without HTTP: ``clients`` concurrent tasks registering people one after
another each, straight through enrolment's service and the command handler, on the enrolment
login's own pool, kept to the load generator's core (PostgreSQL has the others). Each
registration carries an idempotency key, as a retried request would. Besides throughput and
latency it counts the statements each registration sends to PostgreSQL (every one a round trip:
asyncpg sends one statement at a time and waits for its answer), after a warm-up so that the
statements are prepared already.

    python -m bench.command_path COMMANDS CLIENTS [DATABASE_URL]

Without ``DATABASE_URL`` it runs in a migrated database of its own on the local stack,
dropped after. The figures are printed as JSON.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
from asyncpg.connection import LoggedQuery

from bench.ingestion import core_budgets
from bench.measure import percentile
from bench.people import person
from bench.suite import own_database
from services.enrolment.imports import registration_from
from services.enrolment.wiring import enrolment_service
from shared.db import service_dsn
from shared.eventstore.store import CommandContext
from shared.settings import DatabaseSettings

WARM_UP = 50


class StatementCount:
    """Statements sent on the pool's connections (asyncpg's query loggers see every one,
    BEGIN, COMMIT and the reset of a connection given back to the pool included), and the time
    each took to be answered: what of a command's latency is PostgreSQL's, and its commit's."""

    def __init__(self) -> None:
        self.sent = 0
        self.seconds = 0.0
        self.commit_seconds = 0.0

    def _one(self, statement: LoggedQuery) -> None:
        self.sent += 1
        self.seconds += statement.elapsed
        if statement.query.startswith("COMMIT"):
            self.commit_seconds += statement.elapsed

    async def watch(self, conn: asyncpg.Connection[asyncpg.Record]) -> None:
        conn.add_query_logger(self._one)

    def since(self, before: StatementCount, commands: int) -> dict[str, float]:
        return {
            "statements_per_command": (self.sent - before.sent) / commands,
            "statement_ms_per_command": (self.seconds - before.seconds) * 1000 / commands,
            "commit_ms_per_command": (self.commit_seconds - before.commit_seconds)
            * 1000
            / commands,
        }


async def registrations(database: DatabaseSettings, commands: int, clients: int) -> dict[str, Any]:
    count = StatementCount()
    dsn = service_dsn(database.database_url, "enrolment", database.service_role_password)
    # As the service's own pool (shared.runtime.connect), each connection counted.
    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=10, init=count.watch)
    service = enrolment_service(pool)
    latencies: list[float] = []
    correlation = uuid.uuid4()

    async def register(number: int) -> None:
        context = CommandContext(
            "bench", "kelurahan_officer", correlation, idempotency_key=f"bench-{number}"
        )
        began = time.perf_counter()
        # As an import row would be, but each registration a command of its own.
        await service.register(registration_from(person(number), "bench", number + 1), context)
        latencies.append(time.perf_counter() - began)

    async def client(numbers: Iterator[int]) -> None:
        for number in numbers:
            await register(number)

    try:
        await asyncio.gather(*(client(iter(range(k, WARM_UP, clients))) for k in range(clients)))
        latencies.clear()
        await asyncio.sleep(0.1)  # the loggers of the warm-up's last statements have run
        before = copy.copy(count)
        numbers = iter(range(WARM_UP, WARM_UP + commands))
        started = time.perf_counter()
        await asyncio.gather(*(client(numbers) for _ in range(clients)))
        seconds = time.perf_counter() - started
        await asyncio.sleep(0.1)
    finally:
        await pool.close()
    return {
        "commands": commands,
        "clients": clients,
        "seconds": seconds,
        "commands_per_s": commands / seconds,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        **count.since(before, commands),
    }


async def _in_own_database(commands: int, clients: int) -> dict[str, Any]:
    admin = DatabaseSettings().database_url
    async with own_database(admin, f"berlian_bench_commands_{uuid.uuid4().hex[:6]}") as database:
        return await registrations(database, commands, clients)


def main() -> None:
    os.sched_setaffinity(0, core_budgets()[1])
    commands, clients = int(sys.argv[1]), int(sys.argv[2])
    if len(sys.argv) > 3:
        database = DatabaseSettings(database_url=sys.argv[3])
        figures = asyncio.run(registrations(database, commands, clients))
    else:
        figures = asyncio.run(_in_own_database(commands, clients))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
