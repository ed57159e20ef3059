"""Scenario 1, service crashes: registrations and verifications keep coming while a random
service process (its API, relay and consumers together) is killed with SIGKILL at a random
moment and started again, over and over. The checker then finds every acknowledged command
once in its owner's store and on its topic, every projection equal to a replay, and the log
intact.

RELIABILITY_CRASHES sets how many kills (CI: 3; the long run: 20 or more)."""

from __future__ import annotations

import asyncio
import os
import random
import signal

import pytest

from tests.integration.programme_world import (
    PORTS,
    World,
    environment,
    start_service,
    world,
)
from tests.reliability.figures import Figures
from tests.reliability.load import SUSTAINED, Load

__all__ = ["world"]  # the fixture, used by name
pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.slow]
CRASHES = int(os.environ.get("RELIABILITY_CRASHES", "3"))


@pytest.mark.scenario("service crashes")
async def test_sigkill_of_random_services_loses_and_doubles_nothing(
    world: World, figures: Figures
) -> None:
    kafka, database, processes = world
    load = Load()
    kills: list[str] = []

    async def chaos() -> None:
        env = environment(kafka, database)
        for _ in range(CRASHES):
            await asyncio.sleep(random.uniform(0.5, 2.5))
            service = random.choice(list(PORTS))
            processes[service].send_signal(signal.SIGKILL)
            await asyncio.to_thread(processes[service].wait)
            kills.append(service)
            processes[service] = start_service(service, env)

    async with load.running(at_least=SUSTAINED):
        await chaos()
        await asyncio.sleep(2)

    faults = f"{len(kills)} SIGKILL ({', '.join(sorted(set(kills)))})"
    await figures.checked(kafka, database, load, faults)
    assert len(kills) == CRASHES
