"""The agent's settings: the model, the workload identity and credential provider, and the bounds of a chat.

Read from the environment by `services.common.settings.load_settings`; each field's variable is its name,
upper-cased, and is listed in `services.common.environment.AGENT`.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from services.common.settings import ServiceSettings, check_http_url, require_https_outside_local


class AgentSettings(ServiceSettings):
    """The agent service's settings."""

    bedrock_model_id: str = Field(description="Bedrock model or inference profile id for the Converse API")
    workload_identity_name: str = Field(description="AgentCore workload identity of the agent")
    credential_provider_name: str = Field(description="AgentCore OAuth2 credential provider for the external API")
    provider_kind: Literal["demo", "github", "google", "microsoft", "slack", "custom-oidc"] = "demo"
    provider_scopes: str = Field(description="Space-separated scopes requested for every outbound token")
    session_binding_url: str = Field(description="Where AgentCore returns the browser after consent (allowed return URL)")
    sign_out_url: str = Field(
        description="The sign-in provider's logout endpoint, with the client id and the registered return to /signed-out"
    )
    demo_api_url: str | None = Field(default=None, description="Base URL of the demo resource API (demo provider)")
    github_api_url: str = "https://api.github.com"

    max_message_chars: int = Field(default=4000, ge=1, le=32_000)
    max_history: int = Field(default=20, ge=0, le=100)
    max_model_turns: int = Field(default=6, ge=1, le=20)
    max_output_tokens: int = Field(default=1024, ge=64, le=8192)
    workload_token_ttl_s: int = Field(default=900, ge=10, le=3600)
    workload_token_cache_size: int = Field(default=10_000, ge=1, le=1_000_000)
    tool_timeout_s: float = Field(default=10.0, gt=0, le=60, description="whole tool call, not per read")
    turn_timeout_s: float = Field(default=180.0, gt=0, le=900, description="a whole chat turn, model calls included")
    heartbeat_s: float = Field(default=15.0, gt=0, le=60, description="SSE comment while waiting: keeps idle timeouts away")
    bedrock_concurrency: int = Field(default=16, ge=1, le=256, description="Converse calls in flight per process")
    max_inflight_chats: int = Field(default=64, ge=1, le=10_000, description="chats per process before 503")
    max_chats_per_user: int = Field(default=3, ge=1, le=100, description="chats per person at once before 429")
    bedrock_read_timeout_s: float = Field(default=60.0, gt=0, le=300)
    bedrock_max_attempts: int = Field(default=4, ge=1, le=10)

    _service_url = field_validator("session_binding_url", "demo_api_url", "github_api_url")(check_http_url)

    @field_validator("sign_out_url")
    @classmethod
    def _sign_out_url(cls, value: str) -> str:
        """An absolute http(s) URL; its query (client id, return URL) is part of it. No fragment, no user info."""
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment or "@" in parts.netloc:
            raise ValueError(f"expected an absolute http(s) URL without fragment, got {value!r}")
        return value

    @field_validator("provider_scopes")
    @classmethod
    def _scopes(cls, value: str) -> str:
        scopes = value.split()
        if not scopes or any(not re.fullmatch(r"[\x21\x23-\x5b\x5d-\x7e]{1,256}", s) for s in scopes):
            raise ValueError("expected one or more space-separated OAuth scopes")
        return value

    @model_validator(mode="after")
    def _demo_needs_api(self) -> AgentSettings:
        if self.provider_kind == "demo" and not self.demo_api_url:
            raise ValueError("DEMO_API_URL is required when PROVIDER_KIND is demo")
        urls = {
            "session_binding_url": self.session_binding_url,
            "demo_api_url": self.demo_api_url,
            "github_api_url": self.github_api_url,
            "sign_out_url": self.sign_out_url,
        }
        require_https_outside_local(self.app_profile, urls, " (bearer tokens travel there)")
        return self

    @property
    def scopes(self) -> tuple[str, ...]:
        """The one normalised scope set of every outbound token request (the vault keys on it)."""
        return tuple(sorted(set(self.provider_scopes.split())))
