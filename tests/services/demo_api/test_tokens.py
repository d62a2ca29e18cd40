"""Access-token verification and the key cache, one rule at a time (reason codes, timing, refresh)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from local.standins.cognito_tokens import CognitoSigningKey, JwksServer, b64url, encode_segment
from services.demo_api.tokens import (
    AccessTokenVerifier,
    InvalidRequest,
    InvalidToken,
    JwksKeyStore,
    KeysRefreshing,
    KeysUnavailable,
    b64url_decode,
    bearer_token,
)
from tests.services.demo_api.conftest import ALICE, ALL_SCOPES, CLIENT_ID, ISSUER, TASKS_CLIENT_ID


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def verifier_for(jwks: JwksServer, **store_options: Any) -> AccessTokenVerifier:
    return AccessTokenVerifier(issuer=ISSUER, client_ids=frozenset({CLIENT_ID}), keys=JwksKeyStore(jwks.url, **store_options))


def mint(key: CognitoSigningKey, **overrides: Any) -> str:
    return key.mint(sub=overrides.pop("sub", ALICE), issuer=ISSUER, client_id=CLIENT_ID, scopes=ALL_SCOPES, **overrides)


def reason(verifier: AccessTokenVerifier, token: str) -> str:
    with pytest.raises(InvalidToken) as refused:
        verifier.verify(token)
    return refused.value.reason


def retry_after(verifier: AccessTokenVerifier, token: str) -> int:
    """The seconds a `KeysRefreshing` answer asks the caller to wait (fails if the answer is anything else)."""
    with pytest.raises(KeysRefreshing) as refreshing:
        verifier.verify(token)
    assert refreshing.value.reason == "keys_refreshing"
    return refreshing.value.retry_after_s


def unknown_kid_token(signing_key: CognitoSigningKey, kid: str) -> str:
    """Signed by a real key, but naming a kid that no key set publishes (refused before the signature)."""
    return mint(signing_key, header={"kid": kid})


def test_a_valid_token_gives_sub_username_and_scopes(jwks: JwksServer, signing_key: CognitoSigningKey) -> None:
    token = verifier_for(jwks).verify(mint(signing_key, username="alice"))
    assert token.sub == ALICE
    assert token.username == "alice"
    assert token.scopes == frozenset(ALL_SCOPES)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"header": {"alg": "RS512"}}, "wrong_alg"),
        ({"header": {"alg": "none"}}, "wrong_alg"),
        ({"header": {"alg": "HS256"}}, "wrong_alg"),
        ({"header": {"kid": None}}, "bad_kid"),
        ({"header": {"kid": "has space"}}, "bad_kid"),
        ({"header": {"crit": ["b64"]}}, "unsupported_header"),
        ({"issuer": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Other"}, "wrong_issuer"),
        ({"claims": {"token_use": "id"}}, "not_an_access_token"),
        ({"claims": {"client_id": "other"}}, "wrong_client"),
        ({"claims": {"client_id": [CLIENT_ID]}}, "wrong_client"),  # unhashable: refused, not a crash
        ({"claims": {"client_id": None}}, "wrong_client"),
        ({"minted_ago_s": 3611}, "expired"),
        ({"claims": {"exp": True}}, "malformed_token"),
        ({"valid_in_s": 60}, "not_yet_valid"),
        ({"claims": {"sub": ""}}, "bad_sub"),
        ({"claims": {"sub": "x" * 129}}, "bad_sub"),
        ({"claims": {"scope": ["demo-api/notes.read"]}}, "malformed_token"),
    ],
)
def test_each_rule_has_its_reason(jwks: JwksServer, signing_key: CognitoSigningKey, overrides: dict[str, Any], expected: str) -> None:
    overrides = dict(overrides)  # times are taken now, not when the parameters were collected (minutes earlier in a full run)
    if "minted_ago_s" in overrides:
        overrides["now"] = time.time() - overrides.pop("minted_ago_s")
    if "valid_in_s" in overrides:
        overrides["claims"] = {"nbf": time.time() + overrides.pop("valid_in_s")}
    issuer = overrides.pop("issuer", ISSUER)
    token = signing_key.mint(sub=ALICE, issuer=issuer, client_id=CLIENT_ID, scopes=ALL_SCOPES, **overrides)
    assert reason(verifier_for(jwks), token) == expected


def test_non_json_constants_in_claims_are_refused(jwks: JwksServer, signing_key: CognitoSigningKey) -> None:
    head = encode_segment({"kid": signing_key.kid, "alg": "RS256"})
    body = json.dumps({"sub": ALICE, "iss": ISSUER, "client_id": CLIENT_ID, "token_use": "access", "exp": "X"}).replace('"X"', "NaN")
    signing_input = f"{head}.{b64url(body.encode())}"
    token = f"{signing_input}.{b64url(signing_key.sign(signing_input.encode()))}"
    assert reason(verifier_for(jwks), token) == "malformed_token"


def test_oversized_and_non_ascii_tokens_are_refused_before_parsing(jwks: JwksServer, signing_key: CognitoSigningKey) -> None:
    verifier = verifier_for(jwks)
    assert reason(verifier, "a" * 9000) == "malformed_token"
    assert reason(verifier, mint(signing_key) + "é") == "malformed_token"
    assert jwks.fetches == 0


def test_base64url_must_be_unpadded_and_canonical() -> None:
    assert b64url_decode("YQ") == b"a"
    for bad in ("YQ==", "YR", "Y", "a+b/", ""):
        with pytest.raises(ValueError):
            b64url_decode(bad)


def test_bearer_header_parsing() -> None:
    assert bearer_token(["Bearer abc"]) == "abc"
    assert bearer_token(["BEARER  abc "]) == "abc"
    for values, expected in (([], "missing_token"), (["Basic abc"], "not_bearer"), (["Bearer "], "missing_token")):
        with pytest.raises(InvalidToken) as refused:
            bearer_token(values)
        assert refused.value.reason == expected
    with pytest.raises(InvalidRequest):
        bearer_token(["Bearer a", "Bearer b"])


def test_leeway_is_capped_at_ten_seconds(jwks: JwksServer) -> None:
    with pytest.raises(ValueError, match="leeway"):
        AccessTokenVerifier(issuer=ISSUER, client_ids={CLIENT_ID}, keys=JwksKeyStore(jwks.url), leeway_s=60)


def test_tokens_of_every_listed_client_are_accepted_and_of_no_other(jwks: JwksServer, signing_key: CognitoSigningKey) -> None:
    verifier = AccessTokenVerifier(issuer=ISSUER, client_ids=frozenset({CLIENT_ID, TASKS_CLIENT_ID}), keys=JwksKeyStore(jwks.url))
    for client_id in (CLIENT_ID, TASKS_CLIENT_ID):
        token = signing_key.mint(sub=ALICE, issuer=ISSUER, client_id=client_id, scopes=ALL_SCOPES)
        assert verifier.verify(token).sub == ALICE
    for client_id in ("unlisted-client", CLIENT_ID.upper(), CLIENT_ID + " " + TASKS_CLIENT_ID, ""):
        token = signing_key.mint(sub=ALICE, issuer=ISSUER, client_id=client_id, scopes=ALL_SCOPES)
        assert reason(verifier, token) == "wrong_client"


@pytest.mark.parametrize("client_ids", [CLIENT_ID, frozenset(), ()], ids=["one-string", "empty-set", "empty-tuple"])
def test_the_client_ids_must_be_a_non_empty_collection(jwks: JwksServer, client_ids: Any) -> None:
    """A bare string would otherwise be a set of one-character ids."""
    with pytest.raises(ValueError, match="client_ids"):
        AccessTokenVerifier(issuer=ISSUER, client_ids=client_ids, keys=JwksKeyStore(jwks.url))


# ------------------------------------------------------------------------------ key cache


def test_a_new_kid_is_accepted_after_a_refresh(jwks: JwksServer, signing_key: CognitoSigningKey) -> None:
    clock = FakeMonotonic()
    verifier = verifier_for(jwks, monotonic=clock)
    verifier.verify(mint(signing_key))
    assert jwks.fetches == 1

    rotated = CognitoSigningKey()
    jwks.keys.append(rotated)  # the pool publishes a new key, then signs with it
    clock.now += 10
    assert verifier.verify(mint(rotated)).sub == ALICE
    assert jwks.fetches == 2
    assert verifier.verify(mint(signing_key)).sub == ALICE  # the old key is still published: no fetch
    assert jwks.fetches == 2


def test_a_new_kid_inside_the_window_is_503_then_accepted(jwks: JwksServer, signing_key: CognitoSigningKey) -> None:
    """The review case: a rotated key seen before the window allows a refresh is not a 401 (a revoked grant to the agent)."""
    clock = FakeMonotonic()
    verifier = verifier_for(jwks, monotonic=clock)
    verifier.verify(mint(signing_key))

    rotated = CognitoSigningKey()
    jwks.keys.append(rotated)
    clock.now += 4
    wait = retry_after(verifier, mint(rotated))
    assert wait == 6  # seconds until the next refresh is allowed
    assert jwks.fetches == 1

    clock.now += wait
    assert verifier.verify(mint(rotated)).sub == ALICE
    assert jwks.fetches == 2


def test_an_unknown_kid_twice_within_the_window_is_401_then_503(jwks: JwksServer, signing_key: CognitoSigningKey) -> None:
    clock = FakeMonotonic()
    verifier = verifier_for(jwks, monotonic=clock)
    verifier.verify(mint(signing_key))
    clock.now += 10

    token = unknown_kid_token(signing_key, "not-published")
    assert reason(verifier, token) == "unknown_kid"  # refreshed just now, and the kid is not there
    assert jwks.fetches == 2

    clock.now += 2.5
    assert retry_after(verifier, token) == 8  # 7.5 s to go, rounded up
    clock.now += 7.4
    assert retry_after(verifier, token) == 1  # 0.1 s to go: at least 1
    assert jwks.fetches == 2

    clock.now += 0.1
    assert reason(verifier, token) == "unknown_kid"  # the window passed: refreshed again, still unknown
    assert jwks.fetches == 3


def test_a_kid_still_unknown_after_a_refresh_is_401(jwks: JwksServer, signing_key: CognitoSigningKey, other_key: CognitoSigningKey) -> None:
    verifier = verifier_for(jwks, monotonic=FakeMonotonic())
    assert reason(verifier, mint(other_key)) == "unknown_kid"  # the first fetch happens for this very token
    assert jwks.fetches == 1
    assert verifier.verify(mint(signing_key)).sub == ALICE  # the keys it fetched are used
    assert jwks.fetches == 1


def test_a_burst_of_different_unknown_kids_costs_one_fetch_per_window(jwks: JwksServer, signing_key: CognitoSigningKey) -> None:
    clock = FakeMonotonic()
    verifier = verifier_for(jwks, monotonic=clock)
    verifier.verify(mint(signing_key))
    assert jwks.fetches == 1

    clock.now += 10
    assert reason(verifier, unknown_kid_token(signing_key, "burst-0")) == "unknown_kid"
    for i in range(1, 50):
        clock.now += 0.1
        assert retry_after(verifier, unknown_kid_token(signing_key, f"burst-{i}")) >= 1
    assert jwks.fetches == 2  # 50 different kids in 5 s: one fetch

    for window in range(3):
        clock.now += 10
        for i in range(20):
            with pytest.raises((InvalidToken, KeysRefreshing)):
                verifier.verify(unknown_kid_token(signing_key, f"window-{window}-{i}"))
        assert jwks.fetches == 3 + window  # one more fetch per 10 s, however many kids
    assert verifier.verify(mint(signing_key)).sub == ALICE


def test_a_concurrent_burst_of_unknown_kids_shares_one_fetch(jwks: JwksServer, signing_key: CognitoSigningKey) -> None:
    """Single flight: one fetch runs, the others wait for it and are then inside the window (503, not 401)."""
    jwks.delay_s = 0.2
    verifier = verifier_for(jwks)
    tokens = [unknown_kid_token(signing_key, f"concurrent-{i}") for i in range(8)]
    outcomes: list[str] = []

    def call(token: str) -> None:
        try:
            verifier.verify(token)
        except (InvalidToken, KeysRefreshing) as exc:
            outcomes.append(exc.reason)

    threads = [threading.Thread(target=call, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert jwks.fetches == 1
    assert sorted(outcomes) == ["keys_refreshing"] * 7 + ["unknown_kid"]


def test_a_key_the_server_stops_publishing_stops_verifying(jwks: JwksServer, signing_key: CognitoSigningKey) -> None:
    clock = FakeMonotonic()
    verifier = verifier_for(jwks, monotonic=clock)
    verifier.verify(mint(signing_key))
    replacement = CognitoSigningKey()
    jwks.keys[:] = [replacement]
    clock.now += 10
    verifier.verify(mint(replacement))  # refresh replaces the set
    assert retry_after(verifier, mint(signing_key)) == 10  # dropped from the cache; the next refresh decides
    clock.now += 10
    assert reason(verifier, mint(signing_key)) == "unknown_kid"


def test_a_failed_fetch_is_not_retried_for_a_few_seconds(jwks: JwksServer, signing_key: CognitoSigningKey) -> None:
    clock = FakeMonotonic()
    verifier = verifier_for(jwks, monotonic=clock)
    jwks.status = 502
    for _ in range(3):
        with pytest.raises(KeysUnavailable) as down:
            verifier.verify(mint(signing_key))
        assert down.value.reason == "jwks_status_502"
    assert jwks.fetches == 1
    jwks.status = None
    clock.now += 5
    assert verifier.verify(mint(signing_key)).sub == ALICE
    assert jwks.fetches == 2


def test_a_slow_key_set_fails_within_the_deadline(jwks: JwksServer, signing_key: CognitoSigningKey) -> None:
    jwks.delay_s = 1.0
    verifier = verifier_for(jwks, timeout_s=0.2)
    started = time.monotonic()
    with pytest.raises(KeysUnavailable) as slow:
        verifier.verify(mint(signing_key))
    assert slow.value.reason == "jwks_fetch_timeout"
    assert time.monotonic() - started < 0.9


def test_an_oversized_key_set_is_refused(jwks: JwksServer, signing_key: CognitoSigningKey) -> None:
    jwks.body = json.dumps({"keys": [signing_key.jwk()], "padding": "x" * 70_000}).encode()
    with pytest.raises(KeysUnavailable) as refused:
        verifier_for(jwks).verify(mint(signing_key))
    assert refused.value.reason == "jwks_too_large"


def test_unusable_jwks_entries_are_skipped(jwks: JwksServer, signing_key: CognitoSigningKey) -> None:
    too_small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the point: it must be refused
    weak = CognitoSigningKey(kid="weak", private_key=too_small)
    jwks.body = json.dumps(
        {
            "keys": [
                {"kid": "ec", "kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"},
                {**signing_key.jwk(), "kid": "enc", "use": "enc"},
                {**signing_key.jwk(), "kid": "ps256", "alg": "PS256"},
                weak.jwk(),
                {"kid": "broken", "kty": "RSA", "n": "!!", "e": "AQAB"},
                "not an object",
                signing_key.jwk(),
            ]
        }
    ).encode()
    verifier = verifier_for(jwks)
    assert verifier.verify(mint(signing_key)).sub == ALICE
    for kid in ("enc", "ps256", "weak"):
        assert verifier.keys.cached(kid) is None


def test_concurrent_misses_share_one_fetch(jwks: JwksServer, signing_key: CognitoSigningKey) -> None:
    jwks.delay_s = 0.2
    verifier = verifier_for(jwks)
    token = mint(signing_key)
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(verifier.verify(token).sub)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [ALICE] * 8
    assert jwks.fetches == 1
