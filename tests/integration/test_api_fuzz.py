"""Every HTTP API fuzzed from its published OpenAPI document, on the running services: valid
and invalid requests of every operation, sent by every role. No answer is a server error, none
shows a stack trace, and every refusal is a 4xx naming what is wrong.

FUZZ_EXAMPLES sets how many requests each operation gets (CI: 50)."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode

from bench.ingestion import KRAPYAK
from services.specs import DOCS
from shared.auth import ROLES
from tests.integration.programme_world import URLS, World, world
from tests.tokens import bearer

__all__ = ["world"]  # the fixture, used by name
pytestmark = [pytest.mark.integration, pytest.mark.slow]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "50"))
AREA_ROLES = {"kelurahan_officer": KRAPYAK, "kecamatan_officer": KRAPYAK.rsplit(".", 1)[0]}
STACK_TRACE_MARKS = ("Traceback (most recent call last)", 'File "/', "asyncpg.", "Exception:")


def problem_with(response: Any) -> str | None:
    """What is wrong with an answer, if anything."""
    text = response.text
    if response.status_code >= 500:
        return f"{response.status_code}: {text[:300]}"
    if any(mark in text for mark in STACK_TRACE_MARKS):
        return f"a stack trace in a {response.status_code}: {text[:300]}"
    if 400 <= response.status_code < 500:
        try:
            detail = response.json().get("detail")
        except (ValueError, AttributeError):
            return f"a {response.status_code} that is not a JSON problem: {text[:200]}"
        readable = (isinstance(detail, str) and detail.strip()) or (
            isinstance(detail, list) and all(isinstance(d, dict) and d.get("msg") for d in detail)
        )
        if not readable:
            return f"a {response.status_code} without a readable detail: {text[:200]}"
    return None


def fuzz(service: str) -> list[str]:
    schema = schemathesis.openapi.from_dict(
        json.loads((DOCS / f"{service}.openapi.json").read_text())
    )
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        cases = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=cases, role=st.sampled_from(ROLES))
        def answers_well(case: Case, role: str) -> None:
            response = case.call(
                base_url=URLS[service],
                headers=bearer(role, AREA_ROLES.get(role), f"fuzz-{role}"),
                timeout=30,
            )
            problem = problem_with(response)
            assert problem is None, f"{case.as_curl_command()} as {role}: {problem}"

        try:
            answers_well()
        except AssertionError as failure:
            failures.append(f"{service} {operation.method.upper()} {operation.path}: {failure}")
    return failures


async def test_no_api_answers_with_a_server_error_or_a_stack_trace(world: World) -> None:
    failures = [f for service in URLS for f in await asyncio.to_thread(fuzz, service)]
    assert not failures, "\n".join(failures)
