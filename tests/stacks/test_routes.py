"""One routing definition (cdk_app/routes.py) for the deployed listener and the local ALB."""

from __future__ import annotations

from typing import Any

import pytest

from cdk_app.routes import ROUTES, SIGN_IN_SCOPE, SIGN_IN_SESSION_TIMEOUT_S, Route, SignIn, Target, route_for
from tests.stacks.conftest import Synth, resources

TARGET_GROUP = {Target.AGENT: "AgentTargetGroup", Target.SESSION_BINDING: "SessionBindingTargetGroup"}


def _listener_rules(template: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {r["Properties"]["Priority"]: r["Properties"] for r in resources(template, "AWS::ElasticLoadBalancingV2::ListenerRule").values()}


@pytest.mark.parametrize("shape", ["demo", "prod"])
def test_the_synthesized_listener_is_the_shared_route_table(shape: str, request: pytest.FixtureRequest) -> None:
    synth: Synth = request.getfixturevalue(shape)
    rules = _listener_rules(synth.raw("services"))
    assert sorted(rules) == sorted(r.priority for r in ROUTES)
    for route in ROUTES:
        rule = rules[route.priority]
        conditions = {c["Field"]: c for c in rule["Conditions"]}
        assert conditions["path-pattern"]["PathPatternConfig"]["Values"] == list(route.paths)
        methods = conditions.get("http-request-method", {}).get("HttpRequestMethodConfig", {}).get("Values", [])
        assert methods == list(route.methods)
        actions = sorted(rule["Actions"], key=lambda a: a.get("Order", 0))
        forward = actions[-1]
        assert forward["Type"] == "forward"
        assert forward["TargetGroupArn"]["Ref"].startswith(TARGET_GROUP[route.target]), route.name
        if route.sign_in is SignIn.NONE:
            assert len(actions) == 1, route.name
        else:
            cognito = actions[0]["AuthenticateCognitoConfig"]
            assert cognito["OnUnauthenticatedRequest"] == route.sign_in.value
            assert cognito["Scope"] == SIGN_IN_SCOPE
            assert int(cognito["SessionTimeout"]) == SIGN_IN_SESSION_TIMEOUT_S


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/health", "Health"),
        ("HEAD", "/health", "AgentUi"),  # the health rule is GET only
        ("POST", "/health", "AgentUi"),
        ("GET", "/oauth2/start", "SessionBinding"),
        ("GET", "/oauth2/session-binding", "SessionBinding"),
        ("POST", "/oauth2/session-binding", "SessionBinding"),
        ("GET", "/oauth2/start/", "AgentUi"),  # exact paths: a trailing slash is another path
        ("GET", "/OAUTH2/START", "AgentUi"),  # path patterns are case-sensitive
        ("GET", "/oauth2/session-bindingX", "AgentUi"),
        ("POST", "/api/chat", "AgentApi"),
        ("GET", "/api/", "AgentApi"),
        ("GET", "/api", "AgentUi"),
        ("GET", "/", "AgentUi"),
        ("GET", "/static/app.js", "AgentUi"),
        ("GET", "/a\nb", "AgentUi"),  # `*` spans any character, as the ALB's does
    ],
)
def test_route_for_matches_like_alb_path_patterns(method: str, path: str, expected: str) -> None:
    route = route_for(path, method)
    assert route is not None and route.name == expected


def test_a_path_no_rule_matches_gets_the_default_action() -> None:
    assert route_for("", "GET") is None
    assert route_for("no-leading-slash", "GET") is None


def test_question_mark_is_one_character() -> None:
    route = Route("Q", 1, ("/a?c",), Target.AGENT, SignIn.NONE)
    assert route.matches("/abc", "GET")
    assert not route.matches("/ac", "GET")
    assert not route.matches("/abbc", "GET")


@pytest.mark.parametrize(
    ("paths", "methods", "problem"),
    [
        ((), (), "at least one path pattern"),
        (("/a", "/b", "/c", "/d"), ("GET", "POST"), "condition values"),
        (("/*/*/*", "/*/*/*"), (), "wildcards"),
        (("/" + "a" * 128,), (), "not an ALB path pattern"),
        (("/a b",), (), "not an ALB path pattern"),
        (("/ü",), (), "not an ALB path pattern"),
    ],
)
def test_a_rule_the_alb_would_refuse_fails_at_definition(paths: tuple[str, ...], methods: tuple[str, ...], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Route("Bad", 40, paths, Target.AGENT, SignIn.NONE, methods=methods)
