"""Ingestion and freshness, through the services running as real processes: a bulk import, the
HTTP API under concurrent clients, and how soon a command's effect shows in another service."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO

import asyncpg
import httpx

from bench.measure import percentile
from deploy.local.keycloak import LocalProvider
from deploy.local.paths import REPO_ROOT
from services.enrolment.imports import COLUMNS
from shared.settings import DatabaseSettings, KafkaSettings
from shared.topic_reader import end_offsets

KRAPYAK = "33.75.03.1002"
SENDERS = 64  # concurrent connections of the freshness load
IDENTITY = LocalProvider(prefix="bench")


def as_officer() -> dict[str, str]:
    """A kelurahan officer of Krapyak, with a token from the local provider."""
    return IDENTITY.headers("kelurahan_officer", KRAPYAK)


BIRTH_DATES = [
    date(1970 + y, 1 + m, 1 + d) for y in range(30) for m in range(12) for d in range(28)
]


def person(number: int) -> dict[str, str]:
    """A valid, distinct person for every ``number`` below 100 million."""
    birth = BIRTH_DATES[number % len(BIRTH_DATES)]
    serial = number // len(BIRTH_DATES) + 1
    return {
        "nik": f"337503{birth.day:02d}{birth.month:02d}{birth.year % 100:02d}{serial:04d}",
        "full_name": f"Pekerja {number}",
        "birth_date": birth.isoformat(),
        "sex": "M",
        "occupation_code": "tukang_becak",
        "kelurahan_code": KRAPYAK,
        "address": f"Gang Bench {number}",
    }


def import_file(first: int, rows: int) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    for number in range(first, first + rows):
        writer.writerow(
            {**person(number), "heir_name": "Ahli Waris", "heir_relationship": "spouse"}
        )
    return out.getvalue().encode()


def _log_file(logs: Path, name: str) -> BinaryIO:
    logs.mkdir(parents=True, exist_ok=True)
    return (logs / f"{name}.log").open("ab")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Running:
    urls: dict[str, str]
    pids: dict[str, int]


def memory_mb(pid: int) -> dict[str, float]:
    """The process's resident memory now and at its peak so far (VmRSS, VmHWM), in MB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return {
        name: int(fields[key].split()[0]) / 1024
        for name, key in (("rss_mb", "VmRSS"), ("peak_mb", "VmHWM"))
    }


@asynccontextmanager
async def services_running(
    kafka: KafkaSettings, database: DatabaseSettings, names: tuple[str, ...], logs: Path
) -> AsyncIterator[Running]:
    """The named services as ``berlian run`` processes on free ports, ready; SIGTERM after."""
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.kafka_bootstrap_servers,
        "TOPIC_PREFIX": kafka.topic_prefix,
        "DATABASE_URL": database.database_url,
    }
    urls, processes = {}, []
    for name in names:
        port = free_port()
        urls[name] = f"http://127.0.0.1:{port}"
        with _log_file(logs, name) as log:
            processes.append(
                await asyncio.create_subprocess_exec(
                    *(sys.executable, "-m", "deploy.cli", "run", name, "--port", str(port)),
                    cwd=REPO_ROOT,
                    env=env,
                    stdout=log,
                    stderr=log,
                )
            )
    try:
        async with httpx.AsyncClient() as client:
            for url, process in zip(urls.values(), processes, strict=True):
                for _ in range(240):
                    if process.returncode is not None:
                        raise RuntimeError(f"a service exited during start-up; see {logs}")
                    try:
                        if (await client.get(f"{url}/health/ready")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.25)
        yield Running(urls, {n: p.pid for n, p in zip(names, processes, strict=True)})
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            await asyncio.wait_for(process.wait(), timeout=60)


async def _topic_size(kafka: KafkaSettings, service: str) -> int:
    return sum((await end_offsets(kafka, [kafka.events_topic(service)])).values())


