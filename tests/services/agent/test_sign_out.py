"""Sign-out at the agent: who is signed in, the ALB's session cookies expired, the sign-in provider's logout next,
and a signed-out page that needs no session. Requests carry real ES256-signed ALB tokens (the harness)."""

from __future__ import annotations

from http.cookies import SimpleCookie

import pytest

from services.agent.sign_out import ALB_SESSION_COOKIE_SHARDS
from tests.services.conftest import ALICE, AgentHarness


def _expired(set_cookie_headers: list[str]) -> dict[str, SimpleCookie]:
    found: dict[str, SimpleCookie] = {}
    for header in set_cookie_headers:
        cookie = SimpleCookie()
        cookie.load(header)
        for name in cookie:
            found[name] = cookie
    return found


def test_the_session_names_who_is_signed_in(agent: AgentHarness) -> None:
    browser = agent.browser(ALICE)
    answer = browser.client.get("/api/session", headers=browser.headers()).json()
    assert answer["email"] == ALICE.email and answer["user"] and ALICE.sub not in answer["user"]


def test_sign_out_expires_every_alb_cookie_shard_and_answers_the_logout_url(agent: AgentHarness) -> None:
    browser = agent.browser(ALICE)
    response = browser.client.post("/api/sign-out", json={}, headers=browser.headers())
    assert response.status_code == 200
    assert response.json()["location"].startswith("https://signin.example/logout?client_id=alb-client&logout_uri=")
    assert response.headers["cache-control"] == "no-store"
    cookies = _expired(response.headers.get_list("set-cookie"))
    assert set(cookies) == set(ALB_SESSION_COOKIE_SHARDS)
    for name, cookie in cookies.items():
        morsel = cookie[name]
        assert morsel.value == "" and morsel["max-age"] == "0" and morsel["path"] == "/"
        assert morsel["secure"] and morsel["httponly"] and morsel["samesite"].lower() == "none"


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({"content-type": "application/x-www-form-urlencoded"}, b"a=1", 415),  # what a cross-site form can send
        ({"content-type": "text/plain"}, b"{}", 415),
        ({"content-type": "application/json"}, b"{" + b" " * 100 + b"}", 413),
    ],
    ids=["form", "text", "too-large"],
)
def test_sign_out_takes_only_a_small_json_body(agent: AgentHarness, headers: dict[str, str], body: bytes, status: int) -> None:
    browser = agent.browser(ALICE)
    response = browser.client.post("/api/sign-out", content=body, headers=browser.headers() | headers)
    assert response.status_code == status
    assert "set-cookie" not in response.headers, "nothing is expired by a refused request"


def test_sign_out_needs_a_signed_in_person(agent: AgentHarness) -> None:
    assert agent.browser(None).client.post("/api/sign-out", json={}).status_code == 401


def test_the_signed_out_page_needs_no_session_and_expires_the_cookies_again(agent: AgentHarness) -> None:
    response = agent.browser(None).client.get("/signed-out")
    assert response.status_code == 200 and "You are signed out" in response.text
    assert set(_expired(response.headers.get_list("set-cookie"))) == set(ALB_SESSION_COOKIE_SHARDS)
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("body", [b"[]", b'{"user": "bob"}', b"not json"], ids=["list", "fields", "garbage"])
def test_sign_out_takes_only_an_empty_object(agent: AgentHarness, body: bytes) -> None:
    browser = agent.browser(ALICE)
    response = browser.client.post("/api/sign-out", content=body, headers=browser.headers() | {"content-type": "application/json"})
    assert response.status_code == 400 and "set-cookie" not in response.headers
