"""The demo API's settings: the only place its code reads the environment.

The CDK construct (`stacks/constructs/demo_api.py`) sets these on the Lambda function; the local
stack sets the same names with loopback endpoints (all listed in `services.common.environment.DEMO_API`).
A missing or malformed value stops the process with the variable's name rather than failing on the first
request.

Why https is required for the issuer and the key set outside `APP_PROFILE=local`: the keys fetched
from `<issuer>/.well-known/jwks.json` decide which tokens this API accepts. Over plain http anyone on
the network path could answer with their own key and mint tokens for any user. Loopback http is only
accepted in the local profile, where the authorization server runs on the same machine.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.settings import check_http_url, check_region, load_settings, require_https_outside_local

_CLIENT_ID = re.compile(r"[\x21-\x7e]{1,128}")
_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")


class DemoApiSettings(BaseSettings):
    """Who issues the tokens this API accepts, for which client, and where notes are kept."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=False)

    app_profile: Literal["sandbox", "prod", "local"] = "sandbox"
    aws_region: str = Field(description="Region of the notes table (set by Lambda)")
    demo_issuer: str = Field(description="Issuer of the demo authorization server (the access token's `iss`)")
    demo_client_id: str = Field(description="App client the tokens are issued to (the access token's `client_id`)")
    demo_jwks_url: str | None = Field(default=None, description="Where the signing keys are served; default <issuer>/.well-known/jwks.json")
    notes_table: str = Field(description="DynamoDB table of notes (locally too: `AWS_ENDPOINT_URL_DYNAMODB` names the server)")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    _region = field_validator("aws_region")(check_region)
    _http_url = field_validator("demo_issuer", "demo_jwks_url")(check_http_url)

    @field_validator("demo_client_id")
    @classmethod
    def _client_id(cls, value: str) -> str:
        if not _CLIENT_ID.fullmatch(value):
            raise ValueError("expected 1-128 printable ASCII characters without spaces")
        return value

    @field_validator("notes_table")
    @classmethod
    def _table_name(cls, value: str) -> str:
        if not _TABLE_NAME.fullmatch(value):
            raise ValueError(f"expected a DynamoDB table name, got {value!r}")
        return value

    @model_validator(mode="after")
    def _https_outside_local(self) -> DemoApiSettings:
        require_https_outside_local(self.app_profile, {"demo_issuer": self.demo_issuer, "demo_jwks_url": self.demo_jwks_url})
        return self

    @property
    def jwks_url(self) -> str:
        return self.demo_jwks_url or f"{self.demo_issuer}/.well-known/jwks.json"


def load_demo_settings() -> DemoApiSettings:
    """Read settings from the environment; on a bad value exit with one line per variable."""
    return load_settings(DemoApiSettings)
