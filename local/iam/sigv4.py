"""AWS Signature Version 4 checks for requests that reach a local stand-in.

A stand-in that calls `verify` refuses what AWS would refuse: no or malformed Authorization header, an
unknown access key, a signature that does not match, or an X-Amz-Date more than 15 minutes off. The
canonical request is rebuilt from the request as received, the way botocore builds it for non-S3 services
(botocore/auth.py `SigV4Auth.canonical_request`): the path with dot segments and doubled slashes removed
and then URI-encoded once more, the query decoded (`+` as a space) and re-encoded and sorted, only the SignedHeaders with
trimmed values, and the payload hash from `x-amz-content-sha256` or else SHA-256 of the body.

Not modelled: S3's single-encoded paths, presigned (query-string) signatures, chunked/streaming payloads,
the `Date` header in place of `X-Amz-Date`, session tokens (an `x-amz-security-token` is only checked as
a signed header), and a header sent more than once (one value per name).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote_plus

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = timedelta(minutes=15)
TIMESTAMP = "%Y%m%dT%H%M%SZ"
UNSIGNED_PAYLOADS = frozenset({"UNSIGNED-PAYLOAD", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"})

MISSING_TOKEN = "MissingAuthenticationTokenException"  # noqa: S105 - an error code, not a secret
INCOMPLETE = "IncompleteSignatureException"
UNRECOGNIZED = "UnrecognizedClientException"
INVALID = "InvalidSignatureException"
MISMATCH_MESSAGE = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."
)


class SignatureError(Exception):
    """A request AWS would refuse before running it: `.code` is the AWS error code, `.status` always 403."""

    status = 403

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Signed:
    """Who signed a verified request, and for which region and service (from the credential scope)."""

    access_key_id: str
    region: str
    service: str


@dataclass(frozen=True)
class _Authorization:
    access_key_id: str
    date: str
    region: str
    service: str
    terminator: str
    signed_headers: tuple[str, ...]
    signature: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/{self.terminator}"


def _lowercased(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def _parse_authorization(header: str) -> _Authorization:
    """The parts of `AWS4-HMAC-SHA256 Credential=.../.../.../.../aws4_request, SignedHeaders=a;b, Signature=hex`."""
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise SignatureError(INCOMPLETE, f"Unsupported AWS 'algorithm': '{algorithm}'. Authorization={header}")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, equals, value = part.strip().partition("=")
        if equals:
            fields[name] = value
    for required in ("Credential", "SignedHeaders", "Signature"):
        if not fields.get(required):
            raise SignatureError(INCOMPLETE, f"Authorization header requires '{required}' parameter. Authorization={header}")
    credential = fields["Credential"].split("/")
    if len(credential) != 5 or not all(credential):
        raise SignatureError(
            INCOMPLETE, f"Credential must have the form <access key>/<date>/<region>/<service>/aws4_request: '{fields['Credential']}'"
        )
    key, date, region, service, terminator = credential
    signed = tuple(fields["SignedHeaders"].split(";"))
    return _Authorization(key, date, region, service, terminator, signed, fields["Signature"])


def access_key_of(headers: Mapping[str, str]) -> str | None:
    """The access key id in the Authorization header's Credential, or None if there is none to read."""
    header = _lowercased(headers).get("authorization")
    if header is None:
        return None
    try:
        return _parse_authorization(header).access_key_id
    except SignatureError:
        return None


def _canonical_uri(path: str) -> str:
    """botocore's non-S3 rule: remove dot segments and empty segments, then URI-encode the (already encoded) path."""
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    normalised = "/" + "/".join(segments) + ("/" if path.endswith("/") and segments else "")
    return quote(normalised, safe="/~")


def _canonical_query(query: str) -> str:
    """Each name and value decoded, re-encoded with only the unreserved characters left bare, then sorted.

    A `+` is read as a space, as form encoding writes it: botocore's `AWSRequest` sends `params` that way,
    having signed them as `%20`; botocore's clients send `%20` and `%2B` themselves.
    """
    if not query:
        return ""
    pairs = []
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        pairs.append((quote(unquote_plus(name), safe="-_.~"), quote(unquote_plus(value), safe="-_.~")))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def _canonical_headers(names: tuple[str, ...], headers: Mapping[str, str]) -> str:
    lines = []
    for name in names:
        if name not in headers:
            raise SignatureError(INVALID, MISMATCH_MESSAGE)
        lines.append(f"{name}:{' '.join(headers[name].split())}\n")
    return "".join(lines)


def _payload_hash(headers: Mapping[str, str], body: bytes) -> str:
    """The client's `x-amz-content-sha256` (which must then match the body, unless unsigned) or the body's hash."""
    actual = hashlib.sha256(body).hexdigest()
    declared = headers.get("x-amz-content-sha256")
    if declared is None:
        return actual
    if declared not in UNSIGNED_PAYLOADS and declared != actual:
        raise SignatureError(INVALID, "The provided 'x-amz-content-sha256' header does not match what was computed.")
    return declared


