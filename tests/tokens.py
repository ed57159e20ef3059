"""The one place tests get a caller's credentials: call these inside tests or fixtures (never at
module import), so the way tokens are obtained can change without touching the tests.

Tokens come from the local stack's identity provider (Keycloak, started on demand), for a user
of that role and area made on first use.
"""

from __future__ import annotations

from deploy.local.keycloak import LocalProvider
from shared.auth import Role

_provider = LocalProvider(prefix="test")


def token_for(role: Role, area: str | None = None, subject: str | None = None) -> str:
    """A bearer token for a caller with this role and area."""
    return _provider.token(role, area, subject)


def sign_in_details(
    role: Role, area: str | None = None, subject: str | None = None
) -> tuple[str, str]:
    """The user name and password of that caller at the provider, for a test that signs in
    through its login page as a browser does."""
    return _provider.credentials(role, area, subject)


def bearer(role: Role, area: str | None = None, subject: str | None = None) -> dict[str, str]:
    """Request headers authenticating a caller with this role and area."""
    return _provider.headers(role, area, subject)
