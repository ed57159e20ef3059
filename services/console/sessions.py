"""Signed-in browsers, kept in the console's process by the random id of their cookie.

A session holds the user's access token (sent on to the services, never to the browser), a
CSRF token every form carries, and the user's language; it ends with its token, at sign-out,
or after the idle timeout.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, replace

from services.console.i18n import Language
from shared.auth import Principal

# Sessions live in this process; past this many the oldest are ended first.
MAX_SESSIONS = 2000
# A sign-in sent to the provider must come back within this.
PENDING_SECONDS = 600


@dataclass(frozen=True)
class Session:
    principal: Principal
    token: str
    csrf: str
    language: Language
    expires_at: float  # the token's expiry, as time.time()
    last_seen: float
    id_token: str = ""


@dataclass(frozen=True)
class PendingSignIn:
    """A sign-in sent to the provider, waiting for its answer."""

    browser: str  # the browser's sign-in cookie: the answer must come back to it
    verifier: str  # PKCE: only this console can redeem the code
    started: float
    language: Language


class Sessions:
    def __init__(self, idle_seconds: int) -> None:
        self._idle = idle_seconds
        self._by_id: dict[str, Session] = {}
        self._pending: dict[str, PendingSignIn] = {}

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

    def await_provider(self, browser: str, verifier: str, language: Language) -> str:
        now = time.time()
        for stale in [k for k, v in self._pending.items() if v.started < now - PENDING_SECONDS]:
            del self._pending[stale]
        while len(self._pending) >= MAX_SESSIONS:
            del self._pending[next(iter(self._pending))]
        state = secrets.token_urlsafe(32)
        self._pending[state] = PendingSignIn(browser, verifier, now, language)
        return state

    def answered(self, state: str) -> PendingSignIn | None:
        pending = self._pending.pop(state, None)
        if pending is None or pending.started < time.time() - PENDING_SECONDS:
            return None
        return pending
