"""The session binding protocol end to end through the service: real ALB-format ES256 tokens, real
signed flow tokens and cookies, a real boto3 client against a loopback AgentCore stand-in."""

from __future__ import annotations

import asyncio
import time
from http.cookies import SimpleCookie
from typing import Any

import httpx
import pytest

from local.agentcore_identity import RAW_MESSAGE
from services.common.flow import BINDING_COOKIE_PREFIX, BOUND_COOKIE_PREFIX, binding_cookie_name, new_custom_state
from services.session_binding import pages
from services.session_binding.routes import COOKIE_GRACE_S
from tests.services.conftest import ALICE, AUTHORIZE_URL, BOB, PROVIDER, BindingHarness, new_session_uri

SECURITY_HEADERS = {
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
}


def set_cookies(response: Any) -> dict[str, Any]:
    cookies: dict[str, Any] = {}
    for header in response.headers.get_list("set-cookie"):
        parsed = SimpleCookie()
        parsed.load(header)
        for name, morsel in parsed.items():
            cookies[name] = (morsel, header)
    return cookies


def assert_page(response: Any, status: int, page: pages.Page) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert page.title in response.text
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert RAW_MESSAGE not in response.text


# --- happy path -------------------------------------------------------------------------------


def test_start_then_binding_completes_once_for_the_signed_in_user(harness: BindingHarness) -> None:
    alice = harness.browser(ALICE)
    session = new_session_uri()

    started = alice.start(harness.flow(ALICE, session))
    assert started.status_code == 302
    assert started.headers["location"] == AUTHORIZE_URL  # exactly the signed URL, nothing caller-supplied
    assert harness.agentcore.calls == []  # starting never calls AgentCore

    bound = alice.bind(session)
    assert_page(bound, 200, pages.SUCCESS)
    assert PROVIDER in bound.text
    assert 'href="/"' in bound.text
    [call] = harness.agentcore.completions()
    assert call.body == {"sessionUri": session, "userIdentifier": {"userId": ALICE.sub}}
    assert call.headers["authorization"].startswith("AWS4-HMAC-SHA256 ")  # signed by botocore, as in AWS


def test_binding_cookie_attributes(harness: BindingHarness) -> None:
    session = new_session_uri()
    now = int(time.time())
    started = harness.browser(ALICE).start(harness.flow(ALICE, session, ttl_s=300, now=now))
    [(name, (morsel, raw))] = set_cookies(started).items()
    assert name == binding_cookie_name(session) and name.startswith("__Host-")
    assert morsel["secure"] and morsel["httponly"]
    assert morsel["samesite"].lower() == "lax"
    assert morsel["path"] == "/"
    assert not morsel["domain"]  # __Host- cookies must not name a domain
    # The flow's life and five minutes: a late landing in this browser is told "expired", not "another browser".
    assert 300 < int(morsel["max-age"]) <= 300 + COOKIE_GRACE_S
    assert session not in raw and ALICE.sub not in raw  # digests only


def test_reload_after_success_shows_success_without_a_second_call(harness: BindingHarness) -> None:
    alice = harness.browser(ALICE)
    session = new_session_uri()
    alice.start(harness.flow(ALICE, session))
    first = alice.bind(session)
    cookies = set_cookies(first)
    assert cookies[binding_cookie_name(session)][0]["max-age"] == "0"  # binding cookie cleared
    assert any(name.startswith(BOUND_COOKIE_PREFIX) for name in cookies)

    again = alice.bind(session)
    assert_page(again, 200, pages.SUCCESS)
    assert len(harness.agentcore.completions()) == 1


def test_two_flows_in_one_browser_do_not_overwrite_each_other(harness: BindingHarness) -> None:
    alice = harness.browser(ALICE)
    first, second = new_session_uri(), new_session_uri()
    alice.start(harness.flow(ALICE, first))
    alice.start(harness.flow(ALICE, second))
    assert alice.bind(second).status_code == 200
    assert alice.bind(first).status_code == 200
    assert [c.body["sessionUri"] for c in harness.agentcore.completions()] == [second, first]


