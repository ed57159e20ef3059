"""No secret (nor the issuer deciding whom to trust) has a usable default: outside the explicit
local development mode a process refuses to start without it, naming it."""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import subprocess
import sys

import pytest
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from deploy.local import keycloak
from deploy.local.paths import REPO_ROOT
from services.enrolment.wiring import EnrolmentSettings
from shared.auth import AuthSettings
from shared.settings import (
    ENVIRONMENT_VARIABLE,
    LOCAL_DEVELOPMENT,
    DatabaseSettings,
    LocalDefault,
    MissingSettingError,
)

pytestmark = pytest.mark.unit
SECRET_NAMES = re.compile(r"(secret|password|_key|database_url|issuer)$")


def _all_settings() -> list[type[BaseSettings]]:
    for package in ("shared", "contract", "services", "deploy"):
        for module in pkgutil.walk_packages([str(REPO_ROOT / package)], f"{package}."):
            importlib.import_module(module.name)
    found, todo = [], list(BaseSettings.__subclasses__())
    while todo:
        kind = todo.pop()
        found.append(kind)
        todo += kind.__subclasses__()
    return [
        k
        for k in found
        if k.__module__.split(".")[0] in ("shared", "contract", "services", "deploy")
    ]


def test_no_settings_class_has_a_usable_secret_default() -> None:
    checked = []
    for kind in _all_settings():
        for name, field in kind.model_fields.items():
            if not SECRET_NAMES.search(name):
                continue
            default = field.default
            if isinstance(default, SecretStr):
                default = default.get_secret_value()
            local = any(isinstance(m, LocalDefault) for m in field.metadata)
            assert not default, f"{kind.__name__}.{name} has a usable default"
            checked.append((kind.__name__, name, local))
    assert ("DatabaseSettings", "service_role_password", True) in checked
    assert ("AuthSettings", "issuer", True) in checked


def test_outside_local_development_missing_secrets_are_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for mode in (None, "production", "local"):
        if mode is None:
            monkeypatch.delenv(ENVIRONMENT_VARIABLE, raising=False)
        else:
            monkeypatch.setenv(ENVIRONMENT_VARIABLE, mode)
        with pytest.raises(MissingSettingError, match="DATABASE_URL, SERVICE_ROLE_PASSWORD"):
            DatabaseSettings()
        with pytest.raises(MissingSettingError, match="BERLIAN_OIDC_ISSUER"):
            AuthSettings()
    given = DatabaseSettings(database_url="postgresql://a:b@db/x", service_role_password="s")
    assert given.service_role_password == "s"


def test_local_development_fills_the_local_stack_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, LOCAL_DEVELOPMENT)
    assert DatabaseSettings().service_role_password == "berlian"
    assert AuthSettings().issuer == keycloak.ISSUER == "http://127.0.0.1:8180/realms/berlian"
    # The local value meets the key's own constraint (the digest key's minimum length).
    assert len(EnrolmentSettings().nik_digest_key()) >= 32


def _run_enrolment(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deploy.cli", "run", "enrolment"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_service_does_not_start_without_its_secrets() -> None:
    kept = {k: v for k, v in os.environ.items() if not k.startswith(("BERLIAN_", "DATABASE"))}
    env = {**kept, "PYTHONPATH": str(REPO_ROOT)}
    refused = _run_enrolment(env)
    assert refused.returncode == 2
    assert "DATABASE_URL, SERVICE_ROLE_PASSWORD must be set" in refused.stderr
    assert "Traceback" not in refused.stderr
    given = {**env, "DATABASE_URL": "postgresql://a:b@127.0.0.1:9/x", "SERVICE_ROLE_PASSWORD": "s"}
    refused = _run_enrolment(given)
    assert refused.returncode == 2
    assert "BERLIAN_OIDC_ISSUER must be set" in refused.stderr
