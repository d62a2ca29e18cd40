"""The state of each consent session, shared by every task and instance of the binding service.

One DynamoDB item per AgentCore session, keyed by a digest of its sessionUri (never the URI itself):

| attribute    | meaning                                                                        |
|--------------|--------------------------------------------------------------------------------|
| `session`    | partition key: digest of the sessionUri                                        |
| `status`     | `started` → `claimed` → `completed`, or `cancelled` from `started`             |
| `user`       | digest of the user who started the flow (issuer and `sub`)                     |
| `flow`       | the flow id: digest of the secret `customState` AgentCore echoes on the landing |
| `provider`   | the provider as people know it (its display name), for the pages               |
| `connection` | the configured provider name, `scopes` and the registry's `generation` when the flow was issued: what a completion records in the connections registry |
| `claim`      | while `claimed`: which request is calling AgentCore, and until when (`claim_until`) |
| `uncertain`  | an earlier call's answer was lost: AgentCore may have completed the session    |
| `reason`     | why a session was cancelled, so a reload shows the same page                   |
| `expires_at` | DynamoDB TTL: the flow's expiry plus `RETAIN_S`                                |

Every change is a conditional write, so two tasks that receive the same landing at once make one
`CompleteResourceTokenAuth` call between them, and a cancelled (burned) session can never be claimed
again, by anyone, from any task, after any restart. Within one process, duplicates wait for the call
in flight instead of polling the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import anyio

from services.common.connections import registry_client
from services.common.signed import digest
from services.common.table_calls import CONDITION_FAILED, TableCalls

_log = logging.getLogger("session_binding")

RETAIN_S = 3600  # a verdict outlives AgentCore's 10-minute session by an hour: reloads keep their page
_POLL_S = (0.05, 0.1, 0.2, 0.4)  # then every 0.5 s


class Status(Enum):
    STARTED = "started"
    CLAIMED = "claimed"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Record:
    status: Status
    user: str  # digest
    flow: str | None
    provider: str | None
    reason: str | None
    claim_until: float | None
    uncertain: bool
    connection: str | None = None  # the configured provider name (flows issued by an agent that knows it)
    scopes: tuple[str, ...] = ()
    generation: int = 0  # the registry record's generation when the flow was issued: a later disconnect is not undone

    def started_by(self, user_key: str) -> bool:
        return self.user == digest(user_key, 32)

    def flow_is(self, flow_id: str) -> bool:
        return self.flow is not None and secrets.compare_digest(self.flow, flow_id)


class Completion(Enum):
    CALLED = "called"  # this request made the call and it succeeded
    ALREADY_DONE = "already_done"  # the same user completed it earlier (or concurrently): no call


class LedgerRefusal(Exception):
    """The ledger will not let this request complete the session; `record` is what stands in the way."""

    def __init__(self, record: Record | None) -> None:
        super().__init__(record.status.value if record else "absent")
        self.record = record


class CompletionInterrupted(Exception):
    """The call in flight went away, or another task's call outlived our wait: the outcome is unknown here."""


class StoreUnavailable(Exception):
    """DynamoDB is throttling or unreachable: nothing was decided, try again later."""


@dataclass(frozen=True, slots=True)
class Failure:
    """How a failed AgentCore call leaves the session: `cancel` with a reason, or release it for a retry."""

    cancel_reason: str | None = None
    uncertain: bool = False


_NAMES = {
    "#s": "session",
    "#st": "status",
    "#u": "user",
    "#f": "flow",
    "#c": "claim",
    "#cu": "claim_until",
    "#r": "reason",
    "#x": "expires_at",
    "#un": "uncertain",
    "#p": "provider",
}


def dynamodb_client(region: str, *, connect_timeout_s: float = 1.0, read_timeout_s: float = 2.0, max_attempts: int = 3) -> Any:
    """The session binding service's DynamoDB client (ledger and connections registry): `registry_client`'s
    settings, standard retries, short timeouts, `AWS_ENDPOINT_URL_DYNAMODB` locally."""
    return registry_client(
        region,
        connect_timeout_s=connect_timeout_s,
        read_timeout_s=read_timeout_s,
        max_attempts=max_attempts,
        app_id="agentcore-ecs-session-binding",
    )


