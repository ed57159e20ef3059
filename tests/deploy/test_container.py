"""The container image and the compose file follow the operations rules, checked offline."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def final_stage(dockerfile: str) -> list[str]:
    stages = re.split(r"^FROM ", dockerfile, flags=re.MULTILINE)
    return ["FROM " + stages[-1].splitlines()[0], *stages[-1].splitlines()[1:]]


def test_the_image_runs_as_a_non_root_user_from_a_pinned_base_without_build_tools() -> None:
    lines = final_stage((DEPLOY / "Dockerfile").read_text())

    assert re.fullmatch(r"FROM python:3\.11\.\d+-slim-bookworm", lines[0])
    assert "USER 10001" in lines
    runs = " ".join(line for line in lines if line.startswith("RUN"))
    assert not re.search(r"pip install|apt-get|gcc|build-essential", runs)
    assert any("PYTHONDONTWRITEBYTECODE=1" in line for line in lines)


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return document


def test_compose_runs_kafka_postgres_migrations_and_the_four_services() -> None:
    services = compose()["services"]

    assert set(services) == {
        "kafka",
        "postgres",
        "migrate",
        "enrolment",
        "verification",
        "billing",
        "claims",
    }
    assert services["migrate"]["command"] == ["migrate", "--topics"]
    for name in ("enrolment", "verification", "billing", "claims"):
        service = services[name]
        assert service["command"][:2] == ["run", name]
        assert service["read_only"] is True
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert all(port.startswith("127.0.0.1:") for port in service["ports"])
    assert services["kafka"]["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
