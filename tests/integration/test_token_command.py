"""``berlian token`` asks the local provider for a token that the services accept, with the
role and area asked for; an area of the wrong shape for the role is refused before asking."""

from __future__ import annotations

import subprocess
import sys

import pytest

from deploy.local.paths import REPO_ROOT
from shared.auth import AuthSettings, service_audience, verifier_for
from tests.tokens import token_for

pytestmark = pytest.mark.integration


def berlian_token(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deploy.cli", "token", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_token_command_gets_a_token_the_services_accept() -> None:
    token_for("auditor")  # the provider runs
    printed = berlian_token("--role", "kecamatan_officer", "--area", "33.75.01")
    assert printed.returncode == 0, printed.stderr
    caller = verifier_for(AuthSettings(), service_audience("verification")).principal(
        printed.stdout.strip()
    )
    assert (caller.role, caller.area) == ("kecamatan_officer", "33.75.01")

    refused = berlian_token("--role", "kelurahan_officer", "--area", "33.75")
    assert refused.returncode != 0
    assert "must be a kelurahan code" in refused.stderr