def canonical_request(method: str, target: str, headers: Mapping[str, str], body: bytes, signed_headers: tuple[str, ...]) -> str:
    """The SigV4 canonical request for a request as received (`target`: path and query, `headers`: lowercased names)."""
    path, _, query = target.partition("?")
    return "\n".join(
        [
            method.upper(),
            _canonical_uri(path),
            _canonical_query(query),
            _canonical_headers(signed_headers, headers),
            ";".join(signed_headers),
            _payload_hash(headers, body),
        ]
    )


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def _signature(secret: str, amz_date: str, auth: _Authorization, request: str) -> str:
    """The hex signature of canonical request `request` under `secret` and the credential scope of `auth`."""
    string_to_sign = "\n".join([ALGORITHM, amz_date, auth.scope, hashlib.sha256(request.encode()).hexdigest()])
    key = _hmac(f"AWS4{secret}".encode(), auth.date)
    for part in (auth.region, auth.service, auth.terminator):
        key = _hmac(key, part)
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def _check_date(amz_date: str | None, auth: _Authorization, now: datetime) -> None:
    """X-Amz-Date is present, agrees with the credential scope, and is within 15 minutes of `now`."""
    if amz_date is None:
        raise SignatureError(INCOMPLETE, "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
    try:
        signed_at = datetime.strptime(amz_date, TIMESTAMP).replace(tzinfo=UTC)
    except ValueError:
        raise SignatureError(INCOMPLETE, f"X-Amz-Date must be in the ISO8601 basic format YYYYMMDD'T'HHMMSS'Z': '{amz_date}'") from None
    if auth.date != amz_date[:8]:
        raise SignatureError(
            INVALID,
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{auth.date}' != '{amz_date[:8]}'",
        )
    if auth.terminator != "aws4_request":
        raise SignatureError(INCOMPLETE, f"Credential should be scoped with a valid terminator: 'aws4_request', not '{auth.terminator}'.")
    now_text = now.strftime(TIMESTAMP)
    if signed_at < now - MAX_SKEW:
        earliest = (now - MAX_SKEW).strftime(TIMESTAMP)
        raise SignatureError(INVALID, f"Signature expired: {amz_date} is now earlier than {earliest} ({now_text} - 15 min.)")
    if signed_at > now + MAX_SKEW:
        latest = (now + MAX_SKEW).strftime(TIMESTAMP)
        raise SignatureError(INVALID, f"Signature not yet current: {amz_date} is still later than {latest} ({now_text} + 15 min.)")


def single_valued(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The request's headers by lower-case name; IncompleteSignatureException when one appears twice (an
    SDK never sends that, and a server that read one copy while the signature covered another would be fooled)."""
    found: dict[str, str] = {}
    for name, value in items:
        if name.lower() in found:
            raise SignatureError(INCOMPLETE, f"The header {name.lower()} appears more than once.")
        found[name.lower()] = value
    return found


def verify(
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes,
    secret_for: Callable[[str], str | None],
    *,
    now: datetime | None = None,
    scope: tuple[str, str] | None = None,
) -> Signed:
    """Check the SigV4 Authorization header of one request; SignatureError (status 403) says why it fails.

    `target` is the request line's path and query as received; `secret_for` maps an access key id to its
    secret access key, or None for a key that does not exist; `scope` is the (region, signing name) the
    endpoint answers for, which the credential scope must name.
    """
    lowered = _lowercased(headers)
    header = lowered.get("authorization")
    if header is None:
        raise SignatureError(MISSING_TOKEN, "Missing Authentication Token")
    auth = _parse_authorization(header)
    secret = secret_for(auth.access_key_id)
    if secret is None:
        raise SignatureError(UNRECOGNIZED, "The security token included in the request is invalid.")
    now = datetime.now(UTC) if now is None else now if now.tzinfo else now.replace(tzinfo=UTC)
    if scope is not None and auth.region != scope[0]:
        raise SignatureError(INVALID, f"Credential should be scoped to a valid region, not '{auth.region}'. ")
    if scope is not None and auth.service != scope[1]:
        raise SignatureError(INVALID, f"Credential should be scoped to correct service: '{scope[1]}'. ")
    _check_date(lowered.get("x-amz-date"), auth, now)
    expected = _signature(secret, lowered["x-amz-date"], auth, canonical_request(method, target, lowered, body, auth.signed_headers))
    if not hmac.compare_digest(expected.encode(), auth.signature.encode()):
        raise SignatureError(INVALID, MISMATCH_MESSAGE)
    return Signed(auth.access_key_id, auth.region, auth.service)
