"""Connected accounts: the page and API where a person sees, connects and disconnects each outbound provider.

* `GET /connections`: the page (static; it reads the API below).
* `GET /api/connections`: every configured provider, in configuration order, with what the connections
  registry says for this person (`connected`, `disconnected`, or `not_connected` when it has no record),
  the permissions in words, and the dates. Never a token.
* `POST /api/connections/{name}/connect`: the same request a tool makes. A usable grant answers
  `connected`; otherwise the answer carries the same signed first-party start link the chat's consent
  card uses. A disconnected account is asked for anew (`forceAuthentication`).
* `POST /api/connections/{name}/disconnect`: records the disconnect first (from then on no task uses the
  vault's grant: `services/agent/loop.py` asks again with `forceAuthentication`), then asks the provider to
  revoke where it can: with the token alone (Google, Slack), or with the OAuth client's own credentials where
  the provider's configuration allows the agent to read them (`revoke_on_disconnect`; `services/agent/revocation.py`).

The POSTs take an empty JSON object, which a cross-site form cannot send (as `/api/chat` and sign-out),
and take one of the person's chat slots while they run (each makes AgentCore calls: the per-person bound
of the chat applies). No answer here is cached.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from services.agent.assets import page
from services.agent.loop import IDENTITY_BUSY, start_url
from services.agent.revocation import Revocation, revocation_offered, revoke
from services.agent.runtime import AgentRuntime, Runtime
from services.agent.settings import ProviderSpec
from services.agent.tokens import AccessToken, AgentCoreError, ConsentDeclined
from services.common.alb_identity import AlbIdentity
from services.common.bodies import read_empty_json
from services.common.connections import Connection, RegistryUnavailable, connection_user
from services.common.errors import ApiError
from services.common.identity import CurrentUser
from services.common.logs import hashed

CONNECTIONS_PATH = "/connections"
_log = logging.getLogger("agent")
_UNAVAILABLE = ApiError(
    503, "connections_unavailable", "Your connected accounts cannot be read right now. Please try again in a few seconds."
)
_IDENTITY_BUSY = ApiError(503, "identity_unavailable", IDENTITY_BUSY)
_NO_STORE = {"cache-control": "no-store"}

router = APIRouter()


@router.get(CONNECTIONS_PATH, include_in_schema=False)
async def connections_page() -> Response:
    return page("connections.html", headers=_NO_STORE)


@router.get("/api/connections")
async def list_connections(rt: AgentRuntime, identity: CurrentUser) -> JSONResponse:
    try:
        records = {c.provider: c for c in await rt.connections.list(connection_user(identity))}
    except RegistryUnavailable:
        raise _UNAVAILABLE from None
    body = {"connections": [_describe(provider, records.get(provider.name)) for provider in rt.settings.providers]}
    return JSONResponse(body, headers=_NO_STORE)


Action = Callable[[Runtime, AlbIdentity, ProviderSpec], Awaitable[JSONResponse]]


async def _run(action: Action, name: str, request: Request, rt: Runtime, identity: AlbIdentity) -> JSONResponse:
    """A POST's common part: exactly `{}`, a configured provider, one of the person's chat slots while it runs."""
    await read_empty_json(request)
    provider = _provider(rt, name)
    release = rt.slots.take(identity.user_key)
    try:
        return await action(rt, identity, provider)
    finally:
        release()


@router.post("/api/connections/{name}/connect")
async def connect(name: str, request: Request, rt: AgentRuntime, identity: CurrentUser) -> JSONResponse:
    return await _run(_connect, name, request, rt, identity)


async def _connect(rt: Runtime, identity: AlbIdentity, provider: ProviderSpec) -> JSONResponse:
    """A usable grant (recorded as a use, which a disconnect meanwhile refuses), else the start link."""
    user = connection_user(identity)
    try:
        record = await rt.connections.get(user, provider.name)
        force = record is not None and not record.usable
        grant = await rt.tokens.get(identity, provider, force_authentication=force)
        if isinstance(grant, AccessToken) and not await rt.connections.record_used(
            user, provider.name, provider.scope_set, now=int(time.time())
        ):
            record = await rt.connections.get(user, provider.name)  # disconnected meanwhile: ask anew
            grant = await rt.tokens.get(identity, provider, force_authentication=True)
    except RegistryUnavailable:
        raise _UNAVAILABLE from None
    except AgentCoreError as exc:
        _log.warning("identity_error", extra={"event": "identity_error", "code": exc.code})
        raise _IDENTITY_BUSY from None
    if isinstance(grant, AccessToken):
        return JSONResponse({"status": "connected", "display_name": provider.display_name}, headers=_NO_STORE)
    if isinstance(grant, ConsentDeclined):  # only a resumed session answers this, and this request resumes none
        raise _IDENTITY_BUSY
    link = start_url(rt.keyring, identity, provider, grant, generation=record.generation if record else 0)
    body = {"status": "consent_required", "display_name": provider.display_name, "start_url": link}
    return JSONResponse(body, headers=_NO_STORE)


@router.post("/api/connections/{name}/disconnect")
async def disconnect(name: str, request: Request, rt: AgentRuntime, identity: CurrentUser) -> JSONResponse:
    return await _run(_disconnect, name, request, rt, identity)


async def _disconnect(rt: Runtime, identity: AlbIdentity, provider: ProviderSpec) -> JSONResponse:
    """Recorded first (from then on no task uses the grant), then revoked at the provider where it can be."""
    try:
        record = await rt.connections.record_disconnected(connection_user(identity), provider.name, now=int(time.time()))
    except RegistryUnavailable:
        raise _UNAVAILABLE from None
    rt.tokens.evict(identity, provider)  # this task; other tasks are stopped by the registry before each use
    _log.info(
        "connection_disconnected", extra={"event": "connection_disconnected", "user": hashed(identity.user_key), "provider": provider.name}
    )
    revocation = await _revoke(rt, identity, provider)
    rt.tokens.evict(identity, provider)  # the token read to revoke it is not kept either
    return JSONResponse(
        {
            "status": "disconnected",
            "display_name": provider.display_name,
            "disconnected_at": record.disconnected_at,
            "revocation": revocation.outcome,
            "message": revocation.message(provider),
        },
        headers=_NO_STORE,
    )


async def _revoke(rt: Runtime, identity: AlbIdentity, provider: ProviderSpec) -> Revocation:
    """Ask the provider to revoke the vault's grant where it offers that (with the token alone, or with the
    client's credentials where the provider's configuration enables it). The token is read for this one call
    (never used at the API); nothing here can undo the disconnect already recorded."""
    if not revocation_offered(provider):
        return Revocation("not_offered")
    try:
        grant = await rt.tokens.get(identity, provider)
    except AgentCoreError as exc:
        _log.warning("revocation_failed", extra={"event": "revocation_failed", "code": exc.code, "provider": provider.name})
        return Revocation("failed")
    if not isinstance(grant, AccessToken):
        return Revocation("nothing_stored")  # no grant in the vault (or it could not be refreshed)
    return await revoke(rt.http, provider, grant.value, secrets=rt.secrets.get, github_api_url=rt.settings.github_api_url)


def _provider(rt: Runtime, name: str) -> ProviderSpec:
    try:
        return rt.settings.provider(name)
    except KeyError:
        raise ApiError(404, "unknown_provider", "There is no account of that name to connect. Reload the page.") from None


def _describe(provider: ProviderSpec, record: Connection | None) -> dict[str, Any]:
    status = "not_connected" if record is None else record.status.value
    return {
        "name": provider.name,
        "kind": provider.kind,
        "display_name": provider.display_name,
        "permissions": provider.permissions,
        "status": status,
        "connected_at": record.connected_at if record else None,
        "last_used_at": record.last_used_at if record else None,
        "disconnected_at": record.disconnected_at if record else None,
    }
