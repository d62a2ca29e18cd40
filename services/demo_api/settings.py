"""The demo API's settings: the only place its code reads the environment.

The CDK construct (`stacks/constructs/demo_api.py`) sets these on the Lambda function; the local
stack sets the same names with loopback endpoints (all listed in `services.common.environment.DEMO_API`).
A missing or malformed value stops the process with the variable's name rather than failing on the first
request.

`DEMO_CLIENT_IDS` lists the app clients whose access tokens are accepted, separated by spaces (1 to
10, no repeats): one per credential provider the agent has at the demo authorization server ("Demo
Notes", "Demo Tasks"), so the agent acts at the same API through either account. A token issued to any
other client of the same issuer is refused (`wrong_client`).

Why https is required for the issuer and the key set outside `APP_PROFILE=local`: the keys fetched
from `<issuer>/.well-known/jwks.json` decide which tokens this API accepts. Over plain http anyone on
the network path could answer with their own key and mint tokens for any user. Loopback http is only
accepted in the local profile, where the authorization server runs on the same machine.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from services.common.settings import check_http_url, check_region, load_settings, require_https_outside_local

_CLIENT_ID = re.compile(r"[\x21-\x7e]{1,128}")
MAX_CLIENT_IDS = 10
_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")


class DemoApiSettings(BaseSettings):
    """Who issues the tokens this API accepts, for which clients, and where notes and tasks are kept."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=False)

    app_profile: Literal["sandbox", "prod", "local"] = "sandbox"
    aws_region: str = Field(description="Region of the notes table (set by Lambda)")
    demo_issuer: str = Field(description="Issuer of the demo authorization server (the access token's `iss`)")
    # NoDecode: the environment value is a space-separated list, not JSON (see `_client_ids`).
    demo_client_ids: Annotated[frozenset[str], NoDecode] = Field(
        description="App clients the tokens may be issued to, space-separated (the access token's `client_id`)"
    )
    demo_jwks_url: str | None = Field(default=None, description="Where the signing keys are served; default <issuer>/.well-known/jwks.json")
    notes_table: str = Field(description="DynamoDB table of notes and tasks (locally too: `AWS_ENDPOINT_URL_DYNAMODB` names the server)")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    _region = field_validator("aws_region")(check_region)
    _http_url = field_validator("demo_issuer", "demo_jwks_url")(check_http_url)

    @field_validator("demo_client_ids", mode="before")
    @classmethod
    def _client_ids(cls, value: object) -> object:
        """Split the environment's string on spaces; check the count, each id, and that none repeats."""
        if isinstance(value, str):
            ids: list[object] = list(value.split())
        elif isinstance(value, list | tuple | set | frozenset):
            ids = list(value)
        else:
            return value  # not a list of any kind: pydantic's type check refuses it
        if not 1 <= len(ids) <= MAX_CLIENT_IDS:
            raise ValueError(f"expected 1 to {MAX_CLIENT_IDS} app client ids separated by spaces, got {len(ids)}")
        for client_id in ids:
            if not isinstance(client_id, str) or not _CLIENT_ID.fullmatch(client_id):
                raise ValueError("expected each app client id to be 1-128 printable ASCII characters without spaces")
        repeated = sorted({client_id for client_id in ids if ids.count(client_id) > 1}, key=str)
        if repeated:
            raise ValueError(f"app client id listed more than once: {' '.join(map(str, repeated))}")
        return ids

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
