"""The agent and the session binding service hold disjoint AgentCore permissions, whatever runs the binding.

Roles are found by following references in the template, not by logical id: the listener rule for a
path -> its target group -> the ECS service (its task definition's TaskRoleArn) or the Lambda target
(its Role) -> every policy whose `Roles` refers to that role, and the role's own inline and managed
policies. The agent can get workload and outbound tokens but never complete a consent; the binding
can complete a consent but never read a token. Neither has a wildcard action or resource for AgentCore.
Of the tables: only the binding role reaches the sessions ledger; the connections registry is reached by
the agent (GetItem, Query, UpdateItem) and the binding role (UpdateItem) only, each with exactly those calls.
Of the providers' client secrets: every role reads them only through AgentCore (aws:ViaAWSService), except the
agent's, which reads itself exactly the secrets of the providers with `revoke_on_disconnect` on.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from cdk_app.config import load_config
from tests.stacks.conftest import GITHUB, PROD, THREE, THREE_REVOKING, as_list, context_with, render, resources, synth

AGENT_AGENTCORE = {"bedrock-agentcore:GetWorkloadAccessTokenForUserId", "bedrock-agentcore:GetResourceOauth2Token"}
BINDING_AGENTCORE = {"bedrock-agentcore:CompleteResourceTokenAuth"}
TOKEN_READS = re.compile(r"^bedrock-agentcore:(GetWorkloadAccessToken.*|GetResourceOauth2Token|GetResourceApiKey)$")
AGENTCORE_ARN = re.compile(r"^arn:\$\{AWS::Partition\}:bedrock-agentcore:\$\{AWS::Region\}:\$\{AWS::AccountId\}:[A-Za-z0-9/_.-]+$")

SHAPES = {
    "fargate": (),
    "fargate-prod": PROD,
    "lambda": (("binding_compute", "lambda"),),
    "lambda-prod": (*PROD, ("binding_compute", "lambda")),
    "github": GITHUB,
    "three-providers": THREE,
    "three-providers-lambda": (*THREE, ("binding_compute", "lambda")),
    "three-providers-revoking": THREE_REVOKING,
    "three-providers-revoking-lambda": (*THREE_REVOKING, ("binding_compute", "lambda")),
}
SECRET_ARN = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"


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
def shape(request: pytest.FixtureRequest) -> tuple[tuple[str, Any], ...]:
    return tuple(request.param)


@pytest.fixture(scope="module")
def services(shape: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    return synth(shape).raw("services")


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


def _table_ids(template: dict[str, Any], prefix: str) -> tuple[str, str]:
    """(table, key) of the construct whose logical ids start with `prefix`."""
    [table] = [k for k in resources(template, "AWS::DynamoDB::Table") if k.startswith(f"{prefix}Table")]
    [key] = [k for k in resources(template, "AWS::KMS::Key") if k.startswith(f"{prefix}Key")]
    return table, key


def _ledger_ids(template: dict[str, Any]) -> tuple[str, str]:
    return _table_ids(template, "BindingLedger")


def _connections_ids(template: dict[str, Any]) -> tuple[str, str]:
    return _table_ids(template, "Connections")


def _on(statements: list[dict[str, Any]], *ids: str) -> list[dict[str, Any]]:
    return [s for s in statements if any(i in str(s["Resource"]) for i in ids)]


def _demo_api_role(template: dict[str, Any]) -> str | None:
    """The role of the function whose environment names the notes table (the demo API), if the shape has one."""
    roles = [
        _ref(f["Properties"]["Role"])
        for f in resources(template, "AWS::Lambda::Function").values()
        if "NOTES_TABLE" in f["Properties"].get("Environment", {}).get("Variables", {})
    ]
    assert len(roles) <= 1
    return roles[0] if roles else None


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
    connections_table, _ = _connections_ids(services)
    for role in (agent, execution_role):
        assert role is not None
        granted = _statements_of(services, role)
        assert not _on(granted, table, key)
        # Its only DynamoDB statement is on the connections table (test_each_role_has_exactly_its_calls_on_the_connections_table).
        dynamodb = [s for s in granted if any(a.startswith("dynamodb:") for a in as_list(s["Action"]))]
        assert [s["Resource"] for s in dynamodb if s["Resource"] != "${" + connections_table + ".Arn}"] == []


CONNECTIONS_KEY_ACTIONS = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"]


def _connections_grant(template: dict[str, Any], role: str) -> list[tuple[list[str], str, Any]]:
    """(sorted actions, resource, condition) of each statement that applies to `role` and names the table or its key."""
    table, key = _connections_ids(template)
    return [(sorted(as_list(s["Action"])), s["Resource"], s.get("Condition")) for s in _on(_statements_of(template, role), table, key)]


def _expected_connections_grant(template: dict[str, Any], item_actions: list[str]) -> list[tuple[list[str], str, Any]]:
    table, key = _connections_ids(template)
    via_dynamodb = {"StringEquals": {"kms:ViaService": "dynamodb.${AWS::Region}.amazonaws.com"}}
    return [(item_actions, "${" + table + ".Arn}", None), (CONNECTIONS_KEY_ACTIONS, "${" + key + ".Arn}", via_dynamodb)]


def test_each_role_has_exactly_its_calls_on_the_connections_table(services: dict[str, Any]) -> None:
    """The agent: GetItem, Query, UpdateItem; the binding service (task or function): UpdateItem; both on the table ARN
    only, and its key only through DynamoDB. The execution roles and the demo API's role: nothing on the table or its key."""
    agent, agent_execution = _role_serving(services, "/api/*")
    binding, binding_execution = _role_serving(services, "/oauth2/session-binding")
    assert _connections_grant(services, agent) == _expected_connections_grant(
        services, ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"]
    )
    assert _connections_grant(services, binding) == _expected_connections_grant(services, ["dynamodb:UpdateItem"])
    others = [r for r in resources(services, "AWS::IAM::Role") if r not in (agent, binding)]
    assert {agent_execution, binding_execution, _demo_api_role(services)} - {None} <= set(others)
    assert {r: _connections_grant(services, r) for r in others} == {r: [] for r in others}


