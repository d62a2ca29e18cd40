"""The optional GitHub OIDC deploy role: built only with `github_repository`, trusted by one repository's
branch and environment, allowed only to assume the CDK bootstrap roles and read this app's stack outputs."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest

from cdk_app.config import ConfigError, load_config
from tests.stacks.conftest import PROD, Synth, context_with, one, render, resources, statements, synth

REPO = (("github_repository", "octo/agent"),)
ROLE_ARN_PATTERN = "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/cdk-{qualifier}-*-${AWS::AccountId}-${AWS::Region}"


def _stack_arn(name: str) -> str:
    return "arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/" + name + "/*"


def _deploy_template(result: Synth) -> dict[str, Any]:
    assert result.stacks.github_deploy is not None
    return dict(cdk.assertions.Template.from_stack(result.stacks.github_deploy).to_json())


@pytest.fixture(scope="module")
def with_repo() -> Synth:
    return synth(REPO)


def test_not_created_without_the_key(demo: Synth) -> None:
    assert demo.config.github_repository is None
    assert demo.stacks.github_deploy is None
    assert "GitHubDeploy" not in [child.node.id for child in demo.app.node.children]


def test_stack_name_follows_the_app_convention(with_repo: Synth) -> None:
    assert with_repo.stacks.github_deploy is not None
    assert with_repo.stacks.github_deploy.stack_name == "agentcore-ecs-sandbox-github-deploy"
    assert with_repo.stacks.github_deploy.termination_protection is False


def test_github_oidc_provider(with_repo: Synth) -> None:
    provider = one(_deploy_template(with_repo), "AWS::IAM::OIDCProvider")
    assert provider["Properties"]["Url"] == "https://token.actions.githubusercontent.com"
    assert provider["Properties"]["ClientIdList"] == ["sts.amazonaws.com"]
    # The native resource: no custom-resource Lambda in this stack.
    assert resources(_deploy_template(with_repo), "AWS::Lambda::Function") == {}


def test_trust_policy_is_exactly_one_repository_branch_and_environment(with_repo: Synth) -> None:
    template = _deploy_template(with_repo)
    role = one(template, "AWS::IAM::Role")
    provider_id = next(iter(resources(template, "AWS::IAM::OIDCProvider")))
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {
                    "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
                    "token.actions.githubusercontent.com:sub": [
                        "repo:octo/agent:ref:refs/heads/main",
                        "repo:octo/agent:environment:sandbox",
                    ],
                }
            },
            "Effect": "Allow",
            "Principal": {"Federated": {"Ref": provider_id}},
        }
    ]
    assert role["Properties"]["MaxSessionDuration"] == 3600
    assert "ManagedPolicyArns" not in role["Properties"]
    assert "Policies" not in role["Properties"]


def test_permissions_are_exactly_bootstrap_roles_and_stack_outputs(with_repo: Synth) -> None:
    template = _deploy_template(with_repo)
    policy = one(template, "AWS::IAM::ManagedPolicy")
    assert statements(policy) == [
        {
            "Action": ["sts:AssumeRole", "sts:TagSession"],
            "Effect": "Allow",
            "Resource": ROLE_ARN_PATTERN.replace("{qualifier}", "hnb659fds"),
            "Sid": "UseCdkBootstrapRoles",
        },
        {
            "Action": "cloudformation:DescribeStacks",
            "Effect": "Allow",
            "Resource": [
                _stack_arn("agentcore-ecs-sandbox-agent-identity"),
                _stack_arn("agentcore-ecs-sandbox-identity"),
                _stack_arn("agentcore-ecs-sandbox-network"),
                _stack_arn("agentcore-ecs-sandbox-services"),
            ],
            "Sid": "ReadAppStackOutputs",
        },
    ]
    role_id = next(iter(resources(template, "AWS::IAM::Role")))
    assert policy["Properties"]["Roles"] == [{"Ref": role_id}]
    # Nothing else grants this role anything.
    assert resources(template, "AWS::IAM::Policy") == {}
    assert len(resources(template, "AWS::IAM::ManagedPolicy")) == 1


def test_role_arn_is_an_output(with_repo: Synth) -> None:
    template = _deploy_template(with_repo)
    role_id = next(iter(resources(template, "AWS::IAM::Role")))
    assert template["Outputs"]["DeployRoleArn"]["Value"] == {"Fn::GetAtt": [role_id, "Arn"]}


def test_prod_branch_and_qualifier_are_honoured() -> None:
    result = synth(
        (
            *PROD,
            *REPO,
            ("github_deploy_branch", "release/v2"),
            ("@aws-cdk/core:bootstrapQualifier", "custom123"),
        )
    )
    template = _deploy_template(result)
    condition = one(template, "AWS::IAM::Role")["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Condition"]
    assert condition["StringEquals"]["token.actions.githubusercontent.com:sub"] == [
        "repo:octo/agent:ref:refs/heads/release/v2",
        "repo:octo/agent:environment:prod",
    ]
    first = statements(one(template, "AWS::IAM::ManagedPolicy"))[0]
    assert first["Resource"] == ROLE_ARN_PATTERN.replace("{qualifier}", "custom123")
    assert result.stacks.github_deploy is not None
    assert result.stacks.github_deploy.stack_name == "agentcore-ecs-prod-github-deploy"
    assert result.stacks.github_deploy.termination_protection is True


def test_no_stack_wide_acknowledgement(with_repo: Synth) -> None:
    stack = with_repo.stacks.github_deploy
    assert stack is not None
    acknowledged = [m for m in stack.node.metadata if m.type == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY]
    assert acknowledged == []


def test_config_defaults_and_parsing() -> None:
    config = load_config(context_with((("github_repository", " Octo-Org/agent.app_2 "),)))
    assert config.github_repository == "Octo-Org/agent.app_2"
    assert config.github_deploy_branch == "main"
    assert load_config(context_with((("github_repository", ""),))).github_repository is None


BAD: list[tuple[str, tuple[tuple[str, Any], ...], str]] = [
    ("github_repository", (("github_repository", "octo"),), "owner/repo"),
    ("github_repository", (("github_repository", "octo/agent/extra"),), "owner/repo"),
    ("github_repository", (("github_repository", "https://github.com/octo/agent"),), "owner/repo"),
    ("github_repository", (("github_repository", "-octo/agent"),), "owner/repo"),
    ("github_repository", (("github_repository", "octo--org/agent"),), "owner/repo"),
    ("github_repository", (("github_repository", "octo/.."),), "owner/repo"),
    ("github_repository", (("github_repository", "octo/agent*"),), "owner/repo"),
    ("github_repository", (("github_repository", "o" * 40 + "/agent"),), "owner/repo"),
    ("github_repository", (("github_repository", ["octo/agent"]),), "owner/repo"),
    ("github_deploy_branch", (*REPO, ("github_deploy_branch", "feature/*")), "no wildcards"),
    ("github_deploy_branch", (*REPO, ("github_deploy_branch", "../main")), "branch name"),
    ("github_deploy_branch", (*REPO, ("github_deploy_branch", "main/")), "branch name"),
    ("github_deploy_branch", (("github_deploy_branch", "main"),), "unset unless github_repository is set"),
]


@pytest.mark.parametrize(("key", "overrides", "expected"), BAD, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(BAD)])
def test_bad_value_is_one_line_naming_the_key(key: str, overrides: tuple[tuple[str, Any], ...], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(context_with(overrides))
    message = str(caught.value)
    assert caught.value.key == key
    assert message.startswith(f"context key '{key}': expected ")
    assert expected in message
    assert "\n" not in message


def test_render_helper_reads_the_bootstrap_pattern(with_repo: Synth) -> None:
    """Control: the rendered form compared above is what CloudFormation receives, not a test artefact."""
    policy = one(_deploy_template(with_repo), "AWS::IAM::ManagedPolicy")
    raw = policy["Properties"]["PolicyDocument"]["Statement"][0]["Resource"]
    assert render(raw) == ROLE_ARN_PATTERN.replace("{qualifier}", "hnb659fds")
    assert raw == {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                ":iam::",
                {"Ref": "AWS::AccountId"},
                ":role/cdk-hnb659fds-*-",
                {"Ref": "AWS::AccountId"},
                "-",
                {"Ref": "AWS::Region"},
            ],
        ]
    }
