"""Sign-in at the provider cannot be turned into load or used to push others out: discovery is
fetched once per hour, and one client's sign-ins under way take only that client's places."""

from __future__ import annotations

import base64
import hashlib

import pytest

from shared.auth import AuthSettings, ProviderUnavailableError
from shared.oidc_login import (
    DISCOVERY_TTL_SECONDS,
    PENDING_PER_CLIENT,
    PENDING_SECONDS,
    PendingSignIns,
    ProviderEndpoints,
    TooManySignInsError,
    new_verifier,
)

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


def test_one_client_flooding_sign_ins_never_pushes_out_another_clients() -> None:
    pending: PendingSignIns[str] = PendingSignIns(limit=50, clock=Clock())
    victim = pending.start("203.0.113.7", "victim's verifier")
    flood = [pending.start("198.51.100.1", f"flood {n}") for n in range(10_000)]
    assert pending.answered(victim) == "victim's verifier"
    # The flooding client keeps only its newest few.
    kept = [state for state in flood if pending.answered(state) is not None]
    assert kept == flood[-PENDING_PER_CLIENT:]


def test_sign_ins_are_refused_when_every_place_is_taken_and_answered_once() -> None:
    clock = Clock()
    pending: PendingSignIns[str] = PendingSignIns(per_client=1, limit=3, clock=clock)
    states = [pending.start(f"192.0.2.{n}", str(n)) for n in range(3)]
    with pytest.raises(TooManySignInsError):
        pending.start("192.0.2.99", "late")
    assert pending.answered(states[0]) == "0"
    assert pending.answered(states[0]) is None  # once only
    pending.start("192.0.2.99", "now there is room")
    clock.now += PENDING_SECONDS + 1
    assert pending.answered(states[1]) is None  # stale
    pending.start("192.0.2.100", "stale ones make room")


def test_the_pkce_challenge_is_the_s256_of_the_verifier() -> None:
    verifier, challenge = new_verifier()
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    assert challenge == expected.decode()
    assert len(verifier) >= 43
