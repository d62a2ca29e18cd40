"""One chat turn: the Bedrock Converse tool loop, as a stream of events.

The loop is bounded (`max_model_turns` model calls). When a tool needs the person's consent, the
turn emits `authorization_required` with a first-party start link and ends at once: nothing waits
for the person, and the model never sees an authorization URL.

Before a tool asks for a token, the connections registry is read (strongly consistent): an account the
person disconnected is asked for again with `forceAuthentication`, and a consent session the request
came back from is not asked about (it predates the disconnect). Right before the token goes out, the use
is recorded with a conditional write that refuses a disconnected account (`record_used`): a disconnect
acknowledged on any task while this one was fetching the token stops the use, and consent is asked anew.
Only an HTTP call already under way when the disconnect lands finishes. A registry that cannot be read
or written ends the turn (fail closed).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import anyio.to_thread
import httpx
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ValidationError

from services.agent.account_tools import AccountScope, AccountTool, DisconnectAsked, UnknownAccount
from services.agent.settings import AgentSettings, ProviderSpec
from services.agent.tokens import AccessToken, AgentCoreError, ConsentDeclined, ConsentNeeded, OutboundTokens
from services.agent.tools import PermissionRefused, ReauthorizationNeeded, Tool, ToolFailed
from services.common.agentcore import TRANSIENT_ERROR_CODES
from services.common.alb_identity import AlbIdentity
from services.common.connections import Connection, ConnectionsRegistry, RegistryUnavailable, connection_user
from services.common.flow import FlowToken, issue_flow_token
from services.common.metrics import AUTHORIZATION_PROMPTS, Metrics, no_metrics
from services.common.signed import Keyring

_log = logging.getLogger("agent")

SYSTEM_PROMPT = (
    "You are an assistant that acts for the signed-in person through the tools you are given. "
    "Use a tool when the question is about the person's own data. Never ask for passwords, tokens or "
    "authorization links: when a tool needs the person's permission, the application asks them itself. "
    "Keep answers short and say what you did."
)
_MODEL_BUSY = {"ThrottlingException", "ServiceUnavailableException", "ModelNotReadyException", *TRANSIENT_ERROR_CODES}
# AgentCore Identity throttled or failed after botocore's retries. Never read as "consent needed": the stored
# grant is untouched, so the person is told to try again, not asked to consent again.
IDENTITY_BUSY = "The identity service is busy. Please try again in a few seconds; your connected accounts are not affected."


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    data: dict[str, Any]

    def sse(self) -> bytes:
        return f"event: {self.type}\ndata: {json.dumps(self.data, separators=(',', ':'))}\n\n".encode()


@dataclass
class ChatContext:
    """What one turn needs; built per request from per-process parts."""

    identity: AlbIdentity
    settings: AgentSettings
    tokens: OutboundTokens
    connections: ConnectionsRegistry
    keyring: Keyring
    tools: dict[str, Tool | AccountTool]
    http: httpx.AsyncClient
    bedrock: Any  # the process's bedrock-runtime client
    bedrock_limiter: anyio.CapacityLimiter | None = None  # Converse calls in flight per process
    metrics: Metrics = dataclasses.field(default_factory=no_metrics)
    resumed: FlowToken | None = None  # the consent session this request came back from; asked once, then cleared


class _TurnEnds(Exception):
    def __init__(self, event: Event) -> None:
        super().__init__(event.type)
        self.event = event


def to_messages(history: list[tuple[str, str]], message: str) -> list[dict[str, Any]]:
    """Converse messages: alternating roles starting with the user; same-role neighbours merged."""
    turns: list[tuple[str, str]] = []
    for role, text in [*history, ("user", message)]:
        if not turns and role != "user":
            continue
        if turns and turns[-1][0] == role:
            turns[-1] = (role, f"{turns[-1][1]}\n\n{text}")
        else:
            turns.append((role, text))
    return [{"role": role, "content": [{"text": text}]} for role, text in turns]


async def with_heartbeat(events: AsyncIterator[Event], *, heartbeat_s: float, turn_timeout_s: float) -> AsyncIterator[bytes]:
    """Server-sent events of a turn, with a comment line while nothing happens (keeps the ALB's and the
    browser's idle timers from cutting a slow model), and a deadline for the whole turn."""
    queue: asyncio.Queue[Event | None] = asyncio.Queue()

    async def produce() -> None:
        try:
            async with asyncio.timeout(turn_timeout_s):
                async for event in events:
                    await queue.put(event)
        except TimeoutError:
            await queue.put(Event("error", {"code": "turn_timeout", "message": "This took too long. Please try again."}))
            await queue.put(Event("done", {}))
        finally:
            await queue.put(None)

    producer = asyncio.get_running_loop().create_task(produce())
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), heartbeat_s)
            except TimeoutError:
                yield b": waiting\n\n"
                continue
            if item is None:
                return
            yield item.sse()
    finally:
        producer.cancel()  # the person went away: stop the turn (an abandoned model call finishes in its thread)


