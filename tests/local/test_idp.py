"""The local OpenID Connect stand-ins (`local/idp`, node `oidc-provider`), over real HTTP on loopback.

Forms are followed like a browser without JavaScript: parse the page, post its form, follow
redirects, until the client's redirect URI is reached (nothing listens there; only its query counts).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from local.idp import (
    ALICE,
    BOB,
    CONSENT_TITLE,
    DEMO_API_SCOPES,
    OIDC_PROVIDER_DIR,
    REPO_ROOT,
    SERVER_SCRIPT,
    SIGN_IN_TITLE,
    ClientSpec,
    DemoUser,
    IdpProcess,
    IdpStartError,
    IdpStartTimeout,
    IssuerSpec,
    cookie_names,
    demo_config,
    endpoints,
    idp_config,
)
from services.demo_api.tokens import AccessTokenVerifier, InvalidToken, JwksKeyStore

HOST = "127.0.0.1"
TIMEOUT = httpx.Timeout(5.0)
SIGN_IN_CLIENT = ClientSpec(
    client_id="alb-client",
    client_secret=secrets.token_urlsafe(24),
    redirect_uris=("http://127.0.0.1:8000/oauth2/idpresponse",),
    client_name="Agent chat",
    logout_uris=("http://127.0.0.1:8000/signed-out",),
)
CONSENT_CLIENT = ClientSpec(
    client_id="agentcore-client",
    client_secret=secrets.token_urlsafe(24),
    redirect_uris=("http://127.0.0.1:8400/identities/oauth2/callback",),
    client_name="Notes agent",
)
API_SCOPES = " ".join(DEMO_API_SCOPES)


@pytest.fixture(scope="module", autouse=True)
def _node_idp_available() -> None:
    missing = [
        what for what, ok in (("node", shutil.which("node")), ("node_modules/oidc-provider (npm ci)", OIDC_PROVIDER_DIR.is_dir())) if not ok
    ]
    if missing:
        reason = f"local IdP needs {' and '.join(missing)}"
        if os.environ.get("REQUIRE_NODE_IDP") == "1":
            pytest.fail(f"{reason} (REQUIRE_NODE_IDP=1)", pytrace=False)
        pytest.skip(reason)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind((HOST, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _start(access_token_ttl_s: int = 3600, *, skip_consent_when_granted: bool = True) -> IdpProcess:
    sign_in_port, consent_port = _free_ports(2)
    config = demo_config(
        host=HOST,
        sign_in_port=sign_in_port,
        consent_port=consent_port,
        sign_in_client=SIGN_IN_CLIENT,
        consent_clients=(CONSENT_CLIENT,),
        access_token_ttl_s=access_token_ttl_s,
        skip_consent_when_granted=skip_consent_when_granted,
    )
    return IdpProcess(config).start(timeout_s=15)


@pytest.fixture(scope="module")
def idp(_node_idp_available: None) -> Iterator[IdpProcess]:
    process = _start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def sign_in(idp: IdpProcess) -> str:
    return idp.issuers["sign-in"]


@pytest.fixture(scope="module")
def consent(idp: IdpProcess) -> str:
    return idp.issuers["consent"]


@pytest.fixture
def browser() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=TIMEOUT, follow_redirects=False, trust_env=False) as client:
        yield client


# --- a browser without JavaScript --------------------------------------------------------------


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str]
    buttons: dict[str, str]  # submit button name -> value


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self.labels: dict[str, str] = {}
        self.inputs: dict[str, dict[str, str]] = {}
        self._label_for: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(a.get("action", ""), a.get("method", "get").lower(), {}, {}))
        elif tag == "input" and self.forms:
            self.forms[-1].fields[a.get("name", "")] = a.get("value", "")
            if "id" in a:
                self.inputs[a["id"]] = a
        elif tag == "button" and self.forms and a.get("type", "submit") == "submit" and "name" in a:
            self.forms[-1].buttons[a["value"]] = a["name"]
        elif tag == "label":
            self._label_for = a.get("for")

    def handle_data(self, data: str) -> None:
        if self._label_for is not None:
            self.labels[self._label_for] = data.strip()
            self._label_for = None


def parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def submit(browser: httpx.Client, response: httpx.Response, fields: dict[str, str], button: str | None = None) -> httpx.Response:
    page = parse(response.text)
    assert len(page.forms) == 1, response.text
    form = page.forms[0]
    assert form.method == "post"
    data = {**form.fields, **fields}
    if button is not None:
        data[form.buttons[button]] = button
    return browser.post(urllib.parse.urljoin(str(response.url), form.action), data=data)


def follow(browser: httpx.Client, response: httpx.Response, stop_at: str) -> httpx.Response | dict[str, str]:
    """Follow redirects; the query of the redirect to `stop_at`, or the page where they end."""
    for _ in range(10):
        if not response.is_redirect:
            return response
        location = urllib.parse.urljoin(str(response.url), response.headers["location"])
        if location.startswith(stop_at):
            return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
        response = browser.get(location)
    raise AssertionError("redirect loop")


def page_at(result: httpx.Response | dict[str, str]) -> httpx.Response:
    assert isinstance(result, httpx.Response), f"expected a page, got a redirect to the client: {result}"
    return result


def callback(result: httpx.Response | dict[str, str]) -> dict[str, str]:
    assert isinstance(result, dict), f"expected a redirect to the client, got {result.status_code}: {result.text[:500]}"
    return result


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize(
    browser: httpx.Client, issuer: str, client: ClientSpec, scope: str, **extra: str
) -> tuple[httpx.Response | dict[str, str], str]:
    state = secrets.token_urlsafe(16)
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uris[0],
        "scope": scope,
        "state": state,
        **extra,
    }
    response = browser.get(endpoints(issuer).authorization, params=params)
    return follow(browser, response, client.redirect_uris[0]), state


def sign_in_at(
    browser: httpx.Client, result: httpx.Response | dict[str, str], user: DemoUser, stop_at: str
) -> httpx.Response | dict[str, str]:
    login = page_at(result)
    return follow(browser, submit(browser, login, {"login": user.username, "password": user.password}), stop_at)


def consent_code(browser: httpx.Client, consent: str, user: DemoUser = ALICE) -> tuple[str, str]:
    """Sign in at the consent issuer, Allow, and return (code, verifier)."""
    verifier, challenge = pkce_pair()
    result, state = authorize(browser, consent, CONSENT_CLIENT, API_SCOPES, code_challenge=challenge, code_challenge_method="S256")
    if isinstance(result, httpx.Response) and "Sign in" in result.text:
        result = sign_in_at(browser, result, user, CONSENT_CLIENT.redirect_uris[0])
    if isinstance(result, httpx.Response):
        result = follow(browser, submit(browser, result, {}, button="allow"), CONSENT_CLIENT.redirect_uris[0])
    query = callback(result)
    assert query["state"] == state
    return query["code"], verifier


def exchange(consent: str, code: str, verifier: str) -> httpx.Response:
    """The code exchange as AgentCore Identity makes it for the stacks' provider: client_secret_basic."""
    return httpx.post(
        endpoints(consent).token,
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": CONSENT_CLIENT.redirect_uris[0], "code_verifier": verifier},
        auth=(CONSENT_CLIENT.client_id, CONSENT_CLIENT.client_secret),
        timeout=TIMEOUT,
    )


def refresh(consent: str, refresh_token: str) -> httpx.Response:
    return httpx.post(
        endpoints(consent).token,
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=(CONSENT_CLIENT.client_id, CONSENT_CLIENT.client_secret),
        timeout=TIMEOUT,
    )


def demo_api_verifier(consent: str, clock: Any = time.time) -> AccessTokenVerifier:
    """The demo API's own verifier, set up like services/demo_api/main.py does, keys from discovery."""
    jwks_uri = httpx.get(endpoints(consent).discovery, timeout=TIMEOUT).json()["jwks_uri"]
    return AccessTokenVerifier(issuer=consent, client_ids={CONSENT_CLIENT.client_id}, keys=JwksKeyStore(jwks_uri), clock=clock)


def b64url_json(segment: str) -> dict[str, Any]:
    value = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    assert isinstance(value, dict)
    return value


def verify_id_token(token: str, jwks: dict[str, Any]) -> dict[str, Any]:
    header_b64, payload_b64, signature_b64 = token.split(".")
    header = b64url_json(header_b64)
    assert header["alg"] == "RS256"
    jwk = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    numbers = rsa.RSAPublicNumbers(
        int.from_bytes(base64.urlsafe_b64decode(jwk["e"] + "=" * (-len(jwk["e"]) % 4)), "big"),
        int.from_bytes(base64.urlsafe_b64decode(jwk["n"] + "=" * (-len(jwk["n"]) % 4)), "big"),
    )
    signature = base64.urlsafe_b64decode(signature_b64 + "=" * (-len(signature_b64) % 4))
    numbers.public_key().verify(signature, f"{header_b64}.{payload_b64}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return b64url_json(payload_b64)


# --- discovery ---------------------------------------------------------------------------------


def test_discovery_documents(sign_in: str, consent: str) -> None:
    for issuer in (sign_in, consent):
        doc = httpx.get(endpoints(issuer).discovery, timeout=TIMEOUT).json()
        assert doc["issuer"] == issuer
        assert doc["authorization_endpoint"] == endpoints(issuer).authorization
        assert doc["token_endpoint"] == endpoints(issuer).token
        assert doc["jwks_uri"] == endpoints(issuer).jwks == f"{issuer}/.well-known/jwks.json"
        assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
        assert doc["response_types_supported"] == ["code"]
        jwks = httpx.get(doc["jwks_uri"], timeout=TIMEOUT).json()
        assert [(k["kty"], k["alg"], k["use"]) for k in jwks["keys"]] == [("RSA", "RS256", "sig")]
        assert "d" not in jwks["keys"][0]
    sign_in_doc = httpx.get(endpoints(sign_in).discovery, timeout=TIMEOUT).json()
    assert sign_in_doc["userinfo_endpoint"] == endpoints(sign_in).userinfo
    assert sign_in_doc["token_endpoint_auth_methods_supported"] == ["client_secret_basic"]
    assert {"openid", "email", "profile"} <= set(sign_in_doc["scopes_supported"])
    consent_doc = httpx.get(endpoints(consent).discovery, timeout=TIMEOUT).json()
    assert consent_doc["code_challenge_methods_supported"] == ["S256"]
    assert consent_doc["token_endpoint_auth_methods_supported"] == ["client_secret_basic"]  # as the stacks' CLIENT_SECRET_BASIC
    assert "refresh_token" in consent_doc["grant_types_supported"]


# --- sign-in issuer (stands in for Cognito behind the ALB) ---------------------------------------


def test_sign_in_code_flow_with_client_secret_basic(browser: httpx.Client, sign_in: str) -> None:
    nonce = secrets.token_urlsafe(16)
    result, state = authorize(browser, sign_in, SIGN_IN_CLIENT, "openid email profile", nonce=nonce)
    login = page_at(result)
    assert login.headers["cache-control"] == "no-store"
    csp = login.headers["content-security-policy"]
    assert "script-src" not in csp and "'unsafe-inline'" not in csp and "default-src 'none'" in csp
    assert f"<h1>{SIGN_IN_TITLE}</h1>" in login.text
    page = parse(login.text)
    assert page.labels == {"username": "Username", "password": "Password"}
    assert page.inputs["username"]["name"] == "login" and page.inputs["username"]["autocomplete"] == "username"
    assert page.inputs["password"]["type"] == "password" and page.inputs["password"]["name"] == "password"
    assert '<button type="submit">Sign in</button>' in login.text
    assert "Demo accounts: alice / alice-demo-pass, bob / bob-demo-pass" in login.text

    query = callback(sign_in_at(browser, login, ALICE, SIGN_IN_CLIENT.redirect_uris[0]))  # no consent page
    assert query["state"] == state and query["iss"] == sign_in

    token = httpx.post(
        endpoints(sign_in).token,
        data={"grant_type": "authorization_code", "code": query["code"], "redirect_uri": SIGN_IN_CLIENT.redirect_uris[0]},
        auth=(SIGN_IN_CLIENT.client_id, SIGN_IN_CLIENT.client_secret),
        timeout=TIMEOUT,
    )
    assert token.status_code == 200, token.text
    body = token.json()
    assert body["token_type"].lower() == "bearer" and "refresh_token" not in body
    claims = verify_id_token(body["id_token"], httpx.get(endpoints(sign_in).jwks, timeout=TIMEOUT).json())
    assert claims["iss"] == sign_in and claims["aud"] == SIGN_IN_CLIENT.client_id and claims["nonce"] == nonce
    assert claims["sub"] == ALICE.sign_in_sub and claims["exp"] > time.time()

    userinfo = httpx.get(endpoints(sign_in).userinfo, headers={"authorization": f"Bearer {body['access_token']}"}, timeout=TIMEOUT)
    assert userinfo.status_code == 200, userinfo.text
    assert userinfo.json() == {
        "sub": ALICE.sign_in_sub,
        "email": "alice@example.org",
        "email_verified": True,
        "username": "alice",
        "name": ALICE.name,
    }


def test_sign_in_client_must_use_basic_and_exact_redirect_uri(browser: httpx.Client, sign_in: str) -> None:
    result, _ = authorize(browser, sign_in, SIGN_IN_CLIENT, "openid")
    query = callback(sign_in_at(browser, result, BOB, SIGN_IN_CLIENT.redirect_uris[0]))
    posted = httpx.post(
        endpoints(sign_in).token,
        data={
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": SIGN_IN_CLIENT.redirect_uris[0],
            "client_id": SIGN_IN_CLIENT.client_id,
            "client_secret": SIGN_IN_CLIENT.client_secret,
        },
        timeout=TIMEOUT,
    )
    assert posted.status_code == 401 and posted.json()["error"] == "invalid_client"

    for wrong in (
        SIGN_IN_CLIENT.redirect_uris[0] + "/",
        SIGN_IN_CLIENT.redirect_uris[0] + "?x=1",
        "http://127.0.0.1:8001/oauth2/idpresponse",
    ):
        refused = browser.get(
            endpoints(sign_in).authorization,
            params={"response_type": "code", "client_id": SIGN_IN_CLIENT.client_id, "redirect_uri": wrong, "scope": "openid"},
        )
        assert refused.status_code == 400 and "location" not in refused.headers  # never redirected to an unregistered URI
        assert "redirect_uri" in refused.text and " at " not in refused.text  # a message, no stack trace


def test_logout_ends_the_sign_in_session_and_returns_only_to_a_registered_page(browser: httpx.Client, sign_in: str) -> None:
    """Cognito's `/logout?client_id=&logout_uri=`: the next authorization asks for credentials again (bob can
    sign in where alice was); an unregistered return or client changes nothing."""
    result, _ = authorize(browser, sign_in, SIGN_IN_CLIENT, "openid email")
    callback(sign_in_at(browser, result, ALICE, SIGN_IN_CLIENT.redirect_uris[0]))
    callback(authorize(browser, sign_in, SIGN_IN_CLIENT, "openid email")[0])  # signed in: straight back
    logout = f"{sign_in}/logout"
    for params in (
        {"client_id": SIGN_IN_CLIENT.client_id, "logout_uri": "http://127.0.0.1:8000/elsewhere"},
        {"client_id": "someone-else", "logout_uri": SIGN_IN_CLIENT.logout_uris[0]},
        {"client_id": SIGN_IN_CLIENT.client_id},
    ):
        refused = browser.get(logout, params=params)
        assert refused.status_code == 400 and "not registered" in refused.text and "location" not in refused.headers
    callback(authorize(browser, sign_in, SIGN_IN_CLIENT, "openid email")[0])  # still signed in
    # The session cookie (and its signature) as someone who copied them before the logout would hold them.
    copied = {name: value for name, value in browser.cookies.items() if name.startswith("idp-sign-in-session")}
    assert copied
    out = browser.get(logout, params={"client_id": SIGN_IN_CLIENT.client_id, "logout_uri": SIGN_IN_CLIENT.logout_uris[0]})
    assert out.status_code == 302 and out.headers["location"] == SIGN_IN_CLIENT.logout_uris[0]
    with httpx.Client(timeout=TIMEOUT, follow_redirects=False, trust_env=False, cookies=copied) as thief:
        stale = page_at(authorize(thief, sign_in, SIGN_IN_CLIENT, "openid email")[0])
        assert "Sign in" in stale.text and "Demo accounts" in stale.text, "the session itself ended, not only the cookie"
    again = page_at(authorize(browser, sign_in, SIGN_IN_CLIENT, "openid email")[0])
    assert "Sign in" in again.text
    query = callback(sign_in_at(browser, again, BOB, SIGN_IN_CLIENT.redirect_uris[0]))
    token = httpx.post(
        endpoints(sign_in).token,
        data={"grant_type": "authorization_code", "code": query["code"], "redirect_uri": SIGN_IN_CLIENT.redirect_uris[0]},
        auth=(SIGN_IN_CLIENT.client_id, SIGN_IN_CLIENT.client_secret),
        timeout=TIMEOUT,
    )
    claims = verify_id_token(token.json()["id_token"], httpx.get(endpoints(sign_in).jwks, timeout=TIMEOUT).json())
    assert claims["sub"] == BOB.sign_in_sub


def test_alice_and_bob_have_different_subs(sign_in: str) -> None:
    subs = {}
    for user in (ALICE, BOB):
        with httpx.Client(timeout=TIMEOUT, follow_redirects=False, trust_env=False) as b:
            result, _ = authorize(b, sign_in, SIGN_IN_CLIENT, "openid")
            query = callback(sign_in_at(b, result, user, SIGN_IN_CLIENT.redirect_uris[0]))
            token = httpx.post(
                endpoints(sign_in).token,
                data={"grant_type": "authorization_code", "code": query["code"], "redirect_uri": SIGN_IN_CLIENT.redirect_uris[0]},
                auth=(SIGN_IN_CLIENT.client_id, SIGN_IN_CLIENT.client_secret),
                timeout=TIMEOUT,
            ).json()
            subs[user.username] = b64url_json(token["id_token"].split(".")[1])["sub"]
    assert subs == {"alice": ALICE.sign_in_sub, "bob": BOB.sign_in_sub}
    assert ALICE.sign_in_sub != BOB.sign_in_sub and ALICE.consent_sub != BOB.consent_sub


# --- consent issuer (stands in for the notes API's authorization server) -------------------------


def test_consent_issuer_requires_pkce(browser: httpx.Client, consent: str) -> None:
    result, state = authorize(browser, consent, CONSENT_CLIENT, API_SCOPES)
    query = callback(result)
    assert query["error"] == "invalid_request" and "PKCE" in query["error_description"] and query["state"] == state
    _, challenge = pkce_pair()
    plain, _ = authorize(browser, consent, CONSENT_CLIENT, API_SCOPES, code_challenge=challenge, code_challenge_method="plain")
    assert callback(plain)["error"] == "invalid_request"


def test_wrong_password_shows_the_form_again(browser: httpx.Client, consent: str) -> None:
    _, challenge = pkce_pair()
    # prompt=consent: Alice's grant from another test of this module would otherwise skip the page.
    result, _ = authorize(
        browser, consent, CONSENT_CLIENT, API_SCOPES, code_challenge=challenge, code_challenge_method="S256", prompt="consent"
    )
    login = page_at(result)
    assert f"<h1>{CONSENT_TITLE}</h1>" in login.text
    again = submit(browser, login, {"login": "alice", "password": "not-her-password"})
    assert again.status_code == 200
    assert "Wrong username or password" in again.text and 'role="alert"' in again.text
    assert again.headers["cache-control"] == "no-store"
    assert "Error" not in again.text and ".mjs" not in again.text
    unknown = submit(browser, again, {"login": "<script>mallory</script>", "password": "x"})
    assert "Wrong username or password" in unknown.text
    assert "<script>mallory" not in unknown.text and "&lt;script&gt;mallory&lt;/script&gt;" in unknown.text  # escaped
    right = page_at(
        follow(browser, submit(browser, unknown, {"login": "alice", "password": ALICE.password}), CONSENT_CLIENT.redirect_uris[0])
    )
    assert "wants to:" in right.text  # the same interaction goes on to consent


def test_deny_ends_with_access_denied(browser: httpx.Client, consent: str) -> None:
    _, challenge = pkce_pair()
    # prompt=consent: Alice's grant from another test of this module would otherwise skip the page.
    result, state = authorize(
        browser, consent, CONSENT_CLIENT, API_SCOPES, code_challenge=challenge, code_challenge_method="S256", prompt="consent"
    )
    consent_page = page_at(sign_in_at(browser, result, ALICE, CONSENT_CLIENT.redirect_uris[0]))
    assert "<strong>Notes agent</strong> wants to:" in consent_page.text
    for words in DEMO_API_SCOPES.values():
        assert f"<li>{words} " in consent_page.text
    assert "Signed in as Alice Example (alice)" in consent_page.text
    assert consent_page.headers["cache-control"] == "no-store"
    assert set(parse(consent_page.text).forms[0].buttons) == {"allow", "deny"}
    query = callback(follow(browser, submit(browser, consent_page, {}, button="deny"), CONSENT_CLIENT.redirect_uris[0]))
    assert query["error"] == "access_denied" and query["state"] == state and "code" not in query


def test_allow_exchange_verify_and_refresh(browser: httpx.Client, consent: str) -> None:
    code, verifier = consent_code(browser, consent)

    token = exchange(consent, code, verifier)
    assert token.status_code == 200, token.text
    body = token.json()
    assert body["expires_in"] == 3600 and body["scope"] == API_SCOPES and body["refresh_token"]
    header = b64url_json(body["access_token"].split(".")[0])
    assert header["alg"] == "RS256"
    claims = b64url_json(body["access_token"].split(".")[1])
    assert {"iss", "token_use", "client_id", "scope", "sub", "username", "exp", "iat", "jti"} <= claims.keys()
    assert claims["exp"] - claims["iat"] == 3600

    verifier_api = demo_api_verifier(consent)
    verified = verifier_api.verify(body["access_token"])
    assert verified.sub == ALICE.consent_sub and verified.username == "alice"
    assert verified.scopes == frozenset(DEMO_API_SCOPES)

    refreshed = refresh(consent, body["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    new = refreshed.json()
    assert new["access_token"] != body["access_token"] and new["refresh_token"] == body["refresh_token"]  # not rotated, like Cognito
    assert verifier_api.verify(new["access_token"]).sub == ALICE.consent_sub
    assert refresh(consent, body["refresh_token"]).status_code == 200  # reusable

    again = exchange(consent, code, verifier)  # codes are single-use...
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    revoked = refresh(consent, body["refresh_token"])  # ...and a replayed code revokes what it gave (RFC 6749 section 4.1.2)
    assert revoked.status_code == 400 and revoked.json()["error"] == "invalid_grant"


def test_wrong_verifier_and_wrong_client_auth_are_refused(browser: httpx.Client, consent: str) -> None:
    code, verifier = consent_code(browser, consent)
    wrong = exchange(consent, code, pkce_pair()[0])
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"

    code, verifier = consent_code(browser, consent)
    in_form = httpx.post(
        endpoints(consent).token,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CONSENT_CLIENT.redirect_uris[0],
            "code_verifier": verifier,
            "client_id": CONSENT_CLIENT.client_id,
            "client_secret": CONSENT_CLIENT.client_secret,
        },
        timeout=TIMEOUT,
    )
    assert in_form.status_code == 401 and in_form.json()["error"] == "invalid_client"  # registered for client_secret_basic


def test_short_access_token_ttl_and_refresh() -> None:
    with _start(access_token_ttl_s=2) as short, httpx.Client(timeout=TIMEOUT, follow_redirects=False, trust_env=False) as b:
        consent = short.issuers["consent"]
        code, verifier = consent_code(b, consent, BOB)
        body = exchange(consent, code, verifier).json()
        assert body["expires_in"] == 2
        claims = b64url_json(body["access_token"].split(".")[1])
        assert claims["exp"] - claims["iat"] == 2 and claims["sub"] == BOB.consent_sub

        later = demo_api_verifier(consent, clock=lambda: time.time() + 20)  # past exp + the verifier's 10 s leeway
        with pytest.raises(InvalidToken, match="expired"):
            later.verify(body["access_token"])

        refreshed = refresh(consent, body["refresh_token"]).json()
        assert refreshed["expires_in"] == 2
        assert demo_api_verifier(consent).verify(refreshed["access_token"]).username == "bob"


# --- remembered consent (skip_consent_when_granted) ------------------------------------------------
#
# Each test starts its own issuers: grants belong to accounts and outlive browsers, so the shared
# module issuer would carry one test's Allow into the next.

REDIRECT = CONSENT_CLIENT.redirect_uris[0]
READ, WRITE, PROFILE = "demo-api/notes.read", "demo-api/notes.write", "demo-api/profile.read"


@pytest.fixture
def remembering(_node_idp_available: None) -> Iterator[str]:
    """A consent issuer of its own, with the default skip_consent_when_granted=True."""
    with _start() as process:
        yield process.issuers["consent"]


@pytest.fixture
def forgetting(_node_idp_available: None) -> Iterator[str]:
    """A consent issuer of its own with skip_consent_when_granted=False."""
    with _start(skip_consent_when_granted=False) as process:
        yield process.issuers["consent"]


def new_browser() -> httpx.Client:
    return httpx.Client(timeout=TIMEOUT, follow_redirects=False, trust_env=False)


@dataclass
class Request:
    response: httpx.Response  # the authorization endpoint's own answer, not followed
    state: str
    verifier: str


def request(browser: httpx.Client, consent: str, scope: str, **extra: str) -> Request:
    """One authorization request with PKCE, as AgentCore Identity sends it."""
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    params = {
        "response_type": "code",
        "client_id": CONSENT_CLIENT.client_id,
        "redirect_uri": REDIRECT,
        "scope": scope,
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return Request(browser.get(endpoints(consent).authorization, params=params), state, verifier)


def at_once(req: Request) -> dict[str, str]:
    """The authorization endpoint answered with the redirect to the client itself: no page at all."""
    response = req.response
    assert response.is_redirect, f"expected a redirect, got {response.status_code}: {response.text[:300]}"
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?"), f"redirected to {location}, not to the client"
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
    assert query["state"] == req.state
    return query


def is_sign_in(page: httpx.Response) -> bool:
    return 'name="password"' in page.text and "wants to:" not in page.text


def consent_page(browser: httpx.Client, req: Request, sign_in_as: DemoUser | None = None) -> httpx.Response:
    """Follow the request to the consent page, signing in first if (and only if) `sign_in_as` is given."""
    page = page_at(follow(browser, req.response, REDIRECT))
    if sign_in_as is not None:
        assert is_sign_in(page), page.text[:500]
        page = page_at(sign_in_at(browser, page, sign_in_as, REDIRECT))
    assert "wants to:" in page.text and set(parse(page.text).forms[0].buttons) == {"allow", "deny"}, page.text[:500]
    return page


def scopes_on(page: httpx.Response) -> list[str]:
    return re.findall(r'<li>[^<]* <span class="hint">\(([^)]+)\)</span></li>', page.text)


def decide(browser: httpx.Client, page: httpx.Response, req: Request, decision: str) -> dict[str, str]:
    query = callback(follow(browser, submit(browser, page, {}, button=decision), REDIRECT))
    assert query["state"] == req.state
    return query


def tokens(consent: str, query: dict[str, str], req: Request) -> dict[str, Any]:
    token = exchange(consent, query["code"], req.verifier)
    assert token.status_code == 200, token.text
    body = token.json()
    assert isinstance(body, dict)
    return body


def granted(consent: str, body: dict[str, Any]) -> tuple[str, frozenset[str]]:
    """The access token's subject and scopes, as the demo API verifies them."""
    verified = demo_api_verifier(consent).verify(body["access_token"])
    return verified.sub, verified.scopes


def test_demo_config_passes_skip_consent_when_granted_to_the_consent_issuer() -> None:
    default = demo_config(host=HOST, sign_in_port=1, consent_port=2, sign_in_client=SIGN_IN_CLIENT, consent_clients=(CONSENT_CLIENT,))
    assert default["issuers"][1]["skip_consent_when_granted"] is True
    assert "skip_consent_when_granted" not in default["issuers"][0]  # the sign-in issuer has no consent page
    off = demo_config(
        host=HOST,
        sign_in_port=1,
        consent_port=2,
        sign_in_client=SIGN_IN_CLIENT,
        consent_clients=(CONSENT_CLIENT,),
        skip_consent_when_granted=False,
    )
    assert off["issuers"][1]["skip_consent_when_granted"] is False
    spec = IssuerSpec(
        name="notes", kind="consent", host=HOST, port=2, clients=(CONSENT_CLIENT,), title="t", skip_consent_when_granted=False
    )
    assert idp_config(spec)["issuers"][0]["skip_consent_when_granted"] is False


@pytest.mark.parametrize(
    ("issuer", "value", "message"),
    [
        (1, "yes", "issuers[1].skip_consent_when_granted: must be true or false"),
        (0, True, "issuers[0].skip_consent_when_granted: applies to consent issuers only"),
    ],
)
def test_node_checks_skip_consent_when_granted(tmp_path: Path, _node_idp_available: None, issuer: int, value: Any, message: str) -> None:
    config = demo_config(host=HOST, sign_in_port=1, consent_port=2, sign_in_client=SIGN_IN_CLIENT, consent_clients=(CONSENT_CLIENT,))
    config["issuers"][issuer]["skip_consent_when_granted"] = value
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(config))
    done = subprocess.run(
        [str(shutil.which("node")), str(SERVER_SCRIPT), "--config", str(path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
    )
    assert done.returncode == 2 and done.stderr.splitlines() == [f"config error: {message}"]


def test_after_allow_the_next_request_redirects_with_a_code_at_once(remembering: str) -> None:
    consent = remembering
    with new_browser() as browser:
        first = request(browser, consent, API_SCOPES)
        page = consent_page(browser, first, sign_in_as=ALICE)
        assert scopes_on(page) == list(DEMO_API_SCOPES)
        assert granted(consent, tokens(consent, decide(browser, page, first, "allow"), first))[1] == frozenset(DEMO_API_SCOPES)

        # The same browser, a new request: the authorization endpoint answers with the redirect itself.
        second = request(browser, consent, API_SCOPES)
        query = at_once(second)
        assert query["iss"] == consent and query["code"] and "error" not in query
        body = tokens(consent, query, second)
        assert set(body["scope"].split()) == set(DEMO_API_SCOPES) and body["refresh_token"]
        assert granted(consent, body) == (ALICE.consent_sub, frozenset(DEMO_API_SCOPES))
        assert refresh(consent, body["refresh_token"]).status_code == 200

        # Fewer scopes than granted: at once too, and the token has just those.
        fewer = request(browser, consent, READ)
        assert granted(consent, tokens(consent, at_once(fewer), fewer)) == (ALICE.consent_sub, frozenset({READ}))
        # prompt=none succeeds as well, since no interaction is needed.
        silent = request(browser, consent, API_SCOPES, prompt="none")
        assert "code" in at_once(silent)

    # Another browser of Alice's: no session there, so sign-in first; her grant skips the consent page.
    with new_browser() as elsewhere:
        third = request(elsewhere, consent, API_SCOPES)
        login = page_at(follow(elsewhere, third.response, REDIRECT))
        assert is_sign_in(login)
        query = callback(sign_in_at(elsewhere, login, ALICE, REDIRECT))
        assert query["state"] == third.state
        assert granted(consent, tokens(consent, query, third)) == (ALICE.consent_sub, frozenset(DEMO_API_SCOPES))
        again = request(elsewhere, consent, API_SCOPES)
        assert "code" in at_once(again)


def test_scopes_not_yet_granted_bring_the_consent_page_back(remembering: str) -> None:
    consent = remembering
    with new_browser() as browser:
        first = request(browser, consent, READ)
        page = consent_page(browser, first, sign_in_as=ALICE)
        assert scopes_on(page) == [READ]
        decide(browser, page, first, "allow")

        more = request(browser, consent, f"{READ} {WRITE}")
        page = consent_page(browser, more)  # no sign-in: the session is there
        assert scopes_on(page) == [WRITE]  # only what is new
        body = tokens(consent, decide(browser, page, more, "allow"), more)
        assert granted(consent, body)[1] == frozenset({READ, WRITE})

        with_openid = request(browser, consent, f"openid {READ}")
        page = consent_page(browser, with_openid)
        assert scopes_on(page) == ["openid"]
        decide(browser, page, with_openid, "allow")

        everything = request(browser, consent, API_SCOPES)
        page = consent_page(browser, everything)
        assert scopes_on(page) == [s for s in DEMO_API_SCOPES if s not in (READ, WRITE)]
        decide(browser, page, everything, "allow")

        for scope in (READ, f"{READ} {WRITE}", f"openid {API_SCOPES}", API_SCOPES):
            assert "code" in at_once(request(browser, consent, scope)), scope


def test_prompt_consent_always_shows_the_consent_page(remembering: str) -> None:
    consent = remembering
    with new_browser() as browser:
        first = request(browser, consent, API_SCOPES)
        decide(browser, consent_page(browser, first, sign_in_as=ALICE), first, "allow")
        assert "code" in at_once(request(browser, consent, API_SCOPES))

        asked = request(browser, consent, API_SCOPES, prompt="consent")
        page = consent_page(browser, asked)
        assert scopes_on(page) == list(DEMO_API_SCOPES)  # nothing is missing: all of it, to confirm again
        assert "Signed in as Alice Example (alice)" in page.text
        body = tokens(consent, decide(browser, page, asked, "allow"), asked)
        assert granted(consent, body) == (ALICE.consent_sub, frozenset(DEMO_API_SCOPES))

        again = request(browser, consent, READ, prompt="consent")
        page = consent_page(browser, again)
        assert scopes_on(page) == [READ]
        query = decide(browser, page, again, "deny")
        assert query["error"] == "access_denied" and "code" not in query
        # Deny answers that request only: what Alice allowed before still stands.
        assert "code" in at_once(request(browser, consent, API_SCOPES))

    with new_browser() as elsewhere:  # no session: sign-in, then the consent page all the same
        fresh = request(elsewhere, consent, API_SCOPES, prompt="consent")
        consent_page(elsewhere, fresh, sign_in_as=ALICE)


def test_with_the_option_off_the_consent_page_shows_every_time(forgetting: str) -> None:
    consent = forgetting
    with new_browser() as browser:
        first = request(browser, consent, API_SCOPES)
        decide(browser, consent_page(browser, first, sign_in_as=ALICE), first, "allow")
        for _ in range(2):
            again = request(browser, consent, API_SCOPES)
            page = consent_page(browser, again)  # signed in already, but asked every time
            assert scopes_on(page) == list(DEMO_API_SCOPES)
            body = tokens(consent, decide(browser, page, again, "allow"), again)
            assert granted(consent, body) == (ALICE.consent_sub, frozenset(DEMO_API_SCOPES))
        fewer = request(browser, consent, READ)
        assert scopes_on(consent_page(browser, fewer)) == [READ]
        silent = request(browser, consent, API_SCOPES, prompt="none")
        query = callback(follow(browser, silent.response, REDIRECT))
        assert query["error"] == "consent_required" and "code" not in query

    with new_browser() as elsewhere:
        other = request(elsewhere, consent, API_SCOPES)
        consent_page(elsewhere, other, sign_in_as=ALICE)


def test_alices_grant_does_nothing_for_bob(remembering: str) -> None:
    consent = remembering
    with new_browser() as alices, new_browser() as bobs:
        first = request(alices, consent, API_SCOPES)
        decide(alices, consent_page(alices, first, sign_in_as=ALICE), first, "allow")

        silent = request(bobs, consent, API_SCOPES, prompt="none")  # no session in Bob's browser
        assert callback(follow(bobs, silent.response, REDIRECT))["error"] == "login_required"
        his = request(bobs, consent, API_SCOPES)
        page = consent_page(bobs, his, sign_in_as=BOB)
        assert "Signed in as Bob Example (bob)" in page.text and scopes_on(page) == list(DEMO_API_SCOPES)
        silent = request(bobs, consent, API_SCOPES, prompt="none")  # signed in now, but no grant of his
        assert callback(follow(bobs, silent.response, REDIRECT))["error"] == "consent_required"
        body = tokens(consent, decide(bobs, page, his, "allow"), his)  # the page he still has open
        assert granted(consent, body)[0] == BOB.consent_sub

        # Each browser now completes at once, each for its own person.
        for browser, user in ((alices, ALICE), (bobs, BOB)):
            req = request(browser, consent, API_SCOPES)
            assert granted(consent, tokens(consent, at_once(req), req))[0] == user.consent_sub


def test_after_deny_there_is_nothing_to_skip(remembering: str) -> None:
    consent = remembering
    with new_browser() as browser:
        first = request(browser, consent, API_SCOPES)
        query = decide(browser, consent_page(browser, first, sign_in_as=ALICE), first, "deny")
        assert query["error"] == "access_denied" and "code" not in query

        again = request(browser, consent, API_SCOPES)
        page = consent_page(browser, again)  # the same session, asked again
        assert scopes_on(page) == list(DEMO_API_SCOPES)
        silent = request(browser, consent, API_SCOPES, prompt="none")
        assert callback(follow(browser, silent.response, REDIRECT))["error"] == "consent_required"

    with new_browser() as elsewhere:
        other = request(elsewhere, consent, API_SCOPES)
        page = consent_page(elsewhere, other, sign_in_as=ALICE)
        decide(elsewhere, page, other, "allow")  # the first Allow is what creates a grant
        assert "code" in at_once(request(elsewhere, consent, API_SCOPES))


# --- both issuers in one browser -----------------------------------------------------------------


def test_cookies_of_the_two_issuers_do_not_collide(browser: httpx.Client, sign_in: str, consent: str) -> None:
    result, _ = authorize(browser, sign_in, SIGN_IN_CLIENT, "openid")
    callback(sign_in_at(browser, result, ALICE, SIGN_IN_CLIENT.redirect_uris[0]))
    consent_code(browser, consent, ALICE)

    names = {cookie.name for cookie in browser.cookies.jar}
    assert {"idp-sign-in-session", "idp-consent-session"} <= names
    assert not any(name.startswith("__Host-") for name in names)
    assert names <= {n + sig for issuer in ("sign-in", "consent") for n in cookie_names(issuer) for sig in ("", ".sig")}

    # Both sessions are still valid: each issuer answers with a code at once, no sign-in page.
    again, _ = authorize(browser, sign_in, SIGN_IN_CLIENT, "openid")
    assert "code" in callback(again)
    _, challenge = pkce_pair()
    again, _ = authorize(browser, consent, CONSENT_CLIENT, API_SCOPES, code_challenge=challenge, code_challenge_method="S256")
    assert "code" in callback(again)  # consent was remembered too


# --- the process -----------------------------------------------------------------------------------


def test_idp_process_stops_and_leaves_nothing_behind(idp: IdpProcess) -> None:
    with _start() as process:
        pid = process.pid
        assert pid is not None and set(process.issuers) == {"sign-in", "consent"}
    assert process.returncode == 0  # SIGTERM is a clean exit
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(httpx.ConnectError):
        httpx.get(endpoints(process.issuers["consent"]).discovery, timeout=TIMEOUT)


def test_bad_config_exits_2_naming_the_key(tmp_path: Path, _node_idp_available: None) -> None:
    config = demo_config(host=HOST, sign_in_port=1, consent_port=2, sign_in_client=SIGN_IN_CLIENT, consent_clients=(CONSENT_CLIENT,))
    config["issuers"][1]["clients"][0]["redirect_uris"] = ["not a url"]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(config))
    done = subprocess.run(
        [str(shutil.which("node")), str(SERVER_SCRIPT), "--config", str(path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == ["config error: issuers[1].clients[0].redirect_uris[0]: must be an absolute URL"]

    del config["issuers"][0]["port"]
    with pytest.raises(IdpStartError, match=r"code 2[\s\S]*issuers\[0\]\.port"):
        IdpProcess(config).start(timeout_s=15)


def _silent_node(tmp_path: Path, *, then_node: bool = False) -> Path:
    """A stand-in for a node that never reports ready (stuck, as node rarely is, or starved): it sleeps. With
    `then_node`, only its first launch does; later launches run the real node."""
    script = tmp_path / "silent-node"
    first = tmp_path / "launched-once"
    real = f'exec {shlex.quote(str(shutil.which("node")))} "$@"' if then_node else "exec sleep 60"
    script.write_text(f"#!/bin/sh\nif [ ! -e {shlex.quote(str(first))} ]; then : > {shlex.quote(str(first))}; exec sleep 60; fi\n{real}\n")
    script.chmod(0o700)
    return script


def test_a_start_that_times_out_says_what_the_process_was_doing(tmp_path: Path) -> None:
    # The error says which issuers were ready, how much CPU node used and what each thread waits in, so a slow
    # machine tells apart from a hang.
    config = demo_config(host=HOST, sign_in_port=1, consent_port=2, sign_in_client=SIGN_IN_CLIENT, consent_clients=(CONSENT_CLIENT,))
    process = IdpProcess(config, node=str(_silent_node(tmp_path)))
    with pytest.raises(IdpStartTimeout) as raised:
        process.start(timeout_s=0.5, attempts=1)
    assert re.fullmatch(
        r"local IdP did not start: issuers not ready after 0\.5 s \(ready: none; node used \d+\.\d\d CPU-s, "
        r"state [RSD], waiting in \S+; threads: \S+ [RSD] \S+; load average \d+\.\d\d\)",
        str(raised.value),
    ), str(raised.value)
    assert process.returncode is not None  # stopped, not left behind


def test_a_node_that_never_reports_ready_is_launched_again_with_a_warning(tmp_path: Path, _node_idp_available: None) -> None:
    sign_in_port, consent_port = _free_ports(2)
    config = demo_config(
        host=HOST, sign_in_port=sign_in_port, consent_port=consent_port, sign_in_client=SIGN_IN_CLIENT, consent_clients=(CONSENT_CLIENT,)
    )
    process = IdpProcess(config, node=str(_silent_node(tmp_path, then_node=True)))
    # 10 s for each launch: the first waits it out; the second is a real start, which takes up to 5 s on a busy machine.
    with pytest.warns(UserWarning, match=r"issuers not ready after 10 s \(ready: none; .*\); launching it again"):
        process.start(timeout_s=10)
    try:
        assert set(process.issuers) == {"sign-in", "consent"}
        assert httpx.get(process.issuers["consent"] + "/.well-known/openid-configuration").status_code == 200
    finally:
        process.stop()


def test_two_launches_that_time_out_are_raised(tmp_path: Path) -> None:
    config = demo_config(host=HOST, sign_in_port=1, consent_port=2, sign_in_client=SIGN_IN_CLIENT, consent_clients=(CONSENT_CLIENT,))
    with pytest.warns(UserWarning, match="launching it again"), pytest.raises(IdpStartTimeout):
        IdpProcess(config, node=str(_silent_node(tmp_path))).start(timeout_s=0.3)


LAUNCHER = """
import sys, time
from local.idp import IdpProcess, demo_config, ClientSpec
client = ClientSpec(client_id="c", client_secret="s", redirect_uris=("http://127.0.0.1:1/cb",))
config = demo_config(host="127.0.0.1", sign_in_port=int(sys.argv[1]), consent_port=int(sys.argv[2]), sign_in_client=client, consent_clients=(client,))
process = IdpProcess(config).start(timeout_s=15)
print(process.pid, flush=True)
time.sleep(60)
"""


def test_node_exits_when_its_launcher_is_killed(_node_idp_available: None) -> None:
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, *map(str, _free_ports(2))], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert launcher.stdout is not None
        node_pid = int(launcher.stdout.readline())
    finally:
        launcher.kill()  # SIGKILL: IdpProcess.stop() never runs
        launcher.wait(timeout=5)
        if launcher.stdout is not None:
            launcher.stdout.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if not _running(node_pid):
            return
        time.sleep(0.05)
    os.kill(node_pid, signal.SIGKILL)
    pytest.fail("node outlived its launcher")


def _running(pid: int) -> bool:
    """Whether pid runs; an exited orphan waiting for init to reap it (a zombie) does not."""
    try:
        os.kill(pid, 0)
        stat = Path(f"/proc/{pid}/stat").read_text()
    except ProcessLookupError:
        return False
    except OSError:
        return True  # no /proc: trust kill(0)
    return stat.rpartition(")")[2].split()[0] != "Z"
