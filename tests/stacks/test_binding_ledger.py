"""The session binding ledger: one DynamoDB table under its own key, used by the binding service's role only."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Match

from stacks.constructs import binding_ledger
from tests.stacks.conftest import PROD, Synth, as_list, render, resources, statements, synth

LAMBDA = (("binding_compute", "lambda"),)
ITEM_ACTIONS = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]


def _id(template: dict[str, Any], resource_type: str, prefix: str) -> str:
    [found] = [k for k in resources(template, resource_type) if k.startswith(prefix)]
    return found


def _table(template: dict[str, Any]) -> dict[str, Any]:
    return dict(template["Resources"][_id(template, "AWS::DynamoDB::Table", "BindingLedgerTable")])


def _key(template: dict[str, Any]) -> dict[str, Any]:
    return dict(template["Resources"][_id(template, "AWS::KMS::Key", "BindingLedgerKey")])


def _binding_policy(template: dict[str, Any]) -> list[dict[str, Any]]:
    """The binding service's one customer-managed policy: `SessionBindingTaskPolicy` (Fargate) or `SessionBindingPolicy` (Lambda)."""
    [policy] = [
        p
        for k, p in resources(template, "AWS::IAM::ManagedPolicy").items()
        if k.startswith(("SessionBindingTaskPolicy", "SessionBindingPolicy"))
    ]
    return statements(policy)


def test_table_is_keyed_by_session_with_ttl_on_demand_under_its_own_key(demo: Synth) -> None:
    template = demo.raw("services")
    demo.template("services").has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [{"AttributeName": "session", "KeyType": "HASH"}],  # no sort key
            "AttributeDefinitions": [{"AttributeName": "session", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
            "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
            "SSESpecification": {
                "SSEEnabled": True,
                "SSEType": "KMS",
                "KMSMasterKeyId": {"Fn::GetAtt": [_id(template, "AWS::KMS::Key", "BindingLedgerKey"), "Arn"]},
            },
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": False},  # sandbox: destroy leaves nothing
            "TableName": Match.absent(),  # no physical name: replacements and parallel stacks never collide
            "GlobalSecondaryIndexes": Match.absent(),
            "LocalSecondaryIndexes": Match.absent(),
            "StreamSpecification": Match.absent(),
            "ProvisionedThroughput": Match.absent(),
        },
    )
    key = _key(template)["Properties"]
    assert key["EnableKeyRotation"] is True
    # The key policy is CDK's default: the account may delegate through IAM; no principal is named in it.
    [root] = key["KeyPolicy"]["Statement"]
    assert render(root["Principal"]) == {"AWS": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}
    assert (binding_ledger.PARTITION_KEY, binding_ledger.TTL_ATTRIBUTE) == ("session", "expires_at")


@pytest.mark.parametrize(
    ("shape", "policy", "protected", "pending_days"),
    [((), "Delete", False, 7), (PROD, "Retain", True, 30)],
    ids=["sandbox", "prod"],
)
def test_removal_follows_the_profile(shape: tuple[tuple[str, str], ...], policy: str, protected: bool, pending_days: int) -> None:
    recovery = protected  # point-in-time recovery in prod only: in sandbox it would leave a backup behind a destroy
    template = synth(shape).raw("services")
    table, key = _table(template), _key(template)
    assert (table.get("DeletionPolicy"), table.get("UpdateReplacePolicy")) == (policy, policy)
    assert table["Properties"].get("DeletionProtectionEnabled", False) is protected
    assert table["Properties"]["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": recovery}
    assert (key.get("DeletionPolicy"), key["Properties"]["PendingWindowInDays"]) == (policy, pending_days)


@pytest.mark.parametrize("shape", [(), LAMBDA, PROD], ids=["fargate", "lambda", "prod"])
def test_binding_role_gets_item_calls_on_the_table_and_decrypt_through_dynamodb_only(shape: tuple[tuple[str, str], ...]) -> None:
    template = synth(shape).raw("services")
    table, key = _id(template, "AWS::DynamoDB::Table", "BindingLedgerTable"), _id(template, "AWS::KMS::Key", "BindingLedgerKey")
    by_sid = {s.get("Sid"): s for s in _binding_policy(template)}
    assert by_sid["BindingLedgerItems"] == {
        "Sid": "BindingLedgerItems",
        "Effect": "Allow",
        "Action": ITEM_ACTIONS,
        "Resource": "${" + table + ".Arn}",  # the table itself: no index ARN, no wildcard
    }
    assert by_sid["BindingLedgerKeyViaDynamoDb"] == {
        "Sid": "BindingLedgerKeyViaDynamoDb",
        "Effect": "Allow",
        "Action": ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"],
        "Resource": "${" + key + ".Arn}",
        "Condition": {"StringEquals": {"kms:ViaService": "dynamodb.${AWS::Region}.amazonaws.com"}},
    }
    dynamodb = {a for s in _binding_policy(template) for a in as_list(s["Action"]) if a.startswith("dynamodb:")}
    assert dynamodb == set(ITEM_ACTIONS)  # no Scan, Query, BatchWriteItem, DescribeTable


def _other_grants_on_the_ledger(template: dict[str, Any]) -> list[str]:
    """Statements of any IAM policy but the binding service's that name the ledger table or its key."""
    ledger_ids = (_id(template, "AWS::DynamoDB::Table", "BindingLedgerTable"), _id(template, "AWS::KMS::Key", "BindingLedgerKey"))
    found = []
    policies = {**resources(template, "AWS::IAM::ManagedPolicy"), **resources(template, "AWS::IAM::Policy")}
    for name, policy in policies.items():
        if name.startswith(("SessionBindingTaskPolicy", "SessionBindingPolicy")):
            continue
        found += [f"{name}: {s}" for s in statements(policy) if any(i in str(s["Resource"]) for i in ledger_ids)]
    for name, role in resources(template, "AWS::IAM::Role").items():
        found += [f"{name}: inline" for p in role["Properties"].get("Policies", []) if any(i in str(render(p)) for i in ledger_ids)]
    return found


@pytest.mark.parametrize("shape", [(), LAMBDA, PROD], ids=["fargate", "lambda", "prod"])
def test_no_other_policy_names_the_ledger_or_its_key(shape: tuple[tuple[str, str], ...]) -> None:
    """The agent, the execution roles, the demo API and CDK's helpers get nothing on the table or its key."""
    assert _other_grants_on_the_ledger(synth(shape).raw("services")) == []


def test_the_ledger_check_sees_a_planted_grant() -> None:
    """Control: a policy granting the agent's task role a read on the ledger is found by the same check."""
    template = synth().raw("services")
    table = _id(template, "AWS::DynamoDB::Table", "BindingLedgerTable")
    template["Resources"]["Planted"] = {
        "Type": "AWS::IAM::Policy",
        "Properties": {
            "Roles": [{"Ref": _id(template, "AWS::IAM::Role", "AgentTaskRole")}],
            "PolicyDocument": {
                "Statement": [{"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": {"Fn::GetAtt": [table, "Arn"]}}]
            },
        },
    }
    assert len(_other_grants_on_the_ledger(template)) == 1


def test_every_shape_has_the_ledger(github: Synth) -> None:
    """The binding service exists for every provider, so its ledger does too."""
    assert _table(github.raw("services"))["Properties"]["KeySchema"] == [{"AttributeName": "session", "KeyType": "HASH"}]
