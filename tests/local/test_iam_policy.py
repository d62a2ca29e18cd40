"""The offline IAM evaluator (`local/iam/policy.py`) on the statement shapes the app synthesizes, and against moto's."""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any

import pytest
from moto.iam.access_control import IAMPolicy, PermissionResult

from local.iam.policy import Decision, Statement, UnsupportedPolicy, denial_reason, evaluate

ACCOUNT = "123456789012"
DIRECTORY = f"arn:aws:bedrock-agentcore:us-east-1:{ACCOUNT}:workload-identity-directory/default"
WORKLOAD = f"{DIRECTORY}/workload-identity/agentcore-ecs-sandbox-agent"
VAULT = f"arn:aws:bedrock-agentcore:us-east-1:{ACCOUNT}:token-vault/default"
PROVIDER = f"{VAULT}/oauth2credentialprovider/agentcore-ecs-sandbox-demo"
SECRET = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:DemoClientSecret-AbCdEf"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
PROFILE = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:inference-profile/us.anthropic.claude-haiku-4-5-20251001-v1:0"
MODEL = "arn:aws:bedrock:*::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0"
TABLE = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/ledger"

# The statements as synthesized (tests/stacks), with the CloudFormation intrinsics resolved.
WORKLOAD_TOKEN = {
    "Sid": "WorkloadAccessTokenPerUser",
    "Effect": "Allow",
    "Action": "bedrock-agentcore:GetWorkloadAccessTokenForUserId",
    "Resource": [DIRECTORY, WORKLOAD],
}
OAUTH_TOKEN = {
    "Sid": "OutboundOAuthToken",
    "Effect": "Allow",
    "Action": "bedrock-agentcore:GetResourceOauth2Token",
    "Resource": [VAULT, PROVIDER, DIRECTORY, WORKLOAD],
}
SECRET_VALUE = {
    "Effect": "Allow",
    "Action": "secretsmanager:GetSecretValue",
    "Condition": {"Bool": {"aws:ViaAWSService": "true"}},
    "Resource": SECRET,
}
KMS_DECRYPT = {
    "Effect": "Allow",
    "Action": "kms:Decrypt",
    "Condition": {"StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}},
    "Resource": KEY,
}
INVOKE_MODEL = {"Sid": "InvokeConfiguredModel", "Effect": "Allow", "Action": "bedrock:InvokeModel", "Resource": [PROFILE, MODEL]}
LEDGER = {
    "Sid": "BindingLedgerItems",
    "Effect": "Allow",
    "Action": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
    "Resource": TABLE,
}
ECR_TOKEN = {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}
SHAPES: list[dict[str, Any]] = [WORKLOAD_TOKEN, OAUTH_TOKEN, SECRET_VALUE, KMS_DECRYPT, INVOKE_MODEL, LEDGER, ECR_TOKEN]
TASK_ROLE = [Statement.from_json(s) for s in SHAPES]


def statement(**fields: Any) -> Statement:
    return Statement.from_json({"Effect": "Allow", "Action": "svc:Do", "Resource": "*"} | fields)


def holds(condition: dict[str, Any], context: dict[str, Any]) -> bool:
    return evaluate([statement(Condition=condition)], "svc:Do", "arn:aws:svc:us-east-1:1:thing/x", context) is Decision.ALLOW


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.get("Sid", s["Action"]))
def test_the_app_shapes_parse_and_round_trip(shape: dict[str, Any]) -> None:
    parsed = Statement.from_json(shape)
    assert parsed.to_json() == shape
    assert Statement.from_json(parsed.to_json()) == parsed


def test_the_task_role_allows_what_the_app_calls() -> None:
    assert evaluate(TASK_ROLE, "bedrock-agentcore:GetWorkloadAccessTokenForUserId", WORKLOAD) is Decision.ALLOW
    assert evaluate(TASK_ROLE, "bedrock-agentcore:GetResourceOauth2Token", PROVIDER) is Decision.ALLOW
    assert evaluate(TASK_ROLE, "dynamodb:UpdateItem", TABLE) is Decision.ALLOW
    assert evaluate(TASK_ROLE, "ecr:GetAuthorizationToken", "*") is Decision.ALLOW
    assert evaluate(TASK_ROLE, "secretsmanager:GetSecretValue", SECRET, {"aws:ViaAWSService": "true"}) is Decision.ALLOW
    kms = {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}
    assert evaluate(TASK_ROLE, "kms:Decrypt", KEY, kms) is Decision.ALLOW


