"""Demo resource API: image-based function, HTTP API with JWT authorizer, encrypted table, least privilege, wiring."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk.assertions import Match

from stacks.constructs.service_image import SERVICES_DIR
from tests.stacks.conftest import (
    Synth,
    as_list,
    dockerfile_stage,
    image_assets,
    one,
    render,
    required_variables,
    resources,
    settings_class,
    statements,
)

ISSUER = "https://cognito-idp.${AWS::Region}.${AWS::URLSuffix}/${Import:ExportsOutputRefDemoAuthorizationServerPool5D5371D5CB8E2597}"
NOTES_CLIENT = "${Import:ExportsOutputRefDemoAuthorizationServerAgentCoreClientNotesBDB32CCF469D5F70}"
TASKS_CLIENT = "${Import:ExportsOutputRefDemoAuthorizationServerAgentCoreClientTasksEBD21472E18E7F8B}"


def _function(template: dict[str, Any]) -> dict[str, Any]:
    return one(template, "AWS::Lambda::Function", "DemoApiFunction")


def _environment(template: dict[str, Any]) -> dict[str, Any]:
    return {k: render(v) for k, v in _function(template)["Properties"]["Environment"]["Variables"].items()}


def _agent_environment(template: dict[str, Any]) -> dict[str, Any]:
    tasks = [t["Properties"]["ContainerDefinitions"][0] for t in resources(template, "AWS::ECS::TaskDefinition").values()]
    [agent] = [c for c in tasks if "BEDROCK_MODEL_ID" in {e["Name"] for e in c["Environment"]}]
    return {e["Name"]: e["Value"] for e in agent["Environment"]}


def test_function_runs_the_demo_api_image_with_limits(demo: Synth) -> None:
    props = _function(demo.raw("services"))["Properties"]
    assert props["PackageType"] == "Image"
    assert "ImageUri" in props["Code"]
    assert props["Architectures"] == ["x86_64"]
    assert props["MemorySize"] == 512
    assert props["Timeout"] == 15
    assert props["ReservedConcurrentExecutions"] == 5
    assert render(props["LoggingConfig"]["LogGroup"]).startswith("${DemoApiFunctionLogs")

    [image] = [a for a in image_assets(demo.outdir) if a["dockerBuildArgs"] == {"SERVICE": "demo_api"}]
    assert (image["dockerFile"], image["dockerBuildTarget"]) == ("Dockerfile", "lambda")
    assert image["platform"] == "linux/amd64"


def test_function_environment_pins_the_demo_authorization_server(demo: Synth) -> None:
    env = _environment(demo.raw("services"))
    assert env["DEMO_ISSUER"] == ISSUER
    # Every demo provider's app client, space-separated: a token issued to any of them is accepted.
    assert env["DEMO_CLIENT_IDS"] == f"{NOTES_CLIENT} {TASKS_CLIENT}"
    assert "DEMO_CLIENT_ID" not in env
    assert env["NOTES_TABLE"].startswith("${DemoApiNotes")
    assert env["APP_PROFILE"] == "sandbox"
    assert "DEMO_JWKS_URL" not in env  # derived from the issuer: https://cognito-idp.../.well-known/jwks.json


def test_function_environment_provides_every_required_setting(demo: Synth) -> None:
    provided = set(_environment(demo.raw("services"))) | {"AWS_REGION"}  # Lambda sets AWS_REGION
    required = required_variables("demo_api")
    assert required <= provided
    assert set(_environment(demo.raw("services"))) <= {name.upper() for name in settings_class("demo_api").model_fields}


def test_http_api_routes_need_a_jwt_with_the_routes_scope(demo: Synth) -> None:
    template = demo.raw("services")
    routes = {r["Properties"]["RouteKey"]: r["Properties"] for r in resources(template, "AWS::ApiGatewayV2::Route").values()}
    scopes = {
        "GET /profile": "demo-api/profile.read",
        "GET /notes": "demo-api/notes.read",
        "POST /notes": "demo-api/notes.write",
        "GET /tasks": "demo-api/tasks.read",
        "POST /tasks": "demo-api/tasks.write",
        "POST /tasks/{id}/done": "demo-api/tasks.write",
    }
    assert set(routes) == set(scopes)  # no /health, no $default: nothing anonymous reaches the function
    for key, scope in scopes.items():
        assert routes[key]["AuthorizationType"] == "JWT"
        assert routes[key]["AuthorizationScopes"] == [scope]
        assert render(routes[key]["AuthorizerId"]).startswith("${DemoApiDemoAuthorizationServer")

    authorizer = one(template, "AWS::ApiGatewayV2::Authorizer")["Properties"]
    assert authorizer["AuthorizerType"] == "JWT"
    assert authorizer["IdentitySource"] == ["$request.header.Authorization"]
    assert render(authorizer["JwtConfiguration"]["Issuer"]) == ISSUER
    # Cognito access tokens carry `client_id`, no `aud`: API Gateway matches it against any demo provider's client.
    assert [render(a) for a in authorizer["JwtConfiguration"]["Audience"]] == [NOTES_CLIENT, TASKS_CLIENT]
    integration = one(template, "AWS::ApiGatewayV2::Integration")["Properties"]
    assert integration["IntegrationType"] == "AWS_PROXY"
    assert integration["PayloadFormatVersion"] == "2.0"


def test_no_unauthenticated_route_is_acknowledged(demo: Synth) -> None:
    """Anonymous requests would share the stage throttle and reserved concurrency with the agent's calls."""
    demo_api = demo.stacks.services.node.find_child("DemoApi")
    acknowledged = {
        rule
        for construct in demo_api.node.find_all()
        for entry in construct.node.metadata
        if entry.type == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY
        for rule in entry.data
    }
    assert acknowledged, "expected the table's and function's acknowledgements"
    assert not [rule for rule in acknowledged if "APIG4" in rule]  # route without authorization


