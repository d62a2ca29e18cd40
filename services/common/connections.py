"""The connections registry: which outbound accounts each person has connected, in DynamoDB.

AgentCore Identity can neither list nor delete one person's vault entries, so the app keeps its own
record, one item per person and provider. It never holds a token: only status, scopes and dates.

| attribute         | meaning                                                                     |
|-------------------|-----------------------------------------------------------------------------|
| `user`            | partition key: the person's stable key (opaque to this module, e.g. a digest) |
| `provider`        | sort key: the configured provider name (`notes`, `github`, …)                |
| `status`          | `connected` or `disconnected`                                               |
| `scopes`          | string set: the scopes granted (absent when none)                           |
| `connected_at`    | epoch seconds of the last consent (or of the first use seen, for an old grant) |
| `last_used_at`    | epoch seconds of the last use by the agent                                  |
| `disconnected_at` | epoch seconds of the last disconnect                                        |
| `generation`      | incremented by each connect and each disconnect: a consent flow carries the value read at its issue |

Writers: the session binding service when a consent completes (`record_connected`), the agent on
each use (`record_used`, which also says whether the account may be used) and a disconnect
(`record_disconnected`). Every write is one conditional UpdateItem, so no interleaving of tasks can
turn a disconnect back into a connection: only a consent whose flow was issued after the disconnect
does. Whether it was is decided by the record's `generation`, never by a clock: the agent reads it
when it issues a flow (0 when there is no record), and the consent reconnects a disconnected record
only if the generation has not moved since (no disconnect and no connect in between, even within the
same second). Every read is strongly consistent: a disconnect acknowledged on one task is seen by
the next read on any other.
"""

from __future__ import annotations

import builtins
import math
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from enum import Enum
from typing import Any

from services.common.alb_identity import AlbIdentity
from services.common.signed import digest
from services.common.table_calls import TableCalls

MAX_USER_CHARS = 512
MAX_SCOPES = 50
MAX_SCOPE_CHARS = 128
PROVIDER_PATTERN = re.compile(r"[a-z][a-z0-9-]{0,19}")
# RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ); at most 128 characters here.
SCOPE_PATTERN = re.compile(rf"[\x21\x23-\x5b\x5d-\x7e]{{1,{MAX_SCOPE_CHARS}}}")

_NAME_REF = re.compile(r"#[a-z]+")
_NAMES = {
    "#u": "user",
    "#p": "provider",
    "#st": "status",
    "#sc": "scopes",
    "#ca": "connected_at",
    "#lu": "last_used_at",
    "#da": "disconnected_at",
    "#g": "generation",
}


class Status(Enum):
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"


class Connected(Enum):
    """What `record_connected` did."""

    RECORDED = "recorded"  # the account is connected
    STALE_FLOW = "stale_flow"  # the record changed (a disconnect) after this consent's flow was issued: nothing changed


class RegistryUnavailable(Exception):
    """DynamoDB is throttling, unreachable or refusing: nothing was decided, try again later.
    The message is the error code alone: never a person, a provider or an item."""


@dataclass(frozen=True, slots=True)
class Connection:
    """One person's record for one provider, as read from the table."""

    provider: str
    status: Status
    scopes: tuple[str, ...]  # sorted
    connected_at: int | None
    last_used_at: int | None
    disconnected_at: int | None
    generation: int  # 0 when absent; a consent flow issued now carries it (`record_connected`)

    @property
    def usable(self) -> bool:
        """Whether the agent may use the account without a new consent."""
        return self.status is Status.CONNECTED


def connection_user(identity: AlbIdentity) -> str:
    """The registry's key for a person: a digest of the sign-in issuer and `sub` (as the ledger keys them),
    so neither is stored in clear. The agent and the session binding service both use this."""
    return digest(identity.user_key, 32)


def registry_client(
    region: str,
    *,
    connect_timeout_s: float = 1.0,
    read_timeout_s: float = 2.0,
    max_attempts: int = 3,
    app_id: str = "agentcore-ecs-connections",
) -> Any:
    """A DynamoDB client for the registry: standard retries, short timeouts (the agent asks before each
    use). The endpoint comes from the standard AWS settings (`AWS_ENDPOINT_URL_DYNAMODB` locally)."""
    import boto3  # noqa: PLC0415 - at first use, like the other AWS clients (Lambda cold start)
    from botocore.config import Config  # noqa: PLC0415

    config = Config(
        region_name=region,
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        connect_timeout=connect_timeout_s,
        read_timeout=read_timeout_s,
        max_pool_connections=50,
        tcp_keepalive=True,
        user_agent_appid=app_id,
    )
    return boto3.session.Session().client("dynamodb", config=config)


