"""The whole benchmark suite in one run, so that ratios hold on a noisy machine.

``./berlian bench`` runs it at full size and rewrites ``docs/benchmarks.md``; ``--size smoke``
runs every measurement at a tiny size (CI does this) and writes only to ``--results``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench import ingestion
from bench.capacity import storage
from bench.ceiling import raw_consume, raw_produce
from bench.machine import describe
from bench.report import goals, write_results
from bench.synthetic import ENROLMENT_PHASES, EVENTS_PER_WORKER, sample_records, write_log
from deploy.local import stack
from deploy.local.outboxes import outboxes_served
from deploy.local.paths import REPO_ROOT, run_dir
from services.catalog import PROJECTIONS, migrate_all
from shared.audit.verify import verify_topics
from shared.db import CONNECTION_LOST
from shared.retries import retry_forever
from shared.settings import DatabaseSettings, KafkaSettings
from shared.topics import delete_topics_with_prefix, ensure_topics

# As the rebuild command runs by default: one process per core.
REBUILD_WORKERS = os.cpu_count() or 1
LOG_SOURCES = ("enrolment", "verification", "billing")


@dataclass(frozen=True)
class Size:
    name: str
    import_rows: tuple[int, ...]  # one file of each size, the first always accepted
    http_commands: int
    http_clients: int
    log_workers: int  # ten events each
    growth_workers: tuple[int, ...]  # other logs, smaller and larger than the main one
    billing_workers: int
    freshness_rate: int
    freshness_seconds: float


SIZES = {
    "full": Size(
        "full", (100_000, 1_000_000), 10_000, 32, 100_000, (10_000, 300_000), 100_000, 500, 20.0
    ),
    "medium": Size("medium", (10_000, 100_000), 3_000, 32, 10_000, (1_000,), 10_000, 200, 5.0),
    "smoke": Size("smoke", (100, 300), 100, 8, 200, (50,), 200, 20, 1.0),
}
BILLING_PERIOD = "2025-02"  # the synthetic coverages run February 2025 to January 2026


def _say(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


async def _admin(admin_url: str, *statements: str) -> None:
    admin = await asyncpg.connect(admin_url)
    try:
        for statement in statements:
            await admin.execute(statement)
    finally:
        await admin.close()


@asynccontextmanager
async def own_database(admin_url: str, name: str) -> AsyncIterator[DatabaseSettings]:
    """A database of the run's own (runs side by side on a shared stack never meet), migrated;
    dropped after."""
    await _admin(admin_url, f'CREATE DATABASE "{name}"')
    try:
        database = DatabaseSettings(database_url=f"{admin_url.rsplit('/', 1)[0]}/{name}")
        await migrate_all(database)
        yield database
    finally:
        # Dropped even across a PostgreSQL restart (other runs on the shared stack test them).
        drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        await retry_forever(lambda: _admin(admin_url, drop), CONNECTION_LOST, f"dropping {name}")


async def _log(
    kafka: KafkaSettings, workers: int, phases: Sequence[int] = range(EVENTS_PER_WORKER)
) -> dict[str, Any]:
    await ensure_topics(kafka)
    started = time.perf_counter()
    events = await write_log(kafka, workers, phases=phases)
    seconds = time.perf_counter() - started
    return {
        "workers": workers,
        "events": events,
        "seconds": seconds,
        "events_per_s": events / seconds,
    }


def _projection_names() -> list[str]:
    return [f"{service}.{p.name}" for service, ps in PROJECTIONS.items() for p in ps]


async def _replay(
    kafka: KafkaSettings, database: DatabaseSettings, events: int, workers: int
) -> dict[str, Any]:
    """Every projection rebuilt by ``bench.replay_worker`` with ``workers`` processes (the
    rebuild's partitions spread over them): the wall time until every projection is rebuilt
    from a log of ``events`` events, and the records each projection read (several read the
    same topics)."""
    env = {
        **os.environ,
        "DATABASE_URL": database.database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.kafka_bootstrap_servers,
    }
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.replay_worker",
        kafka.topic_prefix,
        ",".join(_projection_names()),
        "--workers",
        str(workers),
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
    )
    out, _ = await process.communicate()
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"the replay failed with exit code {process.returncode}")
    rebuilt = json.loads(out)
    dead = sum(p["dead_lettered"] for p in rebuilt["projections"].values())
    if dead:
        raise RuntimeError(f"{dead} records were dead-lettered during the replay")
    return {
        "processes": workers,
        "events": events,
        "seconds": seconds,
        "log_events_per_s": events / seconds,
        "records": rebuilt["records"],
        "records_per_s": rebuilt["records"] / seconds,
        "peak_rss_mb": rebuilt["peak_rss_mb"],
        "projections": rebuilt["projections"],
    }


async def _audit(kafka: KafkaSettings) -> dict[str, Any]:
    started = time.perf_counter()
    report = await verify_topics(kafka, [kafka.events_topic(s) for s in LOG_SOURCES])
    seconds = time.perf_counter() - started
    if not report.ok:
        raise RuntimeError(f"audit verify found {len(report.findings)} findings")
    return {"events": report.events, "seconds": seconds, "events_per_s": report.events / seconds}


async def _growth(
    base: KafkaSettings, database: DatabaseSettings, run_id: str, size: Size, main: dict[str, Any]
) -> list[dict[str, Any]]:
    """The rebuild over each other log size, beside the main log's, smallest first."""
    growth = [main]
    for workers in size.growth_workers:
        log = base.model_copy(update={"topic_prefix": f"bench-{run_id}-{workers}."})
        _say(f"growth: a log of {workers * EVENTS_PER_WORKER} events")
        events = (await _log(log, workers))["events"]
        growth.append(await _replay(log, database, events, REBUILD_WORKERS))
        await delete_topics_with_prefix(base, log.topic_prefix)
    return sorted(growth, key=lambda g: int(g["events"]))


async def _command_path(database: DatabaseSettings, commands: int, clients: int) -> dict[str, Any]:
    """``bench.command_path`` as a process of its own (it keeps itself to the load generator's
    core): registrations through the command handler, without HTTP."""
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "bench.command_path", str(commands), str(clients)),
        database.database_url,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
    )
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(
            f"the command path measurement failed with exit code {process.returncode}"
        )
    figures: dict[str, Any] = json.loads(out)
    return figures