async def run_turn(ctx: ChatContext, message: str, history: list[tuple[str, str]]) -> AsyncIterator[Event]:
    messages = to_messages(history, message)
    tool_config = {"tools": [tool.spec() for tool in ctx.tools.values()]} if ctx.tools else None
    try:
        for _ in range(ctx.settings.max_model_turns):
            output, stop_reason = await _converse(ctx, messages, tool_config)
            messages.append(output)
            for block in output.get("content", []):
                if block.get("text"):
                    yield Event("message", {"text": block["text"]})
            if stop_reason != "tool_use":
                yield Event("done", {})
                return
            results = []
            for block in output.get("content", []):
                if "toolUse" in block:
                    use = block["toolUse"]
                    yield Event("tool_call", {"id": use["toolUseId"], "name": use["name"], "input": use.get("input", {})})
                    result, events = await _run_tool(ctx, use)
                    for event in events:
                        yield event
                    results.append({"toolResult": result})
            messages.append({"role": "user", "content": results})
        yield Event(
            "error", {"code": "too_many_steps", "message": "The agent needed too many steps for this request. Try asking for less at once."}
        )
        yield Event("done", {})
    except _TurnEnds as end:
        yield end.event
        yield Event("done", {})
    except Exception as exc:  # the stream has started: end it with an event, never mid-air
        _log.error("turn_failed", extra={"event": "turn_failed", "error_type": type(exc).__name__})
        yield Event("error", {"code": "internal", "message": "Something went wrong on our side. Please try again."})
        yield Event("done", {})


async def _converse(ctx: ChatContext, messages: list[dict[str, Any]], tool_config: dict[str, Any] | None) -> tuple[dict[str, Any], str]:
    request: dict[str, Any] = {
        "modelId": ctx.settings.bedrock_model_id,
        "messages": messages,
        "system": [{"text": SYSTEM_PROMPT}],
        "inferenceConfig": {"maxTokens": ctx.settings.max_output_tokens},
    }
    if tool_config:
        request["toolConfig"] = tool_config
    try:
        # abandon_on_cancel: a turn that hits its deadline stops waiting; the thread finishes on its own.
        response: dict[str, Any] = await anyio.to_thread.run_sync(
            lambda: ctx.bedrock.converse(**request), limiter=ctx.bedrock_limiter, abandon_on_cancel=True
        )
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", "Unknown"))
        _log.warning("model_error", extra={"event": "model_error", "code": code})
        if code in _MODEL_BUSY:
            raise _TurnEnds(
                Event("error", {"code": "model_busy", "message": "The model is busy right now. Please try again in a few seconds."})
            ) from None
        if code == "AccessDeniedException":
            raise _TurnEnds(
                Event(
                    "error",
                    {
                        "code": "model_unavailable",
                        "message": "The model is not available to this agent. Ask the people who run it to check model access.",
                    },
                )
            ) from None
        raise _TurnEnds(Event("error", {"code": "model_error", "message": "The model could not answer this request."})) from None
    except BotoCoreError as exc:
        _log.warning("model_error", extra={"event": "model_error", "code": type(exc).__name__})
        raise _TurnEnds(
            Event("error", {"code": "model_timeout", "message": "The model did not answer in time. Please try again."})
        ) from None
    return response["output"]["message"], str(response.get("stopReason", "end_turn"))


