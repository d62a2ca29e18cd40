"""AgentCore Identity: the agent's workload identity, its OAuth2 credential provider, and the
registration of AgentCore's callback URL at the demo authorization server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import (
    Aws,
    RemovalPolicy,
    Stack,
    aws_bedrockagentcore as agentcore,
    aws_cognito as cognito,
    aws_iam as iam,
    aws_kms as kms,
    aws_logs as logs,
    custom_resources as cr,
)
from constructs import Construct

from cdk_app.config import Provider, ProviderConfig
from stacks.constructs.lifecycle import Lifecycle
from stacks.constructs.nag import acknowledge

_VENDORS = {
    Provider.DEMO: "CustomOauth2",
    Provider.CUSTOM_OIDC: "CustomOauth2",
    Provider.GITHUB: "GithubOauth2",
    Provider.GOOGLE: "GoogleOauth2",
    Provider.MICROSOFT: "MicrosoftOauth2",
    Provider.SLACK: "SlackOauth2",
}


@dataclass(frozen=True)
class AgentCoreArns:
    """Exact ARNs for AgentCore Identity IAM statements (service authorization reference shapes)."""

    workload_identity_directory: str
    workload_identity: str
    token_vault: str
    credential_provider: str

    @classmethod
    def for_names(cls, stack: Stack, *, workload_identity_name: str, credential_provider_name: str) -> AgentCoreArns:
        base = f"arn:{Aws.PARTITION}:bedrock-agentcore:{stack.region}:{stack.account}"
        directory = f"{base}:workload-identity-directory/default"
        vault = f"{base}:token-vault/default"
        return cls(
            workload_identity_directory=directory,
            workload_identity=f"{directory}/workload-identity/{workload_identity_name}",
            token_vault=vault,
            credential_provider=f"{vault}/oauth2credentialprovider/{credential_provider_name}",
        )

    @property
    def for_outbound_tokens(self) -> list[str]:
        """Resources GetResourceOauth2Token and CompleteResourceTokenAuth are authorized against."""
        return [self.workload_identity_directory, self.workload_identity, self.token_vault, self.credential_provider]


class AgentWorkloadIdentity(Construct):
    """The agent's identity in AgentCore; the only return URL it accepts is our session binding URL."""

    def __init__(self, scope: Construct, construct_id: str, *, name: str, session_binding_url: str, lifecycle: Lifecycle) -> None:
        super().__init__(scope, construct_id)
        self.name = name
        self.resource = agentcore.CfnWorkloadIdentity(
            self, "Resource", name=name, allowed_resource_oauth2_return_urls=[session_binding_url]
        )
        # The token vault keys consents by workload identity: deleting it in prod would make every user consent again.
        self.resource.apply_removal_policy(lifecycle.removal_policy)


@dataclass(frozen=True)
class ClientSecretRef:
    """Where the OAuth client secret lives: our own Secrets Manager secret (source EXTERNAL)."""

    secret_id: str  # what the credential provider references: the full ARN, or the secret's name
    json_key: str
    iam_arn: str  # exact ARN for IAM; a secret known by name gets the `-??????` suffix wildcard


class OAuthCredentialProvider(Construct):
    """AgentCore's OAuth2 client for the external authorization server."""

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
        super().__init__(scope, construct_id)
        self.name = name
        self.client_secret = client_secret
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
            config = C.Oauth2ProviderConfigInputProperty(
                slack_oauth2_provider_config=C.SlackOauth2ProviderConfigInputProperty(**secret_input)
            )

        self.resource = C(
            self, "Resource", name=name, credential_provider_vendor=_VENDORS[provider.kind], oauth2_provider_config_input=config
        )
        self.resource.apply_removal_policy(lifecycle.removal_policy)

    @property
    def callback_url(self) -> str:
        """AgentCore's callback (`…/identities/oauth2/callback/<id>`), to register at the provider."""
        return self.resource.attr_callback_url

    @property
    def arn(self) -> str:
        return self.resource.attr_credential_provider_arn