def test_concurrent_duplicate_submissions_make_one_call(harness: BindingHarness) -> None:
    harness.agentcore.delay_s = 0.3
    alice = harness.browser(ALICE)
    session = new_session_uri()
    alice.start(harness.flow(ALICE, session))
    cookies = dict(alice.client.cookies)

    async def both() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=harness.app)
        async with httpx.AsyncClient(transport=transport, base_url="https://agent.example.com", cookies=cookies) as client:
            params = {"session_id": session, "state": harness.custom_states[session]}
            requests = [client.get("/oauth2/session-binding", params=params, headers=alice.headers()) for _ in range(2)]
            return list(await asyncio.gather(*requests))

    responses = asyncio.run(both())
    assert [r.status_code for r in responses] == [200, 200]
    assert len(harness.agentcore.completions()) == 1


def test_same_user_mode_completes_on_another_device_of_the_same_user(make_harness: Any) -> None:
    harness = make_harness(binding_mode="same-user")
    session = new_session_uri()
    harness.browser(ALICE).start(harness.flow(ALICE, session))
    phone = harness.browser(ALICE)  # no binding cookie here
    assert_page(phone.bind(session), 200, pages.SUCCESS)
    [call] = harness.agentcore.completions()
    assert call.body["userIdentifier"] == {"userId": ALICE.sub}


def test_same_user_mode_still_refuses_a_session_completed_by_someone_else(make_harness: Any) -> None:
    harness = make_harness(binding_mode="same-user")
    session = new_session_uri()
    harness.browser(ALICE).start(harness.flow(ALICE, session))
    assert harness.browser(ALICE).bind(session).status_code == 200
    # Bob holds Alice's landing URL, echo and all: the session is hers, completed, and nothing of his was used.
    assert_page(harness.browser(BOB).bind(session), 403, pages.OTHER_USER)
    assert len(harness.agentcore.completions()) == 1


def test_same_user_mode_burns_a_session_landing_as_another_user(make_harness: Any) -> None:
    # Alice starts; Bob's browser comes back with her session (he consented to her link). Burned for both.
    harness = make_harness(binding_mode="same-user")
    session = new_session_uri()
    harness.browser(ALICE).start(harness.flow(ALICE, session))
    assert_page(harness.browser(BOB).bind(session), 403, pages.CANCELLED_NOT_YOURS)
    assert_page(harness.browser(ALICE).bind(session), 410, pages.CANCELLED_ELSEWHERE)
    assert harness.agentcore.calls == []


def test_same_user_mode_requires_the_echo_by_default(make_harness: Any) -> None:
    harness = make_harness(binding_mode="same-user")
    session = new_session_uri()
    harness.browser(ALICE).start(harness.flow(ALICE, session))
    assert_page(harness.browser(ALICE).bind(session, state=None), 403, pages.STATE_NOT_ECHOED)
    assert_page(harness.browser(ALICE).bind(session), 410, pages.STATE_NOT_ECHOED)  # burned: the echo comes too late
    assert harness.agentcore.calls == []


# --- who and which browser --------------------------------------------------------------------


def test_forwarded_consent_link_is_refused_at_start(harness: BindingHarness) -> None:
    # Login CSRF: Bob opens the start link Alice's agent produced (or Alice's link sent to Bob).
    response = harness.browser(BOB).start(harness.flow(ALICE, new_session_uri()))
    assert_page(response, 403, pages.OTHER_USER)
    assert "location" not in response.headers
    assert not any(name.startswith(BINDING_COOKIE_PREFIX) for name in set_cookies(response))


def test_other_browser_cannot_complete_even_as_the_same_user(harness: BindingHarness) -> None:
    session = new_session_uri()
    original = harness.browser(ALICE)
    original.start(harness.flow(ALICE, session))
    assert_page(harness.browser(ALICE).bind(session), 403, pages.CANCELLED_ELSEWHERE)
    # Burned for everyone: not even the browser that started it can complete it now.
    assert_page(original.bind(session), 410, pages.CANCELLED_ELSEWHERE)
    assert harness.agentcore.calls == []


def test_other_users_session_is_refused_without_a_call(harness: BindingHarness) -> None:
    session = new_session_uri()
    alice = harness.browser(ALICE)
    alice.start(harness.flow(ALICE, session))
    assert_page(harness.browser(BOB).bind(session), 403, pages.CANCELLED_NOT_YOURS)
    assert_page(alice.bind(session), 410, pages.CANCELLED_ELSEWHERE)
    assert harness.agentcore.calls == []


