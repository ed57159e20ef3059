"""Signing a browser in at the identity provider (authorization code with PKCE), for the pages
officers and auditors use: the provider's endpoints, discovered once and cached, and the
sign-ins sent to the provider and not yet answered, bounded per client.

Neither may be turned into load by someone who only sends requests: the discovery document is
fetched at most once per ``DISCOVERY_TTL_SECONDS`` (not on every sign-in page), and one client
that starts sign-in after sign-in fills only its own few places, never pushing out another's
sign-in under way.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from shared.auth import AuthSettings, discovery

# The provider's endpoints change only with its configuration: an hour is fresh enough, and a
# failed discovery is not cached (the next sign-in asks again).
DISCOVERY_TTL_SECONDS = 3600.0
# A sign-in sent to the provider must come back within this.
PENDING_SECONDS = 600.0
# Sign-ins under way, per client address (a browser retrying, a few tabs) and in all.
PENDING_PER_CLIENT = 5
MAX_PENDING = 2000

Clock = Callable[[], float]
Started = TypeVar("Started")


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


class TooManySignInsError(RuntimeError):
    """Every place for a sign-in under way is taken: try again shortly."""


@dataclass(frozen=True)
class Pending(Generic[Started]):
    client: str
    started: float
    value: Started


class PendingSignIns(Generic[Started]):
    """Sign-ins sent to the provider by the state they carry, until answered or stale.

    A client (its address) holds at most ``per_client`` of them: its next one replaces its own
    oldest. When all ``limit`` places are taken by sign-ins not yet stale, a new one is refused
    (``TooManySignInsError``) rather than pushing out somebody else's.
    """

    def __init__(
        self,
        per_client: int = PENDING_PER_CLIENT,
        limit: int = MAX_PENDING,
        lifetime: float = PENDING_SECONDS,
        clock: Clock = time.time,
    ) -> None:
        self._per_client = per_client
        self._limit = limit
        self._lifetime = lifetime
        self._clock = clock
        self._by_state: dict[str, Pending[Started]] = {}

    def start(self, client: str, value: Started) -> str:
        """The state to send to the provider for a new sign-in of ``client``."""
        now = self._clock()
        for stale in [s for s, p in self._by_state.items() if p.started < now - self._lifetime]:
            del self._by_state[stale]
        own = [s for s, p in self._by_state.items() if p.client == client]
        for oldest in own[: max(0, len(own) - self._per_client + 1)]:
            del self._by_state[oldest]
        if len(self._by_state) >= self._limit:
            raise TooManySignInsError("too many sign-ins are under way; try again in a minute")
        state = secrets.token_urlsafe(32)
        self._by_state[state] = Pending(client, now, value)
        return state

    def answered(self, state: str) -> Started | None:
        """What the sign-in carrying ``state`` was started with, once; None if unknown or
        stale."""
        pending = self._by_state.pop(state, None)
        if pending is None or pending.started < self._clock() - self._lifetime:
            return None
        return pending.value


def new_verifier() -> tuple[str, str]:
    """A PKCE verifier and its S256 challenge."""
    verifier = secrets.token_urlsafe(64)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
