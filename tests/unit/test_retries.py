"""Retries wait a jittered, bounded, growing time; they stop when asked, and never retry what
they were not told to."""

from __future__ import annotations

import asyncio

import pytest
from tenacity import RetryCallState

from shared.retries import JITTERED_BACKOFF, poll_until_empty, retry_forever, retry_until_stopped

pytestmark = pytest.mark.unit


def waits(attempt: int, draws: int = 200) -> set[float]:
    state = RetryCallState(None, None, (), {})
    state.attempt_number = attempt
    return {JITTERED_BACKOFF(state) for _ in range(draws)}


def test_waits_are_jittered_and_grow_up_to_ten_seconds() -> None:
    first, fifth, far = waits(1), waits(5), waits(30)

    assert len(first) > 100  # replicas failing together do not come back together
    assert all(0 <= w <= 0.4 for w in first)
    assert all(0 <= w <= 6.4 for w in fifth)
    assert max(fifth) > 0.4
    assert all(0 <= w <= 10.0 for w in far)
    assert max(far) > 6.4


async def test_a_listed_failure_is_retried_until_the_operation_succeeds() -> None:
    calls = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionResetError("the database restarted")
        return "done"

    assert await retry_forever(flaky, (OSError,), "test") == "done"
    assert len(calls) == 3


async def test_another_failure_is_not_retried() -> None:
    calls = []

    async def broken() -> None:
        calls.append(1)
        raise ValueError("a bug, not a restart")

    with pytest.raises(ValueError, match="a bug"):
        await retry_until_stopped(asyncio.Event(), broken, (OSError,), "test")
    assert len(calls) == 1


async def test_a_stop_ends_the_wait_and_the_retries() -> None:
    stop = asyncio.Event()
    calls = []

    async def always_away() -> None:
        calls.append(1)
        if len(calls) == 3:
            stop.set()
        raise ConnectionRefusedError("still away")

    assert await retry_until_stopped(stop, always_away, (OSError,), "test") is False
    assert len(calls) == 3


async def test_polling_looks_again_until_nothing_is_found() -> None:
    behind = [{"p0": 3}, {"p0": 1}, {}]

    async def look() -> dict[str, int]:
        return behind.pop(0)

    assert await poll_until_empty(look, within=60) == {}
    assert behind == []


async def test_polling_gives_up_with_what_it_found_last() -> None:
    looks = []

    async def look() -> dict[str, int]:
        looks.append(1)
        return {"p0": len(looks)}

    found = await poll_until_empty(look, within=0.3)

    assert found == {"p0": len(looks)}
    assert len(looks) >= 2