async def _live(
    base: KafkaSettings, database: DatabaseSettings, run_id: str, size: Size
) -> dict[str, Any]:
    """What the services do as processes: the HTTP API beside a bare endpoint (the load from a
    process of its own, on its own core), freshness, then the bulk imports."""
    live = base.model_copy(update={"topic_prefix": f"bench-{run_id}-live."})
    await ensure_topics(live)
    logs = run_dir() / "bench" / run_id
    figures: dict[str, Any] = {}
    server_cores, client_core = ingestion.core_budgets()
    figures["cores"] = {"server": sorted(server_cores), "load_generator": sorted(client_core)}
    headers = ingestion.as_officer()
    _say(f"command path: {size.http_commands} registrations from {size.http_clients} tasks")
    figures["command_path"] = await _command_path(database, size.http_commands, size.http_clients)
    load = (size.http_commands, size.http_clients, client_core)
    async with ingestion.bare_api_running(logs) as bare:
        ingestion.pin(bare.pids["bare"], server_cores)
        _say(f"HTTP, bare endpoint: {size.http_commands} requests from {size.http_clients} clients")
        figures["http_bare"] = await ingestion.http_load(bare.urls["bare"], headers, 0, *load)
    async with ingestion.services_running(
        live, database, ("enrolment", "verification"), logs
    ) as running:
        enrolment, pid = running.urls["enrolment"], running.pids["enrolment"]
        _say(f"HTTP: {size.http_commands} registrations from {size.http_clients} clients")
        ingestion.pin(pid, server_cores)
        figures["http"] = await ingestion.http_load(enrolment, headers, 10_000_000, *load)
        ingestion.pin(pid, server_cores | client_core)
        _say(f"freshness at {size.freshness_rate} commands/s")
        figures["freshness"] = await ingestion.freshness(
            database, enrolment, 20_000_000, size.freshness_rate, size.freshness_seconds
        )
        imports = []
        for k, rows in enumerate(size.import_rows):
            _say(f"bulk import of {rows} rows")
            imports.append(
                await ingestion.bulk_import(live, enrolment, pid, 30_000_000 * (k + 1), rows)
            )
        if not imports[0]["measured"]:
            raise RuntimeError(f"the first import was refused: {imports[0]['reason']}")
        figures["imports"] = imports
    return figures


