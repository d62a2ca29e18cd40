"""AgentCore Identity: the agent's workload identity and an OAuth2 credential provider per configured provider, on
the stable L2 constructs of `aws_cdk.aws_bedrockagentcore` (aws-cdk-lib 2.275.0).

What the L2 gives, and what it does not (read from the installed library's
`aws-bedrockagentcore/lib/identity/*.js`):
- `WorkloadIdentity` writes `Name`, `AllowedResourceOauth2ReturnUrls` and `Tags` into a `CfnWorkloadIdentity`
  with child id `Resource`: exactly today's resource, at the same construct path and logical id.
- `OAuth2CredentialProvider`'s constructor passes `oauth2_provider_config_input` (the L1 property type) through
  unchanged, also as child `Resource`. Its vendor factories (`using_github/google/microsoft/slack/custom`) are
  not used: each builds `{clientId, clientSecret: props.clientSecret.unsafeUnwrap()}`, a service-managed secret
  whose value is written into the template, and none can set `ClientSecretSource: EXTERNAL` with a
  `ClientSecretConfig` (secret id and JSON key) or `using_custom`'s `ClientAuthenticationMethod`. The vendor
  block is therefore built below from the L1 property types and handed to the L2 constructor.
- Grants: the L2's `grant_use` is not used for the service roles. `OAuth2CredentialProvider.grant_use` grants
  `GetResourceOauth2Token` together with `CompleteResourceTokenAuth`, on `…/workload-identity/*` and
  `token-vault/default/oauth2credentialprovider` besides the exact ARNs, and `WorkloadIdentity.grant_use` adds
  `GetWorkloadAccessToken` and `…ForJWT`. The agent may only read tokens and the session binding service may
  only complete consents, each on the exact ARNs in `AgentCoreArns` (docs/security/iam.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aws_cdk import (
    Aws,
    Stack,
    aws_bedrockagentcore as agentcore,
)
from constructs import Construct

from cdk_app.config import Provider, ProviderConfig
from stacks.constructs.lifecycle import Lifecycle

_VENDOR = agentcore.OAuth2CredentialProviderVendor
_VENDORS = {
    Provider.DEMO: _VENDOR.CUSTOM,
    Provider.CUSTOM_OIDC: _VENDOR.CUSTOM,
    Provider.GITHUB: _VENDOR.GITHUB,
    Provider.GOOGLE: _VENDOR.GOOGLE,
    Provider.MICROSOFT: _VENDOR.MICROSOFT,
    Provider.SLACK: _VENDOR.SLACK,
}


@dataclass(frozen=True)
class AgentCoreArns:
    """Exact ARNs for AgentCore Identity IAM statements (service authorization reference shapes): one workload
    identity, and each configured provider's credential provider in config order."""

    workload_identity_directory: str
    workload_identity: str
    token_vault: str
    credential_providers: tuple[str, ...]

    @classmethod
    def for_names(cls, stack: Stack, *, workload_identity_name: str, credential_provider_names: Sequence[str]) -> AgentCoreArns:
        base = f"arn:{Aws.PARTITION}:bedrock-agentcore:{stack.region}:{stack.account}"
        directory = f"{base}:workload-identity-directory/default"
        vault = f"{base}:token-vault/default"
        return cls(
            workload_identity_directory=directory,
            workload_identity=f"{directory}/workload-identity/{workload_identity_name}",
            token_vault=vault,
            credential_providers=tuple(f"{vault}/oauth2credentialprovider/{name}" for name in credential_provider_names),
        )

    @property
    def for_outbound_tokens(self) -> list[str]:
        """Resources GetResourceOauth2Token and CompleteResourceTokenAuth are authorized against: every configured
        credential provider by exact ARN, no other."""
        return [self.workload_identity_directory, self.workload_identity, self.token_vault, *self.credential_providers]


