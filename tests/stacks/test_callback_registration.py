"""Each demo client's callback registration holds through updates: tests over pairs of synthesized configurations.

CloudFormation updates a resource when its properties, with references resolved, differ between two
deploys ("Understand update behaviors of stack resources", CloudFormation User Guide). An update of the
app client runs UpdateUserPoolClient with the template's settings, and Cognito resets what it is not
given ("Updating user pool and app client configuration", Cognito Developer Guide). So: whenever
the client would be updated or replaced, the registration that writes AgentCore's callback must run too.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib.resources import files
from typing import Any

import aws_cdk as cdk
import pytest

from app import build_stacks
from cdk_app.config import DEMO_API_SCOPES, AppConfig, ProviderConfig, load_config
from stacks.constructs import callback_registration
from tests.stacks.conftest import DEFAULT_CONTEXT, context_with, one, resources
from tests.support.moto_aws import moto_aws

_SCHEMAS = files("cfnlint") / "data" / "schemas"  # CloudFormation resource schemas, as cfn-lint ships them
Templates = dict[str, dict[str, Any]]


@cache
def _create_only(resource_type: str) -> frozenset[str]:
    """Top-level properties whose change makes CloudFormation replace the resource (cfn-lint's resource schemas)."""
    index = json.loads((_SCHEMAS / "providers" / "us-east-1.json").read_text())
    if resource_type not in index:
        return frozenset()
    schema = json.loads((_SCHEMAS / "resources" / f"{index[resource_type]}.json").read_text())
    return frozenset(path.split("/")[2] for path in schema.get("createOnlyProperties", []))


def _stack_of_export(templates: Templates, name: str) -> tuple[str, Any]:
    for stack, template in templates.items():
        for output in template.get("Outputs", {}).values():
            if output.get("Export", {}).get("Name") == name:
                return stack, output["Value"]
    raise AssertionError(f"no stack exports {name}")


def resolved(templates: Templates, stack: str, value: Any) -> Any:  # noqa: PLR0911
    """The value with every reference replaced by what identifies it at deploy time.

    A Ref or GetAtt becomes the resource's logical id plus a digest of its create-only properties:
    it changes exactly when the resource is new or replaced (and its id, ARN or attributes may change).
    Imports are followed to the exporting stack.
    """
    if isinstance(value, dict) and len(value) == 1:
        ((fn, arg),) = value.items()
        if fn in ("Ref", "Fn::GetAtt"):
            logical_id, attribute = (arg, "Ref") if fn == "Ref" else (arg[0], arg[1])
            if logical_id not in templates[stack]["Resources"]:
                return "${" + logical_id + "}"  # a pseudo parameter
            return f"{logical_id}#{_generation(templates, stack, logical_id)}.{attribute}"
        if fn == "Fn::ImportValue":
            return resolved(templates, *_stack_of_export(templates, arg))
        if fn == "Fn::Join":
            return arg[0].join(str(resolved(templates, stack, part)) for part in arg[1])
    if isinstance(value, dict):
        return {k: resolved(templates, stack, v) for k, v in value.items()}
    if isinstance(value, list):
        return [resolved(templates, stack, v) for v in value]
    return value


def _generation(templates: Templates, stack: str, logical_id: str) -> str:
    resource = templates[stack]["Resources"][logical_id]
    properties = resource.get("Properties", {})
    fixed = {k: properties[k] for k in sorted(_create_only(resource["Type"])) if k in properties}
    text = json.dumps([resource["Type"], resolved(templates, stack, fixed)], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# --------------------------------------------------------------------------- configurations

STACKS = ("identity", "agent_identity")
DEMO_CLIENTS = ("Notes", "Tasks")  # the default demo providers' names, as their construct ids spell them


_ORIGINAL_SETTINGS = callback_registration.demo_client_settings


def _fewer_notes_scopes() -> str:
    """The default providers, the notes provider asking for one scope less (config, not code)."""
    [notes, tasks] = DEFAULT_CONTEXT["providers"]
    return json.dumps([{**notes, "scopes": {"demo-api/notes.read": DEMO_API_SCOPES["notes.read"]}}, tasks])


def _other_token_validity(**kwargs: Any) -> dict[str, Any]:
    return {**_ORIGINAL_SETTINGS(**kwargs), "RefreshTokenValidity": 1440}


def _renamed(config: AppConfig, provider: ProviderConfig) -> str:
    return f"{config.app_name}-{config.profile.value}-{provider.name}2"


# Each variant is one update of a deployed default demo: context overrides and code edits (patches).
VARIANTS: dict[str, tuple[tuple[tuple[str, Any], ...], tuple[tuple[Any, str, Any], ...]]] = {
    "default": ((), ()),
    "domain change": ((("domain_name", "chat.example.com"),), ()),
    "scope change": ((("providers", _fewer_notes_scopes()),), ()),
    "client setting change": ((), ((callback_registration, "demo_client_settings", _other_token_validity),)),
    "provider replacement": ((), ((AppConfig, "credential_provider_name", _renamed),)),
}


@cache
def templates(variant: str) -> Templates:
    overrides, patches = VARIANTS[variant]
    with pytest.MonkeyPatch.context() as patch:
        for target, name, value in patches:
            patch.setattr(target, name, value)
        app = cdk.App(context=context_with(overrides))
        stacks = build_stacks(app, load_config(app.node.get_all_context()))
        return {name: dict(cdk.assertions.Template.from_stack(getattr(stacks, name)).to_json()) for name in STACKS}


def _logical_id(template: dict[str, Any], resource_type: str, name_part: str) -> str:
    [found] = [k for k in resources(template, resource_type) if name_part in k]
    return found


def client_as_deployed(t: Templates, name: str) -> Any:
    """Demo client `name`'s properties as CloudFormation would apply them, with its own identity."""
    logical_id = _logical_id(t["identity"], "AWS::Cognito::UserPoolClient", f"AgentCoreClient{name}")
    return resolved(t, "identity", {"Ref": logical_id}), resolved(t, "identity", t["identity"]["Resources"][logical_id]["Properties"])


def registration_as_deployed(t: Templates, name: str) -> Any:
    logical_id = _logical_id(t["agent_identity"], "Custom::AWS", f"DemoCallbackRegistration{name}")
    return resolved(t, "agent_identity", t["agent_identity"]["Resources"][logical_id]["Properties"])


def provider_as_deployed(t: Templates, name: str) -> Any:
    logical_id = _logical_id(t["agent_identity"], "AWS::BedrockAgentCore::OAuth2CredentialProvider", f"CredentialProvider{name}")
    return resolved(t, "agent_identity", {"Fn::GetAtt": [logical_id, "CallbackUrl"]})


PAIRS = [(a, b) for a in VARIANTS for b in VARIANTS if a != b]


@pytest.mark.parametrize(("before", "after"), PAIRS, ids=[f"{a} -> {b}" for a, b in PAIRS])
def test_every_update_of_a_client_reruns_its_registration(before: str, after: str) -> None:
    old, new = templates(before), templates(after)
    for name in DEMO_CLIENTS:
        if client_as_deployed(old, name) != client_as_deployed(new, name):
            assert registration_as_deployed(old, name) != registration_as_deployed(new, name), (
                f"{before} -> {after}: CloudFormation rewrites demo client {name}, its callback registration does not run again"
            )
        if provider_as_deployed(old, name) != provider_as_deployed(new, name):
            assert registration_as_deployed(old, name) != registration_as_deployed(new, name), (
                f"{before} -> {after}: AgentCore's callback URL for {name} changes, its callback registration does not run again"
            )


@pytest.mark.parametrize("variant", ["scope change", "client setting change", "provider replacement"])
def test_each_change_reaches_the_client_through_the_registration(variant: str) -> None:
    """Keeps the pair test from passing vacuously: these updates do change what must be registered."""
    assert registration_as_deployed(templates(variant), "Notes") != registration_as_deployed(templates("default"), "Notes")


def test_a_change_to_one_provider_leaves_the_others_registration_alone() -> None:
    assert registration_as_deployed(templates("scope change"), "Tasks") == registration_as_deployed(templates("default"), "Tasks")


def test_the_domain_is_no_part_of_the_demo_clients() -> None:
    """Today's break: the client's callback was a placeholder under `domain_name`, rewritten by every domain change."""
    for name in DEMO_CLIENTS:
        assert client_as_deployed(templates("domain change"), name) == client_as_deployed(templates("default"), name)


def test_cloudformation_holds_no_client_setting_it_could_reset() -> None:
    """No placeholder: the template gives each client only what fixes its identity, so CloudFormation never updates it."""
    clients = [
        c["Properties"]
        for k, c in resources(templates("default")["identity"], "AWS::Cognito::UserPoolClient").items()
        if "AgentCoreClient" in k
    ]
    assert len(clients) == len(DEMO_CLIENTS)
    for client in clients:
        assert set(client) - _create_only("AWS::Cognito::UserPoolClient") <= {"ClientName"}
        assert "CallbackURLs" not in client


def _registration_call(t: Templates, values: dict[str, str]) -> dict[str, Any]:
    """The notes registration's UpdateUserPoolClient parameters, each reference replaced by the value its name points at."""
    create = one(t["agent_identity"], "Custom::AWS", "DemoCallbackRegistrationNotes")["Properties"]["Create"]
    text = ""
    for part in create["Fn::Join"][1]:
        name = part if isinstance(part, str) else json.dumps(part)
        text += part if isinstance(part, str) else next(value for key, value in values.items() if key in name)
    call = json.loads(text)
    assert (call["service"], call["action"]) == ("CognitoIdentityServiceProvider", "updateUserPoolClient")
    return dict(call["parameters"])


def test_the_registration_makes_the_bare_client_agentcores_client_and_keeps_its_secret() -> None:
    """Real boto3 against moto's Cognito: the client as CloudFormation creates it, then the registration's call."""
    idp = moto_aws().client("cognito-idp")
    t = templates("default")
    pool_id = idp.create_user_pool(PoolName="demo-as")["UserPool"]["Id"]
    idp.create_resource_server(
        UserPoolId=pool_id,
        Identifier="demo-api",
        Name="demo-api",
        Scopes=[{"ScopeName": n, "ScopeDescription": d} for n, d in DEMO_API_SCOPES.items()],
    )
    template_client = one(t["identity"], "AWS::Cognito::UserPoolClient", "AgentCoreClientNotes")["Properties"]
    created = idp.create_user_pool_client(UserPoolId=pool_id, **{k: v for k, v in template_client.items() if k != "UserPoolId"})[
        "UserPoolClient"
    ]
    callback = "https://bedrock-agentcore.eu-west-1.amazonaws.com/identities/oauth2/callback/6f1e2d3c-0000-4000-8000-000000000001"

    # Order matters: the resource server's export name contains the pool's.
    values = {
        "CallbackUrl": callback,
        "AgentCoreClientNotes": created["ClientId"],
        "DemoApi": "demo-api",
        "DemoAuthorizationServerPool": pool_id,
    }
    idp.update_user_pool_client(**_registration_call(t, values))

    client = idp.describe_user_pool_client(UserPoolId=pool_id, ClientId=created["ClientId"])["UserPoolClient"]
    assert client["CallbackURLs"] == [callback]
    assert client["ClientSecret"] == created["ClientSecret"]  # the secret AgentCore reads is unchanged
    assert client["AllowedOAuthFlows"] == ["code"] and client["AllowedOAuthFlowsUserPoolClient"] is True
    # The notes provider's scopes only: a token for the tasks provider's scopes cannot be had through this client.
    assert client["AllowedOAuthScopes"] == list(DEFAULT_CONTEXT["providers"][0]["scopes"])
    assert client["ClientName"] == template_client["ClientName"]
