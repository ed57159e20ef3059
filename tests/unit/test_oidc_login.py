"""Sign-in at the provider cannot be turned into load: discovery is fetched once per hour, and a
failed fetch is not kept."""

from __future__ import annotations

import pytest

from shared.auth import AuthSettings, ProviderUnavailableError
from shared.oidc_login import DISCOVERY_TTL_SECONDS, ProviderEndpoints

SETTINGS = AuthSettings(issuer="https://login.city.example/realms/berlian")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_the_discovery_document_is_fetched_once_per_ttl_and_a_failure_is_not_kept() -> None:
    clock, fetched = Clock(), []

    def fetch(settings: AuthSettings) -> dict[str, str]:
        fetched.append(settings.issuer)
        if len(fetched) == 2:
            raise ProviderUnavailableError("down")
        return {"authorization_endpoint": f"{settings.issuer}/auth/{len(fetched)}"}

    endpoints = ProviderEndpoints(SETTINGS, fetch=fetch, clock=clock)
    for _ in range(100):
        assert endpoints()["authorization_endpoint"].endswith("/auth/1")
    assert len(fetched) == 1
    clock.now += DISCOVERY_TTL_SECONDS
    with pytest.raises(ProviderUnavailableError):
        endpoints()
    assert endpoints()["authorization_endpoint"].endswith("/auth/3")
    assert len(fetched) == 3
