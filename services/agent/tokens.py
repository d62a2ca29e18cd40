"""Per-user tokens: the workload access token (cached per user), and the outbound OAuth token (from the vault).

* `WorkloadTokenCache`: one workload access token per user, for a bounded time, in a bounded LRU.
  Concurrent requests of one user share one fetch; a token is only ever returned for the user it
  was fetched for (the key is the user, the value is never looked up any other way).
* `OutboundTokens.get()`: an access token reused inside this task while it lasts (`token_reuse.py`), else
  `GetResourceOauth2Token`, with one normalised request shape per provider. Either an access token comes back, or an authorization URL and a session:
  then the caller asks the person for consent and returns at once. Nothing here waits or polls.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio.to_thread
from botocore.exceptions import BotoCoreError, ClientError

from services.agent.settings import AgentSettings, ProviderSpec
from services.agent.token_reuse import OutboundTokenCache
from services.common.agentcore import LazyClient, error_code
from services.common.alb_identity import AlbIdentity
from services.common.flow import FlowToken, new_custom_state
from services.common.metrics import AGENTCORE_ERRORS, WORKLOAD_TOKEN_CACHE_HITS, WORKLOAD_TOKEN_CACHE_MISSES, Metrics, no_metrics


@dataclass(frozen=True, slots=True)
class AccessToken:
    value: str

    def __repr__(self) -> str:  # never in a log line or a traceback by accident
        return "AccessToken(<redacted>)"


@dataclass(frozen=True, slots=True)
class ConsentNeeded:
    """AgentCore has no token for this user yet: the person must consent at the provider."""

    authorization_url: str = field(repr=False)
    session_uri: str = field(repr=False)
    flow_id: str = ""  # digest of the customState sent to AgentCore; the browser only ever sees this


@dataclass(frozen=True, slots=True)
class ConsentDeclined:
    """The consent session the person went to ended without a grant (they pressed Deny, or the provider
    refused): AgentCore answers `sessionStatus` FAILED for it. Nothing was stored or shared."""


_NOT_THAT_SESSION = "NotTheResumedSession"  # an AgentCoreError code of ours, never AgentCore's


def _resumed_session(response: dict[str, object], resume: FlowToken) -> ConsentNeeded | ConsentDeclined:
    """What asking about the person's own session may answer: FAILED (declined), or that same session still in
    progress. Anything else (another session, which would carry no customState of ours) is not used: the
    caller starts afresh with a new customState."""
    if response.get("sessionStatus") == "FAILED":
        return ConsentDeclined()
    if response.get("sessionUri") == resume.session_uri and response.get("authorizationUrl"):
        return ConsentNeeded(str(response["authorizationUrl"]), resume.session_uri, resume.flow_id)
    raise AgentCoreError(_NOT_THAT_SESSION)


class AgentCoreError(Exception):
    """AgentCore refused or failed; `code` is its error code (for events and logs, never shown raw)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(slots=True)
class _Entry:
    token: str = field(repr=False)
    expires_at: float = 0.0


class WorkloadTokenCache:
    """Workload access tokens by user id: bounded, expiring, one fetch in flight per user."""

    def __init__(
        self, *, max_entries: int, ttl_s: float, clock: Callable[[], float] = time.monotonic, metrics: Metrics | None = None
    ) -> None:
        self._metrics = metrics or no_metrics()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._inflight: dict[str, asyncio.Task[str]] = {}
        self._max_entries = max_entries
        self._ttl_s = ttl_s
        self._clock = clock
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, user_id: str, fetch: Callable[[], Awaitable[str]]) -> str:
        entry = self._entries.get(user_id)
        if entry is not None and entry.expires_at > self._clock():
            self._entries.move_to_end(user_id)
            self.hits += 1
            self._metrics.count(WORKLOAD_TOKEN_CACHE_HITS)
            return entry.token
        task = self._inflight.get(user_id)
        if task is None:
            self.misses += 1
            self._metrics.count(WORKLOAD_TOKEN_CACHE_MISSES)
            # The fetch is a task of its own, owned by no request: a request that goes away (a tab
            # closed) cancels only its own wait, never the fetch others are waiting on.
            task = asyncio.get_running_loop().create_task(self._fetch(user_id, fetch))
            task.add_done_callback(_retrieve)  # a failure nobody waits for any more is not "never retrieved"
            self._inflight[user_id] = task
        else:
            self.hits += 1  # shares the fetch already in flight: no call of its own
            self._metrics.count(WORKLOAD_TOKEN_CACHE_HITS)
        return await asyncio.shield(task)

    async def _fetch(self, user_id: str, fetch: Callable[[], Awaitable[str]]) -> str:
        try:
            token = await fetch()
        finally:
            self._inflight.pop(user_id, None)
        self._entries[user_id] = _Entry(token, self._clock() + self._ttl_s)
        self._entries.move_to_end(user_id)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return token

    def clear(self) -> None:
        self._entries.clear()

    def invalidate(self, user_id: str, token: str) -> None:
        """Forget `token` if it is still the cached one (another request may have refreshed it already)."""
        entry = self._entries.get(user_id)
        if entry is not None and entry.token == token:
            del self._entries[user_id]


def _retrieve(task: asyncio.Task[str]) -> None:
    if not task.cancelled():
        task.exception()


