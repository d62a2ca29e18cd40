"""Where a `Target`'s inputs come from: the command line, the deployed stacks' outputs, AgentCore.

Two ways in, one result. With `--url`, everything is explicit (the local demo passes its issuers,
the emulator's endpoint and keys, and a demo user). Without it, the stack outputs name the URL and
the user pools, the caller's AWS credentials reach AgentCore, and the temporary user is created in
Cognito. In both, the consent client and the callback URL are read from the credential provider
(`GetOauth2CredentialProvider`) unless given: that of `--provider-name`, else of the first configured
provider, asking for that provider's scopes unless `--scope` says otherwise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from cdk_app.config import AppConfig, ProviderConfig
from deploy.aws_clients import AwsClients
from deploy.outputs import read_outputs
from deploy.verify.target import DEFAULT_CHROMIUM, DEFAULT_QUESTION, AgentCoreAccess, ConsentClient, Target
from deploy.verify.users import given_person, temporary_cognito_user

LOCAL_REGION = "us-east-1"  # what an endpoint of one's own is signed for when no region is given


@dataclass(frozen=True)
class Explicit:
    """What the command line gave; None means "find it" (or, failing that, skip what needs it)."""

    url: str | None = None
    sign_in_issuer: str | None = None
    agentcore_endpoint: str | None = None
    agentcore_keys: tuple[str, str] | None = field(default=None, repr=False)
    workload_name: str | None = None
    provider_name: str | None = None
    state_param: str | None = None
    client_id: str | None = None
    callback_url: str | None = None
    consent_issuer: str | None = None
    scope: str | None = None  # None: the checked provider's configured scopes
    user: tuple[str, str] | None = field(default=None, repr=False)
    question: str = DEFAULT_QUESTION


def _chromium() -> Path:
    return Path(os.environ.get("CHROMIUM_PATH") or DEFAULT_CHROMIUM)


def _why(error: Exception) -> str:
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", "Unknown"))
    return type(error).__name__


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def agentcore_access(
    given: Explicit, aws: AwsClients | None, region: str | None = None, *, from_outputs: bool = False
) -> tuple[AgentCoreAccess | None, str]:
    """The emulator's endpoint with the keys given, or the caller's AWS session; else why neither. A URL on
    this machine never gets the AWS session: its AgentCore is the demo's emulator."""
    if given.agentcore_endpoint:
        if given.agentcore_keys is None:
            return None, "--agentcore-endpoint needs --agentcore-access-key-id and --agentcore-secret-access-key"
        key_id, secret = given.agentcore_keys
        session = boto3.Session(aws_access_key_id=key_id, aws_secret_access_key=secret)
        return AgentCoreAccess(session, region or (aws.region if aws else None) or LOCAL_REGION, given.agentcore_endpoint), ""
    if given.url and is_loopback(given.url) and not from_outputs:
        return None, "a URL on this machine: give --agentcore-endpoint and its keys (`make demo` keeps them in .demo/verify.args)"
    if aws is None or not aws.region:
        return None, "no AWS region for AgentCore: set AWS_REGION or pass -c region=..."
    return AgentCoreAccess(aws.session, aws.region, aws.endpoint_url), ""


def checked_provider(given: Explicit, config: AppConfig) -> tuple[str, ProviderConfig | None]:
    """The credential provider the checks use (`--provider-name`, else the first configured), and its configuration."""
    name = given.provider_name or config.credential_provider_name(config.providers[0])
    return name, next((p for p in config.providers if config.credential_provider_name(p) == name), None)


def consent_client(
    given: Explicit, agentcore: AgentCoreAccess | None, provider_name: str, scope: str = "openid"
) -> tuple[ConsentClient | None, str]:
    """The client id, callback URL and provider's endpoint: as given, else from the credential provider."""
    if given.client_id and given.callback_url and given.consent_issuer:
        return ConsentClient(given.client_id, given.callback_url, discovery_url=given.consent_issuer, scope=scope), ""
    if agentcore is None:
        return None, "give --client-id, --callback-url and --consent-issuer, or a way to reach AgentCore"
    try:
        provider = agentcore.client("bedrock-agentcore-control").get_oauth2_credential_provider(name=provider_name)
    except (ClientError, BotoCoreError) as error:
        return (
            None,
            f"GetOauth2CredentialProvider {provider_name} failed ({_why(error)}): give --client-id, --callback-url, --consent-issuer",
        )
    return _from_provider(given, provider, scope), ""