def test_the_task_role_denies_the_rest() -> None:
    assert evaluate(TASK_ROLE, "dynamodb:DeleteItem", TABLE) is Decision.IMPLICIT_DENY
    assert evaluate(TASK_ROLE, "dynamodb:GetItem", f"{TABLE}-other") is Decision.IMPLICIT_DENY
    assert evaluate(TASK_ROLE, "dynamodb:GetItem", f"{TABLE}/index/by-user") is Decision.IMPLICIT_DENY
    assert (
        evaluate(TASK_ROLE, "bedrock-agentcore:GetResourceOauth2Token", f"{VAULT}/oauth2credentialprovider/other") is Decision.IMPLICIT_DENY
    )
    # Called directly rather than by Secrets Manager: the conditions do not hold.
    assert evaluate(TASK_ROLE, "secretsmanager:GetSecretValue", SECRET) is Decision.IMPLICIT_DENY
    assert evaluate(TASK_ROLE, "secretsmanager:GetSecretValue", SECRET, {"aws:ViaAWSService": "false"}) is Decision.IMPLICIT_DENY
    assert evaluate(TASK_ROLE, "kms:Decrypt", KEY, {"kms:ViaService": "ssm.us-east-1.amazonaws.com"}) is Decision.IMPLICIT_DENY
    assert evaluate([], "ecr:GetAuthorizationToken", "*") is Decision.IMPLICIT_DENY


def test_actions_match_case_insensitively_with_wildcards() -> None:
    assert evaluate(TASK_ROLE, "DynamoDB:getitem", TABLE) is Decision.ALLOW
    assert evaluate(TASK_ROLE, "BEDROCK:INVOKEMODEL", PROFILE) is Decision.ALLOW
    wildcards = [statement(Action=["dynamodb:Get*", "s3:?etObject", "sqs:*"])]
    assert evaluate(wildcards, "dynamodb:GetItem", "*") is Decision.ALLOW
    assert evaluate(wildcards, "dynamodb:BatchGetItem", "*") is Decision.IMPLICIT_DENY
    assert evaluate(wildcards, "s3:GetObject", "*") is Decision.ALLOW
    assert evaluate(wildcards, "s3:SetObject", "*") is Decision.ALLOW
    assert evaluate(wildcards, "s3:PutObject", "*") is Decision.IMPLICIT_DENY
    assert evaluate(wildcards, "s3:GetObjectAcl", "*") is Decision.IMPLICIT_DENY
    assert evaluate([statement(Action="*")], "anything:AtAll", "*") is Decision.ALLOW
    # "." is a literal, not a regex wildcard.
    assert evaluate([statement(Action="a.b:Do")], "aXb:Do", "*") is Decision.IMPLICIT_DENY


def test_a_region_wildcard_matches_the_foundation_model_in_any_region() -> None:
    model = "arn:aws:bedrock:{}::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0"
    for region in ("us-east-1", "us-west-2", "eu-central-1"):
        assert evaluate(TASK_ROLE, "bedrock:InvokeModel", model.format(region)) is Decision.ALLOW
    assert evaluate(TASK_ROLE, "bedrock:InvokeModel", model.format("us-east-1").replace("haiku", "opus")) is Decision.IMPLICIT_DENY
    # An account in the foundation model's ARN is not what the statement names.
    other = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0"
    assert evaluate(TASK_ROLE, "bedrock:InvokeModel", other) is Decision.IMPLICIT_DENY
    assert evaluate(TASK_ROLE, "bedrock:InvokeModel", PROFILE) is Decision.ALLOW


