"""Scenario 3, PostgreSQL restarts: under load, the database server is restarted (every
connection of every service cut); the services retry and resume by themselves, and the checker
finds nothing lost or doubled."""

from __future__ import annotations

import asyncio
import os

import pytest

from deploy.local import postgres
from tests.integration.programme_world import World, world
from tests.reliability.figures import Figures
from tests.reliability.load import SUSTAINED, Load

__all__ = ["world"]  # the fixture, used by name
pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.slow]
RESTARTS = int(os.environ.get("RELIABILITY_DATABASE_RESTARTS", "1"))


@pytest.mark.scenario("PostgreSQL restart")
async def test_services_resume_after_postgresql_restarts(world: World, figures: Figures) -> None:
    kafka, database, _ = world
    load = Load(first_person=1_000_000)

    async with load.running(at_least=SUSTAINED):
        for _ in range(RESTARTS):
            # Spread over the window, each restart meeting the load in full flow.
            await asyncio.sleep(max(2.0, SUSTAINED / (RESTARTS + 1)))
            await asyncio.to_thread(postgres.restart)
        await asyncio.sleep(3)

    await figures.checked(kafka, database, load, f"{RESTARTS} restart(s) of the server under load")
    assert load.registered
