"""One frozen, validated configuration for the whole CDK app.

Values come from `cdk.json` context (defaults) and `-c key=value` overrides. The
CDK CLI hands `-c` values over as strings, so every reader here accepts both the
JSON type from `cdk.json` and its string spelling from the command line.

Every problem raises `ConfigError` with one line that names the context key and
what is expected; `app.py` prints that line and exits non-zero, so synth fails
before any construct is built.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar
from urllib.parse import urlparse

from cdk_app.routes import SIGNED_OUT_PATH

T = TypeVar("T")


class ConfigError(ValueError):
    """A context value is missing or invalid. The message is one line."""

    def __init__(self, key: str, expected: str, got: object = None, *, missing: bool = False, echo: bool = True) -> None:
        detail = "it is missing" if missing else f"got {_short(got)}" if echo else "its value is not shown"
        super().__init__(f"context key '{key}': expected {expected}; {detail}")
        self.key = key


def _short(value: object) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class Profile(StrEnum):
    SANDBOX = "sandbox"
    PROD = "prod"


class BindingCompute(StrEnum):
    """Where the session binding service runs: a Fargate service, or a Lambda function behind the same ALB."""

    FARGATE = "fargate"
    LAMBDA = "lambda"


class Provider(StrEnum):
    """The external authorization server the agent calls APIs at, on the user's behalf."""

    DEMO = "demo"
    GITHUB = "github"
    GOOGLE = "google"
    MICROSOFT = "microsoft"
    SLACK = "slack"
    CUSTOM_OIDC = "custom-oidc"


class BindingMode(StrEnum):
    SAME_BROWSER = "same-browser"
    SAME_USER = "same-user"


# The demo authorization server's resource server (stacks/constructs/auth.py builds it): its identifier and its
# custom scopes, each with what it allows in words. Tokens name a scope `<identifier>/<scope>`.
DEMO_RESOURCE_SERVER_ID = "demo-api"
DEMO_API_SCOPES: Mapping[str, str] = {
    "profile.read": "See your profile (name and email address)",
    "notes.read": "Read your notes",
    "notes.write": "Create, change and delete your notes",
    "tasks.read": "Read your task list",
    "tasks.write": "Add and complete tasks",
}

# Scopes asked for when a provider's `scopes` is not set (a demo provider always names its own).
DEFAULT_SCOPES: Mapping[Provider, tuple[str, ...]] = {
    Provider.GITHUB: ("read:user", "repo"),
    Provider.GOOGLE: ("openid", "email", "https://www.googleapis.com/auth/userinfo.profile"),
    Provider.MICROSOFT: ("openid", "offline_access", "User.Read"),
    Provider.SLACK: ("users:read",),
    Provider.CUSTOM_OIDC: ("openid",),
}
# What each default scope allows, in the words people read on the consent card.
DEFAULT_SCOPE_WORDS: Mapping[str, str] = {
    "read:user": "See your GitHub profile",
    "repo": "Read and change your public and private repositories",
    "openid": "Confirm who you are",
    "email": "See your email address",
    "https://www.googleapis.com/auth/userinfo.profile": "See your name and profile picture",
    "offline_access": "Keep access while you are away, until you disconnect",
    "User.Read": "See your profile and sign you in",
    "users:read": "See the people in your workspace",
}
MAX_PROVIDERS = 10
# What `providers` holds when it is not set: the two demo providers of cdk.json (tests/stacks/test_config.py).
DEFAULT_PROVIDERS: tuple[Mapping[str, Any], ...] = (
    {
        "name": "notes",
        "kind": "demo",
        "display_name": "Demo Notes",
        "scopes": {
            "demo-api/profile.read": "See your profile (name and email address)",
            "demo-api/notes.read": "Read your notes",
            "demo-api/notes.write": "Create, change and delete your notes",
        },
    },
    {
        "name": "tasks",
        "kind": "demo",
        "display_name": "Demo Tasks",
        "scopes": {"demo-api/tasks.read": "Read your task list", "demo-api/tasks.write": "Add and complete tasks"},
    },
)

# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)

