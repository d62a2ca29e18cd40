"""Settings the services share, and how every service reads them: the only place service code reads the environment.

Each service's settings class (`services/<service>/settings.py`) builds on these checks; every variable's
name is listed in `services/common/environment.py`. The CDK stacks set them, the local stack sets the same
names with loopback endpoints. A missing or malformed value stops the process at start with the variable's
name, rather than failing on the first request.
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

# Where the ALB publishes the key that signs `x-amzn-oidc-data`, by partition (read 2026-12-07): "User claims
# encoding and signature verification" in "Authenticate users using an Application Load Balancer",
# https://docs.aws.amazon.com/elasticloadbalancing/latest/application/listener-authenticate-users.html gives
# `https://public-keys.auth.elb.<region>.amazonaws.com/<key-id>` for each AWS Region and an S3 endpoint for each
# AWS GovCloud (US) Region; it names none for the China or isolated partitions, so there the URL must be given.
# The key id is appended as one more path segment (AlbKeyStore), which fits both shapes.
_STANDARD_PARTITION = re.compile(r"(us|eu|ap|sa|ca|me|af|il|mx)-\w+-\d+")  # botocore endpoints.json, `aws` regionRegex
_GOVCLOUD_ALB_KEYS = {
    "us-gov-west-1": "https://s3-us-gov-west-1.amazonaws.com/aws-elb-public-keys-prod-us-gov-west-1",
    "us-gov-east-1": "https://s3-us-gov-east-1.amazonaws.com/aws-elb-public-keys-prod-us-gov-east-1",
}


def check_region(value: str) -> str:
    """Field check shared by every service's settings."""
    if not _REGION.fullmatch(value):
        raise ValueError(f"expected an AWS region such as eu-west-1, got {value!r}")
    return value


def documented_alb_keys_url(region: str) -> str | None:
    """The ALB documentation's public-key endpoint for `region` (without the key id), or None where it gives none."""
    if region in _GOVCLOUD_ALB_KEYS:
        return _GOVCLOUD_ALB_KEYS[region]
    if _STANDARD_PARTITION.fullmatch(region):
        return f"https://public-keys.auth.elb.{region}.amazonaws.com"
    return None


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


def call_budget_s(connect_timeout_s: float, read_timeout_s: float, attempts: int) -> float:
    """The longest one botocore call can take in standard retry mode: each attempt's connect and read timeouts, and
    the longest back-off before each retry. botocore/retries/standard.py (`ExponentialBackoff.delay_amount`) waits
    `rand(0, 1) * min(scale * 2 ** i, 20)` before retry i (0-based), scale 1 s for throttling and less for other errors.
    Assumed: neither AgentCore nor DynamoDB sends `x-amz-retry-after`, which may add up to 5 s to a wait."""
    back_off = sum(min(2.0**i, 20.0) for i in range(attempts - 1))
    return (connect_timeout_s + read_timeout_s) * attempts + back_off


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
    alb_keys_base_url: str | None = Field(
        default=None, description="Where ALB public keys are served; default is the documented endpoint of AWS_REGION's partition"
    )
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

    # Which outbound accounts each person connected (services/common/connections.py): the agent reads it before
    # each use, the session binding service records a completed consent.
    connections_table: str = Field(
        pattern=r"^[A-Za-z0-9_.-]{3,255}$", description="DynamoDB table of connected accounts (partition key `user`, sort key `provider`)"
    )

    # The DynamoDB client (the connections registry; in the session binding service the ledger too): short timeouts,
    # standard retries. The ledger's lease covers one whole call of it (BindingSettings.ledger_lease_s).
    dynamodb_connect_timeout_s: float = Field(default=1.0, gt=0, le=30)
    dynamodb_read_timeout_s: float = Field(default=2.0, gt=0, le=60)
    dynamodb_max_attempts: int = Field(default=3, ge=1, le=10)

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
    def _alb_keys_endpoint_known(self) -> ServiceSettings:
        if self.alb_keys_base_url is None and documented_alb_keys_url(self.aws_region) is None:
            raise ValueError(
                f"AWS_REGION {self.aws_region!r}: the ALB documentation gives no public-key endpoint in its partition "
                "(only the aws partition and us-gov-west-1/us-gov-east-1); set ALB_KEYS_BASE_URL"
            )
        return self

    @model_validator(mode="after")
    def _https_outside_local(self) -> ServiceSettings:
        urls = {"oidc_issuer": self.oidc_issuer, "alb_keys_base_url": self.alb_keys_base_url, "public_base_url": self.public_base_url}
        require_https_outside_local(self.app_profile, urls)
        return self

    @property
    def dynamodb_call_budget_s(self) -> float:
        """The longest one call of the DynamoDB client can take, every retry included."""
        return call_budget_s(self.dynamodb_connect_timeout_s, self.dynamodb_read_timeout_s, self.dynamodb_max_attempts)

    @property
    def alb_keys_url(self) -> str:
        """ALB_KEYS_BASE_URL when set (the local stack's key server), else the documented endpoint (checked at load)."""
        url = self.alb_keys_base_url or documented_alb_keys_url(self.aws_region)
        if url is None:  # unreachable through validation; kept so a bypassing constructor cannot yield a wrong host
            raise ValueError(f"no ALB public-key endpoint for AWS_REGION {self.aws_region!r}; set ALB_KEYS_BASE_URL")
        return url


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