class AgentWorkloadIdentity(agentcore.WorkloadIdentity):
    """The agent's identity in AgentCore; the only return URL it accepts is our session binding URL."""

    def __init__(self, scope: Construct, construct_id: str, *, name: str, session_binding_url: str, lifecycle: Lifecycle) -> None:
        super().__init__(scope, construct_id, workload_identity_name=name, allowed_resource_oauth2_return_urls=[session_binding_url])
        # The token vault keys consents by workload identity: deleting it in prod would make every user consent again.
        self.apply_removal_policy(lifecycle.removal_policy)


@dataclass(frozen=True)
class ClientSecretRef:
    """Where the OAuth client secret lives: our own Secrets Manager secret (source EXTERNAL)."""

    secret_id: str  # what the credential provider references: the full ARN, or the secret's name
    json_key: str
    iam_arn: str  # exact ARN for IAM; a secret known by name gets the `-??????` suffix wildcard
    # What code reads it by (GetSecretValue's SecretId): the full ARN, or for a secret known by name its partial ARN
    # (no suffix), which Secrets Manager matches to that one secret.
    read_arn: str


class OAuthCredentialProvider(agentcore.OAuth2CredentialProvider):
    """AgentCore's OAuth2 client for the external authorization server (`callback_url`: AgentCore's
    `…/identities/oauth2/callback/<id>`, to register at the provider)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        provider: ProviderConfig,
        client_id: str,
        client_secret: ClientSecretRef,
        discovery_url: str | None,
        lifecycle: Lifecycle,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            o_auth2_credential_provider_name=name,
            credential_provider_vendor=_VENDORS[provider.kind].value,
            oauth2_provider_config_input=_provider_config(provider, client_id, client_secret, discovery_url),
        )
        self.client_secret = client_secret
        self.apply_removal_policy(lifecycle.removal_policy)


def _provider_config(
    provider: ProviderConfig, client_id: str, client_secret: ClientSecretRef, discovery_url: str | None
) -> agentcore.CfnOAuth2CredentialProvider.Oauth2ProviderConfigInputProperty:
    """The vendor's config block; the client secret stays ours (EXTERNAL), referenced by id and JSON key."""
    secret_input: dict[str, Any] = {
        "client_id": client_id,
        "client_secret_source": "EXTERNAL",
        "client_secret_config": agentcore.CfnOAuth2CredentialProvider.SecretReferenceProperty(
            secret_id=client_secret.secret_id, json_key=client_secret.json_key
        ),
    }
    C = agentcore.CfnOAuth2CredentialProvider
    config: agentcore.CfnOAuth2CredentialProvider.Oauth2ProviderConfigInputProperty
    if provider.kind in (Provider.DEMO, Provider.CUSTOM_OIDC):
        assert discovery_url is not None
        config = C.Oauth2ProviderConfigInputProperty(
            custom_oauth2_provider_config=C.CustomOauth2ProviderConfigInputProperty(
                oauth_discovery=C.Oauth2DiscoveryProperty(discovery_url=discovery_url),
                client_authentication_method="CLIENT_SECRET_BASIC",
                **secret_input,
            )
        )
    elif provider.kind is Provider.GITHUB:
        config = C.Oauth2ProviderConfigInputProperty(
            github_oauth2_provider_config=C.GithubOauth2ProviderConfigInputProperty(**secret_input)
        )
    elif provider.kind is Provider.GOOGLE:
        config = C.Oauth2ProviderConfigInputProperty(
            google_oauth2_provider_config=C.GoogleOauth2ProviderConfigInputProperty(**secret_input)
        )
    elif provider.kind is Provider.MICROSOFT:
        config = C.Oauth2ProviderConfigInputProperty(
            microsoft_oauth2_provider_config=C.MicrosoftOauth2ProviderConfigInputProperty(
                tenant_id=provider.microsoft_tenant_id, **secret_input
            )
        )
    else:
        config = C.Oauth2ProviderConfigInputProperty(slack_oauth2_provider_config=C.SlackOauth2ProviderConfigInputProperty(**secret_input))
    return config
