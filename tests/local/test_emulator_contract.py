"""The AgentCore Identity emulator against botocore's service models: every operation it serves, raw bodies walked shape by shape.

boto3 clients drive every operation (both planes, successes and errors, injected faults); a botocore
`before-send` / `before-parse` hook keeps each raw request and raw answer (botocore's parsed output
drops members it does not know). Requests are walked against the operation's input shape, answers
against its output shape or the listed error's shape: unknown members, missing required members,
unions, enum values, string lengths and patterns, list sizes, status codes and error codes.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config

from local.agentcore_identity import Emulator, model
from local.agentcore_identity.auto_provider import CLIENT_ID, CLIENT_SECRET, OAuthProvider
from local.agentcore_identity.providers import (
    BASIC,
    POST,
    SecretKeyMissing,
    SecretMissing,
    builtin_endpoints,
    dict_secret_reader,
    secretsmanager_reader,
)
from local.agentcore_identity.server import ROUTES

RETURN_URL = "http://127.0.0.1:8000/oauth2/session-binding"
SCOPES = ["notes.read", "openid"]
DUMMY_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:demo/agentcore-client-AbCdEf"
# The model's CredentialProviderArnType pattern says `arn:…:acps:…`; the CloudFormation schema of
# AWS::BedrockAgentCore::OAuth2CredentialProvider (cfn-lint's copy) and the Service Authorization Reference
# give `bedrock-agentcore`, which the stacks' IAM statements use. Provider ARNs are checked against that instead.
CFN_PROVIDER_ARN = re.compile(
    r"arn:(aws|aws-us-gov):bedrock-agentcore:[A-Za-z0-9-]{1,64}:[0-9]{12}:token-vault/[a-zA-Z0-9-.]+/oauth2credentialprovider/[a-zA-Z0-9-]+"
)
VENDORS = {"GithubOauth2": None, "GoogleOauth2": None, "MicrosoftOauth2": "contoso.onmicrosoft.com", "SlackOauth2": None}
PATHS = {path: operation for path, operation in ROUTES.items()}


@dataclass
class Exchange:
    """One call as it went over the wire: the request body sent, and the raw answer."""

    operation: str
    request: Any
    status: int = 0
    error: str | None = None
    body: Any = None
    deliberate: bool = False  # a request made against the model on purpose: its answer is checked, not the request


class Recorder:
    """Keeps every raw request and answer of the boto3 clients it is attached to (and of raw calls)."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []

    def attach(self, client: Any) -> Any:
        client.meta.events.register("before-send", self._sent)
        client.meta.events.register("before-parse", self._answered)
        return client

    def _sent(self, request: Any, **_: Any) -> None:
        operation = PATHS[urllib.parse.urlsplit(request.url).path]
        self.exchanges.append(Exchange(operation, json.loads(request.body or b"{}")))

    def _answered(self, operation_model: Any, response_dict: dict[str, Any], **_: Any) -> None:
        exchange = self.exchanges[-1]
        assert exchange.operation == operation_model.name
        exchange.status = response_dict["status_code"]
        exchange.error = response_dict["headers"].get("x-amzn-errortype")
        exchange.body = json.loads(response_dict["body"] or b"{}")

    def raw(self, base_url: str, operation: str, data: bytes) -> Exchange:
        """POST `data` to the operation's path with a plain HTTP client (no botocore validation); recorded without its request."""
        path = next(p for p, op in ROUTES.items() if op == operation)
        request = urllib.request.Request(base_url + path, data=data, headers={"content-type": "application/json"})  # noqa: S310 - loopback
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
                status, headers, body = response.status, response.headers, response.read()
        except urllib.error.HTTPError as exc:
            status, headers, body = exc.code, exc.headers, exc.read()
        exchange = Exchange(operation, None, status, headers.get("x-amzn-errortype"), json.loads(body or b"{}"))
        self.exchanges.append(exchange)
        return exchange


