"""The AWS clients the services build, one per process: AgentCore Identity's data plane, and Bedrock for the agent.

boto3 clients are expensive to build (service model, endpoint resolution, credential chain) and
thread-safe to share, so each service builds one, lazily, and reuses it. The endpoint comes from
the standard AWS settings (`AWS_ENDPOINT_URL_BEDROCK_AGENTCORE` or `AWS_ENDPOINT_URL`), which is how
the local stack points the unchanged code at its stand-in.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from services.common.settings import ServiceSettings

# Error codes that mean "try again later", as opposed to "this request is wrong".
TRANSIENT_ERROR_CODES = frozenset({"ThrottlingException", "InternalServerException", "ServiceUnavailableException", "RequestTimeout"})
# AgentCore Identity's modelled errors, plus the generic ones any AWS API may answer. Anything else
# is counted as "Other": a metric dimension must not take whatever string a response carries.
KNOWN_ERROR_CODES = TRANSIENT_ERROR_CODES | {
    "UnauthorizedException",
    "ValidationException",
    "AccessDeniedException",
    "ResourceNotFoundException",
    "ConflictException",
    "ServiceQuotaExceededException",
    "UnrecognizedClientException",
    "ExpiredTokenException",
    "InvalidSignatureException",
}


def error_code(exc: BaseException) -> str:
    """A bounded error code for the AgentCoreErrors metric: AgentCore's code, or what failed on our side."""
    from botocore.exceptions import (  # noqa: PLC0415 - see agentcore_client
        ClientError,
        ConnectionError as BotoConnectionError,
        ConnectTimeoutError,
        HTTPClientError,
        NoCredentialsError,
        ReadTimeoutError,
    )

    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return code if code in KNOWN_ERROR_CODES else "Other"
    if isinstance(exc, ReadTimeoutError):
        return "ReadTimeout"
    if isinstance(exc, ConnectTimeoutError):
        return "ConnectTimeout"
    if isinstance(exc, (BotoConnectionError, HTTPClientError)):
        return "ConnectionError"
    if isinstance(exc, NoCredentialsError):
        return "NoCredentials"
    return "ClientSideError"


def agentcore_client(settings: ServiceSettings, *, max_pool_connections: int = 50, app_id: str = "agentcore-ecs-session-binding") -> Any:
    """A `bedrock-agentcore` client: standard retry mode, explicit timeouts, pooled connections."""
    import boto3  # noqa: PLC0415 - here, not at import: boto3 (s3transfer) adds ~60 ms to a Lambda cold start
    from botocore.config import Config  # noqa: PLC0415

    config = Config(
        region_name=settings.aws_region,
        retries={"mode": "standard", "total_max_attempts": settings.agentcore_max_attempts},
        connect_timeout=settings.agentcore_connect_timeout_s,
        read_timeout=settings.agentcore_read_timeout_s,
        max_pool_connections=max_pool_connections,
        tcp_keepalive=True,
        user_agent_appid=app_id,
    )
    return boto3.session.Session().client("bedrock-agentcore", config=config)


class LazyClient:
    """Builds a client on first use (keeps import and Lambda cold start cheap), then shares it."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._client: Any = None
        self._lock = threading.Lock()

    def peek(self) -> Any:
        """The client if it is built already, else None (lets async code skip a thread hop)."""
        return self._client

    def get(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._factory()
        return self._client


def bedrock_runtime_client(settings: ServiceSettings, *, max_attempts: int, read_timeout_s: float, max_pool_connections: int = 50) -> Any:
    """A `bedrock-runtime` client for Converse: standard retries (throttling is common), long read timeout."""
    import boto3  # noqa: PLC0415 - see agentcore_client
    from botocore.config import Config  # noqa: PLC0415

    config = Config(
        region_name=settings.aws_region,
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        connect_timeout=settings.agentcore_connect_timeout_s,
        read_timeout=read_timeout_s,
        max_pool_connections=max_pool_connections,
        tcp_keepalive=True,
        user_agent_appid="agentcore-ecs-agent",
    )
    return boto3.session.Session().client("bedrock-runtime", config=config)
