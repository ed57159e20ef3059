"""Signed-in browsers, kept in the console's process by the random id of their cookie.

A session holds the user's access token (sent on to the services, never to the browser), a
CSRF token every form carries, and the user's language; it ends with its token, at sign-out,
or after the idle timeout. (Sign-ins still waiting for the provider are kept apart, in
shared.oidc_login.PendingSignIns.)
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, replace
from typing import Annotated

from fastapi import Cookie, Depends, Request

from services.console.i18n import Language
from shared.auth import Principal

SESSION_COOKIE = "berlian_console_session"
# Sessions live in this process; past this many the oldest are ended first.
MAX_SESSIONS = 2000


@dataclass(frozen=True)
class Session:
    principal: Principal
    token: str
    csrf: str
    language: Language
    expires_at: float  # the token's expiry, as time.time()
    last_seen: float
    id_token: str = ""


class Sessions:
    def __init__(self, idle_seconds: int) -> None:
        self._idle = idle_seconds
        self._by_id: dict[str, Session] = {}

    def start(
        self, principal: Principal, token: str, expires_at: float, id_token: str, language: Language
    ) -> str:
        now = time.time()
        for ended in [k for k, v in self._by_id.items() if not self._alive(v, now)]:
            del self._by_id[ended]
        while len(self._by_id) >= MAX_SESSIONS:
            del self._by_id[next(iter(self._by_id))]
        session_id = secrets.token_urlsafe(32)
        self._by_id[session_id] = Session(
            principal, token, secrets.token_urlsafe(32), language, expires_at, now, id_token
        )
        return session_id

    def _alive(self, session: Session, now: float) -> bool:
        return session.expires_at > now and now - session.last_seen < self._idle

    def get(self, session_id: str | None) -> Session | None:
        """The session, its idle clock restarted; None once it has ended."""
        session = self._by_id.get(session_id or "")
        now = time.time()
        if session is None:
            return None
        if not self._alive(session, now):
            del self._by_id[session_id or ""]
            return None
        session = replace(session, last_seen=now)
        self._by_id[session_id or ""] = session
        return session

    def speak(self, session_id: str, language: Language) -> None:
        session = self._by_id.get(session_id)
        if session is not None:
            self._by_id[session_id] = replace(session, language=language)

    def end(self, session_id: str | None) -> None:
        self._by_id.pop(session_id or "", None)


class SignInRequiredError(Exception):
    """No session, or it has ended: the page asked for is answered with the sign-in."""


def page_session(
    request: Request,
    session_id: Annotated[str | None, Cookie(alias=SESSION_COOKIE, max_length=64)] = None,
) -> Session:
    """The session a page is asked for in (every page's route takes it from here)."""
    sessions: Sessions = request.app.state.sessions
    session = sessions.get(session_id)
    if session is None:
        raise SignInRequiredError
    return session


PageSession = Annotated[Session, Depends(page_session)]
