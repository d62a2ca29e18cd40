"""Who is signed in: verification of the ALB's `x-amzn-oidc-data` token.

The ALB authenticates the person with Cognito and then forwards an ES256 JWT that it signed with a
regional key. Anyone who reaches a target directly, or any other ALB in any account, can also send
such a header, so every field that names the signer is pinned before the signature is trusted:

* the token is in the ALB's format: three base64url segments *with* padding (canonical, nothing else);
* `alg` is ES256, `kid` is a UUID (checked before it goes into a URL), `signer` is this ALB's ARN,
  `iss` the sign-in pool and `client` the ALB's app client, all read from the header before any fetch;
* the key comes from `<keys base URL>/<kid>`, is cached in a bounded cache, with one fetch in flight
  per kid, at most four at once and a short deadline; a failed fetch is never cached as a key, and a
  kid the endpoint does not know is remembered for a minute (bounded) so random kids cost one fetch each;
* `exp` is checked with a small leeway; the user is `sub`, never the email.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import anyio.to_thread
import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from starlette.datastructures import Headers

from services.common.http_fetch import FetchFailed, fetch_capped, tls_context

DATA_HEADER = "x-amzn-oidc-data"
IDENTITY_HEADER = "x-amzn-oidc-identity"
MAX_TOKEN_CHARS = 16_384
MAX_HEADER_SEGMENT_CHARS = 2048  # an ALB header is ~400 characters; parsed before the signature is checked
MAX_SUB_CHARS = 128  # AgentCore's userId limit: the sub is the user id everywhere
_KID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_SEGMENT = re.compile(r"[A-Za-z0-9_-]*={0,2}")
_MAX_KEY_BYTES = 4096
_FETCH_REASONS = {"too_large": "key_too_large", "timeout": "key_fetch_timeout", "failed": "key_fetch_failed"}


class NotAuthenticated(Exception):
    """The request does not carry a valid sign-in from this ALB. `reason` is a stable code for logs."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KeyUnavailable(NotAuthenticated):
    """The signing key could not be fetched (endpoint down, slow or odd): fail closed, try again later."""


@dataclass(frozen=True, slots=True)
class AlbIdentity:
    """The signed-in person. `sub` is the stable user id; `issuer` scopes it."""

    sub: str
    issuer: str
    email: str | None = None

    @property
    def user_key(self) -> str:
        """One string naming the user across issuers (used in hashes and comparisons)."""
        return f"{self.issuer}\n{self.sub}"


def decode_padded_segment(segment: str) -> bytes:
    """Decode one ALB JWT segment: base64url with its padding, canonical, or raise ValueError."""
    if not segment or len(segment) % 4 or not _SEGMENT.fullmatch(segment):
        raise ValueError("not padded base64url")
    try:
        data = base64.urlsafe_b64decode(segment)
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc
    if base64.urlsafe_b64encode(data).decode("ascii") != segment:
        raise ValueError("not canonical base64url")  # e.g. non-zero padding bits: one token, one spelling
    return data


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except RecursionError as exc:  # deeply nested input: refuse, do not crash
        raise ValueError("JSON nested too deeply") from exc
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


