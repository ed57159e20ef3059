"""The bulk import alone, for trying a change to the write path out in a minute rather than the
whole suite's hour: ``files`` CSV files of ``rows`` rows each through ``POST /imports`` of an
enrolment service (with verification beside it, as in the suite), measured as the suite measures
them (``bench.ingestion.bulk_import``), one JSON line per file.

    python -m bench.import_alone ROWS [FILES]

It runs in a migrated database and on topics of its own on the local stack, dropped after.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid

from bench import ingestion
from bench.suite import own_database
from deploy.local import stack
from deploy.local.paths import run_dir
from shared.settings import KafkaSettings
from shared.topics import delete_topics_with_prefix, ensure_topics


async def imports(rows: int, files: int) -> None:
    endpoints = await asyncio.to_thread(stack.up)
    run_id = uuid.uuid4().hex[:6]
    base = KafkaSettings(kafka_bootstrap_servers=endpoints.kafka_bootstrap_servers)
    kafka = base.model_copy(update={"topic_prefix": f"bench-{run_id}-import."})
    try:
        async with own_database(endpoints.database_url, f"berlian_bench_import_{run_id}") as db:
            await ensure_topics(kafka)
            logs = run_dir() / "bench" / run_id
            services = ("enrolment", "verification")
            async with ingestion.services_running(kafka, db, services, logs) as running:
                for k in range(files):
                    first = 30_000_000 * (k + 1)  # each file's NIKs apart from the others'
                    enrolment, pid = running.urls["enrolment"], running.pids["enrolment"]
                    figures = await ingestion.bulk_import(kafka, enrolment, pid, first, rows)
                    print(json.dumps(figures), flush=True)
    finally:
        await delete_topics_with_prefix(base, f"bench-{run_id}")


def main() -> None:
    rows = int(sys.argv[1])
    files = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    asyncio.run(imports(rows, files))


if __name__ == "__main__":
    main()
