#!/usr/bin/env python3
"""CDK entry point: validate the config from context, compose the stacks from it, run cdk-nag, synth.
The only module that imports the stacks: `cdk_app/` below it holds configuration, `deploy/` runs around it."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
from aws_cdk import App, Environment, Stack, Tags

from cdk_app.config import AppConfig, ConfigError, load_config
from cdk_app.nag import enable_nag
from cdk_app.naming import stack_name
from stacks.agent_identity_stack import AgentIdentityStack
from stacks.constructs.lifecycle import Lifecycle
from stacks.github_deploy_stack import BOOTSTRAP_QUALIFIER_CONTEXT, DEFAULT_BOOTSTRAP_QUALIFIER, GitHubDeployStack
from stacks.identity_stack import IdentityStack
from stacks.network_stack import NetworkStack
from stacks.services_stack import ServicesStack


@dataclass(frozen=True)
class AppStacks:
    """The stacks of one app: stateful ones (identity, agent identity) apart from stateless ones."""

    network: NetworkStack
    identity: IdentityStack
    agent_identity: AgentIdentityStack
    services: ServicesStack
    github_deploy: GitHubDeployStack | None = None


def build_stacks(app: App, config: AppConfig) -> AppStacks:
    """Every stack from one validated config, wired to each other by constructor arguments."""
    # Environment-agnostic unless both account and region are configured: synth makes no lookups.
    env = Environment(account=config.account, region=config.region) if config.account else None
    lifecycle = Lifecycle(retain=config.is_prod, log_retention_days=config.log_retention_days)
    common: dict[str, Any] = {"env": env, "termination_protection": config.is_prod}

    network = NetworkStack(
        app,
        "Network",
        stack_name=stack_name(config, "network"),
        nat_gateways=config.nat_gateways,
        lifecycle=lifecycle,
        description="VPC, flow logs and the log encryption key",
        **common,
    )
    identity = IdentityStack(
        app,
        "Identity",
        stack_name=stack_name(config, "identity"),
        config=config,
        lifecycle=lifecycle,
        description="Cognito sign-in, the demo authorization server and shared secrets (stateful)",
        **common,
    )
    agent_identity = AgentIdentityStack(
        app,
        "AgentIdentity",
        stack_name=stack_name(config, "agent-identity"),
        config=config,
        lifecycle=lifecycle,
        logs_key=network.logs_key,
        demo_authorization_server=identity.demo_authorization_server,
        description="AgentCore workload identity and the OAuth2 credential providers (stateful)",
        **common,
    )
    services = ServicesStack(
        app,
        "Services",
        stack_name=stack_name(config, "services"),
        config=config,
        lifecycle=lifecycle,
        vpc=network.vpc,
        logs_key=network.logs_key,
        sign_in=identity.sign_in,
        flow_signing_key=identity.flow_signing_key.secret,
        secrets_key=identity.secrets_key,
        agentcore_arns=agent_identity.arns,
        provider_client_secrets=agent_identity.client_secrets,
        demo_authorization_server=identity.demo_authorization_server,
        description="ALB, WAF, ECS cluster, agent and session binding services, demo resource API",
        **common,
    )
    services.add_stack_dependency(agent_identity, "services use the workload identity and credential providers by name")

    github_deploy = _github_deploy(app, config, [network, identity, agent_identity, services], common) if config.github_repository else None

    Tags.of(app).add("app", config.app_name)
    Tags.of(app).add("profile", config.profile.value)
    return AppStacks(network=network, identity=identity, agent_identity=agent_identity, services=services, github_deploy=github_deploy)


def _github_deploy(app: App, config: AppConfig, app_stacks: list[Stack], common: dict[str, Any]) -> GitHubDeployStack:
    """The optional OIDC deploy role (only with `github_repository`); deployed once with admin credentials."""
    assert config.github_repository is not None
    return GitHubDeployStack(
        app,
        "GitHubDeploy",
        stack_name=stack_name(config, "github-deploy"),
        repository=config.github_repository,
        branch=config.github_deploy_branch,
        profile=config.profile.value,
        app_stack_names=[stack.stack_name for stack in app_stacks],
        bootstrap_qualifier=str(app.node.try_get_context(BOOTSTRAP_QUALIFIER_CONTEXT) or DEFAULT_BOOTSTRAP_QUALIFIER),
        description="GitHub OIDC provider and the deploy role GitHub Actions assume (optional)",
        **common,
    )


def main() -> None:
    app = cdk.App()
    try:
        config = load_config(app.node.get_all_context())
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        sys.exit(2)
    build_stacks(app, config)
    enable_nag(app)
    app.synth()


if __name__ == "__main__":
    main()
