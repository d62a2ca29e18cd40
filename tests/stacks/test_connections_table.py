"""The connections registry's table: one DynamoDB table under its own key, with an exact grant for each of the two
services that use it (stacks/constructs/connections_table.py) and nothing for any other role."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Match

from stacks.constructs import connections_table
from tests.stacks.conftest import GITHUB, PROD, Synth, as_list, render, resources, statements, synth

LAMBDA = (("binding_compute", "lambda"),)
SHAPES = {"fargate": (), "lambda": LAMBDA, "prod": PROD, "lambda-prod": (*PROD, *LAMBDA), "github": GITHUB}
AGENT_ACTIONS = ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"]
BINDING_ACTIONS = ["dynamodb:UpdateItem"]
KEY_ACTIONS = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"]
# The one customer-managed policy of each service that may use the table (Fargate task, or the Lambda function).
AGENT_POLICY = ("AgentTaskPolicy",)
BINDING_POLICY = ("SessionBindingTaskPolicy", "SessionBindingPolicy")


def _id(template: dict[str, Any], resource_type: str, prefix: str) -> str:
    [found] = [k for k in resources(template, resource_type) if k.startswith(prefix)]
    return found


def _ids(template: dict[str, Any]) -> tuple[str, str]:
    return _id(template, "AWS::DynamoDB::Table", "ConnectionsTable"), _id(template, "AWS::KMS::Key", "ConnectionsKey")


def _policy(template: dict[str, Any], prefixes: tuple[str, ...]) -> list[dict[str, Any]]:
    [policy] = [p for k, p in resources(template, "AWS::IAM::ManagedPolicy").items() if k.startswith(prefixes)]
    return statements(policy)


def test_table_is_keyed_by_user_and_provider_on_demand_without_ttl_under_its_own_key(demo: Synth) -> None:
    template = demo.raw("services")
    table, key = _ids(template)
    demo.template("services").has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [{"AttributeName": "user", "KeyType": "HASH"}, {"AttributeName": "provider", "KeyType": "RANGE"}],
            "AttributeDefinitions": [{"AttributeName": "user", "AttributeType": "S"}, {"AttributeName": "provider", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
            "TimeToLiveSpecification": Match.absent(),  # kept until the person's data is removed
            "SSESpecification": {"SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": {"Fn::GetAtt": [key, "Arn"]}},
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": False},  # sandbox: destroy leaves nothing
            "TableName": Match.absent(),  # no physical name: replacements and parallel stacks never collide
            "GlobalSecondaryIndexes": Match.absent(),
            "LocalSecondaryIndexes": Match.absent(),
            "StreamSpecification": Match.absent(),
            "ProvisionedThroughput": Match.absent(),
        },
    )
    assert template["Resources"][table]["Properties"]["KeySchema"][0]["AttributeName"] == "user"
    properties = template["Resources"][key]["Properties"]
    assert properties["EnableKeyRotation"] is True
    [root] = properties["KeyPolicy"]["Statement"]  # CDK's default: IAM decides, no principal named in the key policy
    assert render(root["Principal"]) == {"AWS": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}
    assert (connections_table.PARTITION_KEY, connections_table.SORT_KEY) == ("user", "provider")


@pytest.mark.parametrize(
    ("shape", "policy", "protected", "pending_days"),
    [((), "Delete", False, 7), (PROD, "Retain", True, 30)],
    ids=["sandbox", "prod"],
)
def test_removal_follows_the_profile(shape: tuple[tuple[str, str], ...], policy: str, protected: bool, pending_days: int) -> None:
    template = synth(shape).raw("services")
    table_id, key_id = _ids(template)
    table, key = template["Resources"][table_id], template["Resources"][key_id]
    assert (table.get("DeletionPolicy"), table.get("UpdateReplacePolicy")) == (policy, policy)
    assert table["Properties"].get("DeletionProtectionEnabled", False) is protected
    assert table["Properties"]["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": protected}
    assert (key.get("DeletionPolicy"), key["Properties"]["PendingWindowInDays"]) == (policy, pending_days)


def _grant(stmts: list[dict[str, Any]], table: str, key: str) -> list[dict[str, Any]]:
    """The statements of a policy that name the table or its key, actions as lists."""
    return [s | {"Action": as_list(s["Action"])} for s in stmts if table in str(s["Resource"]) or key in str(s["Resource"])]


def _expected(actions: list[str], table: str, key: str) -> list[dict[str, Any]]:
    return [
        {"Sid": "ConnectionsItems", "Effect": "Allow", "Action": actions, "Resource": "${" + table + ".Arn}"},
        {
            "Sid": "ConnectionsKeyViaDynamoDb",
            "Effect": "Allow",
            "Action": KEY_ACTIONS,
            "Resource": "${" + key + ".Arn}",
            "Condition": {"StringEquals": {"kms:ViaService": "dynamodb.${AWS::Region}.amazonaws.com"}},
        },
    ]


@pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
def test_each_service_gets_exactly_its_item_calls_on_the_table_and_the_key_through_dynamodb(shape: tuple[tuple[str, str], ...]) -> None:
    template = synth(shape).raw("services")
    table, key = _ids(template)
    assert _grant(_policy(template, AGENT_POLICY), table, key) == _expected(AGENT_ACTIONS, table, key)
    assert _grant(_policy(template, BINDING_POLICY), table, key) == _expected(BINDING_ACTIONS, table, key)
    assert (list(connections_table.AGENT_ACTIONS), list(connections_table.BINDING_ACTIONS)) == (AGENT_ACTIONS, BINDING_ACTIONS)


def _other_grants(template: dict[str, Any], ids: tuple[str, ...]) -> list[str]:
    """Statements of any IAM policy but the agent's and the binding service's that name one of `ids`."""
    found = []
    policies = {**resources(template, "AWS::IAM::ManagedPolicy"), **resources(template, "AWS::IAM::Policy")}
    for name, policy in policies.items():
        if name.startswith(AGENT_POLICY + BINDING_POLICY):
            continue
        found += [f"{name}: {s}" for s in statements(policy) if any(i in str(s["Resource"]) for i in ids)]
    for name, role in resources(template, "AWS::IAM::Role").items():
        found += [f"{name}: inline" for p in role["Properties"].get("Policies", []) if any(i in str(render(p)) for i in ids)]
    return found


@pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
def test_no_other_policy_names_the_table_or_its_key(shape: tuple[tuple[str, str], ...]) -> None:
    """The execution roles, the demo API's function, the deploy-time helpers: nothing on the table or its key."""
    assert _other_grants(synth(shape).raw("services"), _ids(synth(shape).raw("services"))) == []


def test_the_check_sees_a_planted_grant() -> None:
    """Control: a policy granting the demo API's role a read of the registry is found by the same check."""
    template = synth().raw("services")
    table, key = _ids(template)
    template["Resources"]["Planted"] = {
        "Type": "AWS::IAM::Policy",
        "Properties": {
            "Roles": [{"Ref": _id(template, "AWS::IAM::Role", "DemoApi")}],
            "PolicyDocument": {"Statement": [{"Effect": "Allow", "Action": "dynamodb:Query", "Resource": {"Fn::GetAtt": [table, "Arn"]}}]},
        },
    }
    assert len(_other_grants(template, (table, key))) == 1
