"""Ingestion and freshness, through the services running as real processes: a bulk import, the
HTTP API under concurrent clients (beside a bare endpoint), the monthly billing run, and how
soon a command's effect shows in another service."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import asyncpg
import httpx

from bench.measure import percentile
from bench.people import KRAPYAK, import_chunks, person
from deploy.local.keycloak import LocalProvider
from deploy.local.paths import REPO_ROOT
from shared.projection.freshness import wait_until_caught_up
from shared.settings import DatabaseSettings, KafkaSettings
from shared.topic_reader import end_offsets

SENDERS = 64  # concurrent connections of the freshness load
IDENTITY = LocalProvider(prefix="bench")
# An import job's states once it has stopped (``GET /imports/{id}``).
JOB_ENDED = frozenset({"done", "failed"})


def as_officer() -> dict[str, str]:
    """A kelurahan officer of Krapyak, with a token from the local provider."""
    return IDENTITY.headers("kelurahan_officer", KRAPYAK)


def _log_file(logs: Path, name: str) -> BinaryIO:
    logs.mkdir(parents=True, exist_ok=True)
    return (logs / f"{name}.log").open("ab")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def pin(pid: int, cores: Collection[int]) -> None:
    """Every thread of process ``pid`` kept to ``cores`` (Linux affinity is per thread)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), cores)


def core_budgets() -> tuple[set[int], set[int]]:
    """The cores of the measured server and of its load generator: the last core for the
    clients, the others for the server (all of them for both on a single core)."""
    cores = sorted(os.sched_getaffinity(0))
    return (set(cores[:-1]) or set(cores)), {cores[-1]}


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


