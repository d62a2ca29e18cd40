"""The session binding service on Fargate, or on Lambda with `binding_compute=lambda`: its environment, the
signing key (injected by ECS, or read by the function itself) and its permissions (complete consent, the ledger,
recording the consent in the connections registry)."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_cloudwatch as cloudwatch, aws_iam as iam
from constructs import Construct

import services.common.environment as env
from cdk_app.config import BindingCompute
from stacks.constructs.binding_ledger import BindingLedger
from stacks.constructs.connections_table import ConnectionsTable
from stacks.constructs.fargate_service import FargateWebService
from stacks.constructs.lambda_service import LambdaWebService
from stacks.constructs.service_grants import acknowledge_secret_suffixes, decrypt_via_secrets_manager, read_client_secrets
from stacks.constructs.service_inputs import ServiceInputs

SERVICE_DIR_NAME = "session_binding"
# Draining (deregistration delay): a binding is bounded by AgentCore's timeouts and retries (about 20 s at worst).
BINDING_DRAIN_S = 30
BINDING_REQUESTS_PER_TASK = 600  # requests per task and minute for target tracking: one short AgentCore call each


def session_binding_service(
    scope: Construct, construct_id: str, *, inputs: ServiceInputs, ledger: BindingLedger, connections: ConnectionsTable
) -> FargateSessionBinding | LambdaSessionBinding:
    """The service where the config says it runs; either offers a target group, `task_policy` and `operate()`."""
    if inputs.config.binding_compute is BindingCompute.LAMBDA:
        return LambdaSessionBinding(scope, construct_id, inputs=inputs, ledger=ledger, connections=connections)
    return FargateSessionBinding(scope, construct_id, inputs=inputs, ledger=ledger, connections=connections)


def _environment(inputs: ServiceInputs, ledger: BindingLedger, connections: ConnectionsTable) -> dict[str, str]:
    return {
        **inputs.environment,
        env.BINDING_MODE: inputs.config.binding_mode.value,
        env.REQUIRE_CUSTOM_STATE: "true" if inputs.config.binding_require_state else "false",
        env.CUSTOM_STATE_PARAM: inputs.config.binding_state_param,
        env.BINDING_TABLE: ledger.table.table_name,
        env.CONNECTIONS_TABLE: connections.table.table_name,
    }


def _statements(
    scope: Construct,
    inputs: ServiceInputs,
    ledger: BindingLedger,
    connections: ConnectionsTable,
    *,
    extra: Sequence[iam.PolicyStatement] = (),
) -> list[iam.PolicyStatement]:
    return [
        # Consent completion only, written out: the L2's `grant_use` would add GetResourceOauth2Token (agent_identity.py).
        iam.PolicyStatement(
            sid="CompleteUserConsent",
            actions=["bedrock-agentcore:CompleteResourceTokenAuth"],
            resources=inputs.agentcore_arns.for_outbound_tokens,
        ),
        # Completion is when AgentCore exchanges the authorization code at the provider (any configured one).
        *read_client_secrets(scope, inputs.provider_client_secrets, inputs.secrets_key),
        *ledger.statements(),
        *connections.for_session_binding(),
        *extra,
    ]


class FargateSessionBinding(FargateWebService):
    """`services/session_binding` as ECS tasks; ECS injects the signing key at task start."""

    def __init__(
        self, scope: Construct, construct_id: str, *, inputs: ServiceInputs, ledger: BindingLedger, connections: ConnectionsTable
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            service_dir_name=SERVICE_DIR_NAME,
            cluster=inputs.cluster,
            load_balancer_security_group=inputs.load_balancer_security_group,
            environment=_environment(inputs, ledger, connections),
            secrets=inputs.secrets,
            desired_count=inputs.config.binding_scaling.min_tasks,
            logs_key=inputs.logs_key,
            lifecycle=inputs.lifecycle,
            cpu=256,
            memory_limit_mib=512,
            deregistration_delay_s=BINDING_DRAIN_S,
        )
        self._bounds = inputs.config.binding_scaling
        # ECS reads the signing key at task start with the execution role: decrypt through Secrets Manager only.
        self.task_definition.obtain_execution_role().add_to_principal_policy(decrypt_via_secrets_manager(self, inputs.secrets_key))
        self.allow(_statements(self, inputs, ledger, connections))
        acknowledge_secret_suffixes(self.task_policy, inputs.provider_client_secrets)

    def operate(self, deployment_alarms: Sequence[cloudwatch.IAlarm]) -> None:
        """Scale within the configured bounds; roll a deployment back when one of these alarms fires."""
        self.scale(min_tasks=self._bounds.min_tasks, max_tasks=self._bounds.max_tasks, requests_per_target=BINDING_REQUESTS_PER_TASK)
        self.roll_back_on(deployment_alarms)


class LambdaSessionBinding(LambdaWebService):
    """`services/session_binding` served by Mangum on Lambda behind the same listener rules."""

    def __init__(
        self, scope: Construct, construct_id: str, *, inputs: ServiceInputs, ledger: BindingLedger, connections: ConnectionsTable
    ) -> None:
        # No ECS secret injection on Lambda: the function reads the signing key itself, once per cold start.
        signing_secret_arn = inputs.signing_secret.secret_arn
        super().__init__(
            scope,
            construct_id,
            service_dir_name=SERVICE_DIR_NAME,
            description="Session binding service (Mangum): completes consent for the same user in the same browser",
            environment={**_environment(inputs, ledger, connections), env.FLOW_SIGNING_KEYS_SECRET_ARN: signing_secret_arn},
            logs_key=inputs.logs_key,
            lifecycle=inputs.lifecycle,
        )
        reads_signing_key = [
            iam.PolicyStatement(sid="ReadFlowSigningKey", actions=["secretsmanager:GetSecretValue"], resources=[signing_secret_arn]),
            decrypt_via_secrets_manager(self, inputs.secrets_key),
        ]
        self.allow(_statements(self, inputs, ledger, connections, extra=reads_signing_key))
        acknowledge_secret_suffixes(self.task_policy, inputs.provider_client_secrets)

    def operate(self, deployment_alarms: Sequence[cloudwatch.IAlarm]) -> None:
        """Nothing to do: Lambda scales by itself (up to its reserved concurrency), and has no ECS deployment to roll back."""