_APP_NAME = re.compile(r"^[a-z][a-z0-9-]{1,18}[a-z0-9]$")
_ACCOUNT = re.compile(r"^\d{12}$")
_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")
_DOMAIN = re.compile(r"^(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_ZONE_ID = re.compile(r"^Z[A-Z0-9]{1,31}$")
_CERT_ARN = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}$")
_SCOPE = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]{1,128}$")  # RFC 6749 scope-token; AgentCore takes up to 128
_SECRET_NAME = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,512}$")
_JSON_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_QUERY_PARAM = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# AgentCore's own parameter on the session binding URL: the session URI, never an echo of customState.
SESSION_ID_PARAM = "session_id"
_CLIENT_ID = re.compile(r"^[\x21-\x7e]{1,256}$")
_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,63}$")
# CloudWatch namespaces: letters, digits and . - _ / # : (space excluded here); not the AWS/ prefix.
_NAMESPACE = re.compile(r"^(?!AWS/)[A-Za-z0-9._/#:-]{1,255}$")
_MODEL_ID = re.compile(r"^((us|eu|apac|jp|au|ca|us-gov|global)\.)?[a-z0-9-]+\.[A-Za-z0-9.:_-]{1,200}$")
_TENANT = re.compile(r"^[A-Za-z0-9.-]{1,128}$")
_DISCOVERY_SUFFIX = "/.well-known/openid-configuration"
_PROVIDER_NAME = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
# GitHub: an owner is 1-39 letters, digits and single inner hyphens; a repository name 1-100 of [A-Za-z0-9._-].
_GITHUB_REPOSITORY = re.compile(r"^[A-Za-z0-9](?:-?[A-Za-z0-9]){0,38}/(?!\.{1,2}$)[A-Za-z0-9._-]{1,100}$")
# A branch name as it appears in the OIDC subject `ref:refs/heads/<branch>`; no IAM wildcards (* ?).
_GIT_BRANCH = re.compile(r"^(?!/)(?!.*(?://|\.\.|@\{))[A-Za-z0-9._/-]{1,200}(?<![/.])$")
# Cognito allows 63 characters; "-signin" / "-demo-as" are appended to the prefix.
_DOMAIN_PREFIX = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,53}[a-z0-9])?$")
_RESERVED_IN_DOMAIN_PREFIX = re.compile(r"aws|amazon|cognito")
MAX_CERTIFICATE_NAME = 64  # ACM: a certificate's common name has at most 64 characters
MAX_INGRESS_CIDRS = 25  # two rules each; a security group holds 60 inbound rules by default
# Inference-profile prefixes route a request to several regions (cross-region inference).
INFERENCE_PROFILE_PREFIXES = ("us.", "eu.", "apac.", "jp.", "au.", "ca.", "us-gov.", "global.")

# Regions the app deploys to: both services it cannot run without are offered there (read 2026-12-07).
# ALB `authenticate-cognito`: "Prepare to use Amazon Cognito" in "Authenticate users using an Application Load
# Balancer", https://docs.aws.amazon.com/elasticloadbalancing/latest/application/listener-authenticate-users.html.
# Only Regions of the standard `aws` partition are listed: neither AWS GovCloud (US) nor the China Regions.
ALB_COGNITO_REGIONS = frozenset(
    {
        "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "ca-west-1",
        "eu-north-1", "eu-south-1", "eu-central-1", "eu-central-2", "eu-west-1", "eu-west-2", "eu-west-3", "eu-south-2",
        "sa-east-1", "ap-east-1", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-south-1", "ap-south-2",
        "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4",
        "me-central-1", "me-south-1", "af-south-1", "il-central-1",
    }
)  # fmt: skip
# AgentCore Identity: its row in "Supported AWS Regions" of the AgentCore developer guide,
# https://docs.aws.amazon.com/bedrock-agentcore/latest/devguide/agentcore-regions.html (the newest copy found: 22
# columns, Identity offered in each). botocore's endpoint data cannot settle it: its `bedrock-agentcore` rule set
# resolves a host for any region of any partition and lists none.
AGENTCORE_IDENTITY_REGIONS = frozenset(
    {
        "us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-central-1", "eu-west-1", "eu-west-2", "eu-south-1",
        "eu-west-3", "eu-south-2", "eu-north-1", "ap-southeast-5", "ap-south-1", "ap-south-2", "ap-southeast-1",
        "ap-southeast-2", "ap-southeast-7", "ap-northeast-1", "ap-northeast-2", "ca-central-1", "sa-east-1", "us-gov-west-1",
    }
)  # fmt: skip
SUPPORTED_REGIONS = tuple(sorted(ALB_COGNITO_REGIONS & AGENTCORE_IDENTITY_REGIONS))
# Partitions by region name, as botocore's data/endpoints.json `regionRegex` has them; the app supports `aws` only.
_PARTITIONS = (
    ("aws", re.compile(r"(us|eu|ap|sa|ca|me|af|il|mx)-\w+-\d+")),
    ("aws-cn", re.compile(r"cn-\w+-\d+")),
    ("aws-us-gov", re.compile(r"us-gov-\w+-\d+")),
    ("aws-iso", re.compile(r"us-iso-\w+-\d+")),
    ("aws-iso-b", re.compile(r"us-isob-\w+-\d+")),
    ("aws-iso-e", re.compile(r"eu-isoe-\w+-\d+")),
    ("aws-iso-f", re.compile(r"us-isof-\w+-\d+")),
)


@dataclass(frozen=True)
class ProviderConfig:
    """One outbound provider: an external authorization server the agent calls APIs at, on the person's behalf."""

    name: str  # [a-z][a-z0-9-]{0,19}: part of resource names (its credential provider's, for one)
    kind: Provider
    display_name: str  # the name people read, e.g. "Demo Notes"
    scopes: tuple[tuple[str, str], ...]  # (scope, what it allows in words), in the configured order
    client_id: str | None  # None for kind demo: its client is generated in-stack
    client_secret_name: str | None
    client_secret_json_key: str
    discovery_url: str | None
    microsoft_tenant_id: str | None
    # Off by default. On (github, custom-oidc only), the agent's role may read this provider's client secret and a
    # disconnect revokes the grant at the provider with it: the agent can then act as the OAuth client there.
    revoke_on_disconnect: bool
    revocation_url: str | None  # custom-oidc with revoke_on_disconnect: its RFC 7009 endpoint

    @property
    def is_demo(self) -> bool:
        return self.kind is Provider.DEMO

    @property
    def scope_names(self) -> tuple[str, ...]:
        return tuple(scope for scope, _ in self.scopes)

    @property
    def id_part(self) -> str:
        """The name in PascalCase, for construct ids and output names: `notes` -> `Notes`, `my-idp` -> `MyIdp`."""
        return "".join(part[:1].upper() + part[1:] for part in self.name.split("-"))

    @property
    def callback_url_output(self) -> str:
        """The agent identity stack's output holding AgentCore's callback URL to register at this provider."""
        return f"CallbackUrl{self.id_part}"

    @property
    def credential_provider_output(self) -> str:
        """The agent identity stack's output holding the name of this provider's AgentCore credential provider."""
        return f"CredentialProviderName{self.id_part}"


