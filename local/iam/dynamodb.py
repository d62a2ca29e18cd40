"""IAM for the local DynamoDB: which action on which table ARN each request needs, and AWS's refusals.

From the DynamoDB developer guide ("Using identity-based policies with Amazon DynamoDB", "DynamoDB
API permissions: actions, resources, and conditions reference", and "Using IAM with DynamoDB
transactions"):

- a single-item or query call needs `dynamodb:<Operation>` on `arn:aws:dynamodb:<region>:<account>:table/<name>`
  (on `…/table/<name>/index/<index>` for a Query or Scan of an index);
- `BatchGetItem` and `BatchWriteItem` need that action on every table in `RequestItems`;
- `TransactWriteItems` and `TransactGetItems` need the action of each item on its table: `PutItem`,
  `UpdateItem`, `DeleteItem`, `ConditionCheckItem`, `GetItem`;
- `ListTables` has no resource: `*`.

Refusals are DynamoDB's JSON-1.0 errors with status 400 (`com.amazon.coral.service#AccessDeniedException`,
`…#UnrecognizedClientException`, `…#InvalidSignatureException`, …), which botocore turns into its exceptions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
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


def needs(operation: str, body: Mapping[str, Any], region: str, account: str) -> list[tuple[str, str]]:
    """(IAM action, resource ARN) pairs the request is authorized against."""
    table = f"arn:aws:dynamodb:{region}:{account}:table/"
    if operation == "ListTables":
        return [("dynamodb:ListTables", "*")]
    if operation in ("BatchGetItem", "BatchWriteItem"):
        return [(f"dynamodb:{operation}", table + str(name)) for name in body.get("RequestItems") or {}]
    if operation in ("TransactWriteItems", "TransactGetItems"):
        pairs = []
        for entry in body.get("TransactItems") or []:
            for kind, spec in entry.items() if isinstance(entry, dict) else ():
                if kind in _TRANSACT_ACTIONS and isinstance(spec, dict):
                    pairs.append((f"dynamodb:{_TRANSACT_ACTIONS[kind]}", table + str(spec.get("TableName"))))
        return pairs
    resource = table + str(body.get("TableName"))
    if operation in ("Query", "Scan") and body.get("IndexName"):
        resource += f"/index/{body['IndexName']}"
    return [(f"dynamodb:{operation}", resource)]


def refusal(
    principals: Principals, request: tuple[str, str, Mapping[str, str], bytes], *, region: str, account: str
) -> tuple[int, dict[str, Any]] | None:
    """None when the request (method, target, headers, body) is signed by a known principal allowed to make
    it; else DynamoDB's error answer."""
    method, target, headers, raw = request
    try:
        caller = principals.authenticate(method, target, headers, raw)
    except SignatureError as exc:
        return 400, {"__type": _ERROR_PREFIX + exc.code, "message": exc.message}
    operation = ({k.lower(): v for k, v in headers.items()}.get("x-amz-target") or "").rpartition(".")[2]
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        return None  # not authorizable; DynamoDB answers the malformed request itself
    try:
        for action, resource in needs(operation, body if isinstance(body, dict) else {}, region, account):
            principals.require(caller, action, [resource])
    except AccessDenied as exc:
        return 400, {"__type": _ERROR_PREFIX + AccessDenied.code, "Message": exc.message}
    return None
