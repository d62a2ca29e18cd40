"""The local ALB: a reverse proxy that behaves like the HTTPS listener with `authenticate-oidc`.

A LOCAL STAND-IN, not Elastic Load Balancing. What it does, in the order a request meets it:

1. Every client-supplied `x-amzn-oidc-*` header is removed, on every route (a browser or script
   cannot speak for the load balancer). A request for another host name is redirected to the public
   origin first.
2. `/oauth2/idpresponse` is the load balancer's own callback: the state must name a pending sign-in
   started in this browser (a nonce cookie), the code is exchanged at the sign-in issuer's token
   endpoint (client_secret_basic) and the user's claims are read from its userinfo endpoint. A sign-in
   session starts (an opaque `AWSELBAuthSessionCookie-0`, state kept here) and the browser goes back to
   the path it first asked for, on this origin.
3. The first listener rule that matches (`cdk_app/routes.py`, the same definition the CDK listener is
   built from) decides the target and what happens without a session: `authenticate` redirects to
   the sign-in issuer, `deny` answers 401, `none` forwards as is. No match: 404. Rules match, and
   targets receive, the path as sent (percent-encoding kept).
4. Signed-in requests are forwarded with `x-amzn-oidc-data` (ES256, the ALB's header fields and
   padded base64url, see `local/alb/keys.py`), `x-amzn-oidc-accesstoken` and
   `x-amzn-oidc-identity`, plus `X-Forwarded-For/-Proto/-Port` and `X-Amzn-Trace-Id`. Responses
   stream back (server-sent events included).

The public keys are served by a `KeyServer` on a port of its own, the way the regional key endpoint
is separate from the load balancer; the services find it through `ALB_KEYS_BASE_URL`.

Differences from AWS, on purpose: the session lives in this process (the ALB encrypts it into the
cookie, in shards of about 4 KB), the claims are not refreshed during the session (the ALB refreshes
them with the refresh token when the access token expires), the ID token is read without a signature
check (it comes straight from the token endpoint, which OpenID Connect Core 3.1.3.7 allows), there is
no TLS and no WAF, and the trace header is generated rather than appended to.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import logging
import re
import secrets
import ssl
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route as StarletteRoute

from cdk_app.routes import IDLE_TIMEOUT_S, NOT_FOUND_BODY, SIGN_IN_SCOPE, SIGN_IN_SESSION_TIMEOUT_S, SignIn, Target, route_for
from local.alb.keys import AlbSigningKey

SESSION_COOKIE = "AWSELBAuthSessionCookie-0"
NONCE_COOKIE = "AWSELBAuthNonce"
CALLBACK_PATH = "/oauth2/idpresponse"
PENDING_TTL_S = 600  # a sign-in has ten minutes from redirect to callback
ISSUER_KEEP_ALIVE_S = 2.0  # below the local IdP's 5 s keep-alive timeout
MAX_PENDING = 10_000
MAX_SESSIONS = 100_000
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"}
)
_TRACE = re.compile(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24}(;[A-Za-z]+=[A-Za-z0-9-]{1,64}){0,4}")

_log = logging.getLogger("local.alb")


@dataclass(frozen=True)
class AlbConfig:
    public_url: str  # the origin browsers use, e.g. http://127.0.0.1:8000
    upstreams: dict[Target, str]  # base URL of each target
    issuer: str  # the sign-in issuer (discovery at <issuer>/.well-known/openid-configuration)
    client_id: str
    client_secret: str
    signer_arn: str  # this load balancer's ARN: the `signer` of every token
    scope: str = SIGN_IN_SCOPE
    session_timeout_s: int = SIGN_IN_SESSION_TIMEOUT_S
    token_lifetime_s: int = 120  # of each x-amzn-oidc-data header; a new one is signed per request
    upstream_timeout_s: float = IDLE_TIMEOUT_S  # the deployed listener's idle timeout, between bytes


@dataclass
class _Pending:
    nonce: str
    return_path: str
    expires_at: float


@dataclass
class _Session:
    claims: dict[str, Any]
    access_token: str
    expires_at: float


@dataclass
class _Endpoints:
    authorization: str
    token: str
    userinfo: str


@dataclass
class AlbState:
    """What the load balancer keeps: pending sign-ins and sessions, both bounded (oldest dropped first),
    and how many sign-ins completed."""

    pending: OrderedDict[str, _Pending] = field(default_factory=OrderedDict)
    sessions: OrderedDict[str, _Session] = field(default_factory=OrderedDict)
    sign_ins: int = 0


class _SignInFailed(Exception):
    def __init__(self, status: int, title: str, text: str) -> None:
        super().__init__(text)
        self.status, self.title, self.text = status, title, text


def _bounded_put(store: OrderedDict[str, Any], key: str, value: Any, limit: int) -> None:
    store[key] = value
    while len(store) > limit:
        store.popitem(last=False)


def _page(status: int, title: str, text: str) -> HTMLResponse:
    body = f"<!doctype html><html><head><title>{status} {title}</title></head><body><h1>{status} {title}</h1><p>{text}</p></body></html>"
    return HTMLResponse(body, status_code=status, headers={"cache-control": "no-store"})


def _raw_path(request: Request) -> str:
    """The path as the client sent it (still percent-encoded): what the ALB matches and forwards."""
    raw = request.scope.get("raw_path")
    return raw.decode("latin-1") if isinstance(raw, bytes) else request.url.path


def _target(request: Request) -> str:
    query = request.scope.get("query_string", b"").decode("latin-1")
    return _raw_path(request) + (f"?{query}" if query else "")


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context for every client of this process (each client would otherwise parse the CA bundle again)."""
    return httpx.create_ssl_context(trust_env=False)