def test_user_switched_in_the_same_browser_is_refused(harness: BindingHarness) -> None:
    # Browser swapping: the cookie is here, but someone else is now signed in.
    browser = harness.browser(ALICE)
    session = new_session_uri()
    browser.start(harness.flow(ALICE, session))
    browser.user = BOB
    assert_page(browser.bind(session), 403, pages.CANCELLED_NOT_YOURS)
    assert harness.agentcore.calls == []


def test_cookie_for_another_session_is_refused(harness: BindingHarness) -> None:
    browser = harness.browser(ALICE)
    mine, theirs = new_session_uri(), new_session_uri()
    browser.start(harness.flow(ALICE, mine))
    value = browser.client.cookies[binding_cookie_name(mine)]
    browser.client.cookies.set(binding_cookie_name(theirs), value, domain="agent.example.com")
    assert_page(browser.bind(theirs), 410, pages.EXPIRED)  # never started here: nobody's session
    assert harness.agentcore.calls == []


def test_forged_cookie_is_refused(harness: BindingHarness) -> None:
    browser = harness.browser(ALICE)
    session = new_session_uri()
    browser.start(harness.flow(ALICE, session))
    name = binding_cookie_name(session)
    head, _, _mac = browser.client.cookies[name].rpartition(".")
    browser.client.cookies.set(name, f"{head}.{'A' * 43}", domain="agent.example.com")
    assert_page(browser.bind(session), 403, pages.CANCELLED_ELSEWHERE)
    assert harness.agentcore.calls == []


def test_expired_binding_cookie_is_gone_not_forbidden(harness: BindingHarness) -> None:
    browser = harness.browser(ALICE)
    session = new_session_uri()
    browser.start(harness.flow(ALICE, session, ttl_s=60))
    harness.offset_s = 61  # the browser still sends the cookie; the server checks its expiry itself
    assert_page(browser.bind(session), 410, pages.EXPIRED)
    assert_page(browser.bind(session), 410, pages.EXPIRED)  # a reload says expired too, not "another browser"
    assert harness.agentcore.calls == []


def test_expired_flow_token_is_gone(harness: BindingHarness) -> None:
    flow = harness.flow(ALICE, new_session_uri(), now=int(time.time()) - 601)
    assert_page(harness.browser(ALICE).start(flow), 410, pages.EXPIRED)


@pytest.mark.parametrize("mutate", ["tamper", "truncate", "garbage", "duplicate"])
def test_bad_flow_token_is_malformed(harness: BindingHarness, mutate: str) -> None:
    flow = harness.flow(ALICE, new_session_uri())
    browser = harness.browser(ALICE)
    if mutate == "duplicate":
        response = browser.client.get("/oauth2/start", params=[("flow", flow), ("flow", flow)], headers=browser.headers())
    else:
        bad = {"tamper": flow[:-2] + ("AA" if not flow.endswith("AA") else "BB"), "truncate": flow[:40], "garbage": "<script>x</script>"}[
            mutate
        ]
        response = browser.start(bad)
    assert_page(response, 400, pages.MALFORMED)
    assert "<script>x" not in response.text


def test_not_signed_in(harness: BindingHarness) -> None:
    anonymous = harness.browser(None)
    assert_page(anonymous.start(harness.flow(ALICE, new_session_uri())), 401, pages.NOT_SIGNED_IN)
    assert_page(anonymous.bind(new_session_uri()), 401, pages.NOT_SIGNED_IN)
    assert harness.agentcore.calls == []


# --- parameters -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "session_id",
    [
        "",
        "urn:ietf:params:oauth:request_uri:",
        "urn:ietf:params:oauth:request_uri:abc\r\nSet-Cookie: x=1",
        "urn:ietf:params:oauth:request_uri:<script>alert(1)</script>",
        "urn:ietf:params:oauth:request_uri:" + "a" * 1000,
        "https://evil.example/urn:ietf:params:oauth:request_uri:abc",
        "urn:ietf:params:oauth:request_uri:abc def",
    ],
    ids=["empty", "no-id", "crlf", "html", "oversized", "prefix", "space"],
)
def test_malformed_session_id_is_refused_and_escaped(harness: BindingHarness, session_id: str) -> None:
    alice = harness.browser(ALICE)
    response = alice.client.get("/oauth2/session-binding", params={"session_id": session_id}, headers=alice.headers())
    assert_page(response, 400, pages.MALFORMED)
    assert "<script>alert" not in response.text
    assert "set-cookie" not in {k.lower() for k in response.headers} or "x=1" not in response.headers.get("set-cookie", "")
    assert harness.agentcore.calls == []


