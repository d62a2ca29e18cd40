"""Verification of the demo authorization server's access tokens (Amazon Cognito, RS256 JWTs).

A Cognito access token is a JWT in the common format: three unpadded base64url segments, RS256,
a `kid` naming one key of the pool's JWKS. Several kinds of token are signed by the same keys, so the
signature alone proves little; each of these must hold before a request is served:

* `alg` is RS256 (nothing else, `none` and HMAC included) and there is no `crit` header;
* `kid` names a key of the JWKS at `<issuer>/.well-known/jwks.json`, which is cached in a bounded
  cache and re-fetched for an unknown kid at most once every 10 seconds, with a 2-second deadline;
* the RSA signature verifies over the first two segments exactly as sent;
* `iss` is the configured issuer (another pool's tokens are refused);
* `token_use` is `access` (an ID token of the same pool is refused);
* `client_id` is one of the configured app clients (Cognito access tokens carry no `aud`): one per
  credential provider of the agent for this authorization server ("Demo Notes", "Demo Tasks"), each
  an account the agent can act at;
* `exp` has not passed (10 seconds of leeway at most), `nbf`, if present, has;
* the route's scope is one of the space-separated `scope` claim.

When the key set cannot be fetched, or an unknown kid arrives while the next refresh is not allowed
yet, the token is neither accepted nor called invalid: the caller gets 503 and tries again, instead
of throwing away a token that may be good (a rotated key, say). Only a kid missing from a key set
fetched after the request arrived is `unknown_kid` (see docs/demo-api.md).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from services.common.http_fetch import FetchFailed, fetch_capped, tls_context

MAX_TOKEN_CHARS = 8192  # a Cognito access token is about 1,000 characters
MAX_LEEWAY_S = 10
MAX_SUB_CHARS = 128
JWKS_REFRESH_INTERVAL_S = 10.0
JWKS_FETCH_TIMEOUT_S = 2.0
_MAX_JWKS_BYTES = 64 * 1024
_MIN_RSA_BITS = 2048
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_KID = re.compile(r"[\x21-\x7e]{1,128}")


class TokenRejected(Exception):
    """The request is not served. `reason` is a stable code for logs, never shown with token data."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidToken(TokenRejected):
    """The token is missing, malformed, expired, or not one of ours: 401."""


class InvalidRequest(TokenRejected):
    """The request carries credentials in a way RFC 6750 calls malformed (a repeated header): 400."""


class KeysUnavailable(TokenRejected):
    """The signing keys could not be fetched: the token was not checked, so 503 and try again."""


