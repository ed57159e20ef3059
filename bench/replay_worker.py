"""One replay process: rebuild the given projections from the topics into schemas of its own,
then print what it read, how long it took and its peak resident memory, as JSON.

Run as a separate process so that its memory is its own and two of them can run side by side.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from typing import Any

import asyncpg

from services.catalog import projection_named
from shared.projection.replay import rebuild_into
from shared.settings import DatabaseSettings, KafkaSettings


async def replay(
    kafka: KafkaSettings, database: DatabaseSettings, names: list[str]
) -> dict[str, Any]:
    pool = await asyncpg.create_pool(database.database_url, min_size=1, max_size=4)
    per_projection = {}
    started = time.perf_counter()
    try:
        for name in names:
            service, projection = name.split(".")
            began = time.perf_counter()
            result = await rebuild_into(
                pool, f"bench_{service}_{projection}", projection_named(service, projection), kafka
            )
            per_projection[name] = {
                "records": result.records,
                "applied": result.applied,
                "dead_lettered": result.dead_lettered,
                "seconds": time.perf_counter() - began,
            }
    finally:
        await pool.close()
    return {
        "records": sum(p["records"] for p in per_projection.values()),
        "seconds": time.perf_counter() - started,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "projections": per_projection,
    }


def main() -> None:
    prefix, names = sys.argv[1], sys.argv[2].split(",")
    kafka = KafkaSettings(topic_prefix=prefix)
    print(json.dumps(asyncio.run(replay(kafka, DatabaseSettings(), names))))


if __name__ == "__main__":
    main()
