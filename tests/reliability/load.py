"""The load every fault scenario runs under: an open loop of commands started at a fixed rate
whatever the answers (a slow or absent service does not slow the offer), at most IN_FLIGHT at
once. The commands mix registrations, kelurahan verifications of workers registered before and
CSV imports (tests/reliability/commands.py). What the services acknowledged is what the checker
must find; what they refused, and what the client shed with the bound full, is counted with its
reason.

RELIABILITY_RATE sets the commands started per second (default 100); a scenario offers them
through its faults and for at least RELIABILITY_LOAD_SECONDS (CI: 20; the long run: more)."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.reliability import commands

RATE = float(os.environ.get("RELIABILITY_RATE", "100"))
SUSTAINED = float(os.environ.get("RELIABILITY_LOAD_SECONDS", "20"))
# Commands under way at once, each on a connection of its own; a command due past it is shed.
# Bounded so that an overloaded service queues no command for minutes (nor the client's
# connection pool, whose waiters cost more the more there are).
IN_FLIGHT = 64
IMPORT_ROWS = 10
# Of every 20 commands: 11 registrations, 8 verifications (a registration when no worker
# awaits one), 1 import of IMPORT_ROWS rows.
MIX = ("register", "verify") * 8 + ("register",) * 3 + ("import",)


@dataclass
class Load:
    first_person: int = 0
    rate: float = RATE
    registered: set[str] = field(default_factory=set)
    verified: set[str] = field(default_factory=set)
    offered: int = 0  # commands due at the rate, started or shed
    shed: int = 0  # due with IN_FLIGHT commands under way: never sent
    seconds: float = 0.0  # time the load was offered
    acknowledged_kinds: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)  # "kind: reason"
    latencies: dict[str, list[float]] = field(default_factory=dict)
    imported_rows: int = 0
    _next_person: int = -1
    _unverified: deque[str] = field(default_factory=deque)

    @property
    def acknowledged(self) -> int:
        """Commands acknowledged, an import counting once."""
        return sum(self.acknowledged_kinds.values())

    @asynccontextmanager
    async def running(self, at_least: float = 0.0) -> AsyncIterator[None]:
        """Commands offered inside the block, and for ``at_least`` seconds from its start; the
        commands under way at its end are answered before it returns."""
        stop = asyncio.Event()
        began = time.monotonic()
        limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
        async with httpx.AsyncClient(timeout=30, limits=limits) as api:
            offering = asyncio.create_task(self._offer(api, stop))
            try:
                yield
                await asyncio.sleep(began + at_least - time.monotonic())
            finally:
                stop.set()
                await offering

    async def _offer(self, api: httpx.AsyncClient, stop: asyncio.Event) -> None:
        if self._next_person < 0:
            self._next_person = self.first_person
        began = time.monotonic()
        due = 0
        under_way: set[asyncio.Task[None]] = set()
        while not stop.is_set():
            # Every command due by now is started, however late the loop wakes: the offer
            # keeps its rate when the client's own loop is busy.
            for _ in range(int((time.monotonic() - began) * self.rate) + 1 - due):
                kind = MIX[(self.offered + due) % len(MIX)]
                due += 1
                if len(under_way) >= IN_FLIGHT:
                    self.shed += 1
                    continue
                task = asyncio.create_task(self._command(api, kind))
                under_way.add(task)
                task.add_done_callback(under_way.discard)
            await asyncio.sleep(began + due / self.rate - time.monotonic())
        self.seconds += time.monotonic() - began
        self.offered += due
        await asyncio.gather(*under_way)

    async def _command(self, api: httpx.AsyncClient, kind: str) -> None:
        began = time.monotonic()
        if kind == "verify" and not self._unverified:
            kind = "register"
        try:
            if kind == "verify":
                worker = self._unverified.popleft()
                await commands.verify(api, worker)
                self.verified.add(worker)
            elif kind == "import":
                rows = await commands.import_rows(api, self._persons(IMPORT_ROWS), IMPORT_ROWS)
                self._registered(rows.registered)
                self.imported_rows += len(rows.registered)
                for reasons in rows.refused:
                    self.refused[f"import row: {reasons[:120]}"] += 1
            else:
                self._registered([await commands.register(api, self._persons(1))])
        except commands.RefusedError as error:
            self.refused[f"{kind}: refused {error}"] += 1
            return
        except commands.UnansweredError as error:
            self.refused[f"{kind}: unanswered, {error}"] += 1
            return
        self.acknowledged_kinds[kind] += 1
        self.latencies.setdefault(kind, []).append(time.monotonic() - began)

    def _persons(self, count: int) -> int:
        first, self._next_person = self._next_person, self._next_person + count
        return first

    def _registered(self, workers: list[str]) -> None:
        self.registered.update(workers)
        self._unverified.extend(workers)

    def figures(self) -> dict[str, Any]:
        """What the load offered and what became of it, for the scenario's line of figures."""
        every = sorted(t for times in self.latencies.values() for t in times)
        return {
            "load_seconds": round(self.seconds, 1),
            "offered": self.offered,
            "offered_rate": round(self.offered / self.seconds, 1) if self.seconds else 0.0,
            "shed": self.shed,
            "acknowledged_by_kind": dict(self.acknowledged_kinds),
            "imported_rows": self.imported_rows,
            "refused": dict(self.refused.most_common(10)),
            "refused_total": sum(self.refused.values()),
            "p50_ms": milliseconds(every, 0.50),
            "p99_ms": milliseconds(every, 0.99),
            "p99_ms_by_kind": {
                kind: milliseconds(sorted(times), 0.99) for kind, times in self.latencies.items()
            },
        }


def milliseconds(ordered: list[float], quantile: float) -> float | None:
    """The ``quantile`` of the sorted durations, in ms (nearest rank); None for no durations."""
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(quantile * len(ordered)))] * 1000, 1)
