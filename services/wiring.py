"""Which service to build, by name (for ``berlian run``)."""

from __future__ import annotations

from services.enrolment import wiring as enrolment
from services.verification import wiring as verification
from shared.auth import AuthSettings
from shared.runtime import ServiceProcess
from shared.settings import DatabaseSettings, KafkaSettings


async def build_service(
    name: str, kafka: KafkaSettings, database: DatabaseSettings, auth: AuthSettings
) -> ServiceProcess:
    if name == "enrolment":
        process, _ = await enrolment.build(kafka, database, auth)
        return process
    if name == "verification":
        process, _ = await verification.build(kafka, database, auth)
        return process
    raise ValueError(f"unknown service {name!r}; known: enrolment, verification")
