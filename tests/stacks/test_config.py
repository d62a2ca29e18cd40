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
    DEFAULT_PROVIDERS,
    DEFAULT_SCOPES,
    DEMO_API_SCOPES,
    MAX_PROVIDERS,
    RETIRED_PROVIDER_KEYS,
    SUPPORTED_REGIONS,
    BindingMode,
    ConfigError,
    Profile,
    Provider,
    load_config,
    partition_of,
)
from tests.stacks.conftest import DEFAULT_CONTEXT, GITHUB, ROOT, context_with, providers, synth


def test_defaults_from_cdk_json_are_valid() -> None:
    config = load_config(DEFAULT_CONTEXT)
    assert config.profile is Profile.SANDBOX
    assert config.binding_mode is BindingMode.SAME_BROWSER
    assert config.binding_require_state is True  # AgentCore's echo of customState is required unless turned off
    assert config.binding_state_param == "state"
    assert config.session_binding_url == "https://agent.example.com/oauth2/session-binding"
    assert config.alb_callback_url == "https://agent.example.com/oauth2/idpresponse"
    assert config.account is None and config.region is None  # environment-agnostic
    assert config.nat_gateways == 1
    assert [(p.name, p.kind, p.display_name) for p in config.providers] == [
        ("notes", Provider.DEMO, "Demo Notes"),
        ("tasks", Provider.DEMO, "Demo Tasks"),
    ]
    [notes, tasks] = config.providers
    # The agent's add_note tool needs notes.write: the default notes provider asks for it.
    assert notes.scope_names == ("demo-api/profile.read", "demo-api/notes.read", "demo-api/notes.write")
    assert tasks.scopes == (("demo-api/tasks.read", "Read your task list"), ("demo-api/tasks.write", "Add and complete tasks"))
    assert [config.credential_provider_name(p) for p in config.providers] == ["agentcore-ecs-sandbox-notes", "agentcore-ecs-sandbox-tasks"]


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
                ("providers", '[{"name": "n", "kind": "demo", "display_name": "N", "scopes": {"demo-api/notes.read": "Read"}}]'),
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
    assert [(p.name, p.scopes) for p in config.providers] == [("n", (("demo-api/notes.read", "Read"),))]
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
    [github] = config.providers
    assert github.kind is Provider.GITHUB
    assert github.client_secret_name == "agent/github-oauth"
    assert github.client_secret_json_key == "client_secret"
    assert config.credential_provider_name(github) == "agentcore-ecs-sandbox-github"
    assert config.demo_providers == ()


def test_a_vendor_without_scopes_gets_its_defaults_with_words() -> None:
    """Scopes may be left out for a vendor kind: its DEFAULT_SCOPES, each with words people can read."""
    config = load_config(context_with(GITHUB))
    assert config.providers[0].scopes == (
        ("read:user", "See your GitHub profile"),
        ("repo", "Read and change your public and private repositories"),
    )
    for kind in DEFAULT_SCOPES:
        entry = {"name": "p", "kind": kind.value, "display_name": "P", "client_id": "c", "client_secret_name": "s"}
        if kind is Provider.CUSTOM_OIDC:
            entry["discovery_url"] = "https://idp.example.org/.well-known/openid-configuration"
        [provider] = load_config(context_with(providers(entry))).providers
        assert provider.scope_names == DEFAULT_SCOPES[kind]
        assert all(1 <= len(words) <= 100 for _, words in provider.scopes)
    assert Provider.DEMO not in DEFAULT_SCOPES  # a demo provider names its scopes