class ConnectionsRegistry:
    """The registry's operations; blocking boto3 calls run in worker threads, a few at a time."""

    def __init__(self, table: str, client: Callable[[], Any], *, concurrency: int = 4) -> None:
        """`client`: returns the process's one DynamoDB client (called in the worker thread).
        `concurrency`: table calls in flight per process."""
        self._call = TableCalls(table, client, concurrency=concurrency, unavailable=RegistryUnavailable)

    # ------------------------------------------------------------------ writes

    async def record_connected(self, user: str, provider: str, scopes: Collection[str], *, now: float, flow_generation: int) -> Connected:
        """The person consented to a flow issued when the record's `generation` was `flow_generation`
        (0: no record). Recorded when there is no record, when the account is connected anyway, or when
        the generation is still `flow_generation` (nothing happened since the issue). Otherwise the
        person disconnected after the flow was issued: refused, changing nothing (a consent link from
        before the disconnect must not undo it)."""
        granted = _scopes(scopes)
        update = "SET #st = :connected, #ca = :now, #g = if_not_exists(#g, :zero) + :one"
        values: dict[str, Any] = {
            ":connected": _s(Status.CONNECTED.value),
            ":now": _n(_epoch("now", now)),
            ":gen": _n(_generation("flow_generation", flow_generation)),
            ":zero": _n(0),
            ":one": _n(1),
        }
        if granted:
            update += ", #sc = :sc REMOVE #da"
            values[":sc"] = {"SS": list(granted)}
        else:
            update += " REMOVE #da, #sc"
        written = await self._update(
            _key(user, provider),
            update,
            # Absent, connected, or unchanged since the flow was issued (every connect and every
            # disconnect moves the generation on, so the generation read at the issue being still there
            # means the disconnect came before the issue). A record without a generation (none of the
            # writers makes one) fails the comparison: refused (fail closed).
            "attribute_not_exists(#p) OR #st = :connected OR #g = :gen",
            values,
        )
        return Connected.RECORDED if written is not None else Connected.STALE_FLOW

    async def record_used(self, user: str, provider: str, scopes: Collection[str], *, now: float) -> bool:
        """The agent is about to use the account: True (and `last_used_at` is now) unless the person
        disconnected it. Without a record (a grant from before the registry, first seen in use), a
        connected record is created. A disconnected record is never touched."""
        granted = _scopes(scopes)
        update = "SET #st = :connected, #ca = if_not_exists(#ca, :now), #lu = :now, #g = if_not_exists(#g, :one)"
        values: dict[str, Any] = {":connected": _s(Status.CONNECTED.value), ":now": _n(_epoch("now", now)), ":one": _n(1)}
        if granted:
            update += " ADD #sc :sc"  # a union: the vault answered for these scopes without a consent
            values[":sc"] = {"SS": list(granted)}
        written = await self._update(_key(user, provider), update, "attribute_not_exists(#p) OR #st = :connected", values)
        return written is not None

    async def record_disconnected(self, user: str, provider: str, *, now: float) -> Connection:
        """The person disconnected the account: recorded even without a record (so an older vault grant
        is not used), idempotent. Returns the record as it now stands."""
        values = {
            ":disconnected": _s(Status.DISCONNECTED.value),
            ":now": _n(_epoch("now", now)),
            ":zero": _n(0),
            ":one": _n(1),
        }
        key = _key(user, provider)
        written = await self._update(
            key,
            "SET #st = :disconnected, #da = :now, #g = if_not_exists(#g, :zero) + :one",
            # Skipped only when already disconnected later than `now` (another task, a clock ahead):
            # a disconnect date never moves back. (Flows are judged by the generation, not this date.)
            "NOT (#st = :disconnected AND #da > :now)",
            values,
        )
        if written is None:
            # Already disconnected later (a clock ahead): the date stays, but the generation still moves on,
            # so every consent flow issued before this disconnect is stale whatever the clocks say.
            written = await self._update(key, "SET #g = #g + :one", "attribute_exists(#p)", {":one": _n(1)})
        if written is None:  # cannot happen: the first condition failed on an existing record
            raise RegistryUnavailable("InconsistentRead")
        return _connection(written)

    # ------------------------------------------------------------------ reads

    async def get(self, user: str, provider: str) -> Connection | None:
        return await self._get(_key(user, provider))

    async def list(self, user: str) -> builtins.list[Connection]:
        """Every provider the person has a record for, in provider order."""
        request: dict[str, Any] = {
            "KeyConditionExpression": "#u = :u",
            "ExpressionAttributeNames": {"#u": "user"},
            "ExpressionAttributeValues": {":u": _s(_user(user))},
            "ConsistentRead": True,
        }
        found: builtins.list[Connection] = []
        while True:
            answer = await self._call("query", **request)
            found.extend(_connection(item) for item in answer.get("Items", []))
            last = answer.get("LastEvaluatedKey")
            if not last:
                return found
            request["ExclusiveStartKey"] = last

    async def is_disconnected(self, user: str, provider: str) -> bool:
        """True when the person disconnected this account (no record: False, the vault decides)."""
        current = await self.get(user, provider)
        return current is not None and not current.usable

    # ------------------------------------------------------------------ internals

    async def _get(self, key: dict[str, Any]) -> Connection | None:
        answer = await self._call("get_item", Key=key, ConsistentRead=True)
        item = answer.get("Item")
        return _connection(item) if item else None

    async def _update(self, key: dict[str, Any], update: str, condition: str, values: dict[str, Any]) -> dict[str, Any] | None:
        """One conditional UpdateItem: the item after it, or None when the condition failed."""
        from botocore.exceptions import ClientError  # noqa: PLC0415

        used = set(_NAME_REF.findall(f"{update} {condition}"))  # DynamoDB refuses a name it is given but not used
        request = {
            "Key": key,
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {name: _NAMES[name] for name in sorted(used)},
            "ExpressionAttributeValues": values,
            "ReturnValues": "ALL_NEW",
        }
        try:
            answer = await self._call("update_item", **request)
        except ClientError:  # only a failed condition comes through `_call`
            return None
        attributes: dict[str, Any] = answer["Attributes"]
        return attributes