def test_stage_is_throttled_and_logs_access_to_an_encrypted_group(demo: Synth) -> None:
    template = demo.raw("services")
    stage = one(template, "AWS::ApiGatewayV2::Stage")["Properties"]
    assert stage["StageName"] == "$default"
    assert stage["AutoDeploy"] is True
    assert stage["DefaultRouteSettings"] == {"ThrottlingBurstLimit": 40, "ThrottlingRateLimit": 20}
    assert render(stage["AccessLogSettings"]["DestinationArn"]).startswith("${DemoApiAccessLogs")
    log_format = json.loads(stage["AccessLogSettings"]["Format"])
    assert {"requestId", "status", "routeKey", "ip"} <= set(log_format)
    assert not any("authorization" in v.lower() or "querystring" in v.lower() for v in log_format.values())

    for name in ("DemoApiAccessLogs", "DemoApiFunctionLogs"):
        group = one(template, "AWS::Logs::LogGroup", name)
        assert render(group["Properties"]["KmsKeyId"]).startswith("${Import:")
        assert group["Properties"]["RetentionInDays"] == 30


def test_table_is_on_demand_encrypted_with_its_own_key(demo: Synth) -> None:
    demo.template("services").has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "sub", "KeyType": "HASH"}, {"AttributeName": "id", "KeyType": "RANGE"}],
            "AttributeDefinitions": Match.array_with([{"AttributeName": "sub", "AttributeType": "S"}]),
            "SSESpecification": {"SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": Match.any_value()},
        },
    )
    table = one(demo.raw("services"), "AWS::DynamoDB::Table", "DemoApiNotes")
    assert render(table["Properties"]["SSESpecification"]["KMSMasterKeyId"]).startswith("${DemoApiTableKey")
    key = one(demo.raw("services"), "AWS::KMS::Key", "DemoApiTableKey")["Properties"]
    assert key["EnableKeyRotation"] is True


