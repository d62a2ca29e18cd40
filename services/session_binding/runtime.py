"""What the session binding service builds once per process: keyring, verifier, AgentCore client, sessions ledger."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

import anyio
from fastapi import Depends, Request

from services.common.agentcore import LazyClient, agentcore_client
from services.common.alb_identity import AlbIdentityVerifier
from services.common.bootstrap import build_keyring, build_verifier
from services.common.connections import ConnectionsRegistry
from services.common.metrics import Metrics
from services.common.signed import Keyring
from services.session_binding.ledger import SessionLedger, dynamodb_client
from services.session_binding.settings import BindingSettings

SERVICE_NAME = "session-binding"  # the metrics' Service dimension


@dataclass(frozen=True)
class Runtime:
    """Everything built once per process from the settings."""

    settings: BindingSettings
    keyring: Keyring
    verifier: AlbIdentityVerifier
    agentcore: LazyClient
    ledger: SessionLedger
    connections: ConnectionsRegistry
    clock: Callable[[], float]
    metrics: Metrics
    limiter: list[anyio.CapacityLimiter] = field(default_factory=list)  # created in the event loop, on first use

    def agentcore_limiter(self) -> anyio.CapacityLimiter:
        # A few threads suffice to keep AgentCore calls in flight; more only fight the event loop for
        # the GIL and stretch tail latency (measured by bench/binding.py).
        if not self.limiter:
            self.limiter.append(anyio.CapacityLimiter(self.settings.agentcore_concurrency))
        return self.limiter[0]

    @classmethod
    def build(cls, settings: BindingSettings, clock: Callable[[], float]) -> Runtime:
        agentcore = LazyClient(lambda: agentcore_client(settings))
        dynamodb = LazyClient(
            lambda: dynamodb_client(
                settings.aws_region,
                connect_timeout_s=settings.dynamodb_connect_timeout_s,
                read_timeout_s=settings.dynamodb_read_timeout_s,
                max_attempts=settings.dynamodb_max_attempts,
            )
        )
        ledger = SessionLedger(
            settings.binding_table, dynamodb.get, lease_s=settings.ledger_lease_s, clock=clock, concurrency=settings.agentcore_concurrency
        )
        connections = ConnectionsRegistry(settings.connections_table, dynamodb.get, concurrency=settings.agentcore_concurrency)
        metrics = Metrics(namespace=settings.metrics_namespace, service=SERVICE_NAME)
        return cls(settings, build_keyring(settings), build_verifier(settings, clock), agentcore, ledger, connections, clock, metrics)


async def app_runtime(request: Request) -> Runtime:  # async: FastAPI would run a plain function in a worker thread
    runtime: Runtime = request.app.state.runtime()
    return runtime


BindingRuntime = Annotated[Runtime, Depends(app_runtime)]
