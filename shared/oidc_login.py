"""Signing a browser in at the identity provider (authorization code with PKCE), for the
console: the provider's endpoints, discovered once and cached, so that someone who only sends
requests cannot turn sign-in pages into load on the provider: the discovery document is fetched
at most once per ``DISCOVERY_TTL_SECONDS`` (not on every sign-in page).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

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
