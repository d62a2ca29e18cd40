"""Observability through real requests: correlation ids on every line, EMF metrics of both services.

The services write JSON lines to stdout (the awslogs driver and Lambda ship them); these tests read
that stdout, as CloudWatch Logs would, and check each metric document against the EMF specification.
"""

from __future__ import annotations

import json
import re
import socket
import time
from typing import Any

import pytest

from services.common.middleware import correlation_id_from
from tests.services.conftest import ALICE, BOB, AgentHarness, BindingHarness, new_session_uri

NAMESPACE = "agentcore-ecs/test"
TRACE_ROOT = "1-67891233-abcdef012345678912345678"
GENERATED = re.compile(r"1-[0-9a-f]{8}-[0-9a-f]{24}")


def lines_of(out: str) -> list[dict[str, Any]]:
    parsed = []
    for line in out.splitlines():
        if line.startswith("{"):
            parsed.append(json.loads(line))
    return parsed


def emf(out: str, name: str) -> list[dict[str, Any]]:
    """The EMF documents that carry metric `name`, each checked against the format's rules."""
    found = []
    for document in lines_of(out):
        if "_aws" not in document:
            continue
        check_emf(document)
        names = [m["Name"] for d in document["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]]
        if name in names:
            found.append(document)
    return found


def check_emf(document: dict[str, Any]) -> None:
    meta = document["_aws"]
    timestamp = meta["Timestamp"]
    assert isinstance(timestamp, int)
    assert abs(timestamp - time.time() * 1000) < 120_000  # milliseconds since the epoch, now
    directives = meta["CloudWatchMetrics"]
    assert isinstance(directives, list) and directives
    for directive in directives:
        assert directive["Namespace"] == NAMESPACE
        dimension_sets = directive["Dimensions"]
        assert isinstance(dimension_sets, list) and dimension_sets
        for dimension_set in dimension_sets:
            assert 1 <= len(dimension_set) <= 30
            for key in dimension_set:
                value = document[key]  # every dimension is a top-level string
                assert isinstance(value, str) and 0 < len(value) <= 64
        for metric in directive["Metrics"]:
            assert set(metric) == {"Name", "Unit"} and metric["Unit"] == "Count"
            assert isinstance(document[metric["Name"]], int | float)  # the value, at the top level


def dimensions(document: dict[str, Any]) -> list[dict[str, str]]:
    return [{key: document[key] for key in dimension_set} for dimension_set in document["_aws"]["CloudWatchMetrics"][0]["Dimensions"]]


def no_user_data(document: dict[str, Any], *values: str) -> None:
    text = json.dumps(document)
    for value in values:
        assert value not in text


@pytest.fixture
def binding(make_harness: Any) -> BindingHarness:
    harness: BindingHarness = make_harness(metrics_namespace=NAMESPACE)
    return harness


@pytest.fixture
def agent_h(make_agent: Any) -> AgentHarness:
    harness: AgentHarness = make_agent(metrics_namespace=NAMESPACE)
    return harness


# --- session binding metrics --------------------------------------------------------------------


def test_a_completed_binding_counts_once(binding: BindingHarness, capsys: pytest.CaptureFixture[str]) -> None:
    alice = binding.browser(ALICE)
    session = new_session_uri()
    alice.start(binding.flow(ALICE, session))
    assert alice.bind(session).status_code == 200
    assert alice.bind(session).status_code == 200  # a reload is not a second completion
    [document] = emf(capsys.readouterr().out, "BindingsCompleted")
    assert document["BindingsCompleted"] == 1
    assert dimensions(document) == [{"Service": "session-binding"}]
    no_user_data(document, ALICE.sub, session)


def test_a_refusal_counts_by_reason_and_in_total(binding: BindingHarness, capsys: pytest.CaptureFixture[str]) -> None:
    session = new_session_uri()
    binding.browser(ALICE).start(binding.flow(ALICE, session))
    assert binding.browser(ALICE).bind(session).status_code == 403  # another browser: no binding cookie
    out = capsys.readouterr().out
    [document] = emf(out, "BindingsRefused")
    assert document["BindingsRefused"] == 1
    assert dimensions(document) == [{"Service": "session-binding", "Reason": "cancelled_other_browser"}, {"Service": "session-binding"}]
    assert emf(out, "BindingsCompleted") == []
    assert binding.agentcore.completions() == []
    no_user_data(document, ALICE.sub, session)
    [cancelled] = emf(out, "SessionsCancelled")  # burned for everyone, counted by why
    assert dimensions(cancelled) == [{"Service": "session-binding", "Reason": "other_browser"}, {"Service": "session-binding"}]


def test_a_landing_without_the_echo_is_loud(
    binding: BindingHarness, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # A valid binding cookie, no customState echo: what every landing looks like if AgentCore does not
    # echo where we expect. One metric the alarm watches, one distinct security event naming what came.
    alice = binding.browser(ALICE)
    session = new_session_uri()
    alice.start(binding.flow(ALICE, session))
    response = alice.client.get("/oauth2/session-binding", params={"session_id": session, "cs": "x"}, headers=alice.headers())
    assert response.status_code == 403
    out = capsys.readouterr().out
    [document] = emf(out, "StateEchoMissing")
    assert document["StateEchoMissing"] == 1
    assert dimensions(document) == [{"Service": "session-binding"}]
    [event] = [r for r in caplog.records if getattr(r, "event", None) == "state_echo_missing"]
    assert event.expected_parameter == "state"  # type: ignore[attr-defined]
    assert event.parameters == ["cs", "session_id"]  # type: ignore[attr-defined]  # names only, never values
    assert binding.agentcore.calls == []


def test_a_hand_made_landing_of_another_browser_is_not_counted_as_a_missing_echo(
    binding: BindingHarness, capsys: pytest.CaptureFixture[str]
) -> None:
    session = new_session_uri()
    binding.browser(ALICE).start(binding.flow(ALICE, session))
    assert binding.browser(BOB).bind(session, state=None).status_code == 403
    assert emf(capsys.readouterr().out, "StateEchoMissing") == []


def test_a_refused_start_counts_too(binding: BindingHarness, capsys: pytest.CaptureFixture[str]) -> None:
    assert binding.browser(BOB).start(binding.flow(ALICE, new_session_uri())).status_code == 403
    [document] = emf(capsys.readouterr().out, "BindingsRefused")
    assert document["Reason"] == "flow_other_user"


@pytest.mark.parametrize(
    ("failures", "code"),
    [
        (["ThrottlingException"] * 3, "ThrottlingException"),
        (["CLOSE"] * 3, "ConnectionError"),
        (["AccessDeniedException"], "AccessDeniedException"),
    ],
    ids=["throttling", "connection", "access-denied"],
)
def test_agentcore_errors_count_by_code_after_retries(
    binding: BindingHarness, capsys: pytest.CaptureFixture[str], failures: list[str], code: str
) -> None:
    binding.agentcore.failures = list(failures)
    alice = binding.browser(ALICE)
    session = new_session_uri()
    alice.start(binding.flow(ALICE, session))
    assert alice.bind(session).status_code >= 500
    out = capsys.readouterr().out
    [document] = emf(out, "AgentCoreErrors")  # one per failed call, not per botocore attempt
    assert dimensions(document) == [{"Service": "session-binding", "ErrorCode": code}, {"Service": "session-binding"}]
    [refused] = emf(out, "BindingsRefused")
    assert refused["Reason"].startswith("agentcore_")


# --- agent metrics -----------------------------------------------------------------------------


def test_agent_counts_prompts_and_workload_token_cache_hits_and_misses(agent_h: AgentHarness, capsys: pytest.CaptureFixture[str]) -> None:
    browser = agent_h.browser(ALICE)
    first = agent_h.chat(browser)
    assert first.of("authorization_required")
    out = capsys.readouterr().out
    [prompt] = emf(out, "AuthorizationPrompts")
    assert dimensions(prompt) == [{"Service": "agent"}]
    [miss] = emf(out, "WorkloadTokenCacheMisses")
    assert dimensions(miss) == [{"Service": "agent"}]
    assert emf(out, "WorkloadTokenCacheHits") == []

    agent_h.consent(browser, first)
    capsys.readouterr()
    second = agent_h.chat(browser)
    assert [r["ok"] for r in second.of("tool_result")] == [True]
    out = capsys.readouterr().out
    [hit] = emf(out, "WorkloadTokenCacheHits")
    assert hit["WorkloadTokenCacheHits"] == 1 and hit["Service"] == "agent"
    assert emf(out, "WorkloadTokenCacheMisses") == [] and emf(out, "AuthorizationPrompts") == []
    for document in (prompt, miss, hit):
        no_user_data(document, ALICE.sub)


def test_agent_counts_agentcore_errors_by_code(agent_h: AgentHarness, capsys: pytest.CaptureFixture[str]) -> None:
    agent_h.agentcore.failures = ["AccessDeniedException"]
    turn = agent_h.chat(agent_h.browser(ALICE))
    assert [e["code"] for e in turn.of("error")] == ["identity_unavailable"]
    [document] = emf(capsys.readouterr().out, "AgentCoreErrors")
    assert dimensions(document) == [{"Service": "agent", "ErrorCode": "AccessDeniedException"}, {"Service": "agent"}]


def test_a_code_outside_the_known_set_is_counted_as_other() -> None:
    from botocore.exceptions import ClientError

    from services.common.agentcore import error_code

    made_up = ClientError({"Error": {"Code": "Anything<script>" * 10}}, "CompleteResourceTokenAuth")
    assert error_code(made_up) == "Other"


# --- correlation ids ---------------------------------------------------------------------------


def request_lines(out: str) -> list[dict[str, Any]]:
    """Lines written while requests were handled: access log, security events, metrics."""
    return [line for line in lines_of(out) if line.get("logger") in {"access", "security", "session_binding", "agent"} or "_aws" in line]


def test_binding_lines_carry_the_albs_trace_root(binding: BindingHarness, capsys: pytest.CaptureFixture[str]) -> None:
    binding.agentcore.failures = ["ThrottlingException"] * 3  # the metric is written in the AgentCore worker thread
    alice = binding.browser(ALICE)
    session = new_session_uri()
    started = alice.start(binding.flow(ALICE, session))
    assert started.status_code == 302, (started.status_code, capsys.readouterr().out[-600:])
    capsys.readouterr()
    trace = f"Self=1-67891234-000000000000000000000001;Root={TRACE_ROOT};Parent=53995c3f42cd8ad8;Sampled=1"
    response = alice.client.get(
        "/oauth2/session-binding",
        params={"session_id": session, "state": binding.custom_states[session]},
        headers={**alice.headers(), "x-amzn-trace-id": trace},
    )
    assert response.status_code == 503
    assert response.headers["x-correlation-id"] == TRACE_ROOT
    lines = request_lines(capsys.readouterr().out)
    assert {line.get("logger", "emf") for line in lines} >= {"access", "security", "emf"}
    assert {line.get("correlation_id") for line in lines} == {TRACE_ROOT}


def test_agent_stream_lines_carry_one_id_per_request(agent_h: AgentHarness, capsys: pytest.CaptureFixture[str]) -> None:
    browser = agent_h.browser(ALICE)
    capsys.readouterr()
    response = browser.client.post("/api/chat", json={"message": "Who am I?", "history": []}, headers=browser.headers())
    assert response.status_code == 200
    generated = response.headers["x-correlation-id"]
    assert GENERATED.fullmatch(generated)  # no trace header (local run): a new id of the same shape
    lines = request_lines(capsys.readouterr().out)
    kinds = {line.get("message") for line in lines} | {
        m["Name"] for line in lines if "_aws" in line for m in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
    }
    assert {"authorization_prompted", "AuthorizationPrompts", "WorkloadTokenCacheMisses", "request"} <= kinds  # the SSE task's lines too
    assert {line.get("correlation_id") for line in lines} == {generated}
    second = browser.client.post("/api/chat", json={"message": "Again", "history": []}, headers=browser.headers())
    assert second.headers["x-correlation-id"] != generated


@pytest.mark.parametrize(
    "header",
    [
        "Root=1-67891233-ABCDEF012345678912345678",  # upper case: not the format
        "Root=1-67891233-abcdef0123456789123456789",  # one digit too many
        "Root=../../etc/passwd",
        "Root=" + TRACE_ROOT + ";" + "x" * 600,  # too long to be the ALB's
        "Root=1-67891233-abcdef01234567891234567\n8",
        "Sampled=1",
        "",
    ],
)
def test_a_malformed_trace_header_is_not_echoed(binding: BindingHarness, header: str) -> None:
    assert correlation_id_from(header) is None
    response = binding.browser(None).client.get("/health", headers={"x-amzn-trace-id": header} if "\n" not in header else {})
    assert GENERATED.fullmatch(response.headers["x-correlation-id"])
    assert response.headers["x-correlation-id"] != TRACE_ROOT


def test_every_response_keeps_its_security_headers_and_gains_only_the_id(binding: BindingHarness) -> None:
    response = binding.browser(None).client.get("/health", headers={"x-amzn-trace-id": f"Root={TRACE_ROOT}"})
    assert response.headers["x-correlation-id"] == TRACE_ROOT
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"


# --- health ------------------------------------------------------------------------------------


def test_health_calls_nothing_external(agent_h: AgentHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    """The load balancer's probe must stay green when AgentCore, Bedrock or the ALB key endpoint is down."""
    browser = agent_h.browser(None)  # started (lifespan ran) before the network is cut
    binding = agent_h.binding.browser(None)
    connects: list[object] = []

    def refuse(*args: object, **_kwargs: object) -> None:
        connects.append(args)
        raise OSError("no network in a health check")

    with monkeypatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket, "create_connection", refuse)
        for client in (browser.client, binding.client):
            response = client.get("/health")
            assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert connects == []
    assert agent_h.agentcore.calls == [] and agent_h.bedrock.requests == []
    assert agent_h.binding.key_server.total_fetches() == 0
