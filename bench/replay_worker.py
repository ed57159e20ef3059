"""One replay process: rebuild the given projections from the topics into schemas of its own,
all at once (each topic read once for every projection that reads it), then print what it read,
how long it took and its peak resident memory, as JSON.

    python -m bench.replay_worker PREFIX PROJECTIONS [--workers N]

``--workers N`` spreads the partitions over N processes of their own (default 1: this process
alone); the peak memory reported is then the largest of this process and its workers. Run as a
separate process so that its memory is its own and two of them can run side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from typing import Any

import asyncpg

from contract.events.registry import CATALOGUE
from services.catalog import projection_named
from shared.projection.replay import Processes, Rebuild, rebuild_all
from shared.settings import DatabaseSettings, KafkaSettings


async def replay(
    kafka: KafkaSettings, database: DatabaseSettings, names: list[str], workers: int = 1
) -> dict[str, Any]:
    rebuilds = []
    for name in names:
        service, projection = name.split(".")
        rebuilds.append(
            Rebuild(projection_named(service, projection), f"bench_{service}_{projection}")
        )
    pool = await asyncpg.create_pool(database.database_url, min_size=1, max_size=4)
    started = time.perf_counter()
    try:
        processes = Processes(workers, database.database_url) if workers > 1 else None
        results = await rebuild_all(pool, rebuilds, CATALOGUE, kafka, processes=processes)
    finally:
        await pool.close()
    seconds = time.perf_counter() - started
    per_projection = {
        name: {
            "records": result.records,
            "applied": result.applied,
            "dead_lettered": result.dead_lettered,
            "seconds": seconds,  # built together: each took the whole rebuild's time
        }
        for name, result in zip(names, results, strict=True)
    }
    peak_kb = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    )
    return {
        "records": sum(p["records"] for p in per_projection.values()),
        "seconds": seconds,
        "workers": workers,
        "peak_rss_mb": peak_kb / 1024,
        "projections": per_projection,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.replay_worker")
    parser.add_argument("prefix", help="the topic prefix of the log")
    parser.add_argument("projections", help="comma-separated, e.g. enrolment.workers")
    parser.add_argument("--workers", type=int, default=1, help="processes over the partitions")
    arguments = parser.parse_args()
    kafka = KafkaSettings(topic_prefix=arguments.prefix)
    names = arguments.projections.split(",")
    print(json.dumps(asyncio.run(replay(kafka, DatabaseSettings(), names, arguments.workers))))


if __name__ == "__main__":
    main()
