"""What the agent builds once per process from its settings: verifier, keyring, clients, caches and bounds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from http.cookiejar import DefaultCookiePolicy
from typing import Annotated, Any

import anyio
import httpx
from fastapi import Depends, Request

from services.agent.account_tools import ACCOUNT_TOOLS, AccountTool
from services.agent.settings import AgentSettings
from services.agent.slots import ChatSlots
from services.agent.tokens import OutboundTokens, WorkloadTokenCache
from services.agent.tools import Tool, tools_for
from services.common.agentcore import LazyClient, agentcore_client, bedrock_runtime_client
from services.common.alb_identity import AlbIdentityVerifier
from services.common.bootstrap import build_keyring, build_verifier
from services.common.connections import ConnectionsRegistry, registry_client
from services.common.http_fetch import tls_context
from services.common.metrics import Metrics
from services.common.signed import Keyring

SERVICE_NAME = "agent"  # the metrics' Service dimension


@dataclass
class Runtime:
    settings: AgentSettings
    keyring: Keyring
    verifier: AlbIdentityVerifier
    tokens: OutboundTokens
    connections: ConnectionsRegistry
    tools: dict[str, Tool | AccountTool]
    bedrock: LazyClient
    secrets: LazyClient  # Secrets Manager: OAuth client secrets, read only to revoke on disconnect
    http: httpx.AsyncClient
    limiter: list[anyio.CapacityLimiter]
    slots: ChatSlots
    metrics: Metrics

    def bedrock_limiter(self) -> anyio.CapacityLimiter:
        if len(self.limiter) < 2:  # created in the event loop, on first use
            self.limiter.append(anyio.CapacityLimiter(self.settings.bedrock_concurrency))
        return self.limiter[1]

    @classmethod
    def build(cls, settings: AgentSettings, clock: Callable[[], float]) -> Runtime:
        limiter: list[anyio.CapacityLimiter] = []

        def agentcore_limiter() -> anyio.CapacityLimiter:
            if not limiter:  # created in the event loop, on first use
                limiter.append(anyio.CapacityLimiter(settings.agentcore_concurrency))
            return limiter[0]

        http = httpx.AsyncClient(timeout=settings.tool_timeout_s, follow_redirects=False, trust_env=False, verify=tls_context())
        # No cookies kept: one client serves every person, and a cookie an API sets for one person
        # must never ride along on another person's request.
        http.cookies.jar.set_policy(DefaultCookiePolicy(allowed_domains=[]))

        metrics = Metrics(namespace=settings.metrics_namespace, service=SERVICE_NAME)
        cache = WorkloadTokenCache(max_entries=settings.workload_token_cache_size, ttl_s=settings.workload_token_ttl_s, metrics=metrics)
        agentcore = LazyClient(lambda: agentcore_client(settings, app_id="agentcore-ecs-agent"))
        bedrock = LazyClient(
            lambda: bedrock_runtime_client(
                settings, max_attempts=settings.bedrock_max_attempts, read_timeout_s=settings.bedrock_read_timeout_s
            )
        )
        return cls(
            settings=settings,
            keyring=build_keyring(settings),
            verifier=build_verifier(settings, clock),
            tokens=OutboundTokens(settings, agentcore, cache, limiter=agentcore_limiter, metrics=metrics),
            connections=ConnectionsRegistry(
                settings.connections_table,
                LazyClient(
                    lambda: registry_client(
                        settings.aws_region,
                        connect_timeout_s=settings.dynamodb_connect_timeout_s,
                        read_timeout_s=settings.dynamodb_read_timeout_s,
                        max_attempts=settings.dynamodb_max_attempts,
                    )
                ).get,
                concurrency=settings.agentcore_concurrency,
            ),
            tools=_tools(settings),
            bedrock=bedrock,
            secrets=LazyClient(lambda: secretsmanager_client(settings)),
            http=http,
            limiter=limiter,
            slots=ChatSlots(total=settings.max_inflight_chats, per_user=settings.max_chats_per_user),
            metrics=metrics,
        )


def secretsmanager_client(settings: AgentSettings) -> Any:
    """A Secrets Manager client for the revocations that need the OAuth client's secret: short timeouts (a
    person waits for the disconnect's answer), standard retries. The endpoint comes from the standard AWS
    settings (`AWS_ENDPOINT_URL_SECRETS_MANAGER` locally)."""
    import boto3  # noqa: PLC0415 - at first use, like the other AWS clients
    from botocore.config import Config  # noqa: PLC0415

    config = Config(
        region_name=settings.aws_region,
        retries={"mode": "standard", "total_max_attempts": 2},
        connect_timeout=settings.agentcore_connect_timeout_s,
        read_timeout=settings.agentcore_read_timeout_s,
        tcp_keepalive=True,
        user_agent_appid="agentcore-ecs-agent",
    )
    return boto3.session.Session().client("secretsmanager", config=config)


def _tools(settings: AgentSettings) -> dict[str, Tool | AccountTool]:
    """Every provider's tools, then the tools about the connected accounts themselves (no provider tool has
    their names: `tools_for` names tools after the API calls they make)."""
    tools: dict[str, Tool | AccountTool] = {tool.name: tool for tool in tools_for(settings)}
    for tool in ACCOUNT_TOOLS:
        if tool.name in tools:
            raise ValueError(f"a provider tool is named {tool.name}, the name of a tool about connected accounts")
        tools[tool.name] = tool
    return tools


async def close_http(rt: Runtime) -> None:
    await rt.http.aclose()


async def app_runtime(request: Request) -> Runtime:  # async: FastAPI would run a plain function in a worker thread
    runtime: Runtime = request.app.state.runtime()
    return runtime


AgentRuntime = Annotated[Runtime, Depends(app_runtime)]
