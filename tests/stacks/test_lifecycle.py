"""Teardown: sandbox leaves nothing behind; prod keeps its state and protects the ALB."""

from __future__ import annotations

from tests.stacks.conftest import Synth, one, resources

STACKS = ("network", "identity", "agent_identity", "services")
STATEFUL = (
    "AWS::Cognito::UserPool",
    "AWS::SecretsManager::Secret",
    "AWS::KMS::Key",
    "AWS::BedrockAgentCore::WorkloadIdentity",
    "AWS::BedrockAgentCore::OAuth2CredentialProvider",
    "AWS::S3::Bucket",
    "AWS::DynamoDB::Table",
)


def test_sandbox_retains_nothing(demo: Synth) -> None:
    for stack in STACKS:
        for logical_id, resource in demo.raw(stack)["Resources"].items():
            assert resource.get("DeletionPolicy", "Delete") == "Delete", f"{stack}/{logical_id} would survive cdk destroy"
            assert resource.get("UpdateReplacePolicy", "Delete") == "Delete", f"{stack}/{logical_id}"


def test_sandbox_bucket_empties_itself_and_pools_can_be_deleted(demo: Synth) -> None:
    services = demo.raw("services")
    bucket = one(services, "AWS::S3::Bucket")
    assert {"Key": "aws-cdk:auto-delete-objects", "Value": "true"} in bucket["Properties"]["Tags"]
    assert len(resources(services, "Custom::S3AutoDeleteObjects")) == 1
    for pool in resources(demo.raw("identity"), "AWS::Cognito::UserPool").values():
        assert pool["Properties"].get("DeletionProtection", "INACTIVE") == "INACTIVE"


def test_prod_retains_stateful_resources(prod: Synth) -> None:
    seen = set()
    for stack in STACKS:
        for logical_id, resource in prod.raw(stack)["Resources"].items():
            if resource["Type"] in STATEFUL or (resource["Type"] == "AWS::Logs::LogGroup" and "CallbackRegistration" not in logical_id):
                assert resource.get("DeletionPolicy") == "Retain", f"{stack}/{logical_id} ({resource['Type']})"
                seen.add(resource["Type"])
    assert seen >= set(STATEFUL) | {"AWS::Logs::LogGroup"}


def test_prod_alb_has_deletion_protection_and_stacks_termination_protection(prod: Synth) -> None:
    lb = one(prod.raw("services"), "AWS::ElasticLoadBalancingV2::LoadBalancer")["Properties"]
    attributes = {a["Key"]: a["Value"] for a in lb["LoadBalancerAttributes"]}
    assert attributes["deletion_protection.enabled"] == "true"
    assert all(getattr(prod.stacks, s).termination_protection for s in STACKS)
    bucket = one(prod.raw("services"), "AWS::S3::Bucket")
    assert not resources(prod.raw("services"), "Custom::S3AutoDeleteObjects")
    assert {"Key": "aws-cdk:auto-delete-objects", "Value": "true"} not in bucket["Properties"].get("Tags", [])


def test_keys_wait_seven_days_in_sandbox_thirty_in_prod(demo: Synth, prod: Synth) -> None:
    for synth_, days in ((demo, 7), (prod, 30)):
        for stack in ("network", "identity"):
            for key in resources(synth_.raw(stack), "AWS::KMS::Key").values():
                assert key["Properties"]["PendingWindowInDays"] == days


def test_prod_log_retention_is_a_year(prod: Synth) -> None:
    for group in resources(prod.raw("services"), "AWS::Logs::LogGroup").values():
        assert group["Properties"]["RetentionInDays"] == 365
