"""Threats in docs/security/threat-model.md that no other test covered directly.

* A cross-site page driving the chat API with a request a browser sends without a CORS preflight.
* The session binding function (`binding_compute=lambda`) invoked through a target group in another account.
"""

from __future__ import annotations

import json

import pytest

from tests.services.conftest import ALICE, AgentHarness
from tests.stacks.conftest import render, resources, synth

EVIL_ORIGIN = "https://evil.example"

# The content types a cross-site form or a `no-cors` fetch may send without a CORS preflight.
SIMPLE_CONTENT_TYPES = ("text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x")


@pytest.mark.parametrize("content_type", SIMPLE_CONTENT_TYPES)
def test_a_cross_site_simple_request_cannot_start_a_chat(agent: AgentHarness, content_type: str) -> None:
    # The browser attaches the ALB session cookie, so the ALB signs Alice in: only the media type stands in the way.
    browser = agent.browser(ALICE)
    headers = {**browser.headers(), "content-type": content_type, "origin": EVIL_ORIGIN}
    response = browser.client.post("/api/chat", content=json.dumps({"message": "add a note: pwned"}), headers=headers)
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"
    assert agent.bedrock.requests == [] and agent.agentcore.calls == []


def test_a_cors_preflight_from_another_origin_is_not_granted(agent: AgentHarness) -> None:
    # application/json needs a preflight; without an Access-Control-Allow-Origin answer the browser never sends the POST.
    browser = agent.browser(ALICE)
    preflight = browser.client.options(
        "/api/chat",
        headers={
            **browser.headers(),
            "origin": EVIL_ORIGIN,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type",
        },
    )
    assert preflight.status_code >= 400
    assert not [name for name in preflight.headers if name.lower().startswith("access-control-")]
    assert agent.bedrock.requests == [] and agent.agentcore.calls == []


def test_only_this_accounts_target_groups_may_invoke_the_binding_function() -> None:
    template = synth((("binding_compute", "lambda"),)).raw("services")
    [function_id] = [
        name
        for name, f in resources(template, "AWS::Lambda::Function").items()
        if "Session binding" in f["Properties"].get("Description", "")
    ]
    permissions = [
        p["Properties"]
        for p in resources(template, "AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == {"Fn::GetAtt": [function_id, "Arn"]}
    ]
    assert permissions, "the load balancer must be allowed to invoke the function"
    for permission in permissions:
        assert permission["Principal"] == "elasticloadbalancing.amazonaws.com"
        assert (
            render(permission["SourceArn"]) == "arn:${AWS::Partition}:elasticloadbalancing:${AWS::Region}:${AWS::AccountId}:targetgroup/*"
        )