class AlbKeyStore:
    """ALB public keys by kid: bounded LRU cache, one fetch in flight per kid, short timeout.

    Thread-safe. `cached()` never blocks; `get()` may fetch and is meant for a worker thread.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float,
        max_keys: int = 32,
        max_concurrent_fetches: int = 4,
        missing_ttl_s: float = 60.0,
        client: httpx.Client | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._timeout_s = timeout_s
        self._max_keys = max_keys
        self._keys: OrderedDict[str, ec.EllipticCurvePublicKey] = OrderedDict()
        self._inflight: dict[str, Future[ec.EllipticCurvePublicKey]] = {}
        self._missing: OrderedDict[str, float] = OrderedDict()  # kids the endpoint did not know, until when
        self._missing_ttl_s = missing_ttl_s
        self._max_missing = 1024
        self._lock = threading.Lock()
        self._fetch_slots = threading.BoundedSemaphore(max_concurrent_fetches)
        self._client = client or httpx.Client(timeout=timeout_s, follow_redirects=False, trust_env=False, verify=tls_context())
        self.fetches = 0  # observable for tests and metrics

    def cached(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        with self._lock:
            key = self._keys.get(kid)
            if key is not None:
                self._keys.move_to_end(kid)
            return key

    def get(self, kid: str) -> ec.EllipticCurvePublicKey:
        """The key for `kid` (already validated as a UUID by the caller), fetching it if needed."""
        with self._lock:
            key = self._keys.get(kid)
            if key is not None:
                self._keys.move_to_end(kid)
                return key
            missing_until = self._missing.get(kid)
            if missing_until is not None and missing_until > time.monotonic():
                raise NotAuthenticated("unknown_kid")
            pending = self._inflight.get(kid)
            owner = pending is None
            if pending is None:
                pending = Future()
                self._inflight[kid] = pending
        if not owner:
            try:
                return pending.result(timeout=self._timeout_s + 1)
            except TimeoutError as exc:
                raise KeyUnavailable("key_fetch_timeout") from exc
        try:
            key = self._fetch(kid)
        except BaseException as exc:
            with self._lock:
                self._inflight.pop(kid, None)
                if isinstance(exc, NotAuthenticated) and exc.reason == "unknown_kid":
                    self._missing[kid] = time.monotonic() + self._missing_ttl_s
                    while len(self._missing) > self._max_missing:
                        self._missing.popitem(last=False)
            pending.set_exception(exc)
            raise
        with self._lock:  # store and retire the in-flight entry together: no window for a second fetch
            self._keys[kid] = key
            self._keys.move_to_end(kid)
            while len(self._keys) > self._max_keys:
                self._keys.popitem(last=False)
            self._inflight.pop(kid, None)
        pending.set_result(key)
        return key

    def _fetch(self, kid: str) -> ec.EllipticCurvePublicKey:
        if not self._fetch_slots.acquire(timeout=self._timeout_s):
            raise KeyUnavailable("key_fetch_busy")
        try:
            self.fetches += 1
            status, content = self._download(f"{self._base_url}/{quote(kid, safe='')}")
        finally:
            self._fetch_slots.release()
        if status in (403, 404):
            raise NotAuthenticated("unknown_kid")  # the endpoint does not know this kid: no AWS key signed the token
        if status != 200:
            raise KeyUnavailable(f"key_fetch_status_{status}")
        try:
            key = serialization.load_pem_public_key(content)
        except ValueError as exc:
            raise KeyUnavailable("key_unreadable") from exc
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
            raise KeyUnavailable("key_not_p256")
        return key

    def _download(self, url: str) -> tuple[int, bytes]:
        try:
            return fetch_capped(self._client, url, deadline_s=self._timeout_s, max_bytes=_MAX_KEY_BYTES)
        except FetchFailed as exc:
            raise KeyUnavailable(_FETCH_REASONS[exc.reason]) from exc

    def close(self) -> None:
        self._client.close()


@dataclass(frozen=True, slots=True)
class _ParsedToken:
    kid: str
    signing_input: bytes
    signature: bytes
    payload_segment: str


class AlbIdentityVerifier:
    """Verifies `x-amzn-oidc-data` for one ALB, one issuer and one app client."""

    def __init__(
        self,
        *,
        alb_arn: str,
        issuer: str,
        client_id: str,
        keys: AlbKeyStore,
        leeway_s: int = 10,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._alb_arn = alb_arn
        self._issuer = issuer
        self._client_id = client_id
        self.keys = keys
        self._leeway_s = leeway_s
        self._clock = clock

    def parse(self, data_values: Sequence[str], identity_values: Sequence[str] = ()) -> _ParsedToken:
        """Header checks that need no key. Raises NotAuthenticated; never fetches anything."""
        if not data_values:
            raise NotAuthenticated("missing_header")
        if len(data_values) > 1 or len(identity_values) > 1:
            raise NotAuthenticated("duplicate_header")
        token = data_values[0]
        if len(token) > MAX_TOKEN_CHARS:
            raise NotAuthenticated("token_too_large")
        parts = token.split(".")
        if len(parts) != 3 or len(parts[0]) > MAX_HEADER_SEGMENT_CHARS or not token.isascii():
            raise NotAuthenticated("malformed_token")
        try:
            header = _json_object(decode_padded_segment(parts[0]))
            signature = decode_padded_segment(parts[2])
        except ValueError as exc:
            raise NotAuthenticated("malformed_token") from exc
        if header.get("alg") != "ES256":
            raise NotAuthenticated("wrong_alg")
        kid = header.get("kid")
        if not isinstance(kid, str) or not _KID.fullmatch(kid):
            raise NotAuthenticated("bad_kid")
        if header.get("signer") != self._alb_arn:
            raise NotAuthenticated("foreign_signer")
        if header.get("iss") != self._issuer:
            raise NotAuthenticated("wrong_issuer")
        if header.get("client") != self._client_id:
            raise NotAuthenticated("wrong_client")
        if len(signature) != 64:
            raise NotAuthenticated("malformed_signature")
        self._check_exp(header.get("exp"))
        return _ParsedToken(kid=kid, signing_input=f"{parts[0]}.{parts[1]}".encode("ascii"), signature=signature, payload_segment=parts[1])

    def identity(self, parsed: _ParsedToken, key: ec.EllipticCurvePublicKey, identity_values: Sequence[str] = ()) -> AlbIdentity:
        """Signature and payload checks, once the key is known."""
        r = int.from_bytes(parsed.signature[:32], "big")
        s = int.from_bytes(parsed.signature[32:], "big")
        try:
            key.verify(encode_dss_signature(r, s), parsed.signing_input, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature as exc:
            raise NotAuthenticated("bad_signature") from exc
        try:
            payload = _json_object(decode_padded_segment(parsed.payload_segment))
        except ValueError as exc:
            raise NotAuthenticated("malformed_token") from exc
        sub = payload.get("sub")
        if not isinstance(sub, str) or not 1 <= len(sub) <= MAX_SUB_CHARS or not sub.isprintable():
            raise NotAuthenticated("bad_sub")
        if "iss" in payload and payload["iss"] != self._issuer:
            raise NotAuthenticated("wrong_issuer")
        if "exp" in payload:
            self._check_exp(payload["exp"])
        if identity_values and identity_values[0] != sub:
            raise NotAuthenticated("identity_mismatch")  # the plain identity header must agree with the signed one
        email = payload.get("email")
        return AlbIdentity(sub=sub, issuer=self._issuer, email=email if isinstance(email, str) else None)

    def verify(self, data_values: Sequence[str], identity_values: Sequence[str] = ()) -> AlbIdentity:
        """Synchronous verification, fetching the key if needed (call from a worker thread)."""
        parsed = self.parse(data_values, identity_values)
        return self.identity(parsed, self.keys.get(parsed.kid), identity_values)

    def _check_exp(self, exp: object) -> None:
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            raise NotAuthenticated("malformed_token")
        if self._clock() > exp + self._leeway_s:
            raise NotAuthenticated("expired")


async def verify_alb_identity(headers: Headers, verifier: AlbIdentityVerifier) -> AlbIdentity:
    """The signed-in user of this request, for async routes: the key fetch (if any) runs in a worker thread."""
    data_values = headers.getlist(DATA_HEADER)
    identity_values = headers.getlist(IDENTITY_HEADER)
    parsed = verifier.parse(data_values, identity_values)
    key = verifier.keys.cached(parsed.kid)
    if key is None:
        key = await anyio.to_thread.run_sync(verifier.keys.get, parsed.kid)
    return verifier.identity(parsed, key, identity_values)
