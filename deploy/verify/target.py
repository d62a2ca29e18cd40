"""Everything the checks need to know about the stack they verify, in one value.

What differs between an account and `make demo` is decided here, once, and handed to the checks as
data: the public URL, the sign-in issuer, how to reach AgentCore (endpoint and credentials), where
the consent client and callback come from, and who signs in. A check never asks which one it runs
against. An input that cannot be had is recorded with the reason, and the checks that need it are
skipped with that reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from deploy.verify.users import People

DEFAULT_QUESTION = "show my notes"
DEFAULT_STATE_PARAM = "state"
DEFAULT_CHROMIUM = Path("/usr/bin/chromium")


@dataclass(frozen=True)
class AgentCoreAccess:
    """How to call AgentCore Identity: the caller's session, the region, and an endpoint (None: AWS's own)."""

    session: boto3.Session
    region: str
    endpoint_url: str | None = None

    def client(self, service: str, *, validate: bool = True) -> Any:
        """`validate=False` sends what botocore would refuse, to see the service's own ValidationException."""
        config = Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=5, read_timeout=20, parameter_validation=validate)
        return self.session.client(service, region_name=self.region, endpoint_url=self.endpoint_url, config=config)


@dataclass(frozen=True)
class ConsentClient:
    """The OAuth client AgentCore uses at the provider, and AgentCore's callback URL registered there."""

    client_id: str
    callback_url: str
    authorization_endpoint: str | None = None  # given by the provider's metadata, or
    discovery_url: str | None = None  # read from its discovery document
    scope: str = "openid"


@dataclass(frozen=True)
class Target:
    where: str  # for the report's first line: an account and region, or the URL
    url: str  # the public base URL, without a trailing slash
    workload_name: str
    provider_name: str
    state_param: str = DEFAULT_STATE_PARAM
    question: str = DEFAULT_QUESTION
    chromium: Path = DEFAULT_CHROMIUM
    sign_in_issuer: str | None = None
    agentcore: AgentCoreAccess | None = None
    consent: ConsentClient | None = None
    people: People | None = None
    # Why an input above is None, by field name ("agentcore", "consent", "people", "sign_in_issuer").
    missing: Mapping[str, str] = field(default_factory=dict)

    def why_missing(self, name: str) -> str:
        return self.missing.get(name, f"no {name.replace('_', ' ')} was given")
