"""Signed flow tokens and cookies: purpose separation, rotation, expiry, and the 10-minute cap."""

from __future__ import annotations

import json
import time

import pytest

from services.common.flow import (
    FLOW_TTL_MAX_S,
    FlowError,
    is_safe_authorization_url,
    is_session_uri,
    issue_binding_cookie,
    issue_flow_token,
    read_binding_cookie,
    read_flow_token,
)
from services.common.signed import Keyring, SignedValueError
from tests.services.conftest import ALICE, AUTHORIZE_URL, BOB, new_session_uri

NEW = {"kid": "k2", "key": "n" * 48}
OLD = {"kid": "k1", "key": "o" * 48}


def keyring(*keys: dict[str, str]) -> Keyring:
    return Keyring.from_json(json.dumps(list(keys)))


def flow_token(ring: Keyring, *, now: int | None = None, ttl_s: int = 600, url: str = AUTHORIZE_URL) -> str:
    return issue_flow_token(
        ring,
        identity=ALICE,
        session_uri=new_session_uri(),
        authorization_url=url,
        provider="demo",
        scopes=("demo-api/notes.read", "demo-api/profile.read"),
        flow_id="f1",
        now=now if now is not None else int(time.time()),
        ttl_s=ttl_s,
    )


def test_round_trip() -> None:
    ring = keyring(NEW)
    flow = read_flow_token(ring, flow_token(ring), now=int(time.time()))
    assert flow.owned_by(ALICE) and not flow.owned_by(BOB)
    assert flow.scopes == ("demo-api/notes.read", "demo-api/profile.read")
    assert flow.authorization_url == AUTHORIZE_URL


def test_lifetime_is_capped_at_ten_minutes() -> None:
    ring = keyring(NEW)
    now = int(time.time())
    flow = read_flow_token(ring, flow_token(ring, now=now, ttl_s=3600), now=now)
    assert flow.expires_at - flow.issued_at == FLOW_TTL_MAX_S
    with pytest.raises(FlowError, match="expired"):
        read_flow_token(ring, flow_token(ring, now=now - FLOW_TTL_MAX_S), now=now)


def test_rotation_old_key_verifies_new_key_signs() -> None:
    before = keyring(OLD)
    after = keyring(NEW, OLD)
    token = flow_token(before)
    assert read_flow_token(after, token, now=int(time.time())).sub == ALICE.sub
    assert flow_token(after).split(".")[1] == "k2"
    with pytest.raises(FlowError, match="unknown_key"):
        read_flow_token(keyring(NEW), token, now=int(time.time()))


def test_a_flow_token_is_not_a_cookie() -> None:
    ring = keyring(NEW)
    token = flow_token(ring)
    session = read_flow_token(ring, token, now=int(time.time())).session_uri
    with pytest.raises(FlowError, match="bad_signature"):
        read_binding_cookie(ring, token, session_uri=session, identity=ALICE, now=int(time.time()))


def test_cookie_names_its_session_and_user() -> None:
    ring = keyring(NEW)
    flow = read_flow_token(ring, flow_token(ring), now=int(time.time()))
    cookie = issue_binding_cookie(ring, flow=flow)
    now = int(time.time())
    assert read_binding_cookie(ring, cookie, session_uri=flow.session_uri, identity=ALICE, now=now).provider == "demo"
    with pytest.raises(FlowError, match="other_user"):
        read_binding_cookie(ring, cookie, session_uri=flow.session_uri, identity=BOB, now=now)
    with pytest.raises(FlowError, match="other_session"):
        read_binding_cookie(ring, cookie, session_uri=new_session_uri(), identity=ALICE, now=now)
    with pytest.raises(FlowError, match="expired"):
        read_binding_cookie(ring, cookie, session_uri=flow.session_uri, identity=ALICE, now=flow.expires_at)


@pytest.mark.parametrize("value", ["", "v1", "v2.k2.e30.abc", "v1.k2.e30", "v1.zz.e30.abc", "v1.k2.!!.abc", "x" * 9000])
def test_malformed_values(value: str) -> None:
    with pytest.raises(SignedValueError):
        keyring(NEW).verify("flow-token", value, max_chars=8192)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "{}",
        '{"kid": "k1"}',
        '{"kid": "k1", "key": "short"}',
        '{"kid": "bad kid!", "key": "' + "x" * 40 + '"}',
        "[]",
        f"[{json.dumps(NEW)}, {json.dumps(NEW)}]",
    ],
)
def test_bad_keyring_values_are_config_errors(raw: str) -> None:
    with pytest.raises(ValueError, match=r"flow signing keys|at least one|unique"):
        Keyring.from_json(raw)


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("https://idp.example.org/authorize?x=1", True),
        ("http://127.0.0.1:9000/authorize", True),
        ("http://localhost:9000/authorize", True),
        ("http://idp.example.org/authorize", False),
        ("https://user:pw@idp.example.org/", False),
        ("javascript:alert(1)", False),
        ("//idp.example.org/authorize", False),
        ("https://idp.example.org/a\r\nb", False),
        ("https:\\\\idp.example.org", False),
        ("/relative", False),
    ],
)
def test_authorization_urls(url: str, safe: bool) -> None:
    assert is_safe_authorization_url(url) is safe


def test_issuing_refuses_values_the_start_endpoint_would_refuse() -> None:
    with pytest.raises(ValueError, match="authorization URL"):
        flow_token(keyring(NEW), url="javascript:alert(1)")


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("urn:ietf:params:oauth:request_uri:abc-._~123", True),
        ("urn:ietf:params:oauth:request_uri:" + "a" * (1024 - 34), True),
        ("urn:ietf:params:oauth:request_uri:" + "a" * (1025 - 34), False),
        ("urn:ietf:params:oauth:request_uri:abc\n", False),
        ("URN:ietf:params:oauth:request_uri:abc", False),
    ],
)
def test_session_uri_pattern(value: str, valid: bool) -> None:
    assert is_session_uri(value) is valid


def test_the_display_name_travels_signed_and_older_tokens_fall_back_to_the_provider() -> None:
    ring = keyring(NEW)
    now = int(time.time())
    named = issue_flow_token(
        ring,
        identity=ALICE,
        session_uri=new_session_uri(),
        authorization_url=AUTHORIZE_URL,
        provider="agentcore-ecs-sandbox-notes",
        scopes=("demo-api/notes.read",),
        flow_id="f1",
        now=now,
        display_name="Demo Notes",
    )
    flow = read_flow_token(ring, named, now=now)
    assert (flow.display_name, flow.shown_name) == ("Demo Notes", "Demo Notes")
    cookie = issue_binding_cookie(ring, flow=flow)
    assert read_binding_cookie(ring, cookie, session_uri=flow.session_uri, identity=ALICE, now=now).provider == "Demo Notes"
    unnamed = read_flow_token(ring, flow_token(ring, now=now), now=now)
    assert (unnamed.display_name, unnamed.shown_name) == ("", "demo")
    for bad in ("x" * 41, "line\nbreak"):
        with pytest.raises(ValueError, match="display name"):
            issue_flow_token(
                ring,
                identity=ALICE,
                session_uri=new_session_uri(),
                authorization_url=AUTHORIZE_URL,
                provider="demo",
                scopes=(),
                flow_id="f1",
                now=now,
                display_name=bad,
            )
