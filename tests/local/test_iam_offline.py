"""The local IAM check's parts: the synthesized statements resolved to local ARNs, the principals, and the
refusals of the AgentCore Identity emulator and the local DynamoDB, through real boto3 clients (SigV4-signed)."""

from __future__ import annotations

import copy
import http.client
import json
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from local.agentcore_identity import Emulator
from local.demo.stack import PROVIDER_NAME, PROVIDERS, WORKLOAD_NAME
from local.dynamodb import BINDING_TABLE, NOTES_TABLE, LocalDynamoDB, create_table
from local.iam.dynamodb import Unauthorizable, needs
from local.iam.policy import Decision, Statement
from local.iam.principals import ADMINISTRATOR, AccessDenied, Principal, Principals
from local.iam.templates import UNRESOLVED, LocalResources, TemplateError, Templates, _private, _prune, fingerprint, synthesized
from services.common import environment as names

ACCOUNT, REGION = "123456789012", "us-east-1"
SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:demo-client-AbCdEf"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/00000000-0000-0000-0000-000000000001"
TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/"
LOCAL = LocalResources(
    partition="aws",
    region=REGION,
    account=ACCOUNT,
    client_secrets={p.credential_provider: f"{SECRET}-{p.name}" for p in PROVIDERS} | {PROVIDER_NAME: SECRET},
    client_secret_key_arn=KEY,
    tables={names.BINDING_TABLE: TABLE + "ledger", names.NOTES_TABLE: TABLE + "notes", names.CONNECTIONS_TABLE: TABLE + "connections"},
)
CHECKED = ("bedrock-agentcore:", "dynamodb:", "secretsmanager:", "kms:")
FAST = Config(retries={"mode": "standard", "max_attempts": 1}, connect_timeout=2, read_timeout=5)


@pytest.fixture(scope="module")
def templates() -> Templates:
    return Templates.load(synthesized(), LOCAL)


@pytest.fixture(scope="module")
def principals(templates: Templates) -> Principals:
    return Principals.for_services(templates, LOCAL)


def _client(service: str, endpoint: str, principal: Principal | None, **keys: str) -> Any:
    credentials = (
        {"aws_access_key_id": principal.access_key_id, "aws_secret_access_key": principal.secret_access_key} if principal else keys
    )
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION, config=FAST, **credentials)


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


# ---------------------------------------------------------------------------- templates


def test_the_local_stack_uses_the_names_the_stacks_deploy(templates: Templates) -> None:
    assert templates.names() == {
        "workload_identity": (WORKLOAD_NAME,),
        "credential_providers": tuple(sorted(p.credential_provider for p in PROVIDERS)),
    }


def test_every_statement_the_local_stand_ins_check_resolves_to_a_local_arn(templates: Templates) -> None:
    """Only KMS keys for DynamoDB and log groups stay unresolved: the local DynamoDB encrypts nothing, and no
    stand-in writes logs through IAM."""
    for service in ("agent", "session_binding", "demo_api"):
        for statement in templates.statements(service):
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            via_dynamodb = "dynamodb" in json.dumps(statement.get("Condition", {}))
            if any(a.startswith(CHECKED) for a in actions) and not via_dynamodb:
                assert not [r for r in resources if r.startswith(UNRESOLVED)], f"{service}: {statement}"
    agent = json.dumps(templates.statements("agent"))
    assert SECRET in agent and KEY in agent and TABLE + "ledger" not in agent
    assert TABLE + "ledger" in json.dumps(templates.statements("session_binding"))
    assert TABLE + "notes" in json.dumps(templates.statements("demo_api"))


def test_the_roles_are_the_ones_behind_the_routes(templates: Templates) -> None:
    assert templates.role_name("agent").startswith("AgentTaskRole")
    assert templates.role_name("session_binding").startswith("SessionBindingTaskRole")
    assert templates.role_name("demo_api").startswith("DemoApiFunctionRole")


def test_the_fingerprint_follows_the_sources(tmp_path: Path) -> None:
    (tmp_path / "stacks").mkdir()
    (tmp_path / "cdk_app").mkdir()
    (tmp_path / "services" / "common").mkdir(parents=True)
    (tmp_path / "services" / "common" / "environment.py").write_text("names")
    (tmp_path / "app.py").write_text("app")
    (tmp_path / "cdk.json").write_text("{}")
    (tmp_path / "stacks" / "a.py").write_text("one")
    first = fingerprint(tmp_path)
    assert fingerprint(tmp_path) == first
    (tmp_path / "stacks" / "a.py").write_text("two")
    assert fingerprint(tmp_path) != first