async def bulk_import(
    kafka: KafkaSettings, enrolment: str, pid: int, first: int, rows: int
) -> dict[str, Any]:
    """One CSV file through POST /imports, its job followed until it is done; timed until the
    last registration is on the topic.
    The memory of the service (process ``pid``) before it and at its peak after it."""
    content = import_file(first, rows)
    before_import = memory_mb(pid)["rss_mb"]
    before = await _topic_size(kafka, "enrolment")
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=enrolment, timeout=3600) as api:
        response = await api.post(
            "/imports", content=content, headers={**as_officer(), "Content-Type": "text/csv"}
        )
        response.raise_for_status()
        while True:  # the import is a job: until it is done
            job = (await api.get(response.headers["location"], headers=as_officer())).json()
            if job["state"] in ("done", "failed"):
                break
            await asyncio.sleep(0.2)
    registered = int(job["registered"])
    while True:  # until the relay has published the last registration
        if await _topic_size(kafka, "enrolment") >= before + registered:
            break
        await asyncio.sleep(0.05)
    seconds = time.perf_counter() - started
    return {
        "rows": rows,
        "registered": registered,
        "seconds": seconds,
        "events_per_s": registered / seconds,
        "file_mb": len(content) / 2**20,
        "service_rss_before_mb": before_import,
        "service_peak_mb": memory_mb(pid)["peak_mb"],
    }


async def http_registrations(
    enrolment: str, first: int, commands: int, clients: int
) -> dict[str, Any]:
    """``clients`` concurrent clients registering workers, one command after another each."""
    latencies: list[float] = []
    failures: list[str] = []
    numbers: Iterator[int] = iter(range(first, first + commands))

    async def client() -> None:
        async with httpx.AsyncClient(base_url=enrolment, timeout=60) as api:
            for number in numbers:
                began = time.perf_counter()
                response = await api.post("/workers", json=person(number), headers=as_officer())
                latencies.append(time.perf_counter() - began)
                if response.status_code != 201:
                    failures.append(f"{response.status_code} {response.text[:200]}")

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    seconds = time.perf_counter() - started
    return {
        "commands": commands,
        "clients": clients,
        "failed": len(failures),
        "first_failure": failures[0] if failures else None,
        "commands_per_s": commands / seconds,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
    }


async def freshness(
    database: DatabaseSettings, enrolment: str, first: int, rate: int, seconds: float
) -> dict[str, Any]:
    """Registrations at a steady ``rate``; for each, the time from its acceptance (the 201) until
    verification's projection shows the worker's case."""
    accepted: dict[str, float] = {}
    seen: dict[str, float] = {}
    waiting: set[str] = set()
    total = int(rate * seconds)
    done = asyncio.Event()

    async def watch() -> None:
        conn = await asyncpg.connect(database.database_url)
        try:
            while not (done.is_set() and not waiting):
                if waiting:
                    rows = await conn.fetch(
                        "SELECT w::text FROM unnest($1::uuid[]) AS w "
                        "WHERE EXISTS (SELECT 1 FROM verification.cases WHERE worker_id = w)",
                        list(waiting),
                    )
                    now = time.perf_counter()
                    for row in rows:
                        seen[row[0]] = now
                        waiting.discard(row[0])
                await asyncio.sleep(0.005)
        finally:
            await conn.close()

    async def sender(first_index: int) -> None:
        # Each sender keeps to its share of the schedule; late ones send at once (open loop,
        # as far as SENDERS connections allow).
        async with httpx.AsyncClient(base_url=enrolment, timeout=60) as api:
            for i in range(first_index, total, SENDERS):
                delay = started + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                response = await api.post("/workers", json=person(first + i), headers=as_officer())
                if response.status_code == 201:
                    worker = response.json()["worker_id"]
                    accepted[worker] = time.perf_counter()
                    waiting.add(worker)

    watcher = asyncio.create_task(watch())
    started = time.perf_counter()
    await asyncio.gather(*(sender(k) for k in range(SENDERS)))
    sent_for = time.perf_counter() - started
    done.set()
    await asyncio.wait_for(watcher, timeout=120)
    delays = [seen[w] - accepted[w] for w in accepted]
    return {
        "target_per_s": rate,
        "achieved_per_s": len(accepted) / sent_for,
        "commands": len(accepted),
        "p50_ms": percentile(delays, 50) * 1000,
        "p99_ms": percentile(delays, 99) * 1000,
        "max_ms": max(delays) * 1000,
    }
