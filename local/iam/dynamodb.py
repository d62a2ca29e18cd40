"""IAM for the local DynamoDB: which action on which table ARN each request needs, and AWS's refusals.

From the DynamoDB developer guide ("Using identity-based policies with Amazon DynamoDB", "DynamoDB
API permissions: actions, resources, and conditions reference", and "Using IAM with DynamoDB
transactions"):

- a single-item or query call needs `dynamodb:<Operation>` on `arn:aws:dynamodb:<region>:<account>:table/<name>`
  (on `…/table/<name>/index/<index>` for a Query or Scan of an index);
- `BatchGetItem` and `BatchWriteItem` need that action on every table in `RequestItems`;
- `TransactWriteItems` and `TransactGetItems` need the action of each item on its table: `PutItem`,
  `UpdateItem`, `DeleteItem`, `ConditionCheckItem`, `GetItem`;
- `ListTables` and every call not mapped here: `*` (only the administrator may).

Refusals are DynamoDB's JSON-1.0 errors with status 400 (`com.amazon.coral.service#AccessDeniedException`,
`…#UnrecognizedClientException`, `…#InvalidSignatureException`, …), which botocore turns into its exceptions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from local.iam.principals import AccessDenied, Principals, SignatureError

_TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}
_ERROR_PREFIX = "com.amazon.coral.service#"


# Calls on one table named by `TableName`; anything not listed here is authorized on `*` only (the
# administrator), so an unmapped call never passes on a table grant.
_ONE_TABLE = frozenset(
    {
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "Scan",
        "DescribeTable",
        "CreateTable",
        "DeleteTable",
        "UpdateTable",
        "DescribeTimeToLive",
        "UpdateTimeToLive",
    }
)


class Unauthorizable(ValueError):
    """A request whose resources cannot be told (no table, an unknown transaction item): refused."""


def needs(operation: str, body: Mapping[str, Any], region: str, account: str) -> list[tuple[str, str]]:
    """(IAM action, resource ARN) pairs the request is authorized against; Unauthorizable when there are none."""
    table = f"arn:aws:dynamodb:{region}:{account}:table/"
    if operation in ("BatchGetItem", "BatchWriteItem"):
        pairs = [(f"dynamodb:{operation}", table + str(name)) for name in body.get("RequestItems") or {}]
    elif operation in ("TransactWriteItems", "TransactGetItems"):
        pairs = [_transact_item(entry, table) for entry in body.get("TransactItems") or []]
    elif operation in _ONE_TABLE and isinstance(body.get("TableName"), str):
        resource = table + str(body["TableName"])
        if operation in ("Query", "Scan") and body.get("IndexName"):
            resource += f"/index/{body['IndexName']}"
        pairs = [(f"dynamodb:{operation}", resource)]
    else:
        pairs = [(f"dynamodb:{operation or 'Unknown'}", "*")]
    if not pairs:
        raise Unauthorizable(f"{operation} names no table")
    return pairs


def _transact_item(entry: Any, table: str) -> tuple[str, str]:
    if not isinstance(entry, dict) or len(entry) != 1:
        raise Unauthorizable("each TransactItems entry must hold exactly one action")
    kind, spec = next(iter(entry.items()))
    if kind not in _TRANSACT_ACTIONS or not isinstance(spec, dict) or not isinstance(spec.get("TableName"), str):
        raise Unauthorizable(f"a TransactItems entry {kind!r} without a known action and TableName")
    return f"dynamodb:{_TRANSACT_ACTIONS[kind]}", table + spec["TableName"]


def refusal(principals: Principals, request: Request, *, region: str, account: str) -> tuple[int, dict[str, Any]] | None:
    """None when the request is signed by a known principal allowed to make it; else DynamoDB's error answer."""
    try:
        caller = principals.authenticate(request.method, request.target, request.headers, request.body, scope=(region, "dynamodb"))
    except SignatureError as exc:
        return 400, {"__type": _ERROR_PREFIX + exc.code, "message": exc.message}
    try:
        body = json.loads(request.body or b"{}")
        for action, resource in needs(request.operation, body if isinstance(body, dict) else {}, region, account):
            principals.require(caller, action, [resource])
    except AccessDenied as exc:
        return 400, {"__type": _ERROR_PREFIX + AccessDenied.code, "Message": exc.message}
    except (ValueError, Unauthorizable) as exc:
        return 400, {"__type": _ERROR_PREFIX + "ValidationException", "message": f"not authorized: {exc}"}
    return None


@dataclass(frozen=True)
class Request:
    """One request as the front received it: every header (repeats kept), and the operation it serves."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    operation: str
