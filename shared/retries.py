"""Retrying what fails for a moment (a database restart, a broker's election) with exponential
backoff and full jitter: a dozen replicas that lost the same server do not all come back in the
same instant. Each wait is drawn between 0 and 0.2 s doubled per failure, at most 10 s. Polling
for a condition (a projection catching up) waits the same way, on a shorter scale."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    retry_if_result,
    stop_after_delay,
    stop_never,
    wait_random_exponential,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")
Failures = tuple[type[BaseException], ...]
JITTERED_BACKOFF = wait_random_exponential(multiplier=0.2, max=10.0)


def _report(what: str) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        pause = state.next_action.sleep if state.next_action else 0.0
        log.warning("%s: %s; again in %.1fs", what, error, pause)

    return before_sleep


async def retry_forever(operation: Callable[[], Awaitable[T]], on: Failures, what: str) -> T:
    """``operation``'s result, retrying its failures of the types ``on`` for as long as they
    last (other failures propagate at once)."""
    retrying = AsyncRetrying(
        retry=retry_if_exception_type(on),
        wait=JITTERED_BACKOFF,
        stop=stop_never,
        before_sleep=_report(what),
        reraise=True,
    )
    return await retrying(_awaiting(operation))


async def retry_until_stopped(
    stop: asyncio.Event, operation: Callable[[], Awaitable[None]], on: Failures, what: str
) -> bool:
    """Run ``operation`` until it succeeds, retrying its failures of the types ``on`` until
    ``stop`` is set (a wait in between ends when it is). False when it was stopped first: the
    last failure is then dropped, as the caller is shutting down."""

    async def sleep(seconds: float) -> None:
        await wait_or_stop(stop, seconds)

    retrying = AsyncRetrying(
        retry=retry_if_exception_type(on),
        wait=JITTERED_BACKOFF,
        stop=lambda _: stop.is_set(),
        sleep=sleep,
        before_sleep=_report(what),
        reraise=True,
    )
    try:
        await retrying(_awaiting(operation))
    except on:
        if stop.is_set():
            return False
        raise
    return True


async def poll_until_empty(look: Callable[[], Awaitable[dict[K, V]]], within: float) -> dict[K, V]:
    """Look again, after short jittered waits (10 ms doubling, at most 200 ms), until ``look``
    finds nothing or ``within`` seconds have passed; what it found last."""
    polling = AsyncRetrying(
        retry=retry_if_result(bool),
        wait=wait_random_exponential(multiplier=0.01, max=0.2),
        stop=stop_after_delay(within),
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else {},
    )
    found: dict[K, V] = await polling(_awaiting(look))
    return found


def _awaiting(operation: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T]]:
    # tenacity awaits only what it can tell is a coroutine function, and a lambda is not one.
    async def attempt() -> T:
        return await operation()

    return attempt


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep up to ``seconds``; True if ``stop`` was set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True
