"""Every scenario run leaves a line of figures, whether it passed or failed."""

from __future__ import annotations

from collections.abc import Generator

import pytest

from tests.reliability.figures import Figures

FIGURES_KEY = pytest.StashKey[Figures]()


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Figures:
    marker = request.node.get_closest_marker("scenario")
    assert marker is not None, "a reliability test names its scenario: @pytest.mark.scenario(...)"
    found = Figures(str(marker.args[0]))
    request.node.stash[FIGURES_KEY] = found
    return found


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call" and FIGURES_KEY in item.stash:
        failure = None
        if call.excinfo is not None:
            failure = f"{call.excinfo.typename}: {str(call.excinfo.value)[:300]}"
        item.stash[FIGURES_KEY].write(failure)
    return report
