"""The ALB's public-key endpoint unavailable: the services fail closed, call nothing, and recover.

Each service fetches the key of the ALB's `kid` on the first signed-in request it sees and caches it.
Until then it cannot tell who is asking, so it must refuse without calling AgentCore. A failed fetch
(5xx, timeout) is never cached, so the first request after the endpoint is back succeeds; a 404 is
an unknown kid and is remembered for a minute (see services/common/alb_identity.py).
"""

from __future__ import annotations

from tests.faults.conftest import COMPLETE, DATA_PLANE, DONE, SIGN_IN_UNCHECKED, OpenStack, uses_stored_token
from tests.support.person import event


def test_the_agent_fails_closed_while_the_key_endpoint_is_down_and_recovers_when_it_is_back(open_stack: OpenStack) -> None:
    site = open_stack()
    keys, kid = site.stack.key_server, site.stack.rotate_alb_key()  # a key neither service has fetched yet
    keys.status = 503
    alice = site.person(site.alice)  # the ALB signs her in; the agent's page itself checks nobody

    session = alice.send("GET", site.url + "/api/session")
    chat = alice.send("POST", site.url + "/api/chat", json={"message": "show my notes", "history": []})
    for response in (session, chat):
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert response.json() == {
            "error": "sign_in_unchecked",
            "message": "Your sign-in could not be checked right now. Try again in a few seconds.",
        }
    assert keys.fetches(kid) == 2  # a failed fetch is not cached: each request tries again
    assert all(site.calls(op) == 0 for op in DATA_PLANE)
    assert site.model_calls() == 0

    keys.status = None
    assert alice.send("GET", site.url + "/api/session").status_code == 200
    event(alice.chat(site.url, "show my notes"), "authorization_required")
    assert keys.fetches(kid) == 3  # cached from now on


def test_the_binding_service_fails_closed_while_the_key_endpoint_is_down_and_the_consent_goes_on_after(
    open_stack: OpenStack,
) -> None:
    site = open_stack()
    keys, kid = site.stack.key_server, site.stack.rotate_alb_key()  # a key neither service has fetched yet
    alice = site.person(site.alice)
    start = event(alice.chat(site.url, "show my notes"), "authorization_required")["start_url"]
    assert keys.fetches(kid) == 1  # the agent's; the binding service has not seen a signed-in request yet

    keys.status = 503
    page = alice.follow(site.url + start)
    assert page.status_code == 503 and SIGN_IN_UNCHECKED in page.text
    assert "Nothing was authorized yet. Reload this page in a few seconds." in page.text
    assert page.headers["retry-after"] == "5"
    assert not any(c.name.startswith("__Host-agentcore-binding-") for c in alice.cookies.jar)
    assert site.metric("session_binding", "BindingsRefused", Reason="key_fetch_status_503") == 1
    # The agent has its key cached: it keeps working while the endpoint is down.
    event(alice.chat(site.url, "show my notes"), "authorization_required")

    keys.status = None
    login = alice.follow(site.url + start)  # the reload
    prompt = alice.sign_in_through(login)
    done = alice.submit(prompt, button="Allow")
    assert done.status_code == 200 and DONE in done.text
    assert site.calls(COMPLETE) == 1 and len(site.vault()) == 1
    assert uses_stored_token(alice.chat(site.url, "show my notes"))


def test_a_slow_key_endpoint_is_a_timeout_not_a_hang(open_stack: OpenStack) -> None:
    site = open_stack(service_env={"agent": {"ALB_KEY_FETCH_TIMEOUT_S": "0.5"}})
    keys = site.stack.key_server
    keys.delay_s = 2.0
    alice = site.person(site.alice)

    response = alice.send("GET", site.url + "/api/session")
    assert response.status_code == 503 and response.json()["error"] == "sign_in_unchecked"
    assert response.elapsed.total_seconds() < 1.5

    keys.delay_s = 0.0
    assert alice.send("GET", site.url + "/api/session").status_code == 200


def test_a_404_from_the_key_endpoint_is_an_unknown_key_refused_as_not_signed_in_and_remembered(open_stack: OpenStack) -> None:
    site = open_stack()
    keys, kid = site.stack.key_server, site.stack.rotate_alb_key()  # a key neither service has fetched yet
    keys.status = 404
    alice = site.person(site.alice)

    for _ in range(2):
        response = alice.send("GET", site.url + "/api/session")
        assert response.status_code == 401 and response.json()["error"] == "not_signed_in"
    # Remembered (a minute): a flood of tokens naming an unknown kid costs one fetch per kid.
    assert keys.fetches(kid) == 1
    keys.status = None
    assert alice.send("GET", site.url + "/api/session").status_code == 401
    assert keys.fetches(kid) == 1