def test_a_secret_suffix_of_question_marks_matches_exactly_six_characters() -> None:
    secret = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:DemoClientSecret-"
    allow = [statement(Action="secretsmanager:GetSecretValue", Resource=secret + "??????")]
    assert evaluate(allow, "secretsmanager:GetSecretValue", secret + "AbCdEf") is Decision.ALLOW
    assert evaluate(allow, "secretsmanager:GetSecretValue", secret + "AbCdE") is Decision.IMPLICIT_DENY
    assert evaluate(allow, "secretsmanager:GetSecretValue", secret + "AbCdEfG") is Decision.IMPLICIT_DENY
    # `?` is one character within a segment, never a colon.
    assert evaluate(allow, "secretsmanager:GetSecretValue", secret + "AbC:Ef") is Decision.IMPLICIT_DENY


def test_resource_wildcards_stay_in_their_segment_unless_they_end_it() -> None:
    # A `*` in the middle of a segment does not cross a colon...
    mid = [statement(Resource="arn:aws:svc:us-*-1:111122223333:thing/x")]
    assert evaluate(mid, "svc:Do", "arn:aws:svc:us-east-1:111122223333:thing/x") is Decision.ALLOW
    assert evaluate(mid, "svc:Do", "arn:aws:svc:us-east:9-1:111122223333:thing/x") is Decision.IMPLICIT_DENY
    # ...but one that is the segment's last character may (IAM JSON policy elements: Resource).
    final = [statement(Resource="arn:aws:svc:us-east-1:111122223333:thing/*")]
    assert evaluate(final, "svc:Do", "arn:aws:svc:us-east-1:111122223333:thing/a/b:c:d") is Decision.ALLOW
    assert evaluate(final, "svc:Do", "arn:aws:svc:us-east-1:111122223333:other/a") is Decision.IMPLICIT_DENY
    # Resource ARNs are case-sensitive.
    assert evaluate(TASK_ROLE, "dynamodb:GetItem", TABLE.replace("ledger", "Ledger")) is Decision.IMPLICIT_DENY


def test_an_explicit_deny_wins_over_any_allow() -> None:
    deny = Statement.from_json({"Effect": "Deny", "Action": "dynamodb:*", "Resource": TABLE})
    assert evaluate([*TASK_ROLE, deny], "dynamodb:GetItem", TABLE) is Decision.EXPLICIT_DENY
    assert evaluate([deny, *TASK_ROLE], "dynamodb:GetItem", TABLE) is Decision.EXPLICIT_DENY
    assert evaluate([deny], "dynamodb:GetItem", f"{TABLE}2") is Decision.IMPLICIT_DENY
    assert evaluate([*TASK_ROLE, deny], "ecr:GetAuthorizationToken", "*") is Decision.ALLOW
    conditional = Statement.from_json(
        {"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {"BoolIfExists": {"aws:SecureTransport": "false"}}}
    )
    assert evaluate([*TASK_ROLE, conditional], "dynamodb:GetItem", TABLE, {"aws:SecureTransport": "false"}) is Decision.EXPLICIT_DENY
    assert evaluate([*TASK_ROLE, conditional], "dynamodb:GetItem", TABLE, {"aws:SecureTransport": "true"}) is Decision.ALLOW


@pytest.mark.parametrize(
    ("operator", "policy", "matching", "other"),
    [
        ("StringEquals", "Finance", "Finance", "finance"),
        ("StringNotEquals", "Finance", "finance", "Finance"),
        ("StringEqualsIgnoreCase", "Finance", "fINANCE", "Finances"),
        ("StringLike", "fin-??-*", "fin-01-anything", "fin-1-x"),
        ("StringNotLike", "fin-*", "Fin-1", "fin-1"),
        ("Bool", "true", "TRUE", "false"),
        (
            "ArnEquals",
            "arn:aws:sqs:us-east-1:111122223333:queue",
            "arn:aws:sqs:us-east-1:111122223333:queue",
            "arn:aws:sqs:us-east-1:111122223333:Queue",
        ),
        ("ArnLike", "arn:aws:sqs:*:111122223333:q-*", "arn:aws:sqs:eu-west-1:111122223333:q-1", "arn:aws:sqs:eu-west-1:444455556666:q-1"),
        (
            "ArnNotEquals",
            "arn:aws:sqs:us-east-1:111122223333:*",
            "arn:aws:sns:us-east-1:111122223333:t",
            "arn:aws:sqs:us-east-1:111122223333:q",
        ),
        ("ArnNotLike", "arn:aws:sqs:us-?ast-1:*:*", "arn:aws:sqs:us-west-1:111122223333:q", "arn:aws:sqs:us-east-1:111122223333:q"),
    ],
)
def test_each_operator_matches_and_does_not(operator: str, policy: str, matching: str, other: str) -> None:
    for suffix in ("", "IfExists"):
        assert holds({operator + suffix: {"test:Key": policy}}, {"test:Key": matching})
        assert not holds({operator + suffix: {"test:Key": policy}}, {"test:Key": other})


def test_arn_operators_need_an_arn_in_the_context() -> None:
    assert not holds({"ArnLike": {"aws:SourceArn": "arn:aws:sqs:*:*:*"}}, {"aws:SourceArn": "not-an-arn"})


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        # Condition operators page: a key absent from the request context does not match...
        ("StringEquals", "x", False),
        ("StringEqualsIgnoreCase", "x", False),
        ("StringLike", "*", False),
        ("Bool", "true", False),
        ("ArnEquals", "arn:aws:s3:::b", False),
        ("ArnLike", "arn:*:*:*:*:*", False),
        # ...so an operator that requires no match holds...
        ("StringNotEquals", "x", True),
        ("StringNotLike", "*", True),
        ("ArnNotEquals", "arn:aws:s3:::b", True),
        ("ArnNotLike", "arn:*:*:*:*:*", True),
        # ...and ...IfExists holds whatever the operator.
        ("StringEqualsIfExists", "x", True),
        ("StringLikeIfExists", "x", True),
        ("BoolIfExists", "true", True),
        ("ArnLikeIfExists", "arn:*:*:*:*:*", True),
        ("StringNotEqualsIfExists", "x", True),
        ("ArnNotLikeIfExists", "arn:*:*:*:*:*", True),
    ],
)
def test_a_key_missing_from_the_context(operator: str, value: str, expected: bool) -> None:
    assert holds({operator: {"test:Missing": value}}, {"test:Other": "x"}) is expected