@dataclass(frozen=True)
class TaskBounds:
    """How many Fargate tasks target tracking may run: never fewer than `min_tasks`, never more than `max_tasks`."""

    min_tasks: int
    max_tasks: int


@dataclass(frozen=True)
class AlarmConfig:
    metrics_namespace: str  # where the services' embedded-format metrics land
    email: str | None  # subscribed to the alarm topic when set
    refusals_per_5min: int  # BindingsRefused in five minutes that count as a spike


@dataclass(frozen=True)
class AppConfig:
    app_name: str
    profile: Profile
    account: str | None
    region: str | None
    domain_name: str
    hosted_zone_id: str | None
    hosted_zone_name: str | None
    certificate_arn: str | None
    auth_domain_prefix: str | None
    allowed_ingress_cidrs: tuple[str, ...]
    nat_gateways: int
    agent_scaling: TaskBounds
    binding_scaling: TaskBounds  # unused when the binding service runs on Lambda
    waf_enabled: bool
    providers: tuple[ProviderConfig, ...]  # in the order people see them
    binding_mode: BindingMode
    binding_compute: BindingCompute
    binding_require_state: bool
    binding_state_param: str  # query parameter of the session binding URL that carries AgentCore's echo of customState
    bedrock_model_id: str
    log_retention_days: int
    github_repository: str | None  # owner/repo: adds the GitHub OIDC deploy-role stack when set
    github_deploy_branch: str
    alarms: AlarmConfig

    @property
    def is_prod(self) -> bool:
        return self.profile is Profile.PROD

    @property
    def base_url(self) -> str:
        return f"https://{self.domain_name}"

    @property
    def session_binding_url(self) -> str:
        """Ours: AgentCore sends the browser here after consent (the return URL)."""
        return f"{self.base_url}/oauth2/session-binding"

    @property
    def signed_out_url(self) -> str:
        """Where the sign-in pool's logout endpoint sends the browser after sign-out (a registered logout URL)."""
        return f"{self.base_url}{SIGNED_OUT_PATH}"

    @property
    def alb_callback_url(self) -> str:
        """The ALB's own OIDC callback, registered at the sign-in user pool client."""
        return f"{self.base_url}/oauth2/idpresponse"

    @property
    def workload_identity_name(self) -> str:
        return f"{self.app_name}-{self.profile.value}-agent"

    def credential_provider_name(self, provider: ProviderConfig) -> str:
        """The AgentCore OAuth2 credential provider of `provider`: `<app>-<profile>-<name>`."""
        return f"{self.app_name}-{self.profile.value}-{provider.name}"

    @property
    def demo_providers(self) -> tuple[ProviderConfig, ...]:
        """The providers served by the in-stack demo authorization server (none: no demo server, no demo API)."""
        return tuple(p for p in self.providers if p.is_demo)

    @property
    def model_is_inference_profile(self) -> bool:
        return self.bedrock_model_id.startswith(INFERENCE_PROFILE_PREFIXES)


# --------------------------------------------------------------------------- readers


class _Context:
    """Typed readers over raw context values; blank strings count as unset."""

    def __init__(self, values: Mapping[str, Any], prefix: str = "") -> None:
        self._values = values
        self._prefix = prefix  # e.g. "providers[1]." for the keys of one entry of a list

    def path(self, key: str) -> str:
        """What an error names: the key, inside its entry when the values are one entry of a list."""
        return self._prefix + key

    def raw(self, key: str) -> Any:
        value = self._values.get(key)
        if isinstance(value, str) and value.strip() == "":
            return None
        return value

    def text(self, key: str, pattern: re.Pattern[str], expected: str, default: str | None = None) -> str:
        value = self.optional_text(key, pattern, expected)
        if value is None:
            if default is None:
                raise ConfigError(self.path(key), expected, missing=True)
            return default
        return value

    def optional_text(self, key: str, pattern: re.Pattern[str], expected: str) -> str | None:
        value = self.raw(key)
        if value is None:
            return None
        if not isinstance(value, str) or not pattern.fullmatch(value.strip()):
            raise ConfigError(self.path(key), expected, value)
        return value.strip()

    def choice(self, key: str, enum: type[T], default: T) -> T:
        value = self.raw(key)
        options = [m.value for m in enum]  # type: ignore[attr-defined]
        if value is None:
            return default
        if not isinstance(value, str) or value.strip() not in options:
            raise ConfigError(self.path(key), "one of " + ", ".join(options), value)
        return enum(value.strip())  # type: ignore[call-arg]

    def integer(self, key: str, low: int, high: int, default: int) -> int:
        value = self.raw(key)
        expected = f"a whole number from {low} to {high}"
        if value is None:
            return default
        if isinstance(value, bool):
            raise ConfigError(self.path(key), expected, value)
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
            value = int(value)
        if not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(self.path(key), expected, value)
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise ConfigError(self.path(key), "true or false", value)

    def text_list(self, key: str, check: Callable[[str], bool], expected: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, str):
            stripped = value.strip()
            if stripped.startswith("["):
                try:
                    value = json.loads(stripped)
                except json.JSONDecodeError:
                    raise ConfigError(self.path(key), expected, value) from None
            else:
                value = [part for part in re.split(r"[,\s]+", stripped) if part]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise ConfigError(self.path(key), expected, value)
        items = tuple(v.strip() for v in value)
        for item in items:
            if not check(item):
                raise ConfigError(self.path(key), expected, item)
        if len(set(items)) != len(items):
            raise ConfigError(self.path(key), expected + " without duplicates", value)
        return items