async def _billing(
    base: KafkaSettings, database: DatabaseSettings, run_id: str, workers: int
) -> dict[str, Any]:
    """The monthly billing run over ``workers`` covered workers, whose registrations and
    coverages are written straight onto the topics for the billing service to consume."""
    billing = base.model_copy(update={"topic_prefix": f"bench-{run_id}-billing."})
    await _log(billing, workers, ENROLMENT_PHASES)
    logs = run_dir() / "bench" / run_id
    # Enrolment's events are written straight onto its topic: its (empty) outbox answers for
    # it when the run asks, without an enrolment process consuming the log beside billing.
    async with (
        outboxes_served(database.database_url, {"enrolment": ingestion.free_port()}) as urls,
        ingestion.services_running(billing, database, ("billing",), logs, urls) as running,
    ):
        return await ingestion.billing_run(
            billing, database, running.urls["billing"], workers, BILLING_PERIOD
        )


async def run(size: Size, results: Path, document: Path | None) -> dict[str, Any]:
    endpoints = await asyncio.to_thread(stack.up)
    run_id = uuid.uuid4().hex[:6]
    base = KafkaSettings(kafka_bootstrap_servers=endpoints.kafka_bootstrap_servers)
    name = f"berlian_bench_{size.name}_{run_id}"
    try:
        async with own_database(endpoints.database_url, name) as database:
            figures = await _measure(size, endpoints.database_url, database, base, run_id)
    finally:
        # The run's logs (millions of events at full size) are not kept on the local broker.
        await delete_topics_with_prefix(base, f"bench-{run_id}")
    figures["goals"] = goals(figures)
    write_results(figures, results, document)
    return figures


async def _measure(
    size: Size, admin_url: str, database: DatabaseSettings, base: KafkaSettings, run_id: str
) -> dict[str, Any]:
    main = base.model_copy(update={"topic_prefix": f"bench-{run_id}."})
    figures: dict[str, Any] = {
        "size": asdict(size),
        "machine": await describe(admin_url),
    }
    started = datetime.now(UTC)

    _say(f"writing a log of {size.log_workers * EVENTS_PER_WORKER} events")
    figures["log"] = await _log(main, size.log_workers)
    events = figures["log"]["events"]
    _say("raw Kafka ceiling")
    sample = sample_records(1000)
    figures["ceiling_produce"] = await raw_produce(main, events, sample)
    figures["ceiling_consume"] = await raw_consume(
        main, [main.events_topic(s) for s in LOG_SOURCES]
    )
    _say(f"rebuild, {REBUILD_WORKERS} processes (the rebuild's default)")
    figures["replay"] = await _replay(main, database, events, REBUILD_WORKERS)
    _say("rebuild, one process")
    figures["replay_one_process"] = await _replay(main, database, events, 1)
    _say("audit verify")
    figures["audit"] = await _audit(main)
    await delete_topics_with_prefix(base, f"bench-{run_id}.ceiling")
    figures["growth"] = await _growth(base, database, run_id, size, figures["replay"])
    figures.update(await _live(base, database, run_id, size))
    _say(f"billing run over {size.billing_workers} covered workers")
    figures["billing"] = await _billing(base, database, run_id, size.billing_workers)
    # The rebuilt tables are those of the last log rebuilt: the last growth log's.
    rebuilt = size.growth_workers[-1] if size.growth_workers else size.log_workers
    figures["storage"] = await storage(database.database_url, rebuilt)
    figures["started"] = started.isoformat(timespec="seconds")
    figures["seconds"] = (datetime.now(UTC) - started).total_seconds()
    return figures
