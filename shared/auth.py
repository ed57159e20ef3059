"""Who is calling: RS256 access tokens from the city's OpenID Connect provider, with one role and,
for officers, the area they serve.

A token is accepted only if the provider signed it with a key it publishes (its JWKS, cached),
for this service (audience), from the configured issuer, unexpired, with a lifetime no longer
than the configured maximum, with exactly one Berlian role and an area of the shape the role
needs. Anything else is refused with a sentence saying why. Roles and what they may do come
from the programme brief.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import httpx
import jwt
from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import Field, TypeAdapter, ValidationError
from pydantic_settings import SettingsConfigDict

from shared.bounds import REFERENCE_CHARS, Reference
from shared.scope import CITY_ROLES, AreaClaimError, AreaScope, Claimed
from shared.settings import GuardedSettings, LocalDefault

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
ALGORITHM = "RS256"
# The local stack's provider (deploy/local/keycloak.py); elsewhere BERLIAN_OIDC_ISSUER says.
LOCAL_ISSUER = "http://127.0.0.1:8180/realms/berlian"
# Each service is an audience of its own; the audit application is one too.
AUDIT_AUDIENCE = "berlian-audit"
# A token with an unknown key id makes the service fetch the provider's keys again (a rotated
# key), but not more often than this: random key ids must not turn into requests to the provider.
KEY_REFRESH_INTERVAL_SECONDS = 30.0
_SUBJECT: TypeAdapter[str] = TypeAdapter(Reference)


def service_audience(service: str) -> str:
    """The audience (the provider's client id) of a service's API."""
    return f"berlian-{service}"


class AuthSettings(GuardedSettings):
    model_config = SettingsConfigDict(env_prefix="BERLIAN_OIDC_", extra="ignore")

    issuer: Annotated[
        str,
        LocalDefault(LOCAL_ISSUER),
        Field(description="The OpenID Connect issuer URL; its discovery document names the keys."),
    ] = ""
    max_token_lifetime_seconds: int = Field(
        default=3600,
        gt=0,
        le=86400,
        description="Tokens issued for longer than this (exp - iat) are refused.",
    )
    leeway_seconds: int = Field(
        default=30, ge=0, le=300, description="Clock difference tolerated with the provider."
    )
    provider_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    keys_cache_seconds: float = Field(
        default=300,
        ge=1,
        le=3600,
        description="How long the provider's published keys are kept before they are fetched "
        "again: a key the provider withdrew is refused at most this long after.",
    )
    key_refresh_interval_seconds: float = Field(
        default=KEY_REFRESH_INTERVAL_SECONDS,
        ge=1,
        le=600,
        description="Least time between two fetches of the keys caused by unknown key ids.",
    )


@dataclass(frozen=True)
class Principal:
    subject: str
    role: Role
    # kelurahan code for kelurahan officers, kecamatan code for kecamatan officers; what it
    # reaches is decided by shared.scope.AreaScope
    area: str | None
    # The token's id and issue time, for the revocation list (shared.revocation).
    token_id: str = ""
    issued_at: float = 0.0


class ProviderUnavailableError(RuntimeError):
    """The provider's keys could not be fetched: nothing can be verified, try again later."""


SigningKeys = Callable[[str], jwt.PyJWK | None]


class ProviderKeys:
    """The provider's published signing keys by key id, discovered from the issuer and cached
    (PyJWKClient): an unknown key id (a rotated key) fetches them again, at most every
    KEY_REFRESH_INTERVAL_SECONDS, so random key ids never turn into requests to the provider."""

    def __init__(self, settings: AuthSettings) -> None:
        self._settings = settings
        self._client: jwt.PyJWKClient | None = None
        self._lock = threading.Lock()

    def __call__(self, key_id: str) -> jwt.PyJWK | None:
        try:
            return self._jwks_client().get_signing_key(key_id)
        except (jwt.PyJWKClientConnectionError, httpx.HTTPError, ValueError, KeyError) as error:
            # Unreachable, or answering something that is not its discovery document.
            raise ProviderUnavailableError(
                f"the identity provider {self._settings.issuer} did not answer: {error}"
            ) from None
        except jwt.PyJWKClientError:
            return None

    def _jwks_client(self) -> jwt.PyJWKClient:
        with self._lock:
            if self._client is None:
                self._client = jwt.PyJWKClient(
                    self._discovered_jwks_uri(),
                    cache_jwk_set=True,
                    lifespan=self._settings.keys_cache_seconds,
                    timeout=self._settings.provider_timeout_seconds,
                    cooldown_duration=self._settings.key_refresh_interval_seconds,
                )
            return self._client

    def _discovered_jwks_uri(self) -> str:
        return discovery(self._settings)["jwks_uri"]


def discovery(settings: AuthSettings) -> dict[str, str]:
    """The provider's endpoints from its discovery document, checked to be the issuer's own."""
    issuer = settings.issuer
    try:
        answer = httpx.get(
            f"{issuer.rstrip('/')}/.well-known/openid-configuration",
            timeout=settings.provider_timeout_seconds,
        )
        answer.raise_for_status()
        document = answer.json()
        endpoints = {
            name: str(document[name])
            for name in ("jwks_uri", "authorization_endpoint", "token_endpoint")
        }
        endpoints["end_session_endpoint"] = str(document.get("end_session_endpoint", ""))
    except (httpx.HTTPError, ValueError, KeyError) as error:
        raise ProviderUnavailableError(
            f"the identity provider {issuer} did not answer: {error}"
        ) from None
    if document.get("issuer") != issuer:
        raise ProviderUnavailableError(
            f"the provider at {issuer} calls itself {document.get('issuer')!r}"
        )
    return endpoints


class TokenVerifier:
    """Checks access tokens for one audience; ``keys`` finds a published key by its id."""

    def __init__(self, settings: AuthSettings, audience: str, keys: SigningKeys) -> None:
        self._settings = settings
        self._audience = audience
        self._keys = keys

    def principal(self, token: str) -> Principal:
        """The caller, or PermissionError saying why the token is not accepted."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as error:
            raise PermissionError(f"invalid token: {error}") from None
        if header.get("alg") != ALGORITHM:
            raise PermissionError(f"tokens must be signed with {ALGORITHM}")
        key_id = header.get("kid")
        key = self._keys(key_id) if isinstance(key_id, str) else None
        if key is None:
            raise PermissionError("the token is not signed with a key the identity provider uses")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._settings.issuer,
                leeway=self._settings.leeway_seconds,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise PermissionError("token expired") from None
        except jwt.InvalidTokenError as error:
            raise PermissionError(f"invalid token: {error}") from None
        return principal_from_claims(claims, self._settings.max_token_lifetime_seconds)


def principal_from_claims(claims: Mapping[str, Any], max_lifetime_seconds: int) -> Principal:
    """The caller described by verified claims, or PermissionError naming the claim at fault."""
    issued, expires = claims["iat"], claims["exp"]
    if not isinstance(issued, int | float) or not isinstance(expires, int | float):
        raise PermissionError("iat and exp must be numbers")
    if expires - issued > max_lifetime_seconds:
        raise PermissionError(
            f"the token is valid for {int(expires - issued)} s, more than the "
            f"{max_lifetime_seconds} s accepted"
        )
    try:
        # The subject becomes the actor of every event the caller causes: it has the events'
        # bound and character rules, or the events would be refused by every consumer.
        subject = _SUBJECT.validate_python(claims["sub"])
    except ValidationError:
        raise PermissionError(
            f"sub must be a text of 1 to {REFERENCE_CHARS} visible characters"
        ) from None
    realm_access = claims.get("realm_access")
    granted = realm_access.get("roles") if isinstance(realm_access, Mapping) else None
    if not isinstance(granted, list):
        raise PermissionError("the token carries no roles (realm_access.roles)")
    roles = [role for role in ROLES if role in granted]
    if len(roles) != 1:
        raise PermissionError(
            f"a caller holds exactly one of {', '.join(ROLES)}; this token holds "
            f"{', '.join(roles) or 'none'}"
        )
    role = roles[0]
    area = claims.get("area")
    # What the area may be for the role is decided in one place, the scope; an empty claim is
    # the provider's way of giving a city-wide role none.
    if area == "" and role in CITY_ROLES:
        area = None
    try:
        scope = AreaScope.of(Claimed(role, area))
    except AreaClaimError as error:
        raise PermissionError(str(error)) from None
    token_id = claims.get("jti")
    return Principal(
        subject=subject,
        role=role,
        area=None if scope.level == "city" else scope.area,
        token_id=token_id if isinstance(token_id, str) else "",
        issued_at=float(issued),
    )


_bearer = HTTPBearer(auto_error=False)


def authenticated(verifier: TokenVerifier) -> Callable[..., Principal]:
    """The dependency that authenticates the caller (synchronous: FastAPI runs it in a thread,
    so fetching the provider's keys never blocks the event loop)."""

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
            return verifier.principal(credentials.credentials)
        except PermissionError as error:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, str(error), headers={"WWW-Authenticate": "Bearer"}
            ) from None
        except ProviderUnavailableError as error:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                f"{error}; the request was not applied, retry shortly",
                headers={"Retry-After": "2"},
            ) from None

    return dependency


def verifier_for(settings: AuthSettings, audience: str) -> TokenVerifier:
    """A verifier against the provider's published keys."""
    return TokenVerifier(settings, audience, ProviderKeys(settings))


def require_role(principal: Principal, roles: Iterable[Role]) -> None:
    allowed = tuple(roles)
    if principal.role not in allowed:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"role {principal.role} may not do this; allowed: {', '.join(allowed)}",
        )