def _is_cidr(text: str) -> bool:
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError:
        return False
    return net.version == 4 and "/" in text


def _is_https_url(text: str) -> bool:
    parsed = urlparse(text)
    return parsed.scheme == "https" and bool(parsed.hostname) and not parsed.username and not parsed.fragment


# --------------------------------------------------------------------------- builder

CONTEXT_KEYS = frozenset(
    {
        "app_name",
        "profile",
        "account",
        "region",
        "domain_name",
        "hosted_zone_id",
        "hosted_zone_name",
        "certificate_arn",
        "auth_domain_prefix",
        "allowed_ingress_cidrs",
        "nat_gateways",
        "agent_min_tasks",
        "agent_max_tasks",
        "binding_min_tasks",
        "binding_max_tasks",
        "metrics_namespace",
        "alarm_email",
        "alarm_refusals_per_5min",
        "waf_enabled",
        "providers",
        "binding_mode",
        "binding_compute",
        "binding_require_state",
        "binding_state_param",
        "bedrock_model_id",
        "log_retention_days",
        "github_repository",
        "github_deploy_branch",
    }
)


_PROVIDERS_EXAMPLE = (
    'providers=[{"name": "github", "kind": "github", "display_name": "GitHub", "client_id": "...", "client_secret_name": "..."}]'
)
# The single-provider keys that `providers` replaced, and what to write instead (never "did you mean").
RETIRED_PROVIDER_KEYS: Mapping[str, str] = {
    "provider": "the 'providers' list instead",
    "provider_scopes": "'scopes' in an entry of the 'providers' list instead, each scope with what it allows in words",
    "provider_client_id": "'client_id' in an entry of the 'providers' list instead",
    "provider_client_secret_name": "'client_secret_name' in an entry of the 'providers' list instead",
    "provider_client_secret_json_key": "'client_secret_json_key' in an entry of the 'providers' list instead",
    "provider_discovery_url": "'discovery_url' in an entry of the 'providers' list instead",
    "microsoft_tenant_id": "'microsoft_tenant_id' in an entry of the 'providers' list instead",
}
PROVIDER_KEYS = (
    "name",
    "kind",
    "display_name",
    "scopes",
    "client_id",
    "client_secret_name",
    "client_secret_json_key",
    "discovery_url",
    "microsoft_tenant_id",
    "revoke_on_disconnect",
    "revocation_url",
)


def _is_cdk_internal(key: str) -> bool:
    """Feature flags (`@aws-cdk/...`) and CLI-provided keys (`aws:cdk:...`) are not ours."""
    return key.startswith("@") or ":" in key or key.startswith("cdk-") or key == "acknowledged-issue-numbers"


def load_config(context: Mapping[str, Any]) -> AppConfig:
    """Build and validate the configuration from all CDK context values (unknown keys are errors)."""
    _reject_retired_keys(context)
    _reject_unknown_keys(context)
    ctx = _Context(context)

    app_name = ctx.text("app_name", _APP_NAME, "3-20 lowercase letters, digits or '-', starting with a letter", "agentcore-ecs")
    profile = ctx.choice("profile", Profile, Profile.SANDBOX)
    account, region = _load_environment(ctx)
    domain_name, zone_id, zone_name, cert_arn = _load_domain(ctx, region)
    auth_domain_prefix = _load_auth_domain_prefix(ctx, app_name)
    cidrs = _load_ingress_cidrs(ctx)
    nat_gateways = ctx.integer("nat_gateways", 1, 2, 1 if profile is Profile.SANDBOX else 2)
    waf_enabled = ctx.boolean("waf_enabled", True)

    providers = _load_providers(ctx)
    binding_mode = ctx.choice("binding_mode", BindingMode, BindingMode.SAME_BROWSER)
    binding_compute = ctx.choice("binding_compute", BindingCompute, BindingCompute.FARGATE)
    agent_scaling = _task_bounds(ctx, "agent", profile)
    binding_scaling = _binding_scaling(ctx, binding_compute, profile)
    require_state = ctx.boolean("binding_require_state", True)
    state_param = _load_state_param(ctx)
    model_id = ctx.text(
        "bedrock_model_id", _MODEL_ID, "a Bedrock model or inference profile id such as us.anthropic.claude-haiku-4-5-20251001-v1:0"
    )
    retention = _load_retention(ctx, profile)
    github_repository, github_branch = _load_github(ctx)

    return AppConfig(
        app_name=app_name,
        profile=profile,
        account=account,
        region=region,
        domain_name=domain_name,
        hosted_zone_id=zone_id,
        hosted_zone_name=zone_name,
        certificate_arn=cert_arn,
        auth_domain_prefix=auth_domain_prefix,
        allowed_ingress_cidrs=cidrs,
        nat_gateways=nat_gateways,
        agent_scaling=agent_scaling,
        binding_scaling=binding_scaling,
        waf_enabled=waf_enabled,
        providers=providers,
        binding_mode=binding_mode,
        binding_compute=binding_compute,
        binding_require_state=require_state,
        binding_state_param=state_param,
        bedrock_model_id=model_id,
        log_retention_days=retention,
        github_repository=github_repository,
        github_deploy_branch=github_branch,
        alarms=_load_alarms(ctx, app_name, profile),
    )


