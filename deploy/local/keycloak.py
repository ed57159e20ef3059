"""Keycloak, the local stack's OpenID Connect provider, from its Maven Central distribution.

Fetched once with Maven and built once for this stack's options (``kc.sh build``), then started
with ``start --optimized`` on 127.0.0.1 only, its data (an embedded H2 database) and its
administrator's generated password under the stack's home. On its first start it gets the
``berlian`` realm: the six roles, each officer's area as a user attribute mapped into the
token's ``area`` claim, a client per service (the audiences), the console's client
(authorization code with PKCE) and, in this local realm only, a test client with direct access
grants through which tests, the demo and ``berlian token`` get tokens for users made on demand.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from deploy.local.errors import StackError
from deploy.local.paths import berlian_home, run_dir
from deploy.local.processes import pid_alive, port_open, start_detached, stop
from shared.auth import (
    AUDIT_AUDIENCE,
    ROLES,
    service_audience,
)
from shared.scope import AREA_PATTERNS, is_area_code
from shared.settings import SERVICES

KEYCLOAK_VERSION = "26.7.3"
ARTIFACT = f"org.keycloak:keycloak-quarkus-dist:{KEYCLOAK_VERSION}:zip"
HOST = "127.0.0.1"
PORT = 8180
MANAGEMENT_PORT = 8181
REALM = "berlian"
BASE_URL = f"http://{HOST}:{PORT}"
ISSUER = f"{BASE_URL}/realms/{REALM}"
TEST_CLIENT = "berlian-tests"
CONSOLE_CLIENT = "berlian-console"
AUDIENCES = (*(service_audience(s) for s in SERVICES), AUDIT_AUDIENCE)
# Options fixed when the server is built; changing them rebuilds it.
BUILD_OPTIONS = ("--db=dev-file", "--health-enabled=true")
HEAP = "-Xms64m -Xmx512m"
# Access tokens live 15 minutes; services accept at most an hour (BERLIAN_OIDC_MAX_TOKEN_...).
ACCESS_TOKEN_LIFESPAN_SECONDS = 900
ADMIN = "admin"


def distribution_dir() -> Path:
    return berlian_home() / f"keycloak-{KEYCLOAK_VERSION}"


def state_dir() -> Path:
    return run_dir() / "keycloak"


def pid_file() -> Path:
    return state_dir() / "keycloak.pid"


def log_file() -> Path:
    return state_dir() / "keycloak.log"


def credentials() -> dict[str, str]:
    """The administrator's and the test users' passwords, made once per data directory and kept
    beside it, readable by its owner only."""
    path = state_dir() / "credentials.json"
    if path.exists():
        stored: dict[str, str] = json.loads(path.read_text())
        return stored
    path.parent.mkdir(parents=True, exist_ok=True)
    made = {"admin": secrets.token_urlsafe(18), "users": secrets.token_urlsafe(18)}
    path.touch(mode=0o600)
    path.write_text(json.dumps(made))
    return made


def ensure_distribution() -> Path:
    """The server, fetched from Maven Central and built for this stack, once per machine."""
    home = distribution_dir()
    marker = home / ".built"
    if marker.exists() and marker.read_text() == " ".join(BUILD_OPTIONS):
        return home
    for tool, package in (("mvn", "maven"), ("java", "default-jdk")):
        if shutil.which(tool) is None:
            raise StackError(f"{tool} is not installed: install it (apt-get install {package}).")
    if not (home / "bin" / "kc.sh").exists():
        _unpack(home)
    result = subprocess.run(
        [str(home / "bin" / "kc.sh"), "build", *BUILD_OPTIONS],
        capture_output=True,
        text=True,
        env=_java_environment(),
        check=False,
    )
    if result.returncode != 0:
        raise StackError(
            f"Keycloak could not be built in {home}: {(result.stdout + result.stderr)[-400:]}"
        )
    marker.write_text(" ".join(BUILD_OPTIONS))
    return home


def _unpack(home: Path) -> None:
    home.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=home.parent) as scratch:
        fetch = ["dependency:copy", f"-Dartifact={ARTIFACT}", f"-DoutputDirectory={scratch}"]
        result = subprocess.run(
            ["mvn", "-q", "-B", *fetch],
            capture_output=True,
            text=True,
            check=False,
        )
        archive = Path(scratch) / f"keycloak-quarkus-dist-{KEYCLOAK_VERSION}.zip"
        if result.returncode != 0 or not archive.exists():
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-5:])
            raise StackError(
                f"Maven could not fetch {ARTIFACT} from Maven Central; check that it is "
                f"reachable and retry.\n{tail}"
            )
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(scratch)
        unpacked = Path(scratch) / f"keycloak-{KEYCLOAK_VERSION}"
        for script in (unpacked / "bin").glob("*.sh"):
            script.chmod(0o755)  # zip archives do not carry the execute bit through zipfile
        shutil.rmtree(home, ignore_errors=True)
        unpacked.rename(home)


def _java_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "JAVA_OPTS_KC_HEAP": HEAP, **(extra or {})}


def up(timeout: float = 240.0) -> str:
    """Start Keycloak if it is not running, wait until it answers, give it the realm; return
    the realm's issuer. Harmless when it runs already."""
    if pid_alive(pid_file()) is None:
        for port in (PORT, MANAGEMENT_PORT):
            if port_open(HOST, port):
                raise StackError(
                    f"Port {port} on {HOST} is taken by another process, so Keycloak cannot "
                    f"start; stop that process (ss -ltnp 'sport = :{port}')."
                )
        home = ensure_distribution()
        data = state_dir() / "data"
        data.mkdir(parents=True, exist_ok=True)
        argv = [
            str(home / "bin" / "kc.sh"),
            "start",
            "--optimized",
            "--http-enabled=true",
            f"--http-host={HOST}",
            f"--http-port={PORT}",
            f"--http-management-port={MANAGEMENT_PORT}",
            f"--hostname={BASE_URL}",
            "--cache=local",
            f"--db-url=jdbc:h2:file:{data}/keycloakdb;NON_KEYWORDS=VALUE",
        ]
        env = _java_environment(
            {
                "KC_BOOTSTRAP_ADMIN_USERNAME": ADMIN,
                "KC_BOOTSTRAP_ADMIN_PASSWORD": credentials()["admin"],
            }
        )
        start_detached(argv, log_file(), pid_file(), state_dir(), env)
    _wait_until_ready(timeout)
    provision()
    return ISSUER


