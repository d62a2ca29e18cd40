"""ALB identity verification with real ES256 tokens in the ALB's padded format and a loopback key endpoint."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from typing import Any

import httpx
import pytest

from local.alb.keys import AlbSigningKey, KeyServer, padded_b64url
from services.common.alb_identity import AlbIdentityVerifier, AlbKeyStore, KeyUnavailable, NotAuthenticated, decode_padded_segment
from services.session_binding import pages
from tests.services.conftest import ALB_ARN, ALICE, BOB, CLIENT_ID, ISSUER, OTHER_ALB_ARN, BindingHarness, new_session_uri

BOB_SUB = BOB.sub


def make_verifier(server: KeyServer, **kwargs: Any) -> AlbIdentityVerifier:
    keys = AlbKeyStore(server.base_url, timeout_s=kwargs.pop("timeout_s", 0.5), max_keys=kwargs.pop("max_keys", 32))
    return AlbIdentityVerifier(alb_arn=ALB_ARN, issuer=ISSUER, client_id=CLIENT_ID, keys=keys, **kwargs)


def mint(key: AlbSigningKey, **kwargs: Any) -> str:
    defaults: dict[str, Any] = {"sub": ALICE.sub, "signer": ALB_ARN, "issuer": ISSUER, "client_id": CLIENT_ID, "email": ALICE.email}
    defaults.update(kwargs)
    return key.mint(**defaults)


def reason(verifier: AlbIdentityVerifier, values: list[str], identity: tuple[str, ...] = ()) -> str:
    with pytest.raises(NotAuthenticated) as caught:
        verifier.verify(values, identity)
    return caught.value.reason


def resign(key: AlbSigningKey, header: dict[str, Any], payload: dict[str, Any], *, alg_signature: bytes | None = None) -> str:
    signing_input = f"{padded_b64url(json.dumps(header).encode())}.{padded_b64url(json.dumps(payload).encode())}"
    signature = alg_signature if alg_signature is not None else key.sign(signing_input.encode())
    return f"{signing_input}.{padded_b64url(signature)}"


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    head, body, _ = token.split(".")
    return json.loads(base64.urlsafe_b64decode(head)), json.loads(base64.urlsafe_b64decode(body))


def test_valid_token_gives_sub_and_issuer_not_email(alb_key: AlbSigningKey, key_server: KeyServer) -> None:
    token = mint(alb_key)
    assert "=" in token  # the ALB's padded format is what we verify
    identity = make_verifier(key_server).verify([token], (ALICE.sub,))
    assert (identity.sub, identity.issuer, identity.email) == (ALICE.sub, ISSUER, ALICE.email)


def test_key_is_fetched_once_and_cached(alb_key: AlbSigningKey, key_server: KeyServer) -> None:
    verifier = make_verifier(key_server)
    for _ in range(5):
        verifier.verify([mint(alb_key)])
    assert key_server.fetches(alb_key.kid) == 1


def test_one_fetch_in_flight_per_kid(alb_key: AlbSigningKey, key_server: KeyServer) -> None:
    key_server.delay_s = 0.2
    verifier = make_verifier(key_server, timeout_s=2)
    token = mint(alb_key)
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(verifier.verify([token]).sub)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [ALICE.sub] * 8
    assert key_server.fetches(alb_key.kid) == 1


def test_cache_is_bounded(key_server: KeyServer) -> None:
    verifier = make_verifier(key_server, max_keys=2)
    keys = [AlbSigningKey() for _ in range(3)]
    for key in keys:
        key_server.add(key)
        verifier.verify([mint(key)])
    assert verifier.keys.cached(keys[0].kid) is None
    assert verifier.keys.cached(keys[2].kid) is not None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ({"signer": OTHER_ALB_ARN}, "foreign_signer"),  # another account's ALB, with a genuine AWS key
        ({"signer": ALB_ARN.replace("eu-west-1", "us-east-1")}, "foreign_signer"),
        ({"iss": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Other"}, "wrong_issuer"),
        ({"client": "another-client"}, "wrong_client"),
        ({"alg": "HS256"}, "wrong_alg"),
        ({"alg": "none"}, "wrong_alg"),
        ({"alg": "ES384"}, "wrong_alg"),
        ({"kid": "../../latest/meta-data"}, "bad_kid"),
        ({"kid": "http://169.254.169.254/"}, "bad_kid"),
        ({"kid": "not-a-uuid"}, "bad_kid"),
        ({"kid": 12345}, "bad_kid"),
    ],
)
def test_header_fields_are_pinned_before_any_key_fetch(
    alb_key: AlbSigningKey, key_server: KeyServer, header: dict[str, Any], expected: str
) -> None:
    verifier = make_verifier(key_server)
    assert reason(verifier, [mint(alb_key, header=header)]) == expected
    assert key_server.total_fetches() == 0


def test_wrong_key_with_the_right_kid(alb_key: AlbSigningKey, key_server: KeyServer) -> None:
    impostor = AlbSigningKey(kid=alb_key.kid)  # same kid, different private key
    assert reason(make_verifier(key_server), [mint(impostor)]) == "bad_signature"


def test_tampered_payload(alb_key: AlbSigningKey, key_server: KeyServer) -> None:
    token = mint(alb_key)
    head, _, signature = token.split(".")
    _, payload = parts(token)
    payload["sub"] = "someone-else"
    forged = f"{head}.{padded_b64url(json.dumps(payload).encode())}.{signature}"
    assert reason(make_verifier(key_server), [forged]) == "bad_signature"


def test_hs256_signed_with_the_public_key_is_refused(alb_key: AlbSigningKey, key_server: KeyServer) -> None:
    # alg confusion: an HMAC "signature" keyed with the public PEM.
    import hashlib
    import hmac

    header, payload = parts(mint(alb_key))
    header["alg"] = "HS256"
    signing_input = f"{padded_b64url(json.dumps(header).encode())}.{padded_b64url(json.dumps(payload).encode())}"
    mac = hmac.new(alb_key.public_pem(), signing_input.encode(), hashlib.sha256).digest()
    assert reason(make_verifier(key_server), [f"{signing_input}.{padded_b64url(mac)}"]) == "wrong_alg"


def test_alg_none_with_empty_signature(alb_key: AlbSigningKey, key_server: KeyServer) -> None:
    header, payload = parts(mint(alb_key))
    header["alg"] = "none"
    token = f"{padded_b64url(json.dumps(header).encode())}.{padded_b64url(json.dumps(payload).encode())}."
    assert reason(make_verifier(key_server), [token]) == "malformed_token"


def test_padding_stripped_is_not_the_alb_format(alb_key: AlbSigningKey, key_server: KeyServer) -> None:
    token = mint(alb_key)
    stripped = ".".join(part.rstrip("=") for part in token.split("."))
    assert stripped != token
    assert reason(make_verifier(key_server), [stripped]) == "malformed_token"


def test_non_canonical_base64_is_refused() -> None:
    assert decode_padded_segment("YQ==") == b"a"
    with pytest.raises(ValueError, match="canonical"):
        decode_padded_segment("YR==")  # same byte, different trailing bits
    with pytest.raises(ValueError):
        decode_padded_segment("YQ+/")


def test_expired_token_and_leeway(alb_key: AlbSigningKey, key_server: KeyServer) -> None:
    verifier = make_verifier(key_server, leeway_s=10)
    assert reason(verifier, [mint(alb_key, now=time.time() - 200, lifetime_s=120)]) == "expired"
    assert verifier.verify([mint(alb_key, now=time.time() - 125, lifetime_s=120)]).sub == ALICE.sub  # within leeway


def test_payload_expiry_is_checked_too(alb_key: AlbSigningKey, key_server: KeyServer) -> None:
    assert reason(make_verifier(key_server), [mint(alb_key, claims={"exp": int(time.time()) - 100})]) == "expired"


@pytest.mark.parametrize("claims", [{"sub": ""}, {"sub": "x" * 129}, {"sub": 42}, {"sub": "a\nb"}])
def test_bad_sub(alb_key: AlbSigningKey, key_server: KeyServer, claims: dict[str, Any]) -> None:
    assert reason(make_verifier(key_server), [mint(alb_key, claims=claims)]) == "bad_sub"


def test_missing_duplicate_and_disagreeing_headers(alb_key: AlbSigningKey, key_server: KeyServer) -> None:
    verifier = make_verifier(key_server)
    token = mint(alb_key)
    assert reason(verifier, []) == "missing_header"
    assert reason(verifier, [token, token]) == "duplicate_header"
    assert reason(verifier, [token], (ALICE.sub, ALICE.sub)) == "duplicate_header"
    assert reason(verifier, [token], ("someone-else",)) == "identity_mismatch"
    assert reason(verifier, ["x" * 20_000]) == "token_too_large"
    assert reason(verifier, ["a.b"]) == "malformed_token"


def test_key_endpoint_timeout_fails_closed_and_caches_nothing(alb_key: AlbSigningKey, key_server: KeyServer) -> None:
    verifier = make_verifier(key_server, timeout_s=0.2)
    key_server.delay_s = 0.5
    with pytest.raises(KeyUnavailable):
        verifier.verify([mint(alb_key)])
    assert verifier.keys.cached(alb_key.kid) is None
    key_server.delay_s = 0
    assert verifier.verify([mint(alb_key)]).sub == ALICE.sub  # recovers once the endpoint answers
    assert key_server.fetches(alb_key.kid) == 2


@pytest.mark.parametrize("status", [500, 503])
def test_key_endpoint_errors_fail_closed(alb_key: AlbSigningKey, key_server: KeyServer, status: int) -> None:
    key_server.status = status
    verifier = make_verifier(key_server)
    with pytest.raises(KeyUnavailable):
        verifier.verify([mint(alb_key)])
    key_server.status = None
    assert verifier.verify([mint(alb_key)]).sub == ALICE.sub


def test_unknown_kid_is_refused_and_remembered(key_server: KeyServer) -> None:
    stranger = AlbSigningKey(kid=str(uuid.uuid4()).upper())
    verifier = make_verifier(key_server)
    for _ in range(3):
        assert reason(verifier, [mint(stranger)]) == "unknown_kid"
    assert key_server.fetches(stranger.kid) == 1  # fetched once, URL-safe, then answered from memory


def test_slow_drip_key_endpoint_hits_the_overall_deadline(alb_key: AlbSigningKey, key_server: KeyServer) -> None:
    key_server.drip_s = 0.01  # a PEM is ~180 bytes: ~1.8 s in total, each byte well inside the read timeout
    verifier = make_verifier(key_server, timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(KeyUnavailable, match="key_fetch_timeout"):
        verifier.verify([mint(alb_key)])
    assert time.monotonic() - started < 1.0
    assert verifier.keys.cached(alb_key.kid) is None


def test_concurrent_waiters_share_a_failure_and_nothing_is_cached(alb_key: AlbSigningKey, key_server: KeyServer) -> None:
    key_server.delay_s = 0.2
    key_server.status = 500
    verifier = make_verifier(key_server, timeout_s=2)
    token = mint(alb_key)
    outcomes: list[str] = []

    def attempt() -> None:
        try:
            verifier.verify([token])
            outcomes.append("ok")
        except NotAuthenticated as exc:
            outcomes.append(exc.reason)

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == ["key_fetch_status_500"] * 6
    assert key_server.fetches(alb_key.kid) == 1
    assert verifier.keys.cached(alb_key.kid) is None


def test_deeply_nested_header_is_malformed_not_a_crash(alb_key: AlbSigningKey, key_server: KeyServer) -> None:
    nested = padded_b64url(b"[" * 1400)
    token = mint(alb_key)
    forged = f"{nested}.{token.split('.', 1)[1]}"
    assert reason(make_verifier(key_server), [forged]) == "malformed_token"
    huge = padded_b64url(b"[" * 11_000) + "." + token.split(".", 1)[1]
    assert reason(make_verifier(key_server), [huge]) == "malformed_token"


# --- through the service ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"header": {"signer": OTHER_ALB_ARN}},
        {"header": {"iss": "https://evil.example"}},
        {"header": {"client": "x"}},
        {"header": {"alg": "HS256"}},
        {"now": time.time() - 3600},
    ],
    ids=["foreign-signer", "wrong-iss", "wrong-client", "hs256", "expired"],
)
def test_service_refuses_bad_identity_without_calling_agentcore(harness: BindingHarness, overrides: dict[str, Any]) -> None:
    alice = harness.browser(ALICE)
    session = new_session_uri()
    alice.start(harness.flow(ALICE, session))
    harness.agentcore.calls.clear()
    response = alice.client.get("/oauth2/session-binding", params={"session_id": session}, headers=alice.headers(**overrides))
    assert response.status_code == 401
    assert pages.NOT_SIGNED_IN.title in response.text
    assert harness.agentcore.calls == []


@pytest.mark.parametrize("case", ["duplicate-data", "identity-mismatch", "non-ascii"])
def test_service_refuses_header_games(harness: BindingHarness, case: str) -> None:
    alice = harness.browser(ALICE)
    token = harness.token(ALICE)
    headers: list[tuple[str, str]] = {
        "duplicate-data": [("x-amzn-oidc-data", token), ("x-amzn-oidc-data", token)],
        "identity-mismatch": [("x-amzn-oidc-data", token), ("x-amzn-oidc-identity", BOB_SUB)],
        "non-ascii": [("x-amzn-oidc-data", token[:-4] + "é===")],
    }[case]
    response = alice.client.get(
        "/oauth2/session-binding",
        params={"session_id": new_session_uri()},
        headers=httpx.Headers([(k.encode(), v.encode("utf-8")) for k, v in headers]),
    )
    assert response.status_code == 401
    assert harness.agentcore.calls == []


def test_service_answers_503_when_keys_cannot_be_fetched(harness: BindingHarness) -> None:
    harness.key_server.status = 503
    alice = harness.browser(ALICE)
    response = alice.bind(new_session_uri())
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert pages.SIGN_IN_UNCHECKED.title in response.text
    assert harness.agentcore.calls == []
