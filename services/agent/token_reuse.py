"""Outbound access tokens reused inside one task, so the agent does not read the vault on every tool call.

AgentCore Identity's `GetResourceOauth2Token` is quota-bound per account (200 TPS); the vault answers the
same token until it nears its end, so asking it for every tool call spends the quota for nothing.

* **Key:** the person (issuer and `sub`), the credential provider and the scopes: never shared across
  people, providers or scope sets. Custom parameters are not sent (every request has one shape).
* **Lifetime:** until `REUSE_MARGIN_S` before the token's `exp` when it is a JWT whose payload carries one
  (read only to know when to stop reusing it: the token is not trusted for anything here); otherwise
  `OPAQUE_REUSE_S`. Never longer than `MAX_REUSE_S`, whatever `exp` says: a grant withdrawn at the
  provider is noticed within that bound (the next vault read), and the API's own 401 sooner.
* **Evicted** at once on a 401 or 403 from the API, on disconnect and on sign-out (this task); a disconnect
  on another task is enforced by the connections registry before each use, which also evicts here.
* **Bounded:** at most `max_entries`, least recently used first out. Never logged (`AccessToken` redacts).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections import OrderedDict
from collections.abc import Callable

REUSE_MARGIN_S = 30.0  # stop this long before `exp`: a call started just before it must not carry a dead token
OPAQUE_REUSE_S = 60.0  # a token whose expiry cannot be read: one minute, a fraction of any provider's lifetime
MAX_REUSE_S = 300.0  # even a long-lived token is read from the vault again after five minutes

Key = tuple[str, str, tuple[str, ...]]  # user key, credential provider, sorted scopes


def reuse_until(token: str, now: float) -> float:
    """Until when `token` may be reused, from `now`."""
    expires = _jwt_exp(token)
    limit = now + MAX_REUSE_S
    if expires is None:
        return min(now + OPAQUE_REUSE_S, limit)
    return min(expires - REUSE_MARGIN_S, limit)


def _jwt_exp(token: str) -> float | None:
    parts = token.split(".")
    if len(parts) != 3 or len(parts[1]) > 8192:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    exp = payload.get("exp") if isinstance(payload, dict) else None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


class OutboundTokenCache:
    """Access tokens by (person, provider, scopes), each until `reuse_until`; bounded LRU."""

    def __init__(self, *, max_entries: int, clock: Callable[[], float] = time.time) -> None:
        self._entries: OrderedDict[Key, tuple[str, float]] = OrderedDict()
        self._max_entries = max_entries
        self._clock = clock
        self.hits = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Key) -> str | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        token, until = entry
        if self._clock() >= until:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return token

    def put(self, key: Key, token: str) -> None:
        until = reuse_until(token, self._clock())
        if until <= self._clock():
            return  # nearly expired already: not worth keeping
        self._entries[key] = (token, until)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def evict(self, user_key: str, credential_provider: str | None = None) -> None:
        """Forget the person's tokens: for one provider (any scopes), or all of them."""
        for key in [k for k in self._entries if k[0] == user_key and credential_provider in (None, k[1])]:
            del self._entries[key]
