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
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench import ingestion
from bench.capacity import storage
from bench.ceiling import raw_consume, raw_produce
from bench.machine import describe
from bench.report import write_results
from bench.synthetic import EVENTS_PER_WORKER, sample_records, write_log
from deploy.local import stack
from deploy.local.paths import REPO_ROOT, run_dir
from services.catalog import PROJECTIONS, migrate_all
from shared.audit.verify import verify_topics
from shared.settings import DatabaseSettings, KafkaSettings
from shared.topic_reader import end_offsets
from shared.topics import delete_topics_with_prefix, ensure_topics

LOG_SOURCES = ("enrolment", "verification", "billing")


@dataclass(frozen=True)
class Size:
    name: str
    import_rows: int
    http_commands: int
    http_clients: int
    log_workers: int  # ten events each
    growth_workers: tuple[int, ...]  # smaller logs, besides the main one
    freshness_rate: int
    freshness_seconds: float


SIZES = {
    "full": Size("full", 100_000, 10_000, 32, 100_000, (10_000, 30_000), 500, 20.0),
    "smoke": Size("smoke", 100, 100, 8, 200, (50,), 20, 1.0),
}


def _say(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


async def fresh_database(admin_url: str, name: str) -> DatabaseSettings:
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = admin_url.rsplit("/", 1)[0]
    database = DatabaseSettings(database_url=f"{base}/{name}")
    await migrate_all(database)
    return database


async def _log(kafka: KafkaSettings, workers: int) -> dict[str, Any]:
    await ensure_topics(kafka)
    started = time.perf_counter()
    events = await write_log(kafka, workers)
    seconds = time.perf_counter() - started
    return {
        "workers": workers,
        "events": events,
        "seconds": seconds,
        "events_per_s": events / seconds,
    }


def _projection_names() -> list[str]:
    return [f"{service}.{p.name}" for service, ps in PROJECTIONS.items() for p in ps]


async def _records_read(kafka: KafkaSettings, name: str) -> int:
    service, projection = name.split(".")
    sources = next(p.sources for p in PROJECTIONS[service] if p.name == projection)
    return sum((await end_offsets(kafka, [kafka.events_topic(s) for s in sources])).values())


async def _replay(
    kafka: KafkaSettings, database: DatabaseSettings, groups: Sequence[Sequence[str]]
) -> dict[str, Any]:
    """Each group of projections rebuilt by a process of its own, the processes side by side."""
    env = {
        **os.environ,
        "DATABASE_URL": database.database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.kafka_bootstrap_servers,
    }
    started = time.perf_counter()
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.replay_worker",
            kafka.topic_prefix,
            ",".join(group),
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
        )
        for group in groups
    ]
    outputs = [await p.communicate() for p in processes]
    seconds = time.perf_counter() - started
    for process in processes:
        if process.returncode != 0:
            raise RuntimeError(f"a replay process failed with exit code {process.returncode}")
    workers = [json.loads(out) for out, _ in outputs]
    records = sum(w["records"] for w in workers)
    dead = sum(p["dead_lettered"] for w in workers for p in w["projections"].values())
    if dead:
        raise RuntimeError(f"{dead} records were dead-lettered during the replay")
    return {
        "processes": len(groups),
        "records": records,
        "seconds": seconds,
        "records_per_s": records / seconds,
        "peak_rss_mb": max(w["peak_rss_mb"] for w in workers),
        "projections": {k: v for w in workers for k, v in w["projections"].items()},
    }


async def _balanced(kafka: KafkaSettings, parts: int) -> list[list[str]]:
    """The projections split in ``parts`` groups of about equal records to read."""
    sizes = {name: await _records_read(kafka, name) for name in _projection_names()}
    groups: list[list[str]] = [[] for _ in range(parts)]
    loads = [0] * parts
    for name in sorted(sizes, key=sizes.__getitem__, reverse=True):
        lightest = loads.index(min(loads))
        groups[lightest].append(name)
        loads[lightest] += sizes[name]
    return groups


async def _audit(kafka: KafkaSettings) -> dict[str, Any]:
    started = time.perf_counter()
    report = await verify_topics(kafka, [kafka.events_topic(s) for s in LOG_SOURCES])
    seconds = time.perf_counter() - started
    if not report.ok:
        raise RuntimeError(f"audit verify found {len(report.findings)} findings")
    return {"events": report.events, "seconds": seconds, "events_per_s": report.events / seconds}


async def run(size: Size, results: Path, document: Path | None) -> dict[str, Any]:
    endpoints = await asyncio.to_thread(stack.up)
    run_id = uuid.uuid4().hex[:6]
    base = KafkaSettings(kafka_bootstrap_servers=endpoints.kafka_bootstrap_servers)
    database = await fresh_database(endpoints.database_url, f"berlian_bench_{size.name}")
    main = base.model_copy(update={"topic_prefix": f"bench-{run_id}."})
    figures: dict[str, Any] = {
        "size": asdict(size),
        "machine": await describe(endpoints.database_url),
    }
    started = datetime.now(UTC)

    _say(f"writing a log of {size.log_workers * EVENTS_PER_WORKER} events")
    figures["log"] = await _log(main, size.log_workers)
    _say("raw Kafka ceiling")
    sample = sample_records(1000)
    figures["ceiling_produce"] = await raw_produce(main, figures["log"]["events"], sample)
    figures["ceiling_consume"] = await raw_consume(
        main, [main.events_topic(s) for s in LOG_SOURCES]
    )
    _say("replay, one process")
    figures["replay"] = await _replay(main, database, [_projection_names()])
    _say("replay, two processes")
    figures["replay_two_processes"] = await _replay(main, database, await _balanced(main, 2))
    growth = []
    for workers in size.growth_workers:
        smaller = base.model_copy(update={"topic_prefix": f"bench-{run_id}-{workers}."})
        _say(f"growth: a log of {workers * EVENTS_PER_WORKER} events")
        await _log(smaller, workers)
        growth.append(
            {
                "events": workers * EVENTS_PER_WORKER,
                **await _replay(smaller, database, [_projection_names()]),
            }
        )
    growth.append({"events": figures["log"]["events"], **figures["replay"]})
    figures["growth"] = growth
    _say("audit verify")
    figures["audit"] = await _audit(main)

    live = base.model_copy(update={"topic_prefix": f"bench-{run_id}-live."})
    await ensure_topics(live)
    logs = run_dir() / "bench" / run_id
    async with ingestion.services_running(
        live, database, ("enrolment", "verification"), logs
    ) as running:
        urls = running.urls
        _say(f"bulk import of {size.import_rows} rows")
        figures["import"] = await ingestion.bulk_import(
            live, urls["enrolment"], running.pids["enrolment"], 0, size.import_rows
        )
        _say(f"HTTP: {size.http_commands} registrations from {size.http_clients} clients")
        figures["http"] = await ingestion.http_registrations(
            urls["enrolment"], 10_000_000, size.http_commands, size.http_clients
        )
        _say(f"freshness at {size.freshness_rate} commands/s")
        figures["freshness"] = await ingestion.freshness(
            database, urls["enrolment"], 20_000_000, size.freshness_rate, size.freshness_seconds
        )
    figures["storage"] = await storage(database.database_url, size.log_workers)
    # The run's logs (a million events at full size) are not kept on the local broker.
    await delete_topics_with_prefix(base, f"bench-{run_id}")
    figures["started"] = started.isoformat(timespec="seconds")
    figures["seconds"] = (datetime.now(UTC) - started).total_seconds()
    write_results(figures, results, document)
    return figures