def _from_provider(given: Explicit, provider: dict[str, Any], scope: str) -> ConsentClient:
    outputs = provider.get("oauth2ProviderConfigOutput", {})
    config: dict[str, Any] = next(iter(outputs.values()), {}) if isinstance(outputs, dict) else {}
    discovery = config.get("oauthDiscovery", {})
    metadata = discovery.get("authorizationServerMetadata") or {}
    return ConsentClient(
        client_id=given.client_id or str(config.get("clientId", "")),
        callback_url=given.callback_url or str(provider.get("callbackUrl", "")),
        authorization_endpoint=None if given.consent_issuer else metadata.get("authorizationEndpoint"),
        discovery_url=given.consent_issuer or discovery.get("discoveryUrl"),
        scope=scope,
    )


def from_arguments(
    given: Explicit, config: AppConfig, aws: AwsClients | None, *, region: str | None = None, from_outputs: bool = False
) -> Target:
    """`--url` and the rest as given; names not given are the config's (cdk.json and -c)."""
    if given.url is None:
        raise ValueError("from_arguments needs --url")
    agentcore, why_agentcore = agentcore_access(given, aws, region, from_outputs=from_outputs)
    provider_name, provider = checked_provider(given, config)
    # A demo client may ask for its own scopes only: the request carries the provider's, unless --scope is given.
    scope = given.scope or (" ".join(provider.scope_names) if provider else "openid")
    consent, why_consent = consent_client(given, agentcore, provider_name, scope)
    people = given_person(*given.user) if given.user else None
    return Target(
        where=given.url + (f" (AgentCore at {given.agentcore_endpoint})" if given.agentcore_endpoint else ""),
        url=given.url.rstrip("/"),
        workload_name=given.workload_name or config.workload_identity_name,
        provider_name=provider_name,
        state_param=given.state_param or config.binding_state_param,
        question=given.question,
        chromium=_chromium(),
        sign_in_issuer=given.sign_in_issuer,
        agentcore=agentcore,
        consent=consent,
        people=people,
        missing={
            "agentcore": why_agentcore,
            "consent": why_consent,
            "people": "give --user and --password: a user at both the sign-in issuer and the provider",
            "sign_in_issuer": "no --sign-in-issuer",
        },
    )


def from_outputs(given: Explicit, config: AppConfig, aws: AwsClients) -> Target:
    """The deployed stacks: outputs for the URL and pools, Cognito for a temporary user."""
    outputs = read_outputs(aws, config)
    region = str(aws.region)
    target = from_arguments(replace(given, url=outputs.agent_url), config, aws, from_outputs=True)
    people, why_people = target.people, ""
    _, provider = checked_provider(given, config)
    if people is None and provider is not None and provider.is_demo and outputs.demo_user_pool_id:
        pools = [outputs.sign_in_user_pool_id, outputs.demo_user_pool_id]
        people = temporary_cognito_user(aws.client("cognito-idp"), pools)
    elif people is None:
        kind = provider.kind.value if provider else "not in the config"
        why_people = f"provider {target.provider_name} ({kind}): give --user and --password of a person who may sign in there"
    return replace(
        target,
        where=f"{_account(aws)} in {region}, {outputs.agent_url}",
        sign_in_issuer=given.sign_in_issuer or f"https://cognito-idp.{region}.amazonaws.com/{outputs.sign_in_user_pool_id}",
        people=people,
        missing={**target.missing, "people": why_people or target.why_missing("people")},
    )


def _account(aws: AwsClients) -> str:
    try:
        return f"account {aws.client('sts').get_caller_identity()['Account']}"
    except (ClientError, BotoCoreError):
        return "the caller's account"
