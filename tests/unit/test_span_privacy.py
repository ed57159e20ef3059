"""A request's query string can hold personal data (a NIK searched for); the spans a service
exports keep the path only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
# In a process of its own: a tracer provider is installed once per process.
PROBE = """
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from shared.http import install_tracing
from shared.tracing import configure

exporter = InMemorySpanExporter()
configure("enrolment", SimpleSpanProcessor(exporter))
app = FastAPI()
install_tracing(app)

@app.get("/workers")
def workers(nik: str) -> list[str]:
    return []

assert TestClient(app).get("/workers", params={"nik": "3375014107900001"}).status_code == 200
spans = exporter.get_finished_spans()
assert spans, "no span was recorded"
print(repr([dict(span.attributes or {}) for span in spans]))
"""


def test_an_exported_span_holds_no_query_string() -> None:
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=False
    )

    assert probe.returncode == 0, probe.stderr
    assert "/workers" in probe.stdout
    assert "3375014107900001" not in probe.stdout
