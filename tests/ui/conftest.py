"""Fixtures for the browser tests: one headless Chromium per module, and the service fixtures of
tests/services (ALB keys, the AgentCore, Bedrock and resource stand-ins, the agent harness) for the
tests that drive the real services."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser

from tests.services.conftest import agent, agentcore, alb_key, bedrock, binding_table, key_server, make_agent, make_harness, resource
from tests.ui.browsing import chromium

__all__ = ["agent", "agentcore", "alb_key", "bedrock", "binding_table", "browser", "key_server", "make_agent", "make_harness", "resource"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched
