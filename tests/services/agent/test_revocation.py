"""Revocation on disconnect with the OAuth client's own credentials (`services/agent/revocation.py`, the
`revoke` object of a provider's `PROVIDERS` entry).

RFC 7009 runs against the local OIDC issuers (node `oidc-provider`, one process for the module): a real
access token from the code flow, the client secret read from the local Secrets Manager (moto's server) by
the agent's own boto3 client, found through `AWS_ENDPOINT_URL_SECRETS_MANAGER` as the local stack finds it.
Whether a token still works is asked of the issuer itself, at its userinfo endpoint with the token (the
local issuers serve no introspection endpoint). GitHub's grant API is a stand-in that checks the request
as GitHub documents it. And the setting's validation, and the secret in no log and no answer.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import httpx
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from local.demo.secretsmanager import LocalSecretsManager, endpoint as secretsmanager_endpoint
from local.idp import ALICE, BOB, OIDC_PROVIDER_DIR, ClientSpec, DemoUser, IdpProcess, demo_config, endpoints
from services.agent.revocation import Revocation, SecretsClient, revocation_offered, revoke
from services.agent.runtime import secretsmanager_client
from services.agent.settings import AgentSettings, ProviderSpec
from services.common.agentcore import LazyClient
from tests.local.test_idp import CONSENT_CLIENT, TIMEOUT, authorize, callback, consent_code, exchange, sign_in_at
from tests.services.conftest import ALB_ARN, ALICE as ALICE_AT_THE_ALB, CLIENT_ID, ISSUER, ORIGIN, REGION, SIGNING_KEYS, demo_provider
from tests.support.browsing import LiveServer

HOST = "127.0.0.1"
# A confidential client (client_secret_basic) of the issuer. Its id and secret hold characters that RFC 6749
# section 2.3.1's form-urlencoding changes: sent as plain Basic, the issuer would not recognise them.
REVOKER = ClientSpec(
    client_id="agent revoker:1",
    client_secret=secrets.token_urlsafe(18) + " +%:&=~",
    redirect_uris=("http://127.0.0.1:8000/oauth2/idpresponse",),
    client_name="Agent chat",
)
GITHUB_CLIENT_ID = "Iv1.0123456789abcdef"
GITHUB_SECRET = secrets.token_hex(20)


def _require_node() -> None:
    if shutil.which("node") and OIDC_PROVIDER_DIR.is_dir():
        return
    if os.environ.get("REQUIRE_NODE_IDP") == "1":
        pytest.fail("the local IdP needs node and node_modules/oidc-provider (npm ci) (REQUIRE_NODE_IDP=1)", pytrace=False)
    pytest.skip("the local IdP needs node and node_modules/oidc-provider (npm ci)")


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@pytest.fixture(scope="module")
def issuers() -> Iterator[dict[str, str]]:
    """The sign-in issuer (opaque access tokens, `REVOKER` registered for client_secret_basic) and the consent
    issuer (JWT access tokens, test_idp's client), from one node process."""
    _require_node()
    sign_in_port, consent_port = _free_ports(2)
    config = demo_config(
        host=HOST, sign_in_port=sign_in_port, consent_port=consent_port, sign_in_client=REVOKER, consent_clients=(CONSENT_CLIENT,)
    )
    with IdpProcess(config) as process:
        yield process.issuers


@pytest.fixture(scope="module")
def store() -> Iterator[LocalSecretsManager]:
    manager = LocalSecretsManager(REGION)
    yield manager
    manager.delete_all()


@pytest.fixture(scope="module")
def agent_secrets() -> Iterator[SecretsClient]:
    """The runtime's Secrets Manager client, built by its own factory, pointed at the local server by the
    standard endpoint variable (as the local stack points the agent), with made-up keys. One per module,
    as the agent keeps one per process."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", secretsmanager_endpoint())
        env.setenv("AWS_ACCESS_KEY_ID", "AKIDLOCALSTANDIN")
        env.setenv("AWS_SECRET_ACCESS_KEY", "local-stand-in-secret")
        env.setenv("AWS_CONFIG_FILE", "/dev/null")
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        client = LazyClient(lambda: secretsmanager_client(_settings([_entry("rfc7009", "http://127.0.0.1:1/oauth2/revoke")])))
        yield client.get


def _entry(method: str, endpoint: str | None = None, **revoke: Any) -> dict[str, Any]:
    """A `PROVIDERS` entry of the kind that speaks `method`, with a `revoke` object (a fake ARN unless given)."""
    kind = "github" if method == "github" else "custom-oidc"
    fields = {"method": method, "client_id": REVOKER.client_id, "client_secret_arn": _arn("corp-client")}
    fields |= ({"endpoint": endpoint} if endpoint else {}) | revoke
    return demo_provider(None, scopes="openid", name="corp", kind=kind, display_name="Corp", revoke=fields)


def _arn(name: str) -> str:
    return f"arn:aws:secretsmanager:{REGION}:123456789012:secret:{name}-AbC123"


def _settings(providers: list[dict[str, Any]], profile: str = "local") -> AgentSettings:
    """The agent's settings with these `PROVIDERS` entries (as the environment gives them: validated here)."""
    values: dict[str, Any] = {
        "app_profile": profile,
        "aws_region": REGION,
        "public_base_url": ORIGIN,
        "alb_arn": ALB_ARN,
        "oidc_issuer": ISSUER,
        "oidc_client_id": CLIENT_ID,
        "flow_signing_keys": json.dumps(SIGNING_KEYS),
        "bedrock_model_id": "us.anthropic.claude-haiku-4-5-20251001-v1:0",
        "workload_identity_name": "agentcore-ecs-local-agent",
        "providers": providers,
        "connections_table": "unused-connections",
        "session_binding_url": f"{ORIGIN}/oauth2/session-binding",
        "sign_out_url": "https://signin.example/logout?client_id=alb-client&logout_uri=https%3A%2F%2Fagent.example.com%2Fsigned-out",
    }
    return AgentSettings(**values)


def _revoke(
    provider: ProviderSpec, token: str, agent_secrets: SecretsClient, github_api_url: str = "https://api.github.invalid"
) -> Revocation:
    async def run() -> Revocation:
        async with httpx.AsyncClient(trust_env=False, follow_redirects=False) as http:
            return await revoke(http, provider, token, secrets=agent_secrets, github_api_url=github_api_url)

    return asyncio.run(run())


def _rfc7009(issuer: str, arn: str, **revoke: Any) -> ProviderSpec:
    return ProviderSpec.model_validate(_entry("rfc7009", endpoints(issuer).revocation, client_secret_arn=arn, **revoke))


def _access_token(browser: httpx.Client, issuer: str, user: DemoUser = ALICE) -> str:
    """A real access token of the sign-in issuer: the code flow, exchanged with the client's Basic credentials."""
    result, _ = authorize(browser, issuer, REVOKER, "openid email profile")
    if isinstance(result, httpx.Response):  # no session yet in this browser
        result = sign_in_at(browser, result, user, REVOKER.redirect_uris[0])
    code = callback(result)["code"]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REVOKER.redirect_uris[0]}
    basic = httpx.BasicAuth(quote_plus(REVOKER.client_id), quote_plus(REVOKER.client_secret))
    answer = httpx.post(endpoints(issuer).token, data=form, auth=basic, timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]
    assert isinstance(token, str) and "." not in token, "the sign-in issuer's access tokens are opaque"
    return token


def _works(issuer: str, token: str) -> bool:
    """Whether the issuer still honours the token: its userinfo endpoint answers 200 for it, 401 once revoked."""
    status = httpx.get(endpoints(issuer).userinfo, headers={"authorization": f"Bearer {token}"}, timeout=TIMEOUT).status_code
    assert status in (200, 401), status
    return status == 200


def _browser() -> httpx.Client:
    return httpx.Client(timeout=TIMEOUT, follow_redirects=False, trust_env=False)


@dataclass
class Watch:
    """What the agent logs (its logger, at DEBUG) and what reaches the console, for one test."""

    caplog: pytest.LogCaptureFixture
    capsys: pytest.CaptureFixture[str]

    @property
    def records(self) -> list[tuple[str, str, str]]:
        """Each of the agent's log lines as (message, reason, code)."""
        agent = [r for r in self.caplog.records if r.name == "agent"]
        return [(r.getMessage(), r.__dict__.get("reason", ""), r.__dict__.get("code", "")) for r in agent]

    def nowhere(self, text: str, *answers: object) -> None:
        """`text` in no log record (message, fields, exception), no console output and no answer."""
        captured = self.capsys.readouterr()
        places = [("log", self.caplog.text), ("stdout", captured.out), ("stderr", captured.err)]
        places += [("log record", repr(r.__dict__)) for r in self.caplog.records] + [("answer", repr(a)) for a in answers]
        for where, value in places:
            assert text not in value, f"found in the {where}"
        assert all(r.exc_info is None for r in self.caplog.records if r.name == "agent")