def _reject_retired_keys(context: Mapping[str, Any]) -> None:
    for key in sorted(context):
        if key in RETIRED_PROVIDER_KEYS:
            # Never echoed: a value typed for an old key may be a client id or secret name someone keeps private.
            raise ConfigError(key, f"{RETIRED_PROVIDER_KEYS[key]}, e.g. {_PROVIDERS_EXAMPLE}", echo=False)


def _reject_unknown_keys(context: Mapping[str, Any]) -> None:
    for key in sorted(context):
        if not _is_cdk_internal(key) and key not in CONTEXT_KEYS:
            first = key.split("_")[0]
            close = [k for k in sorted(CONTEXT_KEYS) if k.split("_")[0] in (first, first + "s")]
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            # The value of a key we do not know is never repeated: it may be a secret typed in the wrong place.
            raise ConfigError(key, "a known configuration key" + hint, echo=False)


def _load_environment(ctx: _Context) -> tuple[str | None, str | None]:
    """Account and region, both or neither (environment-agnostic)."""
    account = ctx.optional_text("account", _ACCOUNT, "a 12-digit AWS account id")
    region = ctx.optional_text("region", _REGION, "an AWS region name such as us-east-1")
    if (account is None) != (region is None):
        missing = "region" if region is None else "account"
        raise ConfigError(missing, "set together with the other one (or neither, for an environment-agnostic synth)", missing=True)
    if region is not None and (expected := region_not_offered(region)) is not None:
        raise ConfigError("region", expected, region)
    return account, region


def partition_of(region: str) -> str | None:
    """The AWS partition a region name belongs to, or None for a name no partition claims."""
    return next((name for name, pattern in _PARTITIONS if pattern.fullmatch(region)), None)


def region_not_offered(region: str) -> str | None:
    """What a region must be when the ALB's Cognito sign-in or AgentCore Identity is not offered in `region`
    (see SUPPORTED_REGIONS); None when both are."""
    choices = "one of " + ", ".join(SUPPORTED_REGIONS)
    partition = partition_of(region)
    if partition != "aws":
        where = f"partition {partition}" if partition else "no known partition"
        return f"a region of the aws partition, the only one where the ALB guide lists Cognito sign-in ({region} is in {where}): {choices}"
    if region not in ALB_COGNITO_REGIONS:
        return f"a region where the ALB offers Cognito sign-in (authenticate-cognito is not offered in {region}): {choices}"
    if region not in AGENTCORE_IDENTITY_REGIONS:
        return f"a region where AgentCore Identity is offered (it is not offered in {region}): {choices}"
    return None


def _load_auth_domain_prefix(ctx: _Context, app_name: str) -> str | None:
    """The Cognito hosted-domain prefix; unset, the app name prefixes the domains, so Cognito's reserved words are refused there."""
    auth_domain_prefix = ctx.optional_text(
        "auth_domain_prefix", _DOMAIN_PREFIX, "at most 55 lowercase letters, digits and '-' (Cognito hosted-domain prefix)"
    )
    if auth_domain_prefix is not None and _RESERVED_IN_DOMAIN_PREFIX.search(auth_domain_prefix):
        raise ConfigError("auth_domain_prefix", "a prefix without 'aws', 'amazon' or 'cognito' (Cognito reserves them)", auth_domain_prefix)
    if auth_domain_prefix is None and _RESERVED_IN_DOMAIN_PREFIX.search(app_name):
        raise ConfigError(
            "app_name", "a name without 'aws', 'amazon' or 'cognito' (it prefixes the Cognito domains), or set auth_domain_prefix", app_name
        )
    return auth_domain_prefix


def _load_ingress_cidrs(ctx: _Context) -> tuple[str, ...]:
    cidrs = ctx.text_list("allowed_ingress_cidrs", _is_cidr, 'a list of IPv4 CIDRs such as ["203.0.113.0/24"]', ("0.0.0.0/0",))
    if len(cidrs) > MAX_INGRESS_CIDRS:
        raise ConfigError("allowed_ingress_cidrs", f"at most {MAX_INGRESS_CIDRS} CIDRs (use a wider range or a WAF IP set)", len(cidrs))
    return cidrs


def _binding_scaling(ctx: _Context, binding_compute: BindingCompute, profile: Profile) -> TaskBounds:
    """The binding service's task bounds; on Lambda they must be unset (and the defaults go unused)."""
    if binding_compute is BindingCompute.LAMBDA:
        for key in ("binding_min_tasks", "binding_max_tasks"):
            if ctx.raw(key) is not None:
                raise ConfigError(key, "unset when binding_compute is 'lambda' (Lambda scales by itself)", ctx.raw(key))
    return _task_bounds(ctx, "binding", profile)


