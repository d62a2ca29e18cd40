"""Config validation: good values parse, every bad value fails with one line naming the key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from cdk_app.config import (
    AGENTCORE_IDENTITY_REGIONS,
    ALB_COGNITO_REGIONS,
    SUPPORTED_REGIONS,
    BindingMode,
    ConfigError,
    Profile,
    Provider,
    load_config,
    partition_of,
)
from tests.stacks.conftest import DEFAULT_CONTEXT, GITHUB, ROOT, context_with


def test_defaults_from_cdk_json_are_valid() -> None:
    config = load_config(DEFAULT_CONTEXT)
    assert config.profile is Profile.SANDBOX
    assert config.provider.kind is Provider.DEMO
    assert config.binding_mode is BindingMode.SAME_BROWSER
    assert config.binding_require_state is True  # AgentCore's echo of customState is required unless turned off
    assert config.binding_state_param == "state"
    assert config.session_binding_url == "https://agent.example.com/oauth2/session-binding"
    assert config.alb_callback_url == "https://agent.example.com/oauth2/idpresponse"
    assert config.account is None and config.region is None  # environment-agnostic
    assert config.nat_gateways == 1
    assert config.provider.scopes == ("demo-api/notes.read", "demo-api/profile.read")


def test_binding_state_defaults_hold_without_cdk_json() -> None:
    """The code's defaults match cdk.json: a context without the keys still requires the echo, in `state`."""
    context = {k: v for k, v in DEFAULT_CONTEXT.items() if k not in ("binding_require_state", "binding_state_param")}
    config = load_config(context)
    assert (config.binding_require_state, config.binding_state_param) == (True, "state")
    assert (DEFAULT_CONTEXT["binding_require_state"], DEFAULT_CONTEXT["binding_state_param"]) == (True, "state")


def test_command_line_strings_are_parsed() -> None:
    config = load_config(
        context_with(
            (
                ("nat_gateways", "2"),
                ("waf_enabled", "false"),
                ("allowed_ingress_cidrs", "203.0.113.0/24, 198.51.100.0/24"),
                ("provider_scopes", '["demo-api/notes.read"]'),
                ("agent_min_tasks", "3"),
                ("agent_max_tasks", "8"),
                ("alarm_email", "ops@example.com"),
                ("alarm_refusals_per_5min", "200"),
                ("binding_require_state", "false"),
                ("binding_state_param", " customState "),
            )
        )
    )
    assert config.binding_require_state is False
    assert config.binding_state_param == "customState"
    assert config.nat_gateways == 2
    assert config.waf_enabled is False
    assert config.allowed_ingress_cidrs == ("203.0.113.0/24", "198.51.100.0/24")
    assert config.provider.scopes == ("demo-api/notes.read",)
    assert (config.agent_scaling.min_tasks, config.agent_scaling.max_tasks) == (3, 8)
    assert config.alarms.email == "ops@example.com" and config.alarms.refusals_per_5min == 200


def test_prod_profile_defaults() -> None:
    config = load_config(context_with((("profile", "prod"),)))
    assert config.is_prod
    assert config.nat_gateways == 2
    assert (config.agent_scaling.min_tasks, config.agent_scaling.max_tasks) == (2, 6)
    assert (config.binding_scaling.min_tasks, config.binding_scaling.max_tasks) == (2, 6)
    assert config.alarms.metrics_namespace == "agentcore-ecs/prod"
    assert config.log_retention_days == 365


def test_vendor_provider_needs_client_id_and_secret_name() -> None:
    config = load_config(context_with(GITHUB))
    assert config.provider.kind is Provider.GITHUB
    assert config.provider.client_secret_name == "agent/github-oauth"
    assert config.provider.scopes == ("read:user", "repo")
    assert config.credential_provider_name == "agentcore-ecs-sandbox-github"


CERT_ARN = "arn:aws:acm:us-east-1:111122223333:certificate/12345678-1234-1234-1234-123456789012"

