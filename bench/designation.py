"""A decree's designations through verification running as a real process: ``count`` workers
designated one request after another, against ``count`` others in one bulk request.

    python -m bench.designation [count]

Each half designates into the regular cohort of its own fiscal year (whose quota is 1,000), so
that both start from the same standing; the workers are imported and verified first.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from typing import Any

import httpx

from bench import ingestion
from bench.people import KRAPYAK, import_chunks
from bench.suite import own_database
from deploy.demo import imported_list
from deploy.local import stack
from deploy.local.paths import run_dir
from shared.settings import KafkaSettings
from shared.topics import delete_topics_with_prefix, ensure_topics

KECAMATAN = KRAPYAK.rsplit(".", 1)[0]
CITY = ingestion.IDENTITY.headers("city_admin")
CLIENTS = 16  # concurrent clients of the verification steps before the designations


def decree(fiscal_year: int) -> dict[str, Any]:
    return {
        "cohort": "regular",
        "cover_months": 12,
        "coverage_start": f"{fiscal_year}-01-01",
        "fiscal_year": fiscal_year,
        "decree_ref": f"SK 400/bench/{fiscal_year}",
    }


async def ready_workers(enrolment: httpx.AsyncClient, verification: str, count: int) -> list[str]:
    """``count`` workers imported in Krapyak and passed at the kelurahan and kecamatan."""
    _, rows = await imported_list(
        enrolment, ingestion.as_officer(), b"".join(import_chunks(0, count))
    )
    workers = [row["worker_id"] for row in rows if row["worker_id"]]
    pending = iter(workers)
    officers = (
        ingestion.IDENTITY.headers("kelurahan_officer", KRAPYAK),
        ingestion.IDENTITY.headers("kecamatan_officer", KECAMATAN),
    )

    async def client() -> None:
        async with httpx.AsyncClient(base_url=verification, timeout=120) as api:
            for worker in pending:
                for officer in officers:
                    for _ in range(100):  # until the case has reached verification
                        answer = await api.post(f"/cases/{worker}/verify", json={}, headers=officer)
                        if answer.status_code != 404:
                            break
                        await asyncio.sleep(0.2)
                    answer.raise_for_status()

    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return workers


async def run(count: int) -> dict[str, Any]:
    endpoints = await asyncio.to_thread(stack.up)
    run_id = uuid.uuid4().hex[:6]
    base = KafkaSettings(kafka_bootstrap_servers=endpoints.kafka_bootstrap_servers)
    kafka = base.model_copy(update={"topic_prefix": f"bench-{run_id}-designation."})
    await ensure_topics(kafka)
    names = ("enrolment", "verification", "billing")
    logs = run_dir() / "bench" / run_id
    try:
        async with (
            own_database(endpoints.database_url, f"berlian_bench_designation_{run_id}") as database,
            ingestion.services_running(kafka, database, names, logs) as running,
            httpx.AsyncClient(base_url=running.urls["enrolment"], timeout=600) as enrolment,
            httpx.AsyncClient(base_url=running.urls["verification"], timeout=600) as api,
            httpx.AsyncClient(base_url=running.urls["billing"], timeout=60) as billing,
        ):
            workers = await ready_workers(enrolment, running.urls["verification"], 2 * count)
            one_by_one, in_bulk = workers[:count], workers[count : 2 * count]
            for fiscal_year in (2025, 2026):
                budget = {"fiscal_year": fiscal_year, "source": "APBD", "cohort": "regular"}
                (
                    await billing.post(
                        "/budgets",
                        json=budget | {"amount": count * 12 * 20_000},
                        headers={**CITY, "Idempotency-Key": str(uuid.uuid4())},
                    )
                ).raise_for_status()

            started = time.perf_counter()
            for worker in one_by_one:
                answer = await api.post(
                    f"/cases/{worker}/designate", json=decree(2025), headers=CITY
                )
                answer.raise_for_status()
            single_seconds = time.perf_counter() - started

            started = time.perf_counter()
            answer = await api.post(
                "/cases/designate",
                json=decree(2026) | {"worker_ids": in_bulk},
                headers={**CITY, "Idempotency-Key": str(uuid.uuid4())},
            )
            bulk_seconds = time.perf_counter() - started
            answer.raise_for_status()
            designated = answer.json()["designated"]
    finally:
        await delete_topics_with_prefix(base, f"bench-{run_id}")
    return {
        "workers": count,
        "one_by_one_seconds": single_seconds,
        "one_by_one_per_s": count / single_seconds,
        "bulk_seconds": bulk_seconds,
        "bulk_designated": designated,
        "bulk_per_s": designated / bulk_seconds,
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)), indent=2))
