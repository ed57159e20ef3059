"""The projection runner's Kafka commits, informative only, made beside its loop: at most one in
flight, the latest offsets taken by the next, a failure counted and the next one still made."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import TopicPartition
from prometheus_client import REGISTRY

from shared.projection.runner import _InformativeCommits

pytestmark = pytest.mark.unit
A, B = TopicPartition("t", 0), TopicPartition("t", 1)
FAILURES = "berlian_projection_offset_commit_failures_total"


class Coordinator:
    """A consumer whose commits wait until the group coordinator answers (``answer``)."""

    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.answer = asyncio.Event()
        self.refuse = False

    def assignment(self) -> set[TopicPartition]:
        return {A, B}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(offsets)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.answer.wait()
            if self.refuse:
                raise ConnectionError("the group coordinator is not available")
        finally:
            self.in_flight -= 1


async def settled(coordinator: Coordinator, commits: int) -> None:
    for _ in range(100):
        if len(coordinator.commits) == commits and coordinator.in_flight == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{commits} commits not made: {coordinator.commits}")


async def test_offers_return_at_once_and_one_commit_at_a_time_takes_the_latest() -> None:
    coordinator = Coordinator()
    commits = _InformativeCommits(coordinator, "s.hanging")
    commits.offer(A, 10)
    await asyncio.sleep(0)
    for offset in (11, 12):
        commits.offer(A, offset)  # returns at once while the first commit waits
    commits.offer(B, 3)

    coordinator.answer.set()
    await settled(coordinator, 2)
    assert coordinator.commits == [{A: 10}, {A: 12, B: 3}]
    assert coordinator.most_in_flight == 1


async def test_a_failed_commit_is_counted_and_the_next_one_is_made() -> None:
    coordinator = Coordinator()
    coordinator.refuse = True
    coordinator.answer.set()
    commits = _InformativeCommits(coordinator, "s.refused")
    before = REGISTRY.get_sample_value(FAILURES, {"projection": "s.refused"}) or 0
    commits.offer(A, 1)
    await settled(coordinator, 1)
    assert REGISTRY.get_sample_value(FAILURES, {"projection": "s.refused"}) == before + 1

    coordinator.refuse = False
    commits.offer(A, 2)
    await settled(coordinator, 2)
    assert coordinator.commits[-1] == {A: 2}
    await commits.stop()


async def test_stop_gives_up_a_commit_that_does_not_answer() -> None:
    coordinator = Coordinator()
    commits = _InformativeCommits(coordinator, "s.stopped")
    commits.offer(A, 1)
    await asyncio.sleep(0)
    await asyncio.wait_for(commits.stop(), timeout=5)
    assert coordinator.in_flight == 0