BAD: list[tuple[str, tuple[tuple[str, Any], ...], str]] = [
    ("profile", (("profile", "staging"),), "one of sandbox, prod"),
    ("app_name", (("app_name", "Agent_Core"),), "lowercase"),
    ("account", (("account", "12345"),), "12-digit"),
    ("region", (("account", "111122223333"),), "set together"),
    ("region", (("account", "111122223333"), ("region", "mars-1")), "AWS region"),
    # Partitions and regions where the ALB's Cognito sign-in or AgentCore Identity is not offered (cdk_app/config.py cites both).
    ("region", (("account", "111122223333"), ("region", "us-gov-west-1")), "aws partition, the only one where the ALB guide lists Cognito"),
    ("region", (("account", "111122223333"), ("region", "cn-north-1")), "(cn-north-1 is in partition aws-cn)"),
    ("region", (("account", "111122223333"), ("region", "us-iso-east-1")), "(us-iso-east-1 is in partition aws-iso)"),
    ("region", (("account", "111122223333"), ("region", "ap-east-1")), "AgentCore Identity is offered (it is not offered in ap-east-1)"),
    (
        "region",
        (("account", "111122223333"), ("region", "me-central-1")),
        "AgentCore Identity is offered (it is not offered in me-central-1)",
    ),
    ("region", (("account", "111122223333"), ("region", "ap-southeast-7")), "authenticate-cognito is not offered in ap-southeast-7"),
    ("region", (("account", "111122223333"), ("region", "ap-southeast-5")), "authenticate-cognito is not offered in ap-southeast-5"),
    ("domain_name", (("domain_name", None),), "it is missing"),
    ("domain_name", (("domain_name", "https://agent.example.com"),), "DNS name"),
    ("domain_name", (("domain_name", "agent.other.org"),), "inside hosted zone example.com"),
    ("hosted_zone_name", (("hosted_zone_name", ""),), "set together"),
    ("hosted_zone_id", (("hosted_zone_id", "not-a-zone"),), "hosted zone id"),
    ("certificate_arn", (("hosted_zone_id", ""), ("hosted_zone_name", "")), "ACM certificate ARN"),
    ("certificate_arn", (("certificate_arn", CERT_ARN),), "not both"),
    ("certificate_arn", (("hosted_zone_id", ""), ("hosted_zone_name", ""), ("certificate_arn", "arn:aws:acm:x")), "ACM certificate ARN"),
    (
        "certificate_arn",
        (
            ("hosted_zone_id", ""),
            ("hosted_zone_name", ""),
            ("certificate_arn", CERT_ARN),
            ("account", "111122223333"),
            ("region", "eu-west-1"),
        ),
        "deployment region eu-west-1",
    ),
    ("auth_domain_prefix", (("auth_domain_prefix", "my-aws-login"),), "without 'aws'"),
    ("allowed_ingress_cidrs", (("allowed_ingress_cidrs", ["10.0.0.1/8"]),), "IPv4 CIDRs"),
    ("allowed_ingress_cidrs", (("allowed_ingress_cidrs", "everyone"),), "IPv4 CIDRs"),
    ("allowed_ingress_cidrs", (("allowed_ingress_cidrs", []),), "IPv4 CIDRs"),
    ("nat_gateways", (("nat_gateways", 0),), "from 1 to 2"),
    ("nat_gateways", (("nat_gateways", "two"),), "from 1 to 2"),
    ("agent_min_tasks", (("agent_min_tasks", 0),), "from 1 to 20"),
    ("binding_min_tasks", (("binding_min_tasks", True),), "from 1 to 20"),
    ("agent_max_tasks", (("agent_max_tasks", 51),), "from 1 to 50"),
    ("agent_max_tasks", (("agent_min_tasks", 4), ("agent_max_tasks", 3)), "at least agent_min_tasks (4)"),
    ("binding_max_tasks", (("binding_min_tasks", "5"), ("binding_max_tasks", "2")), "at least binding_min_tasks (5)"),
    ("binding_min_tasks", (("binding_compute", "lambda"), ("binding_min_tasks", 2)), "unset when binding_compute is 'lambda'"),
    ("agent_desired_count", (("agent_desired_count", 2),), "did you mean agent_max_tasks, agent_min_tasks"),
    ("alarm_email", (("alarm_email", "ops at example.com"),), "email address"),
    ("alarm_email", (("alarm_email", "ops@example"),), "email address"),
    ("alarm_refusals_per_5min", (("alarm_refusals_per_5min", 0),), "from 1 to 100000"),
    ("metrics_namespace", (("metrics_namespace", "AWS/ECS"),), "not starting with AWS/"),
    ("metrics_namespace", (("metrics_namespace", 'agent"core'),), "CloudWatch namespace"),
    ("waf_enabled", (("waf_enabled", "yes"),), "true or false"),
    ("provider", (("provider", "gitlab"),), "one of demo, github"),
    ("provider_client_id", (("provider", "github"), ("provider_client_secret_name", "x")), "client id"),
    ("provider_client_secret_name", (("provider", "google"), ("provider_client_id", "abc")), "Secrets Manager"),
    ("provider_client_id", (("provider_client_id", "abc"),), "unset for provider 'demo'"),
    (
        "provider_discovery_url",
        (("provider", "custom-oidc"), ("provider_client_id", "abc"), ("provider_client_secret_name", "x")),
        "discovery URL",
    ),
    (
        "provider_discovery_url",
        (
            ("provider", "custom-oidc"),
            ("provider_client_id", "abc"),
            ("provider_client_secret_name", "x"),
            ("provider_discovery_url", "http://idp.example.org/.well-known/openid-configuration"),
        ),
        "https URL",
    ),
    ("provider_discovery_url", (("provider_discovery_url", "https://idp.example.org/.well-known/openid-configuration"),), "unset unless"),
    ("provider_scopes", (("provider_scopes", ["notes read"]),), "OAuth scope"),
    ("provider_scopes", (("provider_scopes", ["a", "a"]),), "without duplicates"),
    ("microsoft_tenant_id", (("microsoft_tenant_id", "contoso"),), "unset unless provider is 'microsoft'"),
    ("binding_mode", (("binding_mode", "any-browser"),), "same-browser, same-user"),
    ("binding_require_state", (("binding_require_state", "yes"),), "true or false"),
    ("binding_state_param", (("binding_state_param", "session_id"),), "a parameter other than session_id"),
    ("binding_state_param", (("binding_state_param", "custom state"),), "1-64 letters, digits or _ . -"),
    ("binding_state_param", (("binding_state_param", "state&x=1"),), "echo of customState"),
    ("binding_state_param", (("binding_state_param", "s" * 65),), "1-64 letters"),
    ("binding_state_param", (("binding_state_param", 7),), "1-64 letters"),
    ("bedrock_model_id", (("bedrock_model_id", "claude"),), "Bedrock model"),
    ("log_retention_days", (("log_retention_days", 31),), "CloudWatch's periods"),
    ("domian_name", (("domian_name", "x.example.com"),), "known configuration key"),
    ("auth_domain_prefix", (("auth_domain_prefix", "a" * 56),), "at most 55"),
    ("app_name", (("app_name", "my-aws-demo"),), "without 'aws'"),
    ("domain_name", (("domain_name", "a" * 50 + ".agents.example.com"),), "at most 64 characters"),
    ("allowed_ingress_cidrs", (("allowed_ingress_cidrs", ",".join(f"198.51.{i}.0/24" for i in range(26))),), "at most 25 CIDRs"),
    ("provider_scopes", (("provider_scopes", "s" * 129),), "OAuth scope"),
    ("provider_client_secret_json_key", (("provider_client_secret_json_key", "secret"),), "unset for provider 'demo'"),
]


