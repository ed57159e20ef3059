"""What the figures were measured on: they mean little without it."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

import asyncpg

from deploy.local.kafka_broker import KAFKA_VERSION


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        if found:
            return found.group(1).strip()
    return platform.processor() or "unknown"


def memory_gib() -> float:
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        found = re.search(r"^MemTotal:\s*(\d+) kB", meminfo.read_text(), re.MULTILINE)
        if found:
            return round(int(found.group(1)) / 1024**2, 1)
    return 0.0


async def describe(database_url: str) -> dict[str, str | int | float]:
    conn = await asyncpg.connect(database_url)
    try:
        postgres = str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count() or 0,
        "memory_gib": memory_gib(),
        "kafka": KAFKA_VERSION,
        "postgresql": postgres.split()[0],
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
    }