def test_table_has_pitr_and_is_retained_in_prod_only(demo: Synth, prod: Synth) -> None:
    sandbox = one(demo.raw("services"), "AWS::DynamoDB::Table", "DemoApiNotes")
    assert sandbox["Properties"]["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": False}
    assert sandbox["DeletionPolicy"] == "Delete"
    assert sandbox["Properties"].get("DeletionProtectionEnabled", False) is False

    kept = one(prod.raw("services"), "AWS::DynamoDB::Table", "DemoApiNotes")
    assert kept["Properties"]["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert kept["DeletionPolicy"] == "Retain"
    assert kept["UpdateReplacePolicy"] == "Retain"
    assert kept["Properties"]["DeletionProtectionEnabled"] is True
    assert one(prod.raw("services"), "AWS::KMS::Key", "DemoApiTableKey")["DeletionPolicy"] == "Retain"


def test_function_may_touch_only_its_table_key_and_logs(demo: Synth) -> None:
    template = demo.raw("services")
    role = one(template, "AWS::IAM::Role", "DemoApiFunctionRole")["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}
    assert "ManagedPolicyArns" not in role  # no AWS managed policy
    policies = [p for k, p in resources(template, "AWS::IAM::Policy").items() if "DemoApi" in k]
    assert policies == []  # no inline policy either

    by_sid = {s["Sid"]: s for s in statements(one(template, "AWS::IAM::ManagedPolicy", "DemoApiFunctionPolicy"))}
    assert set(by_sid) == {"OwnLogs", "NotesReadWrite", "NotesKeyViaDynamoDb"}
    notes = by_sid["NotesReadWrite"]
    assert sorted(as_list(notes["Action"])) == ["dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"]
    assert as_list(notes["Resource"]) == ["${DemoApiNotes1A153BF7.Arn}"]
    key = by_sid["NotesKeyViaDynamoDb"]
    assert as_list(key["Resource"]) == ["${DemoApiTableKey7D36CB12.Arn}"]
    assert key["Condition"] == {"StringEquals": {"kms:ViaService": "dynamodb.${AWS::Region}.amazonaws.com"}}
    assert not any("*" in a for a in as_list(key["Action"]))
    assert as_list(by_sid["OwnLogs"]["Resource"]) == ["${DemoApiFunctionLogs0DC091D8.Arn}"]
    for statement in by_sid.values():
        assert "*" not in as_list(statement["Resource"])


def test_only_api_gateway_may_invoke_the_function(demo: Synth) -> None:
    for permission in resources(demo.raw("services"), "AWS::Lambda::Permission").values():
        props = render(permission["Properties"])
        assert props["Principal"] == "apigateway.amazonaws.com"
        assert props["SourceArn"].startswith("arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${DemoApi")


def test_agent_gets_the_api_url(demo: Synth) -> None:
    """Each demo provider's `api_url` in PROVIDERS is the API's endpoint, joined in by CloudFormation."""
    joined = _agent_environment(demo.raw("services"))["PROVIDERS"]["Fn::Join"]
    assert joined[0] == ""
    assert [part for part in joined[1] if not isinstance(part, str)] == [{"Fn::GetAtt": ["DemoApi48A1D1CD", "ApiEndpoint"]}] * 2
    outputs = demo.raw("services")["Outputs"]
    assert outputs["DemoApiUrl"]["Value"] == {"Fn::GetAtt": ["DemoApi48A1D1CD", "ApiEndpoint"]}


def test_not_built_for_a_vendor_provider(github: Synth) -> None:
    template = github.raw("services")
    assert not [k for k in template["Resources"] if k.startswith("DemoApi")]
    assert resources(template, "AWS::ApiGatewayV2::Api") == {}
    # The ledger and the connections registry stay: they are the services' own tables.
    assert [k for k in resources(template, "AWS::DynamoDB::Table") if not k.startswith(("BindingLedger", "ConnectionsTable"))] == []
    assert [f for f in resources(template, "AWS::Lambda::Function").values() if f["Properties"].get("PackageType") == "Image"] == []
    assert "api_url" not in _agent_environment(template)["PROVIDERS"]
    assert "DemoApiUrl" not in template.get("Outputs", {})


def test_dockerfile_is_a_pinned_lambda_image_with_dependencies_first(demo: Synth) -> None:
    [image] = [a for a in image_assets(Path(demo.app.synth().directory)) if a["dockerBuildArgs"] == {"SERVICE": "demo_api"}]
    assert image["dockerBuildTarget"] == "lambda" and (SERVICES_DIR / "demo_api" / "requirements.txt").is_file()
    text = dockerfile_stage("lambda")
    base = re.search(r"^FROM (\S+)", text, re.MULTILINE)
    assert base and re.fullmatch(r"public\.ecr\.aws/lambda/python:3\.11\.\d{4}\.\d{2}\.\d{2}\.\d{2}(@sha256:[0-9a-f]{64})?", base.group(1))
    assert text.index("COPY ${SERVICE}/requirements.txt ") < text.index("pip install") < text.index("COPY ${SERVICE} ")
    assert "--only-binary=:all:" in text and '--target "${LAMBDA_TASK_ROOT}"' in text
    for source in ("COPY __init__.py ", "COPY common ", "COPY ${SERVICE} "):
        assert source in text
    # The fixed handler runs `services.<APP_SERVICE>.main.handler`, with APP_SERVICE=demo_api baked in by the build.
    cmd = re.search(r"^CMD (.+)$", text, re.MULTILINE)
    assert cmd and json.loads(cmd.group(1)) == ["services.lambda_entry.handler"]
    assert "APP_SERVICE=${SERVICE}" in text and (SERVICES_DIR / "demo_api" / "main.py").is_file()


def test_requirements_are_pinned_to_the_session_binding_versions() -> None:
    def pins(service: str) -> dict[str, str]:
        lines = (SERVICES_DIR / service / "requirements.txt").read_text().splitlines()
        return dict(line.split("==") for line in lines if line and not line.startswith("#"))

    demo_api, binding = pins("demo_api"), pins("session_binding")
    assert set(demo_api) == {"fastapi", "starlette", "pydantic", "pydantic-settings", "mangum", "httpx", "cryptography", "boto3"}
    assert all(binding[name] == version for name, version in demo_api.items())
