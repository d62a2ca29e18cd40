"""Agent identity: AgentCore workload identity, one OAuth2 credential provider per configured provider, and the
registration of AgentCore's callback URLs at the demo authorization server's clients."""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws, CfnOutput, Stack, aws_kms as kms
from constructs import Construct

from cdk_app.config import AppConfig, ProviderConfig
from stacks.constructs.agent_identity import AgentCoreArns, AgentWorkloadIdentity, ClientSecretRef, OAuthCredentialProvider
from stacks.constructs.auth import DemoAuthorizationServer
from stacks.constructs.callback_registration import CallbackUrlRegistration, ClientRegistration
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
        # By provider name, in config order. AgentCore holds 50 OAuth2 credential providers per account (quota L-431051DC).
        self.credential_providers: dict[str, OAuthCredentialProvider] = {}
        self.callback_urls: dict[str, str] = {}
        for provider in config.providers:
            client_id, secret, discovery_url = self._client(provider, demo_authorization_server)
            credential_provider = OAuthCredentialProvider(
                self,
                f"CredentialProvider{provider.id_part}",
                name=config.credential_provider_name(provider),
                provider=provider,
                client_id=client_id,
                client_secret=secret,
                discovery_url=discovery_url,
                lifecycle=lifecycle,
            )
            # The L2 types it optional (an imported provider may lack it); a created one always has the attribute.
            assert credential_provider.callback_url is not None
            self.credential_providers[provider.name] = credential_provider
            self.callback_urls[provider.name] = credential_provider.callback_url
        self.client_secrets = tuple(p.client_secret for p in self.credential_providers.values())
        self.arns = AgentCoreArns.for_names(
            self,
            workload_identity_name=config.workload_identity_name,
            credential_provider_names=[config.credential_provider_name(p) for p in config.providers],
        )
        if demo_authorization_server is not None:
            self._register_demo_callbacks(config, demo_authorization_server, logs_key, lifecycle)
        self._outputs(config)

    def _client(self, provider: ProviderConfig, server: DemoAuthorizationServer | None) -> tuple[str, ClientSecretRef, str | None]:
        """AgentCore's client at the provider: its own client at the demo server, or the configured id and secret name."""
        if provider.is_demo:
            assert server is not None, "a demo provider needs the demo authorization server"
            client = server.clients[provider.name]
            secret = ClientSecretRef(
                secret_id=client.client_secret.secret_arn,
                json_key=client.client_secret_json_key,
                iam_arn=client.client_secret.secret_arn,
                read_arn=client.client_secret.secret_arn,
            )
            return client.client.user_pool_client_id, secret, server.discovery_url
        assert provider.client_id is not None and provider.client_secret_name is not None
        partial_arn = f"arn:{Aws.PARTITION}:secretsmanager:{self.region}:{self.account}:secret:{provider.client_secret_name}"
        secret = ClientSecretRef(
            # By name: an ARN built from a name lacks the random suffix and would not resolve.
            secret_id=provider.client_secret_name,
            json_key=provider.client_secret_json_key,
            # A secret's ARN ends in a random 6-character suffix that a name alone does not know.
            iam_arn=f"{partial_arn}-??????",
            # GetSecretValue accepts the partial ARN; config refuses a name that ends like a suffix (when code reads it).
            read_arn=partial_arn,
        )
        return provider.client_id, secret, provider.discovery_url

    def _register_demo_callbacks(
        self, config: AppConfig, server: DemoAuthorizationServer, logs_key: kms.IKey, lifecycle: Lifecycle
    ) -> None:
        """Each demo provider's callback URL at its own app client, which may ask for that provider's scopes only."""
        clients = [
            ClientRegistration(
                construct_id=provider.id_part,
                client=server.clients[provider.name].client,
                client_name=server.clients[provider.name].client_name,
                scopes=server.clients[provider.name].scopes,
                callback_url=self.callback_urls[provider.name],
            )
            for provider in config.demo_providers
        ]
        CallbackUrlRegistration(
            self, "DemoCallbackRegistration", user_pool=server.user_pool, clients=clients, logs_key=logs_key, lifecycle=lifecycle
        )

    def _outputs(self, config: AppConfig) -> None:
        """Per provider: AgentCore's callback URL (`CallbackUrl<Name>`) and its credential provider's name
        (`CredentialProviderName<Name>`), `<Name>` being the provider's name in PascalCase."""
        for provider in config.providers:
            label = f"{provider.display_name} ({provider.name}, {provider.kind.value})"
            CfnOutput(
                self,
                provider.callback_url_output,
                value=self.callback_urls[provider.name],
                description=(
                    f"{label}: AgentCore's callback URL, registered at the demo authorization server automatically"
                    if provider.is_demo
                    else f"{label}: register this redirect URI in your {provider.kind.value} OAuth app"
                ),
            )
            CfnOutput(
                self,
                provider.credential_provider_output,
                value=config.credential_provider_name(provider),
                description=f"{label}: the AgentCore OAuth2 credential provider",
            )
        CfnOutput(
            self, "SessionBindingUrl", value=config.session_binding_url, description="The workload identity's only allowed return URL"
        )
