"""The reliability table: per scenario, how many long runs and how many passed, and the last
run's figures; a failed run's reason among its findings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploy.reliability_report import END, START, keep_long_runs, table, write

pytestmark = pytest.mark.unit


def run(scenario: str, at: str, passed: bool, long: bool = True) -> dict[str, object]:
    return {
        "scenario": scenario,
        "at": at,
        "long": long,
        "passed": passed,
        "faults": f"faults at {at}",
        "acknowledged": 1200,
        "events_checked": 1200,
        "lost": 0,
        "duplicated": 0,
        "problems": [] if passed else ["failed: AssertionError: a client gave up"],
    }


def test_runs_are_counted_and_the_last_one_shown() -> None:
    rows = table(
        [
            run("broker loss", "t1", passed=True),
            run("broker loss", "t2", passed=False),
            run("crashes", "t1", passed=True),
        ]
    ).splitlines()
    assert rows[2].startswith("| broker loss | 2 (1) | t2 | faults at t2 | — | 1,200 | — | — |")
    assert rows[2].endswith("| failed: AssertionError: a client gave up |")
    assert rows[3].startswith("| crashes | 1 (1) | t1 |")


def test_a_run_under_the_open_loop_load_shows_what_it_offered_and_what_became_of_it() -> None:
    loaded = run("crashes", "t1", passed=True) | {
        "load_seconds": 20.4,
        "offered": 2040,
        "offered_rate": 100.0,
        "shed": 12,
        "acknowledged_by_kind": {"register": 500, "verify": 600, "import": 100},
        "imported_rows": 1000,
        "refused": {"register: unanswered, last answer: ConnectError": 3},
        "refused_total": 3,
        "p50_ms": 41.2,
        "p99_ms": 1520.7,
    }
    [row] = table([loaded]).splitlines()[2:]
    assert (
        "| 20.4 s at 100.0 | 1,200 (100: 1,000) "
        "| 12; 3; 3 register: unanswered, last answer: ConnectError | 41 / 1,521 |"
    ) in row


def test_only_long_runs_are_kept_and_the_document_rewritten(tmp_path: Path) -> None:
    figures, history, document = tmp_path / "f.jsonl", tmp_path / "h.jsonl", tmp_path / "d.md"
    figures.write_text(
        "\n".join(
            json.dumps(r)
            for r in [run("crashes", "t1", True, long=False), run("crashes", "t2", True)]
        )
    )
    document.write_text(f"before\n{START}\nold\n{END}\nafter\n")
    keep_long_runs(figures, history)
    keep_long_runs(figures, history)  # a second long run
    write(document, history)
    text = document.read_text()
    assert "| crashes | 2 (2) | t2 |" in text
    assert text.startswith("before\n")
    assert text.endswith("after\n")
    assert "old" not in text
