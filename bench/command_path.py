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
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import date
from typing import Any

import asyncpg

from bench.ingestion import core_budgets
from bench.measure import percentile
from bench.people import person
from bench.suite import own_database
from contract.events.enrolment import RegistrationSource, WorkerPersonal
from services.enrolment.service import Registration
from services.enrolment.wiring import enrolment_service
from shared.db import service_dsn
from shared.eventstore.store import CommandContext
from shared.settings import DatabaseSettings

WARM_UP = 50


def registration(number: int) -> Registration:
    fields = person(number)
    return Registration(
        WorkerPersonal(nik=fields["nik"], full_name=fields["full_name"], address=fields["address"]),
        date.fromisoformat(fields["birth_date"]),
        fields["sex"],
        fields["occupation_code"],
        fields["kelurahan_code"],
        RegistrationSource(channel="api"),
    )


class StatementCount:
    """Statements sent on the pool's connections (asyncpg's query loggers see every one,
    BEGIN, COMMIT and the reset of a connection given back to the pool included)."""

    def __init__(self) -> None:
        self.sent = 0

    def _one(self, _: object) -> None:
        self.sent += 1

    async def watch(self, conn: asyncpg.Connection[asyncpg.Record]) -> None:
        conn.add_query_logger(self._one)


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
        await service.register(registration(number), context)
        latencies.append(time.perf_counter() - began)

    async def client(numbers: Iterator[int]) -> None:
        for number in numbers:
            await register(number)

    try:
        await asyncio.gather(*(client(iter(range(k, WARM_UP, clients))) for k in range(clients)))
        latencies.clear()
        await asyncio.sleep(0.1)  # the loggers of the warm-up's last statements have run
        sent_before = count.sent
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
        "statements_per_command": (count.sent - sent_before) / commands,
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
