"""What every service's HTTP API shares: readable refusals and no stack traces."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

log = logging.getLogger(__name__)


def refusal(status: int, detail: str, **extra: object) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": detail, **extra})


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        # Logged with the trace for operators; the caller gets a sentence, never the trace.
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return refusal(500, "internal error; the request was not applied")
