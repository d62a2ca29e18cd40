"""Service settings: the only place service code reads the environment.

The CDK services stack sets these variables (see `stacks/services_stack.py`); the local stack sets
the same names with loopback endpoints. A missing or malformed value stops the process at start
with the variable's name, rather than failing on the first request.
"""

from __future__ import annotations

import re
from typing import Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_ALB_ARN = re.compile(r"arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:loadbalancer/app/[A-Za-z0-9-]{1,32}/[0-9a-f]{16}")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")
_HTTP_URL = re.compile(r"https?://[^\s/?#]+(/[^\s?#]*)?")
_NAMESPACE = re.compile(r"[A-Za-z0-9._/#:-]{1,255}")


def check_region(value: str) -> str:
    """Field check shared by every service's settings."""
    if not _REGION.fullmatch(value):
        raise ValueError(f"expected an AWS region such as eu-west-1, got {value!r}")
    return value


def check_http_url(value: str | None) -> str | None:
    """An absolute http(s) URL without query or fragment; the trailing slash dropped."""
    if value is None:
        return None
    if not _HTTP_URL.fullmatch(value):
        raise ValueError(f"expected an http(s) URL without query or fragment, got {value!r}")
    return value.rstrip("/")


def require_https_outside_local(profile: str, urls: dict[str, str | None], why: str = "") -> None:
    """Outside the local profile, every URL a service trusts or sends credentials to must be https."""
    if profile == "local":
        return
    for name, value in urls.items():
        if value is not None and not value.startswith("https://"):
            raise ValueError(f"{name.upper()} must be https:// outside the local profile{why}, got {value!r}")


