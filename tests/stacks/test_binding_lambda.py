"""`binding_compute=lambda`: the session binding service as an ALB Lambda target, same rules and role."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cdk_app.config import ConfigError, load_config
from tests.stacks.conftest import Synth, as_list, image_assets, one, render, resources, statements, synth
from tests.stacks.test_services import _by_action, _rules, _target_of

LAMBDA = (("binding_compute", "lambda"),)


@pytest.fixture(scope="module")
def on_lambda() -> Synth:
    return synth(LAMBDA)


def _binding_function(template: dict[str, Any]) -> dict[str, Any]:
    [function] = [
        f for f in resources(template, "AWS::Lambda::Function").values() if "Session binding" in f["Properties"].get("Description", "")
    ]
    return function


def test_binding_runs_as_an_image_function_reading_its_key_from_secrets_manager(on_lambda: Synth) -> None:
    template = on_lambda.raw("services")
    function = _binding_function(template)["Properties"]
    assert function["PackageType"] == "Image"
    assert function["Architectures"] == ["x86_64"]
    assert function["ReservedConcurrentExecutions"] == 20
    assert function["Timeout"] == 20
    env = function["Environment"]["Variables"]
    assert "FLOW_SIGNING_KEYS" not in env  # never a plain environment variable
    assert render(env["FLOW_SIGNING_KEYS_SECRET_ARN"]).startswith("${Import:")
    assert env["BINDING_MODE"] == "same-browser" and "ALB_ARN" in env and "OIDC_ISSUER" in env
    assert (env["REQUIRE_CUSTOM_STATE"], env["CUSTOM_STATE_PARAM"]) == ("true", "state")
    [ledger] = [k for k in resources(template, "AWS::DynamoDB::Table") if k.startswith("BindingLedgerTable")]
    assert env["BINDING_TABLE"] == {"Ref": ledger}  # every instance shares one ledger
    [connections] = [k for k in resources(template, "AWS::DynamoDB::Table") if k.startswith("ConnectionsTable")]
    assert env["CONNECTIONS_TABLE"] == {"Ref": connections}  # and records consents in the registry the agent reads
    # Only the agent remains on ECS.
    assert len(resources(template, "AWS::ECS::Service")) == 1


def test_the_image_is_the_lambda_dockerfile_of_the_same_service(on_lambda: Synth) -> None:
    images = image_assets(Path(on_lambda.app.synth().directory))
    assert any(
        img.get("dockerFile") == "Dockerfile"
        and img.get("dockerBuildTarget") == "lambda"
        and img.get("dockerBuildArgs") == {"SERVICE": "session_binding"}
        and img.get("platform") == "linux/amd64"
        for img in images
    )


def test_same_listener_rule_with_sign_in_then_the_lambda_target(on_lambda: Synth) -> None:
    template = on_lambda.raw("services")
    [binding_rule] = [r for r in _rules(template) if r["Priority"] == 10]
    values = binding_rule["Conditions"][0]["PathPatternConfig"]["Values"]
    assert values == ["/oauth2/start", "/oauth2/session-binding"]
    assert [a["Type"] for a in binding_rule["Actions"]] == ["authenticate-cognito", "forward"]
    group = template["Resources"][_target_of(binding_rule)]["Properties"]
    assert group["TargetType"] == "lambda"
    assert {"Key": "lambda.multi_value_headers.enabled", "Value": "true"} in group["TargetGroupAttributes"]
    function_id = next(
        name
        for name, f in resources(template, "AWS::Lambda::Function").items()
        if "Session binding" in f["Properties"].get("Description", "")
    )
    [permission] = [
        p
        for p in resources(template, "AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == {"Fn::GetAtt": [function_id, "Arn"]}
    ]
    assert permission["Properties"]["Principal"] == "elasticloadbalancing.amazonaws.com"


def test_the_function_role_can_only_complete_consent_read_its_key_and_use_its_ledger(on_lambda: Synth) -> None:
    template = on_lambda.raw("services")
    [policy] = [p for name, p in resources(template, "AWS::IAM::ManagedPolicy").items() if name.startswith("SessionBindingPolicy")]
    actions = _by_action(statements(policy))
    assert set(actions) == {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "bedrock-agentcore:CompleteResourceTokenAuth",
        "secretsmanager:GetSecretValue",
        "kms:Decrypt",
        "kms:DescribeKey",
        "kms:Encrypt",
        "kms:GenerateDataKey",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
    }
    reads = actions["secretsmanager:GetSecretValue"]
    assert len(reads) == 2  # the provider secret only via AgentCore; the signing key directly, by exact ARN
    direct = [s for s in reads if "Condition" not in s]
    assert len(direct) == 1 and render(as_list(direct[0]["Resource"])[0]).startswith("${Import:")
    [table] = [k for k in resources(template, "AWS::DynamoDB::Table") if k.startswith("ConnectionsTable")]
    [key] = [k for k in resources(template, "AWS::KMS::Key") if k.startswith("ConnectionsKey")]
    # On the connections registry: UpdateItem alone (no read, no Query), and its key only through DynamoDB.
    assert [s for s in statements(policy) if table in str(s["Resource"]) or key in str(s["Resource"])] == [
        {"Sid": "ConnectionsItems", "Effect": "Allow", "Action": "dynamodb:UpdateItem", "Resource": "${" + table + ".Arn}"},
        {
            "Sid": "ConnectionsKeyViaDynamoDb",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"],
            "Resource": "${" + key + ".Arn}",
            "Condition": {"StringEquals": {"kms:ViaService": "dynamodb.${AWS::Region}.amazonaws.com"}},
        },
    ]
    assert [render(s["Resource"]) for s in actions["dynamodb:GetItem"]] == [
        "${" + next(k for k in resources(template, "AWS::DynamoDB::Table") if k.startswith("BindingLedgerTable")) + ".Arn}"
    ]  # GetItem and PutItem on the ledger only
    assert len(actions["dynamodb:PutItem"]) == 1 and table not in str(actions["dynamodb:PutItem"])
    logs = actions["logs:CreateLogStream"][0]
    assert "*" not in render(as_list(logs["Resource"])[0])
    role = one(template, "AWS::IAM::Role", "SessionBindingRole")
    assert role["Properties"].get("ManagedPolicyArns") in (None, [])  # no AWS managed policies


def test_fargate_stays_the_default(demo: Synth) -> None:
    assert len(resources(demo.raw("services"), "AWS::ECS::Service")) == 2


def test_bad_value_is_a_one_line_config_error() -> None:
    from tests.stacks.conftest import context_with

    with pytest.raises(ConfigError, match="binding_compute': expected one of fargate, lambda; got 'ec2'"):
        load_config(context_with((("binding_compute", "ec2"),)))
