"""Signed values both services exchange through the browser: flow tokens and binding cookies.

Format: `v1.<kid>.<payload>.<mac>`, payload and MAC in unpadded base64url, MAC = HMAC-SHA256 over
`<purpose>\\nv1.<kid>.<payload>`. The purpose keeps a flow token from being replayed as a cookie
(and the reverse). The key id lets a new key sign while the previous one still verifies (rotation).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any

_KID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_B64 = re.compile(r"[A-Za-z0-9_-]+")
MIN_KEY_CHARS = 32


class SignedValueError(Exception):
    """A signed value was refused. `reason` is a stable code: malformed, unknown_key, bad_signature."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    if not _B64.fullmatch(text):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc


def digest(value: str, size: int = 16) -> str:
    """A short, stable, non-reversible name for a value (cookie names, log fields)."""
    return b64url(hashlib.sha256(value.encode("utf-8")).digest()[:size])


def matches_digest(value: str, expected: str, size: int = 16) -> bool:
    """Constant-time check that `expected` is `digest(value, size)`."""
    return value.isascii() and expected.isascii() and hmac.compare_digest(digest(value, size), expected)


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    secret: bytes


class Keyring:
    """Keys that verify signed values; the first one signs."""

    def __init__(self, keys: list[SigningKey]) -> None:
        if not keys:
            raise ValueError("at least one signing key is required")
        self._signer = keys[0]
        self._by_kid = {key.kid: key for key in keys}
        if len(self._by_kid) != len(keys):
            raise ValueError("signing key ids must be unique")

    @classmethod
    def from_json(cls, raw: str) -> Keyring:
        """Parse the Secrets Manager value: `{"kid","key"}` or `[{"kid","key"}, ...]` (newest first)."""
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError('flow signing keys: expected JSON {"kid": ..., "key": ...} or a list of them') from exc
        items = value if isinstance(value, list) else [value]
        keys = []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("kid"), str) or not isinstance(item.get("key"), str):
                raise ValueError('flow signing keys: each entry needs string "kid" and "key"')
            if not _KID.fullmatch(item["kid"]):
                raise ValueError("flow signing keys: kid must be 1-32 characters of A-Z a-z 0-9 _ -")
            if len(item["key"]) < MIN_KEY_CHARS:
                raise ValueError(f"flow signing keys: key {item['kid']!r} is shorter than {MIN_KEY_CHARS} characters")
            keys.append(SigningKey(kid=item["kid"], secret=item["key"].encode("utf-8")))
        return cls(keys)

    def derive(self, purpose: str) -> bytes:
        """A key for another use (e.g. keyed log digests), derived from the current signing key."""
        return hmac.new(self._signer.secret, f"derive\n{purpose}".encode(), hashlib.sha256).digest()

    def sign(self, purpose: str, payload: dict[str, Any]) -> str:
        body = b64url(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8"))
        head = f"v1.{self._signer.kid}.{body}"
        return f"{head}.{self._mac(self._signer, purpose, head)}"

    def verify(self, purpose: str, value: str, *, max_chars: int) -> dict[str, Any]:
        """The payload of a value this keyring signed for `purpose`, or SignedValueError."""
        if len(value) > max_chars or not value.isascii():
            raise SignedValueError("malformed")  # also keeps compare_digest on ASCII, where it is defined
        parts = value.split(".")
        if len(parts) != 4 or parts[0] != "v1":
            raise SignedValueError("malformed")
        key = self._by_kid.get(parts[1])
        if key is None:
            raise SignedValueError("unknown_key")
        head = ".".join(parts[:3])
        if not hmac.compare_digest(self._mac(key, purpose, head), parts[3]):
            raise SignedValueError("bad_signature")
        try:
            payload = json.loads(b64url_decode(parts[2]))
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise SignedValueError("malformed") from exc
        if not isinstance(payload, dict):
            raise SignedValueError("malformed")
        return payload

    @staticmethod
    def _mac(key: SigningKey, purpose: str, head: str) -> str:
        return b64url(hmac.new(key.secret, f"{purpose}\n{head}".encode(), hashlib.sha256).digest())
