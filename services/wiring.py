"""Which service to build, by name (for ``berlian run``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from services.billing import wiring as billing
from services.claims import wiring as claims
from services.enrolment import wiring as enrolment
from services.figures import FIGURES
from services.verification import wiring as verification
from shared.auth import AuthSettings
from shared.figures import figures_job
from shared.runtime import ServiceProcess
from shared.settings import DatabaseSettings, KafkaSettings

Builder = Callable[
    [KafkaSettings, DatabaseSettings, AuthSettings], Awaitable[tuple[ServiceProcess, Any]]
]
BUILDERS: dict[str, Builder] = {
    "enrolment": enrolment.build,
    "verification": verification.build,
    "billing": billing.build,
    "claims": claims.build,
}


async def build_service(
    name: str, kafka: KafkaSettings, database: DatabaseSettings, auth: AuthSettings
) -> ServiceProcess:
    if name not in BUILDERS:
        raise ValueError(f"unknown service {name!r}; known: {', '.join(BUILDERS)}")
    process, _ = await BUILDERS[name](kafka, database, auth)
    if name in FIGURES:
        job = figures_job(process.pool, name, FIGURES[name])
        process.background = [*process.background, job]
    return process