async def _run_tool(ctx: ChatContext, use: dict[str, Any]) -> tuple[dict[str, Any], list[Event]]:
    tool_id, name = use["toolUseId"], use["name"]
    tool = ctx.tools.get(name)
    if tool is None:
        return _failure(tool_id, name, "There is no tool of that name.")
    try:
        params = tool.input_model.model_validate(use.get("input", {}))
    except ValidationError:
        return _failure(tool_id, name, "The tool's input was not valid.")
    started = time.perf_counter()
    try:
        output = await (_account_tool(ctx, tool, params) if isinstance(tool, AccountTool) else _with_token(ctx, tool, params))
    except ToolFailed as exc:
        return _failure(tool_id, name, exc.summary)
    _log.info("tool_used", extra={"event": "tool_used", "tool": name, "duration_ms": round((time.perf_counter() - started) * 1000, 1)})
    payload = output.model_dump(mode="json")
    events = [Event("tool_result", {"id": tool_id, "name": name, "ok": True, "summary": _summary(output)})]
    if isinstance(output, DisconnectAsked):  # the card where the person confirms, or not
        events.append(Event("disconnect_requested", {"provider": output.account, "display_name": output.display_name}))
    return {"toolUseId": tool_id, "content": [{"json": payload}], "status": "success"}, events


async def _account_tool(ctx: ChatContext, tool: AccountTool, params: BaseModel) -> BaseModel:
    try:
        return await tool.run(AccountScope(ctx.settings, ctx.connections, ctx.identity), params)
    except UnknownAccount as exc:
        raise ToolFailed(exc.summary) from None
    except RegistryUnavailable:
        raise ToolFailed("Your connected accounts cannot be read right now. Try again in a few seconds.") from None


async def _with_token(ctx: ChatContext, tool: Tool, params: BaseModel) -> BaseModel:
    provider = ctx.settings.provider(tool.provider)
    record = await _connection(ctx, provider)
    force = record is not None and not record.usable  # disconnected: the old grant is never used, consent is asked anew
    for _ in range(2):
        grant = await _outbound(ctx, provider, force_authentication=force)
        if isinstance(grant, ConsentDeclined):
            raise _TurnEnds(_declined_event(provider))
        if isinstance(grant, ConsentNeeded):
            raise _TurnEnds(_consent_event(ctx, provider, grant, generation=record.generation if record else 0))
        if not await _use_allowed(ctx, provider):
            ctx.tokens.evict(ctx.identity, provider)
            record, force = await _connection(ctx, provider), True  # disconnected meanwhile: ask anew, never use it
            continue
        try:
            async with asyncio.timeout(ctx.settings.tool_timeout_s):  # the whole call: a slow drip cannot hold the turn
                return await tool.run(ctx.http, grant.value, params)
        except TimeoutError as exc:
            raise ToolFailed("The service did not answer in time.") from exc
        except ReauthorizationNeeded:
            ctx.tokens.evict(ctx.identity, provider)
            force = True  # the stored grant no longer works: ask the person again
        except PermissionRefused:
            ctx.tokens.evict(ctx.identity, provider)  # the next call reads the vault again
            raise
        except httpx.TimeoutException as exc:
            raise ToolFailed("The service did not answer in time.") from exc
        except httpx.HTTPError as exc:
            raise ToolFailed("The service could not be reached.") from exc
        except ValidationError as exc:
            raise ToolFailed("The service answered something unexpected.") from exc
    raise ToolFailed("The service keeps refusing the permission given.")


async def _connection(ctx: ChatContext, provider: ProviderSpec) -> Connection | None:
    try:
        return await ctx.connections.get(connection_user(ctx.identity), provider.name)
    except RegistryUnavailable as exc:
        _log.warning("connections_unavailable", extra={"event": "connections_unavailable", "code": str(exc)})
        message = "The agent cannot check your connected accounts right now. Please try again in a few seconds."
        raise _TurnEnds(Event("error", {"code": "connections_unavailable", "message": message})) from None


