"""What the agent and the session binding service share: where they run, the environment both get,
the signing-key secret, and the keys and AgentCore names their permissions name."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import aws_ec2 as ec2, aws_ecs as ecs, aws_kms as kms, aws_secretsmanager as secretsmanager

import services.common.environment as env
from cdk_app.config import AppConfig
from stacks.constructs.agent_identity import AgentCoreArns, ClientSecretRef
from stacks.constructs.lifecycle import Lifecycle


def shared_environment(config: AppConfig, *, alb_arn: str, oidc_issuer: str, oidc_client_id: str) -> dict[str, str]:
    """What both services read (ServiceSettings): whose sign-in to accept and where metrics go. Each service's
    construct adds its own names, so neither gets a variable it does not read (tests/stacks/test_environment.py)."""
    return {
        env.APP_PROFILE: config.profile.value,
        env.PUBLIC_BASE_URL: config.base_url,
        env.ALB_ARN: alb_arn,
        env.OIDC_ISSUER: oidc_issuer,
        env.OIDC_CLIENT_ID: oidc_client_id,
        env.METRICS_NAMESPACE: config.alarms.metrics_namespace,
    }


@dataclass(frozen=True)
class ServiceInputs:
    config: AppConfig
    cluster: ecs.ICluster
    load_balancer_security_group: ec2.ISecurityGroup
    environment: Mapping[str, str]
    signing_secret: secretsmanager.ISecret
    secrets_key: kms.IKey
    agentcore_arns: AgentCoreArns
    provider_client_secrets: tuple[ClientSecretRef, ...]  # one per configured provider, in config order
    logs_key: kms.IKey
    lifecycle: Lifecycle

    @property
    def secrets(self) -> dict[str, ecs.Secret]:
        """What ECS injects at task start: the flow signing key, never a plain environment variable."""
        return {env.FLOW_SIGNING_KEYS: ecs.Secret.from_secrets_manager(self.signing_secret)}
