"""The capacity plan (``docs/capacity.md``), computed from a benchmark run's figures: every
number in it is either an assumption stated in the page or arithmetic on measured rates."""

from __future__ import annotations

import math
from typing import Any

import asyncpg
import orjson

from bench.synthetic import programme_log

# Events per worker and year, by topic: the programme's rhythm (see docs/capacity.md).
EVENTS_PER_WORKER_YEAR = {
    "enrolment": 1 * 0.25 + 2 + 0.05,  # a quarter are new registrations; start and end; fixes
    "verification": 3,  # kelurahan, kecamatan and city (the designation) each year
    "billing": 12 * 2,  # each month invoiced, then paid
    "claims": 0.015 * 3,  # 1.5% claim a year: filed, decided, paid
}
SCALES = {"province": 500_000, "country": 10_000_000}
PARTITIONS = {"province": 6, "country": 24}
# Live peak: the monthly billing run invoices every covered worker within this window.
BILLING_RUN_HOURS = 2


def mean_bytes_by_topic(workers: int = 200) -> dict[str, float]:
    sizes: dict[str, list[int]] = {}
    for owner, envelope in programme_log(workers):
        sizes.setdefault(owner, []).append(len(orjson.dumps(envelope)))
    sizes.setdefault("claims", sizes["billing"])  # no claims in the log: a billing-sized event
    return {topic: sum(s) / len(s) for topic, s in sizes.items()}


async def storage(database_url: str, workers: int) -> dict[str, float]:
    """Bytes per worker of each projection table rebuilt from the log, and per stored event."""
    conn = await asyncpg.connect(database_url)
    try:
        tables = await conn.fetch(
            "SELECT n.nspname || '.' || c.relname AS name, pg_total_relation_size(c.oid) AS bytes "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind = 'r' AND n.nspname LIKE 'bench\\_%' "
            "AND c.relname NOT IN ('schema_migrations', 'dead_letters')"
        )
        events = await conn.fetchrow(
            "SELECT count(*) AS n, pg_total_relation_size('enrolment.events') AS bytes "
            "FROM enrolment.events"
        )
    finally:
        await conn.close()
    per_worker = {row["name"]: row["bytes"] / workers for row in tables}
    assert events is not None  # an aggregate always returns its row
    per_event = events["bytes"] / events["n"] if events["n"] else 0.0
    return {"projection_bytes_per_worker": sum(per_worker.values()), "event_bytes": per_event}


def _gb(value: float) -> str:
    return f"{value / 1e9:,.1f} GB"


def markdown(figures: dict[str, Any]) -> str:
    replay_rate = figures["replay"]["records_per_s"]
    records_per_event = figures["replay"]["records"] / figures["log"]["events"]
    sizes = mean_bytes_by_topic()
    store = figures["storage"]
    lines = [
        "# Capacity plan",
        "",
        "Computed by `./berlian bench` from the figures of its run (docs/benchmarks.md): change an "
        "assumption in `bench/capacity.py`, or run the benchmarks again, and this page follows.",
        "",
        "## Assumptions",
        "",
        "Per worker and year: enrolment "
        f"{EVENTS_PER_WORKER_YEAR['enrolment']:.2f} events (a quarter of the workers are new and "
        "registered, every coverage starts and ends, 5% corrections); verification 3 (three "
        "levels each year); billing 24 (each month invoiced, then paid); claims "
        f"{EVENTS_PER_WORKER_YEAR['claims']:.3f} (1.5% of workers claim: filed, decided, paid). "
        "A country of 10 million workers thus has 120 million premium invoices a year, and as "
        "many payments. Event sizes are those of the benchmark's log (mean bytes per topic: "
        + ", ".join(f"{t} {b:,.0f}" for t, b in sorted(sizes.items()))
        + f"). A full replay reads {records_per_event:.2f} records per event in the log (several "
        "projections read the same topics), as measured.",
        "",
        f"Measured on the benchmark machine: one replay process applies {replay_rate:,.0f} "
        f"records/s; a stored event takes {store['event_bytes']:,.0f} bytes in PostgreSQL "
        "(row, body and indexes); all projections together take "
        f"{store['projection_bytes_per_worker']:,.0f} bytes per worker (100,000 workers, ten "
        "events each).",
    ]
    for scale, workers in SCALES.items():
        per_topic = {t: workers * n for t, n in EVENTS_PER_WORKER_YEAR.items()}
        total = sum(per_topic.values())
        peak = workers / (BILLING_RUN_HOURS * 3600)
        partitions = PARTITIONS[scale]
        write_rate = figures["import"]["events_per_s"]
        replay_records = total * records_per_event
        one = replay_records / replay_rate
        lines += [
            "",
            f"## {scale.capitalize()}: {workers:,} workers",
            "",
            "| topic | events a year | bytes a year (before compression) |",
            "|---|---|---|",
            *(
                f"| {t} | {per_topic[t]:,.0f} = {workers:,} x {n:g} | "
                f"{_gb(per_topic[t] * sizes[t])} = {per_topic[t]:,.0f} x {sizes[t]:,.0f} B |"
                for t, n in EVENTS_PER_WORKER_YEAR.items()
            ),
            f"| all | {total:,.0f} | {_gb(sum(per_topic[t] * sizes[t] for t in per_topic))} |",
            "",
            f"- **Live load**: the busiest moment is the monthly billing run, {workers:,} "
            f"invoices within {BILLING_RUN_HOURS} h = {peak:,.0f} events/s, then as many "
            f"payments; one consumer process per projection applies {replay_rate:,.0f}/s, so "
            f"{math.ceil(peak / replay_rate)} replica per projection keeps up; more replicas "
            "serve availability, not throughput.",
            f"- **Write side**: a service process records {write_rate:,.0f} commands/s, each "
            f"its own durable transaction (bulk import, measured); the billing run's "
            f"{workers:,} invoice lines then take {workers / write_rate / 3600:,.1f} h in one "
            f"process, so the run is split by kecamatan across replicas to fit its "
            f"{BILLING_RUN_HOURS} h window "
            f"({math.ceil(workers / write_rate / 3600 / BILLING_RUN_HOURS)} at least).",
            f"- **Partitions**: {partitions} per topic, so that up to {partitions} consumer "
            "replicas can share a replay (replicas never exceed partitions).",
            f"- **PostgreSQL**: event stores {_gb(total * store['event_bytes'])} a year "
            f"({total:,.0f} x {store['event_bytes']:,.0f} B); projections "
            f"{_gb(workers * store['projection_bytes_per_worker'])} "
            f"({workers:,} x {store['projection_bytes_per_worker']:,.0f} B, measured with five "
            "premium months per worker; each further month kept adds its rows).",
            f"- **Full replay of one year**: {replay_records:,.0f} records "
            f"({total:,.0f} x {records_per_event:.2f}); at {replay_rate:,.0f} records/s per "
            f"process that is {one / 3600:,.1f} h with one process, "
            f"{one / partitions / 3600:,.2f} h with {partitions} (one per partition, on their own "
            "cores, PostgreSQL sized to match); each further year of history adds as much.",
        ]
    return "\n".join(lines) + "\n"
