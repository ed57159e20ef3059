"""Sign-in at the provider cannot be turned into load: discovery is fetched once per hour, and a
failed fetch is not kept. Sign-ins waiting for the provider are bounded per client and in all:
past a bound a new one is refused and nobody's waiting sign-in is pushed out; each answer is
taken once, and only in time."""

from __future__ import annotations

import pytest

from shared.auth import AuthSettings, ProviderUnavailableError
from shared.oidc_login import (
    DISCOVERY_TTL_SECONDS,
    PENDING_SECONDS,
    PendingSignIns,
    ProviderEndpoints,
    SignInsFullError,
    code_challenge,
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


def test_a_provider_answer_is_taken_once_and_only_in_time() -> None:
    clock = Clock()
    pending = PendingSignIns(clock=clock)
    state = pending.start("10.0.0.1", "browser", "verifier", "id")
    answered = pending.answered(state)
    assert answered is not None
    assert (answered.browser, answered.verifier, answered.language) == ("browser", "verifier", "id")
    assert pending.answered(state) is None
    late = pending.start("10.0.0.1", "browser", "verifier", "id")
    clock.now += PENDING_SECONDS
    assert pending.answered(late) is None
    assert len(pending) == 0


def test_one_client_fills_only_its_own_share_and_pushes_nobody_out() -> None:
    pending = PendingSignIns(per_client=3, total=100, clock=Clock())
    others = pending.start("10.0.0.2", "theirs", "v", "id")
    flood = [pending.start("10.0.0.1", f"b{n}", "v", "id") for n in range(3)]
    with pytest.raises(SignInsFullError):
        pending.start("10.0.0.1", "b3", "v", "id")
    # Refused, not evicted: the flooder's own and the other client's sign-ins are all there.
    assert pending.answered(others) is not None
    assert pending.answered(flood[0]) is not None
    # An answered sign-in gives its place back to its client.
    pending.start("10.0.0.1", "b4", "v", "id")
    with pytest.raises(SignInsFullError):
        pending.start("10.0.0.1", "b5", "v", "id")


def test_the_store_is_bounded_in_all_and_refuses_rather_than_evicts() -> None:
    pending = PendingSignIns(per_client=5, total=4, clock=Clock())
    states = [pending.start(f"10.0.0.{n}", "b", "v", "id") for n in range(4)]
    with pytest.raises(SignInsFullError):
        pending.start("10.0.0.9", "b", "v", "id")
    assert all(pending.answered(state) is not None for state in states)


def test_expired_sign_ins_give_their_places_back() -> None:
    clock = Clock()
    pending = PendingSignIns(per_client=2, total=3, clock=clock)
    pending.start("10.0.0.1", "b", "v", "id")
    clock.now += PENDING_SECONDS / 2
    pending.start("10.0.0.1", "b", "v", "id")
    pending.start("10.0.0.2", "b", "v", "id")
    with pytest.raises(SignInsFullError):
        pending.start("10.0.0.3", "b", "v", "id")
    clock.now += PENDING_SECONDS / 2  # the first has expired; the others are still in time
    fresh = pending.start("10.0.0.1", "b", "v", "id")
    assert len(pending) == 3
    with pytest.raises(SignInsFullError):
        pending.start("10.0.0.1", "b", "v", "id")
    assert pending.answered(fresh) is not None


def test_the_pkce_verifier_is_fresh_and_its_challenge_is_s256() -> None:
    verifier = new_verifier()
    assert 43 <= len(verifier) <= 128
    assert verifier != new_verifier()
    # RFC 7636, appendix B.
    example = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert code_challenge(example) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