def request_problems(exchange: Exchange) -> list[str]:
    if exchange.request is None or exchange.deliberate:
        return []
    return [str(p) for p in model.problems(exchange.request, model.operation_model(exchange.operation).input_shape)]


def answer_problems(exchange: Exchange) -> list[str]:
    """The answer's differences from the model: status, error code, and every member of the body."""
    operation = model.operation_model(exchange.operation)
    if exchange.error is None:
        expected = operation.http.get("responseCode", 200)
        found = [] if exchange.status == expected else [f"status {exchange.status}, the model says {expected}"]
        shape = operation.output_shape
        found += [str(p) for p in model.problems(exchange.body, shape) if not _cfn_provider_arn(p, exchange.body)] if shape else []
        return found
    code = exchange.error.split(":")[0]
    error = model.error_shape(exchange.operation, code)
    if error is None:
        return [f"error {code} is not listed for {exchange.operation} ({sorted(model.error_codes(exchange.operation))})"]
    status = error.metadata["error"]["httpStatusCode"]
    found = [] if exchange.status == status else [f"{code}: status {exchange.status}, the model says {status}"]
    return found + [str(p) for p in model.problems(exchange.body, error)]


def _cfn_provider_arn(problem: model.Problem, body: dict[str, Any]) -> bool:
    """A credentialProviderArn pattern miss that matches the CloudFormation schema's pattern (see CFN_PROVIDER_ARN)."""
    return problem.path == "credentialProviderArn" and "pattern" in problem.message and bool(CFN_PROVIDER_ARN.fullmatch(body[problem.path]))


class World:
    """An emulator with loopback authorization servers for every vendor, boto3 clients, and a recorder."""

    def __init__(self, emulator: Emulator, providers: dict[str, OAuthProvider]) -> None:
        self.emulator, self.providers, self.recorder = emulator, providers, Recorder()
        self.control = self.client("bedrock-agentcore-control")
        self.data = self.client("bedrock-agentcore")
        self.workload = f"agent-{uuid.uuid4().hex[:8]}"

    def client(self, service: str, attempts: int = 1) -> Any:
        config = Config(region_name="us-east-1", retries={"mode": "standard", "total_max_attempts": attempts}, read_timeout=10)
        session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing")  # noqa: S106
        return self.recorder.attach(session.client(service, endpoint_url=self.emulator.base_url, config=config))

    def fails(self, code: str, call: Any, *, deliberate: bool = False, **params: Any) -> None:
        try:
            call(**params)
        except Exception as exc:
            assert getattr(exc, "response", {}).get("Error", {}).get("Code") == code, exc
        else:
            raise AssertionError(f"{code} expected")
        self.recorder.exchanges[-1].deliberate = deliberate

    def consent(self, authorization_url: str) -> str:
        """Follow the authorization URL (the provider consents at once) and the callback; the final Location."""
        location = _location(authorization_url)
        assert location.startswith(self.emulator.base_url + "/identities/oauth2/callback/"), location
        return _location(location)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _location(url: str) -> str:
    try:
        urllib.request.build_opener(_NoRedirect).open(url, timeout=10)
    except urllib.error.HTTPError as exc:
        assert exc.code == 302, (exc.code, exc.read())
        return str(exc.headers["location"])
    raise AssertionError(f"{url} did not redirect")


def _jwt(sub: str) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part({'sub': sub})}.sig"


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    """Loopback servers: custom ones by client authentication method, one per built-in vendor with that vendor's methods."""
    providers = {"basic": OAuthProvider((BASIC,)), "post": OAuthProvider((POST,))}
    for vendor, tenant in VENDORS.items():
        providers[vendor] = OAuthProvider(builtin_endpoints(vendor, tenant).auth_methods)
    for provider in providers.values():
        provider.start()
    endpoints = {
        vendor: dataclasses.replace(
            builtin_endpoints(vendor, tenant),
            issuer=providers[vendor].issuer,
            authorization_endpoint=providers[vendor].issuer + "/authorize",
            token_endpoint=providers[vendor].issuer + "/token",
        )
        for vendor, tenant in VENDORS.items()
    }
    reader = dict_secret_reader({SECRET_ARN: (SECRET_ARN, {"client_secret": CLIENT_SECRET})})
    with Emulator(vendor_endpoints=endpoints, secret_reader=reader) as emulator:
        w = World(emulator, providers)
        _drive(w)
        yield w
    for provider in providers.values():
        provider.stop()


