"""The demo API over HTTP: real RS256 tokens, keys from a loopback JWKS endpoint, the app as deployed."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from local.standins.cognito_tokens import CognitoSigningKey, encode_segment
from services.demo_api.routes import MAX_NOTES_PER_USER
from tests.services.demo_api.conftest import (
    ALICE,
    ALL_SCOPES,
    BOB,
    CLIENT_ID,
    ISSUER,
    PROFILE,
    READ,
    TASKS_CLIENT_ID,
    TASKS_READ,
    TASKS_WRITE,
    WRITE,
    DemoApiHarness,
    bearer,
)

INVALID_TOKEN = 'Bearer realm="demo-api", error="invalid_token"'


def assert_invalid_token(response: Any) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == INVALID_TOKEN
    assert response.json()["error"] == "invalid_token"
    assert response.json()["message"]


# ------------------------------------------------------------------------------ the happy paths


def test_health_needs_no_token(api: DemoApiHarness) -> None:
    response = api.client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_profile_answers_sub_and_username_from_the_token(api: DemoApiHarness) -> None:
    response = api.client.get("/profile", headers=api.as_user(ALICE, (PROFILE,), username="alice"))
    assert response.status_code == 200
    assert response.json() == {"sub": ALICE, "username": "alice"}
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"] == "application/json"


def test_notes_start_empty_then_list_what_was_written(api: DemoApiHarness) -> None:
    assert api.client.get("/notes", headers=api.as_user(ALICE, (READ,))).json() == {"notes": []}

    created = api.client.post("/notes", json={"text": "buy oat milk"}, headers=api.as_user(ALICE, (WRITE,)))
    assert created.status_code == 201
    note = created.json()
    assert set(note) == {"id", "text", "created_at"}
    assert note["text"] == "buy oat milk"
    assert note["created_at"].endswith("Z")

    second = api.client.post("/notes", json={"text": "call Bob"}, headers=api.as_user(ALICE, (WRITE,))).json()
    listed = api.client.get("/notes", headers=api.as_user(ALICE, (READ,)))
    assert listed.status_code == 200
    assert listed.json() == {"notes": [note, second]}  # oldest first


def test_one_token_with_every_scope_serves_every_route(api: DemoApiHarness) -> None:
    headers = api.as_user(ALICE, ALL_SCOPES)
    assert api.client.get("/profile", headers=headers).status_code == 200
    assert api.client.post("/notes", json={"text": "x"}, headers=headers).status_code == 201
    assert api.client.get("/notes", headers=headers).status_code == 200
    task = api.client.post("/tasks", json={"text": "x"}, headers=headers)
    assert task.status_code == 201
    assert api.client.post(f"/tasks/{task.json()['id']}/done", headers=headers).status_code == 200
    assert api.client.get("/tasks", headers=headers).status_code == 200


@pytest.mark.parametrize("client_id", [CLIENT_ID, TASKS_CLIENT_ID], ids=["notes-client", "tasks-client"])
def test_tokens_of_each_listed_client_are_accepted(api: DemoApiHarness, client_id: str) -> None:
    """DEMO_CLIENT_IDS lists one app client per credential provider: the agent's two accounts at one server."""
    response = api.client.get("/profile", headers=api.as_user(ALICE, (PROFILE,), client_id=client_id))
    assert response.status_code == 200
    assert response.json()["sub"] == ALICE


def test_the_same_person_sees_the_same_data_through_either_client(api: DemoApiHarness) -> None:
    """The person is the token's `sub`, whichever listed client the token was issued to."""
    api.client.post("/tasks", json={"text": "shared"}, headers=api.as_user(ALICE, (TASKS_WRITE,), client_id=CLIENT_ID))
    listed = api.client.get("/tasks", headers=api.as_user(ALICE, (TASKS_READ,), client_id=TASKS_CLIENT_ID))
    assert [t["text"] for t in listed.json()["tasks"]] == ["shared"]


def test_a_client_not_listed_is_refused_while_the_listed_ones_pass(make_api: Callable[..., DemoApiHarness]) -> None:
    api = make_api(demo_client_ids=TASKS_CLIENT_ID)  # only the tasks client listed
    assert api.client.get("/profile", headers=api.as_user(client_id=TASKS_CLIENT_ID)).status_code == 200
    assert_invalid_token(api.client.get("/profile", headers=api.as_user(client_id=CLIENT_ID)))


