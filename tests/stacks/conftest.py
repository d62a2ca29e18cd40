"""Synthesizes the app once per configuration and hands templates to the tests."""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template
from pydantic_settings import BaseSettings

from app import AppStacks, build_stacks
from cdk_app.config import AppConfig, load_config
from services.agent.settings import AgentSettings
from services.demo_api.settings import DemoApiSettings
from services.session_binding.settings import BindingSettings

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONTEXT: dict[str, Any] = json.loads((ROOT / "cdk.json").read_text())["context"]

GITHUB_PROVIDER: dict[str, Any] = {
    "name": "github",
    "kind": "github",
    "display_name": "GitHub",
    "client_id": "Iv1.0123456789abcdef",
    "client_secret_name": "agent/github-oauth",
}
IDP_PROVIDER: dict[str, Any] = {
    "name": "idp",
    "kind": "custom-oidc",
    "display_name": "Company IdP",
    "client_id": "agent",
    "client_secret_name": "idp/agent",
    "discovery_url": "https://idp.example.org/.well-known/openid-configuration",
}
NOTES_PROVIDER: dict[str, Any] = {
    "name": "notes",
    "kind": "demo",
    "display_name": "Demo Notes",
    "scopes": {"demo-api/notes.read": "Read your notes", "demo-api/notes.write": "Create, change and delete your notes"},
}


def providers(*entries: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The `providers` override as `-c providers='[...]'` spells it (a string: overrides stay hashable for `synth`)."""
    return (("providers", json.dumps(list(entries))),)


GITHUB = providers(GITHUB_PROVIDER)
# Three kinds at once: a demo provider (the in-stack authorization server), a vendor, and a custom OIDC provider.
THREE = providers(NOTES_PROVIDER, GITHUB_PROVIDER, IDP_PROVIDER)
IDP_REVOCATION_URL = "https://idp.example.org/oauth2/revoke"
# The same three with revocation on disconnect where it may be on: GitHub (JSON true) and the custom OIDC provider
# (the command line's "true", with its RFC 7009 endpoint). The demo provider keeps the default (off).
THREE_REVOKING = providers(
    NOTES_PROVIDER,
    {**GITHUB_PROVIDER, "revoke_on_disconnect": True},
    {**IDP_PROVIDER, "revoke_on_disconnect": "true", "revocation_url": IDP_REVOCATION_URL},
)
PROD = (("profile", "prod"),)
CERT = (
    ("hosted_zone_id", ""),
    ("hosted_zone_name", ""),
    ("certificate_arn", "arn:aws:acm:eu-west-1:111122223333:certificate/12345678-1234-1234-1234-123456789012"),
)


def context_with(overrides: tuple[tuple[str, Any], ...] = ()) -> dict[str, Any]:
    context = dict(DEFAULT_CONTEXT)
    context.update(dict(overrides))
    return context


@dataclass
class Synth:
    app: cdk.App
    config: AppConfig
    stacks: AppStacks
    outdir: Path

    def template(self, stack: str) -> Template:
        return Template.from_stack(getattr(self.stacks, stack))

    def raw(self, stack: str) -> dict[str, Any]:
        return dict(self.template(stack).to_json())


@cache
def synth(overrides: tuple[tuple[str, Any], ...] = ()) -> Synth:
    """Build the app as app.py does (without the nag plugins; tests run the packs explicitly)."""
    outdir = Path(tempfile.mkdtemp(prefix="cdk-test-"))
    app = cdk.App(context=context_with(overrides), outdir=str(outdir))
    config = load_config(app.node.get_all_context())
    stacks = build_stacks(app, config)
    return Synth(app=app, config=config, stacks=stacks, outdir=outdir)


@pytest.fixture(scope="session")
def demo() -> Synth:
    return synth()


@pytest.fixture(scope="session")
def prod() -> Synth:
    return synth(PROD)


@pytest.fixture(scope="session")
def github() -> Synth:
    return synth(GITHUB)


@pytest.fixture(scope="session")
def three() -> Synth:
    return synth(THREE)


@pytest.fixture(scope="session")
def three_revoking() -> Synth:
    return synth(THREE_REVOKING)


def resources(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == resource_type}


def one(template: dict[str, Any], resource_type: str, name_part: str = "") -> dict[str, Any]:
    found = [v for k, v in resources(template, resource_type).items() if name_part in k]
    assert len(found) == 1, f"expected one {resource_type} matching {name_part!r}, found {len(found)}"
    return found[0]


def render(value: Any) -> Any:  # noqa: PLR0911
    """Render CloudFormation intrinsics as readable strings: `arn:${AWS::Partition}:...`."""
    if isinstance(value, dict) and len(value) == 1:
        ((fn, arg),) = value.items()
        if fn == "Ref":
            return "${" + arg + "}"
        if fn == "Fn::Join":
            return arg[0].join(str(render(part)) for part in arg[1])
        if fn == "Fn::GetAtt":
            return "${" + ".".join(arg) + "}"
        if fn == "Fn::ImportValue":
            return "${Import:" + str(render(arg)).split(":")[-1] + "}"
        if fn == "Fn::Sub":
            return arg if isinstance(arg, str) else arg[0]
    if isinstance(value, dict):
        return {k: render(v) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v) for v in value]
    return value


def statements(policy_resource: dict[str, Any]) -> list[dict[str, Any]]:
    return [render(s) for s in policy_resource["Properties"]["PolicyDocument"]["Statement"]]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


SETTINGS_CLASSES: dict[str, type[BaseSettings]] = {
    "agent": AgentSettings,
    "session_binding": BindingSettings,
    "demo_api": DemoApiSettings,
}


def settings_class(service: str) -> type[BaseSettings]:
    """The service's pydantic settings class: the names and required fields its container must get."""
    return SETTINGS_CLASSES[service]


def required_variables(service: str) -> set[str]:
    """The variables the service's settings class cannot start without (fields without a default, upper-cased)."""
    return {name.upper() for name, field in settings_class(service).model_fields.items() if field.is_required()}


DOCKERFILE = ROOT / "services" / "Dockerfile"


def dockerfile_stage(stage: str) -> str:
    """The text of one stage of services/Dockerfile, from its `FROM ... AS <stage>` line to the next FROM."""
    text = DOCKERFILE.read_text()
    starts = [m for m in re.finditer(r"^FROM \S+ AS (\w+)$", text, re.MULTILINE)]
    for i, match in enumerate(starts):
        if match.group(1) == stage:
            return text[match.start() : starts[i + 1].start() if i + 1 < len(starts) else len(text)]
    raise AssertionError(f"services/Dockerfile has no stage {stage!r}")


def image_assets(outdir: Path, stack: str = "Services") -> list[dict[str, Any]]:
    """The sources of the stack's container image assets, as the CDK asset manifest lists them."""
    manifest = json.loads((outdir / f"{stack}.assets.json").read_text())
    return [asset["source"] for asset in manifest.get("dockerImages", {}).values()]
