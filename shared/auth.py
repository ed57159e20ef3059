"""Who is calling: signed JWTs with a role and, for officers, the area they serve.

Tokens are HS256-signed with a key from configuration and checked for algorithm, issuer,
audience and expiry; anything else is refused. Roles and what they may do come from the
programme brief.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

import jwt
from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

Role = Literal[
    "kelurahan_officer",
    "kecamatan_officer",
    "city_admin",
    "billing_officer",
    "claims_officer",
    "auditor",
]
ROLES: tuple[Role, ...] = (
    "kelurahan_officer",
    "kecamatan_officer",
    "city_admin",
    "billing_officer",
    "claims_officer",
    "auditor",
)
ALGORITHM = "HS256"
ISSUER = "berlian"
AUDIENCE = "berlian"


class AuthSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BERLIAN_", extra="ignore")

    jwt_secret: str = Field(
        default="local-development-only-secret-change-me",
        min_length=32,
        description="HS256 signing key; set a long random value outside local development.",
    )


@dataclass(frozen=True)
class Principal:
    subject: str
    role: Role
    # kelurahan code for kelurahan officers, kecamatan code for kecamatan officers; what it
    # reaches is decided by shared.scope.AreaScope
    area: str | None


def issue_token(
    secret: str,
    subject: str,
    role: Role,
    area: str | None = None,
    ttl: timedelta = timedelta(hours=8),
    now: datetime | None = None,
) -> str:
    issued = now or datetime.now(UTC)
    claims = {
        "sub": subject,
        "role": role,
        "area": area,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": issued,
        "exp": issued + ttl,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def read_token(secret: str, token: str) -> Principal:
    """The caller, or PermissionError saying why the token is not accepted."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iss", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise PermissionError("token expired") from None
    except jwt.InvalidTokenError as error:
        raise PermissionError(f"invalid token: {error}") from None
    role = claims.get("role")
    if role not in ROLES:
        raise PermissionError(f"unknown role {role!r}")
    return Principal(subject=str(claims["sub"]), role=role, area=claims.get("area"))


_bearer = HTTPBearer(auto_error=False)


def authenticated(settings: AuthSettings) -> Callable[..., Principal]:
    def dependency(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        if credentials is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "a bearer token is required",
                headers={"WWW-Authenticate": "Bearer"},
            )
        try:
            return read_token(settings.jwt_secret, credentials.credentials)
        except PermissionError as error:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, str(error), headers={"WWW-Authenticate": "Bearer"}
            ) from None

    return dependency


def require_role(principal: Principal, roles: Iterable[Role]) -> None:
    allowed = tuple(roles)
    if principal.role not in allowed:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"role {principal.role} may not do this; allowed: {', '.join(allowed)}",
        )