# ---------------------------------------------------------------------------------------- validation


def _user(user: str) -> str:
    if not isinstance(user, str) or not 1 <= len(user) <= MAX_USER_CHARS:
        raise ValueError(f"user must be a string of 1 to {MAX_USER_CHARS} characters")
    try:
        user.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("user must be valid Unicode (no lone surrogates)") from None
    return user


def _provider(provider: str) -> str:
    if not isinstance(provider, str) or not PROVIDER_PATTERN.fullmatch(provider):
        raise ValueError("provider must be a configured provider name: a lowercase letter, then up to 19 of a-z, 0-9 and '-'")
    return provider


def _scopes(scopes: Collection[str]) -> tuple[str, ...]:
    """The scopes, deduplicated and sorted; ValueError naming the position (never the value) of a bad one."""
    if isinstance(scopes, str | bytes) or not isinstance(scopes, Collection):
        raise ValueError("scopes must be a collection of scope strings, not one string")
    if len(scopes) > MAX_SCOPES:
        raise ValueError(f"at most {MAX_SCOPES} scopes")
    for index, scope in enumerate(scopes):
        if not isinstance(scope, str) or not SCOPE_PATTERN.fullmatch(scope):
            raise ValueError(
                f"scope {index + 1} is not an RFC 6749 scope-token: 1 to {MAX_SCOPE_CHARS} printable ASCII characters, "
                'without space, " or \\'
            )
    return tuple(sorted(set(scopes)))


def _epoch(name: str, value: float) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be epoch seconds (a finite number, not negative)")
    return int(value)


def _generation(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a record generation (an integer, not negative)")
    return value


def _key(user: str, provider: str) -> dict[str, Any]:
    return {"user": _s(_user(user)), "provider": _s(_provider(provider))}


# ---------------------------------------------------------------------------------------- items


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _connection(item: dict[str, Any]) -> Connection:
    """An item as a `Connection`; an unknown status reads as disconnected (fail closed)."""

    def number(name: str) -> int | None:
        value = item.get(name, {}).get("N")
        return int(float(value)) if isinstance(value, str) else None

    status = item.get("status", {}).get("S")
    stored = item.get("scopes", {})
    scopes = stored.get("SS") or [entry.get("S") for entry in stored.get("L", []) if isinstance(entry, dict)]
    return Connection(
        provider=str(item.get("provider", {}).get("S", "")),
        status=Status.CONNECTED if status == Status.CONNECTED.value else Status.DISCONNECTED,
        scopes=tuple(sorted(scope for scope in scopes if isinstance(scope, str))),
        connected_at=number("connected_at"),
        last_used_at=number("last_used_at"),
        disconnected_at=number("disconnected_at"),
        generation=number("generation") or 0,
    )