def test_lowercase_bearer_scheme_is_accepted(api: DemoApiHarness) -> None:
    # RFC 7235: the scheme name is case-insensitive.
    response = api.client.get("/profile", headers={"authorization": f"bearer {api.token()}"})
    assert response.status_code == 200


# ------------------------------------------------------------------------------ user isolation


def test_alice_never_sees_bobs_notes(api: DemoApiHarness) -> None:
    api.client.post("/notes", json={"text": "alice's secret"}, headers=api.as_user(ALICE))
    api.client.post("/notes", json={"text": "bob's secret"}, headers=api.as_user(BOB))

    alice = api.client.get("/notes", headers=api.as_user(ALICE)).json()["notes"]
    bob = api.client.get("/notes", headers=api.as_user(BOB)).json()["notes"]
    assert [n["text"] for n in alice] == ["alice's secret"]
    assert [n["text"] for n in bob] == ["bob's secret"]


def test_the_user_comes_from_the_token_never_from_the_body(api: DemoApiHarness) -> None:
    for body in ({"text": "mine", "sub": BOB}, {"text": "mine", "user_id": BOB}, {"text": "mine", "owner": BOB}):
        response = api.client.post("/notes", json=body, headers=api.as_user(ALICE))
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"
    assert api.client.get("/notes", headers=api.as_user(BOB)).json() == {"notes": []}
    assert api.client.get("/notes", headers=api.as_user(ALICE)).json() == {"notes": []}


def test_notes_are_capped_per_user(api: DemoApiHarness) -> None:
    headers = api.as_user(ALICE, (WRITE,))
    for i in range(MAX_NOTES_PER_USER):
        assert api.client.post("/notes", json={"text": f"note {i}"}, headers=headers).status_code == 201
    refused = api.client.post("/notes", json={"text": "one too many"}, headers=headers)
    assert refused.status_code == 409
    assert refused.json() == {"error": "note_limit_reached", "message": refused.json()["message"]}
    assert "100" in refused.json()["message"]
    # Another user is not affected by Alice's limit.
    assert api.client.post("/notes", json={"text": "fine"}, headers=api.as_user(BOB, (WRITE,))).status_code == 201
    assert len(api.client.get("/notes", headers=api.as_user(ALICE, (READ,))).json()["notes"]) == MAX_NOTES_PER_USER


# ------------------------------------------------------------------------------ bodies


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        ({"text": ""}, "1 to 1000 characters"),
        ({"text": "x" * 1001}, "1 to 1000 characters"),
        ({"text": "   \n"}, "more than whitespace"),
        ({"text": 42}, "must be a string"),
        ({}, "missing field 'text'"),
        ({"text": "ok", "pinned": True}, "unknown field 'pinned'"),
        (["text"], "JSON object"),
        ("text", "JSON object"),
    ],
    ids=["empty", "too-long", "blank", "number", "missing", "unknown-field", "array", "string"],
)
def test_bad_bodies_are_400_with_a_clear_message(api: DemoApiHarness, body: Any, mentions: str) -> None:
    response = api.client.post("/notes", json=body, headers=api.as_user(ALICE, (WRITE,)))
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert mentions in response.json()["message"]


def test_text_of_exactly_1000_characters_is_accepted(api: DemoApiHarness) -> None:
    response = api.client.post("/notes", json={"text": "é" * 1000}, headers=api.as_user(ALICE, (WRITE,)))
    assert response.status_code == 201
    assert response.json()["text"] == "é" * 1000


def test_malformed_json_and_oversized_bodies_are_400(api: DemoApiHarness) -> None:
    headers = {**api.as_user(ALICE, (WRITE,)), "content-type": "application/json"}
    broken = api.client.post("/notes", content=b'{"text": ', headers=headers)
    assert broken.status_code == 400
    assert "not valid JSON" in broken.json()["message"]
    huge = api.client.post("/notes", content=json.dumps({"text": "x" * 20_000}).encode(), headers=headers)
    assert huge.status_code == 400
    assert "larger than" in huge.json()["message"]