def test_missing_and_duplicate_session_id(harness: BindingHarness) -> None:
    alice = harness.browser(ALICE)
    assert_page(alice.client.get("/oauth2/session-binding", headers=alice.headers()), 400, pages.MALFORMED)
    session = new_session_uri()
    duplicate = alice.client.get(
        "/oauth2/session-binding", params=[("session_id", session), ("session_id", session)], headers=alice.headers()
    )
    assert_page(duplicate, 400, pages.MALFORMED)
    assert harness.agentcore.calls == []


@pytest.mark.parametrize(("states", "reason"), [(["", "x"], "state_duplicate"), (["a", "a"], "state_duplicate"), ([""], "state_empty")])
def test_a_duplicated_or_empty_echo_is_malformed_and_changes_nothing(
    harness: BindingHarness, caplog: pytest.LogCaptureFixture, states: list[str], reason: str
) -> None:
    alice = harness.browser(ALICE)
    session = new_session_uri()
    alice.start(harness.flow(ALICE, session))
    params = [("session_id", session), *(("state", value) for value in states)]
    assert_page(alice.client.get("/oauth2/session-binding", params=params, headers=alice.headers()), 400, pages.MALFORMED)
    assert [r.__dict__["reason"] for r in caplog.records if r.name == "security"] == [reason]
    # Nothing was cancelled: AgentCore's genuine redirect still completes it.
    assert_page(alice.bind(session), 200, pages.SUCCESS)


@pytest.mark.parametrize(
    "params",
    [
        {"code": "abc", "state": "xyz"},
        {"code": "abc"},
        {"state": "xyz"},
        {"code": "abc", "session_id": "urn:ietf:params:oauth:request_uri:abc"},
    ],
)
def test_oauth_callback_parameters_mean_a_misregistered_callback(harness: BindingHarness, params: dict[str, str]) -> None:
    alice = harness.browser(ALICE)
    response = alice.client.get("/oauth2/session-binding", params=params, headers=alice.headers())
    assert_page(response, 400, pages.CALLBACK_MISDIRECTED)
    assert harness.agentcore.calls == []


def test_state_next_to_session_id_must_be_this_flows_custom_state(harness: BindingHarness) -> None:
    alice = harness.browser(ALICE)
    session = new_session_uri()
    custom_state, flow_id = new_custom_state()
    alice.start(harness.flow(ALICE, session, flow_id=flow_id))
    other_state, _ = new_custom_state()

    wrong = alice.client.get("/oauth2/session-binding", params={"session_id": session, "state": other_state}, headers=alice.headers())
    assert_page(wrong, 403, pages.CANCELLED_ELSEWHERE)
    assert harness.agentcore.calls == []
    # Burned: a landing with the wrong echo is not AgentCore's redirect, so the right one cannot follow it.
    right = alice.client.get("/oauth2/session-binding", params={"session_id": session, "state": custom_state}, headers=alice.headers())
    assert_page(right, 410, pages.CANCELLED_ELSEWHERE)
    # The browser never held the secret: only its digest is in the cookie and the flow token.
    assert custom_state not in str(dict(alice.client.cookies)) and custom_state not in harness.flow(ALICE, session, flow_id=flow_id)


def test_required_state_stops_the_initiator_from_completing_by_hand(make_harness: Any) -> None:
    # Bob starts a flow, forwards the authorization URL to Alice, she consents in her browser, and Bob
    # then opens the return URL himself. Without customState he cannot produce AgentCore's redirect.
    harness = make_harness()  # the default
    bob = harness.browser(BOB)
    session = new_session_uri()
    custom_state, flow_id = new_custom_state()
    bob.start(harness.flow(BOB, session, flow_id=flow_id))
    assert_page(bob.bind(session, state=None), 403, pages.STATE_NOT_ECHOED)
    assert harness.agentcore.calls == []
    # And the session is burned: even AgentCore's genuine redirect, arriving later, completes nothing.
    genuine = bob.client.get("/oauth2/session-binding", params={"session_id": session, "state": custom_state}, headers=bob.headers())
    assert_page(genuine, 410, pages.STATE_NOT_ECHOED)
    assert harness.agentcore.calls == []


