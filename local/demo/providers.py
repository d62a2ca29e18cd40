"""The outbound providers the local stack runs: the `demo` entries of `cdk.json`'s `providers`, as deployed.

The stacks give each `demo` provider its own app client at the one demo authorization server, its own
AgentCore credential provider (`<app_name>-<profile>-<name>`) and its own client secret. The local stack
does the same against the local consent issuer, from the same file, so the names the IAM statements carry
are the names the emulator serves (checked against the synthesized templates at start). Other kinds (GitHub,
Google ...) need accounts at those services and are not run locally.

`cdk.json` is read as data: `local/` does not import the CDK app's configuration code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CDK_JSON = Path(__file__).resolve().parents[2] / "cdk.json"
CLIENT_SECRET_JSON_KEY = "client_secret"  # noqa: S105 - the JSON key the AgentIdentity stack uses, not a secret


class ProvidersError(ValueError):
    """cdk.json has no demo provider the local stack can run; the message says what to change."""


@dataclass(frozen=True)
class LocalProvider:
    """One `demo` provider: its names here and in AgentCore, its scopes in words, its client at the local issuer."""

    name: str
    display_name: str
    scopes: dict[str, str]
    credential_provider: str

    @property
    def client_id(self) -> str:
        return f"local-agentcore-{self.name}"

    @property
    def secret_name(self) -> str:
        """The Secrets Manager name of its client secret (a random suffix makes each stack's secret its own)."""
        return f"local-demo-{self.name}-client"

    @property
    def scope_string(self) -> str:
        """Its scopes as AgentCore's vault keys them: sorted, space-separated."""
        return " ".join(sorted(self.scopes))

    def agent_entry(self, api_url: str) -> dict[str, Any]:
        """Its entry in the agent's PROVIDERS variable (services.agent.settings.ProviderSpec)."""
        return {
            "name": self.name,
            "kind": "demo",
            "display_name": self.display_name,
            "credential_provider": self.credential_provider,
            "scopes": self.scopes,
            "api_url": api_url,
        }


def local_providers(cdk_json: Path = CDK_JSON) -> tuple[LocalProvider, ...]:
    """The demo providers of the default configuration, in its order."""
    context: dict[str, Any] = json.loads(cdk_json.read_text())["context"]
    prefix = f"{context.get('app_name', 'agentcore-ecs')}-{context.get('profile', 'sandbox')}"
    found = tuple(
        LocalProvider(
            name=str(entry["name"]),
            display_name=str(entry["display_name"]),
            scopes={str(k): str(v) for k, v in entry["scopes"].items()},
            credential_provider=f"{prefix}-{entry['name']}",
        )
        for entry in context.get("providers", [])
        if isinstance(entry, dict) and entry.get("kind") == "demo"
    )
    if not found:
        raise ProvidersError(f"{cdk_json}: the local stack runs the 'demo' entries of 'providers', and there are none")
    return found