def test_a_body_that_is_not_json_is_415(api: DemoApiHarness) -> None:
    response = api.client.post("/notes", content=b"text=hello", headers={**api.as_user(ALICE, (WRITE,)), "content-type": "text/plain"})
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"


def test_the_token_is_checked_before_the_body(api: DemoApiHarness) -> None:
    response = api.client.post("/notes", content=b"not json", headers={"content-type": "application/json"})
    assert_invalid_token(response)


# ------------------------------------------------------------------------------ tokens refused


def test_missing_authorization_is_401(api: DemoApiHarness) -> None:
    response = api.client.get("/notes")
    assert_invalid_token(response)
    assert "Bearer" in response.json()["message"]


@pytest.mark.parametrize(
    "value",
    ["Basic YWxpY2U6c2VjcmV0", "Bearer", "Bearer ", "Token abc.def.ghi", "Bearer not-a-jwt", "Bearer a.b"],
    ids=["basic", "bearer-without-token", "bearer-blank", "other-scheme", "not-a-jwt", "two-segments"],
)
def test_authorization_that_is_not_a_bearer_jwt_is_401(api: DemoApiHarness, value: str) -> None:
    assert_invalid_token(api.client.get("/notes", headers={"authorization": value}))


def test_duplicate_authorization_headers_are_400(api: DemoApiHarness) -> None:
    token = api.token()
    response = api.client.get("/notes", headers=[("authorization", f"Bearer {token}"), ("authorization", f"Bearer {token}")])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert response.headers["www-authenticate"] == 'Bearer realm="demo-api", error="invalid_request"'


