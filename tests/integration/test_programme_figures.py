"""The programme's figures come from the projections: each service's queries run on its real
tables and the gauges show the aggregates, per cohort, kecamatan, fiscal year and status."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest
from prometheus_client import REGISTRY

from services.figures import FIGURES
from shared.figures import refresh
from shared.settings import DatabaseSettings

pytestmark = pytest.mark.integration
YEAR = 2099  # far from any other test's data in the run's database
KECAMATAN = "99.99.99"
BENEFIT = "figures-test"


@pytest.fixture
async def pool(migrated: DatabaseSettings) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(migrated.database_url, min_size=1, max_size=2)
    yield pool
    await pool.execute("DELETE FROM billing.allocations WHERE fiscal_year = $1", YEAR)
    await pool.execute("DELETE FROM billing.premiums WHERE fiscal_year = $1", YEAR)
    await pool.execute("DELETE FROM enrolment.workers WHERE kecamatan_code = $1", KECAMATAN)
    await pool.execute("DELETE FROM claims.claims WHERE benefit = $1", BENEFIT)
    await pool.close()


def figure(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def test_the_figures_aggregate_the_projections(pool: asyncpg.Pool) -> None:
    await pool.execute(
        "INSERT INTO billing.allocations VALUES ($1, 'regular', 'APBD', 1000000), "
        "($1, 'regular', 'APBD-P', 500000)",
        YEAR,
    )
    await pool.executemany(
        "INSERT INTO billing.premiums VALUES ($1, $2, $3, 'regular', $4, 16800, $5, $6)",
        [
            (uuid.uuid4(), f"{YEAR}-01", uuid.uuid4(), YEAR, date(YEAR, 2, 1), "ref-1"),
            (uuid.uuid4(), f"{YEAR}-02", uuid.uuid4(), YEAR, None, None),
        ],
    )
    await pool.executemany(
        "INSERT INTO enrolment.workers (worker_id, kelurahan_code, kecamatan_code, "
        "occupation_code, birth_date, sex, personal, status, registered_at, source_channel, "
        "cohort) VALUES ($1, $2, $3, 'buruh_batik', '1980-01-01', 'F', '{}', $4, now(), 'api', $5)",
        [
            (uuid.uuid4(), f"{KECAMATAN}.1001", KECAMATAN, "covered", "regular"),
            (uuid.uuid4(), f"{KECAMATAN}.1002", KECAMATAN, "covered", "regular"),
            (uuid.uuid4(), f"{KECAMATAN}.1002", KECAMATAN, "registered", None),
        ],
    )
    filed = datetime.now(UTC) - timedelta(days=3)
    await pool.execute(
        "INSERT INTO claims.claims (claim_id, worker_id, benefit, kind, incident_date, filed_at, "
        "status) VALUES ($1, $2, $3, 'death', '2099-01-01', $4, 'pending')",
        uuid.uuid4(),
        uuid.uuid4(),
        BENEFIT,
        filed,
    )

    for service, figures in FIGURES.items():
        await refresh(pool, service, figures)

    year = str(YEAR)
    assert figure("berlian_budget_rupiah", fiscal_year=year, cohort="regular") == 1_500_000
    assert figure(
        "berlian_premiums_rupiah", fiscal_year=year, cohort="regular", state="invoiced"
    ) == (2 * 16_800)
    assert figure("berlian_premiums_rupiah", fiscal_year=year, cohort="regular", state="paid") == (
        16_800
    )
    covered = figure("berlian_workers", status="covered", cohort="regular", kecamatan=KECAMATAN)
    assert covered == 2
    assert figure("berlian_workers", status="registered", cohort="none", kecamatan=KECAMATAN) == 1
    assert figure("berlian_claims", status="pending", benefit=BENEFIT) == 1
    waiting = figure("berlian_claims_oldest_waiting_seconds", status="pending")
    assert waiting is not None
    assert waiting >= timedelta(days=3).total_seconds()


async def test_a_figure_gone_from_the_projection_is_gone_from_the_metrics(
    pool: asyncpg.Pool,
) -> None:
    await pool.execute("INSERT INTO billing.allocations VALUES ($1, 'incidental', 'APBD', 7)", YEAR)
    await refresh(pool, "billing", FIGURES["billing"])
    assert figure("berlian_budget_rupiah", fiscal_year=str(YEAR), cohort="incidental") == 7

    await pool.execute("DELETE FROM billing.allocations WHERE fiscal_year = $1", YEAR)
    await refresh(pool, "billing", FIGURES["billing"])
    assert figure("berlian_budget_rupiah", fiscal_year=str(YEAR), cohort="incidental") is None
