"""No secret value, and no plaintext secret, in any template, manifest or container environment.

Secrets reach the services only as Secrets Manager references: `Secrets[].ValueFrom` in ECS task
definitions, a `*_SECRET_ARN` variable for the Lambda variant, `ClientSecretConfig.SecretId` for the
credential provider. Secret values are generated (`GenerateSecretString`, Cognito's `GenerateSecret`) or
copied by `Fn::GetAtt` at deploy time, never written into a template. A canary proves that secrets in
the synthesizing process's environment never reach the cloud assembly.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest

from app import build_stacks
from cdk_app.config import ConfigError, load_config
from tests.stacks.conftest import GITHUB_PROVIDER, IDP_PROVIDER, NOTES_PROVIDER, context_with, providers, resources
from tests.stacks.static_tools import SHAPES, assembly, templates

SECRETISH_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|PRIVATE|CREDENTIAL|API_KEY|SIGNING_KEY", re.IGNORECASE)
# A variable with a secret-like name may carry a *reference* to a secret, never the secret.
REFERENCE_NAME = re.compile(r"_(ARN|NAME|JSON_KEY)$")
KNOWN_SECRET_FORMATS = {
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "Slack token": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b"),
    "JSON web token": re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\."),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
}
# Strings that are long and random by construction, not secrets: asset hashes, CDK's hashed logical ids
# and construct addresses, S3 keys of assets, and logical ids (CDK appends 8 upper-case hex digits).
NOT_SECRET = re.compile(r"^([0-9a-f]{32,64}(\.(json|zip))?|c8[0-9a-f]{40}|AWS679f53fac002430cb0da5b7982bd2287|[A-Za-z0-9]+[0-9A-F]{8})$")
SENTINEL = "CANARY-sentinel-client-secret-9f3b1c7e2d"


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def looks_random(text: str) -> bool:
    """A long token without separators or words, with the entropy of random base64 or hex."""
    if len(text) < 24 or NOT_SECRET.match(text) or re.search(r"[\s/:.{}$]", text):
        return False
    return entropy(text) > 4.3 and bool(re.search(r"\d", text)) and bool(re.search(r"[A-Za-z]", text))


def _all_templates() -> list[tuple[str, Path, dict[str, Any]]]:
    return [(shape, path, json.loads(path.read_text())) for shape in SHAPES for path in templates(shape)]


@pytest.fixture(scope="module")
def every_template() -> list[tuple[str, Path, dict[str, Any]]]:
    return _all_templates()


def _exports(shape: str) -> dict[str, dict[str, Any]]:
    """Export name -> the resource it exports (by Ref), across the shape's stacks."""
    found: dict[str, dict[str, Any]] = {}
    for path in templates(shape):
        template = json.loads(path.read_text())
        for output in template.get("Outputs", {}).values():
            name, value = output.get("Export", {}).get("Name"), output.get("Value")
            if isinstance(name, str) and isinstance(value, dict) and "Ref" in value:
                found[name] = template["Resources"].get(value["Ref"], {})
    return found