@pytest.mark.parametrize(
    "overrides",
    [
        {"issuer": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Other"},
        {"issuer": ISSUER + "/"},
        {"client_id": "another-client-of-the-same-pool"},
        {"claims": {"token_use": "id", "aud": CLIENT_ID}, "drop": ("client_id",)},
        {"claims": {"aud": CLIENT_ID}, "drop": ("client_id",)},
        {"drop": ("token_use",)},
        {"now": time.time() - 3600 - 11},
        {"drop": ("exp",)},
        {"claims": {"exp": "4102444800"}},
        {"claims": {"nbf": time.time() + 365 * 24 * 3600}},  # far ahead: the list is built at collection, long before the test runs
        {"drop": ("sub",)},
        {"header": {"crit": ["exp"]}},
    ],
    ids=[
        "other-pool",
        "issuer-with-slash",
        "other-client",
        "id-token",
        "aud-instead-of-client-id",
        "no-token-use",
        "expired",
        "no-exp",
        "exp-as-string",
        "not-yet-valid",
        "no-sub",
        "crit-header",
    ],
)
def test_tokens_that_are_not_ours_or_not_current_are_401(api: DemoApiHarness, overrides: dict[str, Any]) -> None:
    assert_invalid_token(api.client.get("/profile", headers=api.as_user(**overrides)))


def test_expiry_allows_ten_seconds_of_clock_skew_and_no_more(api: DemoApiHarness) -> None:
    lifetime = 3600
    within = api.as_user(now=time.time() - lifetime - 5)
    assert api.client.get("/profile", headers=within).status_code == 200
    expired = api.client.get("/profile", headers=api.as_user(now=time.time() - lifetime - 12))
    assert_invalid_token(expired)
    assert "expired" in expired.json()["message"]


def test_alg_none_is_401(api: DemoApiHarness) -> None:
    claims = api.key.claims(sub=BOB, issuer=ISSUER, client_id=CLIENT_ID, scopes=ALL_SCOPES)
    unsigned = f"{encode_segment({'kid': api.key.kid, 'alg': 'none'})}.{encode_segment(claims)}."
    assert_invalid_token(api.client.get("/profile", headers=bearer(unsigned)))
    # Even with something in the signature slot.
    assert_invalid_token(api.client.get("/profile", headers=bearer(unsigned + "AAAA")))


def test_hs256_keyed_with_the_public_key_is_401(api: DemoApiHarness) -> None:
    claims = api.key.claims(sub=BOB, issuer=ISSUER, client_id=CLIENT_ID, scopes=ALL_SCOPES)
    assert_invalid_token(api.client.get("/profile", headers=bearer(api.key.mint_hs256_with_public_key(claims))))


def test_rs256_with_an_unknown_kid_is_401(api: DemoApiHarness, other_key: CognitoSigningKey) -> None:
    assert_invalid_token(api.client.get("/profile", headers=api.as_user(key=other_key)))


def test_rs256_signed_by_another_key_under_our_kid_is_401(api: DemoApiHarness, other_key: CognitoSigningKey) -> None:
    forged = other_key.mint(sub=BOB, issuer=ISSUER, client_id=CLIENT_ID, scopes=ALL_SCOPES, header={"kid": api.key.kid})
    assert_invalid_token(api.client.get("/profile", headers=bearer(forged)))


def test_a_tampered_payload_is_401(api: DemoApiHarness) -> None:
    header, _, signature = api.token(ALICE).split(".")
    bob_claims = api.key.claims(sub=BOB, issuer=ISSUER, client_id=CLIENT_ID, scopes=ALL_SCOPES)
    assert_invalid_token(api.client.get("/notes", headers=bearer(f"{header}.{encode_segment(bob_claims)}.{signature}")))


def test_a_tampered_signature_is_401(api: DemoApiHarness) -> None:
    header, payload, signature = api.token(ALICE).split(".")
    flipped = ("B" if signature[0] == "A" else "A") + signature[1:]
    assert_invalid_token(api.client.get("/notes", headers=bearer(f"{header}.{payload}.{flipped}")))
    assert_invalid_token(api.client.get("/notes", headers=bearer(f"{header}.{payload}.{signature}=")))  # padded: not our format


# ------------------------------------------------------------------------------ scopes


@pytest.mark.parametrize(
    ("method", "path", "needed", "granted"),
    [
        ("GET", "/profile", PROFILE, (READ, WRITE)),
        ("GET", "/notes", READ, (PROFILE, WRITE)),
        ("POST", "/notes", WRITE, (READ, PROFILE)),
        ("GET", "/notes", READ, ("demo-api/notes.read.all", "notes.read")),
        ("GET", "/tasks", TASKS_READ, (READ, WRITE, PROFILE, TASKS_WRITE)),
        ("POST", "/tasks", TASKS_WRITE, (READ, WRITE, PROFILE, TASKS_READ)),
        ("POST", "/tasks/0123456789abcdef0123456789ab/done", TASKS_WRITE, (READ, WRITE, TASKS_READ)),
        ("GET", "/notes", READ, (TASKS_READ, TASKS_WRITE)),
        ("POST", "/notes", WRITE, (TASKS_READ, TASKS_WRITE)),
    ],
    ids=[
        "profile",
        "list",
        "write",
        "look-alike-scopes",
        "tasks-list",
        "tasks-add",
        "tasks-done",
        "tasks-token-lists-notes",
        "tasks-token-writes-notes",
    ],
)
def test_a_token_without_the_routes_scope_is_403(
    api: DemoApiHarness, method: str, path: str, needed: str, granted: tuple[str, ...]
) -> None:
    response = api.client.request(method, path, json={"text": "x"} if method == "POST" else None, headers=api.as_user(ALICE, granted))
    assert response.status_code == 403
    assert response.headers["www-authenticate"] == f'Bearer realm="demo-api", error="insufficient_scope", scope="{needed}"'
    assert response.json()["error"] == "insufficient_scope"
    assert needed in response.json()["message"]


def test_a_write_refused_for_scope_stores_nothing(api: DemoApiHarness) -> None:
    api.client.post("/notes", json={"text": "sneaky"}, headers=api.as_user(ALICE, (READ,)))
    assert api.client.get("/notes", headers=api.as_user(ALICE, (READ,))).json() == {"notes": []}


# ------------------------------------------------------------------------------ key set unavailable


def test_key_set_down_is_503_with_retry_after(api: DemoApiHarness) -> None:
    api.jwks.status = 500
    response = api.client.get("/profile", headers=api.as_user())
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["error"] == "temporarily_unavailable"
    assert "www-authenticate" not in response.headers  # not a verdict on the token: the client keeps it


def test_key_set_unreachable_is_503(make_api: Callable[..., DemoApiHarness]) -> None:
    api = make_api(demo_jwks_url="http://127.0.0.1:9/eu-west-1_Demo/.well-known/jwks.json")  # discard port: nothing listens
    response = api.client.get("/profile", headers=api.as_user())
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"


def test_unreadable_key_set_is_503(api: DemoApiHarness) -> None:
    api.jwks.body = b"<html>gateway error</html>"
    assert api.client.get("/profile", headers=api.as_user()).status_code == 503


def test_cached_keys_keep_working_while_the_key_set_is_down(api: DemoApiHarness) -> None:
    assert api.client.get("/profile", headers=api.as_user()).status_code == 200
    api.jwks.status = 503
    assert api.client.get("/notes", headers=api.as_user()).status_code == 200
    assert api.jwks.fetches == 1


def test_keys_are_fetched_once_and_unknown_kids_do_not_cause_fetches(api: DemoApiHarness, other_key: CognitoSigningKey) -> None:
    for _ in range(3):
        assert api.client.get("/profile", headers=api.as_user()).status_code == 200
    for _ in range(5):
        assert api.client.get("/profile", headers=api.as_user(key=other_key)).status_code == 503  # inside the 10 s window
    assert api.jwks.fetches == 1


def test_a_kid_seen_before_a_refresh_is_allowed_is_503_keys_refreshing(
    api: DemoApiHarness, other_key: CognitoSigningKey, caplog: pytest.LogCaptureFixture
) -> None:
    """A rotated key is not a revoked grant: no 401 (which sends the person through consent) before a refresh could see it."""
    assert api.client.get("/profile", headers=api.as_user()).status_code == 200
    api.jwks.keys.append(other_key)  # published after the last fetch
    with caplog.at_level(logging.INFO):
        response = api.client.get("/profile", headers=api.as_user(key=other_key))
    events = [(r.__dict__.get("event"), r.__dict__.get("reason")) for r in caplog.records if r.name == "security"]
    assert ("token_unchecked", "keys_refreshing") in events
    assert response.status_code == 503, response.text
    assert 1 <= int(response.headers["retry-after"]) <= 10
    assert response.json()["error"] == "keys_refreshing"
    assert "www-authenticate" not in response.headers  # not a verdict on the token
    assert api.jwks.fetches == 1


def test_a_kid_missing_from_a_fresh_key_set_is_401(api: DemoApiHarness, other_key: CognitoSigningKey) -> None:
    assert_invalid_token(api.client.get("/profile", headers=api.as_user(key=other_key)))  # fetched for this request
    assert api.jwks.fetches == 1


def test_the_key_set_url_defaults_to_the_issuers_well_known_path(make_api: Callable[..., DemoApiHarness], api: DemoApiHarness) -> None:
    local = make_api(demo_issuer=api.jwks.issuer, demo_jwks_url=None)
    response = local.client.get("/profile", headers=local.as_user(issuer=api.jwks.issuer))
    assert response.status_code == 200
    assert api.jwks.fetches == 1


# ------------------------------------------------------------------------------ the rest of the surface


def test_unknown_paths_and_methods_answer_json(api: DemoApiHarness) -> None:
    missing = api.client.get("/nowhere")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    wrong_method = api.client.delete("/notes", headers=api.as_user())
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"] == "method_not_allowed"


def test_no_interactive_docs_are_exposed(api: DemoApiHarness) -> None:
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert api.client.get(path).status_code == 404


def test_refusals_are_logged_without_the_token(api: DemoApiHarness, caplog: pytest.LogCaptureFixture) -> None:
    token = api.token(ALICE, (READ,))
    with caplog.at_level(logging.INFO):
        api.client.get("/profile", headers=bearer(token))
        api.client.get("/profile", headers=api.as_user(client_id="other"))
    events = [(r.__dict__.get("event"), r.__dict__.get("reason")) for r in caplog.records if r.name == "security"]
    assert ("token_refused", "insufficient_scope") in events
    assert ("token_refused", "wrong_client") in events
    assert token not in caplog.text
    assert ALICE not in caplog.text


@pytest.mark.parametrize("path", ["/health/", "/notes/", "/profile/"])
def test_a_trailing_slash_is_not_redirected_to_the_host_header(api: DemoApiHarness, path: str) -> None:
    """Starlette's slash redirect would build `Location` from `Host`: an open redirect if left on."""
    response = api.client.get(path, headers={**api.as_user(), "host": "evil.example"}, follow_redirects=False)
    assert response.status_code == 404
    assert "location" not in response.headers