class OutboundTokens:
    """The agent's side of AgentCore Identity: workload token, then the user's token from the vault."""

    def __init__(
        self,
        settings: AgentSettings,
        client: LazyClient,
        cache: WorkloadTokenCache,
        *,
        limiter: Callable[[], anyio.CapacityLimiter],
        metrics: Metrics | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics or no_metrics()
        self._client = client
        self.cache = cache
        self.reused = OutboundTokenCache(max_entries=settings.outbound_token_cache_size)
        self.limiter = limiter
        self.calls: dict[str, int] = {"GetWorkloadAccessTokenForUserId": 0, "GetResourceOauth2Token": 0}

    async def get(
        self, identity: AlbIdentity, provider: ProviderSpec, *, force_authentication: bool = False, resume: FlowToken | None = None
    ) -> AccessToken | ConsentNeeded | ConsentDeclined:
        """The user's access token at `provider` for its configured scopes, or what consent needs. With `resume`
        (the consent session the person just came back from), that session is asked first: its token, the
        same session again while it is in progress, or ConsentDeclined when it failed. A session AgentCore
        no longer knows (expired) is not an error: the usual request follows. A token this task got for the
        same person, provider and scopes is reused while it lasts, unless consent must be asked anew."""
        key = (identity.user_key, provider.credential_provider, provider.scope_set)
        if force_authentication or resume is not None:
            self.reused.evict(identity.user_key, provider.credential_provider)
        elif (token := self.reused.get(key)) is not None:
            return AccessToken(token)
        grant = await self._get(identity, provider, force_authentication=force_authentication, resume=resume)
        if isinstance(grant, AccessToken):
            self.reused.put(key, grant.value)
        return grant

    def evict(self, identity: AlbIdentity, provider: ProviderSpec | None = None) -> None:
        """Stop reusing the person's token for `provider` (all of theirs without one): a 401 or 403 from the
        API, a disconnect, a sign-out."""
        self.reused.evict(identity.user_key, provider.credential_provider if provider else None)

    async def _get(
        self, identity: AlbIdentity, provider: ProviderSpec, *, force_authentication: bool, resume: FlowToken | None
    ) -> AccessToken | ConsentNeeded | ConsentDeclined:
        if resume is not None:
            try:
                return await self._tokens(identity, provider, force_authentication=False, resume=resume)
            except AgentCoreError as exc:
                if exc.code not in ("ValidationException", "ResourceNotFoundException", _NOT_THAT_SESSION):
                    raise
        return await self._tokens(identity, provider, force_authentication=force_authentication, resume=None)

    async def _tokens(
        self, identity: AlbIdentity, provider: ProviderSpec, *, force_authentication: bool, resume: FlowToken | None
    ) -> AccessToken | ConsentNeeded | ConsentDeclined:
        """One token request, with the workload token fetched again once if AgentCore no longer accepts it."""
        for attempt in (1, 2):
            workload_token = await self.cache.get(identity.sub, lambda: self._workload_token(identity.sub))
            try:
                return await self._resource_token(workload_token, provider, force_authentication=force_authentication, resume=resume)
            except AgentCoreError as exc:
                if exc.code != "UnauthorizedException" or attempt == 2:
                    raise
                self.cache.invalidate(identity.sub, workload_token)  # expired or revoked: fetch once more
        raise AssertionError("unreachable")

    async def _workload_token(self, user_id: str) -> str:
        self.calls["GetWorkloadAccessTokenForUserId"] += 1
        response = await self._call(
            "get_workload_access_token_for_user_id", workloadName=self._settings.workload_identity_name, userId=user_id
        )
        return str(response["workloadAccessToken"])

    async def _resource_token(
        self, workload_token: str, provider: ProviderSpec, *, force_authentication: bool, resume: FlowToken | None
    ) -> AccessToken | ConsentNeeded | ConsentDeclined:
        # One request shape, every time: the vault keys on provider, scopes and parameters. Asking about a
        # session already started sends its sessionUri and no new customState (the session keeps its own).
        if resume is None:
            custom_state, flow_id = new_custom_state()
            session: dict[str, object] = {"customState": custom_state, "forceAuthentication": force_authentication}
        else:
            flow_id, session = resume.flow_id, {"sessionUri": resume.session_uri}
        self.calls["GetResourceOauth2Token"] += 1
        response = await self._call(
            "get_resource_oauth2_token",
            workloadIdentityToken=workload_token,
            resourceCredentialProviderName=provider.credential_provider,
            scopes=list(provider.scope_set),
            oauth2Flow="USER_FEDERATION",
            resourceOauth2ReturnUrl=self._settings.session_binding_url,
            **session,
        )
        if response.get("accessToken"):
            return AccessToken(str(response["accessToken"]))
        if resume is not None:
            return _resumed_session(response, resume)
        if response.get("authorizationUrl") and response.get("sessionUri"):
            return ConsentNeeded(str(response["authorizationUrl"]), str(response["sessionUri"]), flow_id)
        raise AgentCoreError("EmptyResponse")

    async def _call(self, operation: str, **params: object) -> dict[str, object]:
        def call() -> dict[str, object]:
            result: dict[str, object] = getattr(self._client.get(), operation)(**params)
            return result

        try:
            return await anyio.to_thread.run_sync(call, limiter=self.limiter())
        except ClientError as exc:
            self._metrics.count(AGENTCORE_ERRORS, ErrorCode=error_code(exc))
            raise AgentCoreError(str(exc.response.get("Error", {}).get("Code", "Unknown"))) from None
        except BotoCoreError as exc:  # timeouts, connection errors, missing credentials
            self._metrics.count(AGENTCORE_ERRORS, ErrorCode=error_code(exc))
            raise AgentCoreError(type(exc).__name__) from None