def _drive(w: World) -> None:
    _control_plane(w)
    for name, config in _provider_configs(w).items():
        vendor, member = name.split("/")[0], next(iter(config))
        w.control.create_oauth2_credential_provider(
            name=name.replace("/", "-"), credentialProviderVendor=vendor, oauth2ProviderConfigInput=config
        )
        assert member in w.control.get_oauth2_credential_provider(name=name.replace("/", "-"))["oauth2ProviderConfigOutput"]
        _flow(w, name.replace("/", "-"), f"user-{member[:6]}")
    _control_errors(w)
    _data_errors(w)
    _faults(w)
    _raw_invalid(w)


def _control_plane(w: World) -> None:
    w.control.create_workload_identity(name=w.workload, allowedResourceOauth2ReturnUrls=[RETURN_URL])
    w.control.update_workload_identity(name=w.workload, allowedResourceOauth2ReturnUrls=[RETURN_URL])
    assert w.control.get_workload_identity(name=w.workload)["allowedResourceOauth2ReturnUrls"] == [RETURN_URL]
    w.fails("ConflictException", w.control.create_workload_identity, name=w.workload)
    w.fails("ResourceNotFoundException", w.control.get_workload_identity, name="no-such-workload")
    w.fails("ResourceNotFoundException", w.control.update_workload_identity, name="no-such-workload")
    w.fails("ValidationException", w.control.create_workload_identity, name="bad name!", deliberate=True)


def _provider_configs(w: World) -> dict[str, dict[str, Any]]:
    """Every vendor shape the stacks can deploy (EXTERNAL secrets, CLIENT_SECRET_BASIC for custom), and the other methods."""
    external = {
        "clientId": CLIENT_ID,
        "clientSecretSource": "EXTERNAL",
        "clientSecretConfig": {"secretId": SECRET_ARN, "jsonKey": "client_secret"},
    }
    basic, post = w.providers["basic"], w.providers["post"]
    configs: dict[str, dict[str, Any]] = {
        "CustomOauth2/deployed": {
            "customOauth2ProviderConfig": {
                "oauthDiscovery": {"discoveryUrl": basic.discovery_url},
                "clientAuthenticationMethod": "CLIENT_SECRET_BASIC",
            }
            | external
        },
        "CustomOauth2/post-by-value": {
            "customOauth2ProviderConfig": {
                "oauthDiscovery": {"discoveryUrl": post.discovery_url},
                "clientAuthenticationMethod": "CLIENT_SECRET_POST",
                "clientId": CLIENT_ID,
                "clientSecret": CLIENT_SECRET,
            }
        },
        "CustomOauth2/metadata": {
            "customOauth2ProviderConfig": {
                "oauthDiscovery": {
                    "authorizationServerMetadata": {
                        "issuer": post.issuer,
                        "authorizationEndpoint": post.issuer + "/authorize",
                        "tokenEndpoint": post.issuer + "/token",
                        "tokenEndpointAuthMethods": [POST],
                    }
                },
                "clientId": CLIENT_ID,
                "clientSecret": CLIENT_SECRET,
            }
        },
    }
    for vendor, tenant in VENDORS.items():
        member = vendor[0].lower() + vendor[1:] + "ProviderConfig"
        configs[f"{vendor}/deployed"] = {member: external | ({"tenantId": tenant} if tenant else {})}
    return configs


