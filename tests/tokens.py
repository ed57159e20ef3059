"""The one place tests get a caller's credentials: call these inside tests or fixtures (never at
module import), so the way tokens are obtained can change without touching the tests."""

from __future__ import annotations

from shared.auth import AuthSettings, Role, issue_token


def token_for(role: Role, area: str | None = None, subject: str | None = None) -> str:
    """A bearer token for a caller with this role and area."""
    return issue_token(AuthSettings().jwt_secret, subject or f"test-{role}", role, area)


def bearer(role: Role, area: str | None = None, subject: str | None = None) -> dict[str, str]:
    """Request headers authenticating a caller with this role and area."""
    return {"Authorization": f"Bearer {token_for(role, area, subject)}"}
