"""Signing a browser in at the identity provider (authorization code with PKCE), for the
console: the provider's endpoints, discovered once and cached, so that someone who only sends
requests cannot turn sign-in pages into load on the provider: the discovery document is fetched
at most once per ``DISCOVERY_TTL_SECONDS`` (not on every sign-in page); and the sign-ins
waiting for the provider's answer, in a store bounded per client and in all, so that nobody can
push other people's sign-ins out by starting many of their own.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from shared.auth import AuthSettings, discovery

# The provider's endpoints change only with its configuration: an hour is fresh enough, and a
# failed discovery is not cached (the next sign-in asks again).
DISCOVERY_TTL_SECONDS = 3600.0

Clock = Callable[[], float]


class ProviderEndpoints:
    """The provider's endpoints from its discovery document, cached for ``ttl`` seconds."""

    def __init__(
        self,
        settings: AuthSettings,
        ttl: float = DISCOVERY_TTL_SECONDS,
        fetch: Callable[[AuthSettings], dict[str, str]] = discovery,
        clock: Clock = time.monotonic,
    ) -> None:
        self._settings = settings
        self._ttl = ttl
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, str]] | None = None

    def __call__(self) -> dict[str, str]:
        """The endpoints (blocking on a fetch when stale: call it from a thread)."""
        with self._lock:
            now = self._clock()
            if self._cached is None or now - self._cached[0] >= self._ttl:
                self._cached = (now, self._fetch(self._settings))
            return dict(self._cached[1])


# A sign-in sent to the provider must come back within this.
PENDING_SECONDS = 600.0
# Sign-ins waiting for the provider, at most: from one client (an office behind one address
# signs several people in at once), and from everyone. Past either bound a new sign-in is
# refused; nobody's waiting sign-in is pushed out to make room, so a client that starts
# sign-in after sign-in fills only its own share.
MAX_PENDING_PER_CLIENT = 20
MAX_PENDING = 2000


class SignInsFullError(Exception):
    """Too many sign-ins are waiting for the provider (this client's or everyone's)."""


@dataclass(frozen=True)
class PendingSignIn:
    """A sign-in sent to the provider, waiting for its answer."""

    client: str  # where it came from (the browser's address): what its share is counted by
    browser: str  # the browser's sign-in cookie: the answer must come back to it
    verifier: str  # PKCE: only the party holding it can redeem the code
    started: float
    language: str


def new_verifier() -> str:
    """A fresh PKCE code verifier (RFC 7636: 43 to 128 characters of the URL-safe alphabet)."""
    return secrets.token_urlsafe(64)


def code_challenge(verifier: str) -> str:
    """The S256 challenge the provider is shown for ``verifier``."""
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class PendingSignIns:
    """Sign-ins waiting for the provider's answer, by their ``state``: bounded per client and in
    all, each taken once and only within ``ttl`` seconds."""

    def __init__(
        self,
        per_client: int = MAX_PENDING_PER_CLIENT,
        total: int = MAX_PENDING,
        ttl: float = PENDING_SECONDS,
        clock: Clock = time.monotonic,
    ) -> None:
        self._per_client = per_client
        self._total = total
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        # In the order they started, so the expired ones are always at the front.
        self._by_state: OrderedDict[str, PendingSignIn] = OrderedDict()
        self._of_client: dict[str, int] = {}

    def start(self, client: str, browser: str, verifier: str, language: str) -> str:
        """The ``state`` of a new sign-in; SignInsFullError when the client's share or the
        whole store is taken by sign-ins still in time."""
        with self._lock:
            now = self._clock()
            self._expire(now)
            if len(self._by_state) >= self._total:
                raise SignInsFullError("too many sign-ins are waiting for the provider")
            if self._of_client.get(client, 0) >= self._per_client:
                raise SignInsFullError("too many sign-ins from this client are waiting")
            state = secrets.token_urlsafe(32)
            self._by_state[state] = PendingSignIn(client, browser, verifier, now, language)
            self._of_client[client] = self._of_client.get(client, 0) + 1
            return state

    def answered(self, state: str) -> PendingSignIn | None:
        """The sign-in ``state`` names, taken out; None if unknown, taken or expired."""
        with self._lock:
            now = self._clock()
            self._expire(now)
            pending = self._by_state.pop(state, None)
            if pending is not None:
                self._forget(pending.client)
            return pending

    def __len__(self) -> int:
        with self._lock:
            self._expire(self._clock())
            return len(self._by_state)

    def _expire(self, now: float) -> None:
        while self._by_state:
            state, oldest = next(iter(self._by_state.items()))
            if now - oldest.started < self._ttl:
                return
            del self._by_state[state]
            self._forget(oldest.client)

    def _forget(self, client: str) -> None:
        left = self._of_client[client] - 1
        if left:
            self._of_client[client] = left
        else:
            del self._of_client[client]