def _load_retention(ctx: _Context, profile: Profile) -> int:
    retention = ctx.integer("log_retention_days", 1, 3653, 30 if profile is Profile.SANDBOX else 365)
    if retention not in LOG_RETENTION_DAYS:
        raise ConfigError("log_retention_days", "one of CloudWatch's periods: " + ", ".join(map(str, LOG_RETENTION_DAYS)), retention)
    return retention


def _task_bounds(ctx: _Context, service: str, profile: Profile) -> TaskBounds:
    """Autoscaling bounds of one Fargate service: at least one task, and a maximum not below the minimum."""
    sandbox = profile is Profile.SANDBOX
    min_tasks = ctx.integer(f"{service}_min_tasks", 1, 20, 1 if sandbox else 2)
    max_tasks = ctx.integer(f"{service}_max_tasks", 1, 50, max(min_tasks, 2 if sandbox else 6))
    if max_tasks < min_tasks:
        raise ConfigError(f"{service}_max_tasks", f"at least {service}_min_tasks ({min_tasks})", max_tasks)
    return TaskBounds(min_tasks=min_tasks, max_tasks=max_tasks)


def _load_state_param(ctx: _Context) -> str:
    """The query parameter AgentCore echoes customState in, on its redirect to the session binding URL."""
    expected = "1-64 letters, digits or _ . - naming the query parameter that carries AgentCore's echo of customState"
    param = ctx.text("binding_state_param", _QUERY_PARAM, expected, "state")
    if param == SESSION_ID_PARAM:
        raise ConfigError("binding_state_param", f"a parameter other than {SESSION_ID_PARAM} (AgentCore puts the session URI there)", param)
    return param


def _load_alarms(ctx: _Context, app_name: str, profile: Profile) -> AlarmConfig:
    namespace = ctx.text(
        "metrics_namespace",
        _NAMESPACE,
        "a CloudWatch namespace: 1-255 letters, digits or . - _ / # : and not starting with AWS/",
        f"{app_name}/{profile.value}",
    )
    email = ctx.optional_text("alarm_email", _EMAIL, "an email address to send alarms to, such as ops@example.com")
    refusals = ctx.integer("alarm_refusals_per_5min", 1, 100_000, 50)
    return AlarmConfig(metrics_namespace=namespace, email=email, refusals_per_5min=refusals)


def _load_domain(ctx: _Context, region: str | None) -> tuple[str, str | None, str | None, str | None]:
    """The public name and how its TLS certificate is obtained: a hosted zone, or an ACM ARN."""
    domain_name = ctx.text("domain_name", _DOMAIN, "the lowercase DNS name users open, such as agent.example.com")
    zone_id = ctx.optional_text("hosted_zone_id", _ZONE_ID, "a Route 53 hosted zone id such as Z0123456789ABCDEFGHIJ")
    zone_name = ctx.optional_text("hosted_zone_name", _DOMAIN, "the hosted zone's DNS name such as example.com")
    cert_arn = ctx.optional_text("certificate_arn", _CERT_ARN, "an ACM certificate ARN")
    if (zone_id is None) != (zone_name is None):
        key = "hosted_zone_name" if zone_name is None else "hosted_zone_id"
        raise ConfigError(key, "hosted_zone_id and hosted_zone_name set together", missing=True)
    if zone_id is None and cert_arn is None:
        raise ConfigError(
            "certificate_arn", "an ACM certificate ARN, or hosted_zone_id + hosted_zone_name so a certificate is issued", missing=True
        )
    if zone_id is not None and cert_arn is not None:
        raise ConfigError("certificate_arn", "either certificate_arn or hosted_zone_id/hosted_zone_name, not both", cert_arn)
    if len(domain_name) > MAX_CERTIFICATE_NAME:
        raise ConfigError("domain_name", f"at most {MAX_CERTIFICATE_NAME} characters (the limit of an ACM certificate name)", domain_name)
    if zone_name is not None and not (domain_name == zone_name or domain_name.endswith("." + zone_name)):
        raise ConfigError("domain_name", f"a name inside hosted zone {zone_name}", domain_name)
    if cert_arn is not None and region is not None and cert_arn.split(":")[3] != region:
        raise ConfigError("certificate_arn", f"a certificate in the deployment region {region}", cert_arn)

    return domain_name, zone_id, zone_name, cert_arn


def _load_github(ctx: _Context) -> tuple[str | None, str]:
    """The repository (and branch) whose GitHub Actions may deploy; unset means no deploy-role stack."""
    repository = ctx.optional_text("github_repository", _GITHUB_REPOSITORY, "a GitHub repository as owner/repo, such as octo-org/agent")
    branch = ctx.text("github_deploy_branch", _GIT_BRANCH, "a git branch name such as main (no wildcards)", "main")
    if repository is None and ctx.raw("github_deploy_branch") is not None:
        raise ConfigError("github_deploy_branch", "unset unless github_repository is set", branch)
    return repository, branch


# --------------------------------------------------------------------------- providers


def _load_providers(ctx: _Context) -> tuple[ProviderConfig, ...]:
    """`providers`: a JSON list (cdk.json) or its string spelling (`-c providers='[...]'`), one object per provider."""
    entries = _provider_entries(ctx.raw("providers"))
    providers = tuple(_load_provider(i, entry) for i, entry in enumerate(entries))
    _check_distinct(providers)
    return providers


