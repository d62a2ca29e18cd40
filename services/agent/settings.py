"""The agent's settings: the model, the workload identity, the outbound providers, and the bounds of a chat.

Read from the environment by `services.common.settings.load_settings`; each field's variable is its name,
upper-cased, and is listed in `services.common.environment.AGENT`. `PROVIDERS` is a JSON list of
`ProviderSpec` (the stacks write it from the `providers` configuration; the local stack the same shape).
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.common.settings import ServiceSettings, check_http_url, require_https_outside_local

ProviderKind = Literal["demo", "github", "google", "microsoft", "slack", "custom-oidc"]
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,128}")  # RFC 6749 scope-token; AgentCore takes up to 128
MAX_PROVIDERS = 10
# Which revocation method a provider kind speaks when its revocation uses the client's own credentials.
REVOKE_METHOD_OF_KIND = {"github": "github", "custom-oidc": "rfc7009"}


class RevokeSpec(BaseModel):
    """Revocation with the OAuth client's own credentials on disconnect (`revoke_on_disconnect` in the provider's
    configuration): the client id, and where the agent reads the client secret, for that one call."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Literal["github", "rfc7009"] = Field(description="github: the grant API; rfc7009: an RFC 7009 endpoint")
    client_id: str = Field(pattern=r"^[\x20-\x7e]{1,256}$", description="the OAuth client id (RFC 6749 VSCHAR)")
    client_secret_arn: str = Field(
        pattern=r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]{1,512}$",
        description="the Secrets Manager secret holding the client secret as JSON",
    )
    client_secret_json_key: str = Field(default="client_secret", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    endpoint: str | None = Field(default=None, description="rfc7009: the revocation endpoint (github: none, the API's own)")

    _endpoint = field_validator("endpoint")(check_http_url)

    @model_validator(mode="after")
    def _endpoint_iff_rfc7009(self) -> RevokeSpec:
        if (self.method == "rfc7009") != (self.endpoint is not None):
            raise ValueError("revoke.endpoint is required for method rfc7009, and not allowed for method github")
        return self


class ProviderSpec(BaseModel):
    """One outbound provider: where the agent acts for the person, as whom AgentCore keeps the grant, with which scopes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,19}$", description="the configuration's name, e.g. notes")
    kind: ProviderKind
    display_name: str = Field(min_length=1, max_length=40, description="the one name people see, e.g. Demo Notes")
    credential_provider: str = Field(pattern=r"^[A-Za-z0-9_-]{1,128}$", description="AgentCore OAuth2 credential provider name")
    scopes: dict[str, str] = Field(min_length=1, description="each scope asked for, with what it allows in words")
    api_url: str | None = Field(default=None, description="base URL of the API the tools call (demo: required)")
    revocation_url: str | None = Field(default=None, description="where a token is revoked on disconnect (google, slack: known)")
    revoke: RevokeSpec | None = Field(default=None, description="github, custom-oidc: revoke with the client's credentials")

    _api_url = field_validator("api_url", "revocation_url")(check_http_url)

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: dict[str, str]) -> dict[str, str]:
        for scope, words in value.items():
            if not _SCOPE.fullmatch(scope):
                raise ValueError(f"expected OAuth scopes, got {scope!r}")
            if not words.strip() or len(words) > 100:
                raise ValueError(f"scope {scope!r}: expected 1-100 characters saying what it allows")
        return value

    @model_validator(mode="after")
    def _demo_needs_api(self) -> ProviderSpec:
        if self.kind == "demo" and not self.api_url:
            raise ValueError(f"provider {self.name!r}: api_url is required for kind demo")
        return self

    @model_validator(mode="after")
    def _revoke_fits_kind(self) -> ProviderSpec:
        if self.revoke is None:
            return self
        expected = REVOKE_METHOD_OF_KIND.get(self.kind)
        if self.revoke.method != expected:
            allowed = ", ".join(f"{method} for kind {kind}" for kind, method in REVOKE_METHOD_OF_KIND.items())
            raise ValueError(f"provider {self.name!r}: revoke.method {self.revoke.method!r} does not fit kind {self.kind} ({allowed})")
        if self.revocation_url is not None:
            raise ValueError(f"provider {self.name!r}: set revoke or revocation_url, not both")
        return self

    @property
    def scope_set(self) -> tuple[str, ...]:
        """The one normalised scope set of every outbound token request for this provider (the vault keys on it)."""
        return tuple(sorted(self.scopes))

    @property
    def permissions(self) -> list[str]:
        """The scopes in words, in the configured order: what the consent card shows."""
        return list(self.scopes.values())


class AgentSettings(ServiceSettings):
    """The agent service's settings."""

    bedrock_model_id: str = Field(description="Bedrock model or inference profile id for the Converse API")
    workload_identity_name: str = Field(description="AgentCore workload identity of the agent")
    providers: tuple[ProviderSpec, ...] = Field(
        min_length=1, max_length=MAX_PROVIDERS, description="the outbound providers, in the order people see them"
    )
    session_binding_url: str = Field(description="Where AgentCore returns the browser after consent (allowed return URL)")
    sign_out_url: str = Field(
        description="The sign-in provider's logout endpoint, with the client id and the registered return to /signed-out"
    )
    github_api_url: str = Field(default="https://api.github.com", description="GitHub's API, for a github provider without api_url")

    max_message_chars: int = Field(default=4000, ge=1, le=32_000)
    max_history: int = Field(default=20, ge=0, le=100)
    max_model_turns: int = Field(default=6, ge=1, le=20)
    max_output_tokens: int = Field(default=1024, ge=64, le=8192)
    workload_token_ttl_s: int = Field(default=900, ge=10, le=3600)
    workload_token_cache_size: int = Field(default=10_000, ge=1, le=1_000_000)
    outbound_token_cache_size: int = Field(default=10_000, ge=1, le=1_000_000, description="reused outbound tokens per task")
    tool_timeout_s: float = Field(default=10.0, gt=0, le=60, description="whole tool call, not per read")
    turn_timeout_s: float = Field(default=180.0, gt=0, le=900, description="a whole chat turn, model calls included")
    heartbeat_s: float = Field(default=15.0, gt=0, le=60, description="SSE comment while waiting: keeps idle timeouts away")
    bedrock_concurrency: int = Field(default=16, ge=1, le=256, description="Converse calls in flight per process")
    max_inflight_chats: int = Field(default=64, ge=1, le=10_000, description="chats per process before 503")
    max_chats_per_user: int = Field(default=3, ge=1, le=100, description="chats per person at once before 429")
    bedrock_read_timeout_s: float = Field(default=60.0, gt=0, le=300)
    bedrock_max_attempts: int = Field(default=4, ge=1, le=10)

    _service_url = field_validator("session_binding_url", "github_api_url")(check_http_url)

    @field_validator("sign_out_url")
    @classmethod
    def _sign_out_url(cls, value: str) -> str:
        """An absolute http(s) URL; its query (client id, return URL) is part of it. No fragment, no user info."""
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment or "@" in parts.netloc:
            raise ValueError(f"expected an absolute http(s) URL without fragment, got {value!r}")
        return value

    @model_validator(mode="after")
    def _providers_and_urls(self) -> AgentSettings:
        for field in ("name", "credential_provider"):
            values = [getattr(p, field) for p in self.providers]
            if len(set(values)) != len(values):
                raise ValueError(f"PROVIDERS: each provider needs its own {field}")
        urls: dict[str, str | None] = {
            "session_binding_url": self.session_binding_url,
            "github_api_url": self.github_api_url,
            "sign_out_url": self.sign_out_url,
        }
        urls |= {f"providers[{p.name}].api_url": p.api_url for p in self.providers}
        urls |= {f"providers[{p.name}].revocation_url": p.revocation_url for p in self.providers}
        urls |= {f"providers[{p.name}].revoke.endpoint": p.revoke.endpoint for p in self.providers if p.revoke}
        require_https_outside_local(self.app_profile, urls, " (bearer tokens travel there)")
        return self

    def provider(self, name: str) -> ProviderSpec:
        """The provider configured under `name` (KeyError for another name)."""
        for spec in self.providers:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def provider_of(self, credential_provider: str) -> ProviderSpec | None:
        """The provider whose AgentCore credential provider is `credential_provider`, if one is configured."""
        return next((p for p in self.providers if p.credential_provider == credential_provider), None)