class KeysRefreshing(KeysUnavailable):
    """The kid is not in the cached keys and the next refresh is not allowed yet: 503, retry after `retry_after_s`.

    Not a verdict on the token: a key the authorization server has just started signing with is
    published before it is used, so the refresh `retry_after_s` from now will likely have it.
    """

    def __init__(self, retry_after_s: int) -> None:
        super().__init__("keys_refreshing")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A verified access token: whose it is and what it allows."""

    sub: str
    username: str | None
    scopes: frozenset[str]


def b64url_decode(segment: str) -> bytes:
    """Decode one unpadded base64url segment, canonical only (one spelling per value), or raise ValueError."""
    if not _SEGMENT.fullmatch(segment) or len(segment) % 4 == 1:
        raise ValueError("not unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc
    if base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii") != segment:
        raise ValueError("not canonical base64url")
    return data


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data, parse_constant=_no_constants)  # NaN and Infinity are Python's, not JSON's
    except (ValueError, RecursionError) as exc:
        raise ValueError("not JSON") from exc
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _rsa_key(jwk: object) -> tuple[str, rsa.RSAPublicKey] | None:
    """A signing key from one JWK entry, or None for entries this API does not use."""
    if not isinstance(jwk, dict) or jwk.get("kty") != "RSA":
        return None
    kid, n, e = jwk.get("kid"), jwk.get("n"), jwk.get("e")
    if jwk.get("use", "sig") != "sig" or jwk.get("alg", "RS256") != "RS256":
        return None
    if not isinstance(kid, str) or not _KID.fullmatch(kid) or not isinstance(n, str) or not isinstance(e, str):
        return None
    try:
        modulus = int.from_bytes(b64url_decode(n), "big")
        exponent = int.from_bytes(b64url_decode(e), "big")
        key = rsa.RSAPublicNumbers(exponent, modulus).public_key()
    except ValueError:
        return None
    if key.key_size < _MIN_RSA_BITS:
        return None
    return kid, key


class JwksKeyStore:
    """The authorization server's signing keys by kid.

    Thread-safe. `cached()` never blocks; `get()` may fetch and is meant for a worker thread. One
    fetch at a time (concurrent misses wait for it, then look again), and after a successful fetch no
    other for `refresh_interval_s`, whatever the kids: random kids cost at most one fetch every 10
    seconds. A kid missing from the keys is:

    * refreshed for, when the last fetch began `refresh_interval_s` or more ago; still missing after
      that fetch: `InvalidToken("unknown_kid")` (401);
    * answered with `KeysRefreshing` (503, retry after the seconds until the next fetch is allowed)
      inside that window, since the key may have been published after the last fetch.

    After a failed fetch, callers get `KeysUnavailable` for `retry_after_s` without another attempt,
    so a down endpoint is not hammered.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = JWKS_FETCH_TIMEOUT_S,
        refresh_interval_s: float = JWKS_REFRESH_INTERVAL_S,
        retry_after_s: float = 5.0,
        max_keys: int = 16,
        client: httpx.Client | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._timeout_s = timeout_s
        self._refresh_interval_s = refresh_interval_s
        self._retry_after_s = retry_after_s
        self._max_keys = max_keys
        self._monotonic = monotonic
        self._keys: OrderedDict[str, rsa.RSAPublicKey] = OrderedDict()
        self._last_attempt: float | None = None
        self._last_error: KeysUnavailable | None = None
        self._lock = threading.Lock()
        self._client = client or httpx.Client(timeout=timeout_s, follow_redirects=False, trust_env=False, verify=tls_context())
        self.fetches = 0  # observable for tests and metrics

    def cached(self, kid: str) -> rsa.RSAPublicKey | None:
        with self._lock:
            return self._keys.get(kid)

    def get(self, kid: str) -> rsa.RSAPublicKey:
        with self._lock:  # held through the fetch: concurrent misses wait for one fetch, then look again
            key = self._keys.get(kid)
            if key is not None:
                return key
            now = self._monotonic()
            if self._last_attempt is not None:
                elapsed = now - self._last_attempt
                if self._last_error is not None and elapsed < self._retry_after_s:
                    raise KeysUnavailable(self._last_error.reason)
                if self._last_error is None and elapsed < self._refresh_interval_s:
                    raise KeysRefreshing(max(1, math.ceil(self._refresh_interval_s - elapsed)))
            self._last_attempt = now
            try:
                keys = self._fetch()
            except KeysUnavailable as exc:
                self._last_error = exc
                raise
            self._last_error = None
            # Replace, not merge: a key the server stopped publishing stops verifying tokens.
            self._keys = keys
            key = self._keys.get(kid)
        if key is None:
            raise InvalidToken("unknown_kid")  # the keys were fetched just now, after the request arrived
        return key

    def _fetch(self) -> OrderedDict[str, rsa.RSAPublicKey]:
        self.fetches += 1
        status, content = self._download()
        if status != 200:
            raise KeysUnavailable(f"jwks_status_{status}")
        try:
            document = _json_object(content)
        except ValueError as exc:
            raise KeysUnavailable("jwks_unreadable") from exc
        entries = document.get("keys")
        if not isinstance(entries, list):
            raise KeysUnavailable("jwks_unreadable")
        keys: OrderedDict[str, rsa.RSAPublicKey] = OrderedDict()
        for entry in entries:
            found = _rsa_key(entry)
            if found is not None and found[0] not in keys:
                keys[found[0]] = found[1]
                if len(keys) == self._max_keys:
                    break
        return keys

    def _download(self) -> tuple[int, bytes]:
        try:
            return fetch_capped(
                self._client,
                self._url,
                deadline_s=self._timeout_s,
                max_bytes=_MAX_JWKS_BYTES,
                headers={"accept": "application/json"},
                clock=self._monotonic,
            )
        except FetchFailed as exc:
            raise KeysUnavailable(f"jwks_{'too_large' if exc.reason == 'too_large' else 'fetch_' + exc.reason}") from exc

    def close(self) -> None:
        self._client.close()


@dataclass(frozen=True, slots=True)
class ParsedToken:
    """A token whose header passed the checks that need no key."""

    kid: str
    signing_input: bytes
    signature: bytes
    payload: bytes