async def _use_allowed(ctx: ChatContext, provider: ProviderSpec) -> bool:
    """The use, recorded right before it happens (`last_used_at`; a record for a grant older than the
    registry): False when the person disconnected the account, on any task, since it was read."""
    try:
        return await ctx.connections.record_used(connection_user(ctx.identity), provider.name, provider.scope_set, now=int(time.time()))
    except RegistryUnavailable as exc:
        _log.warning("connections_unavailable", extra={"event": "connections_unavailable", "code": str(exc)})
        message = "The agent cannot check your connected accounts right now. Please try again in a few seconds."
        raise _TurnEnds(Event("error", {"code": "connections_unavailable", "message": message})) from None


async def _outbound(
    ctx: ChatContext, provider: ProviderSpec, *, force_authentication: bool
) -> AccessToken | ConsentNeeded | ConsentDeclined:
    resume = None
    if ctx.resumed is not None and ctx.resumed.provider == provider.credential_provider:
        resume, ctx.resumed = ctx.resumed, None  # the session the person came back from is asked about once
    if force_authentication:
        resume = None  # a session that predates a disconnect may hold a grant: it is not asked about
    try:
        return await ctx.tokens.get(ctx.identity, provider, force_authentication=force_authentication, resume=resume)
    except AgentCoreError as exc:
        _log.warning("identity_error", extra={"event": "identity_error", "code": exc.code})
        if exc.code in TRANSIENT_ERROR_CODES:
            message = IDENTITY_BUSY
        else:
            message = "The agent could not get permission to act for you right now. Please try again later."
        raise _TurnEnds(Event("error", {"code": "identity_unavailable", "message": message})) from None


def start_url(keyring: Keyring, identity: AlbIdentity, provider: ProviderSpec, grant: ConsentNeeded, *, generation: int) -> str:
    """The first-party link that starts a consent: `/oauth2/start` with a signed flow token naming this person,
    the AgentCore session, the provider (its credential provider, display name and configured name), its
    scopes and the connections registry's generation read before the request. Also used by /connections."""
    flow = issue_flow_token(
        keyring,
        identity=identity,
        session_uri=grant.session_uri,
        authorization_url=grant.authorization_url,
        provider=provider.credential_provider,
        scopes=provider.scope_set,
        flow_id=grant.flow_id,
        now=int(time.time()),
        display_name=provider.display_name,
        connection=provider.name,
        generation=generation,
    )
    return f"/oauth2/start?flow={quote(flow, safe='')}"


def _consent_event(ctx: ChatContext, provider: ProviderSpec, grant: ConsentNeeded, *, generation: int) -> Event:
    link = start_url(ctx.keyring, ctx.identity, provider, grant, generation=generation)
    _log.info("authorization_prompted", extra={"event": "authorization_prompted", "provider": provider.name})
    ctx.metrics.count(AUTHORIZATION_PROMPTS)
    return Event(
        "authorization_required",
        {
            "provider": provider.name,
            "display_name": provider.display_name,
            "scopes": provider.permissions,  # in words, as configured; the raw scope strings stay on our side
            "start_url": link,
        },
    )


def _declined_event(provider: ProviderSpec) -> Event:
    """The person came back from a consent that ended without a grant: say so, and ask nothing by ourselves."""
    name = provider.display_name
    _log.info("authorization_declined", extra={"event": "authorization_declined", "provider": provider.name})
    return Event(
        "authorization_declined",
        {
            "provider": provider.name,
            "display_name": name,
            # Neutral: FAILED also covers a provider error after Allow, not only Deny.
            "message": f"The agent did not get permission to use {name}: it was declined or could not be completed. Nothing was shared.",
        },
    )


def _failure(tool_id: str, name: str, summary: str) -> tuple[dict[str, Any], list[Event]]:
    return (
        {"toolUseId": tool_id, "content": [{"text": summary}], "status": "error"},
        [Event("tool_result", {"id": tool_id, "name": name, "ok": False, "summary": summary})],
    )


def _summary(output: BaseModel) -> str:
    for field in ("notes", "tasks", "repos", "accounts"):
        items = getattr(output, field, None)
        if isinstance(items, list):
            return f"{len(items)} {field if len(items) != 1 else field[:-1]}"
    return "done"