def test_condition_keys_are_case_insensitive_and_values_case_sensitive() -> None:
    assert holds({"StringEquals": {"KMS:viaservice": "s3.amazonaws.com"}}, {"kms:ViaService": "s3.amazonaws.com"})
    assert holds({"StringEquals": {"kms:ViaService": "s3.amazonaws.com"}}, {"KMS:VIASERVICE": "s3.amazonaws.com"})
    assert not holds({"StringEquals": {"kms:ViaService": "s3.amazonaws.com"}}, {"kms:ViaService": "S3.amazonaws.com"})


def test_values_or_keys_and_operators_and() -> None:
    either = {"StringEquals": {"test:Dept": ["Finance", "Legal"]}}
    assert holds(either, {"test:Dept": "Legal"})
    assert not holds(either, {"test:Dept": "Sales"})
    neither = {"StringNotEquals": {"test:Dept": ["Finance", "Legal"]}}  # NOR
    assert holds(neither, {"test:Dept": "Sales"})
    assert not holds(neither, {"test:Dept": "Legal"})
    both_keys = {"StringEquals": {"test:Dept": "Finance", "test:Team": "Payables"}}
    assert holds(both_keys, {"test:Dept": "Finance", "test:Team": "Payables"})
    assert not holds(both_keys, {"test:Dept": "Finance", "test:Team": "Receivables"})
    assert not holds(both_keys, {"test:Dept": "Finance"})
    both_operators = {"StringEquals": {"test:Dept": "Finance"}, "Bool": {"aws:SecureTransport": "true"}}
    assert holds(both_operators, {"test:Dept": "Finance", "aws:SecureTransport": "true"})
    assert not holds(both_operators, {"test:Dept": "Finance", "aws:SecureTransport": "false"})


