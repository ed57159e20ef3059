"""The one place tests get a caller's credentials: call these inside tests or fixtures (never at
module import), so the way tokens are obtained can change without touching the tests.

Tokens come from the local stack's identity provider (Keycloak, started on demand), for a user
of that role and area made on first use. An area the provider cannot hold (a number, a list, a
string that is no code) gets the token it would issue with that area, signed with the local
realm's passive test key (published in its JWKS): a token a service must refuse for its area.
"""

from __future__ import annotations

from typing import Any

from deploy.local.keycloak import LocalProvider
from shared.auth import Role

_provider = LocalProvider(prefix="test")


def token_for(role: Role, area: object = None, subject: str | None = None) -> str:
    """A bearer token for a caller with this role and area."""
    return _provider.token(role, area, subject)


def crafted(role: Role, area: object = None, subject: str | None = None, **claims: Any) -> str:
    """The token the provider would issue for this caller with ``claims`` instead (expired,
    another audience, a lifetime too long...), signed with the local realm's passive test key:
    refused by a service for that one difference, never for its signature."""
    return _provider.crafted(role, area, subject, **claims)


def sign_in_details(
    role: Role, area: str | None = None, subject: str | None = None
) -> tuple[str, str]:
    """The user name and password of that caller at the provider, for a test that signs in
    through its login page as a browser does."""
    return _provider.credentials(role, area, subject)


def bearer(role: Role, area: object = None, subject: str | None = None) -> dict[str, str]:
    """Request headers authenticating a caller with this role and area."""
    return _provider.headers(role, area, subject)