def _provider_entries(value: Any) -> list[Any]:
    expected = f"a JSON list of provider objects, e.g. {_PROVIDERS_EXAMPLE}"
    if value is None:
        return [dict(entry) for entry in DEFAULT_PROVIDERS]
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            # Not echoed: a malformed list may hold anything, a secret typed into the wrong key among it.
            raise ConfigError("providers", expected + " (it is not valid JSON)", echo=False) from None
    if not isinstance(value, list):
        raise ConfigError("providers", expected, echo=False)
    if not value:
        raise ConfigError("providers", "at least one provider, " + expected, missing=True)
    if len(value) > MAX_PROVIDERS:
        # AgentCore holds 50 OAuth2 credential providers per account and region (quota L-431051DC); ten per deployment.
        raise ConfigError("providers", f"at most {MAX_PROVIDERS} providers", len(value))
    return value


def _load_provider(index: int, entry: Any) -> ProviderConfig:
    path = f"providers[{index}]"
    if not isinstance(entry, dict):
        raise ConfigError(path, "an object with name, kind, display_name and (for kind demo) scopes", echo=False)
    for key in entry:
        if key not in PROVIDER_KEYS:
            # Never echoed: an unknown key may be a client secret typed in the wrong place.
            raise ConfigError(f"{path}.{key}", "one of the provider keys " + ", ".join(PROVIDER_KEYS), echo=False)
    ctx = _Context(entry, prefix=f"{path}.")
    name = ctx.text("name", _PROVIDER_NAME, "1-20 lowercase letters, digits or '-', starting with a letter")
    if ctx.raw("kind") is None:
        raise ConfigError(ctx.path("kind"), "one of " + ", ".join(k.value for k in Provider), missing=True)
    kind = ctx.choice("kind", Provider, Provider.DEMO)
    client_id, secret_name, json_key, discovery_url, tenant = _provider_client(ctx, kind)
    revoke, revocation_url = _provider_revocation(ctx, kind, secret_name)
    return ProviderConfig(
        name=name,
        kind=kind,
        display_name=_words(ctx, "display_name", 40, "the name people read, such as GitHub"),
        scopes=_provider_scopes(ctx, kind),
        client_id=client_id,
        client_secret_name=secret_name,
        client_secret_json_key=json_key,
        discovery_url=discovery_url,
        microsoft_tenant_id=tenant,
        revoke_on_disconnect=revoke,
        revocation_url=revocation_url,
    )


def _words(ctx: _Context, key: str, limit: int, what: str) -> str:
    """Text people read: 1-`limit` printable characters, without surrounding blanks."""
    value = ctx.raw(key)
    expected = f"{what}: 1-{limit} printable characters"
    if value is None:
        raise ConfigError(ctx.path(key), expected, missing=True)
    if not isinstance(value, str) or not 1 <= len(value.strip()) <= limit or not value.isprintable():
        raise ConfigError(ctx.path(key), expected, value)
    return value.strip()


def _provider_scopes(ctx: _Context, kind: Provider) -> tuple[tuple[str, str], ...]:
    """Each scope with what it allows in words; a vendor's defaults when unset (a demo provider names its own)."""
    key = ctx.path("scopes")
    demo_scopes = [f"{DEMO_RESOURCE_SERVER_ID}/{name}" for name in DEMO_API_SCOPES]
    example = '{"demo-api/notes.read": "Read your notes"}' if kind is Provider.DEMO else '{"read:user": "See your GitHub profile"}'
    expected = f"an object mapping each OAuth scope to what it allows in 1-100 printable characters, e.g. {example}"
    value = ctx.raw("scopes")
    if value is None and kind is not Provider.DEMO:
        return tuple((scope, DEFAULT_SCOPE_WORDS[scope]) for scope in DEFAULT_SCOPES[kind])
    if value is None:
        raise ConfigError(key, expected + " (a demo provider names its scopes)", missing=True)
    if not isinstance(value, dict) or not value:
        raise ConfigError(key, expected, value)
    scopes = []
    for scope, words in value.items():
        if not isinstance(scope, str) or not _SCOPE.fullmatch(scope):
            raise ConfigError(key, expected, scope)
        if not isinstance(words, str) or not 1 <= len(words.strip()) <= 100 or not words.isprintable():
            raise ConfigError(key, f"1-100 printable characters saying what {scope} allows", words)
        if kind is Provider.DEMO and scope not in demo_scopes:
            raise ConfigError(key, "scopes of the demo resource server: " + ", ".join(demo_scopes), scope)
        scopes.append((scope, words.strip()))
    return tuple(scopes)