def reset_peak_memory(pid: int) -> bool:
    """Start the process's VmHWM afresh (``clear_refs`` 5); False where the kernel refuses."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@asynccontextmanager
async def processes_running(
    commands: dict[str, Sequence[str]],
    env: dict[str, str],
    logs: Path,
    ports: Mapping[str, int] | None = None,
) -> AsyncIterator[Running]:
    """Each named command (given ``{port}``) as a process on its port (``ports``, else a free
    one), ready; SIGTERM after."""
    urls, processes = {}, []
    for name, argv in commands.items():
        port = ports[name] if ports else free_port()
        urls[name] = f"http://127.0.0.1:{port}"
        with _log_file(logs, name) as log:
            processes.append(
                await asyncio.create_subprocess_exec(
                    *(a.format(port=port) for a in argv),
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
                        raise RuntimeError(f"a process exited during start-up; see {logs}")
                    try:
                        if (await client.get(f"{url}/health/ready")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.25)
        yield Running(urls, {n: p.pid for n, p in zip(commands, processes, strict=True)})
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            await asyncio.wait_for(process.wait(), timeout=60)


def services_running(
    kafka: KafkaSettings,
    database: DatabaseSettings,
    names: tuple[str, ...],
    logs: Path,
    producers: Mapping[str, str] | None = None,
) -> AbstractAsyncContextManager[Running]:
    """The named services as ``berlian run`` processes on free ports, each consumer asking the
    producers among them (or at their URL in ``producers``) whether their outbox is
    published."""
    ports = {name: free_port() for name in names}
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.kafka_bootstrap_servers,
        "TOPIC_PREFIX": kafka.topic_prefix,
        "DATABASE_URL": database.database_url,
        **{f"{name.upper()}_URL": url for name, url in (producers or {}).items()},
        **{f"{name.upper()}_URL": f"http://127.0.0.1:{port}" for name, port in ports.items()},
    }
    run = (sys.executable, "-m", "deploy.cli", "run")
    return processes_running({n: (*run, n, "--port", "{port}") for n in names}, env, logs, ports)


def bare_api_running(logs: Path) -> AbstractAsyncContextManager[Running]:
    """The bare FastAPI endpoint (bench/bare_api.py) as a process of its own."""
    argv = (sys.executable, "-m", "bench.bare_api", "{port}")
    return processes_running({"bare": argv}, dict(os.environ), logs)


async def _topic_size(kafka: KafkaSettings, service: str) -> int:
    return sum((await end_offsets(kafka, [kafka.events_topic(service)])).values())


async def _until(check: Callable[[], Awaitable[bool]], interval: float = 0.05) -> None:
    while True:
        if await check():
            return
        await asyncio.sleep(interval)


async def _topic_size_at_least(kafka: KafkaSettings, service: str, size: int) -> bool:
    return await _topic_size(kafka, service) >= size


async def _stream(chunks: Iterator[bytes], sent: list[int]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        sent[0] += len(chunk)
        yield chunk


async def _until_done(api: httpx.AsyncClient, answer: httpx.Response) -> dict[str, Any]:
    """The import's job (the 202's ``Location``) polled until its ``state`` is done or failed."""
    body: dict[str, Any] = answer.json()
    while str(body.get("state")) not in JOB_ENDED:
        await asyncio.sleep(0.5)
        polled = await api.get(answer.headers["Location"], headers=as_officer())
        polled.raise_for_status()
        body = polled.json()
    return body


async def bulk_import(
    kafka: KafkaSettings, enrolment: str, pid: int, first: int, rows: int
) -> dict[str, Any]:
    """One CSV file of ``rows`` through POST /imports, made as it is sent (never whole in
    memory), timed until the job is done and its last registration is on the topic; the
    enrolment service's (process ``pid``) memory sampled throughout. A file the service
    refuses is reported as not measured, with its answer."""
    before_import = memory_mb(pid)["rss_mb"]
    reset = reset_peak_memory(pid)
    sampled = [before_import]
    sampling = True

    async def sample() -> None:
        while sampling:
            sampled.append(memory_mb(pid)["rss_mb"])
            await asyncio.sleep(0.1)

    sampler = asyncio.create_task(sample())
    before = await _topic_size(kafka, "enrolment")
    sent = [0]
    started = time.perf_counter()
    try:
        async with httpx.AsyncClient(base_url=enrolment, timeout=3600) as api:
            try:
                answer = await api.post(
                    "/imports",
                    content=_stream(import_chunks(first, rows), sent),
                    headers={**as_officer(), "Content-Type": "text/csv"},
                )
            except (httpx.WriteError, httpx.RemoteProtocolError) as error:
                return _not_measured(rows, f"the upload broke off after {_mb(sent)}: {error!r}")
            if answer.status_code in (413, 422):
                detail = answer.json().get("detail")
                return _not_measured(
                    rows, f"the service refused the file after {_mb(sent)}: {detail}"
                )
            answer.raise_for_status()
            outcome = await _until_done(api, answer)
        if outcome.get("state") == "failed":
            return _not_measured(rows, f"the import job failed: {json.dumps(outcome)[:300]}")
        registered = int(outcome["registered"])
        # Until the relay has published the last registration.
        await _until(lambda: _topic_size_at_least(kafka, "enrolment", before + registered))
        seconds = time.perf_counter() - started
    finally:
        sampling = False
        await sampler
    peak = max(sampled)
    if reset:
        peak = max(peak, memory_mb(pid)["peak_mb"])
    return {
        "rows": rows,
        "measured": True,
        "registered": registered,
        "seconds": seconds,
        "rows_per_s": registered / seconds,
        "file_mb": sent[0] / 2**20,
        "service_rss_before_mb": before_import,
        "service_peak_mb": peak,
        "peak_from": "VmHWM reset before the import, and VmRSS every 0.1 s"
        if reset
        else "VmRSS every 0.1 s",
    }


def _mb(sent: list[int]) -> str:
    return f"{sent[0] / 2**20:.1f} MB"


def _not_measured(rows: int, reason: str) -> dict[str, Any]:
    return {"rows": rows, "measured": False, "reason": reason}


async def http_load(
    url: str, headers: dict[str, str], first: int, commands: int, clients: int, core: set[int]
) -> dict[str, Any]:
    """``bench.load`` against ``url`` as a process of its own, kept to ``core``."""
    load = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "bench.load", url, str(first), str(commands), str(clients)),
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        preexec_fn=lambda: os.sched_setaffinity(0, core),
    )
    out, _ = await load.communicate(json.dumps(headers).encode())
    if load.returncode != 0:
        raise RuntimeError(f"the load generator failed with exit code {load.returncode}")
    figures: dict[str, Any] = json.loads(out)
    return figures


async def billing_run(
    kafka: KafkaSettings, database: DatabaseSettings, billing: str, workers: int, period: str
) -> dict[str, Any]:
    """Once billing's coverages have caught up with the ``workers`` covered workers (as the run
    itself waits for them), POST /billing-runs for ``period``: timed until its answer, and
    until every event it recorded is on the topic."""
    pool = await asyncpg.create_pool(database.database_url, min_size=1, max_size=1)
    try:
        await wait_until_caught_up(pool, "billing", "coverages", kafka, ["enrolment"], 3600)
        covered = await pool.fetchval("SELECT count(*) FROM billing.coverages")
        if covered != workers:
            raise RuntimeError(f"billing holds {covered} coverages, not {workers}")
        started = time.perf_counter()
        async with httpx.AsyncClient(base_url=billing, timeout=3600) as api:
            answer = await api.post(
                "/billing-runs",
                json={"period": period},
                headers={
                    **IDENTITY.headers("billing_officer"),
                    "Idempotency-Key": str(uuid.uuid4()),
                },
            )
        answered = time.perf_counter() - started
        answer.raise_for_status()
        recorded = await pool.fetchval("SELECT count(*) FROM billing.events")
        await _until(lambda: _topic_size_at_least(kafka, "billing", recorded))
        published = time.perf_counter() - started
    finally:
        await pool.close()
    return {
        "workers": workers,
        "lines": int(answer.json()["lines"]),
        "events": recorded,
        "answer_seconds": answered,
        "seconds": published,
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
