"""Physical stack names, shared by the app and the deploy helpers (which must not import aws_cdk: it starts Node)."""

from __future__ import annotations

from cdk_app.config import AppConfig


def stack_name(config: AppConfig, role: str) -> str:
    """`<app>-<profile>-<role>`, e.g. `agentcore-ecs-sandbox-services`."""
    return f"{config.app_name}-{config.profile.value}-{role}"
