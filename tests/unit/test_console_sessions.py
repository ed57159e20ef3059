"""A console session ends with its token, at sign-out, or once unused for the idle timeout;
using it restarts the idle clock."""

from __future__ import annotations

import pytest

from services.console import sessions as module
from services.console.sessions import Sessions
from shared.auth import Principal

pytestmark = pytest.mark.unit
OFFICER = Principal("siti", "kelurahan_officer", "33.75.01.1004")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(module.time, "time", fake)
    return fake


def test_a_session_ends_when_left_unused_for_the_idle_timeout(clock: Clock) -> None:
    sessions = Sessions(idle_seconds=900)
    session_id = sessions.start(OFFICER, "token", clock.now + 3600, "", "id")
    clock.now += 899
    assert sessions.get(session_id) is not None  # used: the idle clock starts again
    clock.now += 899
    assert sessions.get(session_id) is not None
    clock.now += 900
    assert sessions.get(session_id) is None
    assert sessions.get(session_id) is None  # gone for good


def test_a_session_ends_with_its_token_and_at_sign_out(clock: Clock) -> None:
    sessions = Sessions(idle_seconds=900)
    expiring = sessions.start(OFFICER, "token", clock.now + 60, "", "id")
    ended = sessions.start(OFFICER, "token", clock.now + 3600, "", "en")
    assert sessions.get(ended) is not None
    sessions.end(ended)
    assert sessions.get(ended) is None
    clock.now += 61
    assert sessions.get(expiring) is None