class ServiceSettings(BaseSettings):
    """Settings both services share: who signs requests in, which keys sign flows, how AgentCore is called."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=False)

    app_profile: Literal["sandbox", "prod", "local"] = "sandbox"
    aws_region: str = Field(description="Region of the ALB and AgentCore (set by ECS and Lambda)")
    public_base_url: str = Field(description="Origin people use, e.g. https://agent.example.com")

    # Proof 1, who: the ALB's x-amzn-oidc-data token.
    alb_arn: str = Field(description="ARN of the load balancer whose tokens are accepted (the JWT `signer`)")
    oidc_issuer: str = Field(description="Issuer of the sign-in user pool (the JWT `iss`)")
    oidc_client_id: str = Field(description="App client the ALB signs people in with (the JWT `client`)")
    alb_keys_base_url: str | None = Field(default=None, description="Where ALB public keys are served; default is the regional endpoint")
    alb_key_fetch_timeout_s: float = Field(default=2.0, gt=0, le=10)
    alb_token_leeway_s: int = Field(default=10, ge=0, le=60)

    # Proofs 2 and 3: flow tokens and binding cookies.
    flow_signing_keys: SecretStr | None = Field(default=None, description='JSON {"kid","key"} or a list of them; the first one signs')
    # On Lambda there is no ECS secret injection: the function reads the secret itself, once, at start.
    flow_signing_keys_secret_arn: str | None = Field(default=None, description="Secrets Manager ARN holding FLOW_SIGNING_KEYS")

    # AgentCore client.
    agentcore_connect_timeout_s: float = Field(default=2.0, gt=0, le=30)
    agentcore_read_timeout_s: float = Field(default=5.0, gt=0, le=60)
    agentcore_max_attempts: int = Field(default=3, ge=1, le=10)
    agentcore_concurrency: int = Field(default=4, ge=1, le=64, description="AgentCore calls in flight per process")
    agentcore_max_waiting: int = Field(default=256, ge=0, le=10_000, description="calls allowed to queue before 503")

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # CloudWatch namespace of the embedded-format metrics (the CDK app sets `<app>/<profile>` by default).
    metrics_namespace: str = "agentcore-ecs/local"

    _region = field_validator("aws_region")(check_region)

    @field_validator("alb_arn")
    @classmethod
    def _alb_arn(cls, value: str) -> str:
        if not _ALB_ARN.fullmatch(value):
            raise ValueError(
                "expected an Application Load Balancer ARN (arn:aws:elasticloadbalancing:<region>:<account>:loadbalancer/app/<name>/<id>)"
            )
        return value

    _http_url = field_validator("public_base_url", "oidc_issuer", "alb_keys_base_url")(check_http_url)

    @field_validator("metrics_namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if not _NAMESPACE.fullmatch(value) or value.startswith("AWS/"):
            raise ValueError("expected 1-255 of letters, digits and . _ / # : - (not starting with AWS/)")
        return value

    @model_validator(mode="after")
    def _one_source_of_signing_keys(self) -> ServiceSettings:
        if (self.flow_signing_keys is None) == (self.flow_signing_keys_secret_arn is None):
            raise ValueError("set exactly one of FLOW_SIGNING_KEYS (the value) and FLOW_SIGNING_KEYS_SECRET_ARN (where to read it)")
        return self

    @model_validator(mode="after")
    def _https_outside_local(self) -> ServiceSettings:
        urls = {"oidc_issuer": self.oidc_issuer, "alb_keys_base_url": self.alb_keys_base_url, "public_base_url": self.public_base_url}
        require_https_outside_local(self.app_profile, urls)
        return self

    @property
    def alb_keys_url(self) -> str:
        return self.alb_keys_base_url or f"https://public-keys.auth.elb.{self.aws_region}.amazonaws.com"


class BindingSettings(ServiceSettings):
    """The session binding service's settings."""

    binding_mode: Literal["same-browser", "same-user"] = "same-browser"
    # Proof 4: the landing must carry AgentCore's echo of the flow's secret customState, in this query
    # parameter. On by default; see docs/session-binding.md for what turning it off costs.
    require_custom_state: bool = True
    custom_state_param: str = Field(default="state", description="query parameter of the landing that carries the customState echo")
    # Shared state of every consent session (started, completed, cancelled): DynamoDB.
    binding_table: str = Field(description="DynamoDB table of consent sessions (partition key `session`, TTL `expires_at`)")
    agent_ui_path: Literal["/"] = "/"  # where success and error pages send people: fixed, never caller-supplied

    @field_validator("custom_state_param")
    @classmethod
    def _state_param(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", value) or value in ("session_id", "code"):
            raise ValueError("expected 1-64 of letters, digits and _ . - (not session_id or code)")
        return value

    @field_validator("binding_table")
    @classmethod
    def _table(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{3,255}", value):
            raise ValueError("expected a DynamoDB table name: 3-255 of letters, digits and _ . -")
        return value

    @property
    def agentcore_call_budget_s(self) -> float:
        """The longest one CompleteResourceTokenAuth can take, every retry included."""
        return (self.agentcore_connect_timeout_s + self.agentcore_read_timeout_s) * self.agentcore_max_attempts

    @property
    def ledger_lease_s(self) -> float:
        """How long a claim on a session holds: one whole call, plus 5 s for the wait for a worker thread."""
        return self.agentcore_call_budget_s + 5.0


S = TypeVar("S", bound=BaseSettings)


def load_settings(cls: type[S]) -> S:
    """Read settings from the environment; on a bad value exit with one line per variable."""
    try:
        return cls()  # values come from the environment
    except ValidationError as exc:
        problems = "; ".join(
            f"{'_'.join(str(part) for part in error['loc']).upper()}: {error['msg']}" if error["loc"] else error["msg"]
            for error in exc.errors()
        )
        raise SystemExit(f"config error: {problems}") from None


class AgentSettings(ServiceSettings):
    """The agent service's settings."""

    bedrock_model_id: str = Field(description="Bedrock model or inference profile id for the Converse API")
    workload_identity_name: str = Field(description="AgentCore workload identity of the agent")
    credential_provider_name: str = Field(description="AgentCore OAuth2 credential provider for the external API")
    provider_kind: Literal["demo", "github", "google", "microsoft", "slack", "custom-oidc"] = "demo"
    provider_scopes: str = Field(description="Space-separated scopes requested for every outbound token")
    session_binding_url: str = Field(description="Where AgentCore returns the browser after consent (allowed return URL)")
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
        urls = {"session_binding_url": self.session_binding_url, "demo_api_url": self.demo_api_url, "github_api_url": self.github_api_url}
        require_https_outside_local(self.app_profile, urls, " (bearer tokens travel there)")
        return self

    @property
    def scopes(self) -> tuple[str, ...]:
        """The one normalised scope set of every outbound token request (the vault keys on it)."""
        return tuple(sorted(set(self.provider_scopes.split())))