class AccessTokenVerifier:
    """Verifies access tokens of one issuer, issued to any of a fixed set of its app clients."""

    def __init__(
        self,
        *,
        issuer: str,
        client_ids: Collection[str],
        keys: JwksKeyStore,
        leeway_s: int = MAX_LEEWAY_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 <= leeway_s <= MAX_LEEWAY_S:
            raise ValueError(f"leeway must be 0-{MAX_LEEWAY_S} seconds")
        if isinstance(client_ids, str) or not client_ids:  # a str is a collection too: of one-letter "ids"
            raise ValueError("client_ids must be a non-empty collection of app client ids")
        self._issuer = issuer
        self._client_ids = frozenset(client_ids)
        self.keys = keys
        self._leeway_s = leeway_s
        self._clock = clock

    def parse(self, token: str) -> ParsedToken:
        """Format and header checks. Raises InvalidToken; never fetches anything."""
        if len(token) > MAX_TOKEN_CHARS or not token.isascii():
            raise InvalidToken("malformed_token")
        parts = token.split(".")
        if len(parts) != 3:
            raise InvalidToken("malformed_token")
        try:
            header = _json_object(b64url_decode(parts[0]))
            payload = b64url_decode(parts[1])
            signature = b64url_decode(parts[2])
        except ValueError:
            raise InvalidToken("malformed_token") from None
        if header.get("alg") != "RS256":
            raise InvalidToken("wrong_alg")
        if "crit" in header:
            raise InvalidToken("unsupported_header")  # no extension is understood here, so none may be required
        kid = header.get("kid")
        if not isinstance(kid, str) or not _KID.fullmatch(kid):
            raise InvalidToken("bad_kid")
        return ParsedToken(kid=kid, signing_input=f"{parts[0]}.{parts[1]}".encode("ascii"), signature=signature, payload=payload)

    def verify_parsed(self, parsed: ParsedToken, key: rsa.RSAPublicKey) -> AccessToken:
        """Signature, then claims."""
        if len(parsed.signature) != (key.key_size + 7) // 8:
            raise InvalidToken("bad_signature")
        try:
            key.verify(parsed.signature, parsed.signing_input, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise InvalidToken("bad_signature") from None
        try:
            claims = _json_object(parsed.payload)
        except ValueError:
            raise InvalidToken("malformed_token") from None
        return self._claims(claims)

    def verify(self, token: str) -> AccessToken:
        """Synchronous verification, fetching keys if needed (call from a worker thread)."""
        parsed = self.parse(token)
        return self.verify_parsed(parsed, self.keys.get(parsed.kid))

    def _claims(self, claims: dict[str, Any]) -> AccessToken:
        if claims.get("iss") != self._issuer:
            raise InvalidToken("wrong_issuer")
        if claims.get("token_use") != "access":
            raise InvalidToken("not_an_access_token")
        client_id = claims.get("client_id")
        if not isinstance(client_id, str) or client_id not in self._client_ids:  # a list or object is unhashable: no `in`
            raise InvalidToken("wrong_client")
        now = self._clock()
        exp = _number(claims.get("exp"))
        if exp is None:
            raise InvalidToken("malformed_token")
        if now > exp + self._leeway_s:
            raise InvalidToken("expired")
        if "nbf" in claims:
            nbf = _number(claims["nbf"])
            if nbf is None or now + self._leeway_s < nbf:
                raise InvalidToken("not_yet_valid")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not 1 <= len(sub) <= MAX_SUB_CHARS or not sub.isprintable():
            raise InvalidToken("bad_sub")
        scope = claims.get("scope", "")
        if not isinstance(scope, str):
            raise InvalidToken("malformed_token")
        username = claims.get("username")
        return AccessToken(sub=sub, username=username if isinstance(username, str) else None, scopes=frozenset(scope.split()))


def _number(value: object) -> float | None:
    """A JSON number as a float; None for anything else (booleans included, which Python counts as ints)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def bearer_token(values: list[str]) -> str:
    """The token of the one `Authorization: Bearer <token>` header (RFC 6750 section 2.1).

    Raises InvalidToken when there is none or it uses another scheme, and InvalidRequest for a
    repeated header (a malformed request rather than a bad token).
    """
    if not values:
        raise InvalidToken("missing_token")
    if len(values) > 1:
        raise InvalidRequest("duplicate_authorization_header")
    scheme, _, token = values[0].strip().partition(" ")
    if scheme.lower() != "bearer":
        raise InvalidToken("not_bearer")
    token = token.strip()
    if not token:
        raise InvalidToken("missing_token")
    return token
