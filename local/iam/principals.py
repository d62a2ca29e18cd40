"""Who is calling a local stand-in, and whether that role's synthesized policy lets it.

Each service of the local stack runs with credentials of its own (`Principal.environment()`), as each
ECS task and Lambda function has its own role in AWS. A stand-in that checks IAM (the AgentCore
Identity emulator, the local DynamoDB) asks `Principals.authenticate` who signed the request (SigV4,
`local/iam/sigv4.py`), then `require` whether that role's statements, as synthesized in the CDK
templates (`local/iam/templates.py`), allow the action on each resource (`local/iam/policy.py`), and
answers AWS's `AccessDeniedException` when they do not.

One more principal, `administrator`, is allowed everything: it is the person or CloudFormation
creating resources (the local stack's setup, `make verify`'s AgentCore calls), as an administrator's
credentials are in AWS.

`forward_read_secret` models how AgentCore Identity reads an `EXTERNAL` client secret: with the
caller's credentials (a forward access session, docs/deploy.md "How AgentCore reads the client
secret"), so the caller's role needs `secretsmanager:GetSecretValue` on the secret, with
`aws:ViaAWSService` true, and `kms:Decrypt` on the secret's key with `kms:ViaService` Secrets Manager.
That reading is an assumption about AWS, checked only in an account (`make verify`).
"""

from __future__ import annotations

import secrets
import string
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from local.iam.policy import Decision, Statement, denial_reason, evaluate
from local.iam.sigv4 import SignatureError, single_valued, verify
from local.iam.templates import SERVICES, LocalResources, Templates

ADMINISTRATOR = "administrator"
_KEY_ALPHABET = string.ascii_uppercase + "234567"  # access key ids: upper-case letters and digits, as AWS's


class AccessDenied(Exception):
    """AWS's AccessDeniedException, with AWS's wording of the message."""

    code = "AccessDeniedException"
    status = 403

    def __init__(self, message: str, *, action: str, resource: str) -> None:
        super().__init__(message)
        self.message, self.action, self.resource = message, action, resource


@dataclass(frozen=True)
class Principal:
    """A role's session: its name in the local stack, its keys, and its statements (None: allowed everything)."""

    name: str
    role_name: str
    account: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    statements: tuple[Statement, ...] | None

    @property
    def arn(self) -> str:
        return f"arn:aws:sts::{self.account}:assumed-role/{self.role_name}/{self.name}"

    def environment(self) -> dict[str, str]:
        """The variables boto3 reads its credentials from."""
        return {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key}

    def without(self, keep: Callable[[Statement], bool]) -> Principal:
        """The same principal with only the statements `keep` accepts (tests take a permission away)."""
        assert self.statements is not None, "the administrator has no statements to remove"
        return replace(self, statements=tuple(s for s in self.statements if keep(s)))


@dataclass(frozen=True)
class Decided:
    """One evaluation, for tests and the demo's log: who, what, on which resource, and the answer."""

    principal: str
    action: str
    resource: str
    decision: Decision


def _new_key_id() -> str:
    return "ASIA" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16))


class Principals:
    """The local stack's principals by access key, and the checks the stand-ins ask for."""

    def __init__(self, principals: Iterable[Principal], *, secret_keys: Mapping[str, str] | None = None) -> None:
        self._by_key = {p.access_key_id: p for p in principals}
        self._by_name = {p.name: p for p in self._by_key.values()}
        self.secret_keys = dict(secret_keys or {})  # secret ARN -> the KMS key ARN it is encrypted under
        self.decided: deque[Decided] = deque(maxlen=20_000)  # the latest; a long `make demo` keeps no more
        self._lock = threading.Lock()

    @classmethod
    def for_services(cls, templates: Templates, local: LocalResources) -> Principals:
        """One principal per service with its role's synthesized statements, and the administrator."""
        made = [_principal(name, templates.role_name(name), local.account, templates.statements(name)) for name in SERVICES]
        made.append(Principal(ADMINISTRATOR, "Administrator", local.account, _new_key_id(), secrets.token_urlsafe(30), None))
        return cls(made, secret_keys=dict.fromkeys(local.client_secrets.values(), local.client_secret_key_arn))

    def __getitem__(self, name: str) -> Principal:
        return self._by_name[name]

    def fresh(self) -> Principals:
        """The same principals and keys with an empty record of decisions (a test reads only its own)."""
        return Principals(self._by_key.values(), secret_keys=self.secret_keys)

    def replaced(self, principal: Principal) -> Principals:
        """These principals with one of them replaced (same keys): how a test removes a statement."""
        kept = [p for p in self._by_key.values() if p.name != principal.name]
        return Principals([*kept, principal], secret_keys=self.secret_keys)

    # -------------------------------------------------------------- the checks

    def authenticate(
        self, method: str, target: str, headers: Iterable[tuple[str, str]], body: bytes, *, scope: tuple[str, str]
    ) -> Principal:
        """The principal whose keys signed this request for `scope` (region, signing name); SignatureError as
        AWS words it otherwise, also for a header sent twice."""
        signed = verify(
            method,
            target,
            single_valued(headers),
            body,
            lambda key: p.secret_access_key if (p := self._by_key.get(key)) else None,
            scope=scope,
        )
        return self._by_key[signed.access_key_id]

    def require(
        self, principal: Principal, action: str, resources: Sequence[str], context: Mapping[str, str | Sequence[str]] | None = None
    ) -> None:
        """Raise AccessDenied unless `principal` may do `action` on every one of `resources`. The request context
        holds the global keys AWS sets on every call (a direct call unless `context` says otherwise)."""
        full = self._base_context(principal) | dict(context or {})
        for resource in resources:
            decision = Decision.ALLOW if principal.statements is None else evaluate(principal.statements, action, resource, full)
            with self._lock:
                self.decided.append(Decided(principal.name, action, resource, decision))
            if decision is not Decision.ALLOW:
                raise AccessDenied(
                    f"User: {principal.arn} is not authorized to perform: {action} on resource: {resource} because "
                    + denial_reason(decision, action),
                    action=action,
                    resource=resource,
                )

    @staticmethod
    def _base_context(principal: Principal) -> dict[str, str]:
        return {
            "aws:PrincipalArn": f"arn:aws:iam::{principal.account}:role/{principal.role_name}",
            "aws:PrincipalAccount": principal.account,
            "aws:ViaAWSService": "false",
            "aws:SecureTransport": "true",  # the services reach AWS over HTTPS only; locally plain HTTP stands in for it
        }

    def forward_read_secret(self, principal: Principal, secret_arn: str, region: str) -> None:
        """An AWS service reads `secret_arn` for `principal` with its credentials (see the module docstring)."""
        via = {"aws:ViaAWSService": "true", "aws:CalledVia": "bedrock-agentcore.amazonaws.com"}
        self.require(principal, "secretsmanager:GetSecretValue", [secret_arn], via)
        key = self.secret_keys.get(secret_arn)
        if key is not None:
            self.require(principal, "kms:Decrypt", [key], via | {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"})

    def denials(self) -> list[Decided]:
        with self._lock:
            return [d for d in self.decided if d.decision is not Decision.ALLOW]


def _principal(name: str, role_name: str, account: str, statements: list[dict[str, Any]]) -> Principal:
    parsed = tuple(Statement.from_json(s) for s in statements)
    return Principal(name, role_name, account, _new_key_id(), secrets.token_urlsafe(30), parsed)


__all__ = ["ADMINISTRATOR", "AccessDenied", "Decided", "Principal", "Principals", "SignatureError"]
