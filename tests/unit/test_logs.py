"""Every logger writes one JSON object per line, with the service's name."""

from __future__ import annotations

import json
import logging

import pytest

from shared.logs import configure

pytestmark = pytest.mark.unit


def test_standard_library_loggers_write_json_lines_with_the_service(
    capfd: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure("billing")
        logging.getLogger("shared.relay.outbox").warning("relay %s waits", "billing")
        line = capfd.readouterr().out.strip().splitlines()[-1]
    finally:
        root.handlers, root.level = saved[0], saved[1]

    record = json.loads(line)
    assert record["service"] == "billing"
    assert record["level"] == "warning"
    assert record["event"] == "relay billing waits"
    assert "timestamp" in record