class SessionLedger:
    """Conditional writes on the sessions table; blocking boto3 calls run in worker threads."""

    def __init__(
        self,
        table: str,
        client: Callable[[], Any],
        *,
        lease_s: float,
        clock: Callable[[], float] = time.time,
        max_wait_s: float | None = None,
        concurrency: int = 4,
    ) -> None:
        """`concurrency`: table calls in flight per process. Like AgentCore's, a few worker threads keep
        the table busy; more only fight the event loop for the GIL and stretch tail latency."""
        self._call = TableCalls(table, client, concurrency=concurrency, unavailable=StoreUnavailable)
        self._lease_s = lease_s
        self._max_wait_s = lease_s if max_wait_s is None else max_wait_s
        self._clock = clock
        self._inflight: dict[str, tuple[str, asyncio.Future[Completion]]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ the flow's steps

    async def start(
        self,
        session_uri: str,
        user_key: str,
        *,
        flow_id: str,
        provider: str,
        expires_at: int,
        connection: tuple[str, tuple[str, ...], int] | None = None,
    ) -> Record | None:
        """Record that this user started this flow (`/oauth2/start`). A repeat by the same user for the
        same flow, still `started`, is fine and writes nothing (so an `uncertain` flag survives it);
        otherwise the record that stands in the way is returned and nothing changes. `connection`: the
        configured provider name, the scopes and the registry generation the flow was issued at."""
        item: dict[str, Any] = {
            "session": _s(digest(session_uri, 32)),
            "status": _s(Status.STARTED.value),
            "user": _s(digest(user_key, 32)),
            "flow": _s(flow_id),
            "provider": _s(provider),
            "expires_at": _n(expires_at + RETAIN_S),
        }
        if connection is not None:
            name, scopes, generation = connection
            item |= {"connection": _s(name), "scopes": {"L": [_s(scope) for scope in scopes]}, "generation": _n(generation)}
        request = {
            "Item": item,
            "ConditionExpression": "attribute_not_exists(#s)",
            "ExpressionAttributeNames": {"#s": "session"},
        }
        if await self._conditional("put_item", request):
            return None
        record = await self.get(session_uri) or _GONE
        if record.status is Status.STARTED and record.started_by(user_key) and record.flow_is(flow_id):
            return None
        return record

    async def get(self, session_uri: str) -> Record | None:
        answer = await self._call("get_item", Key={"session": _s(digest(session_uri, 32))}, ConsistentRead=True)
        item = answer.get("Item")
        return _record(item) if item else None

    async def cancel(self, session_uri: str, reason: str) -> tuple[bool, Record]:
        """Burn the session for everyone, unless it is already claimed, completed or cancelled, or an
        earlier call's answer was lost (AgentCore may have completed it: "nothing was shared" would be
        false). Returns whether this call burned it, and the record as it now stands."""
        request = {
            "Key": {"session": _s(digest(session_uri, 32))},
            "UpdateExpression": "SET #st = :cancelled, #r = :r, #x = if_not_exists(#x, :x) REMOVE #c, #cu",
            "ConditionExpression": "attribute_not_exists(#s) OR (#st = :started AND attribute_not_exists(#un))",
            "ExpressionAttributeNames": {k: _NAMES[k] for k in ("#s", "#st", "#r", "#x", "#c", "#cu", "#un")},
            "ExpressionAttributeValues": {
                ":cancelled": _s("cancelled"),
                ":started": _s("started"),
                ":r": _s(reason),
                ":x": _n(int(self._clock()) + RETAIN_S),
            },
            "ReturnValues": "ALL_NEW",
        }
        answer = await self._conditional("update_item", request, answer=True)
        if answer is not None:
            return True, _record(answer["Attributes"])
        return False, await self.get(session_uri) or _GONE

    async def complete(
        self,
        session_uri: str,
        user_key: str,
        call: Callable[[Record], Awaitable[None]],
        *,
        flow_id: str | None,
        on_failure: Callable[[Exception, Record], Failure],
    ) -> Completion:
        """Call AgentCore at most once for this session, across every process sharing the table.

        The claim succeeds only for the user who started the flow, for its flow id when the landing
        carries the echo, and only while the session is `started` (or a crashed claim's lease ran
        out). Otherwise `LedgerRefusal` carries the record, unless it was completed by this user.
        """
        session, user = digest(session_uri, 32), digest(user_key, 32)
        with self._lock:
            inflight = self._inflight.get(session)
            if inflight is None:
                future: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
                self._inflight[session] = (user, future)
        if inflight is not None:
            owner, waiting = inflight
            if owner != user:
                # Another user's request for this session is in flight here: it cannot claim (the claim
                # names the initiator), so do not wait on it. The table decides for this one too.
                return await self._claim_and_call(session_uri, user, call, flow_id=flow_id, on_failure=on_failure)
            await asyncio.shield(waiting)  # the first request's failure is ours too: same answer, no second call
            return Completion.ALREADY_DONE
        try:
            outcome = await self._claim_and_call(session_uri, user, call, flow_id=flow_id, on_failure=on_failure)
        except asyncio.CancelledError:
            future.set_exception(CompletionInterrupted())
            future.exception()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiting duplicates are optional
            raise
        else:
            future.set_result(outcome)
            return outcome
        finally:
            with self._lock:
                self._inflight.pop(session, None)

    # ------------------------------------------------------------------ internals

    async def _claim_and_call(
        self,
        session_uri: str,
        user: str,
        call: Callable[[Record], Awaitable[None]],
        *,
        flow_id: str | None,
        on_failure: Callable[[Exception, Record], Failure],
    ) -> Completion:
        deadline = time.monotonic() + self._max_wait_s
        for pause in _pauses():
            claimed = await self._claim(session_uri, user, flow_id)
            if claimed is not None:
                token, record = claimed
                break
            record_or_none = await self.get(session_uri)
            if record_or_none is None or record_or_none.status is Status.CANCELLED or record_or_none.user != user:
                raise LedgerRefusal(record_or_none)
            if flow_id is not None and not record_or_none.flow_is(flow_id):
                raise LedgerRefusal(record_or_none)
            if record_or_none.status is Status.COMPLETED:
                return Completion.ALREADY_DONE
            # Claimed by another task (or released a moment ago): wait for its verdict, then look again.
            if time.monotonic() + pause > deadline:
                raise CompletionInterrupted
            await anyio.sleep(pause)
        try:
            await call(record)
        except BaseException as exc:
            failure = on_failure(exc, record) if isinstance(exc, Exception) else Failure(uncertain=True)
            with anyio.CancelScope(shield=True):  # a client that went away must not leave the claim standing
                await self._settle_failure(session_uri, token, failure)
            raise
        with anyio.CancelScope(shield=True):
            await self._mark_completed(session_uri, token)
        return Completion.CALLED  # AgentCore completed it: that is the person's answer, whatever the table said

    async def _claim(self, session_uri: str, user: str, flow_id: str | None) -> tuple[str, Record] | None:
        token = secrets.token_urlsafe(16)
        now = self._clock()
        condition = "#u = :u AND (#st = :started OR (#st = :claimed AND #cu < :now))"
        values: dict[str, Any] = {
            ":u": _s(user),
            ":started": _s("started"),
            ":claimed": _s("claimed"),
            ":now": _n(now),
            ":c": _s(token),
            ":until": _n(now + self._lease_s),
        }
        if flow_id is not None:
            condition += " AND #f = :f"
            values[":f"] = _s(flow_id)
        request = {
            "Key": {"session": _s(digest(session_uri, 32))},
            "UpdateExpression": "SET #st = :claimed, #c = :c, #cu = :until",
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {k: _NAMES[k] for k in ("#u", "#st", "#cu", "#c", "#f")}
            if flow_id is not None
            else {k: _NAMES[k] for k in ("#u", "#st", "#cu", "#c")},
            "ExpressionAttributeValues": values,
            "ReturnValues": "ALL_OLD",
        }
        answer = await self._conditional("update_item", request, answer=True)
        if answer is None:
            return None
        before = _record(answer["Attributes"])
        if before.status is Status.CLAIMED:
            # Taken over from a task whose lease ran out: it may have completed at AgentCore before it died.
            before = dataclasses.replace(before, uncertain=True)
        return token, before

    async def _mark_completed(self, session_uri: str, token: str) -> None:
        """Unconditional on purpose: AgentCore has completed it, whatever happened to our lease meanwhile.
        Tried twice; if the table stays unreachable the claim's lease runs out and a later landing is
        treated as possibly completed (never as "nothing was shared")."""
        for attempt in (1, 2):
            try:
                answer = await self._call(
                    "update_item",
                    Key={"session": _s(digest(session_uri, 32))},
                    UpdateExpression="SET #st = :completed REMOVE #c, #cu, #un",
                    ExpressionAttributeNames={k: _NAMES[k] for k in ("#st", "#c", "#cu", "#un")},
                    ExpressionAttributeValues={":completed": _s("completed")},
                    ReturnValues="ALL_OLD",
                )
            except StoreUnavailable as exc:
                if attempt == 2:
                    _log.error("ledger_write_lost", extra={"event": "ledger_write_lost", "reason": str(exc)})
                continue
            before = _record(answer.get("Attributes") or {"status": {"S": "claimed"}, "claim": {"S": token}})
            if before.status is not Status.CLAIMED or answer.get("Attributes", {}).get("claim", {}).get("S") != token:
                # Our lease ran out mid-call and another task took over (or cancelled): the truth is "completed".
                _log.warning("ledger_verdict_overwritten", extra={"event": "ledger_verdict_overwritten", "was": before.status.value})
            return

    async def _settle_failure(self, session_uri: str, token: str, failure: Failure) -> None:
        values: dict[str, Any]
        names: tuple[str, ...]
        if failure.cancel_reason is not None:
            update, values = (
                "SET #st = :cancelled, #r = :r REMOVE #c, #cu",
                {":cancelled": _s("cancelled"), ":r": _s(failure.cancel_reason)},
            )
            names = ("#st", "#r", "#c", "#cu")
        elif failure.uncertain:
            update, values = "SET #st = :started, #un = :true REMOVE #c, #cu", {":started": _s("started"), ":true": {"BOOL": True}}
            names = ("#st", "#un", "#c", "#cu")
        else:
            update, values = "SET #st = :started REMOVE #c, #cu", {":started": _s("started")}
            names = ("#st", "#c", "#cu")
        request = {
            "Key": {"session": _s(digest(session_uri, 32))},
            "UpdateExpression": update,
            "ConditionExpression": "#c = :token",  # only our own claim: a lease taken over is not ours to undo
            "ExpressionAttributeNames": {k: _NAMES[k] for k in names},
            "ExpressionAttributeValues": values | {":token": _s(token)},
        }
        with contextlib.suppress(StoreUnavailable):  # else the claim's lease runs out by itself: a later landing may retry
            await self._conditional("update_item", request)

    async def _conditional(self, operation: str, request: dict[str, Any], *, answer: bool = False) -> Any:
        """True (or the answer, with `answer`) when the write happened; None/False when its condition failed."""
        from botocore.exceptions import ClientError  # noqa: PLC0415

        try:
            result = await self._call(operation, **request)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == CONDITION_FAILED:
                return None if answer else False
            raise
        return result if answer else True


_GONE = Record(Status.CANCELLED, user="", flow=None, provider=None, reason="expired", claim_until=None, uncertain=False)


def _pauses() -> Any:
    yield from _POLL_S
    while True:
        yield 0.5


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: float) -> dict[str, str]:
    return {"N": str(int(value)) if float(value).is_integer() else f"{value:.3f}"}


def _record(item: dict[str, Any]) -> Record:
    def text(name: str) -> str | None:
        value = item.get(name, {}).get("S")
        return value if isinstance(value, str) else None

    until = item.get("claim_until", {}).get("N")
    generation = item.get("generation", {}).get("N")
    scopes = [entry.get("S") for entry in item.get("scopes", {}).get("L", []) if isinstance(entry, dict)]
    return Record(
        status=Status(text("status") or "cancelled"),
        user=text("user") or "",
        flow=text("flow"),
        provider=text("provider"),
        reason=text("reason"),
        claim_until=float(until) if until is not None else None,
        uncertain=bool(item.get("uncertain", {}).get("BOOL", False)),
        connection=text("connection"),
        scopes=tuple(scope for scope in scopes if isinstance(scope, str)),
        generation=int(generation) if generation is not None else 0,
    )