def demo_client_settings(*, user_pool_id: str, client_id: str, scopes: list[str], callback_url: str) -> dict[str, Any]:
    """Every setting of the demo app client, as UpdateUserPoolClient wants them.

    UpdateUserPoolClient resets any omitted setting to its default, so the registration sends the
    whole client configuration; tests check it against the synthesized client so they cannot drift.
    """
    return {
        "UserPoolId": user_pool_id,
        "ClientId": client_id,
        "CallbackURLs": [callback_url],
        "AllowedOAuthFlows": ["code"],
        "AllowedOAuthFlowsUserPoolClient": True,
        "AllowedOAuthScopes": scopes,
        "SupportedIdentityProviders": ["COGNITO"],
        "ExplicitAuthFlows": ["ALLOW_REFRESH_TOKEN_AUTH"],
        "PreventUserExistenceErrors": "ENABLED",
        "EnableTokenRevocation": True,
        "AccessTokenValidity": 60,
        "IdTokenValidity": 60,
        "RefreshTokenValidity": 43200,
        "TokenValidityUnits": {"AccessToken": "minutes", "IdToken": "minutes", "RefreshToken": "minutes"},
    }


# The id AwsCustomResource gives its singleton provider function (fixed in aws-cdk-lib).
_AWS_CUSTOM_RESOURCE_SINGLETON_ID = "AWS679f53fac002430cb0da5b7982bd2287"


class CallbackUrlRegistration(Construct):
    """Registers AgentCore's callback URL at the demo app client, with no manual step.

    The credential provider needs the client (id and secret) and the client needs the provider's
    callback URL: a cycle CloudFormation cannot express. This custom resource closes it after both
    exist, calling only `cognito-idp:UpdateUserPoolClient` on the one user pool.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        user_pool: cognito.IUserPool,
        client: cognito.IUserPoolClient,
        scopes: list[str],
        callback_url: str,
        logs_key: kms.IKey,
        lifecycle: Lifecycle,
    ) -> None:
        super().__init__(scope, construct_id)
        settings = demo_client_settings(
            user_pool_id=user_pool.user_pool_id, client_id=client.user_pool_client_id, scopes=scopes, callback_url=callback_url
        )
        call = cr.AwsSdkCall(
            service="CognitoIdentityServiceProvider",
            action="updateUserPoolClient",
            parameters=settings,
            # Any change of settings (new client id, callback or scopes) changes the parameters and re-registers.
            physical_resource_id=cr.PhysicalResourceId.of(client.user_pool_client_id),
        )
        log_group = logs.LogGroup(
            self, "Logs", encryption_key=logs_key, retention=lifecycle.log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        self.resource = cr.AwsCustomResource(
            self,
            "Resource",
            on_create=call,
            on_update=call,
            install_latest_aws_sdk=False,
            log_group=log_group,
            policy=cr.AwsCustomResourcePolicy.from_statements(
                [iam.PolicyStatement(actions=["cognito-idp:UpdateUserPoolClient"], resources=[user_pool.user_pool_arn])]
            ),
        )
        acknowledge(
            self.resource.node.find_child("CustomResourcePolicy"),
            "NIST.800.53.R5-IAMNoInlinePolicy",
            "Generated by AwsCustomResource for its one call: cognito-idp:UpdateUserPoolClient on the demo user pool only.",
        )
        # The provider function is a per-stack singleton that CDK creates beside this construct.
        function = Stack.of(self).node.find_child(_AWS_CUSTOM_RESOURCE_SINGLETON_ID)
        for rule, reason in (
            (
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
                "The deploy-time provider function only writes its own logs; the managed policy grants CloudWatch Logs writes and nothing else.",
            ),
            (
                "NIST.800.53.R5-LambdaConcurrency",
                "Runs only during CloudFormation deploys of this stack, once per change; there is no traffic to bound.",
            ),
            (
                "NIST.800.53.R5-LambdaDLQ",
                "Invoked synchronously by CloudFormation, which reports a failure as a failed deployment; nothing is dropped.",
            ),
            (
                "NIST.800.53.R5-LambdaInsideVPC",
                "Calls only the public Cognito API during deploys and holds no data; a VPC would add NAT cost and nothing else.",
            ),
        ):
            target = function.node.find_child("ServiceRole") if rule.startswith("AwsSolutions-IAM4") else function
            acknowledge(target, rule, reason)