def _flow(w: World, provider: str, user: str) -> None:
    """The 3-legged flow for `user` through `provider`, every data-plane operation on the way."""
    token = w.data.get_workload_access_token_for_user_id(workloadName=w.workload, userId=user)["workloadAccessToken"]
    params = {"workloadIdentityToken": token, "resourceCredentialProviderName": provider, "scopes": SCOPES, "oauth2Flow": "USER_FEDERATION"}
    start = w.data.get_resource_oauth2_token(**params, resourceOauth2ReturnUrl=RETURN_URL, customState="s" * 4096)
    polled = w.data.get_resource_oauth2_token(**params, sessionUri=start["sessionUri"])
    assert polled["sessionStatus"] == "IN_PROGRESS"
    landed = w.consent(start["authorizationUrl"])
    assert landed.startswith(RETURN_URL + "?session_id=")
    w.data.complete_resource_token_auth(sessionUri=start["sessionUri"], userIdentifier={"userId": user})
    assert w.data.get_resource_oauth2_token(**params)["accessToken"]
    by_jwt = w.data.get_workload_access_token_for_jwt(workloadName=w.workload, userToken=_jwt(user))["workloadAccessToken"]
    assert w.data.get_resource_oauth2_token(**params | {"workloadIdentityToken": by_jwt})["accessToken"]
    assert w.data.get_workload_access_token(workloadName=w.workload)["workloadAccessToken"]


def _control_errors(w: World) -> None:
    create = w.control.create_oauth2_credential_provider
    custom = {
        "customOauth2ProviderConfig": {
            "oauthDiscovery": {"discoveryUrl": w.providers["post"].discovery_url},
            "clientId": CLIENT_ID,
            "clientSecret": "x",
        }
    }
    w.fails(
        "ConflictException",
        create,
        name="CustomOauth2-post-by-value",
        credentialProviderVendor="CustomOauth2",
        oauth2ProviderConfigInput=custom,
    )
    w.fails("ValidationException", create, name="mismatch", credentialProviderVendor="GithubOauth2", oauth2ProviderConfigInput=custom)
    w.fails(
        "ValidationException",
        create,
        name="salesforce",
        credentialProviderVendor="SalesforceOauth2",
        oauth2ProviderConfigInput={"salesforceOauth2ProviderConfig": {"clientId": CLIENT_ID, "clientSecret": "x"}},
    )
    missing = {
        "githubOauth2ProviderConfig": {
            "clientId": CLIENT_ID,
            "clientSecretSource": "EXTERNAL",
            "clientSecretConfig": {"secretId": "nope", "jsonKey": "k"},
        }
    }
    w.fails(
        "ResourceNotFoundException",
        create,
        name="missing-secret",
        credentialProviderVendor="GithubOauth2",
        oauth2ProviderConfigInput=missing,
    )
    jwt_method = {"customOauth2ProviderConfig": custom["customOauth2ProviderConfig"] | {"clientAuthenticationMethod": "PRIVATE_KEY_JWT"}}
    w.fails(
        "ValidationException", create, name="private-key-jwt", credentialProviderVendor="CustomOauth2", oauth2ProviderConfigInput=jwt_method
    )
    w.fails("ResourceNotFoundException", w.control.get_oauth2_credential_provider, name="no-such-provider")


def _data_errors(w: World) -> None:
    token = w.data.get_workload_access_token_for_user_id(workloadName=w.workload, userId="mallory")["workloadAccessToken"]
    params = {
        "workloadIdentityToken": token,
        "resourceCredentialProviderName": "CustomOauth2-deployed",
        "scopes": SCOPES,
        "oauth2Flow": "USER_FEDERATION",
    }
    w.fails("ValidationException", w.data.get_resource_oauth2_token, **params, resourceOauth2ReturnUrl="https://evil.example/x")
    w.fails("UnauthorizedException", w.data.get_resource_oauth2_token, **params | {"workloadIdentityToken": "not-a-token"})
    w.fails("ResourceNotFoundException", w.data.get_resource_oauth2_token, **params | {"resourceCredentialProviderName": "absent"})
    w.fails("ValidationException", w.data.get_resource_oauth2_token, **params | {"oauth2Flow": "M2M"})
    start = w.data.get_resource_oauth2_token(**params)  # no return URL: the workload identity's only one
    assert _location(start["authorizationUrl"])
    w.fails("ValidationException", w.data.complete_resource_token_auth, sessionUri=start["sessionUri"], userIdentifier={"userId": "bob"})
    w.fails("ResourceNotFoundException", w.data.get_workload_access_token, workloadName="no-such-workload")
    w.fails("ResourceNotFoundException", w.data.get_workload_access_token_for_user_id, workloadName="no-such-workload", userId="x")
    w.fails("ResourceNotFoundException", w.data.get_workload_access_token_for_jwt, workloadName="no-such-workload", userToken=_jwt("x"))


