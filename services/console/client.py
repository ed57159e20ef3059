"""The services' public HTTP APIs as the signed-in user calls them: their token, an
Idempotency-Key for every command, and their answers kept whole (refusals included) for the
pages to show."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from services.console.settings import ConsoleSettings

Service = Literal["enrolment", "verification", "billing", "claims", "audit"]
# Bounds what the console reads from a service: a listing is paged well below this.
MAX_ANSWER_BYTES = 8 * 2**20


class ServiceDownError(Exception):
    """The service did not answer, or answered 503: nothing was applied, the user may retry."""

    def __init__(self, service: Service, why: str) -> None:
        super().__init__(f"{service}: {why}")
        self.service = service


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    detail: str = ""
    # The field each refusal concerns (the service's name for it) and its message.
    problems: list[tuple[str, str]] = field(default_factory=list)
    content: bytes = b""

    @property
    def ok(self) -> bool:
        return self.status < 400


def answer_of(response: httpx.Response) -> Answer:
    content = response.content[:MAX_ANSWER_BYTES]
    kind = response.headers.get("content-type", "")
    body: Any = None
    if "json" in kind:
        try:
            body = response.json()
        except ValueError:
            body = None
    if response.status_code < 400:
        return Answer(response.status_code, body, content=content)
    detail = ""
    problems: list[tuple[str, str]] = []
    if isinstance(body, dict):
        detail = str(body.get("detail", ""))[:2000]
        for problem in (body.get("problems") or [])[:50]:
            if isinstance(problem, dict):
                name = str(problem.get("field", "")).removeprefix("body.")
                problems.append((name, str(problem.get("message", ""))[:500]))
    return Answer(response.status_code, body, detail or response.reason_phrase, problems)


class Services:
    def __init__(self, settings: ConsoleSettings) -> None:
        self._urls: dict[Service, str] = {
            "enrolment": settings.enrolment_url,
            "verification": settings.verification_url,
            "billing": settings.billing_url,
            "claims": settings.claims_url,
            "audit": settings.audit_url,
        }
        self._http = httpx.AsyncClient(timeout=settings.service_timeout_seconds)

    async def close(self) -> None:
        await self._http.aclose()

    async def call(
        self,
        service: Service,
        method: str,
        path: str,
        token: str,
        *,
        idempotency_key: str | None = None,
        **kwargs: Any,
    ) -> Answer:
        headers = {"Authorization": f"Bearer {token}"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        headers.update(kwargs.pop("headers", {}))
        try:
            response = await self._http.request(
                method, self._urls[service] + path, headers=headers, **kwargs
            )
        except httpx.TransportError as error:
            raise ServiceDownError(service, type(error).__name__) from None
        if response.status_code in (502, 503, 504):
            raise ServiceDownError(service, f"answered {response.status_code}")
        return answer_of(response)