@pytest.fixture
def watch(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> Watch:
    return Watch(caplog, capsys)


# --- RFC 7009 against the local issuer -------------------------------------------------------------------


def test_rfc7009_revokes_the_grant_at_the_issuer(
    issuers: dict[str, str], store: LocalSecretsManager, agent_secrets: SecretsClient, watch: Watch
) -> None:
    issuer = issuers["sign-in"]
    arn = store.create_json_secret("corp-client", {"client_secret": REVOKER.client_secret})
    with _browser() as browser:
        token = _access_token(browser, issuer)
        sibling = _access_token(browser, issuer)  # the same browser session: the same grant
    with _browser() as elsewhere:
        bobs = _access_token(elsewhere, issuer, BOB)
    assert _works(issuer, token) and _works(issuer, sibling) and _works(issuer, bobs)

    provider = _rfc7009(issuer, arn)
    assert revocation_offered(provider)
    revocation = _revoke(provider, token, agent_secrets)
    assert revocation == Revocation("revoked")
    assert "Corp has also withdrawn the permission it gave." in revocation.message(provider)
    assert not _works(issuer, token)
    assert not _works(issuer, sibling), "the grant went, with every token of it"
    assert _works(issuer, bobs), "another person's grant stays"
    # RFC 7009 section 2.2: a token the server no longer knows is answered 200 as well.
    assert _revoke(provider, token, agent_secrets) == Revocation("revoked")
    watch.nowhere(REVOKER.client_secret, revocation)
    watch.nowhere(token)


def test_a_wrong_client_secret_fails_and_the_secret_is_read_anew_each_time(
    issuers: dict[str, str], store: LocalSecretsManager, agent_secrets: SecretsClient, watch: Watch
) -> None:
    issuer = issuers["sign-in"]
    wrong = secrets.token_urlsafe(24)
    arn = store.create_json_secret("corp-client", {"client_secret": wrong})
    provider = _rfc7009(issuer, arn)
    with _browser() as browser:
        token = _access_token(browser, issuer)

    revocation = _revoke(provider, token, agent_secrets)
    assert revocation == Revocation("failed")
    assert _works(issuer, token), "the issuer refused the client (401 invalid_client): the token lives on"
    message = revocation.message(provider)
    assert "could not be asked to withdraw" in message and "until it expires there" in message
    assert watch.records == [("revocation_failed", "refused", "401")]
    watch.nowhere(wrong, revocation, message)

    # Put right at the store: the next disconnect reads it there (nothing kept from the last call).
    store.client().put_secret_value(SecretId=arn, SecretString=json.dumps({"client_secret": REVOKER.client_secret}))
    assert _revoke(provider, token, agent_secrets) == Revocation("revoked")
    assert not _works(issuer, token)


@pytest.mark.parametrize(
    "case",
    [
        pytest.param((json.dumps({"other_key": REVOKER.client_secret}), "KeyError"), id="no such json key"),
        pytest.param((f"plain text {REVOKER.client_secret}", "JSONDecodeError"), id="not json"),
        pytest.param((json.dumps({"client_secret": ""}), "TypeError"), id="empty"),
        pytest.param((None, "ResourceNotFoundException"), id="no such secret"),
    ],
)
def test_an_unreadable_client_secret_fails_without_a_word_of_it(
    issuers: dict[str, str], store: LocalSecretsManager, agent_secrets: SecretsClient, watch: Watch, case: tuple[str | None, str]
) -> None:
    stored, code = case
    issuer = issuers["sign-in"]
    arn = _arn("corp-client-gone")
    if stored is not None:
        arn = str(store.client().create_secret(Name=f"corp-odd-{secrets.token_hex(4)}", SecretString=stored)["ARN"])
    try:
        with _browser() as browser:
            token = _access_token(browser, issuer)
        revocation = _revoke(_rfc7009(issuer, arn), token, agent_secrets)
    finally:
        if stored is not None:
            store.client().delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
    assert revocation == Revocation("failed") and _works(issuer, token)
    assert watch.records == [("revocation_failed", "secret_unreadable", code)]
    watch.nowhere(REVOKER.client_secret, revocation)


def test_an_issuer_that_cannot_revoke_the_token_kind_is_a_failure(
    issuers: dict[str, str], store: LocalSecretsManager, agent_secrets: SecretsClient
) -> None:
    """The consent issuer's access tokens are JWTs, which oidc-provider does not revoke: 400
    unsupported_token_type (RFC 7009 section 2.2.1). Nothing at the issuer changes; the person is told."""
    consent = issuers["consent"]
    arn = store.create_json_secret("demo-client", {"client_secret": CONSENT_CLIENT.client_secret})
    with _browser() as browser:
        code, verifier = consent_code(browser, consent)
    tokens = exchange(consent, code, verifier).json()
    provider = _rfc7009(consent, arn, client_id=CONSENT_CLIENT.client_id)
    assert _revoke(provider, tokens["access_token"], agent_secrets) == Revocation("failed")
    answer = httpx.post(
        endpoints(consent).revocation,
        data={"token": tokens["access_token"], "token_type_hint": "access_token"},
        auth=(CONSENT_CLIENT.client_id, CONSENT_CLIENT.client_secret),
        timeout=TIMEOUT,
    )
    assert answer.status_code == 400 and answer.json()["error"] == "unsupported_token_type"


def test_an_unreachable_endpoint_is_a_failure(store: LocalSecretsManager, agent_secrets: SecretsClient, watch: Watch) -> None:
    arn = store.create_json_secret("corp-client", {"client_secret": REVOKER.client_secret})
    [port] = _free_ports(1)
    provider = ProviderSpec.model_validate(_entry("rfc7009", f"http://{HOST}:{port}/oauth2/revoke", client_secret_arn=arn))
    assert _revoke(provider, "opaque-token", agent_secrets) == Revocation("failed")
    assert watch.records == [("revocation_failed", "network", "ConnectError")]


# --- GitHub's grant API, stood in for --------------------------------------------------------------------


class GitHubGrants:
    """`DELETE /applications/{client_id}/grant` as GitHub documents it ("Delete an app authorization"):
    Basic client id and secret, the token in a JSON body, the version header. Answers `status` when the
    request is right, and records what it received."""

    def __init__(self) -> None:
        self.status = 204
        self.received: list[dict[str, Any]] = []
        self.app = Starlette(routes=[Route("/applications/{client_id}/grant", self.grant, methods=["DELETE", "POST", "GET"])])

    async def grant(self, request: Request) -> Response:
        body = await request.body()
        seen = {"method": request.method, "path": request.url.path, "headers": dict(request.headers), "body": body}
        self.received.append(seen)
        expected = base64.b64encode(f"{GITHUB_CLIENT_ID}:{GITHUB_SECRET}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return JSONResponse({"message": "Not Found"}, status_code=404)  # GitHub's answer to wrong client credentials
        problems = [
            request.method != "DELETE",
            request.path_params["client_id"] != GITHUB_CLIENT_ID,
            request.headers.get("accept") != "application/vnd.github+json",
            request.headers.get("x-github-api-version") != "2022-11-28",
            request.headers.get("content-type") != "application/json",
            set(json.loads(body or b"{}")) != {"access_token"},
        ]
        if any(problems):
            return JSONResponse({"message": "Validation Failed", "problems": problems}, status_code=422)
        return Response(status_code=self.status)


@pytest.fixture
def github() -> Iterator[tuple[GitHubGrants, str]]:
    grants = GitHubGrants()
    with LiveServer(grants.app) as server:
        yield grants, server.base_url


def _github_entry(arn: str, api_url: str | None) -> dict[str, Any]:
    revoke = {"method": "github", "client_id": GITHUB_CLIENT_ID, "client_secret_arn": arn}
    return demo_provider(api_url, scopes="read:user", name="github", kind="github", display_name="GitHub", revoke=revoke)


def test_github_deletes_the_grant_with_the_client_credentials(
    github: tuple[GitHubGrants, str],
    store: LocalSecretsManager,
    agent_secrets: SecretsClient,
    watch: Watch,
) -> None:
    grants, base = github
    arn = store.create_json_secret("github-client", {"client_secret": GITHUB_SECRET})
    provider = ProviderSpec.model_validate(_github_entry(arn, None))
    revocation = _revoke(provider, "gho_person-token", agent_secrets, github_api_url=base)  # the agent's GITHUB_API_URL
    assert revocation == Revocation("revoked") and "GitHub has also withdrawn" in revocation.message(provider)
    [seen] = grants.received
    assert (seen["method"], seen["path"]) == ("DELETE", f"/applications/{GITHUB_CLIENT_ID}/grant")
    assert json.loads(seen["body"]) == {"access_token": "gho_person-token"}

    grants.status = 404  # GitHub: no such grant, or wrong credentials
    provider = ProviderSpec.model_validate(_github_entry(arn, base))  # a provider's own api_url (GitHub Enterprise)
    revocation = _revoke(provider, "gho_person-token", agent_secrets, github_api_url="https://api.github.invalid")
    assert revocation == Revocation("failed") and len(grants.received) == 2
    assert "could not be asked to withdraw the permission: remove this app in your GitHub account settings" in revocation.message(provider)
    watch.nowhere(GITHUB_SECRET, revocation)


def test_a_wrong_github_secret_is_a_failure(
    github: tuple[GitHubGrants, str], store: LocalSecretsManager, agent_secrets: SecretsClient
) -> None:
    grants, base = github
    arn = store.create_json_secret("github-client", {"client_secret": "not-" + GITHUB_SECRET})
    provider = ProviderSpec.model_validate(_github_entry(arn, base))
    assert _revoke(provider, "gho_person-token", agent_secrets) == Revocation("failed")
    assert len(grants.received) == 1


def test_a_disconnect_revokes_at_github_through_the_runtime(
    make_agent: Any, github: tuple[GitHubGrants, str], store: LocalSecretsManager, agent_secrets: SecretsClient, capsys: Any
) -> None:
    """The route end to end: the vault's token, the runtime's Secrets Manager client, the agent's GITHUB_API_URL."""
    grants, base = github
    arn = store.create_json_secret("github-client", {"client_secret": GITHUB_SECRET})
    agent = make_agent(providers=[_github_entry(arn, None)], github_api_url=base)
    agent.bedrock.auto_tool = "get_user"  # GitHub's first tool: it asks for consent
    browser = agent.browser(ALICE_AT_THE_ALB)
    agent.consent(browser, agent.chat(browser, "who am I on github?"))
    answer = browser.client.post("/api/connections/github/disconnect", json={}, headers=browser.headers())
    assert answer.status_code == 200, answer.text
    assert answer.json()["revocation"] == "revoked" and "GitHub has also withdrawn" in answer.json()["message"]
    [seen] = grants.received
    assert json.loads(seen["body"])["access_token"].startswith("at-")  # the vault's token for this person
    assert GITHUB_SECRET not in answer.text and GITHUB_SECRET not in str(capsys.readouterr())


# --- the setting -----------------------------------------------------------------------------------------


def test_without_the_setting_github_and_custom_oidc_are_not_offered() -> None:
    for kind in ("github", "custom-oidc"):
        provider = ProviderSpec.model_validate(demo_provider(None, scopes="openid", name="corp", kind=kind, display_name="Corp"))
        assert provider.revoke is None and not revocation_offered(provider)
    entry = _entry("rfc7009", "https://id.example.com/oauth2/revoke")
    parsed = ProviderSpec.model_validate(entry).model_dump(exclude_none=True)
    assert parsed["revoke"] == entry["revoke"] | {"client_secret_json_key": "client_secret"}  # the default key


def _bad(revoke: dict[str, Any], method: str = "rfc7009", **entry: Any) -> dict[str, Any]:
    """A custom-oidc (rfc7009) or github entry with `revoke` fields changed (None: removed) and `entry` fields changed."""
    good = _entry(method, "https://id.example.com/oauth2/revoke" if method == "rfc7009" else None)
    changed = {k: v for k, v in (good["revoke"] | revoke).items() if v is not None}
    return good | {"revoke": changed} | entry


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (_bad({"method": "oauth"}), "Input should be 'github' or 'rfc7009'"),
        (_bad({"client_secret": "inline"}), "Extra inputs are not permitted"),
        (_bad({"client_id": ""}), "revoke.client_id"),
        (_bad({"client_id": "a\nb"}), "revoke.client_id"),
        (_bad({"client_id": "x" * 257}), "revoke.client_id"),
        (_bad({"client_secret_arn": "arn:aws:ssm:eu-west-1:123456789012:parameter/x"}), "revoke.client_secret_arn"),
        (_bad({"client_secret_arn": "corp-client"}), "revoke.client_secret_arn"),
        (_bad({"client_secret_json_key": "client secret"}), "revoke.client_secret_json_key"),
        (_bad({"endpoint": None}), "revoke.endpoint is required for method rfc7009"),
        (_bad({"endpoint": "https://id.example.com/r?client=1"}), "expected an http(s) URL without query or fragment"),
        (_bad({"endpoint": "ftp://id.example.com/r"}), "expected an http(s) URL"),
        (_bad({"endpoint": "https://api.github.com/x"}, "github"), "not allowed for method github"),
        (_bad({}, "github", kind="custom-oidc"), "revoke.method 'github' does not fit kind custom-oidc"),
        (_bad({}, kind="google"), "does not fit kind google"),
        (_bad({}, revocation_url="https://id.example.com/r"), "set revoke or revocation_url, not both"),
    ],
)
def test_a_bad_revoke_object_is_refused_with_a_message(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as refused:
        _settings([entry])
    assert message in str(refused.value)


def test_outside_the_local_profile_the_endpoint_must_be_https() -> None:
    with pytest.raises(ValidationError, match=r"PROVIDERS\[CORP\]\.REVOKE\.ENDPOINT must be https:// outside the local profile"):
        _settings([_entry("rfc7009", "http://id.example.com/oauth2/revoke")], profile="sandbox")
    assert _settings([_entry("rfc7009", "https://id.example.com/oauth2/revoke")], profile="sandbox").providers[0].revoke is not None
