"""Where the console is reached and where the services answer; nothing secret (a public
client with PKCE, sessions by random id)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

CONSOLE_CLIENT = "berlian-console"


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BERLIAN_CONSOLE_", extra="ignore")

    url: str = Field(
        default="http://127.0.0.1:8020",
        max_length=300,
        description="Where browsers reach the console; the provider sends them back to "
        "<url>/sign-in/callback.",
    )
    client_id: str = Field(default=CONSOLE_CLIENT, max_length=100)
    enrolment_url: str = Field(default="http://127.0.0.1:8001", max_length=300)
    verification_url: str = Field(default="http://127.0.0.1:8002", max_length=300)
    billing_url: str = Field(default="http://127.0.0.1:8003", max_length=300)
    claims_url: str = Field(default="http://127.0.0.1:8004", max_length=300)
    audit_url: str = Field(
        default="http://127.0.0.1:8010",
        max_length=300,
        description="Where the auditor's API answers (`berlian audit web`): the auditor's "
        "pages are drawn from its answers.",
    )
    forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        max_length=300,
        description="The proxies (the ingress controller) trusted to name the browser's address "
        "in X-Forwarded-For: sign-ins waiting at the provider are bounded per browser address, "
        "so behind a proxy that is not trusted every browser would share the proxy's.",
    )
    idle_timeout_seconds: int = Field(
        default=900, gt=0, le=28800, description="A session unused this long ends."
    )
    service_timeout_seconds: float = Field(default=15.0, gt=0, le=120)
