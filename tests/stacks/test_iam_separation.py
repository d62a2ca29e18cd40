"""The agent and the session binding service hold disjoint AgentCore permissions, whatever runs the binding.

Roles are found by following references in the template, not by logical id: the listener rule for a
path -> its target group -> the ECS service (its task definition's TaskRoleArn) or the Lambda target
(its Role) -> every policy whose `Roles` refers to that role, and the role's own inline and managed
policies. The agent can get workload and outbound tokens but never complete a consent; the binding
can complete a consent but never read a token. Neither has a wildcard action or resource for AgentCore.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.stacks.conftest import PROD, as_list, render, resources, synth

AGENT_AGENTCORE = {"bedrock-agentcore:GetWorkloadAccessTokenForUserId", "bedrock-agentcore:GetResourceOauth2Token"}
BINDING_AGENTCORE = {"bedrock-agentcore:CompleteResourceTokenAuth"}
TOKEN_READS = re.compile(r"^bedrock-agentcore:(GetWorkloadAccessToken.*|GetResourceOauth2Token|GetResourceApiKey)$")
AGENTCORE_ARN = re.compile(r"^arn:\$\{AWS::Partition\}:bedrock-agentcore:\$\{AWS::Region\}:\$\{AWS::AccountId\}:[A-Za-z0-9/_.-]+$")

SHAPES = {
    "fargate": (),
    "fargate-prod": PROD,
    "lambda": (("binding_compute", "lambda"),),
    "lambda-prod": (*PROD, ("binding_compute", "lambda")),
    "github": (
        ("provider", "github"),
        ("provider_client_id", "Iv1.0123456789abcdef"),
        ("provider_client_secret_name", "agent/github-oauth"),
    ),
}


def _ref(value: Any) -> str:
    """The logical id behind {"Ref": id} or {"Fn::GetAtt": [id, ...]}."""
    if isinstance(value, dict) and "Ref" in value:
        return str(value["Ref"])
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return str(value["Fn::GetAtt"][0])
    raise AssertionError(f"expected a Ref or Fn::GetAtt, got {value!r}")


def _target_group_for(template: dict[str, Any], path: str) -> str:
    for rule in resources(template, "AWS::ElasticLoadBalancingV2::ListenerRule").values():
        paths = [v for c in rule["Properties"]["Conditions"] for v in c.get("PathPatternConfig", {}).get("Values", [])]
        if path in paths:
            [forward] = [a for a in rule["Properties"]["Actions"] if a["Type"] == "forward"]
            return _ref(forward["TargetGroupArn"])
    raise AssertionError(f"no listener rule for {path}")


def _role_serving(template: dict[str, Any], path: str) -> tuple[str, str | None]:
    """(the role the code behind `path` runs as, the ECS execution role if it is a task)."""
    group_id = _target_group_for(template, path)
    group = template["Resources"][group_id]["Properties"]
    if group.get("TargetType") == "lambda":
        [target] = group["Targets"]
        function = template["Resources"][_ref(target["Id"])]
        assert function["Type"] == "AWS::Lambda::Function"
        return _ref(function["Properties"]["Role"]), None
    [service] = [
        s
        for s in resources(template, "AWS::ECS::Service").values()
        if group_id in {_ref(lb["TargetGroupArn"]) for lb in s["Properties"]["LoadBalancers"]}
    ]
    task = template["Resources"][_ref(service["Properties"]["TaskDefinition"])]["Properties"]
    return _ref(task["TaskRoleArn"]), _ref(task["ExecutionRoleArn"])


def _statements_of(template: dict[str, Any], role_id: str) -> list[dict[str, Any]]:
    """Every statement that applies to the role: its inline policies, attached managed policies, and policies naming it."""
    role = template["Resources"][role_id]
    assert role["Type"] == "AWS::IAM::Role"
    documents = [p["PolicyDocument"] for p in role["Properties"].get("Policies", [])]
    attached = {_ref(arn) for arn in role["Properties"].get("ManagedPolicyArns", []) if "Ref" in arn}
    for policy_id, policy in template["Resources"].items():
        if policy["Type"] not in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            continue
        if policy_id in attached or role_id in {_ref(r) for r in policy["Properties"].get("Roles", [])}:
            documents.append(policy["Properties"]["PolicyDocument"])
    return [render(s) for d in documents for s in d["Statement"]]


def _aws_managed_policies(template: dict[str, Any], role_id: str) -> list[str]:
    return [str(render(arn)) for arn in template["Resources"][role_id]["Properties"].get("ManagedPolicyArns", []) if "Ref" not in arn]


def _agentcore_actions(statements: list[dict[str, Any]]) -> set[str]:
    return {a for s in statements if s["Effect"] == "Allow" for a in as_list(s["Action"]) if a.startswith("bedrock-agentcore:")}


def _assert_no_wildcards(role: str, statements: list[dict[str, Any]]) -> None:
    for statement in statements:
        assert "NotAction" not in statement and "NotResource" not in statement, f"{role}: {statement}"
        actions = as_list(statement["Action"])
        assert not any("*" in a for a in actions), f"{role}: wildcard action in {actions}"
        if any(a.startswith("bedrock-agentcore:") for a in actions):
            for resource in as_list(statement["Resource"]):
                assert AGENTCORE_ARN.match(resource) and "*" not in resource, f"{role}: AgentCore resource {resource!r}"


@pytest.fixture(scope="module", params=list(SHAPES.values()), ids=list(SHAPES))
def services(request: pytest.FixtureRequest) -> dict[str, Any]:
    return synth(request.param).raw("services")


def test_agent_role_reads_tokens_and_cannot_complete_a_consent(services: dict[str, Any]) -> None:
    role, execution_role = _role_serving(services, "/api/*")
    statements = _statements_of(services, role)
    assert _agentcore_actions(statements) == AGENT_AGENTCORE
    assert "bedrock-agentcore:CompleteResourceTokenAuth" not in {a for s in statements for a in as_list(s["Action"])}
    _assert_no_wildcards("agent", statements)
    assert _aws_managed_policies(services, role) == []
    assert execution_role is not None
    assert _agentcore_actions(_statements_of(services, execution_role)) == set()


def test_binding_role_completes_consents_and_cannot_read_a_token(services: dict[str, Any]) -> None:
    role, execution_role = _role_serving(services, "/oauth2/session-binding")
    statements = _statements_of(services, role)
    actions = {a for s in statements for a in as_list(s["Action"])}
    assert _agentcore_actions(statements) == BINDING_AGENTCORE
    assert not {a for a in actions if TOKEN_READS.match(a)}
    assert not {a for a in actions if a.startswith("bedrock:")}, "the binding service calls no model"
    _assert_no_wildcards("session binding", statements)
    assert _aws_managed_policies(services, role) == []
    if execution_role is not None:
        assert _agentcore_actions(_statements_of(services, execution_role)) == set()


def test_the_two_roles_are_different_and_no_other_role_touches_agentcore(services: dict[str, Any]) -> None:
    agent, _ = _role_serving(services, "/api/*")
    binding, _ = _role_serving(services, "/oauth2/session-binding")
    assert agent != binding
    others = {
        r: _agentcore_actions(_statements_of(services, r)) for r in resources(services, "AWS::IAM::Role") if r not in (agent, binding)
    }
    assert {r: a for r, a in others.items() if a} == {}
    managed = [arn for r in resources(services, "AWS::IAM::Role") for arn in _aws_managed_policies(services, r)]
    assert not [arn for arn in managed if "AgentCore" in arn or "Bedrock" in arn]


def _ledger_ids(template: dict[str, Any]) -> tuple[str, str]:
    [table] = [k for k in resources(template, "AWS::DynamoDB::Table") if k.startswith("BindingLedgerTable")]
    [key] = [k for k in resources(template, "AWS::KMS::Key") if k.startswith("BindingLedgerKey")]
    return table, key


def test_only_the_binding_role_reaches_the_ledger(services: dict[str, Any]) -> None:
    """The binding role: item calls on the ledger table only. The agent role (and its execution role): no DynamoDB
    action on it, and no use of its key."""
    table, key = _ledger_ids(services)
    binding, _ = _role_serving(services, "/oauth2/session-binding")
    on_table = [s for s in _statements_of(services, binding) if table in str(s["Resource"])]
    assert [(sorted(as_list(s["Action"])), s["Resource"]) for s in on_table] == [
        (
            ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
            "${" + table + ".Arn}",
        )
    ]
    agent, execution_role = _role_serving(services, "/api/*")
    for role in (agent, execution_role):
        assert role is not None
        granted = _statements_of(services, role)
        assert not [s for s in granted if table in str(s["Resource"]) or key in str(s["Resource"])]
        assert not [a for s in granted for a in as_list(s["Action"]) if a.startswith("dynamodb:")]


def test_the_role_walk_sees_a_forbidden_grant() -> None:
    """Control: a statement granting CompleteResourceTokenAuth to the agent role is found by the same walk."""
    template = synth().raw("services")
    role, _ = _role_serving(template, "/api/*")
    template["Resources"]["Planted"] = {
        "Type": "AWS::IAM::Policy",
        "Properties": {
            "Roles": [{"Ref": role}],
            "PolicyDocument": {"Statement": [{"Effect": "Allow", "Action": "bedrock-agentcore:*", "Resource": "*"}]},
        },
    }
    statements = _statements_of(template, role)
    assert "bedrock-agentcore:*" in _agentcore_actions(statements)
    with pytest.raises(AssertionError, match="wildcard action"):
        _assert_no_wildcards("agent", statements)
