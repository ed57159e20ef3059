"""The commands of the reliability load, each sent the way a careful client sends it: under its
own idempotency key, sent again with that key while the service is down or catching up, until
it answers for sure. An import is a CSV file sent again whole (its rows are keyed by the file's
digest and their number); answered 202, its job is followed to its end and its rows read."""

from __future__ import annotations

import asyncio
import csv
import io
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from bench.people import KRAPYAK, import_chunks, person
from tests.integration.programme_world import URLS
from tests.tokens import bearer

UNANSWERED_AFTER = 120  # seconds a command is sent again before the client gives up on it
RETRYABLE = (404, 429)  # not there yet (a projection catching up), or asked to slow down


class UnansweredError(Exception):
    """The service gave no sure answer within UNANSWERED_AFTER seconds."""


class RefusedError(Exception):
    """The service answered for sure, and not with what the command asked for."""


@dataclass(frozen=True)
class ImportedRows:
    registered: list[str]  # worker ids of rows registered now or before
    refused: list[str]  # each refused row's reasons


def officer() -> dict[str, str]:
    return bearer("kelurahan_officer", KRAPYAK)


async def answered(send: Callable[[], Awaitable[httpx.Response]], ok: set[int]) -> httpx.Response:
    """The first sure answer to ``send``; sent again, backing off, while the service is down,
    failing (5xx) or not caught up (404). Raises RefusedError for another answer."""
    deadline = time.monotonic() + UNANSWERED_AFTER
    pause = 0.1
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            response = await send()
        except httpx.TransportError as error:
            last = type(error).__name__
        else:
            if response.status_code in ok:
                return response
            if response.status_code not in RETRYABLE and response.status_code < 500:
                raise RefusedError(f"{response.status_code} {response.text[:120]}")
            last = str(response.status_code)
        # Backing off with jitter: hundreds of commands in flight through an outage must not
        # become thousands of requests a second on the two cores the services share.
        await asyncio.sleep(pause * random.uniform(0.5, 1.5))
        pause = min(pause * 2, 2.0)
    raise UnansweredError(f"last answer: {last}")


async def register(api: httpx.AsyncClient, number: int) -> str:
    """The worker id of person ``number``, registered."""
    answer = await answered(
        lambda: api.post(
            f"{URLS['enrolment']}/workers",
            json=person(number),
            headers={**officer(), "Idempotency-Key": f"load-{number}"},
        ),
        {201},
    )
    return str(answer.json()["worker_id"])


async def verify(api: httpx.AsyncClient, worker: str) -> None:
    """The worker's case passed at kelurahan level."""
    await answered(
        lambda: api.post(
            f"{URLS['verification']}/cases/{worker}/verify",
            json={},
            headers={**officer(), "Idempotency-Key": f"verify-{worker}"},
        ),
        {200},
    )


async def import_rows(api: httpx.AsyncClient, first: int, rows: int) -> ImportedRows:
    """Persons ``first`` to ``first + rows - 1`` imported as one CSV file: its job (202; 200
    for the key's first job, the file sent again) followed to its end."""
    content = b"".join(import_chunks(first, rows))
    answer = await answered(
        lambda: api.post(
            f"{URLS['enrolment']}/imports",
            content=content,
            headers={**officer(), "Content-Type": "text/csv", "Idempotency-Key": f"import-{first}"},
        ),
        {200, 202},
    )
    return await job_rows(api, answer)


async def job_rows(api: httpx.AsyncClient, accepted: httpx.Response) -> ImportedRows:
    """The rows of an import job, once it has ended (followed through restarts: a job resumes
    where it stopped)."""
    url = httpx.URL(URLS["enrolment"]).join(accepted.headers["Location"])
    deadline = time.monotonic() + UNANSWERED_AFTER
    while True:
        state = (await answered(lambda: api.get(url, headers=officer()), {200})).json()
        ended = state["state"]
        if ended == "failed":
            raise RefusedError(f"import job failed: {str(state.get('failure'))[:120]}")
        if ended == "done":
            break
        if time.monotonic() > deadline:
            raise UnansweredError(f"import job still {ended}")
        await asyncio.sleep(0.5)
    report = httpx.URL(URLS["enrolment"]).join(state["report"])
    text = (await answered(lambda: api.get(report, headers=officer()), {200})).text
    return rows_of(
        [(r["outcome"], r["worker_id"], r["reasons"]) for r in csv.DictReader(io.StringIO(text))]
    )


def rows_of(outcomes: list[tuple[str, str | None, str]]) -> ImportedRows:
    """Rows registered (now, or by an earlier sending of the file) and the reasons of the
    others."""
    found = ImportedRows([], [])
    for outcome, worker, reasons in outcomes:
        if outcome in ("registered", "already_registered") and worker:
            found.registered.append(str(worker))
        else:
            found.refused.append(f"{outcome}: {reasons}")
    return found
