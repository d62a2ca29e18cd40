"""Fixtures for the security suite: the service fixtures of tests/services (real ES256 ALB tokens, a
loopback key endpoint, loopback AgentCore, Bedrock and resource stand-ins reached by real boto3 and
httpx clients), plus the two services behind one ALB-like router with settings shared by both."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from local.agentcore_identity import AgentCoreStandIn
from local.alb.keys import KeyServer
from local.bedrock import BedrockStandIn
from local.standins.resource_api import ResourceStandIn
from services.agent.main import create_app as create_agent_app
from services.common.signed import Keyring
from tests.services import conftest as service_fixtures
from tests.services.conftest import AgentHarness, AlbRouter, BindingHarness, agent_settings, connections_table_of

# The service fixtures, for this directory too.
alb_key = service_fixtures.alb_key
key_server = service_fixtures.key_server
agentcore = service_fixtures.agentcore
bedrock = service_fixtures.bedrock
resource = service_fixtures.resource
make_harness = service_fixtures.make_harness
binding_table = service_fixtures.binding_table
harness = service_fixtures.harness
make_agent = service_fixtures.make_agent
agent = service_fixtures.agent


@pytest.fixture
def make_stack(
    make_harness: Callable[..., BindingHarness],
    key_server: KeyServer,
    *,
    agentcore: AgentCoreStandIn,
    bedrock: BedrockStandIn,
    resource: ResourceStandIn,
    binding_table: str,
) -> Iterator[Callable[..., AgentHarness]]:
    """Both services behind the ALB router, with settings (signing keys, log level) shared by both."""

    def make(*, signing_keys: list[dict[str, str]] | None = None, **shared: Any) -> AgentHarness:
        if signing_keys is not None:
            shared["flow_signing_keys"] = json.dumps(signing_keys)
        binding = make_harness(**shared)
        if signing_keys is not None:
            binding.keyring = Keyring.from_json(json.dumps(signing_keys))
        settings = agent_settings(key_server, resource, **({"connections_table": connections_table_of(binding_table)} | shared))
        agent_app = create_agent_app(lambda: settings, clock=binding.now)
        return AgentHarness(AlbRouter(agent_app, binding.app), agent_app, binding, agentcore, bedrock, resource)

    yield make
