"""A LOCAL STAND-IN for AWS Secrets Manager: moto's server on loopback, one per process, for the local stack.

The AgentIdentity stack keeps the notes API client's secret in a Secrets Manager secret of its own, as
JSON, and gives AgentCore Identity the secret's ARN and JSON key (`clientSecretSource` EXTERNAL,
`stacks/constructs/agent_identity.py`). The local stack does the same here: it stores the secret, the
AgentCore Identity emulator reads it through boto3 at each token request (`providers.secretsmanager_reader`).

The server (moto, a dev dependency) starts at the first use in a process, on 127.0.0.1 and a port the
kernel picks, in a daemon thread, so it ends with the process; every stack in the process shares it
and stores its secrets under names of its own, deleted when it stops. Request logs are off. Clients
get fixed local keys, so boto3 never looks for credentials elsewhere. Moto keeps its state in module
globals: a `/moto-api/reset` on another moto server of the same process (`tests/support/moto_aws.py`)
also empties this one. Not AWS: no KMS, no resource policy, no IAM here. Each stack's secrets count as
encrypted under a KMS key ARN of its own (`key_arn`): the local IAM check asks the reading role for
`kms:Decrypt` on it, as AWS asks for it on the secret's customer-managed key (`local/iam/principals.py`).
"""

from __future__ import annotations

import json
import secrets
import threading
import uuid
from collections.abc import Mapping
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from local.agentcore_identity.providers import SecretReader, secretsmanager_reader

HOST = "127.0.0.1"  # always loopback, whatever host the stack serves on
_LOCK = threading.Lock()
_endpoint: str | None = None


def endpoint() -> str:
    """The process's local Secrets Manager, started on first use."""
    global _endpoint  # noqa: PLW0603 - one server per process, started lazily
    with _LOCK:
        if _endpoint is None:
            _endpoint = _serve()
        return _endpoint


def _serve() -> str:
    # Imported here: moto takes about 0.3 s to import, paid only by a process that starts a stack.
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app  # noqa: PLC0415
    from werkzeug.serving import make_server  # noqa: PLC0415

    class QuietHandler(MotoRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            """No access log on the demo's console (errors are still logged)."""

    server = make_server(HOST, 0, DomainDispatcherApplication(create_backend_app), threaded=True, request_handler=QuietHandler)
    threading.Thread(target=server.serve_forever, name="local-secretsmanager", daemon=True).start()
    return f"http://{HOST}:{server.server_port}"


class LocalSecretsManager:
    """One stack's view of the process's local Secrets Manager: its secrets, and the emulator's reader of them."""

    def __init__(self, region: str) -> None:
        self.region = region
        self.key_arn = f"arn:aws:kms:{region}:123456789012:key/{uuid.uuid4()}"  # stands for the stack's secrets key
        self._client: Any = None
        self._reader: SecretReader | None = None
        self._arns: list[str] = []

    def client(self) -> Any:
        if self._client is None:
            self._client = boto3.client(
                "secretsmanager",
                region_name=self.region,
                endpoint_url=endpoint(),
                aws_access_key_id="local",
                aws_secret_access_key="local",  # noqa: S106 - moto checks no signature
                config=Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=2, read_timeout=10),
            )
        return self._client

    def create_json_secret(self, prefix: str, values: Mapping[str, str]) -> str:
        """A new secret named `prefix-<random>` holding `values` as JSON; its ARN."""
        name = f"{prefix}-{secrets.token_hex(6)}"
        arn = str(self.client().create_secret(Name=name, SecretString=json.dumps(dict(values)))["ARN"])
        self._arns.append(arn)
        return arn

    def read(self, secret_id: str, json_key: str) -> tuple[str, str]:
        """The emulator's `secret_reader` (`SecretReader`): the secret's ARN and the value under `json_key`."""
        if self._reader is None:
            self._reader = secretsmanager_reader(client=self.client())
        return self._reader(secret_id, json_key)

    def missing(self) -> list[str]:
        """This stack's secrets the server no longer has. The server's state is moto's, which is per process: a
        reset of moto elsewhere in the process (tests/support/moto_aws.py resets it before each test) wipes them."""
        gone = []
        for arn in self._arns:
            try:
                self.client().describe_secret(SecretId=arn)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                    raise
                gone.append(arn)
        return gone

    def delete_all(self) -> None:
        """Delete this stack's secrets at once (no recovery window); safe when none were made."""
        while self._arns:
            self.client().delete_secret(SecretId=self._arns.pop(), ForceDeleteWithoutRecovery=True)