def test_without_the_echo_requirement_a_cookie_still_completes(make_harness: Any) -> None:
    # require_custom_state=false: for an account where AgentCore does not echo; the other proofs still hold.
    harness = make_harness(require_custom_state=False)
    alice = harness.browser(ALICE)
    session = new_session_uri()
    alice.start(harness.flow(ALICE, session))
    assert_page(alice.bind(session, state=None), 200, pages.SUCCESS)


def test_the_echo_parameter_is_a_setting(make_harness: Any) -> None:
    harness = make_harness(custom_state_param="cs")
    alice = harness.browser(ALICE)
    session = new_session_uri()
    alice.start(harness.flow(ALICE, session))
    params = {"session_id": session, "cs": harness.custom_states[session]}
    assert_page(alice.client.get("/oauth2/session-binding", params=params, headers=alice.headers()), 200, pages.SUCCESS)


def test_a_session_never_started_here_is_refused_and_burned(make_harness: Any) -> None:
    # Same-user mode has no cookie: the ledger's record of /oauth2/start is what names the session's owner.
    harness = make_harness(binding_mode="same-user")
    session = new_session_uri()
    harness.agentcore.sessions[session] = ALICE.sub
    assert_page(harness.browser(ALICE).bind(session, state="anything"), 410, pages.EXPIRED)
    assert harness.agentcore.calls == []


def test_non_ascii_flow_token_is_malformed(harness: BindingHarness) -> None:
    assert_page(harness.browser(ALICE).start("v1.k2.e30.éé"), 400, pages.MALFORMED)


# --- AgentCore failures -----------------------------------------------------------------------


def _started(harness: BindingHarness) -> tuple[Any, str]:
    alice = harness.browser(ALICE)
    session = new_session_uri()
    alice.start(harness.flow(ALICE, session))
    return alice, session


def test_throttling_twice_then_success_is_retried(harness: BindingHarness) -> None:
    harness.agentcore.failures = ["ThrottlingException", "ThrottlingException"]
    alice, session = _started(harness)
    assert_page(alice.bind(session), 200, pages.SUCCESS)
    assert len(harness.agentcore.completions()) == 3  # two throttled attempts, then the one that counted
    assert harness.agentcore.completed == {session}


def test_throttling_until_exhausted_is_503_and_not_complete(harness: BindingHarness) -> None:
    harness.agentcore.failures = ["ThrottlingException"] * 3
    alice, session = _started(harness)
    response = alice.bind(session)
    assert_page(response, 503, pages.BUSY)
    assert response.headers["retry-after"] == "5"
    assert harness.agentcore.completed == set()
    assert not any(name.startswith(BOUND_COOKIE_PREFIX) for name in set_cookies(response))
    # The binding cookie survives, so a reload once AgentCore recovers finishes the same consent.
    assert_page(alice.bind(session), 200, pages.SUCCESS)
    assert harness.agentcore.completed == {session}


@pytest.mark.parametrize(
    ("code", "status", "page"),
    [
        ("ValidationException", 410, pages.AGENTCORE_REFUSED),
        ("ResourceNotFoundException", 410, pages.AGENTCORE_REFUSED),
        ("AccessDeniedException", 502, pages.FAILED),
        ("InternalServerException", 503, pages.BUSY),
    ],
)
def test_agentcore_errors_become_pages_in_the_persons_terms(harness: BindingHarness, code: str, status: int, page: pages.Page) -> None:
    harness.agentcore.failures = [code] * 3
    alice, session = _started(harness)
    response = alice.bind(session)
    assert_page(response, status, page)
    assert code not in response.text