def _decode_jwt_payload(token: str) -> dict[str, Any]:
    try:
        segment = token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (IndexError, ValueError) as exc:
        raise ValueError("the ID token is not a JWT") from exc
    if not isinstance(data, dict):
        raise ValueError("the ID token payload is not an object")
    return data


class LocalAlb:
    """The listener with `authenticate-oidc`: its rules, its sign-in and its forwarding, over one `AlbState`.

    `LocalAlb(config, key).app` is the ASGI app; `state` holds the sessions and counters tests read.
    """

    def __init__(
        self, config: AlbConfig, key: AlbSigningKey, *, state: AlbState | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.config, self.key, self.clock = config, key, clock
        self.state = state or AlbState()
        self._endpoints: _Endpoints | None = None  # discovered on first use: the issuer may start after this
        self._public = urllib.parse.urlsplit(config.public_url)
        self._public_port = str(self._public.port or (443 if self._public.scheme == "https" else 80))
        self._callback_url = config.public_url.rstrip("/") + CALLBACK_PATH
        self._issuer_client = httpx.AsyncClient(
            timeout=httpx.Timeout(10.0),
            follow_redirects=False,
            trust_env=False,
            verify=_tls_context(),
            # Idle connections to the issuer close before the issuer closes them (the local IdP after 5 s:
            # local/idp/server.mjs). At the same 5 s a POST could go out on a connection the issuer was closing
            # ("Server disconnected without sending a response": a failed sign-in, seen under load).
            limits=httpx.Limits(keepalive_expiry=ISSUER_KEEP_ALIVE_S),
        )
        self._upstream = httpx.AsyncClient(
            timeout=httpx.Timeout(config.upstream_timeout_s, connect=5.0),
            follow_redirects=False,
            trust_env=False,
            verify=_tls_context(),
            # An idle connection to a target is closed after the listener's idle timeout, as the ALB does (the
            # targets keep theirs open longer: TARGET_KEEP_ALIVE_S). At most 16 are kept idle: httpcore checks every
            # idle connection of the pool (a select() each) on every request, so a pool of 64 cost the load test
            # (tests/load/test_load.py, 24 people at once) 15 s of its 56 s of CPU in this process.
            limits=httpx.Limits(max_connections=512, max_keepalive_connections=16, keepalive_expiry=config.upstream_timeout_s),
        )
        methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
        self.app = Starlette(routes=[StarletteRoute("/{path:path}", self.listener, methods=methods)], lifespan=self._lifespan)
        self.app.state.alb = self.state

    @contextlib.asynccontextmanager
    async def _lifespan(self, _: Starlette) -> AsyncIterator[None]:
        yield
        await self._issuer_client.aclose()
        await self._upstream.aclose()

    async def listener(self, request: Request) -> Response:
        """Every request: the host check, the load balancer's callback, then the first matching rule."""
        if request.headers.get("host", "").lower() != self._public.netloc.lower():
            # One origin, as with the deployed domain: cookies set under another host name (say
            # localhost) would not come back to the callback, which is registered on this one.
            return RedirectResponse(self.config.public_url.rstrip("/") + _target(request), status_code=302)
        path = _raw_path(request)
        if path == CALLBACK_PATH:
            return await self._idp_response(request)
        route = route_for(path, request.method)
        if route is None:
            return PlainTextResponse(NOT_FOUND_BODY, status_code=404)
        session = None
        if route.sign_in is not SignIn.NONE:
            session = self._session_of(request)
            if session is None and route.sign_in is SignIn.DENY:
                return _page(401, "Authorization Required", "Sign in first.")
            if session is None:
                return await self._start_sign_in(request)
        return await self._forward(request, route.target, session)

    # ---- sign-in ---------------------------------------------------------------------------

    async def _discover(self) -> _Endpoints:
        if self._endpoints is None:
            response = await self._issuer_client.get(self.config.issuer.rstrip("/") + "/.well-known/openid-configuration")
            response.raise_for_status()
            doc = response.json()
            self._endpoints = _Endpoints(doc["authorization_endpoint"], doc["token_endpoint"], doc["userinfo_endpoint"])
        return self._endpoints

    def _session_of(self, request: Request) -> _Session | None:
        sid = request.cookies.get(SESSION_COOKIE)
        found = self.state.sessions.get(sid) if sid else None
        if found is None or found.expires_at <= self.clock():
            return None
        return found

    async def _start_sign_in(self, request: Request) -> Response:
        try:
            ends = await self._discover()
        except (httpx.HTTPError, KeyError, ValueError):
            return _page(503, "Service Unavailable", "The sign-in provider cannot be reached.")
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        _bounded_put(self.state.pending, state, _Pending(nonce, _target(request), self.clock() + PENDING_TTL_S), MAX_PENDING)
        query = urllib.parse.urlencode(
            {
                "response_type": "code",
                "client_id": self.config.client_id,
                "redirect_uri": self._callback_url,
                "scope": self.config.scope,
                "state": state,
            }
        )
        response = RedirectResponse(f"{ends.authorization}?{query}", status_code=302)
        response.set_cookie(NONCE_COOKIE, nonce, max_age=PENDING_TTL_S, path="/", secure=True, httponly=True, samesite="none")
        response.headers["cache-control"] = "no-store"
        return response

    async def _exchange(self, code: str) -> tuple[dict[str, Any], str]:
        """The user's claims and access token for an authorization code, or _SignInFailed."""
        try:
            ends = await self._discover()
            tokens = await self._issuer_client.post(
                ends.token,
                data={"grant_type": "authorization_code", "code": code, "redirect_uri": self._callback_url},
                auth=(self.config.client_id, self.config.client_secret),
            )
            tokens.raise_for_status()
            grant = tokens.json()
            id_claims = _decode_jwt_payload(str(grant["id_token"]))
            info = await self._issuer_client.get(ends.userinfo, headers={"authorization": f"Bearer {grant['access_token']}"})
            info.raise_for_status()
            claims = dict(info.json())
        except (httpx.HTTPError, KeyError, ValueError):
            _log.warning("sign-in code exchange failed")
            raise _SignInFailed(502, "Bad Gateway", "The sign-in provider did not complete the sign-in.") from None
        if not self._id_token_matches(id_claims, claims):
            raise _SignInFailed(401, "Authorization Required", "The sign-in provider's answer did not check out.")
        return claims, str(grant["access_token"])

    def _id_token_matches(self, id_claims: dict[str, Any], claims: dict[str, Any]) -> bool:
        """The ID token is from our issuer, for our client, about the user userinfo describes."""
        audience = id_claims.get("aud")
        return (
            id_claims.get("iss") == self.config.issuer
            and bool(claims.get("sub"))
            and id_claims.get("sub") == claims.get("sub")
            and self.config.client_id in (audience if isinstance(audience, list) else [audience])
        )

    async def _idp_response(self, request: Request) -> Response:
        pending = self.state.pending.pop(request.query_params.get("state", ""), None)
        if pending is None or pending.expires_at <= self.clock():
            return _page(401, "Authorization Required", "This sign-in is unknown or expired. Open the page again to sign in.")
        if not secrets.compare_digest(request.cookies.get(NONCE_COOKIE, ""), pending.nonce):
            return _page(401, "Authorization Required", "This sign-in was started in another browser.")
        if "error" in request.query_params or not request.query_params.get("code"):
            return _page(401, "Authorization Required", "The sign-in provider did not sign you in.")
        try:
            claims, access_token = await self._exchange(request.query_params["code"])
        except _SignInFailed as failed:
            return _page(failed.status, failed.title, failed.text)
        sid = secrets.token_urlsafe(32)
        timeout = self.config.session_timeout_s
        _bounded_put(self.state.sessions, sid, _Session(claims, access_token, self.clock() + timeout), MAX_SESSIONS)
        self.state.sign_ins += 1
        target = pending.return_path if pending.return_path.startswith("/") and not pending.return_path.startswith("//") else "/"
        response = RedirectResponse(target, status_code=302)
        response.set_cookie(SESSION_COOKIE, sid, max_age=timeout, path="/", secure=True, httponly=True, samesite="none")
        response.delete_cookie(NONCE_COOKIE, path="/", secure=True, httponly=True, samesite="none")
        response.headers["cache-control"] = "no-store"
        return response

    # ---- forwarding ------------------------------------------------------------------------

    def _client_headers(self, request: Request) -> list[tuple[bytes, bytes]]:
        """What the client sent, less hop-by-hop, `x-amzn-oidc-*` and forwarding headers; a trace id kept only if well formed."""
        headers: list[tuple[bytes, bytes]] = []
        for name, value in request.headers.raw:
            lower = name.decode("latin-1").lower()
            if (
                lower in HOP_BY_HOP
                or lower.startswith("x-amzn-oidc-")
                or lower in ("x-forwarded-for", "x-forwarded-proto", "x-forwarded-port")
            ):
                continue
            if lower == "x-amzn-trace-id" and not _TRACE.fullmatch(value.decode("latin-1")):
                continue
            headers.append((name, value))
        return headers

    def _forwarded_headers(self, request: Request, session: _Session | None) -> list[tuple[bytes, bytes]]:
        headers = self._client_headers(request)
        if not any(n.lower() == b"x-amzn-trace-id" for n, _ in headers):
            trace = f"Root=1-{int(self.clock()):08x}-{secrets.token_hex(12)}"
            headers.append((b"x-amzn-trace-id", trace.encode()))
        # The connection's peer (the server must not rewrite it from headers: proxy_headers off), appended
        # to what the client sent, as the ALB's default `append` mode does.
        client_ip = request.client.host if request.client else "127.0.0.1"
        sent = ", ".join(v.strip() for v in request.headers.getlist("x-forwarded-for") if v.strip())
        headers += [
            (b"x-forwarded-for", (f"{sent}, {client_ip}" if sent else client_ip).encode("latin-1")),
            (b"x-forwarded-proto", self._public.scheme.encode()),
            (b"x-forwarded-port", self._public_port.encode()),
        ]
        if session is not None:
            headers += self._identity_headers(session)
        return headers

    def _identity_headers(self, session: _Session) -> list[tuple[bytes, bytes]]:
        claims = session.claims
        token = self.key.mint(
            sub=str(claims["sub"]),
            signer=self.config.signer_arn,
            issuer=self.config.issuer,
            client_id=self.config.client_id,
            lifetime_s=self.config.token_lifetime_s,
            now=self.clock(),
            claims={k: v for k, v in claims.items() if k != "exp"},
        )
        return [
            (b"x-amzn-oidc-data", token.encode()),
            (b"x-amzn-oidc-accesstoken", session.access_token.encode()),
            (b"x-amzn-oidc-identity", str(claims["sub"]).encode()),
        ]

    async def _forward(self, request: Request, target: Target, session: _Session | None) -> Response:
        url = self.config.upstreams[target].rstrip("/") + _target(request)
        outgoing = self._upstream.build_request(
            request.method,
            url,
            headers=self._forwarded_headers(request, session),
            content=request.stream() if request.method not in ("GET", "HEAD") else None,
        )
        try:
            answer = await self._upstream.send(outgoing, stream=True)
        except httpx.TimeoutException:
            return _page(504, "Gateway Time-out", "The target did not answer in time.")
        except httpx.HTTPError:
            return _page(502, "Bad Gateway", "The target could not be reached.")
        headers = [(k, v) for k, v in answer.headers.raw if k.decode("latin-1").lower() not in HOP_BY_HOP]
        response = StreamingResponse(_body_of(answer), status_code=answer.status_code, background=BackgroundTask(answer.aclose))
        response.raw_headers = headers
        return response


async def _body_of(answer: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in answer.aiter_raw():
            yield chunk
    except httpx.HTTPError:
        return  # the target went away mid-body: end the response (the client sees it truncated)


def create_alb_app(
    config: AlbConfig, key: AlbSigningKey, *, state: AlbState | None = None, clock: Callable[[], float] = time.time
) -> Starlette:
    """The listener as an ASGI app. `state` is exposed for tests (sessions, counters)."""
    return LocalAlb(config, key, state=state, clock=clock).app
