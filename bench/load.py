"""The HTTP load generator, run as a process of its own so that the clients do not share the
measured service's interpreter: ``clients`` concurrent clients posting registrations one after
another each, the figures printed as JSON.

    python -m bench.load URL FIRST COMMANDS CLIENTS   (request headers as JSON on stdin)
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from bench.measure import percentile
from bench.people import person


async def registrations(
    url: str, headers: Mapping[str, str], first: int, commands: int, clients: int
) -> dict[str, Any]:
    latencies: list[float] = []
    failures: list[str] = []
    numbers: Iterator[int] = iter(range(first, first + commands))

    async def client() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=60, headers=headers) as api:
            for number in numbers:
                began = time.perf_counter()
                response = await api.post("/workers", json=person(number))
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
        "seconds": seconds,
        "commands_per_s": commands / seconds,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
    }


def main() -> None:
    url, first, commands, clients = sys.argv[1], *map(int, sys.argv[2:5])
    headers = json.loads(sys.stdin.read())
    print(json.dumps(asyncio.run(registrations(url, headers, first, commands, clients))))


if __name__ == "__main__":
    main()