@pytest.mark.parametrize(("key", "overrides", "expected"), BAD, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(BAD)])
def test_bad_value_names_the_key(key: str, overrides: tuple[tuple[str, Any], ...], expected: str) -> None:
    context = context_with(overrides)
    context = {k: v for k, v in context.items() if v is not None}
    with pytest.raises(ConfigError) as caught:
        load_config(context)
    message = str(caught.value)
    assert caught.value.key == key
    assert message.startswith(f"context key '{key}': expected ")
    assert expected in message
    assert "\n" not in message


@pytest.mark.parametrize("region", SUPPORTED_REGIONS)
def test_each_supported_region_synthesizes(region: str) -> None:
    config = load_config(context_with((("account", "111122223333"), ("region", region))))
    assert config.region == region


def test_supported_regions_offer_both_services() -> None:
    """Both lists come from the documentation; synth accepts where they meet, in the aws partition only."""
    assert set(SUPPORTED_REGIONS) == ALB_COGNITO_REGIONS & AGENTCORE_IDENTITY_REGIONS
    assert {"us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-northeast-1", "ap-southeast-2"} <= set(SUPPORTED_REGIONS)
    assert {partition_of(region) for region in SUPPORTED_REGIONS} == {"aws"}
    assert "us-gov-west-1" in AGENTCORE_IDENTITY_REGIONS and "us-gov-west-1" not in SUPPORTED_REGIONS  # no ALB Cognito sign-in there