def _faults(w: World) -> None:
    """Injected errors answer in the model's shapes too (one attempt each: the clients do not retry here)."""
    for operation in model.OPERATIONS:
        for code in ("ThrottlingException", "InternalServerException", "ValidationException", "AccessDeniedException"):
            w.emulator.faults.script(operation, code)
            assert w.recorder.raw(w.emulator.base_url, operation, b"{}").error == code  # before any validation


def _raw_invalid(w: World) -> None:
    """Requests botocore would not send (it checks only required members, types and minimums): the emulator refuses them."""
    token = w.data.get_workload_access_token_for_user_id(workloadName=w.workload, userId="raw")["workloadAccessToken"]
    base = {
        "workloadIdentityToken": token,
        "resourceCredentialProviderName": "CustomOauth2-deployed",
        "scopes": SCOPES,
        "oauth2Flow": "USER_FEDERATION",
    }
    cases = {
        "customState": base | {"customState": "s" * 4097},
        "scopes[0]": base | {"scopes": ["s" * 129]},
        "oauth2Flow": base | {"oauth2Flow": "IMPLICIT"},
        "unknownMember": base | {"unknownMember": 1},
        "resourceOauth2ReturnUrl": base | {"resourceOauth2ReturnUrl": "no url"},
    }
    for member, body in cases.items():
        answer = w.recorder.raw(w.emulator.base_url, "GetResourceOauth2Token", json.dumps(body).encode())
        assert answer.error == "ValidationException" and answer.body["reason"] == "FieldValidationFailed", answer
        assert [field["name"] for field in answer.body["fieldList"]] == [member], answer.body
    both = {"sessionUri": "urn:ietf:params:oauth:request_uri:x", "userIdentifier": {"userId": "a", "userToken": _jwt("a")}}
    answer = w.recorder.raw(w.emulator.base_url, "CompleteResourceTokenAuth", json.dumps(both).encode())
    assert answer.error == "ValidationException" and answer.body["fieldList"][0]["name"] == "userIdentifier"
    answer = w.recorder.raw(w.emulator.base_url, "GetWorkloadIdentity", b"not json")
    assert answer.error == "ValidationException" and answer.body["reason"] == "CannotParse"


def test_every_request_sent_is_in_the_model(world: World) -> None:
    found = [f"{x.operation}: {p}" for x in world.recorder.exchanges for p in request_problems(x)]
    assert found == []


def test_every_answer_is_in_the_model(world: World) -> None:
    found = [f"{x.operation} ({x.error or x.status}): {p}" for x in world.recorder.exchanges for p in answer_problems(x)]
    assert found == []


def test_every_operation_was_driven_to_success_and_to_a_modelled_error(world: World) -> None:
    ok = {x.operation for x in world.recorder.exchanges if x.error is None}
    failed = {x.operation for x in world.recorder.exchanges if x.error is not None and x.request is not None}  # not injected
    assert ok == failed == set(model.OPERATIONS)


def test_validation_errors_carry_the_model_reason(world: World) -> None:
    validation = [x for x in world.recorder.exchanges if x.error == "ValidationException"]
    assert validation and all(x.body.get("reason") for x in validation)