def test_the_template_cache_is_used_only_while_no_one_else_can_write_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Planted templates would decide what the IAM check allows: a cache others can write is not used."""
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: tmp_path))
    tmp_path.chmod(0o700)
    cache = tmp_path / ".cache" / "agentcore-ecs" / "local-iam"
    cache.mkdir(parents=True)
    assert _private(cache)
    (tmp_path / ".cache").chmod(0o777)  # a folder above it that anyone may write
    assert not _private(cache)
    (tmp_path / ".cache").chmod(0o755)
    cache.chmod(0o770)
    assert not _private(cache)
    assert not _private(Path("/tmp"))  # the shared folder itself, as XDG_CACHE_HOME=/tmp would make it


def test_the_per_user_cache_keeps_the_newest_fingerprints_and_drops_partial_synths(tmp_path: Path) -> None:
    """Clones at different commits share the cache: each new synth keeps the newest others, never a half one."""
    for age, name in enumerate(["f6", "f5", "f4", "f3", "f2", "f1"]):
        (tmp_path / name).mkdir()
        os.utime(tmp_path / name, (1_000_000 - age, 1_000_000 - age))
    (tmp_path / "f0.partial").mkdir()
    (tmp_path / ".lock").write_text("")
    _prune(tmp_path, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "f4", "f5", "f6"]


# ---------------------------------------------------------------------------- principals


def test_a_refusal_reads_like_aws(principals: Principals) -> None:
    binding = principals["session_binding"]
    resource = f"arn:aws:bedrock-agentcore:{REGION}:{ACCOUNT}:token-vault/default"
    with pytest.raises(AccessDenied) as denied:
        principals.require(binding, "bedrock-agentcore:GetResourceOauth2Token", [resource])
    assert denied.value.message == (
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/{binding.role_name}/session_binding is not authorized to perform: "
        f"bedrock-agentcore:GetResourceOauth2Token on resource: {resource} because no identity-based policy allows the "
        "bedrock-agentcore:GetResourceOauth2Token action"
    )
    principals.require(principals[ADMINISTRATOR], "bedrock-agentcore:GetResourceOauth2Token", [resource])


def test_the_client_secret_is_read_only_through_an_aws_service_and_its_key(principals: Principals) -> None:
    agent = principals["agent"]
    principals.forward_read_secret(agent, SECRET, REGION)
    with pytest.raises(AccessDenied):  # the task's own call: no aws:ViaAWSService
        principals.require(agent, "secretsmanager:GetSecretValue", [SECRET])
    with pytest.raises(AccessDenied, match="kms:Decrypt"):
        principals.require(agent, "kms:Decrypt", [KEY], {"kms:ViaService": f"dynamodb.{REGION}.amazonaws.com"})
    with pytest.raises(AccessDenied):
        principals.forward_read_secret(principals["demo_api"], SECRET, REGION)


def test_dynamodb_requests_map_to_item_actions_on_table_arns() -> None:
    transact = {"TransactItems": [{"Put": {"TableName": "notes"}}, {"ConditionCheck": {"TableName": "ledger"}}]}
    assert needs("TransactWriteItems", transact, REGION, ACCOUNT) == [
        ("dynamodb:PutItem", TABLE + "notes"),
        ("dynamodb:ConditionCheckItem", TABLE + "ledger"),
    ]
    assert needs("Query", {"TableName": "notes", "IndexName": "by-date"}, REGION, ACCOUNT) == [
        ("dynamodb:Query", TABLE + "notes/index/by-date")
    ]
    assert needs("BatchGetItem", {"RequestItems": {"a": {}, "b": {}}}, REGION, ACCOUNT) == [
        ("dynamodb:BatchGetItem", TABLE + "a"),
        ("dynamodb:BatchGetItem", TABLE + "b"),
    ]
    assert needs("ListTables", {}, REGION, ACCOUNT) == [("dynamodb:ListTables", "*")]


# ---------------------------------------------------------------------------- the stand-ins, through boto3


@pytest.fixture
def emulator(principals: Principals) -> Iterator[Emulator]:
    with Emulator(principals=principals) as running:
        yield running


def test_the_emulator_refuses_unknown_keys_and_bad_signatures(emulator: Emulator, principals: Principals) -> None:
    stranger = _client("bedrock-agentcore", emulator.base_url, None, aws_access_key_id="ASIAUNKNOWN000000000", aws_secret_access_key="x")  # noqa: S106 - a wrong key on purpose
    with pytest.raises(ClientError) as refused:
        stranger.get_workload_access_token_for_user_id(workloadName=WORKLOAD_NAME, userId="alice")
    assert _code(refused) == "UnrecognizedClientException"
    agent = principals["agent"]
    forged = _client("bedrock-agentcore", emulator.base_url, None, aws_access_key_id=agent.access_key_id, aws_secret_access_key="guess")  # noqa: S106 - a wrong key on purpose
    with pytest.raises(ClientError) as refused:
        forged.get_workload_access_token_for_user_id(workloadName=WORKLOAD_NAME, userId="alice")
    assert _code(refused) == "InvalidSignatureException"


def test_the_emulator_answers_each_role_as_its_statements_say(emulator: Emulator, principals: Principals) -> None:
    admin = _client("bedrock-agentcore-control", emulator.base_url, principals[ADMINISTRATOR])
    admin.create_workload_identity(name=WORKLOAD_NAME, allowedResourceOauth2ReturnUrls=["https://example.com/back"])
    agent = _client("bedrock-agentcore", emulator.base_url, principals["agent"])
    assert agent.get_workload_access_token_for_user_id(workloadName=WORKLOAD_NAME, userId="alice")["workloadAccessToken"]
    with pytest.raises(ClientError) as refused:  # another workload identity: not the agent's
        agent.get_workload_access_token_for_user_id(workloadName="someone-else", userId="alice")
    assert _code(refused) == "AccessDeniedException"
    assert "workload-identity/someone-else" in refused.value.response["Error"]["Message"]
    binding = _client("bedrock-agentcore", emulator.base_url, principals["session_binding"])
    with pytest.raises(ClientError) as refused:
        binding.get_workload_access_token_for_user_id(workloadName=WORKLOAD_NAME, userId="alice")
    assert _code(refused) == "AccessDeniedException"
    with pytest.raises(ClientError) as refused:  # the agent may not complete a consent, whatever the session
        agent.complete_resource_token_auth(sessionUri="urn:ietf:params:oauth:request_uri:x", userIdentifier={"userId": "alice"})
    assert _code(refused) == "AccessDeniedException"
    with pytest.raises(ClientError) as refused:  # a service cannot create AgentCore resources
        _client("bedrock-agentcore-control", emulator.base_url, principals["agent"]).create_workload_identity(name="mine")
    assert _code(refused) == "AccessDeniedException"


def test_the_local_dynamodb_answers_each_role_as_its_statements_say(principals: Principals) -> None:
    with LocalDynamoDB() as server:
        create_table(server.client(), "notes", NOTES_TABLE)
        server.check_iam(principals, ACCOUNT)
        item = {"sub": {"S": "alice"}, "id": {"S": "1"}}
        _client("dynamodb", server.endpoint, principals["demo_api"]).put_item(TableName="notes", Item=item)
        for name, call in (("session_binding", "put_item"), ("agent", "get_item")):
            with pytest.raises(ClientError) as refused:
                client = _client("dynamodb", server.endpoint, principals[name])
                getattr(client, call)(TableName="notes", **({"Item": item} if call == "put_item" else {"Key": item}))
            assert _code(refused) == "AccessDeniedException", name
        with pytest.raises(ClientError) as refused:  # GetItem is not among the demo API's grants
            _client("dynamodb", server.endpoint, principals["demo_api"]).get_item(TableName="notes", Key=item)
        assert _code(refused) == "AccessDeniedException"
        assert server.client().get_item(TableName="notes", Key=item)["Item"] == item  # the administrator
    denied = [d for d in principals.denials() if d.action.startswith("dynamodb:")]
    assert {(d.principal, d.action) for d in denied} >= {("session_binding", "dynamodb:PutItem"), ("demo_api", "dynamodb:GetItem")}
    assert all(d.decision is Decision.IMPLICIT_DENY for d in denied)


def _signed(principal: Principal, url: str, target: str, body: dict[str, Any], region: str = REGION) -> dict[str, str]:
    request = AWSRequest(
        method="POST",
        url=url + "/",
        data=json.dumps(body).encode(),
        headers={"x-amz-target": f"DynamoDB_20120810.{target}", "content-type": "application/x-amz-json-1.0"},
    )
    SigV4Auth(Credentials(principal.access_key_id, principal.secret_access_key), "dynamodb", region).add_auth(request)
    return dict(request.headers.items())


def test_a_repeated_header_cannot_smuggle_another_operation_past_the_check(principals: Principals) -> None:
    """Signed as the demo API for a Query on its own table, with a second, unsigned X-Amz-Target in front:
    refused before anything runs, and the ledger stays empty."""
    with LocalDynamoDB() as server:
        create_table(server.client(), "notes", NOTES_TABLE)
        create_table(server.client(), "ledger", BINDING_TABLE)
        server.check_iam(principals, ACCOUNT)
        smuggled = {"TransactItems": [{"Put": {"TableName": "ledger", "Item": {"session": {"S": "smuggled"}}}}]}
        query = {"TableName": "notes", "KeyConditionExpression": "#s = :s", "ExpressionAttributeNames": {"#s": "sub"}}
        headers = _signed(principals["demo_api"], server.endpoint, "Query", query)
        connection = http.client.HTTPConnection(server.host, server.port, timeout=5)
        connection.putrequest("POST", "/", skip_accept_encoding=True)
        connection.putheader("X-Amz-Target", "DynamoDB_20120810.TransactWriteItems")
        for name, value in headers.items():
            connection.putheader(name, value)
        payload = json.dumps(smuggled).encode()  # the body the signature does not cover: refused either way
        connection.putheader("Content-Length", str(len(payload)))
        connection.endheaders(payload)
        answer = connection.getresponse()
        assert answer.status == 400
        assert json.loads(answer.read())["__type"].endswith("IncompleteSignatureException")
        connection.close()
        assert server.client().scan(TableName="ledger")["Items"] == []


def test_a_request_signed_for_another_region_or_service_is_refused(principals: Principals) -> None:
    with LocalDynamoDB() as server:
        server.check_iam(principals, ACCOUNT)
        for region, service in (("eu-west-1", "dynamodb"), (REGION, "s3")):
            request = AWSRequest(
                method="POST", url=server.endpoint + "/", data=b"{}", headers={"x-amz-target": "DynamoDB_20120810.ListTables"}
            )
            admin = principals[ADMINISTRATOR]
            SigV4Auth(Credentials(admin.access_key_id, admin.secret_access_key), service, region).add_auth(request)
            connection = http.client.HTTPConnection(server.host, server.port, timeout=5)
            connection.request("POST", "/", body=b"{}", headers=dict(request.headers.items()))
            answer = json.loads(connection.getresponse().read())
            connection.close()
            assert answer["__type"].endswith("InvalidSignatureException"), (region, service)
            assert ("region" if region != REGION else "service") in answer["message"]


def test_requests_without_a_table_or_with_unknown_items_are_not_authorizable() -> None:
    assert needs("ExecuteStatement", {"Statement": "SELECT * FROM ledger"}, REGION, ACCOUNT) == [("dynamodb:ExecuteStatement", "*")]
    assert needs("GetItem", {}, REGION, ACCOUNT) == [("dynamodb:GetItem", "*")]
    bodies: list[dict[str, Any]] = [
        {"TransactItems": [{"put": {"TableName": "notes"}}]},
        {"TransactItems": [{"Put": "notes"}]},
        {"TransactItems": []},
    ]
    for body in bodies:
        with pytest.raises(Unauthorizable):
            needs("TransactWriteItems", body, REGION, ACCOUNT)


def test_a_direct_call_is_not_a_call_through_an_aws_service(principals: Principals) -> None:
    """AWS sets `aws:ViaAWSService` false on a direct call: a Deny on that holds for the task's own call only."""
    deny_direct = Statement.from_json(
        {
            "Effect": "Deny",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": "*",
            "Condition": {"Bool": {"aws:ViaAWSService": "false"}},
        }
    )
    allow = Statement.from_json({"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue", "kms:Decrypt"], "Resource": "*"})
    guarded = replace(principals["agent"], statements=(allow, deny_direct))
    with pytest.raises(AccessDenied, match="explicit deny"):
        principals.require(guarded, "secretsmanager:GetSecretValue", [SECRET])
    principals.forward_read_secret(guarded, SECRET, REGION)


def test_a_deny_the_local_stack_cannot_resolve_stops_the_start(templates: Templates) -> None:
    stacks = copy.deepcopy(dict(templates.stacks))
    role = templates.role_of("agent")[1]
    stacks["Services"]["Resources"]["Planted"] = {
        "Type": "AWS::IAM::Policy",
        "Properties": {
            "Roles": [{"Ref": role}],
            "PolicyDocument": {"Statement": [{"Effect": "Deny", "Action": "dynamodb:*", "Resource": {"Fn::GetAtt": ["Elsewhere", "Arn"]}}]},
        },
    }
    with pytest.raises(TemplateError, match="Deny"):
        Templates(stacks, LOCAL).statements("agent")