def test_a_multivalued_context_key_matches_when_any_value_does() -> None:
    assert holds({"StringLike": {"test:Tags": "team-*"}}, {"test:Tags": ["env-prod", "team-a"]})
    assert not holds({"StringLike": {"test:Tags": "team-*"}}, {"test:Tags": ["env-prod"]})
    assert not holds({"StringNotLike": {"test:Tags": "team-*"}}, {"test:Tags": ["env-prod", "team-a"]})
    assert holds({"StringNotLike": {"test:Tags": "team-*"}}, {"test:Tags": ["env-prod"]})


def test_denial_reasons_read_as_aws_words_them() -> None:
    assert denial_reason(Decision.IMPLICIT_DENY, "dynamodb:DeleteItem") == "no identity-based policy allows the dynamodb:DeleteItem action"
    assert denial_reason(Decision.EXPLICIT_DENY, "dynamodb:DeleteItem") == "an explicit deny in an identity-based policy"
    with pytest.raises(ValueError, match="no denial reason"):
        denial_reason(Decision.ALLOW, "dynamodb:GetItem")
    assert [d.value for d in Decision] == ["Allow", "ImplicitDeny", "ExplicitDeny"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"NotAction": "s3:*"}, "NotAction"),
        ({"NotResource": "*"}, "NotResource"),
        ({"Principal": {"AWS": "*"}}, "Principal"),
        ({"NotPrincipal": {"AWS": "*"}}, "NotPrincipal"),
        ({"Version": "2012-10-17"}, "'Version'"),
        ({"Condition": {"ForAnyValue:StringLike": {"aws:TagKeys": "a*"}}}, "ForAnyValue:"),
        ({"Condition": {"ForAllValues:StringEquals": {"aws:TagKeys": "a"}}}, "ForAllValues:"),
        ({"Condition": {"Null": {"aws:TokenIssueTime": "true"}}}, "Null"),
        ({"Condition": {"NumericLessThan": {"s3:max-keys": "10"}}}, "NumericLessThan"),
        ({"Condition": {"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}}, "DateGreaterThan"),
        ({"Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}, "IpAddress"),
        ({"Condition": {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}, "NotIpAddress"),
        ({"Condition": {"StringNotEqualsIgnoreCase": {"test:Key": "x"}}}, "StringNotEqualsIgnoreCase"),
        ({"Resource": "arn:aws:s3:::bucket/${aws:username}/*"}, "policy variables"),
        ({"Action": "s3:${aws:username}"}, "policy variables"),
        ({"Condition": {"StringEquals": {"aws:PrincipalTag/team": "${aws:username}"}}}, "policy variables"),
        ({"Effect": "Maybe"}, "Effect"),
        ({"Action": []}, "Action"),
        ({"Action": "GetItem"}, "service:action"),
        ({"Resource": "table/ledger"}, "ARN"),
        ({"Resource": "arn:aws:dynamo*:us-east-1:1:table/x"}, "service segment"),
        ({"Condition": {"Bool": {"aws:SecureTransport": "yes"}}}, "Bool"),
        ({"Condition": {"Bool": {"aws:SecureTransport": True}}}, "string"),
        ({"Condition": {"ArnLike": {"aws:SourceArn": "*"}}}, "ARN"),
    ],
)
def test_what_is_not_modelled_fails_loudly(change: dict[str, Any], named: str) -> None:
    with pytest.raises(UnsupportedPolicy, match=named.replace("$", r"\$").replace("{", r"\{")):
        Statement.from_json(LEDGER | change)


def test_a_statement_without_its_required_elements_fails() -> None:
    for element in ("Effect", "Action", "Resource"):
        with pytest.raises(UnsupportedPolicy, match=element):
            Statement.from_json({k: v for k, v in ECR_TOKEN.items() if k != element})
    with pytest.raises(UnsupportedPolicy, match="Effect"):
        Statement("Allowed", ("s3:GetObject",), ("*",))


# Differential check against moto's evaluator (moto/iam/access_control.py, IAMPolicy.is_action_permitted) for the
# app's shapes without their conditions. Where the two disagree, the AWS docs side with this module:
# - moto compares actions case-sensitively; "IAM JSON policy elements: Action" says the prefix and the action name
#   are case-insensitive, so the case-changed actions are compared with the case restored on moto's side;
# - moto turns `*` into the regex `.*` without escaping the rest: `.` matches any character and `?` is a regex
#   quantifier (a `name-??????` secret pattern is not even a valid regex to moto), and `*` crosses colons anywhere,
#   where "IAM JSON policy elements: Resource" keeps wildcards within a segment. None of the app's shapes depend on
#   that, so the grid below keeps to resources where the two readings agree, and the ones they disagree on are listed.
# - conditions: moto returns DENIED when an Allow statement's condition does not match (per "Policy evaluation logic"
#   the statement simply does not apply: an implicit deny) and ignores a condition whose key is missing from the
#   request (per "IAM JSON policy elements: Condition operators" the condition is then false). Hence the grid uses the
#   statements without their conditions; test_where_moto_reads_conditions_differently pins both.
MOTO = {
    PermissionResult.PERMITTED: Decision.ALLOW,
    PermissionResult.DENIED: Decision.EXPLICIT_DENY,
    PermissionResult.NEUTRAL: Decision.IMPLICIT_DENY,
}
UNCONDITIONED = [{k: v for k, v in shape.items() if k != "Condition"} for shape in SHAPES]
ACTIONS = sorted(
    {a for s in UNCONDITIONED for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    | {"dynamodb:DeleteItem", "s3:GetObject"}
)
RESOURCES = [
    DIRECTORY,
    WORKLOAD,
    f"{WORKLOAD}-2",
    VAULT,
    PROVIDER,
    SECRET,
    f"{SECRET}x",
    KEY,
    PROFILE,
    "arn:aws:bedrock:us-west-2::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0",
    "arn:aws:bedrock:us-west-2::foundation-model/anthropic.claude-opus-4-5-20251001-v1:0",
    TABLE,
    f"{TABLE}/index/by-user",
    "*",
]
# Moto's `.` matches any character, so this one counts as the inference profile there, and not in IAM.
MOTO_DISAGREES = {f"arn:aws:bedrock:us-east-1:{ACCOUNT}:inference-profile/usXanthropic.claude-haiku-4-5-20251001-v1:0"}


def as_deny(shape: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(shape) | {"Effect": "Deny"}


POLICIES = [[s] for s in UNCONDITIONED] + [UNCONDITIONED] + [[*UNCONDITIONED, as_deny(s)] for s in UNCONDITIONED]


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: f"{len(p)}-statements-{p[-1]['Effect']}-{p[-1]['Action']}")
def test_moto_agrees_on_statements_without_conditions(policy: list[dict[str, Any]]) -> None:
    moto = IAMPolicy(json.dumps({"Version": "2012-10-17", "Statement": policy}))
    ours = [Statement.from_json(s) for s in policy]
    for action, resource in itertools.product(ACTIONS, RESOURCES):
        expected = MOTO[moto.is_action_permitted(action, resource)]
        assert evaluate(ours, action, resource) is expected, (action, resource)
        assert evaluate(ours, action.upper(), resource) is expected, (action.upper(), resource)


def test_where_moto_reads_a_dot_as_any_character() -> None:
    moto = IAMPolicy(json.dumps({"Version": "2012-10-17", "Statement": [INVOKE_MODEL]}))
    for resource in MOTO_DISAGREES:
        assert moto.is_action_permitted("bedrock:InvokeModel", resource) is PermissionResult.PERMITTED
        assert evaluate([Statement.from_json(INVOKE_MODEL)], "bedrock:InvokeModel", resource) is Decision.IMPLICIT_DENY


def test_where_moto_reads_conditions_differently() -> None:
    moto = IAMPolicy(json.dumps({"Version": "2012-10-17", "Statement": [KMS_DECRYPT]}))
    ours = [Statement.from_json(KMS_DECRYPT)]
    other = {"kms:ViaService": "ssm.us-east-1.amazonaws.com"}
    assert moto.is_action_permitted("kms:Decrypt", KEY, incoming_condition_values=other) is PermissionResult.DENIED
    assert evaluate(ours, "kms:Decrypt", KEY, other) is Decision.IMPLICIT_DENY
    assert moto.is_action_permitted("kms:Decrypt", KEY) is PermissionResult.PERMITTED
    assert evaluate(ours, "kms:Decrypt", KEY) is Decision.IMPLICIT_DENY