def test_several_providers_in_order_from_a_json_list_or_its_string() -> None:
    entries: list[dict[str, Any]] = [
        {"name": "notes", "kind": "demo", "display_name": "Demo Notes", "scopes": {"demo-api/notes.read": "Read your notes"}},
        {"name": "tasks", "kind": "demo", "display_name": "Demo Tasks", "scopes": {"demo-api/tasks.read": "Read your task list"}},
        {
            "name": "work-idp",
            "kind": "custom-oidc",
            "display_name": "Work",
            "scopes": {"openid": "Confirm who you are", "files.read": "Read your files"},
            "client_id": "agent",
            "client_secret_name": "idp/agent",
            "client_secret_json_key": "secret",
            "discovery_url": "https://idp.example.org/.well-known/openid-configuration",
        },
        {
            "name": "ms",
            "kind": "microsoft",
            "display_name": "Microsoft 365",
            "client_id": "abc",
            "client_secret_name": "ms",
            "microsoft_tenant_id": "contoso.onmicrosoft.com",
        },
    ]
    from_list = load_config(context_with((("providers", entries),)))
    from_string = load_config(context_with(providers(*entries)))
    assert from_list == from_string
    assert [p.name for p in from_list.providers] == ["notes", "tasks", "work-idp", "ms"]
    assert [p.name for p in from_list.demo_providers] == ["notes", "tasks"]
    work = from_list.providers[2]
    assert (work.id_part, work.client_secret_json_key, work.discovery_url) == (
        "WorkIdp",
        "secret",
        "https://idp.example.org/.well-known/openid-configuration",
    )
    assert from_list.providers[3].microsoft_tenant_id == "contoso.onmicrosoft.com"
    assert from_list.credential_provider_name(work) == "agentcore-ecs-sandbox-work-idp"


def test_ten_providers_are_allowed() -> None:
    entries = [
        {"name": f"p{i}", "kind": "github", "display_name": f"GitHub {i}", "client_id": "c", "client_secret_name": "s"} for i in range(10)
    ]
    assert len(load_config(context_with(providers(*entries))).providers) == 10


def test_the_code_default_is_cdk_jsons() -> None:
    """A context without `providers` gets the same two demo providers cdk.json names."""
    assert DEFAULT_CONTEXT["providers"] == [dict(entry) for entry in DEFAULT_PROVIDERS]
    context = {k: v for k, v in DEFAULT_CONTEXT.items() if k != "providers"}
    assert load_config(context).providers == load_config(DEFAULT_CONTEXT).providers


def test_demo_scopes_are_the_resource_servers() -> None:
    """Every scope a demo provider may ask for exists at the demo resource server; the default words are the server's."""
    assert dict(DEMO_API_SCOPES) == {
        "profile.read": "See your profile (name and email address)",
        "notes.read": "Read your notes",
        "notes.write": "Create, change and delete your notes",
        "tasks.read": "Read your task list",
        "tasks.write": "Add and complete tasks",
    }
    for provider in load_config(DEFAULT_CONTEXT).providers:
        for scope, words in provider.scopes:
            assert DEMO_API_SCOPES[scope.removeprefix("demo-api/")] == words


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
    with pytest.raises(ConfigError, match=r"did you mean providers\?"):
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
    assert message.startswith("context key 'provider_client_secret': expected a known configuration key (did you mean providers?)")
    assert "s3cr3t" not in message and "its value is not shown" in message


# --------------------------------------------------------------------------- providers

GH = {"name": "github", "kind": "github", "display_name": "GitHub", "client_id": "Iv1.abc", "client_secret_name": "agent/github"}
DEMO = {"name": "notes", "kind": "demo", "display_name": "Demo Notes", "scopes": {"demo-api/notes.read": "Read your notes"}}
IDP = {
    "name": "idp",
    "kind": "custom-oidc",
    "display_name": "IdP",
    "client_id": "agent",
    "client_secret_name": "idp/agent",
    "discovery_url": "https://idp.example.org/.well-known/openid-configuration",
}


REVOKE_URL = "https://idp.example.org/oauth2/revoke"


