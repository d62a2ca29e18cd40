"""The agent service on Fargate: its environment (the outbound providers as `PROVIDERS`), secrets and permissions
(AgentCore outbound tokens for the signed-in user, each provider's client secret through AgentCore, and directly
only where `revoke_on_disconnect` is on, the configured Bedrock model, the connections registry), and its scaling."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import Aws, Stack, aws_cloudwatch as cloudwatch, aws_iam as iam
from constructs import Construct

import services.common.environment as env
from cdk_app.config import AppConfig, Provider, ProviderConfig
from stacks.constructs.agent_identity import ClientSecretRef
from stacks.constructs.connections_table import ConnectionsTable
from stacks.constructs.fargate_service import FargateWebService
from stacks.constructs.nag import acknowledge
from stacks.constructs.service_grants import acknowledge_secret_suffixes, decrypt_via_secrets_manager, read_client_secrets
from stacks.constructs.service_inputs import ServiceInputs

# Draining (deregistration delay): a request in flight when a task leaves may finish. A chat turn is bounded by
# TURN_TIMEOUT_S (180 s by default). docs/operations.md, "Shutdown timings".
AGENT_DRAIN_S = 180
# Target tracking on load balancer requests per task and minute, next to CPU (whichever asks for more tasks wins).
AGENT_REQUESTS_PER_TASK = 120  # chat turns hold a task for seconds (model calls), so few per minute
# How a disconnect revokes with the client's own credentials: GitHub's grant API (`DELETE
# /applications/{client_id}/grant`, HTTP Basic), or an RFC 7009 endpoint (section 2.1: the client authenticates).
REVOKE_METHODS = {Provider.GITHUB: "github", Provider.CUSTOM_OIDC: "rfc7009"}


def providers_environment(config: AppConfig, demo_api_url: str | None, client_secrets: Sequence[ClientSecretRef]) -> list[dict[str, Any]]:
    """What `PROVIDERS` holds, in config order: each provider's name, kind, display name, AgentCore credential
    provider, scopes with their words, for a demo provider the demo API's base URL, and with `revoke_on_disconnect`
    how to revoke with the client's credentials (services.agent.settings). `client_secrets`: in config order."""
    entries: list[dict[str, Any]] = []
    for provider, secret in zip(config.providers, client_secrets, strict=True):
        entry: dict[str, Any] = {
            "name": provider.name,
            "kind": provider.kind.value,
            "display_name": provider.display_name,
            "credential_provider": config.credential_provider_name(provider),
            "scopes": dict(provider.scopes),
        }
        if provider.is_demo:
            assert demo_api_url is not None, "a demo provider needs the demo API"
            entry["api_url"] = demo_api_url
        if provider.revoke_on_disconnect:
            entry["revoke"] = _revoke_entry(provider, secret)
        entries.append(entry)
    return entries


def _revoke_entry(provider: ProviderConfig, secret: ClientSecretRef) -> dict[str, str]:
    """The client's credentials by reference: the client id, and where its secret is (never the secret itself)."""
    assert provider.client_id is not None, "revocation is configured for a provider with its own client only"
    revoke = {
        "method": REVOKE_METHODS[provider.kind],
        "client_id": provider.client_id,
        "client_secret_arn": secret.read_arn,  # partition, region and account resolve in the template
        "client_secret_json_key": secret.json_key,
    }
    if provider.kind is Provider.CUSTOM_OIDC:
        assert provider.revocation_url is not None
        revoke["endpoint"] = provider.revocation_url
    return revoke