def _provider_client(ctx: _Context, kind: Provider) -> tuple[str | None, str | None, str, str | None, str | None]:
    """AgentCore's client at the provider: none for kind demo (generated in-stack), else an id and a secret by name."""
    client_id = ctx.optional_text("client_id", _CLIENT_ID, "the OAuth client id registered at the provider")
    secret_name = ctx.optional_text("client_secret_name", _SECRET_NAME, "the Secrets Manager name of the provider's client secret")
    json_key_set = ctx.raw("client_secret_json_key") is not None
    json_key = ctx.text("client_secret_json_key", _JSON_KEY, "the JSON key that holds the client secret in that secret", "client_secret")
    discovery_url = ctx.raw("discovery_url")
    tenant = ctx.optional_text("microsoft_tenant_id", _TENANT, "an Entra ID tenant id or domain")

    if kind is Provider.DEMO:
        generated = (
            ("client_id", client_id),
            ("client_secret_name", secret_name),
            ("client_secret_json_key", json_key if json_key_set else None),
        )
        for key, value in generated:
            if value is not None:
                raise ConfigError(ctx.path(key), "unset for kind 'demo' (the demo authorization server's client is generated)", value)
    else:
        if client_id is None:
            raise ConfigError(ctx.path("client_id"), f"the OAuth client id registered at {kind.value}", missing=True)
        if secret_name is None:
            expected = f"the Secrets Manager secret name holding the {kind.value} client secret as JSON"
            raise ConfigError(ctx.path("client_secret_name"), expected, missing=True)
    if kind is Provider.CUSTOM_OIDC:
        if discovery_url is None:
            raise ConfigError(ctx.path("discovery_url"), "the https OpenID discovery URL of the custom provider", missing=True)
        if not isinstance(discovery_url, str) or not _is_https_url(discovery_url) or not discovery_url.endswith(_DISCOVERY_SUFFIX):
            raise ConfigError(ctx.path("discovery_url"), f"an https URL ending in {_DISCOVERY_SUFFIX}", discovery_url)
    elif discovery_url is not None:
        raise ConfigError(ctx.path("discovery_url"), "unset unless kind is 'custom-oidc'", discovery_url)
    if tenant is not None and kind is not Provider.MICROSOFT:
        raise ConfigError(ctx.path("microsoft_tenant_id"), "unset unless kind is 'microsoft'", tenant)
    return client_id, secret_name, json_key, discovery_url, tenant


# Why `revoke_on_disconnect` may not be true for a kind (google and slack may not set it at all).
_NO_CLIENT_REVOCATION: Mapping[Provider, str] = {
    Provider.DEMO: "false for kind demo: Cognito's revocation endpoint takes refresh tokens only, which only AgentCore holds",
    Provider.MICROSOFT: "false for kind microsoft: it has no revocation endpoint",
}
_TOKEN_ONLY_REVOCATION = (Provider.GOOGLE, Provider.SLACK)
# A secret name ending in '-' and six characters: as a partial ARN, Secrets Manager takes those for the random suffix.
_SUFFIX_LIKE = re.compile(r"-[A-Za-z0-9]{6}$")


def _provider_revocation(ctx: _Context, kind: Provider, secret_name: str | None) -> tuple[bool, str | None]:
    """`revoke_on_disconnect` (off by default) and, for custom-oidc with it on, `revocation_url` (RFC 7009)."""
    key = ctx.path("revoke_on_disconnect")
    if kind in _TOKEN_ONLY_REVOCATION and ctx.raw("revoke_on_disconnect") is not None:
        raise ConfigError(key, f"unset for kind {kind.value} (it revokes with the token alone, always)", ctx.raw("revoke_on_disconnect"))
    revoke = ctx.boolean("revoke_on_disconnect", False)
    if revoke and kind in _NO_CLIENT_REVOCATION:
        raise ConfigError(key, _NO_CLIENT_REVOCATION[kind], revoke)
    url = ctx.raw("revocation_url")
    url_key = ctx.path("revocation_url")
    if kind is Provider.CUSTOM_OIDC and revoke:
        expected = "the provider's RFC 7009 revocation endpoint (its discovery document's revocation_endpoint): an https URL without query or fragment"
        if url is None:
            raise ConfigError(url_key, expected, missing=True)
        if not isinstance(url, str) or not _is_https_url(url.strip()) or "?" in url or "#" in url:
            raise ConfigError(url_key, expected, url)
        url = url.strip()
    elif url is not None:
        where = (
            "for kind github (its grant API URL is known)"
            if kind is Provider.GITHUB
            else "unless kind is 'custom-oidc' with revoke_on_disconnect true"
        )
        raise ConfigError(url_key, f"unset {where}", url)
    if revoke and secret_name is not None and _SUFFIX_LIKE.search(secret_name):
        expected = "a name not ending in '-' and six letters or digits when revoke_on_disconnect is true (the agent reads the secret by its partial ARN, and Secrets Manager would take those for the ARN's random suffix)"
        raise ConfigError(ctx.path("client_secret_name"), expected, secret_name)
    return revoke, url


def _check_distinct(providers: tuple[ProviderConfig, ...]) -> None:
    """Names (and the construct ids made of them) and display names tell the providers apart."""
    for index, provider in enumerate(providers):
        for earlier_index, earlier in enumerate(providers[:index]):
            where = f"providers[{earlier_index}]"
            if provider.name == earlier.name:
                raise ConfigError(f"providers[{index}].name", f"a name no other provider has ({where} has it)", provider.name)
            if provider.id_part == earlier.id_part:
                expected = f"a name that differs from {where}'s ({earlier.name}) in more than its '-'"
                raise ConfigError(f"providers[{index}].name", expected, provider.name)
            if provider.display_name.casefold() == earlier.display_name.casefold():
                expected = f"a display name no other provider has ({where} has it)"
                raise ConfigError(f"providers[{index}].display_name", expected, provider.display_name)
