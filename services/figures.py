"""Which programme figures each service exports, from its own projections."""

from __future__ import annotations

from shared.figures import Figure
from shared.telemetry import BUDGET_RUPIAH, CLAIMS, CLAIMS_WAITING_SECONDS, PREMIUMS_RUPIAH, WORKERS

FIGURES: dict[str, tuple[Figure, ...]] = {
    "enrolment": (
        Figure(
            WORKERS,
            "SELECT status, coalesce(cohort, 'none'), kecamatan_code, count(*) "
            "FROM {schema}.workers GROUP BY 1, 2, 3",
        ),
    ),
    "billing": (
        Figure(
            BUDGET_RUPIAH,
            "SELECT fiscal_year, cohort, sum(allocated) FROM {schema}.allocations GROUP BY 1, 2",
        ),
        Figure(
            PREMIUMS_RUPIAH,
            "SELECT fiscal_year, cohort, 'invoiced', sum(amount) FROM {schema}.premiums "
            "GROUP BY 1, 2 UNION ALL "
            "SELECT fiscal_year, cohort, 'paid', sum(amount) FROM {schema}.premiums "
            "WHERE paid_on IS NOT NULL GROUP BY 1, 2",
        ),
    ),
    "claims": (
        Figure(CLAIMS, "SELECT status, benefit, count(*) FROM {schema}.claims GROUP BY 1, 2"),
        Figure(
            CLAIMS_WAITING_SECONDS,
            "SELECT status, extract(epoch FROM now() - min(filed_at)) FROM {schema}.claims "
            "WHERE status IN ('pending', 'approved') GROUP BY 1",
        ),
    ),
}