class AgentService(FargateWebService):
    """`services/agent`; `connections` is the registry it reads and updates; `demo_api_url` is where its tools call
    the demo resource API (with a demo provider); `sign_out_url` is the sign-in pool's logout endpoint for the ALB's
    client, returning to /signed-out."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        inputs: ServiceInputs,
        connections: ConnectionsTable,
        demo_api_url: str | None,
        sign_out_url: str,
    ) -> None:
        config = inputs.config
        environment = {
            **inputs.environment,
            env.WORKLOAD_IDENTITY_NAME: config.workload_identity_name,
            # Compact JSON; CloudFormation joins the demo API's URL (an attribute known at deploy) into it, escaped.
            env.PROVIDERS: Stack.of(scope).to_json_string(providers_environment(config, demo_api_url, inputs.provider_client_secrets)),
            env.CONNECTIONS_TABLE: connections.table.table_name,
            env.SESSION_BINDING_URL: config.session_binding_url,
            env.SIGN_OUT_URL: sign_out_url,
            env.BEDROCK_MODEL_ID: config.bedrock_model_id,
        }
        super().__init__(
            scope,
            construct_id,
            service_dir_name="agent",
            cluster=inputs.cluster,
            load_balancer_security_group=inputs.load_balancer_security_group,
            environment=environment,
            secrets=inputs.secrets,
            desired_count=config.agent_scaling.min_tasks,
            logs_key=inputs.logs_key,
            lifecycle=inputs.lifecycle,
            deregistration_delay_s=AGENT_DRAIN_S,
        )
        self._config = config
        # ECS reads the signing key at task start with the execution role: decrypt through Secrets Manager only.
        self.task_definition.obtain_execution_role().add_to_principal_policy(decrypt_via_secrets_manager(self, inputs.secrets_key))
        self._grant(inputs, connections)

    def _grant(self, inputs: ServiceInputs, connections: ConnectionsTable) -> None:
        """The task's one customer-managed policy: exact AgentCore, secret, model and table ARNs."""
        # Token reads only, written out: the L2's `grant_use` would add CompleteResourceTokenAuth (agent_identity.py).
        arns, secrets = inputs.agentcore_arns, inputs.provider_client_secrets
        self.allow(
            [
                iam.PolicyStatement(
                    sid="WorkloadAccessTokenPerUser",
                    actions=["bedrock-agentcore:GetWorkloadAccessTokenForUserId"],
                    resources=[arns.workload_identity_directory, arns.workload_identity],
                ),
                iam.PolicyStatement(
                    sid="OutboundOAuthToken",
                    actions=["bedrock-agentcore:GetResourceOauth2Token"],
                    resources=arns.for_outbound_tokens,
                ),
                *read_client_secrets(self, secrets, inputs.secrets_key),
                *self._revocation_secrets(secrets),
                iam.PolicyStatement(
                    sid="InvokeConfiguredModel",
                    actions=["bedrock:InvokeModel"],  # Converse; the agent does not stream from the model
                    resources=self._model_arns(),
                ),
                *connections.for_agent(),
            ]
        )
        acknowledge_secret_suffixes(self.task_policy, secrets)
        if self._config.model_is_inference_profile:
            acknowledge(
                self.task_policy,
                f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:bedrock:*::foundation-model/{_base_model_id(self._config.bedrock_model_id)}]",
                "A cross-region inference profile routes to the named model in any of its regions; the grant names that one model only.",
            )

    def _revocation_secrets(self, secrets: Sequence[ClientSecretRef]) -> list[iam.PolicyStatement]:
        """With `revoke_on_disconnect`, the task code itself reads that provider's client secret (no aws:ViaAWSService):
        the cost of the setting. Nothing without it. Each such secret is named in config (never a demo one, whose
        secret is in-stack), so its IAM ARN is `<name>-??????`: the six characters Secrets Manager appends, no other
        wildcard (cdk-nag's IAM5 for it is acknowledged per secret, acknowledge_secret_suffixes). KMS: the secret is
        the operator's, not under a key of this app; the `SecretsKey` decrypt through Secrets Manager is granted already."""
        revoking = [s.iam_arn for p, s in zip(self._config.providers, secrets, strict=True) if p.revoke_on_disconnect]
        if not revoking:
            return []
        assert all(arn.endswith("-??????") for arn in revoking), "a revoking provider's secret is known by name"
        return [
            iam.PolicyStatement(
                sid="ReadClientSecretToRevoke",
                actions=["secretsmanager:GetSecretValue"],
                resources=list(dict.fromkeys(revoking)),
            )
        ]

    def operate(self, deployment_alarms: Sequence[cloudwatch.IAlarm]) -> None:
        """Scale within the configured bounds; roll a deployment back when one of these alarms fires."""
        bounds = self._config.agent_scaling
        # Scaling needs the target group attached to the listener (request count is per target group).
        self.scale(min_tasks=bounds.min_tasks, max_tasks=bounds.max_tasks, requests_per_target=AGENT_REQUESTS_PER_TASK)
        self.roll_back_on(deployment_alarms)

    def _model_arns(self) -> list[str]:
        stack, model_id = Stack.of(self), self._config.bedrock_model_id
        if not self._config.model_is_inference_profile:
            return [f"arn:{Aws.PARTITION}:bedrock:{stack.region}::foundation-model/{model_id}"]
        return [
            f"arn:{Aws.PARTITION}:bedrock:{stack.region}:{stack.account}:inference-profile/{model_id}",
            f"arn:{Aws.PARTITION}:bedrock:*::foundation-model/{_base_model_id(model_id)}",
        ]


def _base_model_id(model_id: str) -> str:
    """`us.anthropic.claude-…` → `anthropic.claude-…` (the model behind an inference profile)."""
    return model_id.split(".", 1)[1]
