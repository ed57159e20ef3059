"""The container image and the compose file follow the operations rules, checked offline: the
image installs the runtime lock only, which holds no development tool and every package the
services import."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
RUNTIME_LOCK = ROOT / "requirements-runtime.lock"
DEV_LOCK = ROOT / "requirements.lock"
FIRST_PARTY = {"shared", "contract", "services", "deploy"}
# The checkout's own packages that commands run only from a checkout import (`berlian bench`).
CHECKOUT_ONLY = {"bench", "tests"}
# Used by the test suite only (offline validation of the manifests; the generator of the
# committed AsyncAPI document, which the services serve as a file), never by a command.
DEVELOPMENT_MODULES = {DEPLOY / "k8s_validation.py", ROOT / "services" / "asyncapi.py"}
TOOLS = {"pytest", "mypy", "ruff", "selenium", "schemathesis", "hypothesis", "testcontainers"}


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


def pins(lock: Path) -> dict[str, str]:
    """Package (normalised name) -> pinned version, from a uv-compiled lock file."""
    found = re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", lock.read_text(), flags=re.MULTILINE)
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in found}


def names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0].lower() for r in requirements}


def development_extra() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return names(project["optional-dependencies"]["dev"])


def runtime_dependencies() -> set[str]:
    return names(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])


def imported_distributions() -> dict[str, set[str]]:
    """Each third-party module the shipped code imports -> the distributions providing it."""
    providers = importlib.metadata.packages_distributions()
    modules = set()
    for package in FIRST_PARTY:
        for path in (ROOT / package).rglob("*.py"):
            if path in DEVELOPMENT_MODULES:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    modules |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    modules.add(node.module.split(".")[0])
    third_party = modules - FIRST_PARTY - CHECKOUT_ONLY - set(sys.stdlib_module_names)
    return {m: {d.lower().replace("_", "-") for d in providers.get(m, [])} for m in third_party}


def test_the_image_installs_the_runtime_lock_only() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()

    installs = [line for line in dockerfile.splitlines() if " -r " in line]
    assert installs
    assert all("-r requirements-runtime.lock" in line for line in installs)
    assert "COPY requirements-runtime.lock" in dockerfile
    assert "requirements.lock" not in dockerfile.replace("requirements-runtime.lock", "")


def test_the_runtime_lock_holds_no_development_tool() -> None:
    runtime = pins(RUNTIME_LOCK)

    assert not TOOLS & set(runtime)
    assert not development_extra() & set(runtime)
    assert not any(
        name.startswith(("pytest", "types-")) or name.endswith("-stubs") for name in runtime
    )


def test_the_runtime_lock_has_every_package_the_services_import() -> None:
    runtime = pins(RUNTIME_LOCK)
    imported = imported_distributions()

    assert {"fastapi", "asyncpg", "aiokafka", "opentelemetry", "tenacity"} <= set(imported)
    missing = {m: d for m, d in imported.items() if not d & set(runtime)}
    assert missing == {}


def test_the_runtime_lock_pins_what_the_tests_run_with() -> None:
    runtime, development = pins(RUNTIME_LOCK), pins(DEV_LOCK)

    assert set(runtime) < set(development)
    assert runtime_dependencies() <= set(runtime)
    assert {n: v for n, v in runtime.items() if development[n] != v} == {}