def _with(entry: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The entry with keys changed (a value of None removes the key)."""
    return {k: v for k, v in {**entry, **changes}.items() if v is not None}


BAD_PROVIDERS: list[tuple[str, Any, str]] = [
    ("providers", "not json [", "a JSON list of provider objects"),
    ("providers", '{"name": "github"}', "a JSON list of provider objects"),
    ("providers", [], "at least one provider"),
    ("providers", [_with(GH, name=f"g{i}", display_name=f"G{i}") for i in range(MAX_PROVIDERS + 1)], "at most 10 providers"),
    ("providers[0]", ["github"], "an object with name, kind, display_name"),
    ("providers[0].name", [_with(GH, name=None)], "it is missing"),
    ("providers[0].name", [_with(GH, name="GitHub")], "1-20 lowercase letters"),
    ("providers[0].name", [_with(GH, name="1st")], "starting with a letter"),
    ("providers[0].name", [_with(GH, name="a" * 21)], "1-20 lowercase letters"),
    ("providers[1].name", [GH, _with(GH, display_name="Other")], "a name no other provider has (providers[0] has it)"),
    ("providers[1].name", [_with(GH, name="gh-1"), _with(GH, name="gh1", display_name="Other")], "in more than its '-'"),
    ("providers[0].kind", [_with(GH, kind=None)], "one of demo, github, google, microsoft, slack, custom-oidc; it is missing"),
    ("providers[0].kind", [_with(GH, kind="gitlab")], "one of demo, github"),
    ("providers[0].display_name", [_with(GH, display_name=None)], "it is missing"),
    ("providers[0].display_name", [_with(GH, display_name="x" * 41)], "1-40 printable characters"),
    ("providers[0].display_name", [_with(GH, display_name="Git\nHub")], "1-40 printable characters"),
    ("providers[0].display_name", [_with(GH, display_name="   ")], "it is missing"),
    ("providers[1].display_name", [GH, _with(GH, name="other", display_name="github")], "a display name no other provider has"),
    ("providers[0].scopes", [_with(DEMO, scopes=None)], "a demo provider names its scopes"),
    ("providers[0].scopes", [_with(DEMO, scopes={})], "an object mapping each OAuth scope"),
    ("providers[0].scopes", [_with(GH, scopes=["read:user"])], "an object mapping each OAuth scope"),
    ("providers[0].scopes", [_with(GH, scopes={"read user": "x"})], "an object mapping each OAuth scope"),
    ("providers[0].scopes", [_with(GH, scopes={"s" * 129: "x"})], "an object mapping each OAuth scope"),
    ("providers[0].scopes", [_with(GH, scopes={"read:user": ""})], "1-100 printable characters saying what read:user allows"),
    ("providers[0].scopes", [_with(GH, scopes={"read:user": "x" * 101})], "1-100 printable characters"),
    ("providers[0].scopes", [_with(GH, scopes={"read:user": 7})], "1-100 printable characters"),
    (
        "providers[0].scopes",
        [_with(DEMO, scopes={"openid": "Confirm who you are"})],
        "scopes of the demo resource server: demo-api/profile.read",
    ),
    ("providers[1].scopes", [GH, _with(DEMO, scopes={"demo-api/notes.delete": "Delete"})], "got 'demo-api/notes.delete'"),
    ("providers[0].client_id", [_with(GH, client_id=None)], "the OAuth client id registered at github; it is missing"),
    ("providers[0].client_id", [_with(GH, client_id="has space")], "OAuth client id"),
    ("providers[0].client_id", [_with(DEMO, client_id="abc")], "unset for kind 'demo'"),
    ("providers[0].client_secret_name", [_with(GH, kind="google", **{"client_secret_name": None})], "Secrets Manager secret name"),
    ("providers[0].client_secret_name", [_with(GH, **{"client_secret_name": "a b"})], "Secrets Manager name"),
    ("providers[0].client_secret_name", [_with(DEMO, **{"client_secret_name": "x"})], "unset for kind 'demo'"),
    ("providers[0].client_secret_json_key", [_with(DEMO, **{"client_secret_json_key": "secret"})], "unset for kind 'demo'"),
    ("providers[0].client_secret_json_key", [_with(GH, **{"client_secret_json_key": "a/b"})], "JSON key"),
    ("providers[0].discovery_url", [_with(IDP, discovery_url=None)], "discovery URL of the custom provider; it is missing"),
    ("providers[0].discovery_url", [_with(IDP, discovery_url="http://idp.example.org/.well-known/openid-configuration")], "https URL"),
    ("providers[0].discovery_url", [_with(IDP, discovery_url="https://idp.example.org/")], "ending in /.well-known/openid-configuration"),
    ("providers[0].discovery_url", [_with(GH, discovery_url=IDP["discovery_url"])], "unset unless kind is 'custom-oidc'"),
    ("providers[0].microsoft_tenant_id", [_with(GH, microsoft_tenant_id="contoso")], "unset unless kind is 'microsoft'"),
    ("providers[0].microsoft_tenant_id", [_with(GH, kind="microsoft", microsoft_tenant_id="a/b")], "Entra ID tenant"),
    *[
        ("providers[0].revoke_on_disconnect", [_with(entry, revoke_on_disconnect=value)], expected)
        for entry, value, expected in (
            (
                DEMO,
                True,
                "false for kind demo: Cognito's revocation endpoint takes refresh tokens only, which only AgentCore holds; got true",
            ),
            (DEMO, "true", "false for kind demo: Cognito's revocation endpoint"),
            (_with(GH, kind="google"), True, "unset for kind google (it revokes with the token alone, always); got true"),
            (_with(GH, kind="google"), False, "unset for kind google (it revokes with the token alone, always); got false"),
            (_with(GH, kind="slack"), "true", "unset for kind slack (it revokes with the token alone, always)"),
            (_with(GH, kind="microsoft"), True, "false for kind microsoft: it has no revocation endpoint; got true"),
            (GH, "yes", "true or false"),
            (GH, 1, "true or false"),
        )
    ],
    ("providers[0].revocation_url", [_with(IDP, revoke_on_disconnect=True)], "RFC 7009 revocation endpoint"),
    *[
        (
            "providers[0].revocation_url",
            [_with(IDP, revoke_on_disconnect=True, revocation_url=url)],
            "an https URL without query or fragment",
        )
        for url in (
            "http://idp.example.org/oauth2/revoke",
            "https://idp.example.org/oauth2/revoke?client=agent",
            "https://idp.example.org/oauth2/revoke#x",
            "https://idp.example.org/oauth2/revoke?",
            "https://user@idp.example.org/oauth2/revoke",
            "idp.example.org/oauth2/revoke",
            ["https://idp.example.org/oauth2/revoke"],
        )
    ],
    (
        "providers[0].revocation_url",
        [_with(IDP, revocation_url=REVOKE_URL)],
        "unset unless kind is 'custom-oidc' with revoke_on_disconnect true",
    ),
    (
        "providers[0].revocation_url",
        [_with(IDP, revoke_on_disconnect=False, revocation_url=REVOKE_URL)],
        "unset unless kind is 'custom-oidc' with revoke_on_disconnect true",
    ),
    ("providers[0].revocation_url", [_with(GH, revocation_url=REVOKE_URL)], "unset for kind github (its grant API URL is known)"),
    (
        "providers[0].revocation_url",
        [_with(GH, revoke_on_disconnect=True, revocation_url=REVOKE_URL)],
        "unset for kind github (its grant API URL is known)",
    ),
    ("providers[0].revocation_url", [_with(DEMO, revocation_url=REVOKE_URL)], "unset unless kind is 'custom-oidc'"),
    (
        "providers[0].client_secret_name",
        [_with(GH, revoke_on_disconnect=True, **{"client_secret_name": "agent/github-client"})],
        "a name not ending in '-' and six letters or digits when revoke_on_disconnect is true",
    ),
]


@pytest.mark.parametrize(("key", "value", "expected"), BAD_PROVIDERS, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(BAD_PROVIDERS)])
def test_a_bad_provider_names_its_path(key: str, value: Any, expected: str) -> None:
    """Each problem in `providers` is one line naming the entry and field, from cdk.json's list or -c's string alike."""
    spellings = [value, json.dumps(value)] if isinstance(value, list) else [value]
    for spelling in spellings:
        with pytest.raises(ConfigError) as caught:
            load_config(context_with((("providers", spelling),)))
        message = str(caught.value)
        assert caught.value.key == key
        assert message.startswith(f"context key '{key}': expected ")
        assert expected in message
        assert "\n" not in message


@pytest.mark.parametrize("field", ["client_secret", "secret", "scope"])
def test_an_unknown_key_in_an_entry_is_an_error_that_never_repeats_its_value(field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(context_with(providers(_with(GH, **{field: "s3cr3t-Value"}))))
    message = str(caught.value)
    assert caught.value.key == f"providers[0].{field}"
    assert message.startswith(f"context key 'providers[0].{field}': expected one of the provider keys name, kind, display_name, scopes")
    assert "s3cr3t" not in message and message.endswith("its value is not shown")


def test_a_malformed_list_is_not_repeated() -> None:
    """A list that is not JSON may hold anything, a secret among it: the message never shows it."""
    with pytest.raises(ConfigError) as caught:
        load_config(context_with((("providers", '[{"name": "github", "client_secret": "s3cr3t-Value"'),)))
    assert "s3cr3t" not in str(caught.value) and "(it is not valid JSON)" in str(caught.value)


@pytest.mark.parametrize("key", sorted(RETIRED_PROVIDER_KEYS))
def test_a_retired_provider_key_says_what_to_write_instead(key: str) -> None:
    """The single-provider keys fail with one line naming what replaced them, never as an unknown key, never echoed."""
    with pytest.raises(ConfigError) as caught:
        load_config(context_with(((key, "s3cr3t-Value"),)))
    message = str(caught.value)
    assert caught.value.key == key
    assert message.startswith(f"context key '{key}': expected ")
    assert "'providers' list instead" in message
    assert 'e.g. providers=[{"name": "github", "kind": "github", "display_name": "GitHub", "client_id": "...", ' in message
    assert "did you mean" not in message and "s3cr3t" not in message and "\n" not in message


def test_the_old_provider_key_message_in_full() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(context_with((("provider", "github"),)))
    assert str(caught.value) == (
        'context key \'provider\': expected the \'providers\' list instead, e.g. providers=[{"name": "github", "kind": "github", '
        '"display_name": "GitHub", "client_id": "...", "client_secret_name": "..."}]; its value is not shown'
    )


def test_revocation_with_the_clients_credentials_is_off_by_default() -> None:
    for context in (DEFAULT_CONTEXT, context_with(providers(GH, IDP, _with(GH, name="g", display_name="G", kind="google")))):
        assert {(p.revoke_on_disconnect, p.revocation_url) for p in load_config(context).providers} == {(False, None)}


@pytest.mark.parametrize("spelling", [True, "true", " TRUE "])
def test_github_and_custom_oidc_may_revoke_with_the_clients_credentials(spelling: Any) -> None:
    github, idp = load_config(
        context_with(
            providers(_with(GH, revoke_on_disconnect=spelling), _with(IDP, revoke_on_disconnect=spelling, revocation_url=REVOKE_URL))
        )
    ).providers
    assert (github.revoke_on_disconnect, github.revocation_url) == (True, None)  # GitHub's grant API URL is known
    assert (idp.revoke_on_disconnect, idp.revocation_url) == (True, REVOKE_URL)


@pytest.mark.parametrize("spelling", [False, "false"])
def test_false_may_be_written_where_true_is_refused(spelling: Any) -> None:
    """demo, microsoft (and github, custom-oidc) take an explicit false; google and slack take nothing (test above)."""
    entries = [
        _with(DEMO, revoke_on_disconnect=spelling),
        _with(GH, kind="microsoft", revoke_on_disconnect=spelling),
        _with(GH, name="gh", display_name="GH", revoke_on_disconnect=spelling),
        _with(IDP, revoke_on_disconnect=spelling),
    ]
    assert [p.revoke_on_disconnect for p in load_config(context_with(providers(*entries))).providers] == [False] * 4


def test_synth_with_providers_from_the_command_line() -> None:
    """`-c providers='[...]'` reaches the app as a string (the CLI's CDK_CONTEXT_JSON carries it so; `providers`
    spells it so) and is parsed into one credential provider each. app.py itself, in a process of its own, is
    synthesized by test_packaging.py's determinism test."""
    template = synth(providers(GH, DEMO)).raw("agent_identity")
    names = sorted(r["Properties"]["Name"] for r in template["Resources"].values() if r["Type"].endswith("OAuth2CredentialProvider"))
    assert names == ["agentcore-ecs-sandbox-github", "agentcore-ecs-sandbox-notes"]