def test_the_demo_api_role_reaches_neither_service_table() -> None:
    """The demo API's function may use its notes table only: nothing on the ledger or the connections registry."""
    template = synth().raw("services")
    role = _demo_api_role(template)
    assert role is not None
    granted = _statements_of(template, role)
    assert _on(granted, *_ledger_ids(template), *_connections_ids(template)) == []


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


def _reads_of_client_secrets(statements: list[dict[str, Any]], secrets: set[str]) -> tuple[list[str], list[str]]:
    """(resources read only through an AWS service, resources read directly) among `secrets` (IAM ARNs)."""
    through_service: list[str] = []
    direct: list[str] = []
    for s in statements:
        if "secretsmanager:GetSecretValue" not in as_list(s["Action"]):
            continue
        via_service = s.get("Condition") == {"Bool": {"aws:ViaAWSService": "true"}}
        named = [r for r in as_list(s["Resource"]) if r in secrets or "AgentCoreClient" in r]
        (through_service if via_service else direct).extend(named)
    return through_service, direct


def test_only_the_agent_reads_a_client_secret_itself_and_only_to_revoke(
    shape: tuple[tuple[str, Any], ...], services: dict[str, Any]
) -> None:
    """Without revoke_on_disconnect no role reads a provider's client secret other than through AgentCore. With it,
    the agent's role (and no other: not the binding's, not an execution role) reads exactly those providers' secrets,
    each by its name and the six-character suffix Secrets Manager appends."""
    config = load_config(context_with(shape))
    named = {p: f"{SECRET_ARN}{p.client_secret_name}-??????" for p in config.providers if p.client_secret_name}
    revoking = sorted(arn for p, arn in named.items() if p.revoke_on_disconnect)
    agent, _ = _role_serving(services, "/api/*")
    binding, _ = _role_serving(services, "/oauth2/session-binding")
    for role in resources(services, "AWS::IAM::Role"):
        _, direct = _reads_of_client_secrets(_statements_of(services, role), set(named.values()))
        assert sorted(direct) == (revoking if role == agent else []), role
    for role in (agent, binding):  # AgentCore's reads on each caller's behalf stay as they are
        through_service, _ = _reads_of_client_secrets(_statements_of(services, role), set(named.values()))
        assert len(through_service) == len(config.providers)
