"""How the binding service says no (`refusal.py`, `parameters.py`): the order of its checks, the security
event each route writes, and a refused sign-in answered like any other refusal."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from services.common.logs import hashed
from services.session_binding import pages
from tests.services.conftest import ALICE, BindingHarness, new_session_uri
from tests.services.session_binding.test_session_binding import assert_page


def security_events(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    keys = ("event", "reason", "status", "user", "session")
    return [{key: record.__dict__[key] for key in keys} for record in caplog.records if record.name == "security"]


@pytest.mark.parametrize("query", [{}, [("flow", "a"), ("flow", "b")], {"flow": ""}], ids=["missing", "duplicate", "empty"])
def test_a_malformed_start_link_is_400_before_the_sign_in_is_looked_at(
    harness: BindingHarness, caplog: pytest.LogCaptureFixture, query: Any
) -> None:
    response = harness.browser(None).client.get("/oauth2/start", params=query)
    assert_page(response, 400, pages.MALFORMED)
    [event] = security_events(caplog)
    assert event["event"] == "start_refused" and event["status"] == 400
    assert event["reason"] in ("flow_missing", "flow_duplicate")
    assert (event["user"], event["session"]) == (None, None)


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ({}, "session_id_missing"),
        ({"session_id": "not-a-session"}, "session_id_malformed"),
        ({"code": "x", "state": "y"}, "oauth_callback_parameters"),
    ],
)
def test_a_malformed_landing_is_400_before_the_sign_in_is_looked_at(
    harness: BindingHarness, caplog: pytest.LogCaptureFixture, query: dict[str, str], reason: str
) -> None:
    response = harness.browser(None).client.get("/oauth2/session-binding", params=query)
    assert response.status_code == 400
    [event] = security_events(caplog)
    assert event == {"event": "binding_refused", "reason": reason, "status": 400, "user": None, "session": None}


def test_a_refused_sign_in_at_start_names_no_session(harness: BindingHarness, caplog: pytest.LogCaptureFixture) -> None:
    assert_page(harness.browser(None).start(harness.flow(ALICE, new_session_uri())), 401, pages.NOT_SIGNED_IN)
    [event] = security_events(caplog)
    assert event == {"event": "start_refused", "reason": "not_signed_in:missing_header", "status": 401, "user": None, "session": None}


def test_a_refused_sign_in_at_the_landing_names_its_session(harness: BindingHarness, caplog: pytest.LogCaptureFixture) -> None:
    session = new_session_uri()
    assert_page(harness.browser(None).bind(session, state="some-state"), 401, pages.NOT_SIGNED_IN)
    [event] = security_events(caplog)
    assert event == {
        "event": "binding_refused",
        "reason": "not_signed_in:missing_header",
        "status": 401,
        "user": None,
        "session": hashed(session),
    }
    assert harness.agentcore.calls == []


@pytest.mark.parametrize("route", ["start", "landing"])
def test_a_sign_in_that_cannot_be_checked_is_503_with_retry_after(make_harness: Any, caplog: pytest.LogCaptureFixture, route: str) -> None:
    harness = make_harness(alb_keys_base_url="http://127.0.0.1:9")  # nothing listens: the key fetch fails
    alice = harness.browser(ALICE)
    session = new_session_uri()
    response = alice.start(harness.flow(ALICE, session)) if route == "start" else alice.bind(session)
    assert_page(response, 503, pages.SIGN_IN_UNCHECKED)
    assert response.headers["retry-after"] == "5"
    [event] = security_events(caplog)
    assert event["event"] == ("start_refused" if route == "start" else "binding_refused")
    assert event["reason"].startswith("key_fetch_") and event["status"] == 503
    assert event["session"] == (None if route == "start" else hashed(session))
    assert harness.agentcore.calls == []


def test_a_refusal_after_sign_in_names_the_user_and_the_session(harness: BindingHarness, caplog: pytest.LogCaptureFixture) -> None:
    session = new_session_uri()
    caplog.set_level(logging.INFO)
    harness.browser(ALICE).bind(session)  # a browser without the binding cookie
    [event] = security_events(caplog)
    assert event == {
        "event": "binding_refused",
        "reason": "cancelled_not_started",
        "status": 410,
        "user": hashed(ALICE.user_key),
        "session": hashed(session),
    }


def test_every_route_that_refuses_names_its_security_event() -> None:
    from services.session_binding.routes import REFUSAL_EVENTS, router

    assert {route.path for route in router.routes} == set(REFUSAL_EVENTS)  # type: ignore[attr-defined]


def test_a_refusal_from_a_route_without_an_event_name_is_still_a_page_an_event_and_no_500(
    harness: BindingHarness, caplog: pytest.LogCaptureFixture
) -> None:
    from fastapi import APIRouter

    from services.session_binding.refusal import UNNAMED_EVENT, Refusal

    extra = APIRouter()

    @extra.get("/oauth2/probe")
    async def probe() -> None:
        raise Refusal(400, "probe", pages.MALFORMED)

    harness.app.include_router(extra)
    response = harness.browser(None).client.get("/oauth2/probe")
    assert_page(response, 400, pages.MALFORMED)
    [event] = security_events(caplog)
    assert (event["event"], event["reason"], event["status"]) == (UNNAMED_EVENT, "probe", 400)
