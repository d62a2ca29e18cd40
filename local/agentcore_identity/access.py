"""IAM in the emulator: who is calling, and which resources each operation is authorized against.

With `Emulator(principals=…)` (the local stack passes its `local.iam.Principals`), every AWS operation
must be signed with a known principal's keys (SigV4), and that principal's synthesized statements must
allow `bedrock-agentcore:<Operation>` on every resource below, or the answer is AWS's
`AccessDeniedException`. Without principals nothing is checked (the service tests' scripted setups).

Resources per operation, as the stacks grant them (`stacks/constructs/agent_identity.py`,
`AgentCoreArns`, from the Service Authorization Reference's resource types for each action):

- workload identity operations and the three workload-token calls: the directory
  `workload-identity-directory/default` and the workload identity;
- credential provider operations: the token vault `token-vault/default` and the provider;
- `GetResourceOauth2Token` and `CompleteResourceTokenAuth`: the directory, the workload identity
  (from the workload token, or from the session), the token vault and the provider.

Assumed: AWS authorizes each of these; the emulator requires all of them (the strictest reading),
so a grant that leaves one out fails here first. An unknown token or session is authorized against
what is known, then refused by the operation itself.

The code exchange at the browser callback runs as the principal that started the session, and an
`EXTERNAL` client secret is read with the caller's credentials (`Principals.forward_read_secret`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from local.iam.principals import AccessDenied, Principal, Principals

CALLER: ContextVar[Principal | None] = ContextVar("agentcore_identity_caller", default=None)

_WORKLOAD_OPERATIONS = frozenset(
    {
        "CreateWorkloadIdentity",
        "UpdateWorkloadIdentity",
        "GetWorkloadIdentity",
        "GetWorkloadAccessToken",
        "GetWorkloadAccessTokenForUserId",
        "GetWorkloadAccessTokenForJWT",
    }
)
_PROVIDER_OPERATIONS = frozenset({"CreateOauth2CredentialProvider", "GetOauth2CredentialProvider"})


@contextmanager
def acting_as(principal: Principal | None) -> Iterator[None]:
    """Run the block as `principal` (the caller of an operation, or the one who started a session)."""
    token = CALLER.set(principal)
    try:
        yield
    finally:
        CALLER.reset(token)


class Arns:
    """The emulator's ARNs for one account and region."""

    def __init__(self, region: str, account: str) -> None:
        self.base = f"arn:aws:bedrock-agentcore:{region}:{account}"
        self.directory = f"{self.base}:workload-identity-directory/default"
        self.vault = f"{self.base}:token-vault/default"

    def workload(self, name: str) -> str:
        return f"{self.directory}/workload-identity/{name}"

    def provider(self, name: str) -> str:
        return f"{self.vault}/oauth2credentialprovider/{name}"


def resources_for(arns: Arns, operation: str, body: dict[str, Any], workload: str | None, provider: str | None) -> list[str]:
    """The resources `operation` is authorized against; `workload` and `provider` are what the
    backend found for a token or session (None: unknown)."""
    if operation in _WORKLOAD_OPERATIONS:
        name = body.get("name") or body.get("workloadName")
        return [arns.directory, *([arns.workload(str(name))] if name else [])]
    if operation in _PROVIDER_OPERATIONS:
        return [arns.vault, arns.provider(str(body["name"]))]
    found = [arns.directory, arns.vault]
    if workload is not None:
        found.append(arns.workload(workload))
    if provider is not None:
        found.append(arns.provider(provider))
    return found


def require(principals: Principals | None, action: str, resources: list[str]) -> None:
    """Raise AccessDenied unless the current caller may do `action` on every resource (nothing without principals)."""
    if principals is None:
        return
    caller = CALLER.get()
    if caller is None:
        raise AccessDenied(f"no credentials for {action}", action=action, resource=resources[0] if resources else "*")
    principals.require(caller, action, resources)


def read_secret_as_caller(principals: Principals | None, secret_arn: str, region: str) -> None:
    """Raise AccessDenied unless the current caller's role lets AgentCore read `secret_arn` for it."""
    if principals is None:
        return
    caller = CALLER.get()
    if caller is None:
        raise AccessDenied("no credentials to read the client secret with", action="secretsmanager:GetSecretValue", resource=secret_arn)
    principals.forward_read_secret(caller, secret_arn, region)