def test_refused_region_message_lists_the_choices() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(context_with((("account", "111122223333"), ("region", "ap-east-1"))))
    message = str(caught.value)
    assert message.startswith("context key 'region': expected a region where AgentCore Identity is offered")
    assert "one of " + ", ".join(SUPPORTED_REGIONS) in message
    assert message.endswith("got 'ap-east-1'")


@pytest.mark.parametrize(
    ("region", "partition"),
    [
        ("eu-west-1", "aws"),
        ("il-central-1", "aws"),
        ("cn-northwest-1", "aws-cn"),
        ("us-gov-east-1", "aws-us-gov"),
        ("us-iso-west-1", "aws-iso"),
        ("us-isob-east-1", "aws-iso-b"),
        ("eu-isoe-west-1", "aws-iso-e"),
        ("us-isof-south-1", "aws-iso-f"),
        ("xx-east-1", None),
    ],
)
def test_partition_of_a_region_name(region: str, partition: str | None) -> None:
    assert partition_of(region) == partition


def test_unknown_key_suggests_the_close_one() -> None:
    with pytest.raises(ConfigError, match="did you mean provider"):
        load_config(context_with((("provider_secret", "x"),)))


def test_cdk_feature_flags_are_not_config_keys() -> None:
    config = load_config(context_with((("@aws-cdk/core:newStyleStackSynthesis", True), ("aws:cdk:enable-path-metadata", True))))
    assert config.app_name == "agentcore-ecs"


def test_synth_fails_with_one_line_naming_the_key() -> None:
    """app.py, as the CDK CLI runs it: a bad -c value stops synth before any construct."""
    context = context_with((("binding_mode", "whatever"),))
    env = {**os.environ, "CDK_CONTEXT_JSON": json.dumps(context), "CDK_OUTDIR": str(ROOT / ".pytest_cache" / "bad-config-out")}
    result = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["config error: context key 'binding_mode': expected one of same-browser, same-user; got 'whatever'"]


def test_an_unknown_key_does_not_repeat_its_value() -> None:
    """A secret typed as `-c provider_client_secret=...` must not end up in a terminal or CI log."""
    with pytest.raises(ConfigError) as failure:
        load_config(context_with((("provider_client_secret", "s3cr3t-Value-from-the-provider"),)))
    message = str(failure.value)
    assert "provider_client_secret" in message and "provider_client_secret_name" in message
    assert "s3cr3t" not in message and "its value is not shown" in message
