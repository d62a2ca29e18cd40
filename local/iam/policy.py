"""An IAM identity-policy evaluator for exactly the statement shapes this app synthesizes.

The local stack uses it to answer "would the task role's policies allow this call?" offline. It follows
the AWS IAM User Guide pages "Policy evaluation logic", "IAM JSON policy elements: Action",
"IAM JSON policy elements: Resource", "IAM JSON policy elements: Condition",
"IAM JSON policy elements: Condition operators" and "Conditions with multiple context keys or values":

- An explicit Deny wins, then any Allow; otherwise the request is implicitly denied. Only identity-based
  policies in one account are modelled: no SCPs/RCPs, permissions boundaries, resource-based policies or
  session policies.
- Action: case-insensitive, `*` and `?` wildcards. Resource: `*` alone matches anything; otherwise the
  ARN is matched case-sensitively, `*` and `?` staying within one colon-separated segment, except that a
  `*` that is the last character of a segment may expand across colons (the Resource page's wording).
- Condition: keys case-insensitive, values case-sensitive (but StringEqualsIgnoreCase); several values
  for one key OR (NOR for the negated operators), several keys and operators AND. A key missing from the
  request context makes a positive operator false and a negated one true; `...IfExists` makes it true.
  A multivalued context key (a list) matches a single-valued operator when any of its values matches
  (the negated operators: when none does) - a simplification; ForAnyValue/ForAllValues are not modelled.

Anything else (NotAction, NotResource, Principal, NotPrincipal, set operators, Null, Numeric, Date,
IpAddress, policy variables, unknown elements) raises UnsupportedPolicy, so a new statement shape makes
the offline check fail loudly instead of guessing.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

# (operator, key, values): one key of one condition operator block.
Condition = tuple[str, str, tuple[str, ...]]
Context = Mapping[str, str | Sequence[str]]

_ELEMENTS = ("Sid", "Effect", "Action", "Resource", "Condition")
_UNSUPPORTED_ELEMENTS = ("NotAction", "NotResource", "Principal", "NotPrincipal")
_SET_PREFIXES = ("ForAnyValue:", "ForAllValues:")
_IF_EXISTS = "IfExists"
# A negated operator is its positive counterpart, inverted.
_NEGATION = {"StringNotEquals": "StringEquals", "StringNotLike": "StringLike", "ArnNotEquals": "ArnEquals", "ArnNotLike": "ArnLike"}


class UnsupportedPolicy(ValueError):
    """A statement uses an element or operator this evaluator does not implement (message names it)."""


class Decision(enum.Enum):
    ALLOW = "Allow"
    IMPLICIT_DENY = "ImplicitDeny"
    EXPLICIT_DENY = "ExplicitDeny"


@lru_cache(maxsize=1024)
def _glob(pattern: str, *, star: str, question: str, flags: int = 0) -> re.Pattern[str]:
    """`pattern` with `*` and `?` turned into the given regex pieces and everything else literal."""
    pieces = [star if ch == "*" else question if ch == "?" else re.escape(ch) for ch in pattern]
    return re.compile("".join(pieces), flags | re.DOTALL)


@lru_cache(maxsize=1024)
def _resource_pattern(pattern: str) -> re.Pattern[str]:
    """Resource-element matching: wildcards stay within a segment, but a segment-final `*` may cross colons."""
    if pattern == "*":
        return re.compile(".*", re.DOTALL)
    pieces = []
    for index, ch in enumerate(pattern):
        if ch == "*":
            pieces.append(".*" if pattern[index + 1 : index + 2] in ("", ":") else "[^:]*")
        else:
            pieces.append("[^:]" if ch == "?" else re.escape(ch))
    return re.compile("".join(pieces), re.DOTALL)


def _action_matches(pattern: str, action: str) -> bool:
    return _glob(pattern, star=".*", question=".", flags=re.IGNORECASE).fullmatch(action) is not None


def _string_like(pattern: str, value: str) -> bool:
    return _glob(pattern, star=".*", question=".").fullmatch(value) is not None


def _arn_like(pattern: str, value: str) -> bool:
    """ArnEquals/ArnLike: each of the six colon-delimited parts compared on its own, wildcards allowed."""
    parts = value.split(":", 5)
    return len(parts) == 6 and all(_string_like(p, v) for p, v in zip(pattern.split(":", 5), parts, strict=True))


_POSITIVE: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": lambda policy, value: policy == value,
    "StringEqualsIgnoreCase": lambda policy, value: policy.casefold() == value.casefold(),
    "StringLike": _string_like,
    "Bool": lambda policy, value: policy.lower() == value.lower(),
    "ArnEquals": _arn_like,
    "ArnLike": _arn_like,
}


def _base_operator(operator: str) -> str:
    """The operator without `IfExists`; UnsupportedPolicy unless it is one this module implements."""
    for prefix in _SET_PREFIXES:
        if operator.startswith(prefix):
            raise UnsupportedPolicy(f"the set operator prefix {prefix} (in {operator}) is not supported")
    base = operator.removesuffix(_IF_EXISTS)
    if base not in _POSITIVE and base not in _NEGATION:
        raise UnsupportedPolicy(f"the condition operator {operator} is not supported")
    return base


def _no_variables(value: str, where: str) -> None:
    if "${" in value:
        raise UnsupportedPolicy(f"policy variables are not supported ({where}: {value!r})")


def _check_action(action: str) -> None:
    _no_variables(action, "Action")
    if action != "*" and ":" not in action:
        raise UnsupportedPolicy(f"an Action must be * or service:action, not {action!r}")


def _check_resource(resource: str) -> None:
    _no_variables(resource, "Resource")
    if resource == "*":
        return
    parts = resource.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        raise UnsupportedPolicy(f"a Resource must be * or an ARN, not {resource!r}")
    if "*" in parts[2] or "?" in parts[2]:
        raise UnsupportedPolicy(f"a wildcard in the service segment of a Resource ARN is not allowed: {resource!r}")


def _check_condition(operator: str, key: str, values: tuple[str, ...]) -> None:
    base = _NEGATION.get(_base_operator(operator), _base_operator(operator))
    _no_variables(key, "Condition key")
    if not values:
        raise UnsupportedPolicy(f"the condition {operator} {key} has no values")
    for value in values:
        _no_variables(value, f"Condition {operator} {key}")
        if base == "Bool" and value.lower() not in ("true", "false"):
            raise UnsupportedPolicy(f"Bool compares true or false, not {value!r} ({key})")
        if base in ("ArnEquals", "ArnLike") and len(value.split(":", 5)) != 6:
            raise UnsupportedPolicy(f"{operator} needs a six-part ARN pattern, not {value!r} ({key})")


def _strings(raw: Any, where: str) -> tuple[str, ...]:
    """A string or a non-empty list of strings, as a tuple."""
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items or not all(isinstance(item, str) for item in items):
        raise UnsupportedPolicy(f"{where} must be a string or a non-empty list of strings, not {raw!r}")
    return tuple(items)


def _conditions_from_json(raw: Any) -> tuple[Condition, ...]:
    if not isinstance(raw, Mapping):
        raise UnsupportedPolicy(f"Condition must be an object, not {raw!r}")
    conditions: list[Condition] = []
    for operator, block in raw.items():
        if not isinstance(block, Mapping) or not block:
            raise UnsupportedPolicy(f"the {operator} block must be a non-empty object, not {block!r}")
        conditions.extend((operator, key, _strings(values, f"Condition {operator} {key}")) for key, values in block.items())
    return tuple(conditions)


def _one_or_list(values: tuple[str, ...]) -> str | list[str]:
    return values[0] if len(values) == 1 else list(values)


def _normalised(context: Context | None) -> dict[str, tuple[str, ...]]:
    """Context keys lowercased (keys are case-insensitive); every value a tuple (multivalued or not)."""
    return {key.lower(): (value,) if isinstance(value, str) else tuple(value) for key, value in (context or {}).items()}


def _condition_holds(condition: Condition, context: Mapping[str, tuple[str, ...]]) -> bool:
    operator, key, values = condition
    base = _base_operator(operator)
    negated = base in _NEGATION
    present = context.get(key.lower())
    if present is None:
        return operator.endswith(_IF_EXISTS) or negated
    match = _POSITIVE[_NEGATION.get(base, base)]
    hit = any(match(policy, value) for policy in values for value in present)
    return hit != negated


@dataclass(frozen=True)
class Statement:
    """One validated identity-policy statement; construction raises UnsupportedPolicy for what is not modelled."""

    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    conditions: tuple[Condition, ...] = ()
    sid: str | None = None

    def __post_init__(self) -> None:
        if self.effect not in ("Allow", "Deny"):
            raise UnsupportedPolicy(f"Effect must be Allow or Deny, not {self.effect!r}")
        if not self.actions or not self.resources:
            raise UnsupportedPolicy("a statement needs at least one Action and one Resource")
        for action in self.actions:
            _check_action(action)
        for resource in self.resources:
            _check_resource(resource)
        seen: set[tuple[str, str]] = set()
        for operator, key, values in self.conditions:
            _check_condition(operator, key, values)
            if (operator, key.lower()) in seen:
                raise UnsupportedPolicy(f"the condition key {key} appears twice under {operator}")
            seen.add((operator, key.lower()))

    @classmethod
    def from_json(cls, statement: Mapping[str, Any]) -> Statement:
        """A statement from its IAM JSON shape (an object with Sid, Effect, Action, Resource, Condition)."""
        if not isinstance(statement, Mapping):
            raise UnsupportedPolicy(f"a statement must be an object, not {statement!r}")
        for name in statement:
            if name in _UNSUPPORTED_ELEMENTS:
                raise UnsupportedPolicy(f"the {name} element is not supported")
            if name not in _ELEMENTS:
                raise UnsupportedPolicy(f"the statement element {name!r} is not supported")
        for required in ("Effect", "Action", "Resource"):
            if required not in statement:
                raise UnsupportedPolicy(f"the statement has no {required} element")
        sid = statement.get("Sid")
        if sid is not None and not isinstance(sid, str):
            raise UnsupportedPolicy(f"Sid must be a string, not {sid!r}")
        return cls(
            effect=statement["Effect"],
            actions=_strings(statement["Action"], "Action"),
            resources=_strings(statement["Resource"], "Resource"),
            conditions=_conditions_from_json(statement.get("Condition", {})),
            sid=sid,
        )

    def to_json(self) -> dict[str, Any]:
        """The IAM JSON shape: one value as a string, several as a list (as CDK synthesizes them)."""
        document: dict[str, Any] = {} if self.sid is None else {"Sid": self.sid}
        document |= {"Effect": self.effect, "Action": _one_or_list(self.actions), "Resource": _one_or_list(self.resources)}
        if self.conditions:
            blocks: dict[str, dict[str, str | list[str]]] = {}
            for operator, key, values in self.conditions:
                blocks.setdefault(operator, {})[key] = _one_or_list(values)
            document["Condition"] = blocks
        return document

    def applies_to(self, action: str, resource: str, context: Context | None = None) -> bool:
        """Whether this statement matches the request (its Effect then says what that means)."""
        request_context = _normalised(context)
        return (
            any(_action_matches(pattern, action) for pattern in self.actions)
            and any(_resource_pattern(pattern).fullmatch(resource) is not None for pattern in self.resources)
            and all(_condition_holds(condition, request_context) for condition in self.conditions)
        )


def evaluate(statements: Iterable[Statement], action: str, resource: str, context: Context | None = None) -> Decision:
    """The decision of the identity policies `statements` for one request: explicit deny, allow, or implicit deny."""
    request_context = _normalised(context)
    allowed = False
    for statement in statements:
        if statement.applies_to(action, resource, request_context):
            if statement.effect == "Deny":
                return Decision.EXPLICIT_DENY
            allowed = True
    return Decision.ALLOW if allowed else Decision.IMPLICIT_DENY


def denial_reason(decision: Decision, action: str) -> str:
    """The tail of AWS's AccessDenied message ("... because <reason>") for a denied decision."""
    if decision is Decision.IMPLICIT_DENY:
        return f"no identity-based policy allows the {action} action"
    if decision is Decision.EXPLICIT_DENY:
        return "an explicit deny in an identity-based policy"
    raise ValueError("an allowed request has no denial reason")