def test_the_configured_client_authentication_is_used_at_the_token_endpoint(world: World) -> None:
    """CLIENT_SECRET_BASIC (what the stacks deploy) sends HTTP Basic; CLIENT_SECRET_POST the form; built-in vendors their own."""
    used = {name: set(p.state.client_auth) for name, p in world.providers.items()}
    assert used["basic"] == {BASIC} and used["post"] == {POST}
    assert used["GithubOauth2"] == {POST}
    assert used["GoogleOauth2"] == used["MicrosoftOauth2"] == used["SlackOauth2"] == {BASIC}
    assert all(p.grants("authorization_code") >= 1 for p in world.providers.values())


def test_external_secret_is_reported_as_the_model_says(world: World) -> None:
    got = world.control.get_oauth2_credential_provider(name="CustomOauth2-deployed")
    assert got["clientSecretSource"] == "EXTERNAL" and got["clientSecretJsonKey"] == "client_secret"
    assert got["clientSecretArn"] == {"secretArn": SECRET_ARN}
    assert got["oauth2ProviderConfigOutput"]["customOauth2ProviderConfig"]["clientAuthenticationMethod"] == "CLIENT_SECRET_BASIC"
    microsoft = world.control.get_oauth2_credential_provider(name="MicrosoftOauth2-deployed")["oauth2ProviderConfigOutput"]
    assert (
        microsoft["microsoftOauth2ProviderConfig"]["oauthDiscovery"]["authorizationServerMetadata"]["issuer"]
        == world.providers["MicrosoftOauth2"].issuer
    )


def test_the_checks_find_what_the_emulator_used_to_answer() -> None:
    """The walker is not blind: the differences this test found in the emulator, as raw answers."""
    no_reason = Exchange("CompleteResourceTokenAuth", None, 400, "ValidationException", {"message": "Unknown sessionUri"})
    assert answer_problems(no_reason) == ["reason: required by ValidationException, missing"]
    conflict = Exchange("GetResourceOauth2Token", None, 409, "ConflictException", {"message": "x"})
    assert answer_problems(conflict)[0].startswith("error ConflictException is not listed")
    extra = Exchange("GetWorkloadAccessToken", None, 200, None, {"workloadAccessToken": "t", "expiresIn": 3600})
    assert answer_problems(extra) == ["expiresIn: GetWorkloadAccessTokenResponse has no member 'expiresIn'"]
    status = Exchange("GetResourceOauth2Token", None, 200, None, {"sessionStatus": "DONE", "sessionUri": "urn:x"})
    assert len(answer_problems(status)) == 2  # not an enum value; not the RequestUri pattern
    unsigned = Exchange("GetWorkloadAccessTokenForJWT", {"workloadName": "agent", "userToken": "e30.e30."})
    assert request_problems(unsigned) == [
        "userToken: UserTokenType: does not match the pattern [A-Za-z0-9-_=]+.[A-Za-z0-9-_=]+.[A-Za-z0-9-_=]+"
    ]


def test_secretsmanager_reader_reads_an_external_secret_by_arn_and_json_key() -> None:
    """The Secrets Manager reader against moto's server: by name or ARN, the JSON key's value; a missing secret or key is told apart."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = boto3.client("secretsmanager", endpoint_url=endpoint, region_name="us-east-1", **DUMMY_CREDENTIALS)
        arn = client.create_secret(Name="demo/agentcore-client", SecretString=json.dumps({"client_secret": "s3cret"}))["ARN"]
        with pytest.MonkeyPatch.context() as env:
            env.setenv("AWS_ACCESS_KEY_ID", "testing")
            env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
            read = secretsmanager_reader(endpoint)
            assert read(arn, "client_secret") == (arn, "s3cret") == read("demo/agentcore-client", "client_secret")
            with pytest.raises(SecretKeyMissing):
                read(arn, "other")
            with pytest.raises(SecretMissing):
                read("absent", "client_secret")
    finally:
        server.stop()
