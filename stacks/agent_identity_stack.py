"""Agent identity: AgentCore workload identity, OAuth2 credential provider, callback registration."""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws, CfnOutput, Stack, aws_kms as kms
from constructs import Construct

from cdk_app.config import AppConfig, Provider
from stacks.constructs.agent_identity import AgentCoreArns, AgentWorkloadIdentity, ClientSecretRef, OAuthCredentialProvider
from stacks.constructs.auth import DEMO_CLIENT_NAME, DemoAuthorizationServer
from stacks.constructs.callback_registration import CallbackUrlRegistration
from stacks.constructs.lifecycle import Lifecycle


class AgentIdentityStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        lifecycle: Lifecycle,
        logs_key: kms.IKey,
        demo_authorization_server: DemoAuthorizationServer | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)

        self.workload_identity = AgentWorkloadIdentity(
            self,
            "WorkloadIdentity",
            name=config.workload_identity_name,
            session_binding_url=config.session_binding_url,
            lifecycle=lifecycle,
        )

        provider = config.provider
        client_id, secret, discovery_url = self._client(config, demo_authorization_server)
        self.credential_provider = OAuthCredentialProvider(
            self,
            "CredentialProvider",
            name=config.credential_provider_name,
            provider=provider,
            client_id=client_id,
            client_secret=secret,
            discovery_url=discovery_url,
            lifecycle=lifecycle,
        )
        # The L2 types it optional (an imported provider may lack it); a created one always has the attribute.
        assert self.credential_provider.callback_url is not None
        self.callback_url: str = self.credential_provider.callback_url
        self.arns = AgentCoreArns.for_names(
            self,
            workload_identity_name=config.workload_identity_name,
            credential_provider_name=config.credential_provider_name,
        )

        if demo_authorization_server is not None:
            CallbackUrlRegistration(
                self,
                "DemoCallbackRegistration",
                user_pool=demo_authorization_server.user_pool,
                client=demo_authorization_server.client,
                client_name=DEMO_CLIENT_NAME,
                scopes=[s.scope_name for s in demo_authorization_server.oauth_scopes],
                callback_url=self.callback_url,
                logs_key=logs_key,
                lifecycle=lifecycle,
            )

        self._outputs(config)

    def _client(self, config: AppConfig, server: DemoAuthorizationServer | None) -> tuple[str, ClientSecretRef, str | None]:
        """AgentCore's client at the provider: the demo server's generated one, or the configured id and secret name."""
        provider = config.provider
        if provider.kind is Provider.DEMO:
            assert server is not None
            client_id = server.client.user_pool_client_id
            secret = ClientSecretRef(
                secret_id=server.client_secret.secret_arn,
                json_key=server.client_secret_json_key,
                iam_arn=server.client_secret.secret_arn,
            )
            discovery_url: str | None = server.discovery_url
        else:
            assert provider.client_id is not None and provider.client_secret_name is not None
            client_id = provider.client_id
            secret = ClientSecretRef(
                # By name: an ARN built from a name lacks the random suffix and would not resolve.
                secret_id=provider.client_secret_name,
                json_key=provider.client_secret_json_key,
                # A secret's ARN ends in a random 6-character suffix that a name alone does not know.
                iam_arn=f"arn:{Aws.PARTITION}:secretsmanager:{self.region}:{self.account}:secret:{provider.client_secret_name}-??????",
            )
            discovery_url = provider.discovery_url
        return client_id, secret, discovery_url

    def _outputs(self, config: AppConfig) -> None:
        provider = config.provider
        CfnOutput(
            self,
            "ProviderCallbackUrl",
            value=self.callback_url,
            description=(
                "Registered at the demo authorization server automatically"
                if provider.kind is Provider.DEMO
                else f"Register this redirect URI in your {provider.kind.value} OAuth app"
            ),
        )
        CfnOutput(
            self, "SessionBindingUrl", value=config.session_binding_url, description="The workload identity's only allowed return URL"
        )