@pytest.mark.parametrize(("failure", "page"), [("HTML503", pages.BUSY), ("CLOSE", pages.UNCERTAIN)])
def test_agentcore_transport_failures_are_503_pages(harness: BindingHarness, failure: str, page: pages.Page) -> None:
    harness.agentcore.failures = [failure] * 3
    alice, session = _started(harness)
    response = alice.bind(session)
    assert_page(response, 503, page)
    assert response.headers["retry-after"] == "5"


def test_success_lost_to_a_timeout_then_retried_is_uncertain_not_used(make_harness: Any) -> None:
    harness = make_harness(agentcore_read_timeout_s=0.3)
    harness.agentcore.slow_s = 0.6
    harness.agentcore.failures = ["SLOW_SUCCESS"]  # completes at AgentCore, answer arrives too late; the retry sees "used"
    alice, session = _started(harness)
    response = alice.bind(session)
    assert_page(response, 503, pages.UNCERTAIN)
    assert harness.agentcore.completed == {session}
    # A reload: AgentCore says "used", which after a lost answer is most likely our own completion. Not
    # "cancelled, nothing shared"; and from then on, no more calls.
    calls = len(harness.agentcore.completions())
    assert_page(alice.bind(session), 410, pages.EXPIRED)
    assert_page(alice.bind(session), 410, pages.EXPIRED)
    assert len(harness.agentcore.completions()) == calls + 1


def test_agentcore_refusal_clears_the_binding_cookie(harness: BindingHarness) -> None:
    harness.agentcore.failures = ["ValidationException"]
    alice, session = _started(harness)
    response = alice.bind(session)
    assert_page(response, 410, pages.AGENTCORE_REFUSED)
    assert set_cookies(response)[binding_cookie_name(session)][0]["max-age"] == "0"
    # A refusal by AgentCore burns the session (an early attempt is how an initiator would race the victim):
    # the reload says the same, with no second call.
    assert_page(alice.bind(session), 410, pages.AGENTCORE_REFUSED)
    assert len(harness.agentcore.completions()) == 1


def test_queue_is_bounded_and_sheds_load_with_a_clear_503(make_harness: Any) -> None:
    harness = make_harness(agentcore_concurrency=1, agentcore_max_waiting=0)
    harness.agentcore.delay_s = 0.5  # below the harness's 1 s read timeout
    alice = harness.browser(ALICE)
    sessions = [new_session_uri(), new_session_uri()]
    for session in sessions:
        alice.start(harness.flow(ALICE, session))
    cookies = dict(alice.client.cookies)

    async def both() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=harness.app)
        async with httpx.AsyncClient(transport=transport, base_url="https://agent.example.com", cookies=cookies) as client:
            params = [{"session_id": s, "state": harness.custom_states[s]} for s in sessions]
            first = asyncio.create_task(client.get("/oauth2/session-binding", params=params[0], headers=alice.headers()))
            deadline = time.monotonic() + 5
            while not harness.agentcore.completions() and time.monotonic() < deadline:  # the first call is at AgentCore
                await asyncio.sleep(0.01)
            second = await client.get("/oauth2/session-binding", params=params[1], headers=alice.headers())
            return [await first, second]

    first, second = asyncio.run(both())
    assert first.status_code == 200
    assert_page(second, 503, pages.BUSY)
    assert len(harness.agentcore.completions()) == 1


def test_agentcore_slower_than_the_read_timeout(make_harness: Any) -> None:
    harness = make_harness(agentcore_read_timeout_s=0.2, agentcore_max_attempts=1)
    harness.agentcore.delay_s = 0.5
    alice, session = _started(harness)
    assert_page(alice.bind(session), 503, pages.UNCERTAIN)


def test_agentcore_unreachable(make_harness: Any) -> None:
    harness = make_harness(agentcore_max_attempts=1)
    harness.agentcore.stop()
    alice, session = _started(harness)
    response = alice.bind(session)
    assert_page(response, 503, pages.BUSY)
    assert response.headers["retry-after"] == "5"


# --- everything else --------------------------------------------------------------------------


def test_health_calls_nothing(harness: BindingHarness) -> None:
    response = harness.browser(None).client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert harness.agentcore.calls == [] and harness.key_server.total_fetches() == 0


def test_unknown_paths_still_carry_security_headers(harness: BindingHarness) -> None:
    response = harness.browser(None).client.get("/admin")
    assert response.status_code == 404
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