def _is_secret_reference(shape: str, value: Any) -> bool:
    """A Secrets Manager secret, by Ref or import of one, or a literal `arn:…:secretsmanager:…:secret:` ARN."""
    if isinstance(value, dict) and "Fn::ImportValue" in value:
        return _exports(shape).get(value["Fn::ImportValue"], {}).get("Type") == "AWS::SecretsManager::Secret"
    if isinstance(value, dict) and "Fn::Join" in value:
        return ":secretsmanager:" in "".join(p for p in value["Fn::Join"][1] if isinstance(p, str))
    return isinstance(value, str) and re.match(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:", value) is not None


def test_no_known_secret_format_or_random_token_in_any_template(every_template: list[tuple[str, Path, dict[str, Any]]]) -> None:
    suspicious = []
    for shape, path, template in every_template:
        for text in strings(template):
            suspicious += [f"{shape}/{path.name}: {kind}" for kind, pattern in KNOWN_SECRET_FORMATS.items() if pattern.search(text)]
            if looks_random(text):
                suspicious.append(f"{shape}/{path.name}: random-looking {text[:6]}… ({len(text)} chars)")
    assert suspicious == []


def test_the_random_token_detector_detects() -> None:
    """Control for the scan above: a generated secret is caught, names and hashes are not."""
    assert looks_random("q8Zr2LxV0bNw7TfK3pYdHs9EaUc4GmJ1")
    assert not looks_random("agentcore-ecs-sandbox-agent")
    assert not looks_random("FlowSigningKeySecret51E75D83")
    assert not looks_random("0bc1731fb472b5e58548c4ba39f264b63fd144ca9ee19d87869bbb7aea854f00.json")


def test_secrets_are_generated_or_copied_at_deploy_never_literal(every_template: list[tuple[str, Path, dict[str, Any]]]) -> None:
    seen = 0
    for shape, path, template in every_template:
        for name, secret in resources(template, "AWS::SecretsManager::Secret").items():
            seen += 1
            props = secret["Properties"]
            value = props.get("SecretString")
            if value is None:
                assert "GenerateSecretString" in props, f"{shape}/{name}: neither generated nor copied"
                continue
            # Only a deploy-time copy such as {"client_secret": <GetAtt Client.ClientSecret>}: literal parts are JSON syntax.
            assert isinstance(value, dict) and "Fn::Join" in value, f"{shape}/{path.name}/{name}: literal SecretString"
            literal = "".join(p for p in value["Fn::Join"][1] if isinstance(p, str))
            assert re.fullmatch(r'[{}":,\s\w]*', literal) and not looks_random(literal), f"{shape}/{name}: {literal!r}"
            assert any(isinstance(p, dict) and "Fn::GetAtt" in p for p in value["Fn::Join"][1])
        for name, client in resources(template, "AWS::Cognito::UserPoolClient").items():
            assert "ClientSecret" not in client["Properties"], f"{shape}/{name}: a client secret in the template"
    assert seen >= len(SHAPES)


def test_credential_provider_reads_its_client_secret_from_secrets_manager(every_template: list[tuple[str, Path, dict[str, Any]]]) -> None:
    checked = 0
    for shape, _path, template in every_template:
        for name, provider in resources(template, "AWS::BedrockAgentCore::OAuth2CredentialProvider").items():
            config = next(iter(provider["Properties"]["Oauth2ProviderConfigInput"].values()))
            assert "ClientSecret" not in config, f"{shape}/{name}: client secret by value"
            assert config["ClientSecretSource"] == "EXTERNAL"
            secret_id = config["ClientSecretConfig"]["SecretId"]
            assert _is_secret_reference(shape, secret_id) or isinstance(secret_id, str), f"{shape}/{name}: {secret_id}"
            checked += 1
    assert checked == sum(len(load_config(context_with(shape)).providers) for shape in SHAPES.values())


def _check_environment(shape: str, owner: str, variables: dict[str, Any]) -> list[str]:
    problems = []
    for name, value in variables.items():
        if SECRETISH_NAME.search(name) and not REFERENCE_NAME.search(name):
            problems.append(f"{shape}/{owner}: {name} has a secret-like name")
        if name.endswith("_SECRET_ARN") and not _is_secret_reference(shape, value):
            problems.append(f"{shape}/{owner}: {name} is not a Secrets Manager reference")
        for text in strings(value):
            if looks_random(text) or any(p.search(text) for p in KNOWN_SECRET_FORMATS.values()):
                problems.append(f"{shape}/{owner}: {name} holds a secret-looking value")
    return problems


def test_container_and_function_environments_hold_no_secrets(every_template: list[tuple[str, Path, dict[str, Any]]]) -> None:
    problems: list[str] = []
    containers = functions = 0
    for shape, _path, template in every_template:
        for name, task in resources(template, "AWS::ECS::TaskDefinition").items():
            for container in task["Properties"]["ContainerDefinitions"]:
                containers += 1
                problems += _check_environment(shape, name, {e["Name"]: e["Value"] for e in container.get("Environment", [])})
                secrets = container.get("Secrets", [])
                assert secrets, f"{shape}/{name}: the flow signing key arrives through Secrets"
                problems += [f"{shape}/{name}: {s['Name']} valueFrom" for s in secrets if not _is_secret_reference(shape, s["ValueFrom"])]
        for name, function in resources(template, "AWS::Lambda::Function").items():
            functions += 1
            problems += _check_environment(shape, name, function["Properties"].get("Environment", {}).get("Variables", {}))
    assert problems == []
    assert containers >= len(SHAPES) and functions > 0


def test_context_cannot_carry_a_secret_value() -> None:
    """Config takes secret *names* only: a key that would carry a client secret is refused before any construct."""
    for key in ("provider_client_secret", "client_secret", "flow_signing_key"):
        with pytest.raises(ConfigError, match=f"context key '{key}'"):
            load_config(context_with(((key, SENTINEL),)))


def test_canary_in_the_environment_never_reaches_the_assembly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Plant a sentinel wherever a careless synth might pick a secret up, synthesize, then grep every output file."""
    for variable in (
        "PROVIDER_CLIENT_SECRET",
        "GITHUB_CLIENT_SECRET",
        "CLIENT_SECRET",
        "FLOW_SIGNING_KEYS",
        "OAUTH_CLIENT_SECRET",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ):
        monkeypatch.setenv(variable, SENTINEL)
    overrides = providers(NOTES_PROVIDER, {**GITHUB_PROVIDER, "client_secret_json_key": "client_secret"}, IDP_PROVIDER)
    app = cdk.App(context=context_with(overrides), outdir=str(tmp_path))
    build_stacks(app, load_config(app.node.get_all_context()))
    app.synth()
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".template.json") for p in files)
    leaked = [p.relative_to(tmp_path).as_posix() for p in files if SENTINEL.encode() in p.read_bytes()]
    assert leaked == []


def test_canary_check_would_see_a_leak(tmp_path: Path) -> None:
    """Control: the same grep finds the sentinel when a template does contain it."""
    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "Leaky")
    cdk.CfnOutput(stack, "Oops", value=SENTINEL)
    app.synth()
    assert any(SENTINEL.encode() in p.read_bytes() for p in tmp_path.rglob("*.template.json"))


def test_assemblies_of_every_shape_are_scanned() -> None:
    assert all(assembly(shape).is_dir() for shape in SHAPES)