def _wait_until_ready(timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if pid_alive(pid_file()) is None:
            raise StackError(f"Keycloak exited during start-up; read {log_file()}.")
        try:
            answer = httpx.get(f"http://{HOST}:{MANAGEMENT_PORT}/health/ready", timeout=2)
            if answer.status_code == 200:
                return
            last = f"readiness answered {answer.status_code}"
        except httpx.HTTPError as error:
            last = str(error) or type(error).__name__
        time.sleep(1.0)
    raise StackError(
        f"Keycloak on {BASE_URL} was not ready within {timeout:.0f}s ({last}); read {log_file()}."
    )


def down(wipe: bool = False) -> bool:
    """Stop Keycloak cleanly (``wipe`` deletes its realm and users too). True if it ran."""
    stopped = stop(pid_file(), grace_seconds=60)
    if wipe:
        shutil.rmtree(state_dir(), ignore_errors=True)
    return stopped


def status() -> int | None:
    return pid_alive(pid_file())


class Admin:
    """Keycloak's admin REST API as the local administrator (the master realm's admin-cli)."""

    def __init__(self) -> None:
        answer = httpx.post(
            f"{BASE_URL}/realms/master/protocol/openid-connect/token",
            data={
                "grant_type": "password",
                "client_id": "admin-cli",
                "username": ADMIN,
                "password": credentials()["admin"],
            },
            timeout=30,
        )
        _raise_for(answer, "signing in as Keycloak's administrator")
        token = answer.json()["access_token"]
        self.http = httpx.Client(
            base_url=f"{BASE_URL}/admin/realms",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )

    def __enter__(self) -> Admin:
        return self

    def __exit__(self, *_: object) -> None:
        self.http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        answer = self.http.request(method, path, **kwargs)
        _raise_for(answer, f"{method} {path}")
        return answer


def _raise_for(answer: httpx.Response, what: str) -> None:
    if answer.is_error:
        raise StackError(f"Keycloak refused {what}: {answer.status_code} {answer.text[:300]}")


def provision() -> None:
    """The realm with its roles and clients, and the ``area`` user attribute; a client added to
    the realm's definition since it was made is added too."""
    realm = realm_representation()
    with Admin() as admin:
        if admin.http.get(f"/{REALM}").status_code == 404:
            admin.request("POST", "", json=realm)
        for client in realm["clients"]:
            found = admin.request(
                "GET", f"/{REALM}/clients", params={"clientId": client["clientId"]}
            ).json()
            if not found:
                admin.request("POST", f"/{REALM}/clients", json=client)
        _ensure_test_signing_key(admin)
        profile = admin.request("GET", f"/{REALM}/users/profile").json()
        if not any(a["name"] == "area" for a in profile["attributes"]):
            profile["attributes"].append(AREA_ATTRIBUTE)
            admin.request("PUT", f"/{REALM}/users/profile", json=profile)


def _test_key_file() -> Path:
    return state_dir() / "test-signing-key.json"


def _ensure_test_signing_key(admin: Admin) -> None:
    """A key of the local realm only, passive (published, never used to sign), whose private
    half the tests hold: with it they make the tokens no provider would issue (an area that is
    a number or a list, an expired token, a too-long lifetime), each wrong in one respect only."""
    if _test_key_file().exists():
        return
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    add_key_provider(
        admin,
        REALM,
        "tests-passive",
        "rsa",
        {
            "priority": ["0"],
            "enabled": ["true"],
            "active": ["false"],
            "algorithm": ["RS256"],
            "privateKey": [pem],
        },
    )
    modulus = jwt.utils.to_base64url_uint(key.public_key().public_numbers().n).decode()
    published = httpx.get(f"{ISSUER}/protocol/openid-connect/certs", timeout=30).json()["keys"]
    key_id = next(k["kid"] for k in published if k.get("n") == modulus)
    _test_key_file().touch(mode=0o600)
    _test_key_file().write_text(json.dumps({"pem": pem, "kid": key_id}))


def add_key_provider(
    admin: Admin, realm: str, name: str, provider_id: str, config: dict[str, list[str]]
) -> None:
    """A signing key of ``realm`` (``rsa`` with a given key, ``rsa-generated`` for a new one),
    as an administrator adds one in a rotation."""
    realm_id = admin.request("GET", f"/{realm}").json()["id"]
    admin.request(
        "POST",
        f"/{realm}/components",
        json={
            "name": name,
            "providerId": provider_id,
            "providerType": "org.keycloak.keys.KeyProvider",
            "parentId": realm_id,
            "config": config,
        },
    )


def test_signing_key() -> tuple[rsa.RSAPrivateKey, str]:
    """The local realm's passive test key (see _ensure_test_signing_key) and its key id."""
    stored = json.loads(_test_key_file().read_text())
    key = serialization.load_pem_private_key(stored["pem"].encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise StackError(f"{_test_key_file()} does not hold an RSA key; run stack down --wipe")
    return key, str(stored["kid"])


def provider_issues(area: object) -> bool:
    """Whether the provider can give a user this area (its user profile checks the shape)."""
    return area is None or (isinstance(area, str) and (area == "" or is_area_code(area)))


def token_signed_by_test_key(role: str, area: object, subject: str, **claims: Any) -> str:
    """A token shaped as the provider's, with the claims it would carry for this caller (or
    ``claims`` instead), signed with the realm's passive test key."""
    key, key_id = test_signing_key()
    now = int(time.time())
    body: dict[str, Any] = {
        "iss": ISSUER,
        "aud": list(AUDIENCES),
        "sub": f"test-key-{username(role, None, subject)}",
        "typ": "Bearer",
        "azp": TEST_CLIENT,
        "iat": now,
        "exp": now + ACCESS_TOKEN_LIFESPAN_SECONDS,
        "realm_access": {"roles": [role]},
        "area": area,
        **claims,
    }
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": key_id})


# Only administrators set an officer's area; the officer sees it. The shapes are those the
# services accept (shared/scope.py AREA_PATTERNS).
AREA_ATTRIBUTE: dict[str, Any] = {
    "name": "area",
    "displayName": "Kelurahan or kecamatan code",
    "permissions": {"view": ["admin", "user"], "edit": ["admin"]},
    "validations": {
        "pattern": {
            "pattern": "^(" + "|".join(AREA_PATTERNS.values()) + ")$",
            "error-message": "a kelurahan code (33.75.01.1004) or a kecamatan code (33.75.01)",
        },
        "length": {"max": 13},
    },
    "multivalued": False,
}


def realm_representation() -> dict[str, Any]:
    """The local realm, as Keycloak's admin API takes it."""
    caller_mappers = [
        {
            "name": f"audience {audience}",
            "protocol": "openid-connect",
            "protocolMapper": "oidc-audience-mapper",
            "config": {
                "included.client.audience": audience,
                "access.token.claim": "true",
                "id.token.claim": "false",
            },
        }
        for audience in AUDIENCES
    ] + [
        {
            "name": "area",
            "protocol": "openid-connect",
            "protocolMapper": "oidc-usermodel-attribute-mapper",
            "config": {
                "user.attribute": "area",
                "claim.name": "area",
                "jsonType.label": "String",
                "multivalued": "false",
                "access.token.claim": "true",
                "id.token.claim": "true",
                "userinfo.token.claim": "true",
            },
        }
    ]
    resource_servers = [
        {"clientId": audience, "name": f"Berlian API {audience}", "bearerOnly": True}
        for audience in AUDIENCES
    ]
    console = {
        "clientId": CONSOLE_CLIENT,
        "name": "Berlian officers' console",
        "publicClient": True,
        "standardFlowEnabled": True,
        "directAccessGrantsEnabled": False,
        "implicitFlowEnabled": False,
        "redirectUris": [f"http://{HOST}:8020/*"],
        "webOrigins": ["+"],
        "attributes": {"pkce.code.challenge.method": "S256", "post.logout.redirect.uris": "+"},
        "protocolMappers": caller_mappers,
    }
    tests = {
        "clientId": TEST_CLIENT,
        "name": "Local stack and tests only: tokens by password for users made on demand",
        "publicClient": True,
        "standardFlowEnabled": False,
        "directAccessGrantsEnabled": True,
        "implicitFlowEnabled": False,
        "protocolMappers": caller_mappers,
    }
    return {
        "realm": REALM,
        "enabled": True,
        "sslRequired": "external",
        "registrationAllowed": False,
        "resetPasswordAllowed": False,
        "editUsernameAllowed": False,
        "bruteForceProtected": True,
        "defaultSignatureAlgorithm": "RS256",
        "accessTokenLifespan": ACCESS_TOKEN_LIFESPAN_SECONDS,
        "ssoSessionIdleTimeout": 1800,
        "ssoSessionMaxLifespan": 36000,
        "revokeRefreshToken": True,
        "roles": {"realm": [{"name": role, "description": f"Berlian {role}"} for role in ROLES]},
        "clients": [*resource_servers, console, tests],
    }


def username(role: str, area: str | None, subject: str) -> str:
    """One user per subject, role and area: Keycloak keeps user names in lower case."""
    return f"{subject}.{role}.{area or 'city'}".lower()


def ensure_user(role: str, area: str | None, subject: str) -> str:
    """A user of the local realm with this role (and area attribute); its user name."""
    name = username(role, area, subject)
    with Admin() as admin:
        found = admin.request(
            "GET", f"/{REALM}/users", params={"username": name, "exact": "true"}
        ).json()
        if found:
            return name
        admin.request(
            "POST",
            f"/{REALM}/users",
            json={
                "username": name,
                "enabled": True,
                "email": f"{name}@berlian.invalid",
                "emailVerified": True,
                "firstName": subject,
                "lastName": role,
                "attributes": {"area": [area]} if area else {},
                "credentials": [
                    {"type": "password", "value": credentials()["users"], "temporary": False}
                ],
            },
        )
        user_id = admin.request(
            "GET", f"/{REALM}/users", params={"username": name, "exact": "true"}
        ).json()[0]["id"]
        role_representation = admin.request("GET", f"/{REALM}/roles/{role}").json()
        admin.request(
            "POST", f"/{REALM}/users/{user_id}/role-mappings/realm", json=[role_representation]
        )
    return name


def token(role: str, area: str | None, subject: str) -> dict[str, Any]:
    """The provider's token answer (``access_token``, ``expires_in``) for a local user with
    this role and area, made on first use (asked for first: the user usually exists, and
    signing in as the administrator costs as much as the token itself)."""
    name = username(role, area, subject)
    answer = _password_grant(name)
    if answer.status_code in (400, 401) and "invalid_grant" in answer.text:  # no such user yet
        ensure_user(role, area, subject)
        answer = _password_grant(name)
    _raise_for(answer, f"a token for {name}")
    granted: dict[str, Any] = answer.json()
    return granted


def _password_grant(name: str) -> httpx.Response:
    return httpx.post(
        f"{ISSUER}/protocol/openid-connect/token",
        data={
            "grant_type": "password",
            "client_id": TEST_CLIENT,
            "username": name,
            "password": credentials()["users"],
            "scope": "openid",
        },
        timeout=30,
    )


class LocalProvider:
    """Tokens from the local provider for callers by role and area, each asked for once and
    reused until a minute before it expires; Keycloak is started on first use."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._started = False
        self._tokens: dict[tuple[str, str | None, str], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def token(self, role: str, area: object = None, subject: str | None = None) -> str:
        """A token for this caller; for an area the provider cannot hold (not a code, a
        number, a list), the token it would issue with that area, signed with the realm's
        passive test key: what a service must refuse."""
        name = subject or f"{self._prefix}-{role}"
        if not (area is None or isinstance(area, str)) or not provider_issues(area):
            return self.crafted(role, area, name)
        who = (role, area, name)
        with self._lock:
            cached = self._tokens.get(who)
            if cached is not None and time.monotonic() < cached[1]:
                return cached[0]
            self._ensure_started()
            granted = token(*who)
            fresh = str(granted["access_token"])
            self._tokens[who] = (fresh, time.monotonic() + float(granted["expires_in"]) - 60)
            return fresh

    def credentials(
        self, role: str, area: str | None = None, subject: str | None = None
    ) -> tuple[str, str]:
        """The user name and password of this local user, made on first use."""
        with self._lock:
            self._ensure_started()
        name = ensure_user(role, area, subject or f"{self._prefix}-{role}")
        return name, credentials()["users"]

    def crafted(
        self, role: str, area: object = None, subject: str | None = None, **claims: Any
    ) -> str:
        """The token the provider would issue for this caller, with ``claims`` instead,
        signed with the realm's passive test key."""
        with self._lock:
            self._ensure_started()
        return token_signed_by_test_key(role, area, subject or f"{self._prefix}-{role}", **claims)

    def _ensure_started(self) -> None:
        if not self._started:
            up()
            self._started = True

    def headers(self, role: str, area: object = None, subject: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, area, subject)}"}

    def caller(
        self, role: str, area: str | None = None, subject: str | None = None
    ) -> Mapping[str, str]:
        """Request headers that stay valid however long they are kept: each read asks for the
        current token (a long demo outlives one)."""
        return _CallerHeaders(self, role, area, subject)


class _CallerHeaders(Mapping[str, str]):
    def __init__(self, provider: LocalProvider, *who: str | None) -> None:
        self._provider = provider
        self._who = who

    def _current(self) -> dict[str, str]:
        role, area, subject = self._who
        return self._provider.headers(str(role), area, subject)

    def __getitem__(self, name: str) -> str:
        return self._current()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._current())

    def __len__(self) -> int:
        return len(self._current())


def allow_console_at(url: str) -> None:
    """Let the local console client come back to a console served at ``url`` (a test's free
    port): its sign-in callback and its sign-out return are added to the client's addresses."""
    with Admin() as admin:
        found = admin.request(
            "GET", f"/{REALM}/clients", params={"clientId": CONSOLE_CLIENT}
        ).json()
        if not found:
            raise StackError(f"the realm has no {CONSOLE_CLIENT} client: run `berlian stack up`")
        client = found[0]
        wanted = f"{url}/*"
        if wanted not in client.get("redirectUris", []):
            client["redirectUris"] = [*client.get("redirectUris", []), wanted]
            admin.request("PUT", f"/{REALM}/clients/{client['id']}", json=client)
