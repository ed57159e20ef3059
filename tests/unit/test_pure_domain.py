"""The domain modules read no clock and draw no random value: instants and ids come in with the
command. import-linter keeps ``random``, ``secrets`` and ``time`` out of them; ``datetime`` and
``uuid`` are the domain's vocabulary, so their clock and random calls are refused here, in the
modules that contract names (one list, in pyproject.toml)."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = "Domain modules draw no randomness and read no clock: ids and instants are passed in"
CLOCK_READS = {"now", "utcnow", "today", "fromtimestamp", "utcfromtimestamp"}
CLOCK_TYPES = {"datetime", "date"}
RANDOM_IDS = {"uuid1", "uuid4", "getnode", "urandom"}


def impurities(source: str) -> list[str]:
    """Every read of the clock or draw of a random id in ``source``, with its line."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute):
            owner = node.value
            owner_name = (
                owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
            )
            if (node.attr in CLOCK_READS and owner_name in CLOCK_TYPES) or node.attr in RANDOM_IDS:
                found.append(f"line {node.lineno}: {owner_name}.{node.attr}")
        elif isinstance(node, ast.Name) and node.id in RANDOM_IDS:
            found.append(f"line {node.lineno}: {node.id}")
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name in RANDOM_IDS or (
                    node.module == "datetime" and alias.name in CLOCK_READS
                ):
                    found.append(f"line {node.lineno}: from {node.module} import {alias.name}")
    return found


def domain_files() -> list[Path]:
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text())
    [contract] = [c for c in settings["tool"]["importlinter"]["contracts"] if c["name"] == CONTRACT]
    files = []
    for module in contract["source_modules"]:
        path = ROOT.joinpath(*module.split("."))
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")]
    return files


@pytest.mark.parametrize("path", domain_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_a_domain_module_reads_no_clock_and_draws_no_random_id(path: Path) -> None:
    assert impurities(path.read_text()) == []


@pytest.mark.parametrize(
    "source",
    [
        "from datetime import datetime\nat = datetime.now(UTC)",
        "import datetime\nat = datetime.datetime.utcnow()",
        "from datetime import date\ntoday = date.today()",
        "import uuid\nnew = uuid.uuid4()",
        "from uuid import uuid4",
        "import os\nsalt = os.urandom(16)",
        "make = uuid1",
    ],
)
def test_every_kind_of_clock_read_or_random_draw_is_found(source: str) -> None:
    assert impurities(source) != []


def test_the_domain_vocabulary_is_allowed() -> None:
    source = (
        "from datetime import date, datetime\nfrom uuid import UUID, uuid5\n"
        "def f(at: datetime) -> date:\n    return at.date()\n"
        "ID = uuid5(UUID(int=0), 'x')\nstart = date(2025, 1, 1)\n"
    )
    assert impurities(source) == []
