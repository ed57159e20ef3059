"""`berlian reliability --scenario NAME` selects tests that exist, and refuses a name it does
not know before anything is started."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deploy.cli import RELIABILITY_SCENARIOS, app

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(RELIABILITY_SCENARIOS))
def test_each_scenario_names_a_test_that_exists(name: str) -> None:
    path, _, function = RELIABILITY_SCENARIOS[name].partition("::")
    module = ast.parse((ROOT / path).read_text())
    tests = {
        node.name
        for node in module.body
        if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef)
        and node.name.startswith("test_")
    }
    assert tests, f"{path} holds no test"
    if function:
        assert function in tests


def test_every_reliability_test_belongs_to_a_scenario() -> None:
    chosen = {selector.partition("::")[0] for selector in RELIABILITY_SCENARIOS.values()}
    files = {
        str(path.relative_to(ROOT)) for path in (ROOT / "tests" / "reliability").glob("test_*.py")
    }
    assert files == chosen


def test_an_unknown_scenario_is_refused_before_anything_runs() -> None:
    result = CliRunner().invoke(app, ["reliability", "--scenario", "earthquake"])
    assert result.exit_code == 2
    assert "no scenario earthquake" in result.output
    assert "broker-loss" in result.output
